//! The seam between the consensus actor and the consensus streams: every vote, proposal
//! and certificate of ours passes through an [`OutgoingFrames`] on its way to the peers.
//!
//! A product node uses [`HonestFrames`] (the same frame to every peer). The seam exists so
//! that a test member can lie with valid keys without any test code in the product: the
//! fault suite's equivocating member (`examples/testnet_member/byzantine.rs`) sends half of
//! the peers a conflicting, validly signed twin of each frame.

use synchronicity_net::PeerId;

use super::wire::Wire;

/// What the consensus actor sends for each of its broadcasts.
///
/// Contract: [`OutgoingFrames::broadcast`] is called on the consensus thread once per
/// broadcast, after the WAL holding the signed `wire` is durable, and must not block (a
/// frame handed to `send` is queued; a full queue or an unreachable peer drops it, and the
/// core's rebroadcast timer sends votes again). What it hands to `send` leaves as is: the
/// actor does not check it.
pub trait OutgoingFrames: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `wire` (signed by us) to `peers` (every member but us) through `send`.
    fn broadcast(&self, wire: &Wire, peers: &[PeerId], send: &mut dyn FnMut(PeerId, Vec<u8>));
}

/// The product's frames: `wire` encoded once, the same bytes to every peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct HonestFrames;

impl OutgoingFrames for HonestFrames {
    fn broadcast(&self, wire: &Wire, peers: &[PeerId], send: &mut dyn FnMut(PeerId, Vec<u8>)) {
        let bytes = wire.encode();
        for p in peers {
            send(*p, bytes.clone());
        }
    }
}
