//! One request's round from this member's side, as a pure function: what we hold of it
//! ([`Own`], persisted in `rounds.redb` by [`super::own`]) and what the chain says of it
//! ([`Status`]) decide the next thing to do ([`Step`]), by [`next`].
//!
//! ```text
//!  (nothing) ──submit──► Submitted ──ordered──► (queued, building) ──built──► Built
//!      Built ──commitment published──► Committed ──reveal published──► Revealed
//!  any row ──decided──► (removed)
//! ```
//!
//! A stage records what we published; what to do next also depends on what the chain has
//! ORDERED, because our published messages live in the mempool, which a restart empties: a
//! commitment or reveal not yet ordered is published again, from any stage that holds the
//! secret (outcome and salt). The secret is saved durably before the commitment leaves, so
//! we never commit twice with two salts: without a secret, a round whose commitment by us is
//! ordered is left alone (building again would be a second, different commitment).

use synchronicity_verify::Phase;

/// What this member holds of a request (the kind of its row in `rounds.redb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Own {
    /// No row: not submitted through us, not built by us (or the row is gone).
    Nothing,
    /// Submitted through us, not yet seen ordered; the request is saved.
    Submitted,
    /// Built: the outcome and the commitment's salt are saved; the commitment may not have
    /// left yet.
    Built,
    /// Our commitment was published.
    Committed,
    /// Our reveal was published.
    Revealed,
}

impl Own {
    /// Every kind (for exhaustive tests).
    #[cfg(test)]
    pub(crate) const ALL: [Own; 5] = [
        Self::Nothing,
        Self::Submitted,
        Self::Built,
        Self::Committed,
        Self::Revealed,
    ];

    /// Whether this stage holds the secret (outcome and salt) of a commitment.
    fn has_secret(self) -> bool {
        matches!(self, Self::Built | Self::Committed | Self::Revealed)
    }
}

/// What the chain says of a request, as of the last applied height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    /// Neither open nor decided: not ordered (yet).
    Unordered,
    /// Open, in `phase`; whether our commitment and our reveal are ordered.
    Open {
        /// The round's phase.
        phase: Phase,
        /// Our commitment is in the chain.
        committed: bool,
        /// Our reveal is in the chain.
        revealed: bool,
    },
    /// Decided: its entry is in the log.
    Decided,
}

impl Status {
    /// Every status (for exhaustive tests).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Status> {
        let mut all = vec![Self::Unordered, Self::Decided];
        for phase in Phase::ALL {
            for committed in [false, true] {
                for revealed in [false, true] {
                    all.push(Self::Open {
                        phase,
                        committed,
                        revealed,
                    });
                }
            }
        }
        all
    }

    /// Open in the commit phase, our commitment not ordered: a build may still count.
    pub(crate) fn awaits_our_commitment(self) -> bool {
        matches!(
            self,
            Self::Open {
                phase: Phase::Commit,
                committed: false,
                ..
            }
        )
    }
}

/// What to do next for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// Gossip our saved request again (the group has not ordered it).
    Publish,
    /// The request is ordered and we have no outcome: forget the saved submission (if
    /// any) and queue the build.
    Build,
    /// Publish our commitment (saved secret, commitment not ordered).
    Commit,
    /// Publish our reveal (our commitment is ordered, our reveal is not).
    Reveal,
    /// The row is of no more use (the request is ordered or decided): remove it.
    Forget,
}

/// The next step for a request we hold `own` of, whose round is `status`; `None`: nothing
/// to do now (wait for the chain to move).
pub(crate) fn next(own: Own, status: Status) -> Option<Step> {
    use Phase::{Commit, Reveal};
    match (own, status) {
        (Own::Nothing, s) if s.awaits_our_commitment() => Some(Step::Build),
        (Own::Nothing, _) => None,
        (Own::Submitted, Status::Unordered) => Some(Step::Publish),
        (Own::Submitted, s) if s.awaits_our_commitment() => Some(Step::Build),
        (Own::Submitted, _) => Some(Step::Forget),
        (o, Status::Decided) if o.has_secret() => Some(Step::Forget),
        (
            _,
            Status::Open {
                phase: Commit,
                committed: false,
                ..
            },
        ) => Some(Step::Commit),
        (
            _,
            Status::Open {
                phase: Reveal,
                committed: true,
                revealed: false,
            },
        ) => Some(Step::Reveal),
        // Holding a secret: the chain has what we published, our commitment missed the
        // commit phase (nothing to reveal), or the round is not open yet: the row waits for
        // the decision.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Every own stage × every round status, each with the step written out.
    #[test]
    fn every_own_stage_and_round_status_has_its_step() {
        use Own::*;
        use Phase::{Commit, Reveal};
        use Step::{Build, Forget, Publish};
        let open = |phase, committed, revealed| Status::Open {
            phase,
            committed,
            revealed,
        };
        let (u, d) = (Status::Unordered, Status::Decided);
        let commit = Some(Step::Commit);
        let reveal = Some(Step::Reveal);
        #[rustfmt::skip]
        let table: Vec<(Own, Status, Option<Step>)> = vec![
            // Nothing: build while our commitment can still count, else leave it.
            (Nothing, u, None),
            (Nothing, open(Commit, false, false), Some(Build)),
            (Nothing, open(Commit, false, true), Some(Build)),
            (Nothing, open(Commit, true, false), None), // rows lost: never commit twice
            (Nothing, open(Commit, true, true), None),
            (Nothing, open(Reveal, false, false), None),
            (Nothing, open(Reveal, false, true), None),
            (Nothing, open(Reveal, true, false), None),
            (Nothing, open(Reveal, true, true), None),
            (Nothing, d, None),
            // Submitted: publish until ordered; once ordered, build (or just forget it).
            (Submitted, u, Some(Publish)),
            (Submitted, open(Commit, false, false), Some(Build)),
            (Submitted, open(Commit, false, true), Some(Build)),
            (Submitted, open(Commit, true, false), Some(Forget)),
            (Submitted, open(Commit, true, true), Some(Forget)),
            (Submitted, open(Reveal, false, false), Some(Forget)),
            (Submitted, open(Reveal, false, true), Some(Forget)),
            (Submitted, open(Reveal, true, false), Some(Forget)),
            (Submitted, open(Reveal, true, true), Some(Forget)),
            (Submitted, d, Some(Forget)),
            // Built: commit until our commitment is ordered, then reveal in the reveal phase.
            (Built, u, None),
            (Built, open(Commit, false, false), commit),
            (Built, open(Commit, false, true), commit),
            (Built, open(Commit, true, false), None),
            (Built, open(Commit, true, true), None),
            (Built, open(Reveal, false, false), None),
            (Built, open(Reveal, false, true), None),
            (Built, open(Reveal, true, false), reveal),
            (Built, open(Reveal, true, true), None),
            (Built, d, Some(Forget)),
            // Committed: the same (a restart lost the commitment if it was not ordered).
            (Committed, u, None),
            (Committed, open(Commit, false, false), commit),
            (Committed, open(Commit, false, true), commit),
            (Committed, open(Commit, true, false), None),
            (Committed, open(Commit, true, true), None),
            (Committed, open(Reveal, false, false), None),
            (Committed, open(Reveal, false, true), None),
            (Committed, open(Reveal, true, false), reveal),
            (Committed, open(Reveal, true, true), None),
            (Committed, d, Some(Forget)),
            // Revealed: reveal again while the chain lacks it; forget once decided.
            (Revealed, u, None),
            (Revealed, open(Commit, false, false), commit),
            (Revealed, open(Commit, false, true), commit),
            (Revealed, open(Commit, true, false), None),
            (Revealed, open(Commit, true, true), None),
            (Revealed, open(Reveal, false, false), None),
            (Revealed, open(Reveal, false, true), None),
            (Revealed, open(Reveal, true, false), reveal),
            (Revealed, open(Reveal, true, true), None),
            (Revealed, d, Some(Forget)),
        ];
        let mut seen: HashMap<(Own, Status), Option<Step>> = HashMap::new();
        for (own, status, step) in &table {
            assert!(
                seen.insert((*own, *status), *step).is_none(),
                "{own:?} × {status:?} twice in the table"
            );
            assert_eq!(next(*own, *status), *step, "{own:?} × {status:?}");
        }
        // Exhaustive: every pair is in the table.
        for own in Own::ALL {
            for status in Status::all() {
                assert!(
                    seen.contains_key(&(own, status)),
                    "{own:?} × {status:?} missing from the table"
                );
            }
        }
        assert_eq!(seen.len(), Own::ALL.len() * Status::all().len());
    }
}
