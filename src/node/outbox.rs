//! How this member speaks: its two keys (the Ed25519 identity that signs protocol messages
//! and cosignature lines, the BLS key that signs attestations and checkpoints), gossip, and
//! the consensus actor's input queue. The keys live here and nowhere else in the loop. Our
//! protocol messages pass the [`OutgoingMessages`] seam on their way out (a product node's
//! passes each unchanged).
//!
//! Nothing here waits: a publish is handed to its own task (the network applies
//! back-pressure there, never to the loop), and the actor's queue is fed with `try_send`
//! (a full queue drops a peer's frame and counts it; a lost wake-up is covered by the
//! actor's idle interval).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use synchronicity_net::{NetworkHandle, PeerId};
use tokio::sync::mpsc;

use super::cosign;
use super::outgoing::OutgoingMessages;
use super::shared::Shared;
use super::wire::{Cosignature, MESSAGES_TOPIC};
use crate::consensus::actor::ActorInput;
use crate::crypto::{BlsSecretKey, NodeIdentity};
use crate::protocol::{Body, SignedMessage};

/// This member's keys.
pub(crate) struct Keys {
    /// Signs protocol messages and our signed-note lines.
    pub(crate) identity: NodeIdentity,
    /// Signs attestations and checkpoints.
    pub(crate) bls: BlsSecretKey,
}

/// Our keys and the ways out of the node (see the module doc).
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    net: NetworkHandle,
    /// The consensus actor's input queue (bounded: see `actor::spawn`).
    actor: mpsc::Sender<ActorInput>,
    keys: Keys,
    /// What our protocol messages become on the way out (`NodeConfig::outgoing_messages`).
    outgoing: Arc<dyn OutgoingMessages>,
}

impl Outbox {
    /// Speaks for `shared.me` with `keys` on `net`, feeding `actor`; our protocol messages
    /// go through `outgoing`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        net: NetworkHandle,
        actor: mpsc::Sender<ActorInput>,
        keys: Keys,
        outgoing: Arc<dyn OutgoingMessages>,
    ) -> Self {
        Self {
            shared,
            net,
            actor,
            keys,
            outgoing,
        }
    }

    /// The network (requests, connected members, gossip verdicts).
    pub(crate) fn net(&self) -> &NetworkHandle {
        &self.net
    }

    /// Gossips `data` on `topic` from its own task; a failure is logged (what matters is
    /// published again: our unordered messages and last cosignature).
    pub(crate) fn publish(&self, topic: &'static str, data: Vec<u8>) {
        let net = self.net.clone();
        tokio::spawn(async move {
            if let Err(e) = net.publish(topic, data).await {
                tracing::debug!("publish on {topic}: {e}");
            }
        });
    }

    /// Tells the actor there may be work (never waits; see the module doc).
    pub(crate) fn wake(&self) {
        let _ = self.actor.try_send(ActorInput::Wake);
    }

    /// Hands the actor a consensus frame from `from`; dropped and counted when its queue is
    /// full (consensus re-sends votes; a flooding member cannot stall the loop).
    pub(crate) fn frame(&self, from: PeerId, data: Vec<u8>) {
        if self
            .actor
            .try_send(ActorInput::Frame { from, data })
            .is_err()
        {
            self.shared
                .counters
                .frames_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands the actor any other input (a fetched decided height); false when its queue is
    /// full (the height is fetched again later).
    pub(crate) fn to_actor(&self, input: ActorInput) -> bool {
        self.actor.try_send(input).is_ok()
    }

    /// Publishes our own message through the outgoing-messages seam (a product node's
    /// passes `body` unchanged): see [`Self::sign_and_publish`].
    pub(crate) fn emit(&self, body: Body) {
        self.outgoing
            .publish(body, &mut |body| self.sign_and_publish(body));
    }

    /// Signs `body` as ours, keeps it in the mempool (re-published until ordered), gossips
    /// it and wakes consensus.
    fn sign_and_publish(&self, body: Body) {
        let msg = SignedMessage::sign(
            body,
            self.shared.me,
            &self.keys.identity,
            self.shared.committee.signing_domain(),
        );
        if let Err(e) = self.shared.mempool.insert(msg.clone(), true) {
            // Published anyway (a peer with room may order it); a saved submission is
            // published again at the next start.
            tracing::warn!("own message not kept in the mempool: {e}");
        }
        self.publish(MESSAGES_TOPIC, msg.to_cbor());
        self.wake();
    }

    /// Publishes again our messages not ordered after `age` (see `Mempool::own_due`).
    pub(crate) fn republish_own(&self, age: Duration) {
        let view = self.shared.view();
        if view.state.epoch_ended() {
            // Signed for a committee that decides nothing more: the next epoch's members
            // would refuse them. Only cosignatures (of the handoff) still go out.
            return;
        }
        let due = self
            .shared
            .mempool
            .own_due(age, &view.state, self.shared.me);
        for m in due {
            self.publish(MESSAGES_TOPIC, m.to_cbor());
        }
    }

    /// Our cosignature of (size, root): the BLS partial and our Ed25519 line's signature
    /// (`None`: our store cannot be read to make the body).
    pub(crate) fn cosignature(&self, size: u64, root: [u8; 32]) -> Option<Cosignature> {
        cosign::sign_with_identity(
            &self.shared.committee,
            &self.shared.store,
            &self.keys.bls,
            &self.keys.identity,
            size,
            root,
        )
    }

    /// Our BLS signature over an attestation statement.
    /// Approves the next committee file `text` if it follows ours and the state would order
    /// our approval now: signs the approval statement with our BLS key, pools the message
    /// as ours (re-published until ordered) and gossips it. The epoch it proposes.
    pub(crate) fn approve(&self, text: String) -> Result<u64, String> {
        if text.len() > crate::protocol::MAX_PROPOSAL_SIZE {
            return Err(format!(
                "the committee file is larger than {} bytes",
                crate::protocol::MAX_PROPOSAL_SIZE
            ));
        }
        let c = &self.shared.committee;
        let next =
            synchronicity_verify::epoch::check_proposal(c, &text).map_err(|e| e.to_string())?;
        let statement = synchronicity_verify::epoch::approval_message(c, &next, &text);
        let body = Body::Approve {
            committee: text,
            signature: self.attest(&statement),
        };
        let msg = SignedMessage::sign(
            body,
            self.shared.me,
            &self.keys.identity,
            c.signing_domain(),
        );
        let view = self.shared.view();
        view.state
            .check(&msg, crate::clock::now_ms(), self.shared.env())
            .map_err(|why| format!("the approval cannot be ordered: {why}"))?;
        self.emit(msg.body);
        Ok(next.epoch())
    }

    pub(crate) fn attest(&self, statement: &str) -> Vec<u8> {
        self.keys.bls.sign(statement.as_bytes()).to_bytes().to_vec()
    }

    /// Our peer id (named in our commitments).
    pub(crate) fn peer_id(&self) -> PeerId {
        self.keys.identity.peer_id()
    }

    /// Stops the actor (waits for room in its queue: shutdown only).
    pub(crate) async fn shutdown(&self) {
        let _ = self.actor.send(ActorInput::Shutdown).await;
    }
}
