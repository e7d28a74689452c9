//! The node's cosigning: it owns the pending partials ([`Collector`]), our latest
//! cosignature (published again until a checkpoint covers it), when we last signed again for
//! a late cosigner, and a checkpoint fetched by catch-up that waits for our log to reach it.
//! The rules of a partial are in [`super::cosign`]; this part is the loop's side of them.

use std::sync::Arc;
use std::time::Duration;

use synchronicity_net::{PeerId, Validation};
use tokio::time::Instant;

use super::cosign::{self, Collector};
use super::outbox::Outbox;
use super::shared::Shared;
use super::wire::{COSIGN_TOPIC, Cosignature, MAX_COSIGN, decode, encode};
use crate::log::StoreError;

/// The cosigning part (see the module doc).
pub(crate) struct Cosigning {
    shared: Arc<Shared>,
    collector: Collector,
    /// Our latest cosignature, re-published until a checkpoint covers it.
    last_cosign: Option<Cosignature>,
    /// The last size we signed again for a late cosigner, and when.
    helped_late: Option<(u64, Instant)>,
    /// A checkpoint fetched from a peer, stored once our log reaches its size.
    fetched_checkpoint: Option<String>,
    /// Least time between two signatures for late cosigners (the republish interval).
    spacing: Duration,
}

impl Cosigning {
    /// Nothing pending; helps late cosigners at most once per `spacing`.
    pub(crate) fn new(shared: Arc<Shared>, spacing: Duration) -> Self {
        Self {
            shared,
            collector: Collector::default(),
            last_cosign: None,
            helped_late: None,
            fetched_checkpoint: None,
            spacing,
        }
    }

    /// Our log grew to `size` with `root`: sign, keep our own partial, publish it, and
    /// store what is now complete (a checkpoint, or a fetched one our log reached).
    pub(crate) fn on_grown(&mut self, size: u64, root: [u8; 32], outbox: &Outbox) {
        let Some(c) = outbox.cosignature(size, root) else {
            tracing::error!(size, "cannot cosign: the log store cannot be read");
            return;
        };
        let (committee, store) = (&self.shared.committee, &self.shared.store);
        let me = self.shared.me as usize;
        if let Err(e) = self.collector.add(committee, store, me, &c) {
            tracing::error!("own cosignature: {e}");
        }
        outbox.publish(COSIGN_TOPIC, encode(&c));
        self.last_cosign = Some(c);
        self.finish_cosigned();
        self.store_fetched_checkpoint();
    }

    /// A cosignature by gossip from `source`: the verdict for gossipsub.
    pub(crate) fn on_cosign(&mut self, source: PeerId, data: &[u8], outbox: &Outbox) -> Validation {
        let Some(signer) = self.shared.committee.index_of_peer(&source) else {
            return Validation::Reject;
        };
        let Ok(c) = decode::<Cosignature>(data, MAX_COSIGN) else {
            return Validation::Reject;
        };
        // A cosignature for a size we already hold cosigned: its signer is still collecting
        // (it was down when the others signed, and gossip does not replay). Sign again for
        // it, at most once per spacing whatever the size (a member replaying old
        // cosignatures costs the others one signature per interval).
        if self.covered(c.size) {
            self.help_late_cosigner(c.size, outbox);
            return Validation::Ignore;
        }
        // Sizes up to this epoch's start (the handoff) are the previous committee's to sign:
        // a late member's old cosignature must not make a checkpoint of them under our key.
        if c.size <= self.shared.epoch_start {
            return Validation::Ignore;
        }
        let (committee, store) = (&self.shared.committee, &self.shared.store);
        match self.collector.add(committee, store, signer, &c) {
            Ok(cosign::Added::Verified) => {
                self.finish_cosigned();
                Validation::Accept
            }
            // Not verified (yet): not relayed either. Its author publishes to every member
            // itself; we verify it if our log reaches its size with its root.
            Ok(cosign::Added::Deferred) => Validation::Ignore,
            Err(e @ (cosign::CosignError::NotOurRoot | cosign::CosignError::Unreadable)) => {
                tracing::debug!("cosignature ignored: {e}");
                Validation::Ignore
            }
            Err(e) => {
                tracing::debug!("cosignature refused: {e}");
                Validation::Reject
            }
        }
    }

    /// Publishes our latest cosignature again, until a checkpoint covers it.
    pub(crate) fn republish(&mut self, outbox: &Outbox) {
        let Some(c) = &self.last_cosign else {
            return;
        };
        if self.covered(c.size) {
            self.last_cosign = None;
        } else {
            outbox.publish(COSIGN_TOPIC, encode(c));
        }
    }

    /// A cosigned checkpoint note a member sent with its decided heights: stored once our
    /// log reaches its size, if its root is ours.
    pub(crate) fn on_fetched(&mut self, note: String) {
        self.fetched_checkpoint = Some(note);
        self.store_fetched_checkpoint();
    }

    /// Whether we hold a cosigned checkpoint of `size`.
    fn covered(&self, size: u64) -> bool {
        self.shared.store.has_checkpoint_at(size)
    }

    /// Stores a checkpoint once t cosignatures are in; a failed write halts the node.
    fn finish_cosigned(&mut self) {
        let (committee, store) = (&self.shared.committee, &self.shared.store);
        if let Err(e) = self.collector.finish(committee, store) {
            self.shared.halt(e.to_string());
        }
    }

    /// Publishes our cosignature of the stored checkpoint at `size` again.
    fn help_late_cosigner(&mut self, size: u64, outbox: &Outbox) {
        let now = Instant::now();
        if self
            .helped_late
            .is_some_and(|(_, at)| now.duration_since(at) < self.spacing)
        {
            return;
        }
        self.helped_late = Some((size, now));
        let Ok(root) = self.shared.store.tree_hash(size) else {
            return;
        };
        if let Some(c) = outbox.cosignature(size, root) {
            outbox.publish(COSIGN_TOPIC, encode(&c));
        }
    }

    fn store_fetched_checkpoint(&mut self) {
        let Some(note) = &self.fetched_checkpoint else {
            return;
        };
        let shared = &self.shared;
        let cp = match shared.verify_checkpoint(note) {
            Ok(cp) => cp,
            // A follower is often epochs behind the checkpoints it is sent: not a fault.
            Err(e) if !shared.is_voter() => {
                tracing::debug!("fetched checkpoint not usable yet: {e}");
                self.fetched_checkpoint = None;
                return;
            }
            Err(e) => {
                tracing::warn!("fetched checkpoint refused: {e}");
                self.fetched_checkpoint = None;
                return;
            }
        };
        let size = cp.checkpoint().size;
        if shared.store.size().unwrap_or(0) < size {
            return; // kept until our log reaches it
        }
        if !self.covered(size)
            && let Err(e) = shared.store.put_checkpoint(&cp)
        {
            match e {
                StoreError::Db(_) => shared.halt(format!("cannot store a fetched checkpoint: {e}")),
                e => tracing::error!("fetched checkpoint does not match our log: {e}"),
            }
        }
        self.fetched_checkpoint = None;
    }
}
