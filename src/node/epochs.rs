//! Which committee a node serves: the genesis (the committee file it was started with) moved
//! along every committee change its log holds. Each change entry is checked again here with
//! the previous committee's keys, exactly as a light client checks a chain link, so a store
//! that was tampered with cannot hand the node another committee.
//!
//! A node restarts into a new epoch (`cli::node` re-executes itself once the block that
//! ended the epoch is durable and its handoff checkpoint is cosigned, or a bound has
//! passed): every part of the node (consensus, network, cosigning, answers) is started for
//! exactly one committee, the one this returns.

use crate::committee::Committee;
use crate::log::{EpochError, LogStore, stored_epochs};

/// The committee of the latest epoch in `store`, from `genesis` (the committee the node was
/// started with) and each change entry the store records, each verified with the previous
/// committee's keys ([`stored_epochs`]). `genesis` itself when the log holds no change.
pub fn current_committee(genesis: &Committee, store: &LogStore) -> Result<Committee, EpochError> {
    let mut epochs = stored_epochs(genesis, store)?;
    Ok(epochs.pop().expect("the genesis at least").committee)
}

/// The consensus WAL's file name in epoch `epoch`: a new epoch never replays the votes of
/// the previous one (they are signed for another committee).
pub fn wal_file(epoch: u64) -> String {
    if epoch == 0 {
        "consensus.wal".into()
    } else {
        format!("consensus.e{epoch}.wal")
    }
}
