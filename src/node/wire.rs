//! What nodes send each other outside consensus: gossip topics, cosignatures, the sync
//! protocol (members catch up on decided heights) and the light-client protocol (anyone
//! fetches proofs and checkpoints). All CBOR, bounded on decode.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};

/// Gossip topic of protocol messages (requests, commitments, reveals).
pub const MESSAGES_TOPIC: &str = "/synchronicity/messages/1";
/// Gossip topic of checkpoint cosignatures.
pub const COSIGN_TOPIC: &str = "/synchronicity/cosign/1";
/// Largest cosignature message.
pub const MAX_COSIGN: usize = 1024;
/// Largest sync or light request (a batch of [`MAX_PROOF_BATCH`] keys fits).
pub const MAX_REQUEST: usize = 16 * 1024;
/// Most keys in one [`LightRequest::Proofs`].
pub const MAX_PROOF_BATCH: usize = 128;
/// Largest text a blob answer carries (lockfiles are capped at 1 MiB on submission).
pub const MAX_BLOB: usize = crate::request::MAX_LOCKFILE_SIZE;
/// Largest light answer a client decodes (a blob, an artifact chunk, or a batch of
/// proofs of at most [`MAX_PROOF_BATCH`] × 4 KiB).
pub const MAX_LIGHT_RESPONSE: usize = MAX_BLOB + 64 * 1024;
/// Most decided heights in one sync response, and their byte budget.
pub const SYNC_BATCH: u32 = 64;
/// Byte budget of one sync response (below the network's response limit).
pub const SYNC_BYTES: usize = 12 * 1024 * 1024;

/// A member's BLS signature over the checkpoint body of (size, root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    #[serde(with = "serde_bytes")]
    pub root: Vec<u8>,
    /// BLS signature over `Checkpoint::new(origin, size, root).to_body()`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The member's Ed25519 (identity key) signature over the same body: its signed-note
    /// line on the checkpoint, key name `<origin>/<member name>` (empty: none).
    #[serde(default, with = "serde_bytes")]
    pub ed25519: Vec<u8>,
}

/// A request on `/synchronicity/sync/1` (members only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Decided heights from `from` on (at most `max`).
    Decided {
        /// First height wanted.
        from: u64,
        /// Most records wanted.
        max: u32,
    },
}

/// The answer to [`SyncRequest::Decided`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Consecutive decided records from the requested height (may be empty).
    pub records: Vec<serde_bytes::ByteBuf>,
    /// The peer's latest cosigned checkpoint (note text).
    pub checkpoint: Option<String>,
    /// The peer's last applied height.
    pub applied: u64,
}

/// A request on `/synchronicity/proof/2` (anyone, rate limited).
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
    /// Up to [`super::artifacts::MAX_CHUNK`] bytes of the artifact with this sha256 from
    /// `offset` (a transfer resumes at any offset, from any member).
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
}

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
}

/// Encodes any of these messages.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec::to_vec(v)
}

/// Decodes one of these messages within `max` bytes.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    codec::from_slice(bytes, max)
}
