//! BLS costs: sign, verify, and threshold verify (t = ⌊2n/3⌋+1 signers, one aggregate) for
//! n = 4, 16, 100. Ends with the ratio threshold-verify(n = 100) ÷ verify, the figure the
//! foundation issue bounds (≤ 1.3×), the whole proof check against one aggregate check, and
//! a 10-epoch chain of 100-member committees verified from its genesis (CPU per epoch).
#![allow(missing_docs)]

#[path = "support/timing.rs"]
mod timing;

use criterion::{Criterion, criterion_group};
use synchronicity::committee::default_threshold;
use synchronicity::crypto::{
    BlsSecretKey, MemberKeys, PartialSignature, ThresholdAggregator, ThresholdSignature,
};
use timing::median_per_call;

const MSG: &[u8] =
    b"example.org/synchronicity/bench\n1048576\nq2cEkw0T1P3Yx3u3UObRw7v1cC8hQ5dS0QF4bHkWm0g=\n";

fn setup(n: usize) -> (MemberKeys, ThresholdSignature, usize) {
    let sks: Vec<_> = (0..n)
        .map(|i| BlsSecretKey::from_key_material(&[i as u8 + 1; 32]).unwrap())
        .collect();
    let pairs: Vec<_> = sks
        .iter()
        .map(|s| (s.public_key(), s.proof_of_possession()))
        .collect();
    let keys = MemberKeys::from_keys_with_pops(&pairs).unwrap();
    let t = default_threshold(n);
    let mut agg = ThresholdAggregator::new(&keys, MSG);
    for (i, sk) in sks.iter().enumerate().take(t) {
        agg.add(PartialSignature {
            signer: i,
            signature: sk.sign(MSG),
        })
        .unwrap();
    }
    let ts = agg.finish(t).unwrap();
    (keys, ts, t)
}

fn bench(c: &mut Criterion) {
    let sk = BlsSecretKey::from_key_material(&[7; 32]).unwrap();
    let pk = sk.public_key();
    let sig = sk.sign(MSG);
    c.bench_function("bls/sign", |b| b.iter(|| sk.sign(MSG)));
    c.bench_function("bls/verify", |b| b.iter(|| pk.verify(MSG, &sig).unwrap()));
    for n in [4, 16, 100] {
        let (keys, ts, t) = setup(n);
        c.bench_function(&format!("threshold/verify/n={n}/t={t}"), |b| {
            b.iter(|| ts.verify(&keys, t, MSG).unwrap())
        });
    }
}

/// Both sides measured interleaved in the same run, so machine noise hits them alike.
fn ratio() {
    let sk = BlsSecretKey::from_key_material(&[7; 32]).unwrap();
    let (pk, sig) = (sk.public_key(), sk.sign(MSG));
    let (keys, ts, t) = setup(100);
    let single = median_per_call(21, 50, || pk.verify(MSG, &sig).unwrap());
    let threshold = median_per_call(21, 50, || ts.verify(&keys, t, MSG).unwrap());
    println!(
        "ratio: threshold verify (n=100, t={t}) {:?} / single verify {:?} = {:.3}x (goal <= 1.3x)",
        threshold,
        single,
        threshold.as_secs_f64() / single.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}

/// The whole in-process check of a proof (checkpoint + inclusion + entry + attestation, both
/// BLS signatures in one batched multi-pairing) against ONE FastAggregateVerify, n = 100.
fn proof_ratio() {
    use synchronicity::testing::{TestCommittee, reproduced_proof};
    use synchronicity::verify::{Expected, verify_proof};
    let tc = TestCommittee::new(100, 9);
    let text = reproduced_proof(&tc);
    let expected = Expected::crate_version("itoa", "1.0.15");
    let c = tc.committee.trust_root();
    let sig = tc.sign(0..67, MSG);
    let keys = c.keys();
    let fav = median_per_call(21, 50, || sig.verify(keys, 67, MSG).unwrap());
    let whole = median_per_call(21, 50, || {
        verify_proof(&text, c, &expected).unwrap();
    });
    let audited = median_per_call(21, 50, || {
        let r = verify_proof(&text, c, &expected).unwrap();
        r.check_attestation(c).unwrap();
    });
    println!(
        "ratio: verify_proof (n=100) {:?} / one fast-aggregate-verify {:?} = {:.3}x (goal <= 1.2x)",
        whole,
        fav,
        whole.as_secs_f64() / fav.as_secs_f64()
    );
    println!(
        "ratio: verify_proof + check_attestation (n=100) {:?} / one fast-aggregate-verify = {:.3}x",
        audited,
        audited.as_secs_f64() / fav.as_secs_f64()
    );
}

/// A committee chain of 10 epochs of 100 members from the genesis (each link: a 100-member
/// committee file with its proofs of possession, the approval aggregate, the handoff
/// checkpoint and the inclusion proof): the whole chain, and per epoch.
fn chain_per_epoch() {
    use synchronicity::verify::CommitteeChain;
    use synchronicity_verify::test_chain::rotations;
    let h = rotations(100, 10);
    let text = h.chain_text();
    let genesis = h.epochs[0].committee.clone();
    let whole = median_per_call(5, 3, || {
        let chain = CommitteeChain::verify(genesis.clone(), &text).unwrap();
        assert_eq!(chain.latest().epoch(), 10);
    });
    println!(
        "chain: 10 epochs x 100 members verified from the genesis in {whole:?}, {:?} per epoch",
        whole / 10
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio();
    proof_ratio();
    chain_per_epoch();
}
