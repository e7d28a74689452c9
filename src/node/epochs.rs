//! Which committee a node serves: the genesis (the committee file it was started with) moved
//! along every committee change its log holds (`log::stored_epochs`, each change entry checked
//! again with the previous committee's keys, as a light client checks a chain link, so a
//! store that was tampered with cannot hand the node another committee).
//!
//! A node restarts into a new epoch (`cli::node` re-executes itself once the block that
//! ended the epoch is durable and its handoff checkpoint is cosigned, or a bound has
//! passed): every part of the node (consensus, network, cosigning, answers) is started for
//! exactly one committee, the last of `log::stored_epochs`; the earlier ones only verify
//! the checkpoints they signed.

/// The consensus WAL's file name in epoch `epoch`: a new epoch never replays the votes of
/// the previous one (they are signed for another committee).
pub fn wal_file(epoch: u64) -> String {
    if epoch == 0 {
        "consensus.wal".into()
    } else {
        format!("consensus.e{epoch}.wal")
    }
}
