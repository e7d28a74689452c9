//! Deterministic committees for tests: real BLS keys and proofs of possession derived from
//! small seeds, so runs repeat. Never use these keys for a real group.
//!
//! Compiled for this crate's own tests and, with the `testkit` feature, for other crates'
//! tests: the light crate's, and the node crate's test kit (`synchronicity::testing::
//! TestCommittee`, which adds each member's Ed25519 identity). One derivation of the keys,
//! the committee file and the signatures for all of them. No product build enables
//! `testkit`.

use crate::committee::{
    BuildEnvironment, Committee, CommitteeFile, MemberEntry, ProtocolRules, default_threshold,
    peer_id_of_ed25519,
};
use crate::crypto::{BlsSecretKey, PartialSignature, ThresholdAggregator, ThresholdSignature};
use crate::tlog::{Checkpoint, CosignedCheckpoint};

/// The origin of test committees.
pub const TEST_ORIGIN: &str = "example.org/synchronicity/test";

/// Member `i`'s BLS key in the committee derived from `seed`.
pub fn bls_key(seed: u8, i: usize) -> BlsSecretKey {
    let mut ikm = [seed ^ 0x5a; 32];
    ikm[..8].copy_from_slice(&(i as u64).to_le_bytes());
    BlsSecretKey::from_key_material(&ikm).expect("32 bytes")
}

/// Member `i`'s entry: name `m{i}`, `peer_id`, `bls`'s public key and proof of possession,
/// one address.
pub fn member_entry(i: usize, peer_id: String, bls: &BlsSecretKey, addr: String) -> MemberEntry {
    MemberEntry {
        name: format!("m{i}"),
        peer_id,
        bls_public_key: hex::encode(bls.public_key().to_bytes()),
        bls_proof_of_possession: hex::encode(bls.proof_of_possession().to_bytes()),
        addrs: vec![addr],
    }
}

/// A committee file of `members` for `origin` (also its chain id): threshold ⌊2n/3⌋+1,
/// toolchain 1.95.0 for x86_64 Linux, the default rules.
pub fn committee_file(origin: &str, members: Vec<MemberEntry>) -> CommitteeFile {
    CommitteeFile {
        origin: origin.into(),
        chain_id: origin.into(),
        epoch: 0,
        previous: None,
        threshold: default_threshold(members.len()),
        build: BuildEnvironment {
            toolchain: "1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
        },
        protocol: ProtocolRules::default(),
        members,
    }
}

/// The threshold signature over `message` of members `signers` of `committee`, whose BLS
/// keys are `bls` (in committee order).
pub fn sign(
    committee: &Committee,
    bls: &[BlsSecretKey],
    signers: impl IntoIterator<Item = usize>,
    message: &[u8],
) -> ThresholdSignature {
    let mut agg = ThresholdAggregator::new(committee.keys(), message);
    for i in signers {
        agg.add(PartialSignature {
            signer: i,
            signature: bls[i].sign(message),
        })
        .expect("member signature");
    }
    agg.finish(agg.count().max(1)).expect("at least one signer")
}

/// The checkpoint `size`, `root` of `committee`'s log, cosigned by its first `t` members.
pub fn cosign(
    committee: &Committee,
    bls: &[BlsSecretKey],
    size: u64,
    root: [u8; 32],
) -> CosignedCheckpoint {
    cosign_checkpoint(
        committee,
        bls,
        &Checkpoint::new(committee.origin(), size, root),
    )
}

/// `cp` (any extension lines) cosigned by `committee`'s first `t` members.
pub fn cosign_checkpoint(
    committee: &Committee,
    bls: &[BlsSecretKey],
    cp: &Checkpoint,
) -> CosignedCheckpoint {
    let sig = sign(
        committee,
        bls,
        0..committee.threshold(),
        cp.to_body().as_bytes(),
    );
    CosignedCheckpoint::assemble(cp, &sig, committee).expect("valid cosignature")
}

/// A committee with its members' BLS secret keys; peer ids embed arbitrary 32-byte "keys"
/// (this crate never checks Ed25519 signatures).
pub struct TestCommittee {
    /// The validated committee.
    pub committee: Committee,
    /// Members' BLS keys, in committee order.
    pub bls: Vec<BlsSecretKey>,
}

impl TestCommittee {
    /// `n` members, threshold ⌊2n/3⌋+1, origin [`TEST_ORIGIN`], keys derived from `seed`.
    pub fn new(n: usize, seed: u8) -> Self {
        let bls: Vec<_> = (0..n).map(|i| bls_key(seed, i)).collect();
        let members = (0..n)
            .map(|i| {
                let mut key = [seed; 32];
                key[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let addr = format!("/ip4/127.0.0.1/tcp/{}", 17000 + i);
                member_entry(i, peer_id_of_ed25519(&key), &bls[i], addr)
            })
            .collect();
        let committee = Committee::from_file(committee_file(TEST_ORIGIN, members))
            .expect("valid test committee");
        Self { committee, bls }
    }

    /// The threshold signature of members `signers` over `message`.
    pub fn sign(
        &self,
        signers: impl IntoIterator<Item = usize>,
        message: &[u8],
    ) -> ThresholdSignature {
        sign(&self.committee, &self.bls, signers, message)
    }

    /// A checkpoint cosigned by the first `t` members.
    pub fn cosign(&self, size: u64, root: [u8; 32]) -> CosignedCheckpoint {
        cosign(&self.committee, &self.bls, size, root)
    }

    /// `cp` (with its extension lines) cosigned by the first `t` members.
    pub fn cosign_checkpoint(&self, cp: &Checkpoint) -> CosignedCheckpoint {
        cosign_checkpoint(&self.committee, &self.bls, cp)
    }

    /// Member `i` of this committee: its entry and BLS key (to carry it into a successor).
    pub fn member(&self, i: usize) -> (MemberEntry, BlsSecretKey) {
        (self.committee.members()[i].to_entry(), self.bls[i].clone())
    }

    /// A member that is new to the group: name `n{seed}-{i}`, keys derived from `seed`, `i`.
    pub fn newcomer(seed: u8, i: usize) -> (MemberEntry, BlsSecretKey) {
        let bls = bls_key(seed, i);
        let mut key = [seed; 32];
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let mut entry = member_entry(
            i,
            peer_id_of_ed25519(&key),
            &bls,
            format!("/ip4/127.0.0.1/tcp/{}", 18000 + i),
        );
        entry.name = format!("n{seed}-{i}");
        (entry, bls)
    }

    /// The committee of the next epoch: `members` in that order, threshold ⌊2n/3⌋+1, this
    /// committee's origin, build environment and rules, then `edit` (e.g. another rule).
    pub fn successor(
        &self,
        members: Vec<(MemberEntry, BlsSecretKey)>,
        edit: impl FnOnce(&mut CommitteeFile),
    ) -> Self {
        let (entries, bls): (Vec<_>, Vec<_>) = members.into_iter().unzip();
        let mut file = self.committee.to_file();
        file.epoch = self.committee.epoch() + 1;
        file.previous = Some(hex::encode(self.committee.digest()));
        file.threshold = default_threshold(entries.len());
        file.members = entries;
        edit(&mut file);
        let committee = Committee::from_file(file).expect("valid successor committee");
        Self { committee, bls }
    }
}
