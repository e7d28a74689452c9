//! Catch-up over `/synchronicity/sync/1`: fetch decided heights (block + commit
//! certificate) from a member when we lag, hand them to the actor (which applies them only
//! after their certificate verifies, in height order), and serve our own to others.

use std::time::Duration;

use synchronicity_net::{PeerId, RequestKind};
use tokio::time::Instant;

use super::app::Shared;
use super::run::NodeLoop;
use super::wire::{SYNC_BATCH, SYNC_BYTES, SyncRequest, SyncResponse, decode, encode};
use crate::consensus::actor::ActorInput;
use crate::consensus::record::DecidedRecord;
use crate::log::CosignedCheckpoint;

/// Least time between two sync requests.
const SYNC_SPACING: Duration = Duration::from_millis(300);

impl NodeLoop {
    /// Asks a member (the given one, or the next connected) for decided heights.
    pub(crate) fn sync_from(&mut self, from: u64, peer: Option<PeerId>) {
        if self.sync_inflight || self.last_sync.is_some_and(|t| t.elapsed() < SYNC_SPACING) {
            return;
        }
        let peer = match peer {
            Some(p) => p,
            None => {
                let mut connected: Vec<PeerId> = self.net.connected_members().into_iter().collect();
                connected.sort();
                if connected.is_empty() {
                    return;
                }
                self.sync_turn += 1;
                connected[self.sync_turn % connected.len()]
            }
        };
        self.sync_inflight = true;
        self.last_sync = Some(Instant::now());
        let (net, tx) = (self.net.clone(), self.synced_tx.clone());
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

    pub(crate) fn on_synced(&mut self, resp: Option<SyncResponse>) {
        self.sync_inflight = false;
        let Some(resp) = resp else { return };
        let n = resp.records.len();
        let mut last = None;
        for raw in resp.records {
            match DecidedRecord::decode(&raw) {
                Ok(r) => {
                    last = Some(r.height().0);
                    let _ = self.actor.try_send(ActorInput::Decided {
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
        if let Some(note) = resp.checkpoint {
            self.fetched_checkpoint = Some(note);
            self.store_fetched_checkpoint();
        }
        // More to fetch: ask again right away.
        if n as u32 == SYNC_BATCH
            && let Some(next) = last.and_then(|h| h.checked_add(1))
        {
            self.last_sync = None;
            self.sync_from(next, None);
        }
    }

    pub(crate) fn store_fetched_checkpoint(&mut self) {
        let Some(note) = &self.fetched_checkpoint else {
            return;
        };
        let cp = match CosignedCheckpoint::verify(note, &self.shared.committee) {
            Ok(cp) => cp,
            Err(e) => {
                tracing::warn!("fetched checkpoint refused: {e}");
                self.fetched_checkpoint = None;
                return;
            }
        };
        let size = cp.checkpoint().size;
        if self.shared.store.size().unwrap_or(0) < size {
            return; // kept until our log reaches it
        }
        if self
            .shared
            .store
            .checkpoint_at(size)
            .ok()
            .flatten()
            .is_none()
            && let Err(e) = self.shared.store.put_checkpoint(&cp)
        {
            match e {
                crate::log::StoreError::Db(_) => self
                    .shared
                    .halt(format!("cannot store a fetched checkpoint: {e}")),
                e => tracing::error!("fetched checkpoint does not match our log: {e}"),
            }
        }
        self.fetched_checkpoint = None;
    }
}

/// Our decided heights from `from` on (at most `max`, [`SYNC_BATCH`] and [`SYNC_BYTES`]),
/// with our latest checkpoint: the answer to a member's sync request. Reads the store, so
/// it runs on a blocking thread, never on the node's loop.
pub(crate) fn serve(shared: &Shared, from: u64, max: u32) -> SyncResponse {
    let applied = shared.lock().height;
    let mut records = Vec::new();
    let mut bytes = 0;
    let mut h = from.max(1);
    while h <= applied && records.len() < max.min(SYNC_BATCH) as usize {
        match shared.store.decided_record(h) {
            Ok(Some(r)) if bytes + r.len() <= SYNC_BYTES => {
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
