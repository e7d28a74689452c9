//! The core under a simulated network and clock (inside this unit test only): four
//! validators exchange messages through the real wire codec, timers fire on a virtual clock.
//! All up, one dead from the start, and an invalid proposal: the live validators decide the
//! same blocks; certificates verify and tampered ones do not.

use std::collections::{HashMap, VecDeque};

use arc_malachitebft_core_types::{
    LinearTimeouts, Round, ThresholdParams, Timeout, Validity, Value as _,
};
use arc_malachitebft_signing_ed25519::PrivateKey;

use super::certificates::verify_commit;
use super::wire::Wire;
use super::*;
use crate::testing::TestCommittee;

fn block_for(h: Height, r: Round, proposer: usize) -> Value {
    Value::new(format!("block {h} round {r:?} by {proposer}").into_bytes())
}

struct Sim {
    cores: Vec<Option<Core>>,
    ctx: Ctx,
    vs: ValidatorSet,
    now_ms: u64,
    timers: Vec<(u64, usize, Timeout, u64)>,
    live_timers: Vec<HashMap<Timeout, u64>>,
    generation: u64,
    network: VecDeque<(usize, Vec<u8>)>,
    decided: Vec<Vec<(u64, ValueId, u64)>>,
    certificates: Vec<arc_malachitebft_core_types::CommitCertificate<Ctx>>,
    reject: Vec<(u64, usize)>,
}

impl Sim {
    fn new(dead: &[usize], reject: Vec<(u64, usize)>) -> Self {
        let tc = TestCommittee::new(4, 3);
        let ctx = Ctx::new(tc.committee.signing_domain());
        let vs = ValidatorSet::from_committee(&tc.committee);
        let cores = tc
            .identities
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (!dead.contains(&i)).then(|| {
                    Core::new(
                        ctx.clone(),
                        vs.clone(),
                        PrivateKey::from(id.secret_bytes()),
                        LinearTimeouts::default(),
                    )
                })
            })
            .collect();
        let mut sim = Self {
            cores,
            ctx,
            vs,
            now_ms: 0,
            timers: vec![],
            live_timers: vec![HashMap::new(); 4],
            generation: 0,
            network: VecDeque::new(),
            decided: vec![vec![]; 4],
            certificates: vec![],
            reject,
        };
        for i in 0..4 {
            if let Some(c) = sim.cores[i].as_mut() {
                let actions = c.start_height(Height(1));
                sim.run_actions(i, actions);
            }
        }
        sim
    }

    fn run_actions(&mut self, i: usize, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Broadcast(w) => self.network.push_back((i, w.encode())),
                Action::ScheduleTimeout(t, d) => {
                    self.generation += 1;
                    self.live_timers[i].insert(t, self.generation);
                    self.timers
                        .push((self.now_ms + d.as_millis() as u64, i, t, self.generation));
                }
                Action::CancelTimeout(t) => {
                    self.live_timers[i].remove(&t);
                }
                Action::CancelAllTimeouts => self.live_timers[i].clear(),
                Action::WalAppend(_) => {}
                Action::GetValue { height, round, .. } => {
                    let more = self.cores[i].as_mut().unwrap().propose(
                        height,
                        round,
                        block_for(height, round, i),
                    );
                    queue.extend(more);
                }
                Action::Decided {
                    height,
                    value,
                    certificate,
                } => {
                    self.decided[i].push((height.0, value.id(), self.now_ms));
                    self.certificates.push(certificate);
                    let more = self.cores[i]
                        .as_mut()
                        .unwrap()
                        .start_height(Height(height.0 + 1));
                    queue.extend(more);
                }
            }
        }
    }

    /// Delivers messages, then fires the earliest timer when the network is quiet.
    fn step(&mut self) {
        if let Some((from, bytes)) = self.network.pop_front() {
            let wire = Wire::decode(&bytes).expect("our own encoding decodes");
            for to in (0..4).filter(|&t| t != from) {
                let Some(core) = self.cores[to].as_mut() else {
                    continue;
                };
                let actions = match wire.clone() {
                    Wire::Vote(v) => core.on_vote(v),
                    Wire::Polka(c) => core.on_polka(c),
                    Wire::RoundCertificate(c) => core.on_round_certificate(c),
                    Wire::Proposal(p) => {
                        let proposer = self.vs.index_of(&p.address).unwrap();
                        let invalid = self.reject.contains(&(p.height.0, proposer));
                        core.on_proposal(
                            p,
                            if invalid {
                                Validity::Invalid
                            } else {
                                Validity::Valid
                            },
                        )
                    }
                };
                self.run_actions(to, actions);
            }
            return;
        }
        self.timers.sort_by_key(|(at, ..)| *at);
        while !self.timers.is_empty() {
            let (at, i, t, g) = self.timers.remove(0);
            if self.live_timers[i].get(&t) != Some(&g) {
                continue;
            }
            self.live_timers[i].remove(&t);
            self.now_ms = self.now_ms.max(at);
            let actions = self.cores[i].as_mut().unwrap().on_timeout(t);
            self.run_actions(i, actions);
            return;
        }
    }

    fn run_until(&mut self, heights: usize) {
        for _ in 0..200_000 {
            let live: Vec<usize> = (0..4).filter(|&i| self.cores[i].is_some()).collect();
            if live.iter().all(|&i| self.decided[i].len() >= heights) {
                return;
            }
            self.step();
        }
        panic!(
            "not decided: {:?}",
            self.decided.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    fn assert_agreement(&self, heights: usize) {
        let live: Vec<usize> = (0..4).filter(|&i| self.cores[i].is_some()).collect();
        for h in 0..heights {
            let first = self.decided[live[0]][h].1;
            for &i in &live {
                assert_eq!(self.decided[i][h].1, first, "height {} differs", h + 1);
            }
        }
    }
}

#[test]
fn four_validators_decide_the_same_blocks() {
    let mut sim = Sim::new(&[], vec![]);
    sim.run_until(5);
    sim.assert_agreement(5);
    assert_eq!(sim.now_ms, 0, "no timeout needed when everyone is up");
    let cert = sim.certificates[0].clone();
    verify_commit(&sim.ctx, &cert, &sim.vs, ThresholdParams::default()).unwrap();
    let mut bad = cert.clone();
    bad.commit_signatures.truncate(2);
    assert!(
        verify_commit(&sim.ctx, &bad, &sim.vs, ThresholdParams::default()).is_err(),
        "2 of 4 is no quorum"
    );
    let mut bad = cert.clone();
    bad.value_id = ValueId([0; 32]);
    assert!(
        verify_commit(&sim.ctx, &bad, &sim.vs, ThresholdParams::default()).is_err(),
        "signed another value"
    );
    let mut bad = cert;
    bad.commit_signatures[1] = bad.commit_signatures[0].clone();
    assert!(
        verify_commit(&sim.ctx, &bad, &sim.vs, ThresholdParams::default()).is_err(),
        "one validator counts once"
    );
}

#[test]
fn three_of_four_keep_deciding_with_one_dead() {
    let mut sim = Sim::new(&[1], vec![]);
    sim.run_until(8);
    sim.assert_agreement(8);
    // Heights whose round-0 proposer is dead wait for the propose timeout, then decide in
    // round 1: the longest stall is bounded by the timeouts, in virtual time.
    let times: Vec<u64> = sim.decided[0].iter().map(|d| d.2).collect();
    let stall = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(stall <= 15_000, "longest stall {stall} ms");
}

#[test]
fn an_invalid_proposal_is_never_decided() {
    // Height 1's round-0 proposer is member 0; everyone judges its block invalid.
    let mut sim = Sim::new(&[], (0..1).map(|_| (1, 0)).collect());
    sim.run_until(2);
    sim.assert_agreement(2);
    assert_ne!(
        sim.decided[0][0].1,
        block_for(Height(1), Round::new(0), 0).id()
    );
}

#[test]
fn malformed_wire_bytes_are_rejected() {
    assert!(Wire::decode(b"\xff\x00garbage").is_err());
    assert!(Wire::decode(&[]).is_err());
}

/// Only the proposer's signed proposal, within the round lookahead, reaches the app and the
/// core.
#[test]
fn proposals_are_checked_before_anything_is_stored() {
    let tc = TestCommittee::new(4, 3);
    let ctx = Ctx::new(tc.committee.signing_domain());
    let vs = ValidatorSet::from_committee(&tc.committee);
    let core_of = |i: usize| {
        Core::new(
            ctx.clone(),
            vs.clone(),
            PrivateKey::from(tc.identities[i].secret_bytes()),
            LinearTimeouts::default(),
        )
    };
    // Validator 0 proposes (1, 0); its proposal passes validator 2's check.
    let mut p0 = core_of(0);
    let mut actions = p0.start_height(Height(1));
    actions.extend(p0.propose(
        Height(1),
        Round::new(0),
        block_for(Height(1), Round::new(0), 0),
    ));
    let real = actions
        .iter()
        .find_map(|a| match a {
            Action::Broadcast(Wire::Proposal(p)) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let mut v = core_of(2);
    let _ = v.start_height(Height(1));
    assert!(v.check_proposal(&real));
    // A non-proposer signing a proposal for (1, 0) under its own address.
    let key1 = PrivateKey::from(tc.identities[1].secret_bytes());
    let mut other = real.message.clone();
    other.address = Address(*key1.public_key().as_bytes());
    other.value = Value::new(b"junk".to_vec());
    let sig = key1.sign(&ctx.proposal_sign_bytes(&other));
    assert!(!v.check_proposal(&arc_malachitebft_core_types::SignedMessage::new(other, sig)));
    // The proposer's address with a changed value (signature no longer matches).
    let mut forged = real.clone();
    forged.message.value = Value::new(b"junk".to_vec());
    assert!(!v.check_proposal(&forged));
    // Far beyond our round, signed by that round's proposer.
    let far = Round::new(41);
    let proposer = vs
        .index_of(&vs_proposer(&ctx, &vs, Height(1), far))
        .unwrap();
    let key = PrivateKey::from(tc.identities[proposer].secret_bytes());
    let mut ahead = real.message.clone();
    ahead.round = far;
    ahead.address = Address(*key.public_key().as_bytes());
    let sig = key.sign(&ctx.proposal_sign_bytes(&ahead));
    assert!(!v.check_proposal(&arc_malachitebft_core_types::SignedMessage::new(ahead, sig)));
}

fn vs_proposer(ctx: &Ctx, vs: &ValidatorSet, h: Height, r: Round) -> Address {
    use arc_malachitebft_core_types::{Context as _, Validator as _};
    *ctx.select_proposer(vs, h, r).address()
}
