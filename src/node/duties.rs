//! The builder's side of a round: build each newly ordered request, commit to the outcome
//! (after saving it durably), reveal in the reveal phase, resume all of that after a restart,
//! and forget rounds once they are decided.

use std::sync::atomic::Ordering;

use super::own::OwnRound;
use super::run::NodeLoop;
use crate::builder::Outcome;
use crate::protocol::{Body, Phase, RevealedOutcome, attestation_statement, commitment};

impl NodeLoop {
    /// After a restart: commit or reveal for rounds that were open when we stopped.
    pub(crate) fn resume_rounds(&mut self) {
        self.forget_decided_rounds();
        // In the order the requests were ordered (the queue is block order).
        let mut open: Vec<([u8; 32], u64)> = {
            let inner = self.shared.lock();
            inner
                .state
                .open_requests()
                .filter_map(|(id, _)| {
                    inner
                        .state
                        .round_status(id, &self.shared.committee)
                        .map(|s| (*id, s.opened_ms))
                })
                .collect()
        };
        open.sort_by_key(|(id, at)| (*at, *id));
        let open: Vec<[u8; 32]> = open.into_iter().map(|(id, _)| id).collect();
        for id in open {
            let Some(st) = self.round_status(&id) else {
                continue;
            };
            let me = self.shared.me;
            let own = self.rounds.load(&id);
            match (st.phase, own) {
                (Phase::Commit, None) => self.start_build(id),
                (Phase::Commit, Some(r)) if !st.committed.contains(&me) => self.commit_round(id, r),
                (Phase::Reveal, Some(_)) if st.committed.contains(&me) => self.reveal(id),
                _ => {}
            }
        }
    }

    /// Queues the build of a newly ordered request (block order) and starts what fits.
    pub(crate) fn start_build(&mut self, id: [u8; 32]) {
        let requester = self.shared.lock().state.requester(&id).unwrap_or(u32::MAX);
        self.shared.build_queue().push(id, requester);
        self.start_queued_builds();
    }

    /// Starts queued builds while fewer than `max_parallel` run; a request whose commit
    /// phase is over by then is skipped (its commitment could not be ordered any more).
    pub(crate) fn start_queued_builds(&mut self) {
        loop {
            let Some(id) = self.shared.build_queue().start_next() else {
                return;
            };
            let pinned = self
                .round_status(&id)
                .filter(|s| s.phase == Phase::Commit)
                .and_then(|_| self.shared.lock().state.pinned(&id));
            let Some(pinned) = pinned else {
                self.shared.build_queue().finished(&id);
                continue;
            };
            let (service, tx) = (self.service.clone(), self.built_tx.clone());
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                let progress = |p| shared.build_queue().set_phase(&id, p);
                let result = service.build(&pinned, &progress);
                let _ = tx.send((id, result));
            });
        }
    }

    pub(crate) fn on_built(&mut self, id: [u8; 32], result: Result<Outcome, String>) {
        if let Some(took) = self.shared.build_queue().finished(&id) {
            let c = &self.shared.counters;
            c.builds.fetch_add(1, Ordering::Relaxed);
            c.build_ms
                .fetch_add(took.as_millis() as u64, Ordering::Relaxed);
            let secs = took.as_secs();
            let bucket = super::queue::BUILD_SECONDS_BUCKETS
                .iter()
                .position(|b| secs < *b)
                .unwrap_or(super::queue::BUILD_SECONDS_BUCKETS.len());
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
                self.shared.build_queue().local_failure(id, e);
                return;
            }
        };
        let committing = self
            .round_status(&id)
            .is_some_and(|s| s.phase == Phase::Commit);
        if !committing {
            tracing::warn!(request = %hex::encode(id), "build finished after the commit phase");
            return;
        }
        let revealed = match &outcome {
            Outcome::Success(m) => RevealedOutcome::Manifest(m.to_text()),
            Outcome::Failure { class, reason } => {
                self.shared.counters.build_failures[class.index()].fetch_add(1, Ordering::Relaxed);
                // What a crate author did to the sandbox, said once here (the group's verdict
                // says it again).
                tracing::warn!(request = %hex::encode(id), %class, "build failed: {reason}");
                RevealedOutcome::Failure(*class)
            }
        };
        let mut salt = [0u8; 32];
        if getrandom::fill(&mut salt).is_err() {
            tracing::error!("no randomness for a commitment salt");
            return;
        }
        let round = OwnRound {
            outcome: revealed,
            salt: salt.to_vec(),
        };
        // Durable before the commitment leaves: we must be able to reveal after a crash.
        if let Err(e) = self.rounds.save(&id, &round) {
            self.shared.halt(format!("cannot save the round file: {e}"));
            return;
        }
        self.commit_round(id, round);
    }

    fn commit_round(&mut self, id: [u8; 32], round: OwnRound) {
        let Some(digest) = crate::protocol::outcome_digest(&round.outcome) else {
            return;
        };
        let Ok(salt) = <[u8; 32]>::try_from(round.salt.as_slice()) else {
            return;
        };
        let c = commitment(&id, &digest, &salt, &self.identity.peer_id());
        self.emit(Body::Commit {
            request_id: id.to_vec(),
            commitment: c.to_vec(),
        });
    }

    pub(crate) fn reveal(&mut self, id: [u8; 32]) {
        let Some(round) = self.rounds.load(&id) else {
            return; // we did not commit (build not done in time, or it failed to run)
        };
        let Some(digest) = crate::protocol::outcome_digest(&round.outcome) else {
            return;
        };
        let statement = attestation_statement(self.shared.committee.origin(), &id, &digest);
        let attestation = self.bls.sign(statement.as_bytes()).to_bytes().to_vec();
        self.emit(Body::Reveal {
            request_id: id.to_vec(),
            outcome: round.outcome,
            salt: round.salt,
            attestation,
        });
    }

    /// Removes the round files of requests decided while we were away (the ones decided
    /// while we run go as their entries are applied).
    fn forget_decided_rounds(&mut self) {
        let decided: Vec<[u8; 32]> = self
            .rounds
            .ids()
            .into_iter()
            .filter(|id| {
                self.shared
                    .store
                    .lookup_request(id)
                    .ok()
                    .flatten()
                    .is_some()
            })
            .collect();
        for id in decided {
            self.rounds.remove(&id);
        }
    }
}
