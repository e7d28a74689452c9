//! The synchronous consensus core: Malachite's Tendermint state machine plus everything its
//! effects need that is not I/O (signing, signature and certificate checks, the queue of
//! follow-up inputs, the next height). No `.await`, no clock, no sockets: the actor around
//! it (node) feeds events and executes the returned [`Action`]s in order.
//!
//! Contract for the actor: run `Broadcast` only after everything before it is durable (the
//! WAL is synced first: "sync before broadcasting, to avoid accidental Byzantine behaviour
//! after a restart"); on `Decided`, apply the block durably, THEN call
//! [`Core::start_height`] for the next height.

use std::collections::VecDeque;
use std::time::Duration;

use arc_malachitebft_core_consensus::{
    ConsensusMsg, Effect, Error, Input, LivenessMsg, LocallyProposedValue, Params, ProposedValue,
    Resumable, Resume, SignedConsensusMsg, State, ThresholdParams, process,
};
use arc_malachitebft_core_types::{
    CertificateError, CommitCertificate, LinearTimeouts, PolkaCertificate, Round, RoundCertificate,
    SignedMessage, Timeout, Validity, ValueOrigin, ValuePayload, VoteExtensionPolicy,
};
use arc_malachitebft_signing_ed25519::PrivateKey;

use super::certificates::{verify_commit, verify_polka, verify_round};
use super::context::{Address, Ctx, Height, ValidatorSet, Value};
use super::wire::{SignedProposal, SignedVote, Wire};

/// Proposals more than this many rounds ahead of ours are ignored (Malachite drops other
/// messages beyond the same lookahead).
pub const MAX_ROUND_AHEAD: i64 = 10;

/// What the actor must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send to every other member over the consensus streams.
    Broadcast(Wire),
    /// Start (or restart) a timer; when it fires call [`Core::on_timeout`].
    ScheduleTimeout(Timeout, Duration),
    /// Stop a timer.
    CancelTimeout(Timeout),
    /// Stop every timer.
    CancelAllTimeouts,
    /// Build a block for (height, round) and call [`Core::propose`] within `deadline`.
    GetValue {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Time left before the propose timeout.
        deadline: Duration,
    },
    /// Append this entry to the WAL (not yet durable: flush before the next `Broadcast`).
    WalAppend(Vec<u8>),
    /// The height is decided and final.
    Decided {
        /// Height.
        height: Height,
        /// The decided block.
        value: Value,
        /// Its commit certificate (serve it to lagging peers).
        certificate: CommitCertificate<Ctx>,
    },
}

/// Per-call scratch the effect handler writes into (the state is borrowed by `process!`).
#[derive(Default)]
struct Scratch {
    actions: Vec<Action>,
    inputs: VecDeque<Input<Ctx>>,
    finalized: Option<CommitCertificate<Ctx>>,
}

/// One validator's consensus core.
pub struct Core {
    ctx: Ctx,
    vs: ValidatorSet,
    key: PrivateKey,
    timeouts: LinearTimeouts,
    state: State<Ctx>,
    /// True while WAL entries are being replayed (their WalAppend effects are skipped).
    replaying: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("height", &self.state.height())
            .field("round", &self.state.round())
            .finish()
    }
}

impl Core {
    /// A core for the validator with `key` in `vs`.
    pub fn new(ctx: Ctx, vs: ValidatorSet, key: PrivateKey, timeouts: LinearTimeouts) -> Self {
        let params = Params {
            address: Address(*key.public_key().as_bytes()),
            threshold_params: ThresholdParams::default(),
            // The value travels inside the proposal, and the app reports its validity
            // (ProposalOnly would mark every received value valid).
            value_payload: ValuePayload::ProposalAndParts,
            enabled: true,
        };
        let state = State::new(ctx.clone(), Height(1), vs.clone(), params, 10, 500);
        Self {
            ctx,
            vs,
            key,
            timeouts,
            state,
            replaying: false,
        }
    }

    /// Current height.
    pub fn height(&self) -> Height {
        self.state.height()
    }

    /// Our validator address.
    pub fn address(&self) -> Address {
        *self.state.address()
    }

    /// Current round.
    pub fn round(&self) -> Round {
        self.state.round()
    }

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.vs
    }

    /// Enters `height` (the first, or the one after a `Decided`).
    pub fn start_height(&mut self, height: Height) -> Vec<Action> {
        self.feed(Input::StartHeight(
            height,
            self.vs.clone(),
            false,
            None,
            VoteExtensionPolicy::Disabled,
        ))
    }

    /// A vote from the network (its signature is checked by the core).
    pub fn on_vote(&mut self, vote: SignedVote) -> Vec<Action> {
        self.feed(Input::Vote(vote))
    }

    /// Whether a proposal from the network is worth looking at: its round is at most
    /// [`MAX_ROUND_AHEAD`] beyond ours (or than 0 for a later height), it comes from the
    /// proposer of its (height, round), and its signature verifies. Checked BEFORE the app
    /// decodes or validates the value and before the core stores anything, so a member that
    /// is not the proposer cannot fill the per-round proposal slots, the WAL or memory.
    pub fn check_proposal(&self, p: &SignedProposal) -> bool {
        use arc_malachitebft_core_types::{Context as _, Validator as _};
        let base = if p.height == self.height() {
            self.round().as_i64().max(0)
        } else {
            0
        };
        let Some(r) = p.round.as_u32() else {
            return false;
        };
        if i64::from(r) > base + MAX_ROUND_AHEAD {
            return false;
        }
        let proposer = self.ctx.select_proposer(&self.vs, p.height, p.round);
        *proposer.address() == p.address
            && proposer
                .public_key()
                .verify(&self.ctx.proposal_sign_bytes(p), &p.signature)
                .is_ok()
    }

    /// A proposal from the network with the app's verdict on its value (deterministic:
    /// every correct validator reaches the same verdict). `Invalid` makes us prevote nil.
    pub fn on_proposal(&mut self, p: SignedProposal, validity: Validity) -> Vec<Action> {
        let pv = ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: p.pol_round,
            proposer: p.address,
            value: p.value.clone(),
            validity,
        };
        let mut actions = self.feed(Input::Proposal(p));
        actions.extend(self.feed(Input::ProposedValue(pv, ValueOrigin::Consensus)));
        actions
    }

    /// A polka certificate from the network (checked by the core).
    pub fn on_polka(&mut self, c: PolkaCertificate<Ctx>) -> Vec<Action> {
        self.feed(Input::PolkaCertificate(c))
    }

    /// A round certificate from the network (checked by the core).
    pub fn on_round_certificate(&mut self, c: RoundCertificate<Ctx>) -> Vec<Action> {
        self.feed(Input::RoundCertificate(c))
    }

    /// Replays the WAL entries of the current height (call right after
    /// [`Core::start_height`]). Our own votes are re-derived and re-use their recorded
    /// signatures; nothing is appended to the WAL again.
    pub fn replay(&mut self, entries: Vec<Input<Ctx>>) -> Vec<Action> {
        if entries.is_empty() {
            return Vec::new();
        }
        self.state.index_wal_entries(entries.iter());
        self.replaying = true;
        let mut actions = Vec::new();
        for e in entries {
            actions.extend(self.feed(e));
        }
        self.replaying = false;
        self.state.reset_entries_index();
        actions
    }

    // Malachite's error type is what the certificate checks return everywhere.
    #[allow(clippy::result_large_err)]
    /// Checks a decided value fetched from a peer: its certificate is for `height`, names
    /// this value, and carries precommits of more than 2/3 of the voting power.
    pub fn verify_decided(
        &self,
        height: Height,
        value: &Value,
        certificate: &CommitCertificate<Ctx>,
    ) -> Result<(), CertificateError<Ctx>> {
        use arc_malachitebft_core_types::Value as _;
        if certificate.height != height || certificate.value_id != value.id() {
            return Err(CertificateError::VerificationError(None));
        }
        verify_commit(&self.ctx, certificate, &self.vs, ThresholdParams::default())
    }

    /// A timer fired.
    pub fn on_timeout(&mut self, t: Timeout) -> Vec<Action> {
        self.feed(Input::TimeoutElapsed(t))
    }

    /// The value asked for by `GetValue`.
    pub fn propose(&mut self, height: Height, round: Round, value: Value) -> Vec<Action> {
        self.feed(Input::Propose(LocallyProposedValue::new(
            height, round, value,
        )))
    }

    fn feed(&mut self, first: Input<Ctx>) -> Vec<Action> {
        let mut queue = VecDeque::from([first]);
        let mut actions = Vec::new();
        while let Some(input) = queue.pop_front() {
            let mut s = Scratch::default();
            let (ctx, key, timeouts, replaying) =
                (&self.ctx, &self.key, &self.timeouts, self.replaying);
            let res: Result<(), Error<Ctx>> = process!(input: input, state: &mut self.state, metrics: &(), with: e => handle(ctx, key, timeouts, replaying, &mut s, e));
            if let Err(e) = res {
                // Inputs from the network that the core refuses end here; they change nothing.
                arc_malachitebft_core_consensus::tracing::debug!("consensus input refused: {e}");
            }
            actions.append(&mut s.actions);
            queue.append(&mut s.inputs);
            if let Some(certificate) = s.finalized {
                let (_, value) = self
                    .state
                    .decided_value()
                    .expect("a finalised height has a decided value");
                actions.push(Action::Decided {
                    height: certificate.height,
                    value,
                    certificate,
                });
            }
        }
        actions
    }
}

/// Handles one effect. Never returns `Err` for effects that expect a value.
fn handle(
    ctx: &Ctx,
    key: &PrivateKey,
    timeouts: &LinearTimeouts,
    replaying: bool,
    s: &mut Scratch,
    e: Effect<Ctx>,
) -> Result<Resume<Ctx>, std::convert::Infallible> {
    Ok(match e {
        Effect::CancelAllTimeouts(r) => {
            s.actions.push(Action::CancelAllTimeouts);
            r.resume_with(())
        }
        Effect::CancelTimeout(t, r) => {
            s.actions.push(Action::CancelTimeout(t));
            r.resume_with(())
        }
        Effect::ScheduleTimeout(t, r) => {
            s.actions
                .push(Action::ScheduleTimeout(t, timeouts.duration_for(t)));
            r.resume_with(())
        }
        Effect::StartRound(.., r) => r.resume_with(()),
        Effect::PublishConsensusMsg(m, r) => {
            s.actions.push(Action::Broadcast(match m {
                SignedConsensusMsg::Vote(v) => Wire::Vote(v),
                SignedConsensusMsg::Proposal(p) => Wire::Proposal(p),
            }));
            r.resume_with(())
        }
        Effect::PublishLivenessMsg(m, r) => {
            // Votes and certificates are re-sent so a peer that missed them (or
            // restarted) catches up to our round.
            s.actions.push(Action::Broadcast(match m {
                LivenessMsg::Vote(v) => Wire::Vote(v),
                LivenessMsg::PolkaCertificate(c) => Wire::Polka(c),
                LivenessMsg::SkipRoundCertificate(c) => Wire::RoundCertificate(c),
            }));
            r.resume_with(())
        }
        Effect::RepublishVote(v, r) => {
            s.actions.push(Action::Broadcast(Wire::Vote(v)));
            r.resume_with(())
        }
        Effect::RepublishRoundCertificate(c, r) => {
            s.actions.push(Action::Broadcast(Wire::RoundCertificate(c)));
            r.resume_with(())
        }
        Effect::GetValue(height, round, t, r) => {
            s.actions.push(Action::GetValue {
                height,
                round,
                deadline: timeouts.duration_for(t),
            });
            r.resume_with(())
        }
        Effect::RestreamProposal(.., r) => r.resume_with(()),
        Effect::CertVerifiedSyncValue(_, _, r) => r.resume_with(()),
        Effect::CertRejectedSyncValue(_, _, _, r) => r.resume_with(()),
        Effect::Decide(_, _, r) => r.resume_with(()),
        Effect::Finalize(cert, _, _, r) => {
            s.finalized = Some(cert);
            r.resume_with(())
        }
        Effect::SignVote(v, r) => {
            let sig = key.sign(&ctx.vote_sign_bytes(&v));
            r.resume_with(SignedMessage::new(v, sig))
        }
        Effect::SignProposal(p, r) => {
            let sig = key.sign(&ctx.proposal_sign_bytes(&p));
            r.resume_with(SignedMessage::new(p, sig))
        }
        Effect::VerifySignature(m, pk, r) => {
            let bytes = match &m.message {
                ConsensusMsg::Vote(v) => ctx.vote_sign_bytes(v),
                ConsensusMsg::Proposal(p) => ctx.proposal_sign_bytes(p),
            };
            r.resume_with(pk.verify(&bytes, &m.signature).is_ok())
        }
        Effect::VerifyCommitCertificate(c, vs, th, r) => {
            r.resume_with(verify_commit(ctx, &c, &vs, th))
        }
        Effect::VerifyExtendedCommitCertificate(c, vs, th, _, r) => {
            let plain = CommitCertificate {
                height: c.height,
                round: c.round,
                value_id: c.value_id,
                commit_signatures: c
                    .commit_signatures
                    .iter()
                    .map(|s| arc_malachitebft_core_types::CommitSignature {
                        address: s.address,
                        signature: s.signature,
                    })
                    .collect(),
            };
            let unexpected = c
                .commit_signatures
                .iter()
                .find(|s| s.extension.is_some())
                .map(|s| s.address);
            r.resume_with(match unexpected {
                Some(a) => Err(CertificateError::UnexpectedVoteExtension(a)),
                None => verify_commit(ctx, &plain, &vs, th),
            })
        }
        Effect::VerifyPolkaCertificate(c, vs, th, r) => {
            r.resume_with(verify_polka(ctx, &c, &vs, th))
        }
        Effect::VerifyRoundCertificate(c, vs, th, r) => {
            r.resume_with(verify_round(ctx, &c, &vs, th))
        }
        Effect::WalAppend(_, input, r) => {
            // The actor appends in order and fsyncs before the next broadcast.
            if !replaying && let Some(bytes) = super::wal::encode_input(&input) {
                s.actions.push(Action::WalAppend(bytes));
            }
            r.resume_with(())
        }
        Effect::ExtendVote(.., r) => r.resume_with(None),
        Effect::VerifyVoteExtension(.., r) => r.resume_with(Ok(())),
    })
}
