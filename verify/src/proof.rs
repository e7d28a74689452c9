//! The whole offline check of a proof file, bound to what the user asked.
//!
//! [`verify_proof`] accepts a `.tlog-proof` only if all of this holds:
//! 1. its checkpoint carries the committee's threshold line with at least `t` signers, over
//!    the committee's origin;
//! 2. the entry in `extra` is included at `index` under that checkpoint's root (RFC 6962);
//! 3. the entry decodes (format 2) and is about what was [`Expected`]: the crate AND
//!    version, or the exact request id; and the `.crate`'s sha256 when that is pinned too;
//! 4. when the entry carries an attestation (reproduced or failed), it is well formed with
//!    at least `t` signers;
//! 5. the committee's threshold signature over the checkpoint verifies: ONE BLS check,
//!    whatever the committee size or the log size.
//!
//! The attesters' aggregate signature inside the entry is NOT re-checked by
//! [`verify_proof`]: every member checked every reveal's signature before the entry was
//! decided, and the checkpoint's `t` cosigners vouch for the log that holds it, under the
//! same assumption (fewer than `t` faulty members) that makes the checkpoint signature mean
//! anything. [`VerifiedRecord::check_attestation`] re-checks it (one more BLS check) for an
//! auditor who wants each attester's own signature; the `synchronicity verify` and `proof`
//! commands do.
//!
//! The result is a [`VerifiedRecord`], whatever the verdict; [`VerifiedRecord::require_reproduced`]
//! turns it into a [`ReproducedBuild`], the only value that can check artifacts (through the
//! manifest text the entry pins by digest).

use crate::committee::Committee;
use crate::crypto::{SIGNATURE_LEN, SignerBitmap, ThresholdError, ThresholdSignature};
use crate::entry::{EntryError, LogEntry, Verdict};
use crate::epoch::{ChainError, CommitteeChain};
use crate::manifest::{Manifest, ManifestError};
use crate::sha256;
use crate::tlog::note::PendingCheckpoint;
use crate::tlog::{CosignedCheckpoint, FormatError, Hash, MerkleError, ProofFile, merkle};

/// What the user asked a proof to be about. A proof about anything else is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    what: Want,
    source_sha256: Option<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Crate { name: String, version: String },
    Request([u8; 32]),
}

impl Expected {
    /// A proof about `name@version` (any variant: features, lockfile and attempt are shown,
    /// not checked; pin the exact request with [`Expected::request_id`]).
    pub fn crate_version(name: &str, version: &str) -> Self {
        Self {
            what: Want::Crate {
                name: name.into(),
                version: version.into(),
            },
            source_sha256: None,
        }
    }

    /// A proof about exactly this request (every pin).
    pub fn request_id(id: [u8; 32]) -> Self {
        Self {
            what: Want::Request(id),
            source_sha256: None,
        }
    }

    /// Also require the `.crate` file's sha256 (as in a `Cargo.lock` `checksum`).
    pub fn with_source_sha256(mut self, sha256: [u8; 32]) -> Self {
        self.source_sha256 = Some(sha256);
        self
    }

    /// Why `entry` is not what was expected, if it is not.
    fn check(&self, entry: &LogEntry) -> Result<(), VerifyError> {
        let r = &entry.request;
        let about = || format!("{} (request {})", r.spec(), hex::encode(r.id()));
        match &self.what {
            Want::Crate { name, version } if (&r.krate, &r.version) != (name, version) => {
                return Err(VerifyError::WrongSubject {
                    expected: format!("{name}@{version}"),
                    found: about(),
                });
            }
            Want::Request(id) if r.id() != *id => {
                return Err(VerifyError::WrongSubject {
                    expected: format!("request {}", hex::encode(id)),
                    found: about(),
                });
            }
            _ => {}
        }
        if let Some(want) = self.source_sha256
            && r.source_sha256 != want
        {
            return Err(VerifyError::WrongSource {
                expected: hex::encode(want),
                found: hex::encode(&r.source_sha256),
            });
        }
        Ok(())
    }
}

/// Why a proof does not show what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The proof file is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The checkpoint lacks a valid committee threshold line.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::tlog::CheckpointError),
    /// No `extra` line: no entry to check.
    #[error("proof file carries no entry (no extra line)")]
    NoEntry,
    /// The inclusion proof does not verify.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] MerkleError),
    /// The entry is not a build record this verifier reads.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The attestation is malformed or has fewer than `t` signers.
    #[error("attestation: {0}")]
    Attestation(ThresholdError),
    /// The committee's signature over the checkpoint does not verify.
    #[error("checkpoint: committee signature does not verify")]
    CheckpointSignature,
    /// The attesters' signature over the attestation statement does not verify.
    #[error("attestation: signature does not verify for the entry's statement")]
    AttestationSignature,
    /// A valid proof, about something else.
    #[error("the proof is about {found}, not {expected}")]
    WrongSubject {
        /// What was asked.
        expected: String,
        /// What the proof is about.
        found: String,
    },
    /// A valid proof about the crate, built from another `.crate` file.
    #[error("the proof's .crate sha256 is {found}, not the expected {expected}")]
    WrongSource {
        /// Asked, hex.
        expected: String,
        /// In the entry, hex.
        found: String,
    },
    /// A valid proof whose verdict is not reproduced.
    #[error("{spec}: the group's verdict is {verdict:?}, not Reproduced")]
    NotReproduced {
        /// `crate@version`.
        spec: String,
        /// The verdict.
        verdict: Verdict,
    },
    /// The checkpoint is not one the committee chain accepts (no committee of the chain
    /// signed it, or its signer's epoch does not cover its size).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The entry names an epoch whose committee cannot have attested it under this
    /// checkpoint (a later epoch than the checkpoint's, or one the trust root does not
    /// reach).
    #[error(
        "the entry was attested in epoch {entry}, which the checkpoint's committee (epoch {checkpoint}) cannot vouch for"
    )]
    EntryEpoch {
        /// The entry's epoch.
        entry: u64,
        /// The checkpoint committee's epoch.
        checkpoint: u64,
    },
    /// A manifest or lockfile text that is not the one the entry pins.
    #[error("{what} does not hash to the sha256 the entry pins ({pinned})")]
    WrongInput {
        /// "manifest" or "lockfile".
        what: &'static str,
        /// The pinned sha256, hex.
        pinned: String,
    },
    /// The manifest text hashes right but does not parse (cannot happen for a text the
    /// group attested, which members parse before accepting).
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
}

/// A proof whose every check passed: an entry of the committee's log, about what was asked.
#[derive(Debug, Clone)]
pub struct VerifiedRecord {
    checkpoint: CosignedCheckpoint,
    index: u64,
    leaf_hash: Hash,
    proof: Vec<Hash>,
    entry_bytes: Vec<u8>,
    entry: LogEntry,
    attesters: Vec<usize>,
    checkpoint_epoch: u64,
}

/// Checks `proof_text` against `committee` and `expected` (see the module doc). The
/// checkpoint and the entry must both be `committee`'s epoch's; for a group whose committee
/// changed, use [`verify_proof_in_chain`].
pub fn verify_proof(
    proof_text: &str,
    committee: &Committee,
    expected: &Expected,
) -> Result<VerifiedRecord, VerifyError> {
    verify_one(proof_text, Trust::Committee(committee), expected, None)
}

/// [`verify_proof`] for a log whose committee changed: the checkpoint may be cosigned by the
/// committee of ANY epoch of `chain`, for a size inside that epoch's authority
/// ([`CommitteeChain::verify_checkpoint`]), and the entry's attestation is read with the
/// committee of the epoch the entry names (at most the checkpoint's).
pub fn verify_proof_in_chain(
    proof_text: &str,
    chain: &CommitteeChain,
    expected: &Expected,
) -> Result<VerifiedRecord, VerifyError> {
    verify_one(proof_text, Trust::Chain(chain), expected, None)
}

/// What a proof is checked against.
#[derive(Debug, Clone, Copy)]
enum Trust<'c> {
    /// One committee: checkpoint and entry of its epoch.
    Committee(&'c Committee),
    /// A verified chain from the genesis.
    Chain(&'c CommitteeChain),
}

impl<'c> Trust<'c> {
    /// The committee whose key the checkpoint names, checked to cover its size.
    fn checkpoint_committee(self, note: &str) -> Result<&'c Committee, VerifyError> {
        match self {
            Self::Committee(c) => Ok(c),
            Self::Chain(chain) => Ok(chain.epoch_of_note(note)?.committee()),
        }
    }

    /// The committee that attested an entry of `epoch` under a checkpoint of `checkpoint`.
    fn attesting_committee(
        self,
        epoch: u64,
        checkpoint: &'c Committee,
    ) -> Result<&'c Committee, VerifyError> {
        let refused = || VerifyError::EntryEpoch {
            entry: epoch,
            checkpoint: checkpoint.epoch(),
        };
        match self {
            Self::Committee(c) if epoch == c.epoch() => Ok(c),
            Self::Committee(_) => Err(refused()),
            Self::Chain(_) if epoch > checkpoint.epoch() => Err(refused()),
            Self::Chain(chain) => chain.committee(epoch).ok_or_else(refused),
        }
    }

    /// With a chain: the entry at `index` must lie among its epoch's entries.
    fn check_index(self, index: u64, epoch: u64) -> Result<(), VerifyError> {
        match self {
            Self::Committee(_) => Ok(()),
            Self::Chain(chain) => Ok(chain.check_entry_epoch(index, epoch)?),
        }
    }
}

/// Verifies many proofs against one committee, checking the BLS signature of each DISTINCT
/// checkpoint once (proofs fetched together share one): auditing a 300-package lockfile
/// costs one pairing check, not 300. Each proof is otherwise checked exactly as by
/// [`verify_proof`] (or [`verify_proof_in_chain`], made with [`BatchVerifier::in_chain`]).
#[derive(Debug)]
pub struct BatchVerifier<'c> {
    trust: Trust<'c>,
    /// The checkpoint bodies whose signature verified (bounded: one per distinct note).
    verified: std::collections::BTreeSet<String>,
}

impl<'c> BatchVerifier<'c> {
    /// A verifier for `committee`.
    pub fn new(committee: &'c Committee) -> Self {
        Self {
            trust: Trust::Committee(committee),
            verified: Default::default(),
        }
    }

    /// A verifier for proofs cosigned in any epoch of `chain` (as [`verify_proof_in_chain`]).
    pub fn in_chain(chain: &'c CommitteeChain) -> Self {
        Self {
            trust: Trust::Chain(chain),
            verified: Default::default(),
        }
    }

    /// [`verify_proof`], with the checkpoint signature checked once per distinct note.
    pub fn verify(
        &mut self,
        proof_text: &str,
        expected: &Expected,
    ) -> Result<VerifiedRecord, VerifyError> {
        verify_one(proof_text, self.trust, expected, Some(&mut self.verified))
    }

    /// How many distinct checkpoints were verified.
    pub fn checkpoints_verified(&self) -> usize {
        self.verified.len()
    }
}

fn verify_one(
    proof_text: &str,
    trust: Trust<'_>,
    expected: &Expected,
    verified: Option<&mut std::collections::BTreeSet<String>>,
) -> Result<VerifiedRecord, VerifyError> {
    let pf = ProofFile::parse(proof_text)?;
    let committee = trust.checkpoint_committee(&pf.checkpoint)?;
    let pending = PendingCheckpoint::parse(&pf.checkpoint, committee)?;
    let entry_bytes = pf.extra.ok_or(VerifyError::NoEntry)?;
    let leaf_hash = merkle::leaf_hash(&entry_bytes);
    let cp = &pending.checkpoint;
    merkle::verify_inclusion(pf.index, cp.size, &leaf_hash, &pf.proof, &cp.root)?;
    let entry = LogEntry::decode(&entry_bytes)?;
    let attesting = trust.attesting_committee(entry.epoch, committee)?;
    trust.check_index(pf.index, entry.epoch)?;
    // The attestation's shape (reproduced and failed verdicts carry one); its point is
    // decoded and its pairing checked only by `check_attestation`.
    let attesters = match entry.statement(committee.origin()) {
        Some(_) => attestation_signers(&entry.attestation, attesting)?,
        None => Vec::new(),
    };
    // The whole note (body and signature) is the cache key: a known body with another
    // signature is checked again.
    let known = verified
        .as_deref()
        .is_some_and(|v| v.contains(pf.checkpoint.as_str()));
    if !known {
        if pending
            .signers_key
            .verify(pending.body.as_bytes(), &pending.signature.aggregate)
            .is_err()
        {
            return Err(VerifyError::CheckpointSignature);
        }
        if let Some(v) = verified {
            v.insert(pf.checkpoint.clone());
        }
    }
    // Only now is the entry trustworthy enough to name what it is about.
    expected.check(&entry)?;
    Ok(VerifiedRecord {
        checkpoint: pending.verified(),
        index: pf.index,
        leaf_hash,
        proof: pf.proof,
        entry_bytes,
        entry,
        attesters,
        checkpoint_epoch: committee.epoch(),
    })
}

/// The signers of an encoded attestation (`bitmap || aggregate`): exact length, at least `t`.
fn attestation_signers(bytes: &[u8], committee: &Committee) -> Result<Vec<usize>, VerifyError> {
    let n = committee.len();
    let bitmap_len = SignerBitmap::encoded_len(n);
    if bytes.len() != bitmap_len + SIGNATURE_LEN {
        return Err(VerifyError::Attestation(ThresholdError::BadLength {
            expected: bitmap_len + SIGNATURE_LEN,
            found: bytes.len(),
        }));
    }
    let signers =
        SignerBitmap::from_bytes(&bytes[..bitmap_len], n).map_err(VerifyError::Attestation)?;
    let (count, threshold) = (signers.count(), committee.threshold());
    if count < threshold {
        return Err(VerifyError::Attestation(ThresholdError::BelowThreshold {
            signers: count,
            threshold,
        }));
    }
    Ok(signers.iter().collect())
}

impl VerifiedRecord {
    /// Re-checks the attesters' own aggregate signature over the entry's attestation
    /// statement (one BLS check). [`verify_proof`] relies on the checkpoint's cosigners for
    /// it (see the module doc); an auditor, and the `verify` command, call this too.
    /// `committee` must be the one that attested the entry: the one the record was verified
    /// against, or [`CommitteeChain::committee`] of [`VerifiedRecord::entry_epoch`].
    pub fn check_attestation(&self, committee: &Committee) -> Result<(), VerifyError> {
        let Some(statement) = self.entry.statement(committee.origin()) else {
            return Ok(());
        };
        let sig = ThresholdSignature::from_bytes(&self.entry.attestation, committee.len())
            .map_err(VerifyError::Attestation)?;
        sig.verify(
            committee.keys(),
            committee.threshold(),
            statement.as_bytes(),
        )
        .map_err(|_| VerifyError::AttestationSignature)
    }

    /// The verified cosigned checkpoint.
    pub fn checkpoint(&self) -> &CosignedCheckpoint {
        &self.checkpoint
    }
    /// The epoch of the committee that cosigned the checkpoint.
    pub fn checkpoint_epoch(&self) -> u64 {
        self.checkpoint_epoch
    }
    /// The epoch of the committee that attested the entry.
    pub fn entry_epoch(&self) -> u64 {
        self.entry.epoch
    }
    /// The entry's index in the log.
    pub fn index(&self) -> u64 {
        self.index
    }
    /// `SHA-256(0x00 || entry)`.
    pub fn leaf_hash(&self) -> &Hash {
        &self.leaf_hash
    }
    /// The inclusion proof.
    pub fn inclusion_proof(&self) -> &[Hash] {
        &self.proof
    }
    /// The entry bytes (CBOR).
    pub fn entry_bytes(&self) -> &[u8] {
        &self.entry_bytes
    }
    /// The decoded entry.
    pub fn entry(&self) -> &LogEntry {
        &self.entry
    }
    /// Committee positions of the members whose attestation is aggregated (empty for a
    /// not-reproduced verdict).
    pub fn attesters(&self) -> &[usize] {
        &self.attesters
    }
    /// `crate@version`.
    pub fn spec(&self) -> String {
        self.entry.request.spec()
    }

    /// Checks that `text` is the lockfile the request pins.
    pub fn check_lockfile(&self, text: &str) -> Result<(), VerifyError> {
        let pinned = &self.entry.request.lockfile_sha256;
        if sha256(text.as_bytes())[..] != pinned[..] {
            return Err(VerifyError::WrongInput {
                what: "lockfile",
                pinned: hex::encode(pinned),
            });
        }
        Ok(())
    }

    /// The record as a reproduced build, or why not.
    pub fn require_reproduced(self) -> Result<ReproducedBuild, VerifyError> {
        match (self.entry.verdict, self.entry.digest32()) {
            (Verdict::Reproduced, Some(digest)) => Ok(ReproducedBuild {
                record: self,
                digest,
            }),
            (verdict, _) => Err(VerifyError::NotReproduced {
                spec: self.spec(),
                verdict,
            }),
        }
    }
}

/// A verified record whose verdict is reproduced: at least `t` members attested the same
/// manifest digest.
#[derive(Debug, Clone)]
pub struct ReproducedBuild {
    record: VerifiedRecord,
    digest: [u8; 32],
}

impl ReproducedBuild {
    /// The attested manifest digest.
    pub fn manifest_digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Parses `text` as the attested manifest: it must hash to the attested digest.
    pub fn manifest(&self, text: &str) -> Result<Manifest, VerifyError> {
        if sha256(text.as_bytes()) != self.digest {
            return Err(VerifyError::WrongInput {
                what: "manifest",
                pinned: hex::encode(self.digest),
            });
        }
        let bound = crate::manifest::manifest_bound(&self.record.entry().request);
        Ok(Manifest::parse_within(text, bound)?)
    }

    /// The verified record.
    pub fn record(&self) -> &VerifiedRecord {
        &self.record
    }
    /// Committee positions of the attesters.
    pub fn attesters(&self) -> &[usize] {
        self.record.attesters()
    }
    /// `crate@version`.
    pub fn spec(&self) -> String {
        self.record.spec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{ENTRY_FORMAT, attestation_statement};
    use crate::request::{BuildRequest, REQUEST_FORMAT};
    use crate::test_committee::TestCommittee;
    use crate::tlog::ProofFile;

    fn request(name: &str) -> BuildRequest {
        BuildRequest {
            format: REQUEST_FORMAT,
            krate: name.into(),
            version: "1.0.15".into(),
            source_sha256: vec![1; 32],
            lockfile_sha256: vec![2; 32],
            lockfile_shipped: true,
            toolchain: "1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "release".into(),
            features: vec![],
            no_default_features: false,
            lib: true,
            bins: true,
            attempt: 1,
        }
    }

    /// A one-entry log's proof: the entry for `name` attested by `attesters` over the
    /// statement for `signed_digest` (the entry itself pins digest [3; 32]).
    fn proof(tc: &TestCommittee, attesters: &[usize], signed_digest: [u8; 32]) -> String {
        let req = request("itoa");
        let st = attestation_statement(tc.committee.origin(), &req.id(), &signed_digest);
        let entry = LogEntry {
            format: ENTRY_FORMAT,
            request: req,
            verdict: Verdict::Reproduced,
            digest: vec![3; 32],
            attestation: tc.sign(attesters.iter().copied(), st.as_bytes()).to_bytes(),
            dissenters: vec![],
            silent: vec![],
            misbehaviour: vec![],
            height: 1,
            epoch: 0,
        };
        let bytes = entry.to_cbor();
        let cp = tc.cosign(1, merkle::leaf_hash(&bytes));
        ProofFile {
            extra: Some(bytes),
            index: 0,
            proof: vec![],
            checkpoint: cp.note().to_string(),
        }
        .format()
    }

    #[test]
    fn one_signature_checked_the_attestation_on_demand() {
        let tc = TestCommittee::new(4, 40);
        let c = &tc.committee;
        let want = Expected::crate_version("itoa", "1.0.15");
        let good = proof(&tc, &[0, 1, 2], [3; 32]);
        let r = verify_proof(&good, c, &want).unwrap();
        assert_eq!(r.attesters(), &[0, 1, 2]);
        r.check_attestation(c).unwrap();
        r.require_reproduced().unwrap();

        // Attested over another digest: inclusion and checkpoint hold, the attestation not.
        let r = verify_proof(&proof(&tc, &[0, 1, 2], [9; 32]), c, &want).unwrap();
        assert_eq!(
            r.check_attestation(c),
            Err(VerifyError::AttestationSignature)
        );
        // Two attesters of a threshold of three: refused by shape, no pairing needed.
        assert!(matches!(
            verify_proof(&proof(&tc, &[0, 1], [3; 32]), c, &want),
            Err(VerifyError::Attestation(
                ThresholdError::BelowThreshold { .. }
            ))
        ));
        // Another crate.
        assert!(matches!(
            verify_proof(&good, c, &Expected::crate_version("itoa-evil", "1.0.15")),
            Err(VerifyError::WrongSubject { .. })
        ));
        // The checkpoint body of this log under a signature line over another checkpoint.
        let other = tc.cosign(1, [5; 32]).note().to_string();
        let sig_line = other.lines().last().unwrap();
        let (head, _) = good.rsplit_once('\u{2014}').unwrap();
        let forged = format!("{head}{sig_line}\n");
        assert_ne!(forged, good);
        assert_eq!(
            verify_proof(&forged, c, &want).unwrap_err(),
            VerifyError::CheckpointSignature
        );
    }
}
