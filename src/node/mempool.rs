//! Protocol messages waiting to be ordered: requests, commitments and reveals received by
//! gossip (envelope verified on arrival) or made by this node. The proposer fills its block
//! from here; every node drops what a decided block included or made pointless.
//!
//! Bounds: at most [`MAX_MESSAGES`] messages, [`MAX_PER_SIGNER`] of one author; a peer's
//! message older than [`MAX_AGE`] is dropped. Our own stay until ordered or pointless (a
//! request may wait hours for its member's open-round bound; the per-author bound holds
//! them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::crypto::sha256;
use crate::protocol::{Block, Body, Env, ProtocolState, SignedMessage};

/// Most messages kept.
pub(crate) const MAX_MESSAGES: usize = 20_000;
/// Oldest message kept.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(3600);
/// Most messages kept per author, so one member cannot fill the pool.
pub(crate) const MAX_PER_SIGNER: usize = 4096;
/// Most of our own messages re-published per call of [`Mempool::own_due`].
pub(crate) const MAX_REPUBLISH: usize = 64;

struct Pending {
    msg: SignedMessage,
    size: usize,
    since: Instant,
    /// Ours: re-published until ordered.
    own: bool,
}

/// The pool, keyed by SHA-256 of the message's CBOR (so a message gossiped twice is kept
/// once), in arrival order within a key space sorted by arrival sequence.
#[derive(Default)]
pub(crate) struct Mempool {
    by_hash: BTreeMap<[u8; 32], u64>,
    by_seq: BTreeMap<u64, ([u8; 32], Pending)>,
    per_signer: BTreeMap<u32, usize>,
    next_seq: u64,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("messages", &self.by_seq.len())
            .finish()
    }
}

impl Mempool {
    /// True if a request for `spec` (`crate@version`, any variant) waits here.
    pub(crate) fn has_request_for(&self, spec: &str) -> bool {
        self.by_seq.values().any(|(_, p)| match &p.msg.body {
            Body::Request(r) => r.request.spec() == spec,
            _ => false,
        })
    }

    /// Adds a message whose envelope was verified; false if already present or full.
    pub(crate) fn insert(&mut self, msg: SignedMessage, own: bool) -> bool {
        let bytes = msg.to_cbor();
        let h = sha256(&bytes);
        let signer_count = self.per_signer.get(&msg.signer).copied().unwrap_or(0);
        if self.by_hash.contains_key(&h)
            || self.by_seq.len() >= MAX_MESSAGES
            || signer_count >= MAX_PER_SIGNER
        {
            return false;
        }
        self.per_signer.insert(msg.signer, signer_count + 1);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_hash.insert(h, seq);
        self.by_seq.insert(
            seq,
            (
                h,
                Pending {
                    msg,
                    size: bytes.len(),
                    since: Instant::now(),
                    own,
                },
            ),
        );
        true
    }

    /// The messages a block at `now_ms` can include, in arrival order, within the
    /// committee's block limits.
    pub(crate) fn select(
        &self,
        state: &ProtocolState,
        now_ms: u64,
        env: Env<'_>,
    ) -> Vec<SignedMessage> {
        let candidates: Vec<(&SignedMessage, usize)> = self
            .by_seq
            .values()
            .map(|(_, p)| (&p.msg, p.size))
            .collect();
        state
            .select(&candidates, now_ms, env)
            .into_iter()
            .map(|i| candidates[i].0.clone())
            .collect()
    }

    /// Whether a block at `now_ms` would include anything (cheap: stops at the first).
    pub(crate) fn has_applicable(&self, state: &ProtocolState, now_ms: u64, env: Env<'_>) -> bool {
        let candidates: Vec<&SignedMessage> = self.by_seq.values().map(|(_, p)| &p.msg).collect();
        state.any_applicable(&candidates, now_ms, env)
    }

    /// Our own messages not yet ordered and older than `age`, at most [`MAX_REPUBLISH`]
    /// (to re-publish: gossip may have missed a peer, or a busy peer dropped it): first
    /// commitments and reveals, oldest first, whose rounds close at deadlines; then requests,
    /// only while our requests hold fewer open rounds than the committee allows (the others
    /// could not be ordered, and re-sending them would crowd out the rest).
    pub(crate) fn own_due(
        &self,
        age: Duration,
        state: &ProtocolState,
        me: u32,
    ) -> Vec<SignedMessage> {
        let due = || {
            self.by_seq
                .values()
                .filter(move |(_, p)| p.own && p.since.elapsed() >= age)
                .map(|(_, p)| &p.msg)
        };
        let requests_fit = state.open_requests_of(me) < state.params().max_open_requests_per_member;
        due()
            .filter(|m| !matches!(m.body, Body::Request(_)))
            .chain(due().filter(|m| requests_fit && matches!(m.body, Body::Request(_))))
            .take(MAX_REPUBLISH)
            .cloned()
            .collect()
    }

    fn remove_seq(&mut self, seq: u64) {
        if let Some((h, p)) = self.by_seq.remove(&seq) {
            self.by_hash.remove(&h);
            if let Some(c) = self.per_signer.get_mut(&p.msg.signer) {
                *c -= 1;
                if *c == 0 {
                    self.per_signer.remove(&p.msg.signer);
                }
            }
        }
    }

    /// Drops what `block` included, requests already ordered, commitments and reveals for
    /// rounds no longer open (decided; gossip admits them only for open rounds), and
    /// peers' messages older than [`MAX_AGE`].
    pub(crate) fn prune(&mut self, block: &Block, state: &ProtocolState) {
        for m in &block.messages {
            if let Some(seq) = self.by_hash.get(&sha256(&m.to_cbor())).copied() {
                self.remove_seq(seq);
            }
        }
        let stale: Vec<u64> = self
            .by_seq
            .iter()
            .filter(|(_, (_, p))| {
                (!p.own && p.since.elapsed() > MAX_AGE)
                    || match &p.msg.body {
                        Body::Request(r) => state.is_open(&r.id()),
                        Body::Commit { request_id, .. } | Body::Reveal { request_id, .. } => {
                            <[u8; 32]>::try_from(request_id.as_slice())
                                .map(|id| !state.is_open(&id))
                                .unwrap_or(true)
                        }
                    }
            })
            .map(|(s, _)| *s)
            .collect();
        for s in stale {
            self.remove_seq(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolParams;
    use crate::testing::TestCommittee;

    /// Our commitments are re-published before our requests, a peer's message never, and
    /// requests only while our requests hold fewer open rounds than the committee allows.
    #[test]
    fn own_commitments_go_first_and_requests_only_under_the_bound() {
        let tc = TestCommittee::new(4, 7);
        let sign = |m: usize, body| {
            SignedMessage::sign(
                body,
                m as u32,
                &tc.identities[m],
                tc.committee.signing_domain(),
            )
        };
        let commit = |k: u8| Body::Commit {
            request_id: vec![k; 32],
            commitment: vec![1; 32],
        };
        let mut pool = Mempool::default();
        for k in 0..70 {
            let r = crate::testing::request(&format!("r{k}"), "1.0.0", "l");
            assert!(pool.insert(sign(1, Body::Request(r)), true));
        }
        assert!(pool.insert(sign(2, commit(8)), false));
        assert!(pool.insert(sign(1, commit(7)), true));

        let state = ProtocolState::new(ProtocolParams::default());
        let due = pool.own_due(Duration::ZERO, &state, 1);
        assert_eq!(due.len(), MAX_REPUBLISH);
        assert_eq!(due[0], sign(1, commit(7)));
        assert!(due[1..].iter().all(|m| matches!(m.body, Body::Request(_))));

        let at_bound = ProtocolState::new(ProtocolParams {
            max_open_requests_per_member: 0,
            ..ProtocolParams::default()
        });
        assert_eq!(
            pool.own_due(Duration::ZERO, &at_bound, 1),
            vec![sign(1, commit(7))]
        );
        assert!(pool.own_due(Duration::from_secs(60), &state, 1).is_empty());
    }
}
