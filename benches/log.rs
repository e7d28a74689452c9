//! Log costs, all measured in one run:
//! - durable append (one fsynced redb transaction per batch of 1,000 entries; goal ≥ 20,000
//!   entries/s);
//! - inclusion-proof generation in a 10^6-entry store (goal ≤ 50 µs);
//! - offline verification of a proof file with a 100-member committee, compared with one
//!   BLS fast-aggregate-verify of the same signers (goal ≤ 1.2×), and the proof file's size.
#![allow(missing_docs)]

use std::time::Instant;

#[path = "support/timing.rs"]
mod timing;

use criterion::{Criterion, Throughput, criterion_group};
use synchronicity::crypto::BlsPublicKey;
use synchronicity::log::{LogStore, ProofFile};
use synchronicity::testing::TestCommittee;
use timing::median_per_call;

const ENTRY_LEN: usize = 512;
const BIG: u64 = 1_000_000;

fn entry(i: u64) -> Vec<u8> {
    let mut e = format!("entry {i} ").into_bytes();
    e.resize(ENTRY_LEN, b'x');
    e
}

fn big_store() -> (tempfile::TempDir, LogStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LogStore::open(tmp.path()).unwrap();
    let start = Instant::now();
    for batch in 0..BIG / 10_000 {
        let entries: Vec<_> = (batch * 10_000..(batch + 1) * 10_000).map(entry).collect();
        store.append(&entries, None).unwrap();
    }
    eprintln!("built a {BIG}-entry store in {:.1?}", start.elapsed());
    (tmp, store)
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LogStore::open(tmp.path()).unwrap();
    let mut next = 0u64;
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    g.bench_function("durable_append/batch=1000", |b| {
        b.iter(|| {
            let entries: Vec<_> = (next..next + 1000).map(entry).collect();
            next += 1000;
            store.append(&entries, None).unwrap()
        })
    });
    g.finish();

    let (_big_dir, big) = big_store();
    let mut i = 0u64;
    c.bench_function("log/inclusion_proof/size=1e6", |b| {
        b.iter(|| {
            i = (i + 7919) % BIG;
            big.inclusion_proof(i, BIG).unwrap()
        })
    });

    let tc = TestCommittee::new(100, 1);
    let (size, root) = big.head().unwrap();
    let cp = tc.cosign(size, root);
    let text = big.proof_file(123_456, &cp).unwrap().format();
    c.bench_function("log/verify_proof_file/n=100", |b| {
        b.iter(|| {
            ProofFile::parse(&text)
                .unwrap()
                .verify(&tc.committee)
                .unwrap()
        })
    });
    ratio(&tc, &text);
    let no_extra = ProofFile {
        extra: None,
        ..ProofFile::parse(&text).unwrap()
    }
    .format();
    println!(
        "proof file at size {size}, n = 100: {} bytes without extra ({} with)",
        no_extra.len(),
        text.len()
    );
}

/// Whole proof verification vs. one fast-aggregate-verify of the same signers and message.
fn ratio(tc: &TestCommittee, text: &str) {
    let pf = ProofFile::parse(text).unwrap();
    let verified = pf.verify(&tc.committee).unwrap();
    let sig = verified.checkpoint.signature().clone();
    let msg = verified.checkpoint.checkpoint().to_body();
    let keys: Vec<&BlsPublicKey> = sig
        .signers
        .iter()
        .map(|i| tc.committee.keys().get(i).unwrap())
        .collect();
    let fav = median_per_call(15, 40, || {
        sig.aggregate
            .fast_aggregate_verify(msg.as_bytes(), &keys)
            .unwrap()
    });
    let whole = median_per_call(15, 40, || {
        ProofFile::parse(text)
            .unwrap()
            .verify(&tc.committee)
            .unwrap();
    });
    println!(
        "ratio: proof verification {:?} / fast-aggregate-verify ({} signers) {:?} = {:.3}x (goal <= 1.2x)",
        whole,
        keys.len(),
        fav,
        whole.as_secs_f64() / fav.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
