//! Three honest members (in process, real libp2p on loopback, real consensus and stores)
//! and a fourth member's key in a rogue's hands, which gossips what the members must not
//! admit or relay: a request for another target, and 1 MiB requests by the hundred. Each
//! honest member rejects the first and counts it, holds at most its 64 MiB budget of the
//! second and counts the rest, and the group still decides an honest request. Then the
//! same against member PROCESSES, whose peak memory is measured and bounded.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::Cluster;
use support::in_process::start_member;
use support::peers::rogue_member;
use support::procs::{eventually, peak_rss_mib};
use support::rules::windows;
use synchronicity::committee::ProtocolRules;
use synchronicity::crypto::NodeIdentity;
use synchronicity::log::LookupKey;
use synchronicity::node::wire::MESSAGES_TOPIC;
use synchronicity::protocol::{Body, SignedMessage};
use synchronicity::request::{MAX_LOCKFILE_SIZE, PinnedRequest};
use synchronicity::testing::{TestCommittee, free_loopback_ports, request};
use synchronicity_net::{NetEvent, NetworkHandle};
use tokio::sync::mpsc::Receiver;

/// The per-member byte budget of every honest mempool (`node/mempool.rs`).
const BUDGET: usize = 64 * 1024 * 1024;

/// The group's rules: 30 s to commit, 5 s least grace, 4 s to reveal; the rogue's requests
/// wait in the mempools (one open round at a time), so what each member holds of them is
/// the budget, not what ordering drained.
fn rules() -> ProtocolRules {
    ProtocolRules {
        max_open_requests_per_member: 1,
        ..windows(30, 5, 4)
    }
}

/// The rogue's `k`-th large request: ~1 MiB (the largest lockfile a request may pin), each
/// distinct.
fn large_request(k: usize) -> PinnedRequest {
    let lockfile = format!("{k:08}{}", "x".repeat(MAX_LOCKFILE_SIZE - 8));
    request(&format!("big-{k}"), "1.0.0", &lockfile)
}

/// Member `i`'s key in the rogue's hands, joined to the group through member 0.
async fn rogue(tc: &TestCommittee, i: usize) -> (NetworkHandle, Receiver<NetEvent>, NodeIdentity) {
    let bootstrap = vec![tc.committee.members()[0].addrs[0].clone()];
    rogue_member(tc, i, bootstrap).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_large_and_foreign_requests_is_bounded() {
    let tc = TestCommittee::with_ports(71, &free_loopback_ports(4)).with_rules(rules());
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(start_member(&tc, i, HashMap::new()).await);
    }
    let (rogue, _rogue_events, key) = rogue(&tc, 3).await;
    let sign = |body| SignedMessage::sign(body, 3, &key, tc.committee.signing_domain());
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
        eventually(30, "the foreign request rejected and counted", || {
            counters(k).gossip_invalid.load(Ordering::Relaxed) >= 1
        })
        .await;
    }
    let rss_before = peak_rss_mib(std::process::id());

    // 200 requests of ~1 MiB each (the largest lockfile a request may pin), all distinct:
    // 200 MiB to each member, 3.1 times its budget for one member.
    let mut published = 0;
    for k in 0..200 {
        let m = sign(Body::Request(large_request(k)));
        if rogue.publish(MESSAGES_TOPIC, m.to_cbor()).await.is_ok() {
            published += 1;
        }
        // Paced (about 20 MiB/s) so the members' event queues take it all.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(published, 200);
    for (k, (n, _)) in members.iter().enumerate() {
        eventually(60, "the flood refused over the budget", || {
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
        eventually(90, "the honest request decided", || {
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
    let rss_after = peak_rss_mib(std::process::id());
    eprintln!(
        "peak RSS of the process (3 members + rogue): {rss_before} MiB before the flood, \
         {rss_after} MiB after 200 × 1 MiB requests to each member"
    );
}

/// What a member process may reach while one member floods 1 MiB requests: its own
/// 64 MiB budget for the flooder plus transient gossip copies (each accepted message sits in
/// gossipsub's cache for a few heartbeats) and the node's baseline, with room to spare. A
/// member that kept every request would pass 600 MiB in this test.
const MEMBER_PEAK_RSS_MIB: u64 = 320;

/// Three member processes (the real node, `src/bin/fixed_builder_node.rs`) and member 3's
/// key in the test's hands, gossiping 600 requests of 1 MiB (600 MiB to each member) at
/// about 20 MiB/s: every member's peak RSS stays under [`MEMBER_PEAK_RSS_MIB`], and an
/// honest request is decided and cosigned meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_processes_stay_bounded_under_a_flood_of_large_requests() {
    let mut c = Cluster::new(76, 4, rules(), "idle_interval_ms = 1000\n");
    for i in 0..3 {
        c.start(i);
    }
    let warmup = c.submit(0, "warmup", "1.0.0").await;
    c.decided_on(&[0, 1, 2], &warmup, 60).await;
    let baseline: Vec<u64> = (0..3)
        .map(|i| peak_rss_mib(c.children[i].as_ref().unwrap().id()))
        .collect();
    let (rogue, _rogue_events, key) = rogue(&c.tc, 3).await;
    let sign = |body| SignedMessage::sign(body, 3, &key, c.tc.committee.signing_domain());
    let mut published = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut k = 0;
    while published < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{published} published in 120 s"
        );
        let m = sign(Body::Request(large_request(k)));
        k += 1;
        if rogue.publish(MESSAGES_TOPIC, m.to_cbor()).await.is_ok() {
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = c.submit(0, "honest", "1.0.0").await;
    c.decided_on(&[0, 1, 2], &id, 120).await;
    let peaks: Vec<u64> = (0..3)
        .map(|i| peak_rss_mib(c.children[i].as_ref().unwrap().id()))
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
