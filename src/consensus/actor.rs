//! The consensus actor: owns the [`Core`], its timers, its WAL and the consensus streams,
//! and asks the [`App`] for values, verdicts and commits. It sleeps in `select!` until a
//! frame, a timer or a fetched decision arrives: no polling loop.
//!
//! Frames come from members only (the net crate drops consensus streams of non-members);
//! their signatures are checked by the core before anything changes.
//!
//! Order of durability, per height: WAL entries are fsynced before any broadcast; a decided
//! block is applied durably by [`App::commit`] before the next height starts and the WAL is
//! reset to it. A node killed anywhere restarts at the first unapplied height and replays
//! that height's WAL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_malachitebft_core_consensus::Input;
use arc_malachitebft_core_types::{CommitCertificate, Round, Timeout, Validity, Value as _};
use synchronicity_net::{NetworkHandle, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::context::{Address, Ctx, Height, Value};
use super::core::{Action, Core};
use super::outgoing::OutgoingFrames;
use super::wal::Wal;
use super::wire::{SignedProposal, Wire};
use crate::clock::sleep_until;

/// What the actor needs from the application (the protocol state and the log).
pub trait App: Send + 'static {
    /// A block to propose at (height, round).
    fn build_value(&mut self, height: Height, round: Round) -> Value;
    /// Whether a proposed block is valid; must be deterministic across correct members.
    fn validate(&mut self, height: Height, value: &Value) -> Validity;
    /// Applies a decided block durably; the next height starts only after this returns.
    /// An error (a full disk, a block that does not apply) stops the actor: the node must
    /// not go on with a log that lacks a decided height.
    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        certificate: &CommitCertificate<Ctx>,
    ) -> Result<(), String>;
    /// Whether there is something to order or a deadline to reach now. While false, the
    /// next height waits (quiet when idle) until [`ActorInput::Wake`], a peer's message for
    /// it, or the empty-height interval.
    fn has_work(&mut self) -> bool {
        false
    }
    /// A member sent a message for `seen` while we are at `current`: we lag behind and
    /// should fetch decided heights (the node's sync protocol).
    fn lagging(&mut self, current: Height, seen: Height) {
        let _ = (current, seen);
    }
}

/// Inputs to the actor.
#[derive(Debug)]
pub enum ActorInput {
    /// A consensus frame from a member (authenticated origin).
    Frame {
        /// Sender.
        from: PeerId,
        /// Bytes.
        data: Vec<u8>,
    },
    /// A decided height fetched from a peer; applied once its certificate verifies.
    Decided {
        /// Height.
        height: Height,
        /// The block.
        value: Value,
        /// Its commit certificate.
        certificate: CommitCertificate<Ctx>,
    },
    /// The app may have work now (e.g. a request arrived by gossip).
    Wake,
    /// Stop.
    Shutdown,
}

/// How the actor is set up.
pub struct ActorConfig {
    /// The members to broadcast to (ourselves excluded).
    pub peers: Vec<PeerId>,
    /// The first height to run (the one after the last applied).
    pub first_height: Height,
    /// How often an idle actor asks the app whether there is work (a safety net for a lost
    /// wake-up; no height starts without work).
    pub idle_interval: std::time::Duration,
    /// The WAL (`None` only in tests that do not restart).
    pub wal: Option<Wal>,
    /// What our broadcasts send ([`HonestFrames`](super::HonestFrames) in a product node: the same frame to
    /// every peer; a test member's may lie, see [`OutgoingFrames`]).
    pub outgoing: Arc<dyn OutgoingFrames>,
}

/// Fetched decisions kept for heights above the current one.
const MAX_BUFFERED_DECISIONS: usize = 1024;
/// Early proposals kept: heights ahead, and proposals per height (a proposer may send one
/// per round).
const EARLY_HEIGHTS: u64 = 4;
const EARLY_PER_HEIGHT: usize = 16;

enum Event {
    Input(ActorInput),
    Fired(Timeout, u64),
    Idle,
}

struct Actor<A: App> {
    core: Core,
    app: A,
    net: NetworkHandle,
    peers: Vec<PeerId>,
    outgoing: Arc<dyn OutgoingFrames>,
    wal: Option<Wal>,
    timer_tx: mpsc::Sender<(Timeout, u64)>,
    timers: HashMap<Timeout, (u64, JoinHandle<()>)>,
    generation: u64,
    /// The height waiting to start, and when it starts anyway.
    waiting: Option<(Height, tokio::time::Instant)>,
    idle_interval: std::time::Duration,
    /// Decisions fetched from peers, by height.
    fetched: BTreeMap<Height, (Value, CommitCertificate<Ctx>)>,
    /// Our own proposals per round of the current height (re-used after a replay so we
    /// never propose two different blocks for one round).
    proposed: HashMap<Round, Value>,
    /// Proposals that arrived for a later height (the proposer of h+1 is often faster
    /// than our decision of h); judged when that height starts.
    early: BTreeMap<Height, Vec<SignedProposal>>,
    halted: bool,
    /// Why it stopped, when it could not go on.
    halt_reason: Option<String>,
}

/// Starts the actor; returns its input channel and task (which ends with the reason when
/// the actor could not go on). After a height is decided the next one starts when the app
/// has work (a message to order, a deadline reached), or when a peer's message for it
/// arrives; an idle group decides no empty heights. Every `idle_interval` the actor asks
/// the app again, in case a wake-up was lost.
pub fn spawn<A: App>(
    core: Core,
    app: A,
    net: NetworkHandle,
    config: ActorConfig,
) -> (mpsc::Sender<ActorInput>, JoinHandle<Option<String>>) {
    let (input_tx, mut input_rx) = mpsc::channel::<ActorInput>(4096);
    let actor = async move {
        let (timer_tx, mut timer_rx) = mpsc::channel::<(Timeout, u64)>(1024);
        let mut a = Actor {
            core,
            app,
            net,
            peers: config.peers,
            outgoing: config.outgoing,
            wal: config.wal,
            timer_tx,
            timers: HashMap::new(),
            generation: 0,
            waiting: None,
            idle_interval: config.idle_interval,
            fetched: BTreeMap::new(),
            proposed: HashMap::new(),
            early: BTreeMap::new(),
            halted: false,
            halt_reason: None,
        };
        // Like every later height, the first starts with work or a peer's message for it.
        if a.app.has_work() {
            a.begin_height(config.first_height);
        } else {
            a.waiting = Some((
                config.first_height,
                tokio::time::Instant::now() + a.idle_interval,
            ));
        }
        while !a.halted {
            let idle_deadline = a.waiting.map(|(_, at)| at);
            let event = tokio::select! {
                i = input_rx.recv() => match i { Some(i) => Event::Input(i), None => break },
                Some((t, g)) = timer_rx.recv() => Event::Fired(t, g),
                _ = sleep_until(idle_deadline) => Event::Idle,
            };
            match event {
                Event::Input(ActorInput::Shutdown) => break,
                Event::Idle => {
                    // No empty heights while there is nothing to order and no deadline to
                    // reach (a missed wake-up is caught here, one interval late at most).
                    if let Some((next, _)) = a.waiting {
                        if a.app.has_work() {
                            a.waiting = None;
                            a.begin_height(next);
                        } else {
                            a.waiting = Some((next, tokio::time::Instant::now() + a.idle_interval));
                        }
                    }
                }
                Event::Input(ActorInput::Wake) => {
                    if let Some((next, _)) = a.waiting
                        && a.app.has_work()
                    {
                        a.waiting = None;
                        a.begin_height(next);
                    }
                }
                Event::Input(ActorInput::Frame { from, data }) => a.on_frame(from, &data),
                Event::Input(ActorInput::Decided {
                    height,
                    value,
                    certificate,
                }) => a.on_fetched(height, value, certificate),
                Event::Fired(t, g) => {
                    if a.timers.get(&t).map(|(gen_, _)| *gen_) == Some(g) {
                        a.timers.remove(&t);
                        let actions = a.core.on_timeout(t);
                        a.run(actions);
                    }
                }
            }
        }
        for (_, (_, j)) in a.timers.drain() {
            j.abort();
        }
        a.halt_reason
    };
    // The actor fsyncs its WAL and the app commits to redb on every height: it gets its own
    // thread (and a single-threaded runtime for its timers), so that blocking never stalls
    // the network's tasks on the shared runtime.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Option<String>>();
    let started = std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            let reason = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(actor),
                Err(e) => Some(format!("cannot start the consensus runtime: {e}")),
            };
            let _ = done_tx.send(reason);
        });
    let start_error = started
        .err()
        .map(|e| format!("cannot start the consensus thread: {e}"));
    let task = tokio::spawn(async move {
        match start_error {
            Some(e) => Some(e),
            None => done_rx.await.unwrap_or(None),
        }
    });
    (input_tx, task)
}

impl<A: App> Actor<A> {
    /// Stops for good: the node cannot go on without this write or this height (fail-stop;
    /// the process exits and a restart resumes from what is durable).
    fn halt(&mut self, reason: String) {
        tracing::error!("{reason}; stopping");
        self.halted = true;
        self.halt_reason.get_or_insert(reason);
    }

    /// The height consensus works on, or waits to start.
    fn current(&self) -> Height {
        self.waiting.map(|(h, _)| h).unwrap_or(self.core.height())
    }

    /// Starts `height`: replays its WAL entries (after a crash), then proposes if we are
    /// the proposer, re-using the block we proposed before the crash.
    fn begin_height(&mut self, height: Height) {
        self.proposed.clear();
        let replay = match self.wal.as_mut().map(|w| w.begin_height(height)) {
            Some(Ok(entries)) => entries,
            Some(Err(e)) => {
                self.halt(format!("consensus WAL: {e}"));
                return;
            }
            None => Vec::new(),
        };
        for e in &replay {
            if let Input::ProposedValue(pv, _) = e
                && pv.proposer == self.own_address()
            {
                self.proposed.insert(pv.round, pv.value.clone());
            }
        }
        let mut actions = self.core.start_height(height);
        // GetValue is answered after the replay, so a re-derived proposal wins.
        let asks: Vec<Action> = actions
            .iter()
            .filter(|a| matches!(a, Action::GetValue { .. }))
            .cloned()
            .collect();
        actions.retain(|a| !matches!(a, Action::GetValue { .. }));
        if !replay.is_empty() {
            tracing::info!(height = height.0, entries = replay.len(), "replaying WAL");
        }
        actions.extend(self.core.replay(replay));
        actions.extend(asks);
        self.run(actions);
        self.early = self.early.split_off(&height);
        for p in self.early.remove(&height).unwrap_or_default() {
            if self.halted || self.core.height() != height {
                break;
            }
            let validity = self.app.validate(p.height, &p.value);
            let actions = self.core.on_proposal(p, validity);
            self.run(actions);
        }
        // A decision fetched earlier for this height applies now.
        if let Some((value, cert)) = self.fetched.remove(&height) {
            self.on_fetched(height, value, cert);
        }
    }

    fn own_address(&self) -> Address {
        self.core.address()
    }

    /// Executes actions in order; they may produce more (GetValue, Decided).
    fn run(&mut self, mut pending: Vec<Action>) {
        while !pending.is_empty() && !self.halted {
            for a in std::mem::take(&mut pending) {
                if self.halted {
                    return;
                }
                match a {
                    Action::WalAppend(bytes) => {
                        if let Some(Err(e)) = self.wal.as_mut().map(|w| w.append(&bytes)) {
                            self.halt(format!("consensus WAL append: {e}"));
                        }
                    }
                    Action::Broadcast(w) => {
                        // Durable before it leaves: after a restart we re-derive the same
                        // votes instead of signing conflicting ones.
                        if let Some(Err(e)) = self.wal.as_mut().map(|w| w.flush()) {
                            self.halt(format!("consensus WAL flush: {e}"));
                            return;
                        }
                        // Through the seam (a product node's sends `w` as is to every
                        // peer). A full queue or an unreachable member drops the frame;
                        // the core's rebroadcast timer re-sends votes.
                        let net = &self.net;
                        self.outgoing.broadcast(&w, &self.peers, &mut |p, frame| {
                            let _ = net.send_frame(p, frame);
                        });
                    }
                    Action::ScheduleTimeout(t, d) => {
                        self.generation += 1;
                        let (g, tx) = (self.generation, self.timer_tx.clone());
                        let j = tokio::spawn(async move {
                            tokio::time::sleep(d).await;
                            let _ = tx.send((t, g)).await;
                        });
                        if let Some((_, old)) = self.timers.insert(t, (g, j)) {
                            old.abort();
                        }
                    }
                    Action::CancelTimeout(t) => {
                        if let Some((_, j)) = self.timers.remove(&t) {
                            j.abort();
                        }
                    }
                    Action::CancelAllTimeouts => {
                        for (_, (_, j)) in self.timers.drain() {
                            j.abort();
                        }
                    }
                    Action::GetValue { height, round, .. } => {
                        let v = match self.proposed.get(&round) {
                            Some(v) => v.clone(),
                            None => self.app.build_value(height, round),
                        };
                        self.proposed.insert(round, v.clone());
                        pending.extend(self.core.propose(height, round, v));
                    }
                    Action::Decided {
                        height,
                        value,
                        certificate,
                    } => {
                        self.decided(height, value, certificate);
                        return;
                    }
                }
            }
        }
    }

    /// Applies a decision and moves to the next height (now, or when there is work).
    fn decided(&mut self, height: Height, value: Value, certificate: CommitCertificate<Ctx>) {
        if let Err(e) = self.app.commit(height, &value, &certificate) {
            self.halt(format!("cannot apply decided height {}: {e}", height.0));
            return;
        }
        for (_, (_, j)) in self.timers.drain() {
            j.abort();
        }
        let next = Height(height.0 + 1);
        self.fetched = self.fetched.split_off(&next);
        if self.app.has_work() || self.fetched.contains_key(&next) {
            self.begin_height(next);
        } else {
            self.waiting = Some((next, tokio::time::Instant::now() + self.idle_interval));
        }
    }

    fn on_frame(&mut self, from: PeerId, data: &[u8]) {
        let w = match Wire::decode(data) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(%from, "bad consensus frame: {e}");
                return;
            }
        };
        let height = w.height();
        let current = self.current();
        if height > current {
            self.app.lagging(current, height);
        }
        // A peer already works on the next height: join it.
        if let Some((next, _)) = self.waiting
            && height >= next
        {
            self.waiting = None;
            self.begin_height(next);
        }
        let actions = match w {
            Wire::Vote(v) => self.core.on_vote(v),
            Wire::Proposal(p) => {
                if !self.core.check_proposal(&p) {
                    tracing::debug!(%from, "proposal refused: not the proposer's, or too far ahead");
                    return;
                }
                let here = self.core.height();
                if p.height > here && p.height.0 <= here.0 + EARLY_HEIGHTS {
                    let list = self.early.entry(p.height).or_default();
                    if list.len() < EARLY_PER_HEIGHT {
                        list.push(p);
                    }
                    return;
                }
                if p.height != here {
                    return;
                }
                let validity = self.app.validate(p.height, &p.value);
                self.core.on_proposal(p, validity)
            }
            Wire::Polka(c) => self.core.on_polka(c),
            Wire::RoundCertificate(c) => self.core.on_round_certificate(c),
        };
        self.run(actions);
    }

    /// A decision fetched from a peer: applied when it is for the current height and its
    /// certificate verifies; kept for later when it is ahead; dropped when behind.
    fn on_fetched(&mut self, height: Height, value: Value, cert: CommitCertificate<Ctx>) {
        let current = self.current();
        if height < current {
            return;
        }
        if let Err(e) = self.core.verify_decided(height, &value, &cert) {
            tracing::warn!(height = height.0, "fetched decision refused: {e}");
            return;
        }
        if height > current {
            if self.fetched.len() < MAX_BUFFERED_DECISIONS {
                self.fetched.insert(height, (value, cert));
            }
            return;
        }
        tracing::info!(height = height.0, value = %value.id(), "applying a fetched decision");
        self.waiting = None;
        self.decided(height, value, cert);
    }
}
