//! The context under Malachite's real core: four validators exchange signed proposals and
//! votes through an in-memory queue (a stand-in for the network, inside this unit test
//! only) and decide the same blocks; certificates verify and tampering is caught.

use std::collections::VecDeque;

use arc_malachitebft_core_consensus::{
    ConsensusMsg, Effect, Input, LocallyProposedValue, Params, ProposedValue, Resumable,
    SignedConsensusMsg, State, ThresholdParams, process,
};
use arc_malachitebft_core_types::{
    CommitCertificate, Round, SignedMessage, Validity, ValueOrigin, ValuePayload,
    VoteExtensionPolicy,
};
use arc_malachitebft_signing_ed25519::PrivateKey;

use super::certificates::verify_commit;
use super::context::*;
use crate::testing::TestCommittee;

struct Node {
    key: PrivateKey,
    state: State<Ctx>,
    outbox: Vec<SignedConsensusMsg<Ctx>>,
    pending: VecDeque<Input<Ctx>>,
    next_height: Option<Height>,
    certs: Vec<CommitCertificate<Ctx>>,
    /// (height, proposer) pairs whose proposals this node judges invalid.
    reject: Vec<(u64, usize)>,
}

/// What one `process!` call produced: messages, follow-up inputs, next height, certificates.
type Scratch = (
    Vec<SignedConsensusMsg<Ctx>>,
    VecDeque<Input<Ctx>>,
    Option<Height>,
    Vec<CommitCertificate<Ctx>>,
);

fn block_for(h: Height, r: Round, proposer: usize) -> Value {
    Value::new(format!("block {h} round {r:?} by {proposer}").into_bytes())
}

fn handle(
    ctx: &Ctx,
    vs: &ValidatorSet,
    key: &PrivateKey,
    n: &mut Scratch,
    e: Effect<Ctx>,
) -> Result<arc_malachitebft_core_consensus::Resume<Ctx>, String> {
    let me = vs
        .index_of(&Address(key.public_key().as_bytes().to_owned()))
        .unwrap();
    Ok(match e {
        Effect::CancelAllTimeouts(r) => r.resume_with(()),
        Effect::CancelTimeout(_, r) => r.resume_with(()),
        Effect::ScheduleTimeout(_, r) => r.resume_with(()),
        Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
        Effect::PublishConsensusMsg(m, r) => {
            n.0.push(m);
            r.resume_with(())
        }
        Effect::PublishLivenessMsg(_, r) => r.resume_with(()),
        Effect::RepublishVote(_, r) => r.resume_with(()),
        Effect::RepublishRoundCertificate(_, r) => r.resume_with(()),
        Effect::GetValue(h, round, _, r) => {
            n.1.push_back(Input::Propose(LocallyProposedValue::new(
                h,
                round,
                block_for(h, round, me),
            )));
            r.resume_with(())
        }
        Effect::RestreamProposal(.., r) => r.resume_with(()),
        Effect::CertVerifiedSyncValue(_, _, r) => r.resume_with(()),
        Effect::CertRejectedSyncValue(_, _, _, r) => r.resume_with(()),
        Effect::Decide(cert, _, r) => {
            n.3.push(cert);
            r.resume_with(())
        }
        Effect::SignVote(v, r) => {
            let s = key.sign(&ctx.vote_sign_bytes(&v));
            r.resume_with(SignedMessage::new(v, s))
        }
        Effect::SignProposal(p, r) => {
            let s = key.sign(&ctx.proposal_sign_bytes(&p));
            r.resume_with(SignedMessage::new(p, s))
        }
        Effect::VerifySignature(sm, pk, r) => {
            let bytes = match &sm.message {
                ConsensusMsg::Vote(v) => ctx.vote_sign_bytes(v),
                ConsensusMsg::Proposal(p) => ctx.proposal_sign_bytes(p),
            };
            r.resume_with(pk.verify(&bytes, &sm.signature).is_ok())
        }
        Effect::VerifyCommitCertificate(c, vs, th, r) => {
            r.resume_with(verify_commit(ctx, &c, &vs, th))
        }
        Effect::VerifyExtendedCommitCertificate(_, _, _, _, r) => r.resume_with(Err(
            arc_malachitebft_core_types::CertificateError::VerificationError(None),
        )),
        Effect::VerifyPolkaCertificate(c, vs, th, r) => {
            r.resume_with(super::certificates::verify_polka(ctx, &c, &vs, th))
        }
        Effect::VerifyRoundCertificate(c, vs, th, r) => {
            r.resume_with(super::certificates::verify_round(ctx, &c, &vs, th))
        }
        Effect::WalAppend(_, _, r) => r.resume_with(()),
        Effect::ExtendVote(.., r) => r.resume_with(None),
        Effect::VerifyVoteExtension(.., r) => r.resume_with(Ok(())),
        Effect::Finalize(cert, _, _, r) => {
            n.2 = Some(Height(cert.height.0 + 1));
            r.resume_with(())
        }
    })
}

impl Node {
    fn feed(&mut self, ctx: &Ctx, vs: &ValidatorSet, input: Input<Ctx>) {
        self.pending.push_back(input);
        while let Some(i) = self.pending.pop_front() {
            let mut scratch = (Vec::new(), VecDeque::new(), None, Vec::new());
            let key = self.key.clone();
            let res: Result<(), arc_malachitebft_core_consensus::Error<Ctx>> = process!(input: i, state: &mut self.state, metrics: &(), with: e => handle(ctx, vs, &key, &mut scratch, e));
            res.unwrap();
            self.outbox.extend(scratch.0);
            self.pending.extend(scratch.1);
            if scratch.2.is_some() {
                self.next_height = scratch.2;
            }
            self.certs.extend(scratch.3);
        }
    }
}

/// Runs `n` validators until each has finalised `heights` heights; returns each node's
/// decided value ids per height.
fn run(
    reject: Vec<(u64, usize)>,
    heights: u64,
) -> (Vec<Vec<ValueId>>, Vec<Node>, Ctx, ValidatorSet) {
    let tc = TestCommittee::new(4, 3);
    let ctx = Ctx::new(tc.committee.chain_id());
    let vs = ValidatorSet::from_committee(&tc.committee);
    let mut nodes: Vec<Node> = tc
        .identities
        .iter()
        .map(|id| {
            let key = PrivateKey::from(id.secret_bytes());
            let params = Params {
                address: Address(*key.public_key().as_bytes()),
                threshold_params: ThresholdParams::default(),
                value_payload: ValuePayload::ProposalAndParts,
                enabled: true,
            };
            Node {
                state: State::new(ctx.clone(), Height(1), vs.clone(), params, 10, 500),
                key,
                outbox: vec![],
                pending: VecDeque::new(),
                next_height: None,
                certs: vec![],
                reject: reject.clone(),
            }
        })
        .collect();
    let mut decided = vec![Vec::new(); 4];
    for n in nodes.iter_mut() {
        n.feed(
            &ctx,
            &vs,
            Input::StartHeight(
                Height(1),
                vs.clone(),
                false,
                None,
                VoteExtensionPolicy::Disabled,
            ),
        );
    }
    for _step in 0..10_000 {
        if decided.iter().all(|d| d.len() as u64 >= heights) {
            break;
        }
        // Deliver every queued message to every other node.
        let mut any = false;
        for from in 0..4 {
            let out = std::mem::take(&mut nodes[from].outbox);
            for m in out {
                any = true;
                for to in (0..4).filter(|&t| t != from) {
                    let node = &mut nodes[to];
                    match m.clone() {
                        SignedConsensusMsg::Vote(v) => node.feed(&ctx, &vs, Input::Vote(v)),
                        SignedConsensusMsg::Proposal(p) => {
                            let proposer = vs.index_of(&p.address).unwrap();
                            let validity = if node.reject.contains(&(p.height.0, proposer)) {
                                Validity::Invalid
                            } else {
                                Validity::Valid
                            };
                            let pv = ProposedValue {
                                height: p.height,
                                round: p.round,
                                valid_round: p.pol_round,
                                proposer: p.address,
                                value: p.value.clone(),
                                validity,
                            };
                            node.feed(&ctx, &vs, Input::Proposal(p));
                            node.feed(&ctx, &vs, Input::ProposedValue(pv, ValueOrigin::Consensus));
                        }
                    }
                }
            }
        }
        // Finalised nodes record their value and start the next height.
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Some(next) = node.next_height.take() {
                let (_, value) = node
                    .state
                    .decided_value()
                    .expect("finalised height has a value");
                decided[i].push(arc_malachitebft_core_types::Value::id(&value));
                node.feed(
                    &ctx,
                    &vs,
                    Input::StartHeight(
                        next,
                        vs.clone(),
                        false,
                        None,
                        VoteExtensionPolicy::Disabled,
                    ),
                );
                any = true;
            }
        }
        if !any {
            // Nothing in flight: a round is stuck waiting for a timeout; fire the propose,
            // prevote and precommit timeouts of the current round everywhere.
            for node in nodes.iter_mut() {
                let round = node.state.round();
                for t in [
                    arc_malachitebft_core_types::Timeout::propose(round),
                    arc_malachitebft_core_types::Timeout::prevote(round),
                    arc_malachitebft_core_types::Timeout::precommit(round),
                ] {
                    node.feed(&ctx, &vs, Input::TimeoutElapsed(t));
                }
            }
        }
    }
    (decided, nodes, ctx, vs)
}

#[test]
fn four_validators_decide_the_same_blocks() {
    let (decided, nodes, ctx, vs) = run(vec![], 5);
    for d in &decided {
        assert!(d.len() >= 5);
        assert_eq!(d[..5], decided[0][..5]);
    }
    // Every commit certificate verifies; a tampered one does not.
    let cert = nodes[0].certs[0].clone();
    verify_commit(&ctx, &cert, &vs, ThresholdParams::default()).unwrap();
    let mut bad = cert.clone();
    bad.commit_signatures.truncate(2);
    assert!(
        verify_commit(&ctx, &bad, &vs, ThresholdParams::default()).is_err(),
        "2 of 4 is not a quorum"
    );
    let mut bad = cert.clone();
    bad.value_id = ValueId([0; 32]);
    assert!(
        verify_commit(&ctx, &bad, &vs, ThresholdParams::default()).is_err(),
        "signatures are for another value"
    );
    let mut bad = cert;
    let dup = bad.commit_signatures[0].clone();
    bad.commit_signatures[1] = dup;
    assert!(
        verify_commit(&ctx, &bad, &vs, ThresholdParams::default()).is_err(),
        "a validator counts once"
    );
}

#[test]
fn an_invalid_proposal_is_not_decided() {
    // Everyone judges member 0's proposal for height 1 invalid: height 1 is decided in a
    // later round with another proposer's block.
    let (decided, _, _, _) = run((0..4).map(|_| (1, 0)).collect(), 2);
    let rejected = arc_malachitebft_core_types::Value::id(&block_for(Height(1), Round::new(0), 0));
    for d in &decided {
        assert_eq!(d[0], decided[0][0]);
        assert_ne!(d[0], rejected);
    }
}
