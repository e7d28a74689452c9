//! Consensus figures for `scripts/bench-consensus.sh`: four members in one process (real
//! libp2p on loopback, real consensus, real redb stores; a builder that returns chosen
//! manifests at once).
//!
//! 1. Latency: for 20 requests one after another, the time from the reveal phase opening on
//!    member 0 (every member reveals within milliseconds of it: reveals are duties of the
//!    same block) to member 0 storing a cosigned checkpoint that covers the entry.
//! 2. Throughput: 1,000 requests submitted at once; requests decided per second until the
//!    last entry is logged on every member.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use synchronicity::committee::ProtocolRules;
use synchronicity::log::CosignedCheckpoint;
use synchronicity::node::{self, NodeConfig, NodeHandle};
use synchronicity::testing::{FixedBuilder, TestCommittee, free_loopback_ports, request};

fn cosigned_size(n: &NodeHandle) -> u64 {
    let s = n.shared();
    s.store
        .latest_checkpoint()
        .unwrap()
        .and_then(|note| CosignedCheckpoint::verify(&note, &s.committee).ok())
        .map_or(0, |c| c.checkpoint().size)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let tc = TestCommittee::with_ports(61, &free_loopback_ports(4)).with_rules(ProtocolRules {
        commit_window_secs: 60,
        reveal_window_secs: 30,
        ..ProtocolRules::default()
    });
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        tc.write_node_dir(i, d.path());
        let config = NodeConfig::new(d.path(), tc.committee.clone());
        let builder = FixedBuilder::default();
        nodes.push(node::start(config, Arc::new(builder)).await.unwrap());
    }
    while nodes[0].net().connected_members().len() < 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut lat = Vec::new();
    for k in 0..20 {
        let req = request(&format!("lat{k}"), "1.0.0", "lock");
        let id = nodes[0].submit(req).await.unwrap();
        let reveal_open = loop {
            if nodes[0]
                .round_status(&id)
                .is_some_and(|s| s.phase == synchronicity::protocol::Phase::Reveal)
                || nodes[0].decided_index(&id).is_some()
            {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let index = loop {
            if let Some(i) = nodes[0].shared().store.lookup_request(&id).unwrap() {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        while cosigned_size(&nodes[0]) <= index {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lat.push(reveal_open.elapsed());
    }
    lat.sort();
    println!(
        "last reveal -> cosigned checkpoint: median {:.0} ms, max {:.0} ms (20 requests; goal median <= 1500 ms)",
        lat[lat.len() / 2].as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );

    let before = nodes[0].shared().store.size().unwrap();
    let t = Instant::now();
    for k in 0..batch {
        nodes[k % 4]
            .submit(request(&format!("tp{k}"), "1.0.0", "lock"))
            .await
            .unwrap();
    }
    let target = before + batch as u64;
    loop {
        let done = nodes
            .iter()
            .all(|n| n.shared().store.size().unwrap() >= target);
        if done {
            break;
        }
        if t.elapsed() > Duration::from_secs(900) {
            println!("throughput: not finished in 900 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "batch of {batch}: decided on every member in {secs:.1} s = {:.1} requests/s (height {})",
        batch as f64 / secs,
        nodes[0].applied_height()
    );
    for n in nodes {
        n.shutdown().await;
    }
}
