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
    /// Stop.
    Shutdown,
}

enum Event {
    Input(ActorInput),
    Fired(Timeout, u64),
}

/// Starts the actor at `first_height`; returns its input channel and task.
pub fn spawn<A: App>(
    mut core: Core,
    mut app: A,
    net: NetworkHandle,
    peers: Vec<PeerId>,
    first_height: Height,
) -> (mpsc::Sender<ActorInput>, JoinHandle<()>) {
    let (input_tx, mut input_rx) = mpsc::channel::<ActorInput>(4096);
    let task = tokio::spawn(async move {
        let (timer_tx, mut timer_rx) = mpsc::channel::<(Timeout, u64)>(1024);
        let mut timers: HashMap<Timeout, (u64, JoinHandle<()>)> = HashMap::new();
        let mut generation = 0u64;
        let mut pending = core.start_height(first_height);
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
                            pending.extend(core.start_height(Height(height.0 + 1)));
                        }
                    }
                }
            }
            let event = tokio::select! {
                i = input_rx.recv() => match i { Some(i) => Event::Input(i), None => break },
                Some((t, g)) = timer_rx.recv() => Event::Fired(t, g),
            };
            match event {
                Event::Input(ActorInput::Shutdown) => break,
                Event::Input(ActorInput::Frame { from, data }) => match Wire::decode(&data) {
                    Ok(Wire::Vote(v)) => pending = core.on_vote(v),
                    Ok(Wire::Proposal(p)) => {
                        let validity = app.validate(p.height, &p.value);
                        pending = core.on_proposal(p, validity);
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
