//! Consensus: Malachite's Tendermint core (`arc-malachitebft-core-consensus` 0.8.2) with our
//! types ([`context`]), driven by a synchronous [`Core`] that turns effects into [`Action`]s,
//! and an [`actor`] that owns timers and the network.
//!
//! Quiet when idle: after a decision the next height starts only when the app has work, a
//! peer's message for it arrives, or the empty-height interval passes.
//!
//! Not yet (the consensus issue continues): the WAL (durable before broadcasting) and its
//! replay, catch-up of decided values with certificates over `/synchronicity/sync/1`, polka
//! and round certificates on the wire (see `docs/notes/malachite-0.8.2.md`).

pub mod actor;
pub mod certificates;
pub mod context;
mod core;
#[cfg(test)]
mod tests;
pub mod wire;

pub use self::core::{Action, Core};
pub use context::{Address, Ctx, Height, Proposal, Validator, ValidatorSet, Value, ValueId, Vote};
