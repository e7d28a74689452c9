//! Cosigning: after a height grows the log, each member BLS-signs the new checkpoint body
//! and gossips the signature; any node holding ≥ t valid signatures for the (size, root)
//! its own log has aggregates them into the cosigned checkpoint and stores it.
//!
//! A partial is verified against its member's key only when it can count, so one bad
//! signature never spoils an aggregate and no member can make the others pay a pairing
//! for a partial that cannot: one for a size our log has is verified at once if its root
//! is ours, and dropped unverified if it is not (another root is never combined with
//! ours); one for a size beyond our log is kept unverified and verified when our log
//! reaches that size with that root ([`Collector::finish`]). A member signing random roots
//! or sizes far ahead (the fault suite's cosignature flood, ~100 a second) used to cost
//! every other member one pairing each, on the loop that reads peers' input; now none.
//!
//! Bounds: each member has partials for at most [`MAX_PER_SIGNER`] (size, root) pairs (its
//! oldest goes first), so at most n × [`MAX_PER_SIGNER`] pairs are kept and one member's
//! flood of signed-but-useless partials only ever evicts its own; sizes at or below the
//! latest stored checkpoint are dropped.
//!
//! Each member also signs the body with its Ed25519 identity key; the stored note carries,
//! after the committee's threshold line, one standard signed-note line per cosigning member
//! (`— <origin>/<name> base64(key ID || Ed25519)`), so any C2SP / Go `note` verifier checks
//! k of n members without BLS (`committee check --vkeys` prints their verifier keys). Proof
//! files carry only the threshold line (`CosignedCheckpoint::compact_note`).

use std::collections::BTreeMap;

use crate::committee::Committee;
use crate::crypto::{
    BlsSecretKey, BlsSignature, NodeIdentity, SignerBitmap, ThresholdSignature, ed25519_key_of,
};
use crate::log::{Checkpoint, CosignedCheckpoint, LogStore};
use crate::verify::tlog::{ED25519_KEY_TYPE, NoteSignature, member_key_name, note_key_id};

use super::wire::Cosignature;

/// Most (size, root) pairs one member has pending partials for (an honest member signs
/// each new size once; the group is rarely more than a few checkpoints behind).
pub(crate) const MAX_PER_SIGNER: usize = 8;

/// Why a cosignature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CosignError {
    /// The root is not 32 bytes or the signature does not decode.
    #[error("malformed cosignature")]
    Malformed,
    /// The signature does not verify under the member's key.
    #[error("cosignature of member {0} does not verify")]
    BadSignature(usize),
    /// For a size our log has, with another root: it cannot count (not verified).
    #[error("cosignature for a root that is not our log's at that size")]
    NotOurRoot,
    /// Our store could not be read to make the body: not the signer's fault.
    #[error("our log store cannot be read")]
    Unreadable,
}

/// A cosigned checkpoint could not be written (the disk or the database failed: the node
/// halts with this line).
#[derive(Debug, thiserror::Error)]
#[error("cannot store the cosigned checkpoint of size {size}: {source}")]
pub(crate) struct CheckpointWriteError {
    size: u64,
    source: crate::log::StoreError,
}

/// What [`Collector::add`] did with a cosignature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// For our (size, root): verified and kept.
    Verified,
    /// For a size beyond our log: kept unverified until our log reaches it.
    Deferred,
}

/// The checkpoint every member signs for (size, root): with the index line of our log at
/// that size. `None` when the store cannot be read: then nothing is signed or judged (a
/// body without the line would match nobody's).
pub(crate) fn checkpoint_at(
    committee: &Committee,
    store: &LogStore,
    size: u64,
    root: [u8; 32],
) -> Option<Checkpoint> {
    store.checkpoint_body(committee.origin(), size, root).ok()
}

/// The body every member signs for (size, root) (`None`: the store cannot be read).
pub(crate) fn checkpoint_body(
    committee: &Committee,
    store: &LogStore,
    size: u64,
    root: [u8; 32],
) -> Option<String> {
    checkpoint_at(committee, store, size, root).map(|c| c.to_body())
}

/// Our cosignature of (size, root).
pub(crate) fn sign(
    committee: &Committee,
    store: &LogStore,
    key: &BlsSecretKey,
    size: u64,
    root: [u8; 32],
) -> Option<Cosignature> {
    let body = checkpoint_body(committee, store, size, root)?;
    Some(Cosignature {
        size,
        root: root.to_vec(),
        signature: key.sign(body.as_bytes()).to_bytes().to_vec(),
        ed25519: Vec::new(),
    })
}

/// Our cosignature of (size, root) with our Ed25519 line's signature too.
pub(crate) fn sign_with_identity(
    committee: &Committee,
    store: &LogStore,
    key: &BlsSecretKey,
    identity: &NodeIdentity,
    size: u64,
    root: [u8; 32],
) -> Option<Cosignature> {
    let mut c = sign(committee, store, key, size, root)?;
    c.ed25519 = identity
        .sign(checkpoint_body(committee, store, size, root)?.as_bytes())
        .to_vec();
    Some(c)
}

/// Member `i`'s signed-note line for `body` with Ed25519 signature `sig`.
fn member_line(committee: &Committee, i: usize, sig: &[u8]) -> Option<NoteSignature> {
    let m = committee.members().get(i)?;
    let public = ed25519_key_of(&m.peer_id).ok()?.to_bytes();
    let name = member_key_name(committee.origin(), &m.name);
    Some(NoteSignature {
        key_id: note_key_id(&name, ED25519_KEY_TYPE, &public),
        name,
        signature: sig.to_vec(),
    })
}

/// One member's partial: its BLS signature, its Ed25519 line's signature if it sent one,
/// and whether both were verified yet.
#[derive(Debug)]
struct Partial {
    bls: BlsSignature,
    ed25519: Option<Vec<u8>>,
    verified: bool,
}

/// Pending partial signatures.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pending: BTreeMap<(u64, [u8; 32]), BTreeMap<usize, Partial>>,
    /// Partials verified so far (each costs a pairing): what a flood can make us spend
    /// (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    verifications: u64,
}

/// Whether `signer`'s partial `bls` (and Ed25519 line `ed`, if any) signs `body`.
fn partial_verifies(
    committee: &Committee,
    signer: usize,
    body: &str,
    bls: &BlsSignature,
    ed: Option<&[u8]>,
) -> bool {
    let Some(member) = committee.members().get(signer) else {
        return false;
    };
    if member.bls_public_key.verify(body.as_bytes(), bls).is_err() {
        return false;
    }
    // The Ed25519 line, if any, must verify too (else the whole cosignature is refused: a
    // stored note never carries a line that does not verify).
    ed.is_none_or(|sig| {
        ed25519_key_of(&member.peer_id)
            .map(|k| k.verify(body.as_bytes(), sig))
            .unwrap_or(false)
    })
}

impl Collector {
    /// Keeps `c` from member `signer`: verified now if it is for our log's (size, root),
    /// unverified if it is for a size beyond our log (see the module doc); refused without
    /// a pairing if it is for a size we have with another root.
    pub(crate) fn add(
        &mut self,
        committee: &Committee,
        store: &LogStore,
        signer: usize,
        c: &Cosignature,
    ) -> Result<Added, CosignError> {
        let root: [u8; 32] = c
            .root
            .as_slice()
            .try_into()
            .map_err(|_| CosignError::Malformed)?;
        let sig = BlsSignature::from_bytes(&c.signature).map_err(|_| CosignError::Malformed)?;
        if signer >= committee.len() {
            return Err(CosignError::Malformed);
        }
        let ed = (!c.ed25519.is_empty()).then(|| c.ed25519.clone());
        let our_size = store.size().unwrap_or(0);
        let added = if c.size <= our_size {
            // Cheap check first: a root that is not ours at a size we have never counts.
            if store.tree_hash(c.size).ok() != Some(root) {
                return Err(CosignError::NotOurRoot);
            }
            self.verifications += 1;
            let body =
                checkpoint_body(committee, store, c.size, root).ok_or(CosignError::Unreadable)?;
            if !partial_verifies(committee, signer, &body, &sig, ed.as_deref()) {
                return Err(CosignError::BadSignature(signer));
            }
            Added::Verified
        } else {
            Added::Deferred
        };
        let key = (c.size, root);
        let mine: Vec<(u64, [u8; 32])> = self
            .pending
            .iter()
            .filter(|(k, sigs)| **k != key && sigs.contains_key(&signer))
            .map(|(k, _)| *k)
            .collect();
        if mine.len() >= MAX_PER_SIGNER {
            // Keep this member's newest: drop its partial of the smallest size (only its
            // own; other members' partials for that pair stay).
            let oldest = mine[0];
            if let Some(sigs) = self.pending.get_mut(&oldest) {
                sigs.remove(&signer);
                if sigs.is_empty() {
                    self.pending.remove(&oldest);
                }
            }
        }
        self.pending.entry((c.size, root)).or_default().insert(
            signer,
            Partial {
                bls: sig,
                ed25519: ed,
                verified: added == Added::Verified,
            },
        );
        Ok(added)
    }

    /// Partials verified so far.
    #[cfg(test)]
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications
    }

    /// Stores every checkpoint that now has ≥ t partials for a (size, root) matching our
    /// log, newest last; returns the largest size stored.
    pub(crate) fn finish(
        &mut self,
        committee: &Committee,
        store: &LogStore,
    ) -> Result<Option<u64>, CheckpointWriteError> {
        let Ok(our_size) = store.size() else {
            return Ok(None);
        };
        let mut stored = None;
        let ready: Vec<(u64, [u8; 32])> = self
            .pending
            .iter()
            .filter(|((size, _), sigs)| *size <= our_size && sigs.len() >= committee.threshold())
            .map(|(k, _)| *k)
            .collect();
        for (size, root) in ready {
            if store.tree_hash(size).ok() != Some(root) {
                continue; // a root that is not ours: never aggregated with ours
            }
            // Partials that arrived before our log had this size are verified now, once
            // each; those that do not verify go. The rest are combined as they are (the
            // assembled note is verified once more, as a whole, before it is stored).
            let Some(body) = checkpoint_body(committee, store, size, root) else {
                continue;
            };
            let Some(partials) = self.pending.get_mut(&(size, root)) else {
                continue;
            };
            let mut checked = 0;
            partials.retain(|signer, p| {
                if !p.verified {
                    checked += 1;
                    p.verified =
                        partial_verifies(committee, *signer, &body, &p.bls, p.ed25519.as_deref());
                }
                p.verified
            });
            let remaining = partials.len();
            self.verifications += checked;
            if remaining < committee.threshold() {
                continue;
            }
            let partials = &self.pending[&(size, root)];
            let mut signers = SignerBitmap::new(committee.len());
            for signer in partials.keys() {
                signers.set(*signer);
            }
            let Some(aggregate) = BlsSignature::aggregate(partials.values().map(|p| &p.bls)) else {
                continue;
            };
            let ts = ThresholdSignature { signers, aggregate };
            let Some(cp) = checkpoint_at(committee, store, size, root) else {
                continue;
            };
            let lines: Vec<NoteSignature> = partials
                .iter()
                .filter_map(|(i, p)| member_line(committee, *i, p.ed25519.as_deref()?))
                .collect();
            match CosignedCheckpoint::assemble_with(&cp, &ts, committee, lines) {
                Ok(c) => match store.put_checkpoint(&c) {
                    Ok(()) => stored = Some(size),
                    // The disk or the database failed: the node cannot go on.
                    Err(source @ crate::log::StoreError::Db(_)) => {
                        return Err(CheckpointWriteError { size, source });
                    }
                    Err(e) => tracing::warn!(size, "cannot store the cosigned checkpoint: {e}"),
                },
                Err(e) => tracing::warn!(size, "aggregate does not verify: {e}"),
            }
        }
        if let Some(s) = stored {
            self.pending.retain(|(size, _), _| *size > s);
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCommittee;

    #[test]
    fn only_t_valid_partials_for_our_root_make_a_checkpoint() {
        let tc = TestCommittee::new(4, 14);
        let c = &tc.committee;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store
            .append(&[b"e0".to_vec(), b"e1".to_vec()], Some(1))
            .unwrap();
        let root = store.tree_hash(2).unwrap();
        let mut col = Collector::default();
        // Member 1's signature presented as member 2's: refused.
        let s1 = sign(c, &store, &tc.bls[1], 2, root).unwrap();
        assert_eq!(
            col.add(c, &store, 2, &s1),
            Err(CosignError::BadSignature(2))
        );
        // Partials for another root at a size we have: refused without a pairing.
        let before = col.verifications();
        for i in 0..3 {
            assert_eq!(
                col.add(
                    c,
                    &store,
                    i,
                    &sign(c, &store, &tc.bls[i], 2, [9; 32]).unwrap()
                ),
                Err(CosignError::NotOurRoot)
            );
        }
        assert_eq!(col.verifications(), before);
        col.add(c, &store, 0, &s1.clone()).unwrap_err();
        assert_eq!(col.add(c, &store, 1, &s1), Ok(Added::Verified));
        col.add(c, &store, 0, &sign(c, &store, &tc.bls[0], 2, root).unwrap())
            .unwrap();
        assert_eq!(col.finish(c, &store).unwrap(), None, "two of t = 3");
        assert!(store.latest_checkpoint().unwrap().is_none());
        col.add(c, &store, 3, &sign(c, &store, &tc.bls[3], 2, root).unwrap())
            .unwrap();
        assert_eq!(col.finish(c, &store).unwrap(), Some(2));
        let note = store.latest_checkpoint().unwrap().unwrap();
        let cp = CosignedCheckpoint::verify(&note, c).unwrap();
        assert_eq!(cp.checkpoint().root, root);
        // A partial beyond our log's size waits, unverified.
        assert_eq!(
            col.add(
                c,
                &store,
                0,
                &sign(c, &store, &tc.bls[0], 5, [1; 32]).unwrap()
            ),
            Ok(Added::Deferred)
        );
        assert_eq!(col.finish(c, &store).unwrap(), None);
        let mut bad = sign(c, &store, &tc.bls[0], 2, root).unwrap();
        bad.root.pop();
        assert_eq!(col.add(c, &store, 0, &bad), Err(CosignError::Malformed));
    }

    /// Partials that arrive before our log has their size are verified when it does, and
    /// a bad one among them is dropped then (it never spoils the aggregate).
    #[test]
    fn early_partials_are_verified_when_our_log_reaches_them() {
        let tc = TestCommittee::new(4, 16);
        let c = &tc.committee;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let ahead = LogStore::open(other.path()).unwrap();
        ahead.append(&[b"e0".to_vec()], Some(1)).unwrap();
        let root = ahead.tree_hash(1).unwrap();
        let mut col = Collector::default();
        // Members 0 and 1 sign (1, root) before our log has entry 0; member 2's partial is
        // member 3's signature (bad), member 3's is good.
        for (i, key) in [(0, 0), (1, 1), (2, 3), (3, 3)] {
            assert_eq!(
                col.add(
                    c,
                    &store,
                    i,
                    &sign(c, &ahead, &tc.bls[key], 1, root).unwrap()
                ),
                Ok(Added::Deferred)
            );
        }
        assert_eq!(col.verifications(), 0);
        assert_eq!(col.finish(c, &store).unwrap(), None, "our log is empty");
        store.append(&[b"e0".to_vec()], Some(1)).unwrap();
        assert_eq!(col.finish(c, &store).unwrap(), Some(1));
        assert_eq!(col.verifications(), 4);
        let note = store.latest_checkpoint().unwrap().unwrap();
        let cp = CosignedCheckpoint::verify(&note, c).unwrap();
        assert_eq!(cp.checkpoint().root, root);
    }

    #[test]
    fn one_members_flood_of_partials_evicts_only_its_own() {
        let tc = TestCommittee::new(4, 15);
        let c = &tc.committee;
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.append(&[b"e0".to_vec()], Some(1)).unwrap();
        let root = store.tree_hash(1).unwrap();
        let mut col = Collector::default();
        // Two honest partials for our (1, root), then member 3 signs a thousand useless
        // (size, root) pairs far ahead and a thousand random roots at our size: they push
        // out its own, never the honest ones, and cost no pairing.
        col.add(c, &store, 0, &sign(c, &store, &tc.bls[0], 1, root).unwrap())
            .unwrap();
        col.add(c, &store, 1, &sign(c, &store, &tc.bls[1], 1, root).unwrap())
            .unwrap();
        assert_eq!(col.verifications(), 2);
        for k in 0..1000u64 {
            let mut r = [0u8; 32];
            r[..8].copy_from_slice(&k.to_le_bytes());
            assert_eq!(
                col.add(
                    c,
                    &store,
                    3,
                    &sign(c, &store, &tc.bls[3], 1_000_000 + k, r).unwrap()
                ),
                Ok(Added::Deferred)
            );
            assert_eq!(
                col.add(c, &store, 3, &sign(c, &store, &tc.bls[3], 1, r).unwrap()),
                Err(CosignError::NotOurRoot)
            );
        }
        assert_eq!(col.verifications(), 2);
        assert!(
            col.pending.len() <= 1 + MAX_PER_SIGNER,
            "{}",
            col.pending.len()
        );
        col.add(c, &store, 2, &sign(c, &store, &tc.bls[2], 1, root).unwrap())
            .unwrap();
        assert_eq!(col.finish(c, &store).unwrap(), Some(1));
    }
}
