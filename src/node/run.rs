//! The node's event loop: a thin I/O shell that hands each event to the part that owns
//! what it concerns, and waits for the next. It owns nothing itself: our keys and the ways
//! out are the [`Outbox`]'s, the rounds and builds the [`BuilderDriver`]'s, catch-up the
//! [`Catchup`]'s, cosigning the [`Cosigning`]'s, the answers' bounds the [`Answers`]'; the
//! protocol state is the consensus app's, read here from the view it publishes. Nothing in
//! the loop awaits anything but its next event: peers' input must not stall it.

use std::sync::Arc;
use std::time::Duration;

use synchronicity_net::{NetEvent, Validation};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::answers::Answers;
use super::app::AppEvent;
use super::builder_driver::{BuildEvent, BuilderDriver, SubmitError};
use super::cosigning::Cosigning;
use super::outbox::Outbox;
use super::shared::Shared;
use super::sync::Catchup;
use super::wire::{COSIGN_TOPIC, MESSAGES_TOPIC, SyncResponse};
use crate::clock::{now_ms, sleep_until};
use crate::request::PinnedRequest;

/// How often our unordered messages and last cosignature are published again.
pub(crate) const REPUBLISH: Duration = Duration::from_secs(2);
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
        reply: oneshot::Sender<Result<[u8; 32], SubmitError>>,
    },
    /// Approve the next committee file: sign the approval statement and gossip it.
    Approve {
        committee: String,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Shutdown,
}

/// Asks the event loop behind `commands` to approve the next committee file `text`; the
/// epoch it proposes once the approval is published.
pub(crate) async fn approve(
    commands: &mpsc::Sender<Command>,
    committee: String,
) -> Result<u64, String> {
    let (reply, rx) = oneshot::channel();
    commands
        .send(Command::Approve { committee, reply })
        .await
        .map_err(|_| "the node stopped".to_string())?;
    rx.await.map_err(|_| "the node stopped".to_string())?
}

/// Asks the event loop behind `commands` to order `request`; its id once ordered or queued.
/// Hands `request` to the node without waiting on its command queue (for a server facing
/// the internet); `Err` when the queue is full or the node has stopped. The receiver gets
/// the node's answer.
pub(crate) fn try_submit(
    commands: &mpsc::Sender<Command>,
    request: PinnedRequest,
) -> Result<oneshot::Receiver<Result<[u8; 32], SubmitError>>, &'static str> {
    let (reply, rx) = oneshot::channel();
    commands
        .try_send(Command::Submit {
            request: Box::new(request),
            reply,
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "the node is busy; try later",
            mpsc::error::TrySendError::Closed(_) => "the node has stopped",
        })?;
    Ok(rx)
}

pub(crate) async fn submit(
    commands: &mpsc::Sender<Command>,
    request: PinnedRequest,
) -> Result<[u8; 32], SubmitError> {
    let (reply, rx) = oneshot::channel();
    commands
        .send(Command::Submit {
            request: Box::new(request),
            reply,
        })
        .await
        .map_err(|_| SubmitError::Stopped)?;
    rx.await.map_err(|_| SubmitError::Stopped)?
}

/// What the loop waits on.
pub(crate) struct Inputs {
    /// The network's events (bounded by the network crate, with per-member shares).
    pub(crate) net: mpsc::Receiver<NetEvent>,
    /// What the consensus app reports after each height (unbounded: a handful per height,
    /// and the consensus thread must never wait on this loop).
    pub(crate) app: mpsc::UnboundedReceiver<AppEvent>,
    /// The handle's commands (bounded, 64: submitters wait for room).
    pub(crate) commands: mpsc::Receiver<Command>,
    /// Reports of running builds (see [`super::builder_driver`]).
    pub(crate) builds: mpsc::UnboundedReceiver<BuildEvent>,
    /// Sync answers (at most one in flight, see [`Catchup`]).
    pub(crate) synced: mpsc::UnboundedReceiver<Option<SyncResponse>>,
}

/// The loop: each field an owner (see the module doc).
pub(crate) struct NodeLoop {
    /// What every part reads (committee, store, counters, the published views).
    shared: Arc<Shared>,
    /// Our keys; gossip and the consensus actor's queue.
    outbox: Outbox,
    /// Build queue, builds, our rounds and submissions.
    builder: BuilderDriver,
    /// Our sync requests.
    catchup: Catchup,
    /// Pending partials, our last cosignature, fetched checkpoints.
    cosigning: Cosigning,
    /// Sync and light-client answers in flight.
    answers: Answers,
}

impl NodeLoop {
    /// The loop over these parts.
    pub(crate) fn new(
        shared: Arc<Shared>,
        outbox: Outbox,
        builder: BuilderDriver,
        catchup: Catchup,
        cosigning: Cosigning,
        answers: Answers,
    ) -> Self {
        Self {
            shared,
            outbox,
            builder,
            catchup,
            cosigning,
            answers,
        }
    }

    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        self.builder.resume(&self.outbox);
        let mut republish = tokio::time::interval(REPUBLISH);
        republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut catch_up = tokio::time::interval(CATCH_UP);
        catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                e = inputs.net.recv() => match e {
                    Some(e) => self.on_net(e),
                    None => break,
                },
                Some(e) = inputs.app.recv() => self.on_app(e),
                c = inputs.commands.recv() => match c {
                    Some(Command::Submit { request, reply }) => {
                        let _ = reply.send(self.builder.submit(*request, &self.outbox));
                    }
                    Some(Command::Approve { committee, reply }) => {
                        let _ = reply.send(self.outbox.approve(committee));
                    }
                    Some(Command::Shutdown) | None => break,
                },
                Some(e) = inputs.builds.recv() => self.builder.on_build_event(e, &self.outbox),
                Some(resp) = inputs.synced.recv() => {
                    if let Some(note) = self.catchup.on_synced(resp, &self.outbox) {
                        self.cosigning.on_fetched(note);
                    }
                }
                _ = republish.tick() => {
                    self.outbox.republish_own(REPUBLISH);
                    self.cosigning.republish(&self.outbox);
                }
                _ = catch_up.tick() => {
                    let from = self.shared.view().height + 1;
                    self.catchup.sync_from(from, None, &self.outbox);
                }
                _ = sleep_until(deadline) => self.outbox.wake(),
            }
        }
        self.outbox.shutdown().await;
    }

    /// When the earliest open round's deadline passes (block time ≈ our clock): wake the
    /// actor so a block moves the round on.
    fn next_deadline(&self) -> Option<Instant> {
        let d = self
            .shared
            .view()
            .state
            .next_deadline_ms(&self.shared.committee)?;
        let now = now_ms();
        // Past deadlines were already signalled; the actor's idle interval covers misses.
        (d > now).then(|| Instant::now() + Duration::from_millis(d - now + 5))
    }

    /// One event from the network. Never awaits: peers' input must not stall this loop.
    fn on_net(&mut self, e: NetEvent) {
        match e {
            NetEvent::Frame { from, data } => self.outbox.frame(from, data),
            NetEvent::Gossip(g) => {
                let verdict = match g.topic.as_str() {
                    MESSAGES_TOPIC => {
                        // Checked in full before it enters the mempool or is relayed; an
                        // admitted one wakes consensus.
                        let v = super::gossip::admit_message(&self.shared, &g.data);
                        if v == Validation::Accept {
                            self.outbox.wake();
                        }
                        v
                    }
                    COSIGN_TOPIC => self.cosigning.on_cosign(g.source, &g.data, &self.outbox),
                    _ => Validation::Reject,
                };
                self.outbox.net().validate(&g, verdict);
            }
            NetEvent::Request(r) => self.answers.on_request(r),
            NetEvent::MemberConnected(peer) => {
                // A member (re)appeared: it may know heights we lack.
                let from = self.shared.view().height + 1;
                self.catchup.sync_from(from, Some(peer), &self.outbox);
            }
            NetEvent::MemberDisconnected(_) => {}
        }
    }

    fn on_app(&mut self, e: AppEvent) {
        match e {
            AppEvent::Duties(duties) => self.builder.on_duties(duties, &self.outbox),
            AppEvent::Grown {
                size,
                root,
                decided,
            } => {
                self.cosigning.on_grown(size, root, &self.outbox);
                self.builder.on_decided(decided, &self.outbox);
            }
            AppEvent::Lagging { from } => self.catchup.sync_from(from, None, &self.outbox),
            AppEvent::Applied { height, entries } => {
                tracing::debug!(height, entries, "height applied");
            }
        }
    }
}
