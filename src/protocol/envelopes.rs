//! Each message's Ed25519 envelope is verified once per node: gossip admission, the
//! proposer's selection, validation and application all ask this cache, keyed by the
//! SHA-256 of the whole signed message (body, signer and signature), so a hit proves the
//! same bytes verified before. Bounded: the oldest keys are forgotten first (a forgotten
//! message is simply verified again).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::message::{MessageError, SignedMessage};
use crate::committee::Committee;
use crate::crypto::sha256;

/// Keys remembered (32 bytes each, ~4 MiB at most with the set's overhead).
pub const MAX_VERIFIED: usize = 65_536;

/// Verified envelopes, by hash.
#[derive(Debug, Default)]
pub struct EnvelopeCache {
    inner: Mutex<Seen>,
    /// Signature checks done (cache misses).
    pub verified: AtomicU64,
    /// Checks answered from the cache.
    pub hits: AtomicU64,
    /// Committee proposals checked before (approvals carry a whole committee file).
    pub proposals: super::change::ProposalCache,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl EnvelopeCache {
    /// Checks membership and the signature of `msg`, once per distinct message.
    pub fn verify(&self, msg: &SignedMessage, committee: &Committee) -> Result<(), MessageError> {
        let key = sha256(&msg.to_cbor());
        if self.lock().set.contains(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        msg.verify(committee)?;
        self.verified.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.lock();
        if seen.set.insert(key) {
            seen.order.push_back(key);
            while seen.order.len() > MAX_VERIFIED {
                if let Some(old) = seen.order.pop_front() {
                    seen.set.remove(&old);
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // Every change under the lock is a single insert or remove: never half-done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
