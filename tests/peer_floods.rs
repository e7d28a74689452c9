//! Three honest members (in process, real libp2p on loopback, real consensus and stores)
//! and a fourth member's key in a rogue's hands, which gossips what the members must not
//! admit or relay: a request for another target, and 1 MiB requests by the hundred. Each
//! honest member rejects the first and counts it, holds at most its 64 MiB budget of the
//! second and counts the rest, and the group still decides an honest request. Then the
//! same against member PROCESSES, whose peak memory is measured and bounded.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use synchronicity::committee::ProtocolRules;
use synchronicity::crypto::NodeIdentity;
use synchronicity::log::LookupKey;
use synchronicity::node::wire::{COSIGN_TOPIC, MESSAGES_TOPIC};
use synchronicity::node::{self, NodeConfig, NodeHandle};
use synchronicity::protocol::{Body, SignedMessage};
use synchronicity::request::MAX_LOCKFILE_SIZE;
use synchronicity::testing::{FixedBuilder, TestCommittee, free_loopback_ports, request};
use synchronicity_net::{NetConfig, NetEvent, NetworkHandle, TopicConfig};

/// The per-member byte budget of every honest mempool (`node/mempool.rs`).
const BUDGET: usize = 64 * 1024 * 1024;

async fn member(tc: &TestCommittee, i: usize) -> (NodeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    tc.write_node_dir(i, dir.path());
    let mut config = NodeConfig::new(dir.path(), tc.committee.clone());
    config.idle_interval = Duration::from_millis(500);
    let builder = FixedBuilder {
        overrides: Default::default(),
        bins: Default::default(),
        delay: Duration::from_millis(100),
    };
    (node::start(config, Arc::new(builder)).await.unwrap(), dir)
}

/// Member `i`'s key on a bare network node (no consensus, no mempool of its own); its
/// events are never read (its swarm drops them: it only sends).
async fn rogue(
    tc: &TestCommittee,
    i: usize,
) -> (NetworkHandle, tokio::sync::mpsc::Receiver<NetEvent>) {
    let identity = NodeIdentity::from_secret_bytes(&tc.identities[i].secret_bytes()).unwrap();
    let bootstrap = vec![tc.committee.members()[0].addrs[0].clone()];
    let cfg = NetConfig::new(identity.keypair(), node::member_addrs(&tc.committee))
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
        .with_bootstrap(bootstrap)
        .with_topics(vec![
            TopicConfig {
                name: MESSAGES_TOPIC.into(),
                max_size: 2 * 1024 * 1024,
            },
            TopicConfig {
                name: COSIGN_TOPIC.into(),
                max_size: 1024,
            },
        ]);
    synchronicity_net::start(cfg).await.unwrap()
}

/// Peak resident memory of this process (all three members and the rogue), in MiB.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_large_and_foreign_requests_is_bounded() {
    let rules = ProtocolRules {
        commit_window_secs: 30,
        commit_grace_secs: 5,
        reveal_window_secs: 4,
        // The rogue's requests wait in the mempools (one open round at a time), so what
        // each member holds of them is the budget, not what ordering drained.
        max_open_requests_per_member: 1,
        ..ProtocolRules::default()
    };
    let tc = TestCommittee::with_ports(71, &free_loopback_ports(4)).with_rules(rules);
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(member(&tc, i).await);
    }
    let (rogue, _rogue_events) = rogue(&tc, 3).await;
    let sign =
        |body| SignedMessage::sign(body, 3, &tc.identities[3], tc.committee.signing_domain());
    let counters = |k: usize| &members[k].0.shared().counters;

    // A validly signed request for a target the committee never agreed on.
    let mut foreign = request("foreign", "1.0.0", "lock");
    foreign.request.target = "aarch64-unknown-linux-gnu".into();
    let foreign_msg = sign(Body::Request(foreign.clone())).to_cbor();
    tokio::time::timeout(Duration::from_secs(30), async {
        while rogue
            .publish(MESSAGES_TOPIC, foreign_msg.clone())
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the rogue joined the mesh");
    for k in 0..3 {
        common_eventually(30, "the foreign request rejected and counted", || {
            counters(k).gossip_invalid.load(Ordering::Relaxed) >= 1
        })
        .await;
    }
    let rss_before = peak_rss_mib();

    // 200 requests of ~1 MiB each (the largest lockfile a request may pin), all distinct:
    // 200 MiB to each member, 3.1 times its budget for one member.
    let mut published = 0;
    for k in 0..200 {
        let lockfile = format!("{k:08}{}", "x".repeat(MAX_LOCKFILE_SIZE - 8));
        let m = sign(Body::Request(request(
            &format!("big-{k}"),
            "1.0.0",
            &lockfile,
        )));
        if rogue.publish(MESSAGES_TOPIC, m.to_cbor()).await.is_ok() {
            published += 1;
        }
        // Paced (about 20 MiB/s) so the members' event queues take it all.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(published, 200);
    for (k, (n, _)) in members.iter().enumerate() {
        common_eventually(60, "the flood refused over the budget", || {
            n.shared()
                .counters
                .mempool_refused_over_budget
                .load(Ordering::Relaxed)
                >= 100
        })
        .await;
        let held = n.shared().mempool_bytes_of(3);
        assert!(
            held <= BUDGET,
            "member {k} holds {held} bytes of the rogue's"
        );
        assert!(
            held > BUDGET / 2,
            "member {k} holds only {held} bytes of the rogue's"
        );
    }
    // Meanwhile an honest request is decided on every member; the foreign one never is.
    members[0]
        .0
        .submit(request("honest", "1.0.0", "lock"))
        .await
        .unwrap();
    for (k, (n, _)) in members.iter().enumerate() {
        common_eventually(90, "the honest request decided", || {
            let key = LookupKey::parse("honest@1.0.0").unwrap();
            n.shared().store.resolve(&key).unwrap().is_ok()
        })
        .await;
        let key = LookupKey::parse(&hex::encode(foreign.id())).unwrap();
        assert!(
            n.shared().store.resolve(&key).unwrap().is_err(),
            "member {k}"
        );
        assert!(
            !n.shared().view().state.is_open(&foreign.id()),
            "member {k}"
        );
    }
    let rss_after = peak_rss_mib();
    eprintln!(
        "peak RSS of the process (3 members + rogue): {rss_before} MiB before the flood, \
         {rss_after} MiB after 200 × 1 MiB requests to each member"
    );
}

/// Polls `f` every 100 ms until it holds, or panics after `secs` with `what`.
async fn common_eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Peak resident memory (VmHWM) of process `pid`, in MiB.
fn peak_rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// What a member process may reach while one member floods 1 MiB requests: its own
/// 64 MiB budget for the flooder plus transient gossip copies (each accepted message sits in
/// gossipsub's cache for a few heartbeats) and the node's baseline, with room to spare. A
/// member that kept every request would pass 600 MiB in this test.
const MEMBER_PEAK_RSS_MIB: u64 = 320;

/// Three member processes (the real node, `examples/fixed_builder_node`) and member 3's
/// key in the test's hands, gossiping 600 requests of 1 MiB (600 MiB to each member) at
/// about 20 MiB/s: every member's peak RSS stays under [`MEMBER_PEAK_RSS_MIB`], and an
/// honest request is decided and cosigned meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_processes_stay_bounded_under_a_flood_of_large_requests() {
    let rules = ProtocolRules {
        commit_window_secs: 30,
        commit_grace_secs: 5,
        reveal_window_secs: 4,
        max_open_requests_per_member: 1,
        ..ProtocolRules::default()
    };
    let mut c = support::Cluster::new(76, 4, rules, "idle_interval_ms = 1000\n");
    for i in 0..3 {
        c.start(i);
    }
    let warmup = c.submit(0, "warmup", "1.0.0").await;
    c.decided_on(&[0, 1, 2], &warmup, 60).await;
    let baseline: Vec<u64> = (0..3)
        .map(|i| peak_rss_of(c.children[i].as_ref().unwrap().id()))
        .collect();
    let (rogue, _rogue_events) = rogue(&c.tc, 3).await;
    let sign = |body| {
        SignedMessage::sign(
            body,
            3,
            &c.tc.identities[3],
            c.tc.committee.signing_domain(),
        )
    };
    let mut published = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut k = 0;
    while published < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{published} published in 120 s"
        );
        let lockfile = format!("{k:08}{}", "x".repeat(MAX_LOCKFILE_SIZE - 8));
        let m = sign(Body::Request(request(
            &format!("big-{k}"),
            "1.0.0",
            &lockfile,
        )));
        k += 1;
        if rogue.publish(MESSAGES_TOPIC, m.to_cbor()).await.is_ok() {
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = c.submit(0, "honest", "1.0.0").await;
    c.decided_on(&[0, 1, 2], &id, 120).await;
    let peaks: Vec<u64> = (0..3)
        .map(|i| peak_rss_of(c.children[i].as_ref().unwrap().id()))
        .collect();
    eprintln!(
        "member peak RSS (MiB) before the flood {baseline:?}, after 600 × 1 MiB requests {peaks:?}"
    );
    for (i, p) in peaks.iter().enumerate() {
        assert!(*p > 0, "cannot read member {i}'s memory");
        // The flood arrived: at least the budget's worth more than before it.
        assert!(
            *p > baseline[i] + 64,
            "member {i}: {p} MiB, the flood did not arrive"
        );
        assert!(*p < MEMBER_PEAK_RSS_MIB, "member {i} peaked at {p} MiB");
    }
}
