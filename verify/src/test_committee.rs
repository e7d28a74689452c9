//! Deterministic committees for tests: real BLS keys and proofs of possession from small
//! seeds; peer ids embed arbitrary 32-byte "keys" (this crate never checks Ed25519
//! signatures). Built for this crate's unit tests, and for other crates' tests through the
//! `testkit` feature (never in a product build).

use crate::committee::{
    BuildEnvironment, Committee, CommitteeFile, MemberEntry, ProtocolRules, default_threshold,
    peer_id_of_ed25519,
};
use crate::crypto::{BlsSecretKey, PartialSignature, ThresholdAggregator, ThresholdSignature};
use crate::tlog::{Checkpoint, CosignedCheckpoint};

/// A committee with its members' BLS secret keys.
pub struct TestCommittee {
    /// The validated committee.
    pub committee: Committee,
    /// Members' BLS secret keys, in committee order.
    pub bls: Vec<BlsSecretKey>,
}

impl TestCommittee {
    /// `n` members, threshold ⌊2n/3⌋+1, origin `example.org/synchronicity/test`.
    pub fn new(n: usize, seed: u8) -> Self {
        let bls: Vec<_> = (0..n)
            .map(|i| {
                let mut ikm = [seed ^ 0x5a; 32];
                ikm[..8].copy_from_slice(&(i as u64).to_le_bytes());
                BlsSecretKey::from_key_material(&ikm).expect("32 bytes")
            })
            .collect();
        let members = (0..n)
            .map(|i| {
                let mut key = [seed; 32];
                key[..8].copy_from_slice(&(i as u64).to_le_bytes());
                MemberEntry {
                    name: format!("m{i}"),
                    peer_id: peer_id_of_ed25519(&key),
                    bls_public_key: hex::encode(bls[i].public_key().to_bytes()),
                    bls_proof_of_possession: hex::encode(bls[i].proof_of_possession().to_bytes()),
                    addrs: vec![format!("/ip4/127.0.0.1/tcp/{}", 17000 + i)],
                }
            })
            .collect();
        let origin = "example.org/synchronicity/test";
        let committee = Committee::from_file(CommitteeFile {
            origin: origin.into(),
            chain_id: origin.into(),
            threshold: default_threshold(n),
            build: BuildEnvironment {
                toolchain: "1.95.0".into(),
                target: "x86_64-unknown-linux-gnu".into(),
            },
            protocol: ProtocolRules::default(),
            members,
        })
        .expect("valid test committee");
        Self { committee, bls }
    }

    /// The threshold signature of members `signers` over `message`.
    pub fn sign(
        &self,
        signers: impl IntoIterator<Item = usize>,
        message: &[u8],
    ) -> ThresholdSignature {
        let mut agg = ThresholdAggregator::new(self.committee.keys(), message);
        for i in signers {
            agg.add(PartialSignature {
                signer: i,
                signature: self.bls[i].sign(message),
            })
            .expect("member signature");
        }
        agg.finish(agg.count().max(1)).expect("at least one signer")
    }

    /// A checkpoint cosigned by the first `t` members.
    pub fn cosign(&self, size: u64, root: [u8; 32]) -> CosignedCheckpoint {
        let cp = Checkpoint::new(self.committee.origin(), size, root);
        let sig = self.sign(0..self.committee.threshold(), cp.to_body().as_bytes());
        CosignedCheckpoint::assemble(&cp, &sig, &self.committee).expect("valid cosignature")
    }
}
