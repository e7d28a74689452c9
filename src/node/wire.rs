//! What nodes send each other outside consensus: gossip topics, cosignatures and the sync
//! protocol (members catch up on decided heights). All CBOR, bounded on decode. The light
//! protocol (anyone fetches proofs and checkpoints) is `synchronicity-light`'s; its
//! messages are re-exported here for the node that serves them.

use serde::{Deserialize, Serialize};
pub use synchronicity_light::{
    LightRequest, LightResponse, MAX_BLOB, MAX_LIGHT_RESPONSE, MAX_PROOF_BATCH,
};

use crate::codec::{self, CodecError};

/// Gossip topic of protocol messages (requests, commitments, reveals).
pub const MESSAGES_TOPIC: &str = "/synchronicity/messages/1";
/// Gossip topic of checkpoint cosignatures.
pub const COSIGN_TOPIC: &str = "/synchronicity/cosign/1";
/// Largest cosignature message.
pub const MAX_COSIGN: usize = 1024;
/// Largest sync or light request (the light protocol's bound; a sync request is a few bytes).
pub const MAX_REQUEST: usize = synchronicity_light::MAX_LIGHT_REQUEST;
// A blob answer carries any lockfile a request may pin.
const _: () = assert!(MAX_BLOB == crate::request::MAX_LOCKFILE_SIZE);
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

/// Encodes any of these messages.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec::to_vec(v)
}

/// Decodes one of these messages within `max` bytes.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    codec::from_slice(bytes, max)
}
