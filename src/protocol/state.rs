//! The protocol state of all OPEN rounds, and the block rules. Decided requests are looked
//! up in the log's index ([`DecidedIndex`]), so the state is bounded by open work, not by
//! history.
//!
//! Time is the decided block's timestamp (the validators check it is monotonic and near
//! their clocks), never a local clock. A block is valid only if every message in it is: a
//! member's valid Ed25519 signature (verified once per node, [`EnvelopeCache`]), and a
//! state change allowed in the current phase; a request must also pass
//! [`super::check_request`] (the committee's toolchain and target). Provable misbehaviour (a reveal that does not
//! match its commitment, a second different commitment) IS includable, and recorded.
//!
//! Nothing clones the whole state: selection, validation and application work on an
//! [`Overlay`] that copies only the rounds a block touches; applying merges it, and the
//! overlay's changes are exactly the rows the node stores with the height. Rounds are
//! shared (`Arc`), so a copy of the state, as the node publishes after each height, copies
//! one pointer per open round.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::change::{CHANGE_ROW_ID, ChangeState};
use super::envelopes::EnvelopeCache;
use super::message::{Body, MessageError, SignedMessage};
use super::params::{BLOCK_OVERHEAD, ProtocolParams};
use super::round::{AttestationGroup, Decided, Round, RoundPhase, batch_item};
use crate::codec;
use crate::committee::Committee;
use crate::crypto::{BatchItem, BlsPublicKey, BlsSignature, SIGNATURE_DST, verify_batch};
use crate::request::{BuildRequest, PinnedRequest};
use synchronicity_verify::Phase;

type Id = [u8; 32];

/// A message's kind, in the order a proposer includes them ([`proposal_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Closes a round (its reveal phase ends early once every committer revealed).
    Reveal,
    /// Moves a round to its reveal phase.
    Commit,
    /// Approves the next committee (rare: one per member and block, one live per member).
    Approve,
    /// Opens a round (more work for every builder).
    Request,
}

impl Kind {
    pub(crate) fn of(m: &SignedMessage) -> Self {
        match m.body {
            Body::Reveal { .. } => Kind::Reveal,
            Body::Commit { .. } => Kind::Commit,
            Body::Request(_) => Kind::Request,
            Body::Approve { .. } => Kind::Approve,
        }
    }
}

/// The order in which a proposer considers candidates (given by signer and kind, in
/// arrival order): every reveal before any commitment, every commitment before any
/// request; within a kind, the signers take turns (the first of each signer, in signer
/// order, then the second of each, ...), each signer's own in arrival order. So a block
/// whose limits run out holds as many of an honest member's messages of a kind as of a
/// flooding member's, and a flood of requests or commitments never takes the place of a
/// reveal. Returns positions into the inputs.
pub(crate) fn proposal_order(signers: &[u32], kinds: &[Kind]) -> Vec<usize> {
    // (kind, turn within its signer and kind, signer, arrival) sorts into that order.
    let mut turns: BTreeMap<(Kind, u32), usize> = BTreeMap::new();
    let mut keyed: Vec<(Kind, usize, u32, usize)> = signers
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (s, k))| {
            let turn = turns.entry((*k, *s)).or_default();
            let key = (*k, *turn, *s, i);
            *turn += 1;
            key
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, _, i)| i).collect()
}

/// Most new requests of one member a proposer puts into one block (see
/// [`ProtocolState::select`]).
pub(crate) const MAX_REQUESTS_PER_MEMBER_IN_BLOCK: usize = 64;

/// A decided value: the block of one height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Consensus height.
    pub height: u64,
    /// Proposer's timestamp (ms since the Unix epoch), checked by validators.
    pub time_ms: u64,
    /// Ordered protocol messages.
    pub messages: Vec<SignedMessage>,
}

/// Where requests decided before are looked up (the log's request index).
pub trait DecidedIndex {
    /// True when request `id` has an entry in the log.
    fn is_decided(&self, id: &Id) -> bool;
    /// For a decided request: whether its verdict was reproduced, and the block time of
    /// the height that decided it (for the next attempt's spacing).
    fn decision(&self, id: &Id) -> Option<(bool, u64)>;
}

/// Decided requests in memory (tests): id → (reproduced, block time).
impl DecidedIndex for std::collections::HashMap<Id, (bool, u64)> {
    fn is_decided(&self, id: &Id) -> bool {
        self.contains_key(id)
    }
    fn decision(&self, id: &Id) -> Option<(bool, u64)> {
        self.get(id).copied()
    }
}

/// Why a request's attempt may not be ordered now, if it may not.
fn check_attempt(
    pinned: &PinnedRequest,
    params: &ProtocolParams,
    now_ms: u64,
    decided: &dyn DecidedIndex,
) -> Result<(), &'static str> {
    let attempt = pinned.request.attempt;
    if attempt > params.max_attempts {
        return Err("attempt beyond the committee's max_attempts");
    }
    if attempt <= 1 {
        return Ok(());
    }
    let mut previous = pinned.request.clone();
    previous.attempt = attempt - 1;
    match decided.decision(&previous.id()) {
        None => Err("a new attempt before the previous one was decided"),
        Some((true, _)) => Err("a new attempt after a reproduced verdict"),
        Some((false, at)) if now_ms < at.saturating_add(params.attempt_spacing_ms) => {
            Err("a new attempt before the committee's attempt_spacing_secs")
        }
        Some(_) => Ok(()),
    }
}

/// What the rules need besides the state: the committee, the decided-request index and the
/// node's envelope cache.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The group (its `[protocol]` rules are in the state's params).
    pub committee: &'a Committee,
    /// Requests decided before.
    pub decided: &'a dyn DecidedIndex,
    /// Envelopes verified before.
    pub envelopes: &'a EnvelopeCache,
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
    /// The epoch ended at the previous block (a committee change): this state applies no
    /// more blocks. Also: a scheduled change whose entry cannot be made (cannot happen for
    /// approvals the state verified).
    #[error("block {height}: the epoch ended with a committee change")]
    EpochEnded {
        /// Its height.
        height: u64,
    },
    /// More messages or bytes than the committee's rules allow.
    #[error("block {height} exceeds the committee's limits ({what})")]
    TooLarge {
        /// Its height.
        height: u64,
        /// Which limit.
        what: &'static str,
    },
}

/// What a node must do for a request after a block, beyond logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    /// Build this (newly ordered) request and commit.
    Build(Id),
    /// The reveal phase began: reveal if committed.
    Reveal(Id),
}

/// An open round, for duties and status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundStatus {
    /// The request.
    pub request: BuildRequest,
    /// The phase it is in.
    pub phase: Phase,
    /// Block time the request was ordered (ms).
    pub opened_ms: u64,
    /// Block time at which the current phase ends at the latest (ms).
    pub deadline_ms: u64,
    /// Members whose commitment is in the chain.
    pub committed: Vec<u32>,
    /// Members whose reveal is in the chain.
    pub revealed: Vec<u32>,
    /// Members with recorded misbehaviour.
    pub misbehaving: Vec<u32>,
}

/// The result of applying a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Entries decided by it, in request-id order.
    pub decided: Vec<Decided>,
    /// The node's duties.
    pub duties: Vec<Duty>,
    /// The open rounds it changed: the new row (CBOR) or `None` for a round that closed.
    /// Stored with the height, they let a restart load the state instead of replaying.
    /// The committee change under way, when the block changed it, is the row of
    /// [`CHANGE_ROW_ID`].
    pub changed_rounds: Vec<(Id, Option<Vec<u8>>)>,
    /// The committee change this block ends the epoch with: a change was scheduled and no
    /// round is open after it. The node appends this entry after the block's decided
    /// entries, and the next height is the next epoch's; this state applies no more blocks.
    pub change: Option<synchronicity_verify::ChangeEntry>,
}

/// A block's effects, computed and not yet applied.
#[derive(Debug)]
pub struct Prepared {
    applied: Applied,
    changes: BTreeMap<Id, Option<Round>>,
    change_state: Option<ChangeState>,
    ended: bool,
    last: (u64, u64),
}

impl Prepared {
    /// What applying it decides and changes.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }
}

/// Open rounds plus a block's changes to them (copy on write, per round).
struct Overlay<'s> {
    base: &'s BTreeMap<Id, Arc<Round>>,
    changed: BTreeMap<Id, Option<Round>>,
    /// Open rounds per requester in `base`, and the change the overlay made to them.
    base_requests: &'s BTreeMap<u32, usize>,
    requests_delta: BTreeMap<u32, isize>,
    /// The committee change under way, and the overlay's copy once a message changed it.
    base_change: &'s ChangeState,
    change: Option<ChangeState>,
    /// Members whose approval this block already holds (one each per block).
    approved: std::collections::BTreeSet<u32>,
    now_ms: u64,
    /// The height the messages are ordered at (the next height when only checking).
    height: u64,
    params: &'s ProtocolParams,
}

impl<'s> Overlay<'s> {
    fn new(state: &'s ProtocolState, now_ms: u64, height: u64) -> Self {
        Self {
            base: &state.rounds,
            changed: BTreeMap::new(),
            base_requests: &state.open_by_requester,
            requests_delta: BTreeMap::new(),
            base_change: &state.change,
            change: None,
            approved: Default::default(),
            now_ms,
            height,
            params: &state.params,
        }
    }
    fn change(&self) -> &ChangeState {
        self.change.as_ref().unwrap_or(self.base_change)
    }
    fn change_mut(&mut self) -> &mut ChangeState {
        self.change.get_or_insert_with(|| self.base_change.clone())
    }
    /// Open rounds whose request `member` made.
    fn open_requests_of(&self, member: u32) -> usize {
        let base = self.base_requests.get(&member).copied().unwrap_or(0);
        base.saturating_add_signed(self.requests_delta.get(&member).copied().unwrap_or(0))
    }
    fn count_requester(&mut self, requester: Option<u32>, by: isize) {
        if let Some(m) = requester {
            *self.requests_delta.entry(m).or_default() += by;
        }
    }
    fn get(&self, id: &Id) -> Option<&Round> {
        match self.changed.get(id) {
            Some(c) => c.as_ref(),
            None => self.base.get(id).map(|r| &**r),
        }
    }
    fn get_mut(&mut self, id: &Id) -> Option<&mut Round> {
        if !self.changed.contains_key(id) {
            let r = Round::clone(self.base.get(id)?);
            self.changed.insert(*id, Some(r));
        }
        self.changed.get_mut(id)?.as_mut()
    }
    fn insert(&mut self, id: Id, r: Round) {
        let old = self.get(&id).and_then(|r| r.requester);
        self.count_requester(old, -1);
        self.count_requester(r.requester, 1);
        self.changed.insert(id, Some(r));
    }
    fn remove(&mut self, id: &Id) -> Option<Round> {
        let r = match self.changed.remove(id) {
            Some(c) => c,
            None => self.base.get(id).map(|r| Round::clone(r)),
        };
        self.count_requester(r.as_ref().and_then(|r| r.requester), -1);
        self.changed.insert(*id, None);
        r
    }
    /// Open rounds' ids (ascending).
    fn ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self
            .base
            .keys()
            .filter(|id| !matches!(self.changed.get(*id), Some(None)))
            .copied()
            .collect();
        ids.extend(
            self.changed
                .iter()
                .filter(|(id, r)| r.is_some() && !self.base.contains_key(*id))
                .map(|(id, _)| *id),
        );
        ids.sort_unstable();
        ids
    }
}

/// The protocol state of all open rounds.
#[derive(Debug, Clone, Default)]
pub struct ProtocolState {
    params: ProtocolParams,
    /// Each round behind an `Arc`, so a copy of the state (the view the node publishes
    /// after each height) costs a pointer per open round, not the rounds.
    rounds: BTreeMap<Id, Arc<Round>>,
    /// How many of `rounds` each member's requests opened (the committee's
    /// `max_open_requests_per_member` bounds it); derived from `rounds`.
    open_by_requester: BTreeMap<u32, usize>,
    /// The committee change under way (pending approvals, or scheduled).
    change: Arc<ChangeState>,
    /// The epoch ended at the last applied block: no further block applies to this state.
    ended: bool,
    last: Option<(u64, u64)>,
}

impl ProtocolState {
    /// An empty state under `params` (the committee's rules: [`ProtocolParams::of`]).
    pub fn new(params: ProtocolParams) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    /// The state stored with the last applied height: its height and block time, and the
    /// rows of [`Applied::changed_rounds`] that are still open (with the committee change
    /// under way, at [`CHANGE_ROW_ID`]).
    pub fn from_snapshot(
        params: ProtocolParams,
        last: Option<(u64, u64)>,
        rows: impl IntoIterator<Item = (Id, Vec<u8>)>,
    ) -> Result<Self, String> {
        let mut rounds = BTreeMap::new();
        let mut change = ChangeState::default();
        for (id, bytes) in rows {
            if id == CHANGE_ROW_ID {
                change = codec::from_slice(&bytes, super::MAX_MESSAGE_SIZE * 64)
                    .map_err(|e| format!("committee change row: {e}"))?;
                continue;
            }
            let r: Round = codec::from_slice(&bytes, super::MAX_MESSAGE_SIZE * 64)
                .map_err(|e| format!("open round {}: {e}", hex::encode(id)))?;
            if r.request.id() != id {
                return Err(format!(
                    "open round {}: stored under another id",
                    hex::encode(id)
                ));
            }
            rounds.insert(id, Arc::new(r));
        }
        let mut open_by_requester = BTreeMap::new();
        for m in rounds.values().filter_map(|r| r.requester) {
            *open_by_requester.entry(m).or_default() += 1;
        }
        Ok(Self {
            params,
            rounds,
            open_by_requester,
            change: Arc::new(change),
            ended: false,
            last,
        })
    }

    /// The committee change under way.
    pub fn change(&self) -> &ChangeState {
        &self.change
    }

    /// True once a block ended the epoch (its [`Applied::change`]): the node moves to the
    /// next epoch's state.
    pub fn epoch_ended(&self) -> bool {
        self.ended
    }

    /// How many open rounds `member`'s requests hold (bounded by the committee's
    /// `max_open_requests_per_member`).
    pub fn open_requests_of(&self, member: u32) -> usize {
        self.open_by_requester.get(&member).copied().unwrap_or(0)
    }

    /// The rules in force.
    pub fn params(&self) -> &ProtocolParams {
        &self.params
    }

    /// Requests not yet decided.
    pub fn open_requests(&self) -> impl Iterator<Item = (&Id, &BuildRequest)> {
        self.rounds.iter().map(|(id, r)| (id, &r.request))
    }

    /// Number of open rounds.
    pub fn open_count(&self) -> usize {
        self.rounds.len()
    }

    /// True when `id`'s round is open.
    pub fn is_open(&self, id: &Id) -> bool {
        self.rounds.contains_key(id)
    }

    /// The member whose request opened the round of `id` (if open, and known).
    pub fn requester(&self, id: &Id) -> Option<u32> {
        self.rounds.get(id).and_then(|r| r.requester)
    }

    /// An open request with its lockfile text (what a builder needs).
    pub fn pinned(&self, id: &Id) -> Option<PinnedRequest> {
        self.rounds.get(id).map(|r| PinnedRequest {
            request: r.request.clone(),
            lockfile: r.lockfile.clone(),
            recipe: r.recipe.clone(),
        })
    }

    /// The earliest deadline among open rounds (ms), so the proposer knows when a block is
    /// needed to move a round on.
    pub fn next_deadline_ms(&self, committee: &Committee) -> Option<u64> {
        let t = committee.threshold();
        self.rounds
            .values()
            .map(|r| r.deadline_ms(&self.params, t))
            .min()
    }

    /// Time of the last applied block (ms), 0 before the first.
    pub fn last_time_ms(&self) -> u64 {
        self.last.map(|(_, t)| t).unwrap_or(0)
    }

    /// Height and time of the last applied block.
    pub fn last_block(&self) -> Option<(u64, u64)> {
        self.last
    }

    /// The open round of request `id`, as seen after the last applied block.
    pub fn round_status(&self, id: &Id, committee: &Committee) -> Option<RoundStatus> {
        let r = self.rounds.get(id)?;
        Some(RoundStatus {
            request: r.request.clone(),
            phase: r.phase.public(),
            opened_ms: r.opened_ms,
            deadline_ms: r.deadline_ms(&self.params, committee.threshold()),
            committed: r.commits.keys().copied().collect(),
            revealed: r.reveals.keys().copied().collect(),
            misbehaving: r.misbehaviour.iter().map(|(m, _)| *m).collect(),
        })
    }

    /// Whether `msg` (envelope verified) may be included at block time `now_ms`.
    pub fn check(
        &self,
        msg: &SignedMessage,
        now_ms: u64,
        env: Env<'_>,
    ) -> Result<(), &'static str> {
        let mut o = self.overlay_at(now_ms, env.committee).0;
        apply_message(&mut o, msg, env).map(|_| ())
    }

    /// Of `candidates` (envelopes verified, in arrival order), the positions of those that
    /// can go into one block at time `now_ms`, in block order: what the proposer includes,
    /// within the committee's message count and byte limits, and at most
    /// [`MAX_REQUESTS_PER_MEMBER_IN_BLOCK`] new requests of any one member.
    ///
    /// The order is the proposer's own choice (not a validity rule), made so that what
    /// other members send cannot crowd out what closes open rounds ([`proposal_order`]):
    /// reveals first, then commitments, then new requests; within each kind the members
    /// take turns (each one's in arrival order), so when the block's limits run out every
    /// member has had the same number of places. One member's flood of requests waits its
    /// turn in small shares instead of filling every block, which every member must check
    /// in time.
    pub fn select(
        &self,
        candidates: &[(&SignedMessage, usize)],
        now_ms: u64,
        env: Env<'_>,
    ) -> Vec<usize> {
        let mut o = self.overlay_at(now_ms, env.committee).0;
        let max_bytes = self.params.max_block_bytes.saturating_sub(BLOCK_OVERHEAD);
        let mut bytes = 0usize;
        let mut chosen = Vec::new();
        let mut requests: BTreeMap<u32, usize> = BTreeMap::new();
        let signers: Vec<u32> = candidates.iter().map(|(m, _)| m.signer).collect();
        let kinds: Vec<Kind> = candidates.iter().map(|(m, _)| Kind::of(m)).collect();
        for i in proposal_order(&signers, &kinds) {
            let (m, size) = &candidates[i];
            if chosen.len() >= self.params.max_block_messages {
                break;
            }
            if bytes.saturating_add(*size) > max_bytes {
                continue;
            }
            if matches!(m.body, Body::Request(_))
                && (requests.get(&m.signer).copied().unwrap_or(0)
                    >= MAX_REQUESTS_PER_MEMBER_IN_BLOCK
                    || requests.values().sum::<usize>() >= self.params.max_requests_per_block)
            {
                continue;
            }
            // apply_message changes nothing when it refuses.
            if apply_message(&mut o, m, env).is_ok() {
                bytes += size;
                chosen.push(i);
                if matches!(m.body, Body::Request(_)) {
                    *requests.entry(m.signer).or_default() += 1;
                }
            }
        }
        chosen
    }

    /// Whether any of `candidates` could go into a block at `now_ms` (stops at the first).
    pub fn any_applicable(&self, candidates: &[&SignedMessage], now_ms: u64, env: Env<'_>) -> bool {
        let mut o = self.overlay_at(now_ms, env.committee).0;
        candidates
            .iter()
            .any(|m| apply_message(&mut o, m, env).is_ok())
    }

    /// The open rounds at block time `now_ms`: commit phases whose deadline passed have
    /// moved to the reveal phase (with the duties that brings).
    fn overlay_at(&self, now_ms: u64, committee: &Committee) -> (Overlay<'_>, Vec<Duty>) {
        let next = self.last.map_or(1, |(h, _)| h + 1);
        self.overlay_at_height(now_ms, next, committee)
    }

    fn overlay_at_height(
        &self,
        now_ms: u64,
        height: u64,
        committee: &Committee,
    ) -> (Overlay<'_>, Vec<Duty>) {
        let mut o = Overlay::new(self, now_ms, height);
        let t = committee.threshold();
        let mut duties = Vec::new();
        for (id, r) in &self.rounds {
            if r.phase == RoundPhase::Commit && now_ms >= r.commit_deadline_ms(&self.params, t) {
                o.get_mut(id).expect("open").phase = RoundPhase::Reveal { since_ms: now_ms };
                duties.push(Duty::Reveal(*id));
            }
        }
        (o, duties)
    }

    /// Every rule a validator checks, without changing anything.
    pub fn check_block(&self, block: &Block, env: Env<'_>) -> Result<(), BlockError> {
        // Which rounds a block decides is part of its validity; what their entries say (the
        // attestation checks) and the rows to store are not, so validation skips them.
        self.run_block(block, env, false).map(|_| ())
    }

    /// Validates and applies a decided block atomically: on error nothing changes.
    pub fn apply_block(&mut self, block: &Block, env: Env<'_>) -> Result<Applied, BlockError> {
        let p = self.prepare(block, env)?;
        Ok(self.commit(p))
    }

    /// Applies what [`ProtocolState::prepare`] computed for the next block. `prepared` must
    /// come from this state, unchanged since (the node's consensus actor is the only writer).
    pub fn commit(&mut self, prepared: Prepared) -> Applied {
        for (id, r) in prepared.changes {
            let old = match r {
                Some(r) => {
                    if let Some(m) = r.requester {
                        *self.open_by_requester.entry(m).or_default() += 1;
                    }
                    self.rounds.insert(id, Arc::new(r))
                }
                None => self.rounds.remove(&id),
            };
            if let Some(m) = old.and_then(|r| r.requester)
                && let Some(n) = self.open_by_requester.get_mut(&m)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.open_by_requester.remove(&m);
                }
            }
        }
        if let Some(c) = prepared.change_state {
            self.change = Arc::new(c);
        }
        self.ended = prepared.ended;
        self.last = Some(prepared.last);
        prepared.applied
    }

    /// Everything applying `block` does, computed without changing the state (so the node
    /// can make it durable first, then [`ProtocolState::commit`] it).
    pub fn prepare(&self, block: &Block, env: Env<'_>) -> Result<Prepared, BlockError> {
        let (applied, changes, change_state, ended) = self.run_block(block, env, true)?;
        Ok(Prepared {
            applied,
            changes,
            change_state,
            ended,
            last: (block.height, block.time_ms),
        })
    }

    #[allow(clippy::type_complexity)]
    fn run_block(
        &self,
        block: &Block,
        env: Env<'_>,
        entries: bool,
    ) -> Result<
        (
            Applied,
            BTreeMap<Id, Option<Round>>,
            Option<ChangeState>,
            bool,
        ),
        BlockError,
    > {
        if self.ended {
            return Err(BlockError::EpochEnded {
                height: block.height,
            });
        }
        if let Some((h, t)) = self.last
            && (block.height <= h || block.time_ms < t)
        {
            return Err(BlockError::OutOfOrder {
                height: block.height,
            });
        }
        if block.messages.len() > self.params.max_block_messages {
            return Err(BlockError::TooLarge {
                height: block.height,
                what: "max_block_messages",
            });
        }
        let requests = block
            .messages
            .iter()
            .filter(|m| matches!(m.body, Body::Request(_)))
            .count();
        if requests > self.params.max_requests_per_block {
            return Err(BlockError::TooLarge {
                height: block.height,
                what: "max_requests_per_block",
            });
        }
        // Signatures first: nothing changes unless every envelope is good.
        for (index, m) in block.messages.iter().enumerate() {
            env.envelopes
                .verify(m, env.committee)
                .map_err(|source| BlockError::Message { index, source })?;
        }
        let (mut o, mut duties) =
            self.overlay_at_height(block.time_ms, block.height, env.committee);
        for (index, m) in block.messages.iter().enumerate() {
            if let Some(d) = apply_message(&mut o, m, env)
                .map_err(|reason| BlockError::NotAllowed { index, reason })?
            {
                duties.push(d);
            }
        }
        // Early transitions (only rounds this block touched can have new commits or
        // reveals) and reveal deadlines (any round).
        let n = env.committee.len();
        let touched: Vec<Id> = o.changed.keys().copied().collect();
        for id in &touched {
            if let Some(r) = o.get(id)
                && r.phase == RoundPhase::Commit
                && r.all_committed(n)
            {
                o.get_mut(id).expect("open").phase = RoundPhase::Reveal {
                    since_ms: block.time_ms,
                };
                duties.push(Duty::Reveal(*id));
            }
        }
        let mut decide = Vec::new();
        for id in o.ids() {
            let r = o.get(&id).expect("listed");
            if let RoundPhase::Reveal { since_ms } = r.phase
                && (block.time_ms >= since_ms.saturating_add(self.params.reveal_window_ms)
                    || (o.changed.contains_key(&id) && r.all_revealed()))
            {
                decide.push(id);
            }
        }
        let closed: Vec<(Id, Round)> = decide
            .iter()
            .map(|id| (*id, o.remove(id).expect("open")))
            .collect();
        let mut decided: Vec<Decided> = Vec::new();
        if entries {
            // Every round's attestations in ONE batched multi-pairing; only if it fails
            // are they checked per group (and per member) to find the bad ones.
            let groups: Vec<Vec<AttestationGroup>> = closed
                .iter()
                .map(|(id, r)| r.attestation_groups(id, env.committee))
                .collect();
            let items: Vec<(BlsPublicKey, &BlsSignature, &[u8])> = groups
                .iter()
                .flatten()
                .filter_map(|g| {
                    batch_item(g, env.committee).map(|(k, s)| (k, s, g.statement.as_bytes()))
                })
                .collect();
            let batch: Vec<BatchItem<'_>> = items
                .iter()
                .map(|(key, signature, message)| BatchItem {
                    message,
                    key,
                    signature,
                })
                .collect();
            let with_aggregate = groups
                .iter()
                .flatten()
                .filter(|g| g.aggregate.is_some())
                .count();
            let batch_ok = batch.len() == with_aggregate
                && (batch.is_empty() || verify_batch(SIGNATURE_DST, &batch).is_ok());
            for ((_, r), g) in closed.into_iter().zip(groups) {
                decided.push(r.decide(block.height, env.committee, g, batch_ok));
            }
        }
        decided.sort_by_key(|d| d.entry.request.id());
        // A scheduled change ends the epoch once no round is open.
        let ended = o.change().is_scheduled() && o.ids().is_empty();
        let change = if entries && ended {
            Some(
                o.change()
                    .entry(env.committee)
                    .ok_or(BlockError::EpochEnded {
                        height: block.height,
                    })?,
            )
        } else {
            None
        };
        // The rows to store are only needed when applying, not when validating.
        let changed_rounds = if entries {
            let mut rows: Vec<(Id, Option<Vec<u8>>)> = o
                .changed
                .iter()
                .map(|(id, r)| (*id, r.as_ref().map(codec::to_vec)))
                .collect();
            if ended {
                // The epoch's change is in the log now; the next epoch starts with none.
                rows.push((CHANGE_ROW_ID, None));
            } else if let Some(c) = &o.change {
                rows.push((CHANGE_ROW_ID, Some(codec::to_vec(c))));
            }
            rows
        } else {
            Vec::new()
        };
        let change_state = o.change;
        let changes = o.changed;
        Ok((
            Applied {
                decided,
                duties,
                changed_rounds,
                change,
            },
            changes,
            change_state,
            ended,
        ))
    }
}

fn id32(v: &[u8]) -> Option<Id> {
    v.try_into().ok()
}

/// Applies one message to the overlay; on error nothing changes.
fn apply_message(
    o: &mut Overlay<'_>,
    msg: &SignedMessage,
    env: Env<'_>,
) -> Result<Option<Duty>, &'static str> {
    let signer = msg.signer;
    if signer as usize >= env.committee.len() {
        return Err("signer is not a member");
    }
    match &msg.body {
        Body::Request(pinned) => {
            // First, as it is the cheapest: a member over its bound may have thousands of
            // requests waiting, which every proposal and wake-up looks through.
            if o.open_requests_of(signer) >= o.params.max_open_requests_per_member {
                return Err(
                    "the member's requests hold the committee's max_open_requests_per_member open rounds",
                );
            }
            if o.change().is_scheduled() {
                return Err("requests wait for the scheduled committee change");
            }
            // The state's checks before the request's own (a recipe request's decodes up to
            // 1 MiB): a request that waits (an early attempt) or was ordered costs a lookup.
            let id = pinned.id();
            if o.get(&id).is_some() || env.decided.is_decided(&id) {
                return Err("request already ordered");
            }
            let now = o.now_ms;
            check_attempt(pinned, o.params, now, env.decided)?;
            super::request_rules::check_request(pinned, env.committee)?;
            let mut round = Round::new(pinned, now);
            round.requester = Some(signer);
            o.insert(id, round);
            Ok(Some(Duty::Build(id)))
        }
        Body::Commit {
            request_id,
            commitment: c,
        } => {
            let id = id32(request_id).ok_or("bad request id")?;
            let c = id32(c).ok_or("bad commitment")?;
            let now = o.now_ms;
            let r = o
                .get(&id)
                .ok_or("commit for an unknown or decided request")?;
            if r.phase != RoundPhase::Commit {
                return Err("commit after the commit phase");
            }
            // Judged on the shared view; only an accepted change copies the round.
            let effect = r.judge_commit(signer, c, now)?;
            o.get_mut(&id).expect("open").record(effect);
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
            let r = o
                .get(&id)
                .ok_or("reveal for an unknown or decided request")?;
            if !matches!(r.phase, RoundPhase::Reveal { .. }) {
                return Err("reveal outside the reveal phase");
            }
            let effect = r.judge_reveal(&id, signer, outcome, salt, attestation, env.committee)?;
            o.get_mut(&id).expect("open").record(effect);
            Ok(None)
        }
        Body::Approve {
            committee,
            signature,
        } => {
            // One per member and block: each costs every member a pairing.
            if o.approved.contains(&signer) {
                return Err("one approval per member and block");
            }
            let approval = o.change().judge(
                env.committee,
                signer,
                committee,
                signature,
                &env.envelopes.proposals,
            )?;
            let (height, t) = (o.height, env.committee.threshold());
            o.change_mut().record(approval, height, t);
            o.approved.insert(signer);
            Ok(None)
        }
    }
}
