//! The node's event loop: the I/O shell around the pure protocol. It validates gossip into
//! the mempool, feeds consensus frames to the actor, runs builds and publishes commitments
//! and reveals, cosigns checkpoints, answers sync and light-client requests, and fetches
//! decided heights when it lags.

use std::sync::Arc;
use std::time::Duration;

use synchronicity_net::{InboundRequest, NetEvent, NetworkHandle, PeerId, RequestKind, Validation};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::app::{AppEvent, Shared, now_ms};
use super::cosign::{self, Collector};
use super::outgoing::OutgoingMessages;
use super::own::OwnRounds;
use super::service::BuildService;
use super::wire::{
    COSIGN_TOPIC, Cosignature, LightRequest, MAX_COSIGN, MAX_REQUEST, MESSAGES_TOPIC, SyncRequest,
    SyncResponse, decode, encode,
};
use crate::builder::Outcome;
use crate::consensus::actor::ActorInput;
use crate::crypto::{BlsSecretKey, NodeIdentity};
use crate::protocol::{Body, Duty, SignedMessage};
use crate::request::PinnedRequest;

/// How often our unordered messages and last cosignature are published again.
const REPUBLISH: Duration = Duration::from_secs(2);
/// How often we ask a member (in turn) for heights decided after ours, whatever we saw.
/// A member left in a late round of the last height of a burst (the others decided it
/// without its vote, then went idle) hears no message of a later height until the next
/// request, so it would not know it lags: found by the fault suite's equivocating member.
/// An up-to-date member answers with no records; one sync request per interval.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Commands from the node's handle.
pub(crate) enum Command {
    Submit {
        request: Box<PinnedRequest>,
        reply: oneshot::Sender<Result<[u8; 32], String>>,
    },
    Shutdown,
}

/// Asks the event loop behind `commands` to order `request`; its id once ordered or queued.
pub(crate) async fn submit(
    commands: &mpsc::Sender<Command>,
    request: PinnedRequest,
) -> Result<[u8; 32], String> {
    let (reply, rx) = oneshot::channel();
    commands
        .send(Command::Submit {
            request: Box::new(request),
            reply,
        })
        .await
        .map_err(|_| "the node has stopped".to_string())?;
    rx.await.map_err(|_| "the node has stopped".to_string())?
}

pub(crate) struct NodeLoop {
    pub(crate) shared: Arc<Shared>,
    pub(crate) net: NetworkHandle,
    pub(crate) actor: mpsc::Sender<ActorInput>,
    pub(crate) identity: NodeIdentity,
    pub(crate) bls: BlsSecretKey,
    pub(crate) service: Arc<dyn BuildService>,
    /// What our protocol messages become on the way out (`NodeConfig::outgoing_messages`).
    pub(crate) outgoing: Arc<dyn OutgoingMessages>,
    pub(crate) rounds: OwnRounds,
    pub(crate) collector: Collector,
    /// Our latest cosignature, re-published until a checkpoint covers it.
    pub(crate) last_cosign: Option<Cosignature>,
    /// The last size we signed again for a late cosigner, and when.
    pub(crate) helped_late: Option<(u64, Instant)>,
    /// A checkpoint fetched from a peer, stored once our log reaches its size.
    pub(crate) fetched_checkpoint: Option<String>,
    pub(crate) built_tx: mpsc::UnboundedSender<([u8; 32], Result<Outcome, String>)>,
    pub(crate) synced_tx: mpsc::UnboundedSender<Option<SyncResponse>>,
    pub(crate) sync_inflight: bool,
    pub(crate) last_sync: Option<Instant>,
    pub(crate) sync_turn: usize,
    /// Requests submitted through us, saved in `rounds.redb` until ordered.
    pub(crate) submitted: std::collections::HashSet<[u8; 32]>,
    /// Answers being prepared, per protocol (see [`SYNC_ANSWERS`], [`LIGHT_ANSWERS`]).
    pub(crate) answers: Answers,
}

/// Most members' sync requests answered at once (each reads up to a 12 MiB batch).
const SYNC_ANSWERS: usize = 8;
/// Most light-client requests answered at once (proofs, 512 KiB artifact chunks).
const LIGHT_ANSWERS: usize = 32;

/// Permits for answers in flight: a request that finds none is refused as busy at once
/// (the loop never waits), so no peer can hold more than these bounds of memory and
/// blocking threads, whatever libp2p's per-connection stream limits allow.
pub(crate) struct Answers {
    sync: Arc<tokio::sync::Semaphore>,
    light: Arc<tokio::sync::Semaphore>,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            sync: Arc::new(tokio::sync::Semaphore::new(SYNC_ANSWERS)),
            light: Arc::new(tokio::sync::Semaphore::new(LIGHT_ANSWERS)),
        }
    }
}

impl NodeLoop {
    pub(crate) async fn run(
        mut self,
        mut net_events: mpsc::Receiver<NetEvent>,
        mut app_events: mpsc::UnboundedReceiver<AppEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut built_rx: mpsc::UnboundedReceiver<([u8; 32], Result<Outcome, String>)>,
        mut synced_rx: mpsc::UnboundedReceiver<Option<SyncResponse>>,
    ) {
        self.resume_rounds();
        self.resubmit_saved();
        let mut republish = tokio::time::interval(REPUBLISH);
        republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut catch_up = tokio::time::interval(CATCH_UP);
        catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                e = net_events.recv() => match e {
                    Some(e) => self.on_net(e),
                    None => break,
                },
                Some(e) = app_events.recv() => self.on_app(e),
                c = commands.recv() => match c {
                    Some(Command::Submit { request, reply }) => {
                        let _ = reply.send(self.submit(*request));
                    }
                    Some(Command::Shutdown) | None => break,
                },
                Some((id, result)) = built_rx.recv() => self.on_built(id, result),
                Some(resp) = synced_rx.recv() => self.on_synced(resp),
                _ = republish.tick() => self.republish(),
                _ = catch_up.tick() => {
                    let from = self.shared.lock().height + 1;
                    self.sync_from(from, None);
                }
                _ = sleep_until(deadline) => {
                    let _ = self.actor.try_send(ActorInput::Wake);
                }
            }
        }
        let _ = self.actor.send(ActorInput::Shutdown).await;
    }

    /// The open round of `id`, if open.
    pub(crate) fn round_status(&self, id: &[u8; 32]) -> Option<crate::protocol::RoundStatus> {
        self.shared
            .lock()
            .state
            .round_status(id, &self.shared.committee)
    }

    /// When the earliest open round's deadline passes (block time ≈ our clock): wake the
    /// actor so a block moves the round on.
    fn next_deadline(&self) -> Option<Instant> {
        let d = self
            .shared
            .lock()
            .state
            .next_deadline_ms(&self.shared.committee)?;
        let now = now_ms();
        // Past deadlines were already signalled; the actor's idle interval covers misses.
        (d > now).then(|| Instant::now() + Duration::from_millis(d - now + 5))
    }

    fn publish(&self, topic: &'static str, data: Vec<u8>) {
        let net = self.net.clone();
        tokio::spawn(async move {
            if let Err(e) = net.publish(topic, data).await {
                // Re-published later (own messages, last cosignature).
                tracing::debug!("publish on {topic}: {e}");
            }
        });
    }

    /// Publishes our own message through the outgoing-messages seam (a product node's
    /// passes `body` unchanged): see [`Self::sign_and_publish`].
    pub(crate) fn emit(&self, body: Body) {
        self.outgoing
            .publish(body, &mut |body| self.sign_and_publish(body));
    }

    /// Signs our own message, adds it to the mempool, gossips it and wakes consensus.
    fn sign_and_publish(&self, body: Body) {
        let msg = SignedMessage::sign(
            body,
            self.shared.me,
            &self.identity,
            self.shared.committee.signing_domain(),
        );
        if let Err(e) = self.shared.lock().mempool.insert(msg.clone(), true) {
            // Published anyway (a peer with room may order it); a saved submission is
            // published again at the next start.
            tracing::warn!("own message not kept in the mempool: {e}");
        }
        self.publish(MESSAGES_TOPIC, msg.to_cbor());
        let _ = self.actor.try_send(ActorInput::Wake);
    }

    /// Orders `request`, or its next attempt: when the same pins were decided without a
    /// reproduced verdict, the next attempt number is ordered instead (the committee's rules
    /// decide whether and when it may be: it waits in the mempool for its spacing). A
    /// request already open, or reproduced, is not ordered again.
    fn submit(&mut self, mut request: PinnedRequest) -> Result<[u8; 32], String> {
        request.validate().map_err(|e| e.to_string())?;
        use crate::protocol::DecidedIndex;
        let max = self.shared.lock().state.params().max_attempts;
        loop {
            let id = request.id();
            if self.shared.lock().state.is_open(&id) {
                return Ok(id);
            }
            match self.shared.store.decision(&id) {
                None if self.shared.store.is_decided(&id) => {
                    return Err("cannot read the log's entry for this request".into());
                }
                None => break,
                Some((true, _)) => return Ok(id), // reproduced: nothing to do
                Some((false, _)) if request.request.attempt >= max => {
                    return Err(format!(
                        "{} was decided without a reproduced verdict in all {max} attempts the committee allows",
                        request.request.spec()
                    ));
                }
                Some((false, _)) => request.request.attempt += 1,
            }
        }
        let id = request.id();
        // Durable before the submitter gets the id (see `own`): a crash from here on
        // loses nothing, the next start publishes it again.
        self.rounds.save_submitted(&id, &request)?;
        self.submitted.insert(id);
        self.emit(Body::Request(request));
        Ok(id)
    }

    /// At start: publishes again the requests submitted through us that the group has not
    /// ordered yet, and forgets the ones it has.
    pub(crate) fn resubmit_saved(&mut self) {
        use crate::protocol::DecidedIndex;
        let mut ordered = Vec::new();
        for (id, request) in self.rounds.submitted() {
            let open = self.shared.lock().state.is_open(&id);
            if open || self.shared.store.is_decided(&id) {
                ordered.push(id);
            } else {
                tracing::info!(request = %request.request.spec(), "publishing a saved submission again");
                self.submitted.insert(id);
                self.emit(Body::Request(request));
            }
        }
        self.rounds.remove_submitted(&ordered);
    }

    /// A request submitted through us is ordered (open) or decided: its row can go.
    fn ordered(&mut self, id: &[u8; 32]) {
        if self.submitted.remove(id) {
            self.rounds.remove_submitted(&[*id]);
        }
    }

    fn republish(&mut self) {
        let own = {
            let inner = self.shared.lock();
            inner
                .mempool
                .own_due(REPUBLISH, &inner.state, self.shared.me)
        };
        for m in own {
            self.publish(MESSAGES_TOPIC, m.to_cbor());
        }
        if let Some(c) = &self.last_cosign {
            let covered = self
                .shared
                .store
                .checkpoint_at(c.size)
                .ok()
                .flatten()
                .is_some();
            if covered {
                self.last_cosign = None;
            } else {
                self.publish(COSIGN_TOPIC, encode(c));
            }
        }
    }

    /// One event from the network. Never awaits: peers' input must not stall this loop.
    fn on_net(&mut self, e: NetEvent) {
        match e {
            NetEvent::Frame { from, data } => {
                // Never wait on a full actor queue for a peer's frame: drop and count it
                // (consensus re-sends votes; a flooding member cannot stall this loop).
                if self
                    .actor
                    .try_send(ActorInput::Frame { from, data })
                    .is_err()
                {
                    self.shared
                        .counters
                        .frames_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            NetEvent::Gossip(g) => {
                let verdict = match g.topic.as_str() {
                    MESSAGES_TOPIC => self.on_message(&g.data),
                    COSIGN_TOPIC => self.on_cosign(g.source, &g.data),
                    _ => Validation::Reject,
                };
                self.net.validate(&g, verdict);
            }
            NetEvent::Request(r) => self.on_request(r),
            NetEvent::MemberConnected(peer) => {
                // A member (re)appeared: it may know heights we lack.
                let from = self.shared.lock().height + 1;
                self.sync_from(from, Some(peer));
            }
            NetEvent::MemberDisconnected(_) => {}
        }
    }

    /// A protocol message by gossip: judged by [`super::gossip::admit_message`] (checked in
    /// full before it enters the mempool or is relayed); an admitted one wakes consensus.
    fn on_message(&mut self, data: &[u8]) -> Validation {
        let verdict = super::gossip::admit_message(&self.shared, data);
        if verdict == Validation::Accept {
            let _ = self.actor.try_send(ActorInput::Wake);
        }
        verdict
    }

    /// Stores a checkpoint once t cosignatures are in; a failed write halts the node.
    fn finish_cosigned(&mut self) {
        if let Err(e) = self
            .collector
            .finish(&self.shared.committee, &self.shared.store)
        {
            self.shared.halt(e);
        }
    }

    fn on_cosign(&mut self, source: PeerId, data: &[u8]) -> Validation {
        let Some(signer) = self.shared.committee.index_of_peer(&source) else {
            return Validation::Reject;
        };
        let Ok(c) = decode::<Cosignature>(data, MAX_COSIGN) else {
            return Validation::Reject;
        };
        // A cosignature for a size we already hold cosigned: its signer is still collecting
        // (it was down when the others signed, and gossip does not replay). Sign again for
        // it, at most once every REPUBLISH whatever the size (a member replaying old
        // cosignatures costs the others one signature per interval).
        if self
            .shared
            .store
            .checkpoint_at(c.size)
            .ok()
            .flatten()
            .is_some()
        {
            self.help_late_cosigner(c.size);
            return Validation::Ignore;
        }
        match self
            .collector
            .add(&self.shared.committee, &self.shared.store, signer, &c)
        {
            Ok(cosign::Added::Verified) => {
                self.finish_cosigned();
                Validation::Accept
            }
            // Not verified (yet): not relayed either. Its author publishes to every member
            // itself; we verify it if our log reaches its size with its root.
            Ok(cosign::Added::Deferred) => Validation::Ignore,
            Err(e @ cosign::CosignError::NotOurRoot) => {
                tracing::debug!("cosignature ignored: {e}");
                Validation::Ignore
            }
            Err(e) => {
                tracing::debug!("cosignature refused: {e}");
                Validation::Reject
            }
        }
    }

    /// Publishes our cosignature of the stored checkpoint at `size` again.
    fn help_late_cosigner(&mut self, size: u64) {
        let now = Instant::now();
        if self
            .helped_late
            .is_some_and(|(_, at)| now.duration_since(at) < REPUBLISH)
        {
            return;
        }
        self.helped_late = Some((size, now));
        let Ok(root) = self.shared.store.tree_hash(size) else {
            return;
        };
        let c = self.own_cosignature(size, root);
        self.publish(COSIGN_TOPIC, encode(&c));
    }

    /// Our cosignature of (size, root): the BLS partial and our Ed25519 line's signature.
    fn own_cosignature(&self, size: u64, root: [u8; 32]) -> Cosignature {
        cosign::sign_with_identity(
            &self.shared.committee,
            &self.bls,
            &self.identity,
            size,
            root,
        )
    }

    fn on_app(&mut self, e: AppEvent) {
        match e {
            AppEvent::Duties(duties) => {
                for d in duties {
                    match d {
                        Duty::Build(id) => {
                            self.ordered(&id);
                            self.start_build(id);
                        }
                        Duty::Reveal(id) => self.reveal(id),
                    }
                }
            }
            AppEvent::Grown {
                size,
                root,
                decided,
            } => {
                let c = self.own_cosignature(size, root);
                let me = self.shared.me as usize;
                if let Err(e) =
                    self.collector
                        .add(&self.shared.committee, &self.shared.store, me, &c)
                {
                    tracing::error!("own cosignature: {e}");
                }
                self.publish(COSIGN_TOPIC, encode(&c));
                self.last_cosign = Some(c);
                self.finish_cosigned();
                self.store_fetched_checkpoint();
                for id in decided {
                    self.ordered(&id);
                    self.rounds.remove(&id);
                    self.shared.build_queue().forget(&id);
                }
            }
            AppEvent::Lagging { from } => self.sync_from(from, None),
            AppEvent::Applied { height, entries } => {
                tracing::debug!(height, entries, "height applied");
            }
        }
    }

    /// Answers a member's sync request or a light client's request off this loop: the
    /// answer reads the store (on a blocking thread) and is handed to the network from its
    /// own task, so the loop that reads peers' input never waits for either. At most
    /// [`SYNC_ANSWERS`] and [`LIGHT_ANSWERS`] are in flight; beyond, refused as busy.
    fn on_request(&mut self, r: InboundRequest) {
        let permits = match r.kind {
            RequestKind::Sync => &self.answers.sync,
            RequestKind::Light => &self.answers.light,
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
                            encode(&super::sync::serve(&shared, from, max))
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

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
