//! The builder's side of the rounds: this part owns the build queue, the builds running on
//! blocking threads, and our rounds in `rounds.redb` (written through [`NodeStorage`], whose
//! module numbers the crash points marked here). For each request it
//! asks the pure [`lifecycle::next`] what to do, given what we hold of it and what the chain
//! says: submit (durably, then gossip), build each newly ordered request, commit to the
//! outcome (after saving it durably), reveal in the reveal phase, resume all of that after a
//! restart, and forget rounds once they are decided.
//!
//! Builds run on tokio's blocking threads and report back on the loop's `builds` channel
//! ([`BuildEvent`]): unbounded, because what is sent is bounded by construction (at most
//! `max_parallel` builds run, each sends at most one event per phase and one result). The
//! queue is published after each change (`status` and metrics read it without asking us).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, watch};

use super::lifecycle::{self, Own, Status, Step};
use super::outbox::Outbox;
use super::own::{OwnState, Secret};
use super::queue::{BUILD_SECONDS_BUCKETS, BuildQueue};
use super::service::BuildService;
use super::shared::{Shared, StateView};
use super::storage::{NodeStorage, StorageError};
use crate::builder::{Outcome, Phase};
use crate::protocol::{
    Body, DecidedIndex, Duty, RevealedOutcome, attestation_statement, commitment, outcome_digest,
};
use crate::request::{PinnedRequest, RequestError};

/// What a build running on a blocking thread reports.
#[derive(Debug)]
pub(crate) enum BuildEvent {
    /// The build of the request entered a phase.
    Phase([u8; 32], Phase),
    /// The build ended: its outcome, or why the builder could not run at all.
    Finished([u8; 32], Result<Outcome, String>),
}

/// Why a request could not be submitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The request is malformed.
    #[error(transparent)]
    Invalid(#[from] RequestError),
    /// The log has an entry for it that cannot be read.
    #[error("cannot read the log's entry for this request")]
    Unreadable,
    /// Every attempt the committee allows was decided without a reproduced verdict.
    #[error(
        "{spec} was decided without a reproduced verdict in all {max} attempts the committee allows"
    )]
    AttemptsExhausted {
        /// `crate@version`.
        spec: String,
        /// The committee's `max_attempts`.
        max: u32,
    },
    /// It could not be saved durably (nothing was published).
    #[error(transparent)]
    Save(#[from] StorageError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// This node is not a member of its epoch yet (it follows the log: a joining node).
    #[error(
        "this node is not a member of epoch {epoch}: it follows the log until the epoch that adds it; submit to a member"
    )]
    NotVoter {
        /// The epoch it follows.
        epoch: u64,
    },
}

/// The builder driver (see the module doc).
pub(crate) struct BuilderDriver {
    shared: Arc<Shared>,
    service: Arc<dyn BuildService>,
    queue: BuildQueue,
    /// Where the queue is published after each change.
    queue_view: watch::Sender<BuildQueue>,
    /// Our rounds and submissions (`rounds.redb`).
    storage: Arc<dyn NodeStorage>,
    /// Where builds report (the loop's `builds` channel).
    events: mpsc::UnboundedSender<BuildEvent>,
}

impl BuilderDriver {
    /// Drives `service` over the rounds in `storage` for the node of `shared`, publishing the queue on
    /// `queue_view` (whose value sets `max_parallel`) and reporting builds on `events`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        service: Arc<dyn BuildService>,
        storage: Arc<dyn NodeStorage>,
        queue_view: watch::Sender<BuildQueue>,
        events: mpsc::UnboundedSender<BuildEvent>,
    ) -> Self {
        let queue = queue_view.borrow().clone();
        Self {
            shared,
            service,
            queue,
            queue_view,
            storage,
            events,
        }
    }

    /// The builder service (the follower pins with it too).
    pub(crate) fn service(&self) -> &Arc<dyn BuildService> {
        &self.service
    }

    /// After a restart: every open round in the order it was ordered (the queue is block
    /// order), then every other request we hold a row of, each moved on by
    /// [`lifecycle::next`] (build, commit, reveal, publish a saved submission again, or
    /// forget what was decided while we were away).
    pub(crate) fn resume(&mut self, outbox: &Outbox) {
        let view = self.shared.view();
        let mut open: Vec<([u8; 32], u64)> = view
            .state
            .open_requests()
            .filter_map(|(id, _)| {
                view.state
                    .round_status(id, &self.shared.committee)
                    .map(|s| (*id, s.opened_ms))
            })
            .collect();
        open.sort_by_key(|(id, at)| (*at, *id));
        let mut seen = HashSet::new();
        let ids: Vec<[u8; 32]> = open
            .into_iter()
            .map(|(id, _)| id)
            .chain(self.storage.round_ids())
            .filter(|id| seen.insert(*id))
            .collect();
        for id in ids {
            self.advance(id, outbox);
        }
    }

    /// Orders `request`, or its next attempt: when the same pins were decided without a
    /// reproduced verdict, the next attempt number is ordered instead (the committee's rules
    /// decide whether and when it may be: it waits in the mempool for its spacing). A
    /// request already open, or reproduced, is not ordered again.
    pub(crate) fn submit(
        &mut self,
        mut request: PinnedRequest,
        outbox: &Outbox,
    ) -> Result<[u8; 32], SubmitError> {
        request.validate()?;
        let view = self.shared.view();
        let store = &self.shared.store;
        let max = view.state.params().max_attempts;
        loop {
            let id = request.id();
            if view.state.is_open(&id) {
                return Ok(id);
            }
            match store.decision(&id) {
                None if store.is_decided(&id) => return Err(SubmitError::Unreadable),
                None => break,
                Some((true, _)) => return Ok(id), // reproduced: nothing to do
                Some((false, _)) if request.request.attempt >= max => {
                    return Err(SubmitError::AttemptsExhausted {
                        spec: request.request.spec(),
                        max,
                    });
                }
                Some((false, _)) => request.request.attempt += 1,
            }
        }
        let id = request.id();
        // Crash point 1 (see `storage`): durable before the submitter gets the id; a crash
        // before leaves no row and no id given out, after it the next start publishes it
        // again.
        self.storage
            .save_round(&id, &OwnState::Submitted(Box::new(request.clone())))?;
        outbox.emit(Body::Request(request));
        Ok(id)
    }

    /// Duties of an applied height: each request named is moved on (a newly ordered one is
    /// built, a round that entered its reveal phase is revealed).
    pub(crate) fn on_duties(&mut self, duties: Vec<Duty>, outbox: &Outbox) {
        for d in duties {
            let (Duty::Build(id) | Duty::Reveal(id)) = d;
            self.advance(id, outbox);
        }
    }

    /// Requests decided by an applied height: a queued build is dropped, rows go.
    pub(crate) fn on_decided(&mut self, ids: Vec<[u8; 32]>, outbox: &Outbox) {
        for id in ids {
            self.queue.forget(&id);
            self.advance(id, outbox);
        }
        self.publish_queue();
    }

    /// A report from a running build.
    pub(crate) fn on_build_event(&mut self, e: BuildEvent, outbox: &Outbox) {
        match e {
            BuildEvent::Phase(id, phase) => {
                self.queue.set_phase(&id, phase);
                self.publish_queue();
            }
            BuildEvent::Finished(id, result) => self.on_built(id, result, outbox),
        }
    }

    /// What the chain says of `id` as of the last applied height.
    fn status(&self, view: &StateView, id: &[u8; 32]) -> Status {
        let (shared, me) = (&self.shared, self.shared.me);
        match view.state.round_status(id, &shared.committee) {
            Some(st) => Status::Open {
                phase: st.phase,
                committed: st.committed.contains(&me),
                revealed: st.revealed.contains(&me),
            },
            // A read error counts as not decided: rows are kept, a submission published.
            None if shared.store.lookup_request(id).ok().flatten().is_some() => Status::Decided,
            None => Status::Unordered,
        }
    }

    /// Does what [`lifecycle::next`] says for `id`, and records the new stage.
    fn advance(&mut self, id: [u8; 32], outbox: &Outbox) {
        let own = self.storage.round(&id);
        let kind = own.as_ref().map_or(Own::Nothing, OwnState::kind);
        let status = self.status(&self.shared.view(), &id);
        let Some(step) = lifecycle::next(kind, status) else {
            return;
        };
        match (step, own) {
            (Step::Publish, Some(OwnState::Submitted(request))) => {
                tracing::info!(request = %request.request.spec(), "publishing a saved submission again");
                outbox.emit(Body::Request(*request));
            }
            (Step::Build, _) => {
                if kind == Own::Submitted {
                    // Crash point 3 (see `storage`), not durable: a row left is still
                    // `Submitted`, and the restart builds (or forgets it) again.
                    self.storage.forget_submitted(&id);
                }
                self.start_build(id);
            }
            (Step::Commit, Some(own)) => {
                let Some(secret) = own.secret() else { return };
                if self.commit(id, secret, outbox) && kind != Own::Committed {
                    // Crash point 5 (see `storage`), not durable: a lost stage leaves
                    // `Built`, which publishes the same commitment again.
                    self.record(&id, OwnState::Committed(secret.clone()));
                }
            }
            (Step::Reveal, Some(own)) => {
                let Some(secret) = own.secret() else { return };
                if self.reveal(id, secret, outbox) && kind != Own::Revealed {
                    // Crash point 6 (see `storage`), not durable: a lost stage leaves
                    // `Committed`, which publishes the same reveal again.
                    self.record(&id, OwnState::Revealed(secret.clone()));
                }
            }
            // Crash point 7 (see `storage`), not durable: a row left is found decided (or
            // ordered) at the next start and forgotten then.
            (Step::Forget, _) => self.storage.forget_round(&id),
            // `next` publishes only from a submission, commits and reveals only with a secret.
            (step, _) => {
                tracing::error!(request = %hex::encode(id), "no {step:?} from {kind:?}");
            }
        }
    }

    /// Records a stage that need not be durable (see `own`): a failure only means the next
    /// start repeats the step, with the same message.
    fn record(&self, id: &[u8; 32], state: OwnState) {
        if let Err(e) = self.storage.save_round(id, &state) {
            tracing::warn!(request = %hex::encode(id), "round stage not recorded: {e}");
        }
    }

    /// Queues the build of a newly ordered request (block order) and starts what fits.
    fn start_build(&mut self, id: [u8; 32]) {
        let requester = self.shared.view().state.requester(&id).unwrap_or(u32::MAX);
        self.queue.push(id, requester);
        self.start_queued_builds();
    }

    /// Starts queued builds while fewer than `max_parallel` run; a request whose commit
    /// phase is over by then is skipped (its commitment could not be ordered any more).
    fn start_queued_builds(&mut self) {
        while let Some(id) = self.queue.start_next() {
            let view = self.shared.view();
            let pinned = self
                .status(&view, &id)
                .awaits_our_commitment()
                .then(|| view.state.pinned(&id))
                .flatten();
            let Some(pinned) = pinned else {
                self.queue.finished(&id);
                continue;
            };
            let (service, tx) = (self.service.clone(), self.events.clone());
            tokio::task::spawn_blocking(move || {
                let progress = |p| {
                    let _ = tx.send(BuildEvent::Phase(id, p));
                };
                let result = service.build(&pinned, &progress);
                let _ = tx.send(BuildEvent::Finished(id, result));
            });
        }
        self.publish_queue();
    }

    fn on_built(&mut self, id: [u8; 32], result: Result<Outcome, String>, outbox: &Outbox) {
        if let Some(took) = self.queue.finished(&id) {
            let c = &self.shared.counters;
            c.builds.fetch_add(1, Ordering::Relaxed);
            c.build_ms
                .fetch_add(took.as_millis() as u64, Ordering::Relaxed);
            let secs = took.as_secs();
            let bucket = BUILD_SECONDS_BUCKETS
                .iter()
                .position(|b| secs < *b)
                .unwrap_or(BUILD_SECONDS_BUCKETS.len());
            c.build_seconds[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.start_queued_builds();
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                // A local failure is not an outcome: commit nothing, say why.
                tracing::error!(request = %hex::encode(id), "builder could not run, committing nothing: {e}");
                self.shared
                    .counters
                    .local_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.queue.local_failure(id, e);
                self.publish_queue();
                return;
            }
        };
        // What a crate author did to the sandbox, said once here, whether or not the round
        // still takes our commitment (the group's verdict says it again).
        if let Outcome::Failure { class, reason } = &outcome {
            self.shared.counters.build_failures[class.index()].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(request = %hex::encode(id), %class, "build failed: {reason}");
        }
        if !self
            .status(&self.shared.view(), &id)
            .awaits_our_commitment()
        {
            tracing::warn!(request = %hex::encode(id), "build finished after the commit phase");
            return;
        }
        if self
            .storage
            .round(&id)
            .is_some_and(|s| s.secret().is_some())
        {
            // Never a second secret: a second commitment would be an equivocation.
            tracing::warn!(request = %hex::encode(id), "built again; keeping the first outcome");
            return;
        }
        let outcome = match &outcome {
            Outcome::Success(m) => RevealedOutcome::Manifest(m.to_text()),
            Outcome::Failure { class, .. } => RevealedOutcome::Failure(*class),
        };
        let mut salt = [0u8; 32];
        if getrandom::fill(&mut salt).is_err() {
            tracing::error!("no randomness for a commitment salt");
            return;
        }
        // Crash point 4 (see `storage`): durable before the commitment leaves, so we can
        // reveal after a crash; a crash before leaves no row and no commitment (the restart
        // builds again), after it the restart commits to the saved secret.
        if let Err(e) = self
            .storage
            .save_round(&id, &OwnState::Built(Secret { outcome, salt }))
        {
            self.shared.halt(format!("cannot save the round file: {e}"));
            return;
        }
        self.advance(id, outbox);
    }

    /// Publishes our commitment to `secret`; false if it has no digest.
    fn commit(&self, id: [u8; 32], secret: &Secret, outbox: &Outbox) -> bool {
        let Some(digest) = outcome_digest(&secret.outcome) else {
            return false;
        };
        let c = commitment(&id, &digest, &secret.salt, &outbox.peer_id());
        outbox.emit(Body::Commit {
            request_id: id.to_vec(),
            commitment: c.to_vec(),
        });
        true
    }

    /// Publishes our reveal of `secret` with its attestation; false if nothing was sent.
    fn reveal(&self, id: [u8; 32], secret: &Secret, outbox: &Outbox) -> bool {
        let outcome = secret.outcome.clone();
        let Some(digest) = outcome_digest(&outcome) else {
            return false;
        };
        let statement = attestation_statement(self.shared.committee.origin(), &id, &digest);
        outbox.emit(Body::Reveal {
            request_id: id.to_vec(),
            outcome,
            salt: secret.salt.to_vec(),
            attestation: outbox.attest(&statement),
        });
        true
    }

    fn publish_queue(&self) {
        self.queue_view.send_replace(self.queue.clone());
    }
}
