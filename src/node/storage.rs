//! The node's durable state behind one trait: every write the node makes to `DIR/log/log.redb`
//! (a decided height) and `DIR/rounds.redb` (its own rounds and submitted requests) goes
//! through [`NodeStorage`], so a test can fail any one of them ([`fault`], test only) and
//! restart from the same directory. The third durable file, `DIR/consensus.wal`, is the
//! consensus actor's own (synced before any vote leaves; see `consensus::wal`).
//!
//! # The crash sequence of one round, at this node
//!
//! Numbered where each write happens (comments `crash point N` at the call sites). What a
//! restart does is decided by [`super::lifecycle::next`] from the row it finds and the
//! chain's status of the request.
//!
//! 1. [`NodeStorage::save_round`] of `Submitted` (builder_driver.rs, `submit`): durable,
//!    before the submitter gets the id. Before: no row, no id given out (the submitter
//!    retries). After: the start publishes it again until the group orders it.
//! 2. [`NodeStorage::apply_height`] (app.rs, `NodeApp::apply`): each decided height, ONE
//!    transaction. Before: the previous height is what a restart finds, consensus decides or
//!    fetches this one again. After: the height is applied; the steps it would have raised
//!    are re-derived from the restored open rounds (`BuilderDriver::resume`).
//! 3. [`NodeStorage::forget_submitted`] (builder_driver.rs, `advance`, step `Build`): the
//!    group ordered it. Not durable: a row left by a crash is still `Submitted`, and the
//!    restart builds (the same step) or forgets it.
//! 4. [`NodeStorage::save_round`] of `Built` (builder_driver.rs, `on_built`): durable,
//!    BEFORE the commitment is published. Before: no row, no commitment left: the restart
//!    builds again (a new salt, still ONE commitment). After: the restart commits with the
//!    saved outcome and salt (the same commitment again, never a second one).
//! 5. [`NodeStorage::save_round`] of `Committed` (builder_driver.rs, `advance`, step
//!    `Commit`), after the commitment is published. Not durable: a crash that loses it
//!    leaves `Built`, whose next step publishes the same commitment again.
//! 6. [`NodeStorage::save_round`] of `Revealed` (builder_driver.rs, `advance`, step
//!    `Reveal`), after the reveal is published. Not durable: a crash that loses it leaves
//!    `Committed`, whose next step publishes the same reveal again.
//! 7. [`NodeStorage::forget_round`] (builder_driver.rs, `advance`, step `Forget`): the
//!    request is decided. Not durable: a row left by a crash is found decided at the next
//!    start and forgotten then.
//!
//! Point 2 recurs for every height (the one ordering the request, the one ordering the
//! commitments, the one deciding the entry).

use std::path::Path;

use super::own::{OwnRounds, OwnRoundsError, OwnState};
use crate::log::{Appended, Height, LogStore, NewEntry, StoreError};

/// Why a durable write failed. The caller stops the node (fail-stop) or refuses the
/// request: whether the write reached the disk is not known, and recovery handles both
/// (see the module doc).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The log store (`log.redb`) refused or failed.
    #[error(transparent)]
    Log(#[from] StoreError),
    /// The rounds database (`rounds.redb`) refused or failed.
    #[error(transparent)]
    Rounds(#[from] OwnRoundsError),
}

/// The node's durable state.
///
/// Contract, for every implementation:
/// - A call that returns `Ok` has made its write durable, where the method says it is: a
///   crash at any later moment finds it. The writes that are not durable (the `forget_*`
///   calls, and `save_round` of `Committed` or `Revealed`) may be lost by a crash; what a
///   restart finds is then the state before them, whose next step repeats them.
/// - A call that returns `Err`, or a crash during a call, may have written or not; what a
///   restart finds is either the state before the call or after it, never a part of it
///   (each write is one redb transaction).
/// - Reads see every write that returned (and may see a non-durable one a crash will lose).
pub(crate) trait NodeStorage: Send + Sync {
    /// Applies a decided height to `log` in ONE durable transaction
    /// ([`LogStore::append_decided`]): its entries with their index keys and pinned texts,
    /// the block with its certificate, the open-round rows it changed, the applied height.
    /// Idempotent per height. `log` is the store the node reads from (its owner keeps it;
    /// this seam owns the write).
    fn apply_height(
        &self,
        log: &LogStore,
        entries: &[NewEntry],
        height: Height<'_>,
    ) -> Result<Appended, StorageError>;

    /// Records `state` as what we hold of request `id`. Durable for `Submitted` (called
    /// before the submitter gets the id; refused beyond [`super::own::MAX_SUBMITTED`]
    /// waiting) and `Built` (called BEFORE the commitment is published); NOT durable for
    /// `Committed` and `Revealed` (a lost one is repeated with the same message).
    fn save_round(&self, id: &[u8; 32], state: &OwnState) -> Result<(), StorageError>;

    /// What we hold of `id`, if anything (a row that does not decode counts as none).
    fn round(&self, id: &[u8; 32]) -> Option<OwnState>;

    /// Every request we hold a row of.
    fn round_ids(&self) -> Vec<[u8; 32]>;

    /// Forgets everything we hold of `id` (its request is decided). NOT durable: a row a
    /// crash leaves is found decided at the next start and forgotten then.
    fn forget_round(&self, id: &[u8; 32]);

    /// Forgets the saved submission of `id` (the group ordered it). NOT durable: a row a
    /// crash leaves is found ordered at the next start and forgotten then.
    fn forget_submitted(&self, id: &[u8; 32]);
}

/// The product's implementation: the log's one-transaction append, and `rounds.redb`.
#[derive(Debug)]
pub(crate) struct RedbStorage {
    rounds: OwnRounds,
}

impl RedbStorage {
    /// Opens (or creates) the rounds database at `rounds_path` (`DIR/rounds.redb`).
    pub(crate) fn open(rounds_path: &Path) -> Result<Self, OwnRoundsError> {
        Ok(Self {
            rounds: OwnRounds::open(rounds_path)?,
        })
    }
}

impl NodeStorage for RedbStorage {
    fn apply_height(
        &self,
        log: &LogStore,
        entries: &[NewEntry],
        height: Height<'_>,
    ) -> Result<Appended, StorageError> {
        Ok(log.append_decided(entries, height)?)
    }

    fn save_round(&self, id: &[u8; 32], state: &OwnState) -> Result<(), StorageError> {
        Ok(self.rounds.save(id, state)?)
    }

    fn round(&self, id: &[u8; 32]) -> Option<OwnState> {
        self.rounds.state(id)
    }

    fn round_ids(&self) -> Vec<[u8; 32]> {
        self.rounds.ids()
    }

    fn forget_round(&self, id: &[u8; 32]) {
        self.rounds.remove(id)
    }

    fn forget_submitted(&self, id: &[u8; 32]) {
        self.rounds.remove_submitted(id)
    }
}

#[cfg(test)]
pub(crate) mod fault;
#[cfg(test)]
mod tests;
