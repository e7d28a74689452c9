//! C2SP tlog-proof files (`.tlog-proof`) and consistency proofs in the body format of C2SP
//! tlog-witness `add-checkpoint`.
//!
//! ```text
//! c2sp.org/tlog-proof@v1          old 17
//! extra <base64 entry CBOR>       <base64 hash>
//! index 73894                     …
//! <base64 hash>                   <blank line>
//! …                               <cosigned checkpoint, verbatim>
//! <blank line>
//! <cosigned checkpoint, verbatim>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::FormatError;
use super::checkpoint::{parse_decimal, parse_hash};
use super::merkle::{self, Hash, MerkleError};
use super::note::{CheckpointError, CosignedCheckpoint, MAX_NOTE_SIZE};
use crate::committee::Committee;

/// First line of a proof file.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Largest proof file we parse (the entry in `extra` included).
pub const MAX_PROOF_FILE_SIZE: usize = 4 * 1024 * 1024;
/// Most proof hashes accepted (trees are below 2^58 records; consistency proofs need up to
/// about 2·58).
pub const MAX_PROOF_HASHES: usize = 128;

/// A parsed (not yet verified) proof file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofFile {
    /// The entry bytes (our log entries always travel here).
    pub extra: Option<Vec<u8>>,
    /// Record index.
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling up.
    pub proof: Vec<Hash>,
    /// The cosigned checkpoint note, verbatim.
    pub checkpoint: String,
}

/// Why a proof file does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Malformed file.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The checkpoint is not validly cosigned by the committee.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The file has no `extra` line, so there is no entry to check.
    #[error("proof file carries no entry (no extra line)")]
    NoEntry,
    /// The inclusion proof does not verify.
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] MerkleError),
}

/// What a verified proof file establishes.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// The verified cosigned checkpoint.
    pub checkpoint: CosignedCheckpoint,
    /// The entry bytes.
    pub entry: Vec<u8>,
    /// `SHA-256(0x00 || entry)`.
    pub leaf_hash: Hash,
    /// Record index.
    pub index: u64,
    /// Inclusion proof.
    pub proof: Vec<Hash>,
}

fn hash_lines<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Result<Vec<Hash>, FormatError> {
    let mut out = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            return Ok(out);
        }
        if out.len() == MAX_PROOF_HASHES {
            return Err(FormatError::Proof("too many proof hashes"));
        }
        out.push(parse_hash(line, "proof hash")?);
    }
    Err(FormatError::Proof("no blank line before the checkpoint"))
}

/// Splits `text` after the blank line that ends the proof lines: (head, checkpoint).
fn rest_after(text: &str, consumed_lines: usize) -> &str {
    let mut at = 0;
    for _ in 0..consumed_lines {
        at += text[at..]
            .find('\n')
            .map(|i| i + 1)
            .unwrap_or(text.len() - at);
    }
    &text[at..]
}

impl ProofFile {
    /// Parses a proof file strictly.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        if text.len() > MAX_PROOF_FILE_SIZE {
            return Err(FormatError::Proof("larger than 4 MiB"));
        }
        let mut lines = text.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(FormatError::Proof(
                "first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let mut consumed = 1;
        let mut line = lines.next().ok_or(FormatError::Proof("truncated"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                B64.decode(b64)
                    .map_err(|_| FormatError::Proof("extra is not base64"))?,
            );
            line = lines.next().ok_or(FormatError::Proof("truncated"))?;
            consumed += 1;
        }
        let index = line
            .strip_prefix("index ")
            .ok_or(FormatError::Proof("missing index line"))?;
        let index = parse_decimal(index, "index")?;
        consumed += 1;
        let proof = hash_lines(&mut lines)?;
        consumed += proof.len() + 1;
        let checkpoint = rest_after(text, consumed);
        if checkpoint.len() > MAX_NOTE_SIZE || checkpoint.is_empty() {
            return Err(FormatError::Proof("missing or oversized checkpoint"));
        }
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_string(),
        })
    }

    /// The file text.
    pub fn format(&self) -> String {
        let mut s = format!("{PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            s.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Verifies offline: the committee's threshold cosignature on the checkpoint, then the
    /// inclusion of `SHA-256(0x00 || extra)` at `index` under the checkpoint's root.
    pub fn verify(&self, committee: &Committee) -> Result<VerifiedProof, ProofError> {
        let checkpoint = CosignedCheckpoint::verify(&self.checkpoint, committee)?;
        let entry = self.extra.clone().ok_or(ProofError::NoEntry)?;
        let leaf_hash = merkle::leaf_hash(&entry);
        let cp = checkpoint.checkpoint();
        merkle::verify_inclusion(self.index, cp.size, &leaf_hash, &self.proof, &cp.root)?;
        Ok(VerifiedProof {
            checkpoint,
            entry,
            leaf_hash,
            index: self.index,
            proof: self.proof.clone(),
        })
    }
}

/// A consistency proof as the body of a tlog-witness `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Size of the older tree.
    pub old: u64,
    /// RFC 6962 consistency proof hashes.
    pub proof: Vec<Hash>,
    /// The newer cosigned checkpoint, verbatim.
    pub checkpoint: String,
}

impl ConsistencyProof {
    /// `old <N>`, proof lines, blank line, checkpoint.
    pub fn format(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses the tlog-witness body.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        if text.len() > MAX_NOTE_SIZE + 64 * MAX_PROOF_HASHES {
            return Err(FormatError::Proof("consistency proof too large"));
        }
        let mut lines = text.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or(FormatError::Proof("first line is not \"old N\""))?;
        let old = parse_decimal(old, "old size")?;
        let proof = hash_lines(&mut lines)?;
        let checkpoint = rest_after(text, proof.len() + 2);
        if checkpoint.is_empty() {
            return Err(FormatError::Proof("missing checkpoint"));
        }
        Ok(Self {
            old,
            proof,
            checkpoint: checkpoint.to_string(),
        })
    }
}
