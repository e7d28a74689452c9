//! The committee file's TOML shape (`committee.toml`) and a member's public entry
//! (`member.toml` in a node directory). Plain data: validation lives in [`super::Committee`].

use serde::{Deserialize, Serialize};

/// One member as written in TOML. Keys and proofs are lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// Human-readable name, unique in the committee.
    pub name: String,
    /// libp2p peer id (base58), derived from the member's Ed25519 key.
    pub peer_id: String,
    /// 48-byte compressed BLS12-381 public key, hex.
    pub bls_public_key: String,
    /// 96-byte proof of possession of the BLS key, hex.
    pub bls_proof_of_possession: String,
    /// Multiaddresses where the member listens.
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// The pinned build environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildEnvironment {
    /// Rust toolchain version every member builds with, e.g. `1.95.0`.
    pub toolchain: String,
    /// Target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: String,
}

/// The whole committee file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitteeFile {
    /// The log's name (a schema-less URL); first line of every checkpoint.
    pub origin: String,
    /// Consensus chain id (domain separation between groups). Defaults to the origin.
    pub chain_id: String,
    /// Signatures needed for a verdict or a cosigned checkpoint.
    pub threshold: usize,
    /// Toolchain and target.
    pub build: BuildEnvironment,
    /// Members in committee order (bitmap positions).
    pub members: Vec<MemberEntry>,
}
