//! The verifiable index's costs (issue 26), at 10^6 keys:
//! - the index update of one block of 50 new entries (each a new `crate@version`; goal
//!   ≤ 5 ms), in the store's own redb tables, the transaction aborted after each run so
//!   every run starts at 10^6 keys;
//! - a lookup's index proof: its size on the wire (goal ≤ 1 KiB) and the time to build it.
#![allow(missing_docs)]

use std::time::Instant;

use criterion::{Criterion, criterion_group};
use synchronicity::log::LogStore;
use synchronicity::log::index::bench;
use synchronicity::verify::index::WireProof;

const KEYS: u64 = 1_000_000;
const BLOCK: u64 = 50;

fn bench_index(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LogStore::open(tmp.path()).unwrap();
    let start = Instant::now();
    bench::fill(&store, KEYS).unwrap();
    eprintln!("indexed {KEYS} keys in {:.1?}", start.elapsed());

    let mut next = KEYS;
    c.bench_function("index/update_block_of_50/keys=1e6", |b| {
        b.iter(|| {
            // New keys each run (the last run's were aborted, so the tree is at 10^6).
            let specs: Vec<String> = (next..next + BLOCK).map(bench::spec).collect();
            next += BLOCK;
            bench::update_block(&store, KEYS, &specs).unwrap()
        })
    });

    let mut i = 0;
    c.bench_function("index/prove/keys=1e6", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            bench::prove(&store, &bench::spec(i)).unwrap()
        })
    });
    let sizes: Vec<usize> = (0..1000u64)
        .map(|k| {
            let p = bench::prove(&store, &bench::spec(k * 997 % KEYS)).unwrap();
            synchronicity::codec::to_vec(&WireProof::from(&p)).len()
        })
        .collect();
    let absent = bench::prove(&store, "not-logged@0.0.0").unwrap();
    println!(
        "index proof at {KEYS} keys (CBOR): mean {} bytes, max {} bytes, absent key {} bytes (goal <= 1024)",
        sizes.iter().sum::<usize>() / sizes.len(),
        sizes.iter().max().unwrap(),
        synchronicity::codec::to_vec(&WireProof::from(&absent)).len()
    );
}

criterion_group!(benches, bench_index);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
