//! Protocol messages waiting to be ordered: requests, commitments and reveals received by
//! gossip (envelope verified on arrival) or made by this node. The proposer fills its block
//! from here; every node drops what a decided block included or made pointless.
//!
//! Bounds: at most [`MAX_MESSAGES`] messages; of one author at most [`MAX_PER_SIGNER`]
//! messages and [`MAX_BYTES_PER_SIGNER`] bytes of CBOR (so the pool holds at most
//! n × 64 MiB, whatever one member sends: 4,096 requests of 2 MiB are refused after the
//! 32nd). Over a bound a message is REFUSED ([`Refused`], counted by the caller); nothing
//! already admitted is evicted, so one author's flood never displaces another's messages.
//! A peer's message older than [`MAX_AGE`] is dropped. Our own stay until ordered or
//! pointless (a request may wait hours for its member's open-round bound; the per-author
//! bounds hold them).
//!
//! Ownership: the pool is fed by the node loop (gossip admission, our own messages) and read
//! by the consensus thread (the proposer's selection, `has_work`, pruning after a height), so
//! it is the one piece of mutable state two threads share: [`MessagePool`], behind its own
//! mutex. That lock is a LEAF: it is held only for the pool's own map operations (an insert,
//! a snapshot of the candidates, a prune); nothing else is locked, no signature is checked
//! and no disk is touched while it is held. Selection runs on a snapshot (messages are
//! shared `Arc`s, so a snapshot copies pointers), after the lock is released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::crypto::sha256;
use crate::protocol::{Block, Body, Env, ProtocolState, SignedMessage};

/// Most messages kept.
pub(crate) const MAX_MESSAGES: usize = 20_000;
/// Oldest message kept.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(3600);
/// Most messages kept per author, so one member cannot fill the pool.
pub(crate) const MAX_PER_SIGNER: usize = 4096;
/// Most bytes (CBOR of the signed messages) kept per author: 32 messages of the largest
/// size ([`crate::protocol::MAX_MESSAGE_SIZE`], 2 MiB), or thousands of ordinary requests,
/// commitments and reveals (a few KiB each).
pub(crate) const MAX_BYTES_PER_SIGNER: usize = 64 * 1024 * 1024;
/// Most of our own messages re-published per call of [`Mempool::own_due`].
pub(crate) const MAX_REPUBLISH: usize = 64;

struct Pending {
    msg: Arc<SignedMessage>,
    size: usize,
    since: Instant,
    /// Ours: re-published until ordered.
    own: bool,
}

/// Why [`Mempool::insert`] did not admit a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Already in the pool (same bytes).
    Duplicate,
    /// The pool holds [`MAX_MESSAGES`].
    Full,
    /// Its author holds [`MAX_PER_SIGNER`] messages.
    SignerCount,
    /// Its author's messages would exceed [`MAX_BYTES_PER_SIGNER`].
    SignerBytes,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Duplicate => "already in the mempool",
            Self::Full => "the mempool is full",
            Self::SignerCount => "its author holds the most messages one member may",
            Self::SignerBytes => "its author holds the most bytes one member may",
        })
    }
}

/// Messages and bytes one author holds in the pool.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    messages: usize,
    bytes: usize,
}

/// The pool, keyed by SHA-256 of the message's CBOR (so a message gossiped twice is kept
/// once), in arrival order within a key space sorted by arrival sequence.
#[derive(Default)]
pub(crate) struct Mempool {
    by_hash: BTreeMap<[u8; 32], u64>,
    by_seq: BTreeMap<u64, ([u8; 32], Pending)>,
    per_signer: BTreeMap<u32, Held>,
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

    /// Messages in the pool.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Bytes `signer`'s messages take in the pool.
    pub(crate) fn bytes_of(&self, signer: u32) -> usize {
        self.per_signer.get(&signer).map_or(0, |h| h.bytes)
    }

    /// Adds a message whose envelope was verified, or says why not (nothing changes then).
    pub(crate) fn insert(&mut self, msg: SignedMessage, own: bool) -> Result<(), Refused> {
        let bytes = msg.to_cbor();
        let h = sha256(&bytes);
        if self.by_hash.contains_key(&h) {
            return Err(Refused::Duplicate);
        }
        if matches!(msg.body, Body::Approve { .. }) {
            // One approval per member: its latest replaces the one pooled.
            let old: Vec<u64> = self
                .by_seq
                .iter()
                .filter(|(_, (_, p))| {
                    p.msg.signer == msg.signer && matches!(p.msg.body, Body::Approve { .. })
                })
                .map(|(s, _)| *s)
                .collect();
            for s in old {
                self.remove_seq(s);
            }
        }
        let held = self
            .per_signer
            .get(&msg.signer)
            .copied()
            .unwrap_or_default();
        if self.by_seq.len() >= MAX_MESSAGES {
            return Err(Refused::Full);
        }
        if held.messages >= MAX_PER_SIGNER {
            return Err(Refused::SignerCount);
        }
        if held.bytes.saturating_add(bytes.len()) > MAX_BYTES_PER_SIGNER {
            return Err(Refused::SignerBytes);
        }
        self.per_signer.insert(
            msg.signer,
            Held {
                messages: held.messages + 1,
                bytes: held.bytes + bytes.len(),
            },
        );
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_hash.insert(h, seq);
        self.by_seq.insert(
            seq,
            (
                h,
                Pending {
                    msg: Arc::new(msg),
                    size: bytes.len(),
                    since: Instant::now(),
                    own,
                },
            ),
        );
        Ok(())
    }

    /// The pool's messages with their sizes, in arrival order (shared, not copied).
    fn candidates(&self) -> Vec<(Arc<SignedMessage>, usize)> {
        self.by_seq
            .values()
            .map(|(_, p)| (p.msg.clone(), p.size))
            .collect()
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
    ) -> Vec<Arc<SignedMessage>> {
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
            if let Some(held) = self.per_signer.get_mut(&p.msg.signer) {
                held.messages -= 1;
                held.bytes -= p.size;
                if held.messages == 0 {
                    self.per_signer.remove(&p.msg.signer);
                }
            }
        }
    }

    /// Drops what `block` included (`included`: the SHA-256 of each of its messages' CBOR),
    /// requests already ordered, commitments and reveals for rounds no longer open (decided;
    /// gossip admits them only for open rounds), and peers' messages older than [`MAX_AGE`].
    fn prune(&mut self, included: &[[u8; 32]], state: &ProtocolState) {
        for h in included {
            if let Some(seq) = self.by_hash.get(h).copied() {
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
                        // Approvals count only until a change is scheduled.
                        Body::Approve { .. } => state.change().is_scheduled(),
                    }
            })
            .map(|(s, _)| *s)
            .collect();
        for s in stale {
            self.remove_seq(s);
        }
    }
}

/// The mempool, shared by the node loop and the consensus thread behind a leaf lock (see
/// the module doc).
#[derive(Debug, Default)]
pub(crate) struct MessagePool {
    pool: Mutex<Mempool>,
}

impl MessagePool {
    /// The pool (a poisoned lock is recovered: every operation leaves the maps consistent
    /// before it can fail).
    fn pool(&self) -> MutexGuard<'_, Mempool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a message whose envelope was verified, or says why not (see [`Mempool::insert`]).
    pub(crate) fn insert(&self, msg: SignedMessage, own: bool) -> Result<(), Refused> {
        self.pool().insert(msg, own)
    }

    /// The messages a block at `now_ms` can include, in block order, within the
    /// committee's block limits (chosen on a snapshot, without the lock).
    pub(crate) fn select(
        &self,
        state: &ProtocolState,
        now_ms: u64,
        env: Env<'_>,
    ) -> Vec<SignedMessage> {
        let candidates = self.pool().candidates();
        let refs: Vec<(&SignedMessage, usize)> =
            candidates.iter().map(|(m, size)| (&**m, *size)).collect();
        state
            .select(&refs, now_ms, env)
            .into_iter()
            .map(|i| refs[i].0.clone())
            .collect()
    }

    /// Whether a block at `now_ms` would include anything (stops at the first; on a
    /// snapshot, without the lock).
    pub(crate) fn has_applicable(&self, state: &ProtocolState, now_ms: u64, env: Env<'_>) -> bool {
        let candidates = self.pool().candidates();
        let refs: Vec<&SignedMessage> = candidates.iter().map(|(m, _)| &**m).collect();
        state.any_applicable(&refs, now_ms, env)
    }

    /// Our own messages due for re-publishing (see [`Mempool::own_due`]).
    pub(crate) fn own_due(
        &self,
        age: Duration,
        state: &ProtocolState,
        me: u32,
    ) -> Vec<Arc<SignedMessage>> {
        self.pool().own_due(age, state, me)
    }

    /// Drops what the applied `block` made pointless (its messages' hashes are computed
    /// before the lock is taken).
    pub(crate) fn prune(&self, block: &Block, state: &ProtocolState) {
        let included: Vec<[u8; 32]> = block
            .messages
            .iter()
            .map(|m| sha256(&m.to_cbor()))
            .collect();
        self.pool().prune(&included, state);
    }

    /// Bytes `signer`'s messages take in the pool.
    pub(crate) fn bytes_of(&self, signer: u32) -> usize {
        self.pool().bytes_of(signer)
    }

    /// True if a request for `spec` (`crate@version`, any variant) waits here.
    pub(crate) fn has_request_for(&self, spec: &str) -> bool {
        self.pool().has_request_for(spec)
    }

    /// Messages in the pool.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pool().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolParams;
    use crate::testing::TestCommittee;

    /// Signs `body` as member `m` of `tc`.
    fn signer(tc: &TestCommittee) -> impl Fn(usize, Body) -> SignedMessage + '_ {
        |m, body| {
            SignedMessage::sign(
                body,
                m as u32,
                &tc.identities[m],
                tc.committee.signing_domain(),
            )
        }
    }

    /// Our commitments are re-published before our requests, a peer's message never, and
    /// requests only while our requests hold fewer open rounds than the committee allows.
    #[test]
    fn own_commitments_go_first_and_requests_only_under_the_bound() {
        let tc = TestCommittee::new(4, 7);
        let sign = signer(&tc);
        let commit = |k: u8| Body::Commit {
            request_id: vec![k; 32],
            commitment: vec![1; 32],
        };
        let mut pool = Mempool::default();
        for k in 0..70 {
            let r = crate::testing::request(&format!("r{k}"), "1.0.0", "l");
            assert!(pool.insert(sign(1, Body::Request(r)), true).is_ok());
        }
        assert!(pool.insert(sign(2, commit(8)), false).is_ok());
        assert!(pool.insert(sign(1, commit(7)), true).is_ok());

        let state = ProtocolState::new(ProtocolParams::default());
        let due = pool.own_due(Duration::ZERO, &state, 1);
        assert_eq!(due.len(), MAX_REPUBLISH);
        assert_eq!(*due[0], sign(1, commit(7)));
        assert!(due[1..].iter().all(|m| matches!(m.body, Body::Request(_))));

        let at_bound = ProtocolState::new(ProtocolParams {
            max_open_requests_per_member: 0,
            ..ProtocolParams::default()
        });
        assert_eq!(
            pool.own_due(Duration::ZERO, &at_bound, 1),
            vec![Arc::new(sign(1, commit(7)))]
        );
        assert!(pool.own_due(Duration::from_secs(60), &state, 1).is_empty());
    }

    /// One author sending requests of ~1 MiB is refused once its messages reach
    /// [`MAX_BYTES_PER_SIGNER`]; what it holds stays, and another author's request is still
    /// admitted (nothing is evicted). Pruning its messages frees its budget.
    #[test]
    fn one_author_is_bounded_by_bytes_and_others_still_get_in() {
        let tc = TestCommittee::new(4, 8);
        let sign = signer(&tc);
        let big = |k: usize| {
            // A 1 MiB lockfile (the largest a request may pin), distinct per request.
            let lockfile = format!(
                "{k:08}{}",
                "x".repeat(crate::request::MAX_LOCKFILE_SIZE - 8)
            );
            Body::Request(crate::testing::request(
                &format!("r{k}"),
                "1.0.0",
                &lockfile,
            ))
        };
        let mut pool = Mempool::default();
        let mut admitted = 0;
        let refusal = loop {
            match pool.insert(sign(1, big(admitted)), false) {
                Ok(()) => admitted += 1,
                Err(e) => break e,
            }
            assert!(admitted <= 200, "no byte bound after {admitted} MiB");
        };
        assert_eq!(refusal, Refused::SignerBytes);
        assert!(pool.bytes_of(1) <= MAX_BYTES_PER_SIGNER);
        assert!(pool.bytes_of(1) + (1 << 20) > MAX_BYTES_PER_SIGNER);
        assert_eq!(admitted, MAX_BYTES_PER_SIGNER / (1 << 20) - 1);
        // Refused again; the pool did not change.
        assert_eq!(
            pool.insert(sign(1, big(admitted)), false),
            Err(Refused::SignerBytes)
        );
        assert_eq!(pool.by_seq.len(), admitted);
        // Another member still gets in, large or small.
        assert_eq!(pool.insert(sign(2, big(9999)), false), Ok(()));
        let r = crate::testing::request("small", "1.0.0", "l");
        assert_eq!(pool.insert(sign(2, Body::Request(r)), false), Ok(()));
        assert_eq!(pool.by_seq.len(), admitted + 2);
        // Removing one of member 1's messages frees its bytes.
        let first = *pool.by_seq.keys().next().expect("one");
        pool.remove_seq(first);
        assert_eq!(pool.insert(sign(1, big(admitted)), false), Ok(()));
    }
}
