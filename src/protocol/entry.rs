//! Offline checks of a log entry (what a proof file's `extra` carries): its verdict, the
//! attestation (one threshold BLS signature of the matching revealers over the attestation
//! statement), and the manifest the digest names. Pure: the light client and `verify` use it.

use super::commitment::attestation_statement;
use super::round::{LogEntry, Verdict};
use crate::build::Manifest;
use crate::codec;
use crate::committee::Committee;
use crate::crypto::ThresholdSignature;

/// Largest entry decoded.
const MAX_ENTRY: usize = 4 * 1024 * 1024;

/// Why an entry does not prove a reproduced build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not a build record of a known format.
    #[error("the entry is not a build record: {0}")]
    Format(String),
    /// The group did not agree on a successful build.
    #[error("verdict is {0:?}, not Reproduced")]
    NotReproduced(Verdict),
    /// The attestation does not verify (or has fewer than t signers).
    #[error("attestation signature: {0}")]
    Attestation(String),
    /// The manifest is missing or does not hash to the attested digest.
    #[error("manifest: {0}")]
    Manifest(String),
}

/// A reproduced entry whose attestation verified.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    /// The entry.
    pub entry: LogEntry,
    /// Members whose attestation is aggregated.
    pub signers: Vec<usize>,
    /// The attested manifest.
    pub manifest: Manifest,
}

/// Decodes an entry (no checks beyond the shape).
pub fn decode_entry(bytes: &[u8]) -> Result<LogEntry, EntryError> {
    let e: LogEntry =
        codec::from_slice(bytes, MAX_ENTRY).map_err(|e| EntryError::Format(e.to_string()))?;
    if e.format != 1 {
        return Err(EntryError::Format(format!("format {}", e.format)));
    }
    Ok(e)
}

/// Checks that `bytes` record a reproduced build attested by ≥ t members of `committee`.
pub fn verify_entry(bytes: &[u8], committee: &Committee) -> Result<VerifiedEntry, EntryError> {
    let entry = decode_entry(bytes)?;
    if entry.verdict != Verdict::Reproduced {
        return Err(EntryError::NotReproduced(entry.verdict));
    }
    let digest: [u8; 32] = entry
        .digest
        .as_slice()
        .try_into()
        .map_err(|_| EntryError::Format("digest is not 32 bytes".into()))?;
    let sig = ThresholdSignature::from_bytes(&entry.attestation, committee.len())
        .map_err(|e| EntryError::Attestation(e.to_string()))?;
    let statement = attestation_statement(committee.origin(), &entry.request.id(), &digest);
    committee
        .verify_threshold(statement.as_bytes(), &sig)
        .map_err(|e| EntryError::Attestation(e.to_string()))?;
    let text = entry
        .manifest
        .as_deref()
        .ok_or_else(|| EntryError::Manifest("missing".into()))?;
    let manifest = Manifest::parse(text).map_err(|e| EntryError::Manifest(e.to_string()))?;
    if manifest.digest() != digest {
        return Err(EntryError::Manifest(
            "does not hash to the attested digest".into(),
        ));
    }
    Ok(VerifiedEntry {
        signers: sig.signers.iter().collect(),
        entry,
        manifest,
    })
}
