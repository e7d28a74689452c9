//! The fault table: one round at member 0 of a 4-member group (submitted through it, built,
//! committed, revealed, decided), with the node's storage crashing at each of its writes,
//! the write persisted or not; then the node is dropped (the crash), reopened from the same
//! directory (real redb files) and run to the end. Checked after each: fsck passes, the log
//! and the open rounds equal a node that did not crash, member 0 never published two
//! different commitments, its reveal is in the decided entry, and `rounds.redb` ends empty.
//!
//! The node here is the app and state layer (`NodeApp`, `Shared`) with the builder driver's
//! duties written out in [`Node`] (the real driver speaks through the network): the same
//! storage calls in the same order, each step chosen by the product's rule,
//! [`lifecycle::next`], and the same start-up (`BuilderDriver::resume`).

use std::collections::HashSet;
use std::sync::Arc;

use arc_malachitebft_core_types::{CommitCertificate, Round};
use synchronicity_verify::Phase;
use tokio::sync::mpsc;

use super::fault::{Fault, FaultyStorage, Step};
use super::{NodeStorage, RedbStorage};
use crate::codec;
use crate::consensus::actor::App;
use crate::consensus::{Height, Value};
use crate::crypto::ThresholdSignature;
use crate::log::{FsckReport, LogStore, fsck};
use crate::node::app::{AppEvent, NodeApp};
use crate::node::lifecycle::{self, Own, Status};
use crate::node::own::{OwnState, Secret};
use crate::node::shared::Shared;
use crate::protocol::{
    Block, Body, Duty, LogEntry, RevealedOutcome, SignedMessage, Verdict, attestation_statement,
    commitment, outcome_digest,
};
use crate::request::PinnedRequest;
use crate::testing::{TestCommittee, manifest, request};

/// The writes of one round at member 0, in order: what the fault table runs over.
const STEPS: [Step; 9] = [
    Step::SaveSubmitted,
    Step::ApplyHeight(1),
    Step::ForgetSubmitted,
    Step::SaveBuilt,
    Step::SaveCommitted,
    Step::ApplyHeight(2),
    Step::SaveRevealed,
    Step::ApplyHeight(3),
    Step::ForgetRound,
];

/// The group around member 0: the decided chain, and what member 0 has published.
struct World {
    tc: TestCommittee,
    req: PinnedRequest,
    id: [u8; 32],
    text: String,
    chain: Vec<Value>,
    time_ms: u64,
    /// Member 0's messages not in a block yet (the latest of each kind).
    pending: Vec<SignedMessage>,
    /// Every commitment member 0 published for the round.
    commitments: Vec<Vec<u8>>,
    /// A node that applies every decided height and never crashes: the group's view.
    reference: Node,
    _reference_dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let tc = TestCommittee::new(4, 21);
        let req = request("crashy", "1.0.0", "version = 4\n");
        let dir = tempfile::tempdir().unwrap();
        let reference = Node::open(&tc, dir.path(), None);
        Self {
            id: req.id(),
            req,
            text: manifest("crashy", "1.0.0", "default").to_text(),
            tc,
            chain: Vec::new(),
            time_ms: 1_000_000,
            pending: Vec::new(),
            commitments: Vec::new(),
            reference,
            _reference_dir: dir,
        }
    }

    fn sign(&self, member: usize, body: Body) -> SignedMessage {
        SignedMessage::sign(
            body,
            member as u32,
            &self.tc.identities[member],
            self.tc.committee.signing_domain(),
        )
    }

    /// What member 0 sends to the group.
    fn publish(&mut self, body: Body) {
        if let Body::Commit { commitment, .. } = &body {
            self.commitments.push(commitment.clone());
        }
        let kind = std::mem::discriminant(&body);
        self.pending
            .retain(|m| std::mem::discriminant(&m.body) != kind);
        let msg = self.sign(0, body);
        self.pending.push(msg);
    }

    fn take_pending(&mut self, kind: fn(&Body) -> bool) -> Option<SignedMessage> {
        let i = self.pending.iter().position(|m| kind(&m.body))?;
        Some(self.pending.remove(i))
    }

    fn salt(member: usize) -> [u8; 32] {
        [member as u8 + 40; 32]
    }

    fn other_commit(&self, m: usize) -> SignedMessage {
        let digest = outcome_digest(&RevealedOutcome::Manifest(self.text.clone())).unwrap();
        let peer = self.tc.committee.members()[m].peer_id;
        let c = commitment(&self.id, &digest, &Self::salt(m), &peer);
        self.sign(
            m,
            Body::Commit {
                request_id: self.id.to_vec(),
                commitment: c.to_vec(),
            },
        )
    }

    fn other_reveal(&self, m: usize) -> SignedMessage {
        let outcome = RevealedOutcome::Manifest(self.text.clone());
        let digest = outcome_digest(&outcome).unwrap();
        let statement = attestation_statement(self.tc.committee.origin(), &self.id, &digest);
        self.sign(
            m,
            Body::Reveal {
                request_id: self.id.to_vec(),
                outcome,
                salt: Self::salt(m).to_vec(),
                attestation: self.tc.bls[m]
                    .sign(statement.as_bytes())
                    .to_bytes()
                    .to_vec(),
            },
        )
    }

    fn decided(&self) -> bool {
        self.reference
            .shared
            .store
            .lookup_request(&self.id)
            .unwrap()
            .is_some()
    }

    /// Whether the group has the request (in a block, or waiting in member 0's messages).
    fn has_request(&self) -> bool {
        self.decided()
            || self.reference.shared.view().state.is_open(&self.id)
            || self
                .pending
                .iter()
                .any(|m| matches!(m.body, Body::Request(_)))
    }

    /// The group decides the next height if member 0's part of it has arrived: the
    /// request, then every commitment, then every reveal. Returns whether it did.
    fn decide_next(&mut self) -> bool {
        let phase = self
            .reference
            .shared
            .view()
            .state
            .round_status(&self.id, &self.tc.committee)
            .map(|s| s.phase);
        let messages = match phase {
            None if self.decided() => return false,
            None => match self.take_pending(|b| matches!(b, Body::Request(_))) {
                Some(r) => vec![r],
                None => return false,
            },
            Some(Phase::Commit) => match self.take_pending(|b| matches!(b, Body::Commit { .. })) {
                Some(c) => std::iter::once(c)
                    .chain((1..4).map(|m| self.other_commit(m)))
                    .collect(),
                None => return false,
            },
            Some(_) => match self.take_pending(|b| matches!(b, Body::Reveal { .. })) {
                Some(r) => std::iter::once(r)
                    .chain((1..4).map(|m| self.other_reveal(m)))
                    .collect(),
                None => return false,
            },
        };
        self.time_ms += 1000;
        let block = Block {
            height: self.chain.len() as u64 + 1,
            time_ms: self.time_ms,
            messages,
        };
        self.chain.push(Value::new(codec::to_vec(&block)));
        let applied = self.reference.catch_up_quietly(&self.chain);
        assert!(applied, "the reference node applies every decided height");
        true
    }
}

fn certificate(height: u64, value: &Value) -> CommitCertificate<crate::consensus::Ctx> {
    CommitCertificate {
        height: Height(height),
        round: Round::new(0),
        value_id: arc_malachitebft_core_types::Value::id(value),
        commit_signatures: vec![],
    }
}

/// Member 0: the app and state over a directory, and the builder driver's duties.
struct Node {
    shared: Arc<Shared>,
    app: NodeApp,
    storage: Arc<dyn NodeStorage>,
    faulty: Option<Arc<FaultyStorage>>,
    events: mpsc::UnboundedReceiver<AppEvent>,
}

impl Node {
    fn open(tc: &TestCommittee, dir: &std::path::Path, fault: Option<Option<Fault>>) -> Self {
        let store = LogStore::open(&dir.join("log")).unwrap();
        let (shared, state) = Shared::restore(tc.committee.clone(), 0, store).unwrap();
        let shared = Arc::new(shared);
        let redb = RedbStorage::open(&dir.join("rounds.redb")).unwrap();
        let (storage, faulty): (Arc<dyn NodeStorage>, _) = match fault {
            Some(f) => {
                let faulty = Arc::new(FaultyStorage::new(redb, f));
                (faulty.clone(), Some(faulty))
            }
            None => (Arc::new(redb), None),
        };
        let (tx, events) = mpsc::unbounded_channel();
        let app = NodeApp::new(shared.clone(), storage.clone(), state, tx);
        Self {
            shared,
            app,
            storage,
            faulty,
            events,
        }
    }

    fn crashed(&self) -> bool {
        self.faulty.as_ref().is_some_and(|f| f.crashed())
    }

    /// A message leaves the node, unless the node is dead.
    fn publish(&self, world: &mut World, body: Body) {
        if !self.crashed() {
            world.publish(body);
        }
    }

    fn applied(&self) -> u64 {
        self.shared.view().height
    }

    /// Applies the decided heights it lacks; stops at a failed one (the node halts).
    fn catch_up(&mut self, world: &mut World) {
        while (self.applied() as usize) < world.chain.len() && !self.crashed() {
            let h = self.applied() + 1;
            let value = world.chain[h as usize - 1].clone();
            if let Err(e) = self.app.commit(Height(h), &value, &certificate(h, &value)) {
                assert!(self.crashed(), "height {h} does not apply: {e}");
                return;
            }
            self.on_events(world);
        }
    }

    /// The reference node: applies and ignores its duties. False if a height failed.
    fn catch_up_quietly(&mut self, chain: &[Value]) -> bool {
        while (self.applied() as usize) < chain.len() {
            let h = self.applied() + 1;
            let value = &chain[h as usize - 1];
            if self
                .app
                .commit(Height(h), value, &certificate(h, value))
                .is_err()
            {
                return false;
            }
        }
        while self.events.try_recv().is_ok() {}
        true
    }

    /// The node loop's handling of the app's events (run.rs `on_app`, builder_driver.rs
    /// `on_duties` and `on_decided`).
    fn on_events(&mut self, world: &mut World) {
        while let Ok(e) = self.events.try_recv() {
            match e {
                AppEvent::Duties(duties) => {
                    for d in duties {
                        let (Duty::Build(id) | Duty::Reveal(id)) = d;
                        self.advance(world, id);
                    }
                }
                AppEvent::Grown { decided, .. } => {
                    for id in decided {
                        self.advance(world, id);
                    }
                }
                AppEvent::Lagging { .. } | AppEvent::Applied { .. } => {}
            }
        }
    }

    /// builder_driver.rs `submit` (the request is new to the group).
    fn submit(&mut self, world: &mut World) {
        let req = world.req.clone();
        let state = OwnState::Submitted(Box::new(req.clone()));
        if self.storage.save_round(&world.id, &state).is_ok() {
            self.publish(world, Body::Request(req));
        }
    }

    /// builder_driver.rs `status`.
    fn status(&self, world: &World, id: &[u8; 32]) -> Status {
        match self
            .shared
            .view()
            .state
            .round_status(id, &world.tc.committee)
        {
            Some(st) => Status::Open {
                phase: st.phase,
                committed: st.committed.contains(&0),
                revealed: st.revealed.contains(&0),
            },
            None if self.shared.store.lookup_request(id).unwrap().is_some() => Status::Decided,
            None => Status::Unordered,
        }
    }

    /// builder_driver.rs `advance`: the step is the product's [`lifecycle::next`].
    fn advance(&mut self, world: &mut World, id: [u8; 32]) {
        let own = self.storage.round(&id);
        let kind = own.as_ref().map_or(Own::Nothing, OwnState::kind);
        let Some(step) = lifecycle::next(kind, self.status(world, &id)) else {
            return;
        };
        match (step, own) {
            (lifecycle::Step::Publish, Some(OwnState::Submitted(request))) => {
                self.publish(world, Body::Request(*request));
            }
            (lifecycle::Step::Build, _) => {
                if kind == Own::Submitted {
                    self.storage.forget_submitted(&id);
                }
                self.build(world, id);
            }
            (lifecycle::Step::Commit, Some(own)) => {
                let secret = own.secret().unwrap().clone();
                self.commit(world, id, &secret);
                if kind != Own::Committed {
                    let _ = self.storage.save_round(&id, &OwnState::Committed(secret));
                }
            }
            (lifecycle::Step::Reveal, Some(own)) => {
                let secret = own.secret().unwrap().clone();
                self.reveal(world, id, &secret);
                if kind != Own::Revealed {
                    let _ = self.storage.save_round(&id, &OwnState::Revealed(secret));
                }
            }
            (lifecycle::Step::Forget, _) => self.storage.forget_round(&id),
            (step, own) => panic!("no {step:?} from {own:?}"),
        }
    }

    /// builder_driver.rs `start_build` and `on_built` with the build done at once: a fresh
    /// salt, saved, then committed.
    fn build(&mut self, world: &mut World, id: [u8; 32]) {
        if self.crashed() || !self.status(world, &id).awaits_our_commitment() {
            return;
        }
        if self
            .storage
            .round(&id)
            .is_some_and(|s| s.secret().is_some())
        {
            return; // never a second secret
        }
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).unwrap();
        let secret = Secret {
            outcome: RevealedOutcome::Manifest(world.text.clone()),
            salt,
        };
        if self
            .storage
            .save_round(&id, &OwnState::Built(secret))
            .is_ok()
        {
            self.advance(world, id);
        }
    }

    /// builder_driver.rs `commit`.
    fn commit(&self, world: &mut World, id: [u8; 32], secret: &Secret) {
        let digest = outcome_digest(&secret.outcome).unwrap();
        let peer = world.tc.committee.members()[0].peer_id;
        let c = commitment(&id, &digest, &secret.salt, &peer);
        self.publish(
            world,
            Body::Commit {
                request_id: id.to_vec(),
                commitment: c.to_vec(),
            },
        );
    }

    /// builder_driver.rs `reveal`.
    fn reveal(&self, world: &mut World, id: [u8; 32], secret: &Secret) {
        let digest = outcome_digest(&secret.outcome).unwrap();
        let statement = attestation_statement(world.tc.committee.origin(), &id, &digest);
        let attestation = world.tc.bls[0]
            .sign(statement.as_bytes())
            .to_bytes()
            .to_vec();
        self.publish(
            world,
            Body::Reveal {
                request_id: id.to_vec(),
                outcome: secret.outcome.clone(),
                salt: secret.salt.to_vec(),
                attestation,
            },
        );
    }

    /// At start: builder_driver.rs `resume` (open rounds in the order they were ordered,
    /// then every other request with a row).
    fn recover(&mut self, world: &mut World) {
        let view = self.shared.view();
        let mut open: Vec<([u8; 32], u64)> = view
            .state
            .open_requests()
            .filter_map(|(id, _)| {
                view.state
                    .round_status(id, &world.tc.committee)
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
            self.advance(world, id);
        }
    }
}

/// What a run ends with.
struct Run {
    steps: Vec<Step>,
    crashes: usize,
    world: World,
    node: Node,
    _dir: tempfile::TempDir,
}

/// Runs the round at member 0 with `fault` (none: a clean run), restarting it after a
/// crash, until the group decided the request and the node applied every height.
fn run(fault: Option<Fault>) -> Run {
    let mut world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::open(&world.tc, dir.path(), Some(fault));
    let mut steps = Vec::new();
    let mut crashes = 0;
    for _ in 0..32 {
        node.catch_up(&mut world);
        if !node.crashed() && !world.has_request() {
            // The submitter has no id yet (or its call failed): it submits.
            node.submit(&mut world);
        }
        if node.crashed() {
            // The crash: drop everything in memory, reopen the same directory.
            steps = node.faulty.as_ref().unwrap().steps();
            crashes += 1;
            drop(node);
            node = Node::open(&world.tc, dir.path(), None);
            node.recover(&mut world);
            continue;
        }
        if !world.decide_next() && world.decided() && node.applied() as usize == world.chain.len() {
            if let Some(f) = &node.faulty {
                steps = f.steps();
            }
            return Run {
                steps,
                crashes,
                world,
                node,
                _dir: dir,
            };
        }
    }
    panic!("the round did not finish (fault {fault:?})");
}

fn head(store: &LogStore, tc: &TestCommittee) -> FsckReport {
    fsck(store, Some(&tc.committee)).unwrap_or_else(|e| panic!("fsck: {e}"))
}

/// Every step × {persisted, not persisted}: crash, restart, and the round still ends as
/// the group decided it.
#[test]
fn a_crash_at_any_write_restarts_into_the_same_round() {
    let clean = run(None);
    assert_eq!(clean.steps, STEPS, "the writes of one round, in order");
    assert_eq!(clean.crashes, 0);

    for (at, step) in STEPS.iter().enumerate() {
        for persist in [false, true] {
            let case = format!("crash at write {at} ({step:?}), persisted: {persist}");
            let r = run(Some(Fault { at, persist }));
            assert_eq!(r.crashes, 1, "{case}: the fault fired once");
            assert_eq!(
                r.steps.get(at),
                Some(step),
                "{case}: the fault hit its step"
            );
            let (w, node) = (&r.world, &r.node);

            // fsck passes, and the log equals the node that never crashed.
            let got = head(&node.shared.store, &w.tc);
            let want = head(&w.reference.shared.store, &w.tc);
            assert_eq!(got, want, "{case}: log against the reference");
            assert_eq!(
                node.shared.store.open_rounds().unwrap(),
                w.reference.shared.store.open_rounds().unwrap(),
                "{case}: open-round rows"
            );
            assert_eq!(got.applied_height, Some(3), "{case}: three heights");

            // One commitment, however often it was published.
            assert!(!w.commitments.is_empty(), "{case}: committed");
            assert!(
                w.commitments.iter().all(|c| *c == w.commitments[0]),
                "{case}: a second, different commitment was published"
            );

            // Decided, with member 0's reveal in the attestation.
            let index = node.shared.store.lookup_request(&w.id).unwrap().unwrap();
            let entry = LogEntry::decode(&node.shared.store.entry(index).unwrap()).unwrap();
            assert_eq!(entry.verdict, Verdict::Reproduced, "{case}");
            let ts = ThresholdSignature::from_bytes(&entry.attestation, 4).unwrap();
            assert!(
                ts.signers.iter().any(|s| s == 0),
                "{case}: member 0 revealed"
            );

            // Nothing of the round is left in rounds.redb.
            assert!(node.storage.round_ids().is_empty(), "{case}: rows left");
        }
    }
}
