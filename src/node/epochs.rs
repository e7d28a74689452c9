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

/// Why a fetched handoff checkpoint was not stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandoffError {
    /// The request failed or the answer was not a chain.
    #[error("{0}")]
    Answer(String),
    /// The link's checkpoint does not verify, or is not the handoff of our log.
    #[error("{0}")]
    Checkpoint(String),
}

/// Asks `peer` for the chain link that ended epoch `ended` (its change entry under the
/// handoff checkpoint) and stores that checkpoint, once it verifies with this epoch's
/// committee, is exactly `handoff` long and is our log's (`put_checkpoint` compares the root).
/// For a member that applied the block ending the epoch from sync (it was down at the
/// boundary): the others cosigned the handoff and moved on, so gossip will not bring it.
pub(crate) async fn fetch_handoff(
    shared: &super::Shared,
    net: &synchronicity_net::NetworkHandle,
    peer: synchronicity_net::PeerId,
    ended: u64,
    handoff: u64,
) -> Result<(), HandoffError> {
    use super::wire::{LightRequest, LightResponse};
    // The links after `ended`: the first is the one that ended it.
    let req = LightRequest::Chain { after: ended };
    let bytes = net
        .request(peer, synchronicity_net::RequestKind::Light, req.to_bytes())
        .await
        .map_err(|e| HandoffError::Answer(e.to_string()))?;
    let links = match LightResponse::from_bytes(&bytes) {
        Ok(LightResponse::Chain { links, .. }) => links,
        Ok(other) => return Err(HandoffError::Answer(format!("answered {}", other.kind()))),
        Err(e) => return Err(HandoffError::Answer(e.to_string())),
    };
    let (_, text) = links
        .into_iter()
        .find(|(epoch, _)| *epoch == ended + 1)
        .ok_or_else(|| HandoffError::Answer(format!("no link for epoch {}", ended + 1)))?;
    let proof = synchronicity_verify::tlog::ProofFile::parse(&text)
        .map_err(|e| HandoffError::Checkpoint(e.to_string()))?;
    let cp = shared
        .verify_checkpoint(&proof.checkpoint)
        .map_err(|e| HandoffError::Checkpoint(e.to_string()))?;
    if cp.checkpoint().size != handoff {
        return Err(HandoffError::Checkpoint(format!(
            "size {}, not the handoff's {handoff}",
            cp.checkpoint().size
        )));
    }
    // A crash here: nothing stored; after the restart `backfill_handoffs` fetches it.
    shared
        .store
        .put_checkpoint(&cp)
        .map_err(|e| HandoffError::Checkpoint(e.to_string()))
}

/// How often [`backfill_handoffs`] asks again while a handoff checkpoint is missing.
const BACKFILL_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Fetches the handoff checkpoints of past epochs the store lacks (a follower, which never
/// waits for them; a member stopped while it waited), from connected members, until it holds
/// them all: so every node can serve the whole committee chain. Ends when none is missing.
pub(crate) async fn backfill_handoffs(
    shared: std::sync::Arc<super::Shared>,
    net: synchronicity_net::NetworkHandle,
) {
    loop {
        let Ok(epochs) = shared.store.epochs() else {
            return;
        };
        let missing: Vec<(u64, u64)> = epochs
            .iter()
            .map(|&(epoch, index)| (epoch - 1, index + 1))
            .filter(|&(_, handoff)| !shared.store.has_checkpoint_at(handoff))
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut peers: Vec<_> = net.connected_members().into_iter().collect();
        peers.sort();
        for (ended, handoff) in missing {
            for &peer in &peers {
                match fetch_handoff(&shared, &net, peer, ended, handoff).await {
                    Ok(()) => {
                        tracing::info!(
                            epoch = ended,
                            handoff,
                            "fetched a past epoch's handoff checkpoint"
                        );
                        break;
                    }
                    Err(e) => tracing::debug!(%peer, handoff, "handoff checkpoint: {e}"),
                }
            }
        }
        tokio::time::sleep(BACKFILL_EVERY).await;
    }
}
