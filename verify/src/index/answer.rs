//! Lookup answers as they travel, and their verification against a cosigned checkpoint's
//! index roots: every entry of `crate@version` (or proven none), every logged version of a
//! crate. Pure; the light protocol carries these types (CBOR).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::roots::{
    IndexError, IndexRoots, crate_key, variants_key, variants_value, versions_value,
};
use super::smt::{EMPTY, Hash, MAX_DEPTH, SmtProof, SmtProofError};
use crate::entry::{LogEntry, MAX_ENTRY_SIZE};
use crate::tlog::{CosignedCheckpoint, merkle};

/// An index proof on the wire: the path's length, a bitmap of the siblings that are the
/// empty subtree (not carried: a deep path is one where two keys share a long prefix, and
/// its lower siblings are mostly empty), the other siblings concatenated (32 bytes each,
/// root side first), and the leaf where the path ends (key ‖ value digest), if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireProof {
    /// Siblings on the path (at most 256).
    pub depth: u16,
    /// Bit d (most significant first) set: sibling d is EMPTY. `ceil(depth / 8)` bytes.
    pub empty: ByteBuf,
    /// The non-empty siblings, 32 bytes each.
    pub siblings: ByteBuf,
    /// The leaf the path ends at: key ‖ value digest.
    pub leaf: Option<ByteBuf>,
}

impl From<&SmtProof> for WireProof {
    fn from(p: &SmtProof) -> Self {
        let depth = p.siblings.len();
        let mut empty = vec![0u8; depth.div_ceil(8)];
        let mut siblings = Vec::with_capacity(32 * depth);
        for (d, s) in p.siblings.iter().enumerate() {
            if *s == EMPTY {
                empty[d / 8] |= 0x80 >> (d % 8);
            } else {
                siblings.extend_from_slice(s);
            }
        }
        Self {
            depth: depth as u16,
            empty: ByteBuf::from(empty),
            siblings: ByteBuf::from(siblings),
            leaf: p.leaf.map(|(k, v)| ByteBuf::from([k, v].concat())),
        }
    }
}

impl WireProof {
    /// The proof, if its sizes agree.
    pub fn decode(&self) -> Result<SmtProof, AnswerError> {
        let depth = usize::from(self.depth);
        let (e, s) = (self.empty.as_slice(), self.siblings.as_slice());
        if depth > MAX_DEPTH || e.len() != depth.div_ceil(8) || !s.len().is_multiple_of(32) {
            return Err(AnswerError::MalformedProof);
        }
        let is_empty = |d: usize| e[d / 8] & (0x80 >> (d % 8)) != 0;
        // No bit set past the path, and one carried sibling per clear bit.
        if (depth..8 * e.len()).any(is_empty)
            || (0..depth).filter(|&d| !is_empty(d)).count() != s.len() / 32
        {
            return Err(AnswerError::MalformedProof);
        }
        let mut carried = s.chunks_exact(32);
        let siblings = (0..depth)
            .map(|d| {
                if is_empty(d) {
                    EMPTY
                } else {
                    carried
                        .next()
                        .and_then(|c| c.try_into().ok())
                        .unwrap_or(EMPTY)
                }
            })
            .collect();
        let leaf = match &self.leaf {
            None => None,
            Some(b) if b.len() == 64 => Some((
                b[..32].try_into().expect("32 bytes"),
                b[32..].try_into().expect("32 bytes"),
            )),
            Some(_) => return Err(AnswerError::MalformedProof),
        };
        Ok(SmtProof { siblings, leaf })
    }
}

/// Every entry of one `crate@version` with the proof that this is all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantsAnswer {
    /// `(entry index, entry bytes)` in log order; empty: the log holds none.
    pub entries: Vec<(u64, ByteBuf)>,
    /// The variants tree's proof for the key.
    pub proof: WireProof,
}

/// Every logged version of one crate with the proof that this is all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsAnswer {
    /// In byte order; empty: the log holds no entry of the crate.
    pub versions: Vec<String>,
    /// The crates tree's proof for the key.
    pub proof: WireProof,
}

/// Why a lookup answer does not prove what it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The checkpoint's index line.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The proof does not lead to the checkpoint's root for this value.
    #[error("index proof: {0}")]
    Proof(#[from] SmtProofError),
    /// A proof whose sizes are wrong.
    #[error("malformed index proof")]
    MalformedProof,
    /// An entry index at or beyond the checkpoint's size.
    #[error("entry {index} is beyond the checkpoint of size {size}")]
    BeyondCheckpoint {
        /// The entry index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// An entry that does not decode.
    #[error("entry {index} does not decode: {error}")]
    Entry {
        /// The entry index.
        index: u64,
        /// Why.
        error: String,
    },
    /// An entry of another crate or version.
    #[error("entry {index} is {found}, not {asked}")]
    OtherSpec {
        /// The entry index.
        index: u64,
        /// What the entry is about.
        found: String,
        /// What was asked.
        asked: String,
    },
}

/// One proven entry of `crate@version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEntry {
    /// Its index in the log.
    pub index: u64,
    /// Its bytes (the log's leaf).
    pub bytes: Vec<u8>,
    /// Decoded.
    pub entry: LogEntry,
}

impl VariantsAnswer {
    /// Checks that `entries` are ALL the entries of `spec` (`crate@version`) in the log of
    /// `checkpoint` (whose signatures the caller verified): in log order, each of that
    /// crate and version, and together the value the checkpoint's index holds for the key
    /// (none at all: proven absent).
    pub fn verify(
        &self,
        checkpoint: &CosignedCheckpoint,
        spec: &str,
    ) -> Result<Vec<ProvenEntry>, AnswerError> {
        let cp = checkpoint.checkpoint();
        let roots = IndexRoots::of_checkpoint(cp)?;
        let mut out = Vec::with_capacity(self.entries.len());
        let mut leaves = Vec::with_capacity(self.entries.len());
        for (index, bytes) in &self.entries {
            let index = *index;
            if index >= cp.size {
                return Err(AnswerError::BeyondCheckpoint {
                    index,
                    size: cp.size,
                });
            }
            if bytes.len() > MAX_ENTRY_SIZE {
                return Err(AnswerError::Entry {
                    index,
                    error: format!("larger than {MAX_ENTRY_SIZE} bytes"),
                });
            }
            let entry = LogEntry::decode(bytes).map_err(|e| AnswerError::Entry {
                index,
                error: e.to_string(),
            })?;
            let found = entry.request.spec();
            if found != spec {
                return Err(AnswerError::OtherSpec {
                    index,
                    found,
                    asked: spec.to_string(),
                });
            }
            leaves.push((index, merkle::leaf_hash(bytes)));
            out.push(ProvenEntry {
                index,
                bytes: bytes.to_vec(),
                entry,
            });
        }
        let proof = self.proof.decode()?;
        let key = variants_key(spec);
        if leaves.is_empty() {
            proof.verify(&roots.variants, &key, None)?;
        } else {
            let value = variants_value(&leaves)?;
            proof.verify(&roots.variants, &key, Some(&value))?;
        }
        Ok(out)
    }
}

impl VersionsAnswer {
    /// Checks that `versions` are ALL the logged versions of crate `name` in the log of
    /// `checkpoint` (signatures verified by the caller).
    pub fn verify(&self, checkpoint: &CosignedCheckpoint, name: &str) -> Result<(), AnswerError> {
        let roots = IndexRoots::of_checkpoint(checkpoint.checkpoint())?;
        let proof = self.proof.decode()?;
        let key = crate_key(name);
        if self.versions.is_empty() {
            proof.verify(&roots.crates, &key, None)?;
        } else {
            let value: Hash = versions_value(&self.versions)?;
            proof.verify(&roots.crates, &key, Some(&value))?;
        }
        Ok(())
    }
}
