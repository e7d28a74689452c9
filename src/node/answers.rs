//! Answers to members' sync requests and light clients' requests, off the node loop: each
//! answer reads the store on a blocking thread and is handed to the network from its own
//! task, so the loop that reads peers' input never waits for either. This part owns the
//! permits that bound them: at most [`SYNC_ANSWERS`] (and [`FOLLOWER_SYNC_ANSWERS`] for
//! non-members) and [`LIGHT_ANSWERS`] in flight; a
//! request that finds none is refused as busy at once (the loop never waits), so no peer
//! can hold more than these bounds of memory and blocking threads, whatever libp2p's
//! per-connection stream limits allow. What an answer says is in [`super::sync::serve`] and
//! [`super::light::serve`]; both read the store and the published view, never a lock.

use std::sync::Arc;

use synchronicity_net::{InboundRequest, RequestKind};
use tokio::sync::Semaphore;

use super::shared::Shared;
use super::wire::{LightRequest, MAX_REQUEST, SyncRequest, decode, encode};

/// Most members' sync requests answered at once (each reads up to a 12 MiB batch).
const SYNC_ANSWERS: usize = 8;
/// Most light-client requests answered at once (proofs, 512 KiB artifact chunks).
const LIGHT_ANSWERS: usize = 32;
/// Most non-members' sync requests answered at once (joining nodes that follow the log; the
/// network rate-limits each like a light client). Their own budget: however many ask, the
/// members' catch-up keeps all of [`SYNC_ANSWERS`].
const FOLLOWER_SYNC_ANSWERS: usize = 2;
/// Most bytes of one answer to a non-member's sync request (a member's: 12 MiB), so an
/// answer to anyone costs at most a few light answers' worth (one block always fits).
const FOLLOWER_SYNC_BYTES: usize = 2 * 1024 * 1024;

/// The permits for answers in flight, per protocol (see the module doc).
pub(crate) struct Answers {
    shared: Arc<Shared>,
    sync: Arc<Semaphore>,
    follower_sync: Arc<Semaphore>,
    light: Arc<Semaphore>,
}

impl Answers {
    /// Answers from `shared`'s store, within the bounds above.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            sync: Arc::new(Semaphore::new(SYNC_ANSWERS)),
            follower_sync: Arc::new(Semaphore::new(FOLLOWER_SYNC_ANSWERS)),
            light: Arc::new(Semaphore::new(LIGHT_ANSWERS)),
        }
    }

    /// Answers `r` from its own task, or refuses it as busy; never waits.
    pub(crate) fn on_request(&self, r: InboundRequest) {
        let member = self.shared.committee.index_of_peer(&r.peer).is_some();
        let (permits, sync_bytes) = match r.kind {
            RequestKind::Sync if member => (&self.sync, super::wire::SYNC_BYTES),
            RequestKind::Sync => (&self.follower_sync, FOLLOWER_SYNC_BYTES),
            RequestKind::Light => (&self.light, 0),
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(r.refuse("busy: too many answers in flight".to_string()));
            return;
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = match r.kind {
                RequestKind::Sync => match decode::<SyncRequest>(&r.data, MAX_REQUEST) {
                    Ok(SyncRequest::Decided { from, max }) => {
                        tokio::task::spawn_blocking(move || {
                            encode(&super::sync::serve(&shared, from, max, sync_bytes))
                        })
                        .await
                    }
                    Err(e) => return r.refuse(format!("bad sync request: {e}")).await,
                },
                RequestKind::Light => match decode::<LightRequest>(&r.data, MAX_REQUEST) {
                    Ok(req) => {
                        tokio::task::spawn_blocking(move || {
                            encode(&super::light::serve(&shared, &req))
                        })
                        .await
                    }
                    Err(e) => return r.refuse(format!("bad request: {e}")).await,
                },
            };
            match answer {
                Ok(bytes) => r.respond(bytes).await,
                Err(_) => r.refuse("the answer failed".to_string()).await,
            }
        });
    }
}
