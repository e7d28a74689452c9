//! The transparency log: the formats and the Merkle math come from
//! `synchronicity-verify`'s `tlog` (re-exported here), the durable store is ours.
//!
//! - [`merkle`]: pure tree math over the [`HashReader`] trait (tlog style).
//! - [`Checkpoint`], [`SignedNote`], [`CosignedCheckpoint`]: C2SP tlog-checkpoint and
//!   signed-note, with the committee's BLS threshold signature line.
//! - [`ProofFile`]: C2SP tlog-proof; [`ConsistencyProof`]: tlog-witness body format.
//! - [`LogStore`]: the durable store on redb; [`fsck`]: its checker; [`LookupKey`]: which
//!   entry answers `crate@version` (the default variant) or a request id; the index
//!   (`IndexSnapshot`): every entry of a `crate@version`, proven, at a checkpoint's size.

mod epochs;
mod fsck;
#[doc(hidden)]
pub mod index;
mod lookup;
mod store;
pub mod tiles;
mod tiles_dir;

pub use epochs::{EpochError, StoredEpoch, stored_epochs};
pub use fsck::{FsckError, FsckReport, fsck};
pub use index::{IndexSnapshot, MAX_LAG as INDEX_MAX_LAG, VariantsAt};
pub use lookup::{LookupKey, choose_default};
pub use store::{Appended, Height, LogStore, NewEntry, RoundRow, STORE_FILE, StoreError};
pub use synchronicity_verify::tlog::*;
pub use tiles_dir::{TilesDir, TilesDirError};
