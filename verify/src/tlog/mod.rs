//! The transparency log's formats and math: an append-only RFC 6962 Merkle log with C2SP
//! formats.
//!
//! - [`merkle`]: pure tree math over the [`HashReader`] trait (Go `sumdb/tlog` style):
//!   stored hashes, tree hashes, inclusion and consistency proofs and their checks.
//! - [`Checkpoint`], [`SignedNote`], [`CosignedCheckpoint`]: C2SP tlog-checkpoint and
//!   signed-note, with the committee's BLS threshold signature line.
//! - [`ProofFile`]: C2SP tlog-proof; [`ConsistencyProof`]: the tlog-witness body format.

mod checkpoint;
pub mod merkle;
pub(crate) mod note;
mod proof_file;
#[cfg(test)]
mod tests;

pub use checkpoint::Checkpoint;
pub use merkle::{EMPTY_ROOT, Hash, HashIndex, HashReader, MerkleError, leaf_hash, node_hash};
pub use note::{
    COSIGNATURE_V1_KEY_TYPE, CheckpointError, CosignedCheckpoint, ED25519_KEY_TYPE, MAX_NOTE_SIZE,
    MAX_SIGNATURES, NoteSignature, SignedNote, member_key_name, note_key_id, verifier_key,
};
pub use proof_file::{
    ConsistencyProof, MAX_PROOF_FILE_SIZE, MAX_PROOF_HASHES, PROOF_HEADER, ProofError, ProofFile,
    VerifiedProof,
};

/// A malformed checkpoint, note or proof text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Checkpoint body.
    #[error("checkpoint: {0}")]
    Checkpoint(&'static str),
    /// Signed note.
    #[error("signed note: {0}")]
    Note(&'static str),
    /// Proof file or consistency proof.
    #[error("proof: {0}")]
    Proof(&'static str),
    /// A decimal number.
    #[error("{what} {value:?} is not a decimal without leading zeroes")]
    BadNumber {
        /// Which number.
        what: &'static str,
        /// As given (truncated).
        value: String,
    },
    /// A base64 hash.
    #[error("{what} is not the canonical base64 of 32 bytes")]
    BadHash {
        /// Which hash.
        what: &'static str,
    },
}
