//! Consensus: Malachite's Tendermint core (`arc-malachitebft-core-consensus` 0.8.2) with our
//! types ([`context`]), driven by a synchronous [`Core`] that turns effects into [`Action`]s,
//! and an [`actor`] that owns timers and the network. Our frames leave through the
//! [`OutgoingFrames`] seam ([`HonestFrames`] in a product node; a test member's may lie).
//!
//! Quiet when idle: after a decision the next height starts only when the app has work, a
//! peer's message for it arrives, or the empty-height interval passes.
//!
//! Crash safety: the [`wal`] holds the inputs of the height in progress and is fsynced
//! before anything is broadcast; decided heights are applied durably by the app before the
//! next height starts. Catch-up of decided heights (with commit certificates) is the
//! node's sync protocol; [`Core::verify_decided`] checks what a peer sends.

pub mod actor;
pub mod certificates;
pub mod context;
mod core;
pub mod outgoing;
pub mod record;
#[cfg(test)]
mod tests;
pub mod wal;
pub mod wire;

pub use self::core::{Action, Core, MAX_ROUND_AHEAD};
pub use context::{Address, Ctx, Height, Proposal, Validator, ValidatorSet, Value, ValueId, Vote};
pub use outgoing::{HonestFrames, OutgoingFrames};
