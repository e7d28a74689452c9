//! Consensus: Malachite's Tendermint core with our types ([`context`]); the driver that owns
//! timers, the WAL and the network comes next (see `docs/notes/malachite-0.8.2.md`).

pub mod certificates;
pub mod context;
mod core;
#[cfg(test)]
mod tests;
pub mod wire;

pub use self::core::{Action, Core};
pub use context::{Address, Ctx, Height, Proposal, Validator, ValidatorSet, Value, ValueId, Vote};
