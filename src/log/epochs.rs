//! The committees of a stored log: the genesis moved along every committee change the log
//! holds, each change entry checked again with the previous committee's keys (as a light
//! client checks a chain link), so a store that was tampered with cannot name another
//! committee. The node serves the last; `fsck` checks each stored checkpoint against the
//! committee of its epoch.

use synchronicity_verify::epoch::ChangeEntry;

use super::{LogStore, StoreError};
use crate::committee::Committee;

/// One epoch of a stored log.
#[derive(Debug, Clone)]
pub struct StoredEpoch {
    /// Its committee.
    pub committee: Committee,
    /// The log size at which it began (0 for the genesis; else its handoff's size).
    pub start: u64,
    /// The size of its handoff checkpoint (the change entry that ended it is the last entry
    /// there); `None` for the current epoch.
    pub end: Option<u64>,
}

/// Why the committees could not be derived from the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EpochError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log's change entry for `epoch` is not a valid change of the previous committee.
    #[error("epoch {epoch}: the change entry at index {index} does not follow epoch {}: {reason}", epoch.saturating_sub(1))]
    BadChange {
        /// The epoch it would begin.
        epoch: u64,
        /// Its index in the log.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// Every epoch of `store`, from `genesis` (the committee file the node was started with).
pub fn stored_epochs(
    genesis: &Committee,
    store: &LogStore,
) -> Result<Vec<StoredEpoch>, EpochError> {
    let mut out = vec![StoredEpoch {
        committee: genesis.clone(),
        start: 0,
        end: None,
    }];
    for (epoch, index) in store.epochs()? {
        let bad = |reason: String| EpochError::BadChange {
            epoch,
            index,
            reason,
        };
        let current = &out[out.len() - 1].committee;
        let bytes = store.entry(index)?;
        let entry = ChangeEntry::decode(&bytes).map_err(|e| bad(e.to_string()))?;
        let next = entry.verify(current).map_err(|e| bad(e.to_string()))?;
        if next.epoch() != epoch {
            return Err(bad(format!("it begins epoch {}", next.epoch())));
        }
        let next = Committee::from_trust_root(next).map_err(|e| bad(e.to_string()))?;
        let handoff = index + 1;
        if let Some(last) = out.last_mut() {
            last.end = Some(handoff);
        }
        out.push(StoredEpoch {
            committee: next,
            start: handoff,
            end: None,
        });
    }
    Ok(out)
}
