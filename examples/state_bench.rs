//! Start-up and apply cost against the size of the history, for `scripts/bench-state.sh`.
//!
//! `state_bench fill DIR N`: a real log store with N synthetic decided requests (entries,
//! request keys, variants), written in durable batches of 10,000.
//! `state_bench run DIR`: in a fresh process, opens the store and restores the node's shared
//! state exactly as `synchronicity node` does (timed; RSS read after), then applies 30
//! real blocks through the protocol rules and the store (50 new requests, 200 commitments
//! and 200 reveals each, so every block from the third decides 50 entries), timing each
//! apply (prepare, durable append with the open-round rows, commit). Prints one line.

#![forbid(unsafe_code)]

use std::time::Instant;

use synchronicity::crypto::sha256;
use synchronicity::log::{Height, LogStore, NewEntry};
use synchronicity::node::{Shared, new_entry};
use synchronicity::protocol::{
    Block, Body, RevealedOutcome, SignedMessage, attestation_statement, commitment,
};
use synchronicity::testing::{TestCommittee, manifest, request};

const BATCH: u64 = 10_000;
const BLOCKS: usize = 30;
const PER_BLOCK: usize = 50;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn fill(dir: &std::path::Path, n: u64) {
    let store = LogStore::open(dir).expect("store");
    let have = store.size().expect("size");
    let mut i = have;
    let mut height = store.applied_height().expect("height").unwrap_or(0);
    while i < n {
        let end = (i + BATCH).min(n);
        let entries: Vec<NewEntry> = (i..end)
            .map(|k| {
                let bytes = format!("synthetic entry {k}").into_bytes();
                NewEntry {
                    request_id: sha256(&bytes),
                    spec: format!("synthetic{k}@1.0.0"),
                    bytes,
                    blobs: vec![],
                }
            })
            .collect();
        height += 1;
        store
            .append_decided(&entries, Height::bare(height, 1_000 + height))
            .expect("append");
        i = end;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(2).expect("DIR"));
    match args.get(1).map(String::as_str) {
        Some("fill") => {
            let n: u64 = args.get(3).and_then(|v| v.parse().ok()).expect("N");
            fill(&dir, n);
        }
        Some("run") => run(&dir),
        _ => {
            eprintln!("usage: state_bench fill DIR N | run DIR");
            std::process::exit(2);
        }
    }
}

fn run(dir: &std::path::Path) {
    let tc = TestCommittee::new(4, 91);
    // The messages first (signing is not what is measured).
    let chain = tc.committee.signing_domain().to_string();
    let salt = [5u8; 32];
    let msg = |m: usize, body: Body| SignedMessage::sign(body, m as u32, &tc.identities[m], &chain);
    let size_before = LogStore::open(dir).expect("store").size().expect("size");
    let batches: Vec<Vec<_>> = (0..BLOCKS)
        .map(|b| {
            (0..PER_BLOCK)
                .map(|k| request(&format!("bench{size_before}-{b}-{k}"), "1.0.0", "lock"))
                .collect()
        })
        .collect();
    let mut blocks = Vec::new();
    for b in 0..BLOCKS {
        let mut messages: Vec<SignedMessage> = batches[b]
            .iter()
            .map(|r| msg(b % 4, Body::Request(r.clone())))
            .collect();
        if b >= 1 {
            for r in &batches[b - 1] {
                let id = r.id();
                let d = manifest(&r.request.krate, "1.0.0", "same").digest();
                for m in 0..4 {
                    let peer = tc.committee.members()[m].peer_id;
                    let c = commitment(&id, &d, &salt, &peer).to_vec();
                    messages.push(msg(
                        m,
                        Body::Commit {
                            request_id: id.to_vec(),
                            commitment: c,
                        },
                    ));
                }
            }
        }
        if b >= 2 {
            for r in &batches[b - 2] {
                let id = r.id();
                let man = manifest(&r.request.krate, "1.0.0", "same");
                let st = attestation_statement(tc.committee.origin(), &id, &man.digest());
                for m in 0..4 {
                    messages.push(msg(
                        m,
                        Body::Reveal {
                            request_id: id.to_vec(),
                            outcome: RevealedOutcome::Manifest(man.to_text()),
                            salt: salt.to_vec(),
                            attestation: tc.bls[m].sign(st.as_bytes()).to_bytes().to_vec(),
                        },
                    ));
                }
            }
        }
        blocks.push(messages);
    }

    let rss_before = rss_mib();
    let t = Instant::now();
    let store = LogStore::open(dir).expect("store");
    let (shared, app) = Shared::restore(tc.committee.clone(), 0, store).expect("restore");
    let startup = t.elapsed();
    let rss_started = rss_mib();
    let mut state = app.state;
    let (mut height, mut time) = (app.height, state.last_time_ms());
    let mut apply = Vec::new();
    let mut decided = 0;
    for messages in blocks {
        height += 1;
        time += 1_000;
        let block = Block {
            height,
            time_ms: time,
            messages,
        };
        let t = Instant::now();
        let prepared = state.prepare(&block, shared.env()).expect("a valid block");
        let new: Vec<NewEntry> = prepared.applied().decided.iter().map(new_entry).collect();
        shared
            .store
            .append_decided(
                &new,
                Height {
                    height,
                    time_ms: time,
                    record: b"bench",
                    rounds: &prepared.applied().changed_rounds,
                    change: None,
                },
            )
            .expect("append");
        decided += new.len();
        state.commit(prepared);
        // What the node's consensus app publishes after each height.
        std::hint::black_box(std::sync::Arc::new(state.clone()));
        apply.push(t.elapsed());
    }
    apply.sort();
    println!(
        "history {:>9} entries: start-up {:>7.1} ms, RSS {:>5.1} MiB after start-up ({:.1} before opening), apply median {:>6.2} ms/block (50 requests + 200 commits + 200 reveals, {} decided in {} blocks), RSS {:.1} MiB after",
        size_before,
        startup.as_secs_f64() * 1e3,
        rss_started,
        rss_before,
        apply[apply.len() / 2].as_secs_f64() * 1e3,
        decided,
        BLOCKS,
        rss_mib()
    );
}
