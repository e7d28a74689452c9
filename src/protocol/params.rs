//! The protocol's rules in the units the state machine uses, derived from the committee's
//! `[protocol]` section (never from a node's local configuration): every member applies the
//! same rules to the same blocks.

use crate::committee::{Committee, ProtocolRules};

/// Deadlines (milliseconds of block time) and block limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolParams {
    /// From the request's block to the latest end of the commit phase.
    pub commit_window_ms: u64,
    /// From the start of the reveal phase to the decision.
    pub reveal_window_ms: u64,
    /// Least grace after the block that brought the t-th commitment.
    pub commit_grace_ms: u64,
    /// Largest encoded block (the proposer fills messages up to this, less a margin for
    /// the block's own fields).
    pub max_block_bytes: usize,
    /// Most messages in one block.
    pub max_block_messages: usize,
    /// How far a block's time may be ahead of a validator's clock.
    pub max_clock_drift_ms: u64,
    /// Most attempts of one request.
    pub max_attempts: u32,
    /// Least block time between an attempt's decision and the next attempt's request.
    pub attempt_spacing_ms: u64,
    /// Most open rounds one member's requests may hold.
    pub max_open_requests_per_member: usize,
    /// Most new requests in one block (`usize::MAX` when the rule is unset).
    pub max_requests_per_block: usize,
}

/// Room left in a block for its height, time and CBOR framing.
pub const BLOCK_OVERHEAD: usize = 1024;

impl ProtocolParams {
    /// The rules of `committee`.
    pub fn of(committee: &Committee) -> Self {
        Self::from_rules(committee.protocol())
    }

    /// The rules of a `[protocol]` section.
    pub fn from_rules(r: &ProtocolRules) -> Self {
        let ms = |s: u64| s.saturating_mul(1000);
        Self {
            commit_window_ms: ms(r.commit_window_secs),
            reveal_window_ms: ms(r.reveal_window_secs),
            commit_grace_ms: ms(r.commit_grace_secs),
            max_block_bytes: usize::try_from(r.max_block_bytes).unwrap_or(usize::MAX),
            max_block_messages: usize::try_from(r.max_block_messages).unwrap_or(usize::MAX),
            max_clock_drift_ms: r.max_clock_drift_ms,
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(u32::MAX),
            attempt_spacing_ms: ms(r.attempt_spacing_secs),
            max_open_requests_per_member: usize::try_from(r.max_open_requests_per_member)
                .unwrap_or(usize::MAX),
            max_requests_per_block: match r.max_requests_per_block {
                0 => usize::MAX,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
        }
    }
}

impl Default for ProtocolParams {
    /// The committee file's defaults: 30 minutes to build and commit, a 60 s least grace
    /// after the t-th commitment, 2 minutes to reveal.
    fn default() -> Self {
        Self::from_rules(&ProtocolRules::default())
    }
}
