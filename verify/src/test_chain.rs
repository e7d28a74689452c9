//! A log whose committee changes, for tests: committees by epoch (real BLS keys derived from
//! seeds), a log of build and change entries, the chain's links and proofs. Compiled for
//! this crate's tests and, with `testkit`, for other crates' tests and benches; never in a
//! product build.

use crate::entry::{ENTRY_FORMAT, LogEntry, Verdict, attestation_statement};
use crate::epoch::{CHANGE_ENTRY_KIND, ChainFile, ChainLink, ChangeEntry, approval_message};
use crate::request::{BuildRequest, REQUEST_FORMAT};
use crate::test_committee::{TestCommittee, bls_key};
use crate::tlog::{Hash, HashIndex, HashReader, MerkleError, ProofFile, merkle};

/// A log held as its leaves; any stored hash is computed from them.
#[derive(Default)]
pub struct TestLog {
    /// The entries, in log order.
    pub leaves: Vec<Vec<u8>>,
}

impl TestLog {
    fn hash(&self, level: u8, index: u64) -> Hash {
        if level == 0 {
            return merkle::leaf_hash(&self.leaves[index as usize]);
        }
        merkle::node_hash(
            &self.hash(level - 1, 2 * index),
            &self.hash(level - 1, 2 * index + 1),
        )
    }
    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }
    /// The root of the whole log.
    pub fn root(&self) -> Hash {
        merkle::tree_hash(self.size(), self).unwrap()
    }
    /// Appends an entry; its index.
    pub fn append(&mut self, bytes: Vec<u8>) -> u64 {
        self.leaves.push(bytes);
        self.size() - 1
    }
    /// The proof file of entry `index` under `tc`'s checkpoint of the current size.
    pub fn proof(&self, index: u64, tc: &TestCommittee) -> String {
        self.proof_at(index, self.size(), tc)
    }
    /// The proof file of entry `index` under `tc`'s checkpoint of the first `size` entries.
    pub fn proof_at(&self, index: u64, size: u64, tc: &TestCommittee) -> String {
        let cp = tc.cosign(size, merkle::tree_hash(size, self).unwrap());
        ProofFile {
            extra: Some(self.leaves[index as usize].clone()),
            index,
            proof: merkle::prove_inclusion(index, size, self).unwrap(),
            checkpoint: cp.note().to_string(),
        }
        .format()
    }
}

impl HashReader for TestLog {
    fn read_hashes(&self, idx: &[HashIndex]) -> Result<Vec<Hash>, MerkleError> {
        Ok(idx.iter().map(|i| self.hash(i.level, i.index)).collect())
    }
}

/// A request for `name@1.0.0` with fixed pins.
pub fn request(name: &str) -> BuildRequest {
    BuildRequest {
        format: REQUEST_FORMAT,
        krate: name.into(),
        version: "1.0.0".into(),
        source_sha256: vec![1; 32],
        lockfile_sha256: vec![2; 32],
        lockfile_shipped: true,
        toolchain: "1.95.0".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        profile: "release".into(),
        features: vec![],
        no_default_features: false,
        lib: true,
        bins: true,
        attempt: 1,
    }
}

/// A build entry for `name`, reproduced and attested by the first `t` members of `tc`.
pub fn build_entry(name: &str, tc: &TestCommittee) -> Vec<u8> {
    let req = request(name);
    let st = attestation_statement(tc.committee.origin(), &req.id(), &[3; 32]);
    LogEntry {
        format: ENTRY_FORMAT,
        request: req,
        verdict: Verdict::Reproduced,
        digest: vec![3; 32],
        attestation: tc
            .sign(0..tc.committee.threshold(), st.as_bytes())
            .to_bytes(),
        dissenters: vec![],
        silent: vec![],
        misbehaviour: vec![],
        height: 1,
        epoch: tc.committee.epoch(),
    }
    .to_cbor()
}

/// `current`'s approval of `next` by members `signers`.
pub fn approval(current: &TestCommittee, next: &TestCommittee, signers: &[usize]) -> Vec<u8> {
    let st = approval_message(
        &current.committee,
        &next.committee,
        &next.committee.to_toml(),
    );
    current
        .sign(signers.iter().copied(), st.as_bytes())
        .to_bytes()
}

/// The change entry of `current` → `next`, approved by `current`'s first `t` members.
pub fn change_entry(current: &TestCommittee, next: &TestCommittee) -> ChangeEntry {
    ChangeEntry {
        kind: CHANGE_ENTRY_KIND.into(),
        committee: next.committee.to_toml(),
        approval: approval(
            current,
            next,
            &(0..current.committee.threshold()).collect::<Vec<_>>(),
        ),
        height: 7,
    }
}

/// A group's history: committees by epoch, its log, the chain links, and one build entry
/// (its index) per epoch.
pub struct TestHistory {
    /// The committee of each epoch, from the genesis.
    pub epochs: Vec<TestCommittee>,
    /// The log.
    pub log: TestLog,
    /// The chain's links, one per change.
    pub links: Vec<ChainLink>,
    /// The index of each epoch's build entry (`genesis-crate`, then `crate-of-epoch-N`).
    pub builds: Vec<u64>,
}

impl TestHistory {
    /// A log of one build of the genesis committee.
    pub fn new(genesis: TestCommittee) -> Self {
        let mut h = Self {
            epochs: vec![genesis],
            log: TestLog::default(),
            links: vec![],
            builds: vec![],
        };
        h.build("genesis-crate");
        h
    }
    /// The current committee.
    pub fn current(&self) -> &TestCommittee {
        self.epochs.last().unwrap()
    }
    /// Appends a build of `name` attested by the current committee.
    pub fn build(&mut self, name: &str) {
        let bytes = build_entry(name, self.current());
        let i = self.log.append(bytes);
        self.builds.push(i);
    }
    /// Appends the change to `next` (approved by the current committee) and its handoff
    /// link; `next` becomes current, and a build of its first epoch follows.
    pub fn change(&mut self, next: TestCommittee) {
        let entry = change_entry(self.current(), &next);
        let index = self.log.append(entry.to_cbor());
        self.links.push(ChainLink {
            epoch: next.committee.epoch(),
            proof: self.log.proof(index, self.current()),
        });
        self.epochs.push(next);
        let name = format!("crate-of-epoch-{}", self.epochs.len() - 1);
        self.build(&name);
    }
    /// The chain file of every change so far.
    pub fn chain_text(&self) -> String {
        let g = &self.epochs[0].committee;
        toml::to_string(&ChainFile {
            origin: g.origin().into(),
            genesis: hex::encode(g.digest()),
            links: self.links.clone(),
        })
        .unwrap()
    }
}

/// Genesis of 4; epoch 1: a fifth member joins; epoch 2: original member 1 leaves;
/// epoch 3: member 0's BLS key rotates; epoch 4: a `[protocol]` rule changes.
pub fn four_changes() -> TestHistory {
    let g = TestCommittee::new(4, 1);
    let mut h = TestHistory::new(g);
    let c0 = h.current();
    let mut members: Vec<_> = (0..4).map(|i| c0.member(i)).collect();
    members.push(TestCommittee::newcomer(9, 0));
    let e1 = c0.successor(members, |_| {});
    h.change(e1);
    let c1 = h.current();
    let e2 = c1.successor([0, 2, 3, 4].map(|i| c1.member(i)).to_vec(), |_| {});
    h.change(e2);
    let c2 = h.current();
    let (mut rotated, _) = c2.member(0);
    let new_key = bls_key(77, 0);
    rotated.bls_public_key = hex::encode(new_key.public_key().to_bytes());
    rotated.bls_proof_of_possession = hex::encode(new_key.proof_of_possession().to_bytes());
    let mut members: Vec<_> = (0..4).map(|i| c2.member(i)).collect();
    members[0] = (rotated, new_key);
    let e3 = c2.successor(members, |_| {});
    h.change(e3);
    let c3 = h.current();
    let e4 = c3.successor((0..4).map(|i| c3.member(i)).collect(), |f| {
        f.protocol.reveal_window_secs = 240;
    });
    h.change(e4);
    h
}

/// A genesis of `n` members (keys from seed 11) and `changes` changes, each giving one
/// member new keys (member `i % n` in change `i`, keeping its name): every link carries a
/// whole `n`-member committee, as a real group's would.
pub fn rotations(n: usize, changes: usize) -> TestHistory {
    let mut h = TestHistory::new(TestCommittee::new(n, 11));
    for i in 0..changes {
        let c = h.current();
        let mut members: Vec<_> = (0..n).map(|m| c.member(m)).collect();
        let (mut fresh, key) = TestCommittee::newcomer(100u8.wrapping_add(i as u8), i % n);
        fresh.name = members[i % n].0.name.clone();
        members[i % n] = (fresh, key);
        let next = c.successor(members, |_| {});
        h.change(next);
    }
    h
}
