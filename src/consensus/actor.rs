//! The consensus actor: owns the [`Core`], its timers and the network, and asks the
//! [`App`] for values, verdicts and commits. It sleeps in `select!` until a frame or a timer
//! arrives: no polling loop.
//!
//! Frames come from members only (the net crate drops consensus streams of non-members);
//! their signatures are checked by the core before anything changes.

use std::collections::HashMap;

use arc_malachitebft_core_types::{CommitCertificate, Round, Timeout, Validity};
use synchronicity_net::{NetworkHandle, PeerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::context::{Ctx, Height, Value};
use super::core::{Action, Core};
use super::wire::Wire;

/// What the actor needs from the application (the protocol state and the log).
pub trait App: Send + 'static {
    /// A block to propose at (height, round).
    fn build_value(&mut self, height: Height, round: Round) -> Value;
    /// Whether a proposed block is valid; must be deterministic across correct members.
    fn validate(&mut self, height: Height, value: &Value) -> Validity;
    /// Applies a decided block durably; the next height starts only after this returns.
    fn commit(&mut self, height: Height, value: &Value, certificate: &CommitCertificate<Ctx>);
    /// Whether there is something to order or a deadline to reach now. While false, the
    /// next height waits (quiet when idle) until [`ActorInput::Wake`], a peer's message for
    /// it, or the empty-height interval.
    fn has_work(&mut self) -> bool {
        false
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
    /// The app may have work now (e.g. a request arrived by gossip).
    Wake,
    /// Stop.
    Shutdown,
}

enum Event {
    Input(ActorInput),
    Fired(Timeout, u64),
    Idle,
}

/// Starts the actor at `first_height`; returns its input channel and task. After a height
/// is decided the next one starts when the app has work, when a peer's message for it
/// arrives, or after `idle_interval` (so an idle group decides at most one empty height per
/// interval, and each decided height records that the group is alive).
pub fn spawn<A: App>(
    mut core: Core,
    mut app: A,
    net: NetworkHandle,
    peers: Vec<PeerId>,
    first_height: Height,
    idle_interval: std::time::Duration,
) -> (mpsc::Sender<ActorInput>, JoinHandle<()>) {
    let (input_tx, mut input_rx) = mpsc::channel::<ActorInput>(4096);
    let task = tokio::spawn(async move {
        let (timer_tx, mut timer_rx) = mpsc::channel::<(Timeout, u64)>(1024);
        let mut timers: HashMap<Timeout, (u64, JoinHandle<()>)> = HashMap::new();
        let mut generation = 0u64;
        let mut pending = core.start_height(first_height);
        // The height waiting to start, and when it starts anyway.
        let mut waiting: Option<(Height, tokio::time::Instant)> = None;
        loop {
            // Execute actions in order; they may produce more (GetValue, Decided).
            while !pending.is_empty() {
                let actions = std::mem::take(&mut pending);
                for a in actions {
                    match a {
                        Action::Broadcast(w) => {
                            let bytes = w.encode();
                            for p in &peers {
                                // A full queue or an unreachable member drops the frame; the
                                // core's rebroadcast timer re-sends votes.
                                let _ = net.send_frame(*p, bytes.clone());
                            }
                        }
                        Action::ScheduleTimeout(t, d) => {
                            generation += 1;
                            let (g, tx) = (generation, timer_tx.clone());
                            let j = tokio::spawn(async move {
                                tokio::time::sleep(d).await;
                                let _ = tx.send((t, g)).await;
                            });
                            if let Some((_, old)) = timers.insert(t, (g, j)) {
                                old.abort();
                            }
                        }
                        Action::CancelTimeout(t) => {
                            if let Some((_, j)) = timers.remove(&t) {
                                j.abort();
                            }
                        }
                        Action::CancelAllTimeouts => {
                            for (_, (_, j)) in timers.drain() {
                                j.abort();
                            }
                        }
                        Action::GetValue { height, round, .. } => {
                            let v = app.build_value(height, round);
                            pending.extend(core.propose(height, round, v));
                        }
                        Action::Decided {
                            height,
                            value,
                            certificate,
                        } => {
                            app.commit(height, &value, &certificate);
                            let next = Height(height.0 + 1);
                            if app.has_work() {
                                pending.extend(core.start_height(next));
                            } else {
                                waiting = Some((next, tokio::time::Instant::now() + idle_interval));
                            }
                        }
                    }
                }
            }
            let idle_deadline = waiting.map(|(_, at)| at);
            let event = tokio::select! {
                i = input_rx.recv() => match i { Some(i) => Event::Input(i), None => break },
                Some((t, g)) = timer_rx.recv() => Event::Fired(t, g),
                _ = sleep_until(idle_deadline) => Event::Idle,
            };
            match event {
                Event::Input(ActorInput::Shutdown) => break,
                Event::Idle => {
                    if let Some((next, _)) = waiting.take() {
                        pending = core.start_height(next);
                    }
                }
                Event::Input(ActorInput::Wake) => {
                    if let Some((next, _)) = waiting.filter(|_| app.has_work()) {
                        waiting = None;
                        pending = core.start_height(next);
                    }
                }
                Event::Input(ActorInput::Frame { from, data }) => match Wire::decode(&data) {
                    Ok(w) => {
                        let height = match &w {
                            Wire::Vote(v) => v.height,
                            Wire::Proposal(p) => p.height,
                        };
                        // A peer already works on the next height: join it.
                        if let Some((next, _)) = waiting.filter(|(next, _)| height >= *next) {
                            waiting = None;
                            pending = core.start_height(next);
                        }
                        match w {
                            Wire::Vote(v) => pending.extend(core.on_vote(v)),
                            Wire::Proposal(p) => {
                                let validity = app.validate(p.height, &p.value);
                                pending.extend(core.on_proposal(p, validity));
                            }
                        }
                    }
                    Err(e) => tracing::debug!(%from, "bad consensus frame: {e}"),
                },
                Event::Fired(t, g) => {
                    if timers.get(&t).map(|(gen_, _)| *gen_) == Some(g) {
                        timers.remove(&t);
                        pending = core.on_timeout(t);
                    }
                }
            }
        }
        for (_, (_, j)) in timers.drain() {
            j.abort();
        }
    });
    (input_tx, task)
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
