//! Catch-up over `/synchronicity/sync/1`: fetch decided heights (block + commit
//! certificate) from a member when we lag, hand them to the actor (which applies them only
//! after their certificate verifies, in height order), and serve our own to others.

use std::time::Duration;

use synchronicity_net::{PeerId, RequestKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::outbox::Outbox;
use super::shared::Shared;
use super::wire::{SYNC_BATCH, SYNC_BYTES, SyncRequest, SyncResponse, decode, encode};
use crate::consensus::actor::ActorInput;
use crate::consensus::record::DecidedRecord;

/// Least time between two sync requests.
const SYNC_SPACING: Duration = Duration::from_millis(300);

/// Our side of catch-up: at most one sync request in flight, at least [`SYNC_SPACING`]
/// apart, to the connected members in turn. Answers come back on the loop's `synced`
/// channel (unbounded: at most one answer is ever in flight).
pub(crate) struct Catchup {
    inflight: bool,
    last_sync: Option<Instant>,
    /// Which connected member is asked next.
    turn: usize,
    synced_tx: mpsc::UnboundedSender<Option<SyncResponse>>,
}

impl Catchup {
    /// Starts asking at member `turn` (our own position spreads members' first requests);
    /// answers go to `synced_tx`.
    pub(crate) fn new(turn: usize, synced_tx: mpsc::UnboundedSender<Option<SyncResponse>>) -> Self {
        Self {
            inflight: false,
            last_sync: None,
            turn,
            synced_tx,
        }
    }

    /// Asks a member (the given one, or the next connected) for decided heights.
    pub(crate) fn sync_from(&mut self, from: u64, peer: Option<PeerId>, outbox: &Outbox) {
        if self.inflight || self.last_sync.is_some_and(|t| t.elapsed() < SYNC_SPACING) {
            return;
        }
        let net = outbox.net();
        let peer = match peer {
            Some(p) => p,
            None => {
                let mut connected: Vec<PeerId> = net.connected_members().into_iter().collect();
                connected.sort();
                if connected.is_empty() {
                    return;
                }
                self.turn += 1;
                connected[self.turn % connected.len()]
            }
        };
        self.inflight = true;
        self.last_sync = Some(Instant::now());
        let (net, tx) = (net.clone(), self.synced_tx.clone());
        let req = encode(&SyncRequest::Decided {
            from,
            max: SYNC_BATCH,
        });
        tokio::spawn(async move {
            let resp = match net.request(peer, RequestKind::Sync, req).await {
                Ok(bytes) => decode::<SyncResponse>(&bytes, SYNC_BYTES + 1024 * 1024).ok(),
                Err(e) => {
                    tracing::debug!(%peer, "sync request: {e}");
                    None
                }
            };
            let _ = tx.send(resp);
        });
    }

    /// An answer (or `None`: the request failed): its records go to the actor (which
    /// applies each after its certificate verifies); asks again at once if the batch was
    /// full. Returns the peer's cosigned checkpoint note, for the cosigning part.
    pub(crate) fn on_synced(
        &mut self,
        resp: Option<SyncResponse>,
        outbox: &Outbox,
    ) -> Option<String> {
        self.inflight = false;
        let resp = resp?;
        let n = resp.records.len();
        let mut last = None;
        for raw in resp.records {
            match DecidedRecord::decode(&raw) {
                Ok(r) => {
                    last = Some(r.height().0);
                    outbox.to_actor(ActorInput::Decided {
                        height: r.height(),
                        value: r.value,
                        certificate: r.certificate,
                    });
                }
                Err(e) => {
                    tracing::debug!("sync record refused: {e}");
                    break;
                }
            }
        }
        // More to fetch: ask again right away.
        if n as u32 == SYNC_BATCH
            && let Some(next) = last.and_then(|h| h.checked_add(1))
        {
            self.last_sync = None;
            self.sync_from(next, None, outbox);
        }
        resp.checkpoint
    }
}

/// Our decided heights from `from` on (at most `max`, [`SYNC_BATCH`] and `bytes`, but always
/// the first: a block is at most the rule book's `max_block_bytes`), with our latest
/// checkpoint: the answer to a sync request ([`SYNC_BYTES`] for a member's, less for a
/// non-member's). Reads the store, so it runs on a blocking thread, never on the node's loop.
pub(crate) fn serve(shared: &Shared, from: u64, max: u32, bytes_cap: usize) -> SyncResponse {
    let applied = shared.view().height;
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut h = from.max(1);
    while h <= applied && records.len() < max.min(SYNC_BATCH) as usize {
        match shared.store.decided_record(h) {
            Ok(Some(r)) if records.is_empty() || bytes + r.len() <= bytes_cap.min(SYNC_BYTES) => {
                bytes += r.len();
                records.push(serde_bytes::ByteBuf::from(r));
            }
            _ => break,
        }
        h += 1;
    }
    SyncResponse {
        records,
        checkpoint: shared.store.latest_checkpoint().ok().flatten(),
        applied,
    }
}
