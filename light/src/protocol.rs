//! The light protocol's wire format: its name, its messages and their size bounds side by
//! side. Messages are CBOR ([`synchronicity_verify::codec`]), decoded within the bound of
//! their direction; the encoding of every message is fixed by its type definition below
//! (serde visits fields in declaration order), so these types ARE the protocol: renaming a
//! variant or reordering a field changes the wire (the golden tests in `tests.rs` say so).

use serde::{Deserialize, Serialize};
use synchronicity_verify::codec::{self, CodecError};
use synchronicity_verify::index::VariantsAnswer;

/// The protocol name, `/synchronicity/proof/2`: open to anyone, rate limited per peer. The
/// network layer registers it (its envelope bounds are `synchronicity_net::MAX_REQUEST_SIZE`
/// and `MAX_RESPONSE_SIZE`); the messages carried in that envelope are defined here.
pub use synchronicity_net::LIGHT_PROTOCOL;

/// Most keys in one [`LightRequest::Proofs`].
pub const MAX_PROOF_BATCH: usize = 128;
/// Largest light request a member decodes (a batch of [`MAX_PROOF_BATCH`] keys fits).
pub const MAX_LIGHT_REQUEST: usize = 16 * 1024;
/// Largest text a blob answer carries (lockfiles are capped at 1 MiB on submission; a
/// manifest is smaller).
pub const MAX_BLOB: usize = 1024 * 1024;
/// Largest light answer a client decodes (a blob, an artifact chunk, or a batch of
/// proofs of at most [`MAX_PROOF_BATCH`] × 4 KiB).
pub const MAX_LIGHT_RESPONSE: usize = MAX_BLOB + 64 * 1024;
/// Largest artifact chunk in one answer.
pub const MAX_CHUNK: usize = 512 << 10;
/// Largest artifact a member stores and a client accepts (a statically linked binary is
/// tens of MiB).
pub const MAX_ARTIFACT: u64 = 1 << 30;

const _: () = assert!(MAX_CHUNK + 1024 <= MAX_LIGHT_RESPONSE);

/// A request on [`LIGHT_PROTOCOL`] (anyone, rate limited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LightRequest {
    /// The proof file of the entry for `key` under the latest cosigned checkpoint: a
    /// request id in hex, or `crate@version` for its default variant.
    Proof {
        /// Lookup key.
        key: String,
    },
    /// A consistency proof between two sizes (both at most this member's log size).
    Consistency {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// A text an entry pins by sha256 (a lockfile or a manifest); at most
    /// [`MAX_BLOB`] bytes.
    Blob {
        /// Its sha256.
        #[serde(with = "serde_bytes")]
        sha256: Vec<u8>,
    },
    /// The latest cosigned checkpoint and, when `old_size` is given, a consistency proof
    /// from that size to it.
    Checkpoint {
        /// Size of the checkpoint the client remembers.
        old_size: Option<u64>,
    },
    /// Up to [`MAX_CHUNK`] bytes of the artifact with this sha256 from `offset` (a
    /// transfer resumes at any offset, from any member).
    Artifact {
        /// Its sha256.
        #[serde(with = "serde_bytes")]
        sha256: Vec<u8>,
        /// First byte wanted.
        offset: u64,
    },
    /// The proofs for up to [`MAX_PROOF_BATCH`] keys under ONE cosigned checkpoint.
    Proofs {
        /// Lookup keys (as in [`LightRequest::Proof`]).
        keys: Vec<String>,
    },
    /// The committee chain's links after epoch `after` (each a tlog-proof of a change entry
    /// under its handoff checkpoint; docs/formats.md, "Epochs"), as many as fit one answer.
    Chain {
        /// The last epoch the client holds (0: it holds only the genesis).
        after: u64,
    },
    /// For up to [`MAX_PROOF_BATCH`] `crate@version`s: every entry of each, proven complete
    /// by the index of ONE cosigned checkpoint (none: proven absent), and the proof file of
    /// the default variant the member chose (the client chooses again from the list).
    Lookups {
        /// `crate@version`s (each at most [`MAX_SPEC`] bytes).
        specs: Vec<String>,
    },
}

/// Longest `crate@version` a lookup names.
pub const MAX_SPEC: usize = 160;

/// The answer to a [`LightRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LightResponse {
    /// A proof file (tlog-proof text).
    Proof(String),
    /// A checkpoint note and the consistency proof hashes (empty without `old_size`).
    Checkpoint {
        /// Cosigned checkpoint note.
        note: String,
        /// Consistency proof from the requested old size.
        proof: Vec<serde_bytes::ByteBuf>,
    },
    /// Consistency proof hashes.
    Consistency(Vec<serde_bytes::ByteBuf>),
    /// A stored text (the client checks its sha256).
    Blob(serde_bytes::ByteBuf),
    /// Nothing found (one line saying what).
    NotFound(String),
    /// A piece of an artifact.
    Chunk {
        /// The artifact's size.
        total: u64,
        /// Where `data` starts.
        offset: u64,
        /// The bytes (empty at or past the end).
        data: serde_bytes::ByteBuf,
    },
    /// One answer per key, in order: a proof file, or why there is none.
    Proofs(Vec<Result<String, String>>),
    /// Chain links, in epoch order, and the member's latest epoch (more links follow when
    /// the last one given is older).
    Chain {
        /// The member's current epoch.
        latest: u64,
        /// `(epoch, tlog-proof text)` for epochs after the asked one.
        links: Vec<(u64, String)>,
    },
    /// Answers to [`LightRequest::Lookups`] under one checkpoint, in the order asked: the
    /// first ones if all would not fit one answer (the client asks again for the rest).
    Lookups {
        /// The cosigned checkpoint note (compact: the committee's threshold line).
        checkpoint: String,
        /// One per `crate@version`, in order; at least one.
        answers: Vec<LookupAnswer>,
    },
}

/// What the log holds for one `crate@version` (see [`LightRequest::Lookups`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupAnswer {
    /// Every entry, proven complete by the checkpoint's index.
    pub variants: VariantsAnswer,
    /// The proof file (tlog-proof text) of the default variant under the same checkpoint;
    /// `None` when no entry is the default variant.
    pub default_proof: Option<String>,
}

impl LightRequest {
    /// The request's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// Decodes a request of at most [`MAX_LIGHT_REQUEST`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::from_slice(bytes, MAX_LIGHT_REQUEST)
    }
}

impl LightResponse {
    /// The answer's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// Decodes an answer of at most [`MAX_LIGHT_RESPONSE`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::from_slice(bytes, MAX_LIGHT_RESPONSE)
    }

    /// What kind of answer this is, for a message about an unexpected one ("a proof", "an
    /// artifact chunk", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Proof(_) => "a proof",
            Self::Checkpoint { .. } => "a checkpoint",
            Self::Consistency(_) => "a consistency proof",
            Self::Blob(_) => "a blob",
            Self::NotFound(_) => "not found",
            Self::Chunk { .. } => "an artifact chunk",
            Self::Proofs(_) => "a batch of proofs",
            Self::Chain { .. } => "chain links",
            Self::Lookups { .. } => "lookup answers",
        }
    }
}
