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
    /// The log's name (a schema-less URL); first line of every checkpoint. The same in every
    /// epoch: the log's identity is its origin, not its key.
    pub origin: String,
    /// The committee's epoch: 0 for the genesis, `e + 1` for the committee that follows
    /// epoch `e` (absent = 0, so a genesis file written before epochs reads unchanged).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// The previous epoch's committee digest, lowercase hex: absent in the genesis,
    /// required in every later epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Consensus chain id (domain separation between groups). Defaults to the origin.
    pub chain_id: String,
    /// Signatures needed for a verdict or a cosigned checkpoint.
    pub threshold: usize,
    /// Toolchain and target.
    pub build: BuildEnvironment,
    /// The protocol's rules (defaults when absent).
    #[serde(default)]
    pub protocol: ProtocolRules,
    /// Members in committee order (bitmap positions).
    pub members: Vec<MemberEntry>,
}

/// The group's rule book (`[protocol]` in the committee file): every value that decides
/// whether a block is valid or what applying it does. Covered by the committee digest, so
/// two committees that differ in a rule have different key IDs; never in a node's local
/// configuration. Absent keys take the defaults below (the digest covers the values, not
/// the text, so writing a default out changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolRules {
    /// From the request's block to the latest end of the commit phase (default 1800).
    pub commit_window_secs: u64,
    /// From the start of the reveal phase to the decision (default 120).
    pub reveal_window_secs: u64,
    /// Least time the commit phase stays open after the block that brought the t-th
    /// commitment (default 60): the grace is the larger of this and the time the fastest t
    /// needed, so slower honest builders get as long again.
    pub commit_grace_secs: u64,
    /// Largest sum of encoded message sizes in one block (default 3 MiB).
    pub max_block_bytes: u64,
    /// Largest number of messages in one block (default 10,000).
    pub max_block_messages: u64,
    /// How far a block's time may be ahead of a validator's clock (default 2,000 ms).
    pub max_clock_drift_ms: u64,
    /// Most attempts of one request (same pins); a new attempt may be ordered only after the
    /// previous one was decided without a reproduced verdict (default 3).
    pub max_attempts: u64,
    /// Least block time between an attempt's decision and the next attempt's request
    /// (default 600).
    pub attempt_spacing_secs: u64,
    /// Most open rounds (requests ordered and not yet decided) that one member's requests
    /// may hold at once (default 256): a block that orders one more is invalid, and the
    /// member's further requests wait until one of its rounds is decided. Every request
    /// costs every builder a build; this bounds what one member can make the group do.
    pub max_open_requests_per_member: u64,
    /// Most new requests one block may order (default 0: no bound of its own, only
    /// `max_block_messages`). A block that orders more is invalid; the proposer leaves the
    /// rest for later blocks. With `max_open_requests_per_member` this is the rate at which a
    /// group takes on work: a member's backlog (`[follow] list`) or a burst of submits
    /// enters the group a few requests a block, never all at once.
    pub max_requests_per_block: u64,
}

impl Default for ProtocolRules {
    fn default() -> Self {
        Self {
            commit_window_secs: 1800,
            reveal_window_secs: 120,
            commit_grace_secs: 60,
            max_block_bytes: 3 * 1024 * 1024,
            max_block_messages: 10_000,
            max_clock_drift_ms: 2_000,
            max_attempts: 3,
            attempt_spacing_secs: 600,
            max_open_requests_per_member: 256,
            max_requests_per_block: 0,
        }
    }
}

impl ProtocolRules {
    /// Largest `max_block_bytes` (a proposal must fit a 4 MiB consensus frame).
    pub const MAX_BLOCK_BYTES: u64 = 3 * 1024 * 1024 + 512 * 1024;

    /// `(name, value)` of the rules every rule book encodes, in the committee digest's order
    /// (the rules added later, encoded only when set, are [`Self::extensions`]).
    pub fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("commit_window_secs", self.commit_window_secs),
            ("reveal_window_secs", self.reveal_window_secs),
            ("commit_grace_secs", self.commit_grace_secs),
            ("max_block_bytes", self.max_block_bytes),
            ("max_block_messages", self.max_block_messages),
            ("max_clock_drift_ms", self.max_clock_drift_ms),
            ("max_attempts", self.max_attempts),
            ("attempt_spacing_secs", self.attempt_spacing_secs),
            (
                "max_open_requests_per_member",
                self.max_open_requests_per_member,
            ),
        ]
    }

    /// `(name, value)` of the rules added after the v2 rule book, in the digest's order. Each
    /// is encoded only when it is not 0 (its "unset" value), so a committee that does not
    /// use one keeps the digest and key ID it had before the rule existed.
    pub fn extensions(&self) -> [(&'static str, u64); 1] {
        [("max_requests_per_block", self.max_requests_per_block)]
    }

    /// Why these rules cannot run a group, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let day = 24 * 3600;
        for (name, v, lo, hi) in [
            ("commit_window_secs", self.commit_window_secs, 1, 7 * day),
            ("reveal_window_secs", self.reveal_window_secs, 1, day),
            ("commit_grace_secs", self.commit_grace_secs, 0, 7 * day),
            (
                "max_block_bytes",
                self.max_block_bytes,
                64 * 1024,
                Self::MAX_BLOCK_BYTES,
            ),
            ("max_block_messages", self.max_block_messages, 16, 100_000),
            ("max_clock_drift_ms", self.max_clock_drift_ms, 100, 60_000),
            ("max_attempts", self.max_attempts, 1, 100),
            (
                "attempt_spacing_secs",
                self.attempt_spacing_secs,
                0,
                30 * day,
            ),
            (
                "max_open_requests_per_member",
                self.max_open_requests_per_member,
                1,
                100_000,
            ),
            (
                "max_requests_per_block",
                self.max_requests_per_block,
                0,
                100_000,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(format!(
                    "[protocol] {name} = {v} is out of range {lo}..={hi}"
                ));
            }
        }
        if self.commit_grace_secs > self.commit_window_secs {
            return Err(format!(
                "[protocol] commit_grace_secs = {} exceeds commit_window_secs = {}",
                self.commit_grace_secs, self.commit_window_secs
            ));
        }
        Ok(())
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
