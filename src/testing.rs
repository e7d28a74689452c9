//! Deterministic committees for tests and benchmarks: real keys, real proofs of possession,
//! derived from small seeds so runs are repeatable. Never use these keys for a real group.
//! The keys, the committee file and the signatures are `synchronicity_verify::test_committee`'s
//! (the verifier's tests use the same); [`TestCommittee`] adds each member's Ed25519
//! identity and the node's view of the committee.
//!
//! Compiled only for this crate's own tests, examples and benches (the `testkit` feature,
//! which only the crate's dev-dependency on itself enables): never part of a product build.

use synchronicity_verify::test_committee as testkit;

use crate::committee::{Committee, ProtocolRules};
use crate::crypto::{BlsSecretKey, NodeIdentity, ThresholdSignature};
use crate::log::CosignedCheckpoint;
use crate::request::{BuildRequest, PinnedRequest, REQUEST_FORMAT};

/// A committee of `n` members with their secret keys, origin `example.org/synchronicity/test`.
#[derive(Debug)]
pub struct TestCommittee {
    /// The validated committee.
    pub committee: Committee,
    /// Members' Ed25519 identities, in committee order.
    pub identities: Vec<NodeIdentity>,
    /// Members' BLS keys, in committee order.
    pub bls: Vec<BlsSecretKey>,
}

impl TestCommittee {
    /// `n` members (n ≤ 200), threshold ⌊2n/3⌋+1, keys derived from `seed`.
    pub fn new(n: usize, seed: u8) -> Self {
        Self::with_origin(n, seed, testkit::TEST_ORIGIN)
    }

    /// Like [`TestCommittee::new`] with another origin.
    pub fn with_origin(n: usize, seed: u8, origin: &str) -> Self {
        let addrs = (0..n)
            .map(|i| format!("/ip4/127.0.0.1/tcp/{}", 17000 + i))
            .collect();
        Self::build(n, seed, origin, addrs)
    }

    /// Like [`TestCommittee::new`] with member `i` listening on 127.0.0.1:`ports[i]`.
    pub fn with_ports(seed: u8, ports: &[u16]) -> Self {
        let addrs = ports
            .iter()
            .map(|p| format!("/ip4/127.0.0.1/tcp/{p}"))
            .collect();
        Self::build(ports.len(), seed, testkit::TEST_ORIGIN, addrs)
    }

    /// The same members under other `[protocol]` rules (a committee with another digest).
    pub fn with_rules(mut self, rules: ProtocolRules) -> Self {
        let mut file = self.committee.to_file();
        file.protocol = rules;
        self.committee = Committee::from_file(file).expect("valid rules");
        self
    }

    /// The same members with attestation threshold `t`.
    pub fn with_threshold(mut self, t: usize) -> Self {
        let mut file = self.committee.to_file();
        file.threshold = t;
        self.committee = Committee::from_file(file).expect("valid threshold");
        self
    }

    /// Writes member `i`'s key files into a new node directory `dir`.
    pub fn write_node_dir(&self, i: usize, dir: &std::path::Path) {
        let keys = crate::node_dir::NodeKeys {
            identity: NodeIdentity::from_secret_bytes(&self.identities[i].secret_bytes())
                .expect("valid seed"),
            bls: BlsSecretKey::from_bytes(&self.bls[i].to_bytes()).expect("valid key"),
        };
        let addrs: Vec<multiaddr::Multiaddr> = self.committee.members()[i].addrs.clone();
        crate::node_dir::create_with_keys(dir, &format!("m{i}"), &addrs, keys)
            .expect("new node directory");
    }

    fn build(n: usize, seed: u8, origin: &str, addrs: Vec<String>) -> Self {
        let identities: Vec<_> = (0..n)
            .map(|i| {
                let mut s = [seed; 32];
                s[..8].copy_from_slice(&(i as u64).to_le_bytes());
                NodeIdentity::from_secret_bytes(&s).expect("32-byte seed")
            })
            .collect();
        let bls: Vec<_> = (0..n).map(|i| testkit::bls_key(seed, i)).collect();
        let members = (0..n)
            .map(|i| {
                let peer_id = identities[i].peer_id().to_base58();
                testkit::member_entry(i, peer_id, &bls[i], addrs[i].clone())
            })
            .collect();
        let committee = Committee::from_file(testkit::committee_file(origin, members))
            .expect("valid test committee");
        Self {
            committee,
            identities,
            bls,
        }
    }

    /// The threshold signature of members `signers` over `message`.
    pub fn sign(
        &self,
        signers: impl IntoIterator<Item = usize>,
        message: &[u8],
    ) -> ThresholdSignature {
        testkit::sign(&self.committee, &self.bls, signers, message)
    }

    /// A checkpoint cosigned by the first `t` members.
    pub fn cosign(&self, size: u64, root: [u8; 32]) -> CosignedCheckpoint {
        testkit::cosign(&self.committee, &self.bls, size, root)
    }

    /// The checkpoint of `store`'s log at `size` (its root and index line, as members
    /// sign it), cosigned by the first `t` members.
    pub fn cosign_log(&self, store: &crate::log::LogStore, size: u64) -> CosignedCheckpoint {
        let root = store.tree_hash(size).expect("size within the log");
        let cp = store
            .checkpoint_body(self.committee.origin(), size, root)
            .expect("store readable");
        testkit::cosign_checkpoint(&self.committee, &self.bls, &cp)
    }
}

/// A valid release request for `name@version` on x86_64 Linux with toolchain 1.95.0, lib and
/// bins, no features, the given lockfile, and a placeholder source sha256.
pub fn request(name: &str, version: &str, lockfile: &str) -> PinnedRequest {
    let request = BuildRequest {
        format: REQUEST_FORMAT,
        krate: name.into(),
        version: version.into(),
        source_sha256: vec![1; 32],
        lockfile_sha256: Vec::new(),
        lockfile_shipped: true,
        toolchain: "1.95.0".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        profile: "release".into(),
        features: vec![],
        no_default_features: false,
        lib: true,
        bins: true,
        attempt: 1,
    };
    PinnedRequest::new(request, lockfile.to_string())
}

/// A manifest naming one artifact of `name@version` whose bytes differ by `variant` (tests
/// make builders agree or disagree with it).
pub fn manifest(name: &str, version: &str, variant: &str) -> crate::builder::Manifest {
    let mut m = crate::builder::Manifest::default();
    m.insert(
        &format!("target/release/lib{name}.rlib"),
        crate::crypto::sha256(format!("{name}@{version} {variant}").as_bytes()),
    );
    m
}

/// The lockfile a [`FixedBuilder`] crate "ships" (its `.crate` holds this text).
pub fn shipped_lockfile(name: &str, version: &str) -> String {
    format!("# lockfile of {name}@{version}\n")
}

/// The bytes of binary `bin` a [`FixedBuilder`] build of `name@version` produces: a shell
/// script that prints who it is (tests put them into a member's artifact store and run
/// what `install` wrote).
pub fn fixed_binary(name: &str, version: &str, bin: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho {bin} from {name}@{version}\n").into_bytes()
}

/// A builder for consensus tests: returns chosen manifests instead of building (the
/// builder's own tests run real builds). Crates in `overrides` get that variant; others
/// the variant "same"; a variant `!why` makes the builder fail to run with `why` (a local
/// failure, as when the registry is unreachable). Crates in `bins` also get those binaries
/// (`target/release/<bin>`, bytes [`fixed_binary`]). Every crate "ships" the lockfile
/// [`shipped_lockfile`]: a request with another one is pinned with `lockfile_shipped`
/// false, as the real builder does.
#[derive(Debug, Default)]
pub struct FixedBuilder {
    /// crate name → manifest variant.
    pub overrides: std::collections::HashMap<String, String>,
    /// crate name → its binaries' names.
    pub bins: std::collections::HashMap<String, Vec<String>>,
    /// Simulated build time.
    pub delay: std::time::Duration,
}

impl crate::node::BuildService for FixedBuilder {
    fn pin(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
    ) -> Result<PinnedRequest, String> {
        let shipped = shipped_lockfile(name, version);
        let lockfile = lockfile.unwrap_or_else(|| shipped.clone());
        let mut pinned = request(name, version, &lockfile);
        pinned.request.lockfile_shipped = lockfile == shipped;
        Ok(pinned)
    }

    fn build(
        &self,
        pinned: &PinnedRequest,
        progress: &dyn Fn(crate::builder::Phase),
    ) -> Result<crate::builder::Outcome, String> {
        let req = &pinned.request;
        progress(crate::builder::Phase::Build);
        std::thread::sleep(self.delay);
        let variant = self
            .overrides
            .get(&req.krate)
            .map(String::as_str)
            .unwrap_or("same");
        // "!why": this builder cannot run here (a local failure, not an outcome).
        if let Some(why) = variant.strip_prefix('!') {
            return Err(why.to_string());
        }
        let mut m = manifest(&req.krate, &req.version, variant);
        for bin in self.bins.get(&req.krate).into_iter().flatten() {
            m.insert(
                &format!("target/release/{bin}"),
                crate::crypto::sha256(&fixed_binary(&req.krate, &req.version, bin)),
            );
        }
        Ok(crate::builder::Outcome::Success(m))
    }
}

/// A log entry (CBOR) recording `name@1.0.0` reproduced by members `signers` of `tc`, with
/// the manifest of [`manifest`]`(name, "1.0.0", "same")`.
pub fn reproduced_entry(tc: &TestCommittee, name: &str, signers: &[usize]) -> Vec<u8> {
    let req = request(name, "1.0.0", "lock").request;
    let m = manifest(name, "1.0.0", "same");
    let statement =
        crate::protocol::attestation_statement(tc.committee.origin(), &req.id(), &m.digest());
    let sig = tc.sign(signers.iter().copied(), statement.as_bytes());
    crate::codec::to_vec(&crate::protocol::LogEntry {
        format: crate::protocol::ENTRY_FORMAT,
        request: req,
        verdict: crate::protocol::Verdict::Reproduced,
        digest: m.digest().to_vec(),
        attestation: sig.to_bytes(),
        dissenters: vec![],
        silent: vec![],
        misbehaviour: vec![],
        height: 1,
        epoch: 0,
    })
}

/// `n` TCP ports free on 127.0.0.1 right now (bound, read, released: another process could
/// take one before it is used, which local tests accept).
pub fn free_loopback_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// A proof file for a reproduced `itoa@1.0.15` (attested and cosigned by the first `t`
/// members of `tc`) at index 777,777 of a 2^20-entry log: any 20 sibling hashes form a valid
/// path in a perfect tree, so no log has to be built.
pub fn reproduced_proof(tc: &TestCommittee) -> String {
    use crate::log::{ProofFile, merkle};
    let t = tc.committee.threshold();
    let req = request("itoa", "1.0.15", "# Cargo.lock\n").request;
    let m = manifest("itoa", "1.0.15", "same");
    let st = crate::protocol::attestation_statement(tc.committee.origin(), &req.id(), &m.digest());
    let entry = crate::protocol::LogEntry {
        format: crate::protocol::ENTRY_FORMAT,
        request: req,
        verdict: crate::protocol::Verdict::Reproduced,
        digest: m.digest().to_vec(),
        attestation: tc.sign(0..t, st.as_bytes()).to_bytes(),
        dissenters: vec![],
        silent: vec![],
        misbehaviour: vec![],
        height: 1,
        epoch: 0,
    };
    let bytes = entry.to_cbor();
    let (size, index) = (1u64 << 20, 777_777u64);
    let proof: Vec<merkle::Hash> = (0..20u8).map(|i| crate::crypto::sha256(&[i])).collect();
    let root = perfect_tree_root(&bytes, index, &proof);
    let cp = tc.cosign(size, root);
    ProofFile {
        extra: Some(bytes),
        index,
        proof,
        checkpoint: cp.note().to_string(),
    }
    .format()
}

/// The root of a perfect tree (2^proof.len() leaves) in which `leaf` is at `index` and
/// `proof` lists its siblings from the bottom: any sibling hashes make a valid path.
pub fn perfect_tree_root(leaf: &[u8], index: u64, proof: &[crate::log::Hash]) -> crate::log::Hash {
    use crate::log::merkle;
    let mut root = merkle::leaf_hash(leaf);
    for (level, sib) in proof.iter().enumerate() {
        root = if index >> level & 1 == 1 {
            merkle::node_hash(sib, &root)
        } else {
            merkle::node_hash(&root, sib)
        };
    }
    root
}
