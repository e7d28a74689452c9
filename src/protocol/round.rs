//! The per-request round, as a pure function of the decided chain: every node applies the
//! same blocks in the same order and so reaches the same phases, deadlines and verdicts.
//!
//! ```text
//! Request ──► Commit phase ──(all n committed, or block time ≥ opened + commit window)──►
//!             Reveal phase ──(every committer revealed, or time ≥ reveal start + window)──► Decided
//! ```
//!
//! Time is the decided block's timestamp (the consensus layer checks it is monotonic and
//! near the validators' clocks), never a local clock. A block is valid only if every message
//! in it is: a member's valid Ed25519 signature, and a state change allowed in the current
//! phase. Misbehaviour that is provable (a reveal that does not match its commitment, a bad
//! attestation signature, a second different commitment) IS includable, and recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use synchronicity_verify::entry::{
    Dissent, ENTRY_FORMAT, FAILURE_CLASSES, LogEntry, Misbehaviour, Verdict, attestation_statement,
    failure_digest,
};

use super::commitment::commitment;
use super::message::{Body, MessageError, RevealedOutcome, SignedMessage};
use crate::build::Manifest;
use crate::committee::Committee;
use crate::crypto::{BlsSignature, PartialSignature, ThresholdAggregator};
use crate::request::{BuildRequest, PinnedRequest};

/// Deadlines, in milliseconds of block time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolParams {
    /// From the request's block to the end of the commit phase.
    pub commit_window_ms: u64,
    /// From the start of the reveal phase to the decision.
    pub reveal_window_ms: u64,
}

impl Default for ProtocolParams {
    /// 30 minutes to build and commit, 2 minutes to reveal.
    fn default() -> Self {
        Self {
            commit_window_ms: 30 * 60 * 1000,
            reveal_window_ms: 2 * 60 * 1000,
        }
    }
}

/// A decided value: the block of one height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Consensus height.
    pub height: u64,
    /// Proposer's timestamp (ms since the Unix epoch), checked by consensus.
    pub time_ms: u64,
    /// Ordered protocol messages.
    pub messages: Vec<SignedMessage>,
}

/// The outcome's digest, or `None` if the reveal is malformed.
pub fn outcome_digest(o: &RevealedOutcome) -> Option<[u8; 32]> {
    match o {
        RevealedOutcome::Manifest(text) => Manifest::parse(text).ok().map(|m| m.digest()),
        RevealedOutcome::Failure(class) => FAILURE_CLASSES
            .contains(&class.as_str())
            .then(|| failure_digest(class)),
    }
}

/// A decided request: its log entry and the texts the entry pins by sha256 (the lockfile,
/// and the manifest when reproduced), which every member stores content-addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The entry appended to the log.
    pub entry: LogEntry,
    /// The lockfile text (`sha256 = entry.request.lockfile_sha256`).
    pub lockfile: String,
    /// The attested manifest text (`sha256 = entry.digest`), when reproduced.
    pub manifest: Option<String>,
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// A message's envelope is bad.
    #[error("message {index}: {source}")]
    Message {
        /// Position in the block.
        index: usize,
        /// Why.
        source: MessageError,
    },
    /// A message is not allowed in the current state.
    #[error("message {index}: {reason}")]
    NotAllowed {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: &'static str,
    },
    /// Heights or times go backwards.
    #[error("block {height} does not follow the last applied block")]
    OutOfOrder {
        /// Its height.
        height: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Commit,
    Reveal { since_ms: u64 },
}

#[derive(Debug, Clone)]
struct Round {
    request: BuildRequest,
    lockfile: String,
    opened_ms: u64,
    phase: Phase,
    commits: BTreeMap<u32, [u8; 32]>,
    /// Valid reveals: digest, outcome, attestation.
    reveals: BTreeMap<u32, ([u8; 32], RevealedOutcome, BlsSignature)>,
    misbehaviour: Vec<(u32, Misbehaviour)>,
}

/// What a node must do for a request after a block, beyond logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    /// Build this (newly ordered) request and commit.
    Build([u8; 32]),
    /// The reveal phase began: reveal if committed.
    Reveal([u8; 32]),
}

/// An open round, for duties and status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundStatus {
    /// The request.
    pub request: BuildRequest,
    /// `commit` or `reveal`.
    pub phase: &'static str,
    /// Block time the request was ordered (ms).
    pub opened_ms: u64,
    /// Block time at which the current phase ends (ms).
    pub deadline_ms: u64,
    /// Members whose commitment is in the chain.
    pub committed: Vec<u32>,
    /// Members whose valid reveal is in the chain.
    pub revealed: Vec<u32>,
    /// Members with recorded misbehaviour.
    pub misbehaving: Vec<u32>,
}

/// The protocol state of all open rounds.
#[derive(Debug, Clone, Default)]
pub struct ProtocolState {
    params: ProtocolParams,
    rounds: BTreeMap<[u8; 32], Round>,
    decided: BTreeMap<[u8; 32], u64>,
    last: Option<(u64, u64)>,
    /// The time of the block being applied or checked.
    pending_ms: u64,
}

fn id32(v: &[u8]) -> Option<[u8; 32]> {
    v.try_into().ok()
}

impl ProtocolState {
    /// An empty state.
    pub fn new(params: ProtocolParams) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    /// Requests not yet decided.
    pub fn open_requests(&self) -> impl Iterator<Item = (&[u8; 32], &BuildRequest)> {
        self.rounds.iter().map(|(id, r)| (id, &r.request))
    }

    /// An open request with its lockfile text (what a builder needs).
    pub fn pinned(&self, id: &[u8; 32]) -> Option<PinnedRequest> {
        self.rounds.get(id).map(|r| PinnedRequest {
            request: r.request.clone(),
            lockfile: r.lockfile.clone(),
        })
    }

    /// True when `id` was decided.
    pub fn is_decided(&self, id: &[u8; 32]) -> bool {
        self.decided.contains_key(id)
    }

    /// The earliest deadline among open rounds (ms), so the proposer knows when an empty
    /// block is needed to move a round on.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.rounds
            .values()
            .map(|r| match r.phase {
                Phase::Commit => r.opened_ms + self.params.commit_window_ms,
                Phase::Reveal { since_ms } => since_ms + self.params.reveal_window_ms,
            })
            .min()
    }

    /// Whether `msg` may be included at block time `now_ms` (validity for the proposer and
    /// for validators), given the messages already in the candidate block.
    pub fn check(
        &self,
        msg: &SignedMessage,
        now_ms: u64,
        committee: &Committee,
    ) -> Result<(), &'static str> {
        let mut probe = self.probe_at(now_ms);
        probe.apply_message(msg, committee).map(|_| ())
    }

    /// A copy at block time `now_ms` (commit deadlines passed), to try messages on.
    fn probe_at(&self, now_ms: u64) -> Self {
        let mut probe = self.clone();
        probe.pending_ms = now_ms;
        probe.advance_time(now_ms);
        probe
    }

    /// Of `candidates` (envelopes already verified), the positions of those that can go,
    /// in this order, into one block at time `now_ms`: what the proposer includes.
    /// Each candidate comes with its encoded size; the chosen ones add up to at most
    /// `max_bytes` (messages that do not apply take no room).
    pub fn select(
        &self,
        candidates: &[(&SignedMessage, usize)],
        now_ms: u64,
        committee: &Committee,
        max_bytes: usize,
    ) -> Vec<usize> {
        let mut probe = self.probe_at(now_ms);
        let mut bytes = 0usize;
        let mut chosen = Vec::new();
        for (i, (m, size)) in candidates.iter().enumerate() {
            if bytes.saturating_add(*size) > max_bytes {
                continue;
            }
            // apply_message changes nothing when it refuses.
            if probe.apply_message(m, committee).is_ok() {
                bytes += size;
                chosen.push(i);
            }
        }
        chosen
    }

    /// Whether any of `candidates` could go into a block at `now_ms` (stops at the first).
    pub fn any_applicable(
        &self,
        candidates: &[&SignedMessage],
        now_ms: u64,
        committee: &Committee,
    ) -> bool {
        let mut probe = self.probe_at(now_ms);
        candidates
            .iter()
            // A refused message changes nothing; the first accepted one ends the search.
            .any(|m| probe.apply_message(m, committee).is_ok())
    }

    /// Time of the last applied block (ms), 0 before the first.
    pub fn last_time_ms(&self) -> u64 {
        self.last.map(|(_, t)| t).unwrap_or(0)
    }

    /// The open round of request `id`, as seen after the last applied block.
    pub fn round_status(&self, id: &[u8; 32]) -> Option<RoundStatus> {
        let r = self.rounds.get(id)?;
        let (phase, deadline_ms) = match r.phase {
            Phase::Commit => ("commit", r.opened_ms + self.params.commit_window_ms),
            Phase::Reveal { since_ms } => ("reveal", since_ms + self.params.reveal_window_ms),
        };
        Some(RoundStatus {
            request: r.request.clone(),
            phase,
            opened_ms: r.opened_ms,
            deadline_ms,
            committed: r.commits.keys().copied().collect(),
            revealed: r.reveals.keys().copied().collect(),
            misbehaving: r.misbehaviour.iter().map(|(m, _)| *m).collect(),
        })
    }

    /// The height at which request `id` was decided.
    pub fn decided_at(&self, id: &[u8; 32]) -> Option<u64> {
        self.decided.get(id).copied()
    }

    /// Validates and applies a decided block atomically: on error nothing changes. Returns
    /// the log entries decided by it (in request-id order) and the node's duties.
    pub fn apply_block(
        &mut self,
        block: &Block,
        committee: &Committee,
    ) -> Result<(Vec<Decided>, Vec<Duty>), BlockError> {
        if let Some((h, t)) = self.last
            && (block.height <= h || block.time_ms < t)
        {
            return Err(BlockError::OutOfOrder {
                height: block.height,
            });
        }
        // Signatures first: nothing changes unless every envelope is good.
        for (index, m) in block.messages.iter().enumerate() {
            m.verify(committee)
                .map_err(|source| BlockError::Message { index, source })?;
        }
        let mut next = self.clone();
        next.pending_ms = block.time_ms;
        let mut duties = Vec::new();
        duties.extend(next.advance_time(block.time_ms));
        for (index, m) in block.messages.iter().enumerate() {
            if let Some(d) = next
                .apply_message(m, committee)
                .map_err(|reason| BlockError::NotAllowed { index, reason })?
            {
                duties.push(d);
            }
        }
        // Early transitions: everyone committed / every committer revealed.
        let mut entries = Vec::new();
        let ids: Vec<[u8; 32]> = next.rounds.keys().copied().collect();
        for id in ids {
            let r = &next.rounds[&id];
            match r.phase {
                Phase::Commit if r.commits.len() == committee.len() => {
                    next.rounds.get_mut(&id).expect("present").phase = Phase::Reveal {
                        since_ms: block.time_ms,
                    };
                    duties.push(Duty::Reveal(id));
                }
                Phase::Reveal { .. }
                    if r.commits.keys().all(|m| {
                        r.reveals.contains_key(m) || r.misbehaviour.iter().any(|(x, _)| x == m)
                    }) =>
                {
                    entries.push(next.decide(&id, block.height, committee));
                }
                _ => {}
            }
        }
        // Deadline decisions found by advance_time happen here too.
        let expired: Vec<[u8; 32]> = next
            .rounds
            .iter()
            .filter(|(_, r)| matches!(r.phase, Phase::Reveal { since_ms } if block.time_ms >= since_ms + next.params.reveal_window_ms))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            entries.push(next.decide(&id, block.height, committee));
        }
        entries.sort_by_key(|d| d.entry.request.id());
        next.last = Some((block.height, block.time_ms));
        *self = next;
        Ok((entries, duties))
    }

    /// Commit deadlines that passed move rounds to the reveal phase.
    fn advance_time(&mut self, now_ms: u64) -> Vec<Duty> {
        let mut duties = Vec::new();
        for (id, r) in self.rounds.iter_mut() {
            if r.phase == Phase::Commit && now_ms >= r.opened_ms + self.params.commit_window_ms {
                r.phase = Phase::Reveal { since_ms: now_ms };
                duties.push(Duty::Reveal(*id));
            }
        }
        duties
    }

    fn apply_message(
        &mut self,
        msg: &SignedMessage,
        committee: &Committee,
    ) -> Result<Option<Duty>, &'static str> {
        let signer = msg.signer;
        match &msg.body {
            Body::Request(pinned) => {
                pinned.validate().map_err(|_| "invalid request")?;
                let id = pinned.id();
                if self.rounds.contains_key(&id) || self.decided.contains_key(&id) {
                    return Err("request already ordered");
                }
                self.rounds.insert(
                    id,
                    Round {
                        request: pinned.request.clone(),
                        lockfile: pinned.lockfile.clone(),
                        opened_ms: self.pending_ms,
                        phase: Phase::Commit,
                        commits: BTreeMap::new(),
                        reveals: BTreeMap::new(),
                        misbehaviour: Vec::new(),
                    },
                );
                Ok(Some(Duty::Build(id)))
            }
            Body::Commit {
                request_id,
                commitment: c,
            } => {
                let id = id32(request_id).ok_or("bad request id")?;
                let c = id32(c).ok_or("bad commitment")?;
                let r = self
                    .rounds
                    .get_mut(&id)
                    .ok_or("commit for an unknown or decided request")?;
                if r.phase != Phase::Commit {
                    return Err("commit after the commit phase");
                }
                match r.commits.get(&signer) {
                    None => {
                        r.commits.insert(signer, c);
                    }
                    Some(old) if *old == c => return Err("duplicate commitment"),
                    Some(_) => {
                        if r.misbehaviour
                            .contains(&(signer, Misbehaviour::DoubleCommitment))
                        {
                            return Err("double commitment already recorded");
                        }
                        r.misbehaviour
                            .push((signer, Misbehaviour::DoubleCommitment));
                    }
                }
                Ok(None)
            }
            Body::Reveal {
                request_id,
                outcome,
                salt,
                attestation,
            } => {
                let id = id32(request_id).ok_or("bad request id")?;
                let salt = id32(salt).ok_or("bad salt")?;
                let r = self
                    .rounds
                    .get_mut(&id)
                    .ok_or("reveal for an unknown or decided request")?;
                if !matches!(r.phase, Phase::Reveal { .. }) {
                    return Err("reveal outside the reveal phase");
                }
                let committed = *r
                    .commits
                    .get(&signer)
                    .ok_or("reveal without a commitment")?;
                if r.reveals.contains_key(&signer)
                    || r.misbehaviour
                        .iter()
                        .any(|(m, k)| *m == signer && *k != Misbehaviour::DoubleCommitment)
                {
                    return Err("second reveal");
                }
                let digest = outcome_digest(outcome).ok_or("malformed outcome")?;
                let member = &committee.members()[signer as usize];
                if commitment(&id, &digest, &salt, &member.peer_id) != committed {
                    r.misbehaviour.push((signer, Misbehaviour::RevealMismatch));
                    return Ok(None);
                }
                let statement = attestation_statement(committee.origin(), &id, &digest);
                let sig = BlsSignature::from_bytes(attestation).ok();
                match sig.filter(|s| {
                    member
                        .bls_public_key
                        .verify(statement.as_bytes(), s)
                        .is_ok()
                }) {
                    Some(s) => {
                        r.reveals.insert(signer, (digest, outcome.clone(), s));
                    }
                    None => r.misbehaviour.push((signer, Misbehaviour::BadAttestation)),
                }
                Ok(None)
            }
        }
    }

    fn decide(&mut self, id: &[u8; 32], height: u64, committee: &Committee) -> Decided {
        let r = self.rounds.remove(id).expect("deciding an open round");
        self.decided.insert(*id, height);
        let mut groups: BTreeMap<[u8; 32], Vec<u32>> = BTreeMap::new();
        for (m, (d, _, _)) in &r.reveals {
            groups.entry(*d).or_default().push(*m);
        }
        let best = groups
            .iter()
            .max_by_key(|(d, ms)| (ms.len(), std::cmp::Reverse(**d)))
            .map(|(d, ms)| (*d, ms.clone()));
        let t = committee.threshold();
        let (verdict, digest, manifest, attestation, majority) = match best {
            Some((d, ms)) if ms.len() >= t => {
                let statement = attestation_statement(committee.origin(), id, &d);
                let mut agg = ThresholdAggregator::new(committee.keys(), statement.into_bytes());
                for m in &ms {
                    let sig = r.reveals[m].2.clone();
                    agg.add(PartialSignature {
                        signer: *m as usize,
                        signature: sig,
                    })
                    .expect("verified on reveal");
                }
                let ts = agg.finish(t).expect("at least t");
                let (verdict, manifest) = match &r.reveals[&ms[0]].1 {
                    RevealedOutcome::Manifest(text) => (Verdict::Reproduced, Some(text.clone())),
                    RevealedOutcome::Failure(_) => (Verdict::Failed, None),
                };
                (verdict, d.to_vec(), manifest, ts.to_bytes(), ms)
            }
            _ => (
                Verdict::NotReproduced,
                Vec::new(),
                None,
                Vec::new(),
                Vec::new(),
            ),
        };
        let dissenters = r
            .reveals
            .iter()
            .filter(|(m, _)| !majority.contains(m))
            .map(|(m, (d, _, _))| Dissent {
                member: *m,
                digest: d.to_vec(),
            })
            .collect();
        let silent = r
            .commits
            .keys()
            .filter(|m| !r.reveals.contains_key(m))
            .copied()
            .collect();
        Decided {
            entry: LogEntry {
                format: ENTRY_FORMAT,
                request: r.request,
                verdict,
                digest,
                attestation,
                dissenters,
                silent,
                misbehaviour: r.misbehaviour,
                height,
            },
            lockfile: r.lockfile,
            manifest,
        }
    }
}
