//! The seam between the node and the messages topic: every protocol message of ours
//! (requests, commitments, reveals) passes through an [`OutgoingMessages`] before it is
//! signed, kept in our mempool and gossiped.
//!
//! A product node uses [`HonestMessages`] (each message unchanged). The seam exists so that
//! a test member can lie with valid keys without any test code in the product: the fault
//! suite's Byzantine member (`examples/testnet_member/byzantine.rs`) commits twice, reveals
//! another outcome than it committed to, or never reveals.

use crate::protocol::Body;

/// What the node publishes for each of its protocol messages.
///
/// Contract: [`OutgoingMessages::publish`] is called on the node's event loop once per
/// message of ours, and must not block. Each body handed to `publish` is signed with our
/// identity key, kept in our mempool (so re-published until ordered) and gossiped, as is:
/// the node does not check it (the other members judge it as they judge any member's).
pub trait OutgoingMessages: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes `body` (ours, not yet signed) by handing what to send to `publish`.
    fn publish(&self, body: Body, publish: &mut dyn FnMut(Body));
}

/// The product's messages: each one published once, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct HonestMessages;

impl OutgoingMessages for HonestMessages {
    fn publish(&self, body: Body, publish: &mut dyn FnMut(Body)) {
        publish(body);
    }
}
