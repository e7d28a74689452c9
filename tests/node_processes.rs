//! Members as separate processes (the real node with a builder that returns chosen
//! manifests), killed and restarted: the others keep deciding, nobody forks, restarted
//! members replay their WAL and catch up, and every store passes `log fsck`.

mod support;

use std::time::Duration;

use support::rules::short_rounds;
use support::{Cluster, longest_stall};
use synchronicity::protocol::Verdict;

const NODE_TOML: &str = "idle_interval_ms = 1000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_down_killed_and_returning() {
    let mut c = Cluster::new(41, 4, short_rounds(), NODE_TOML);
    let metrics = format!(
        "127.0.0.1:{}",
        synchronicity::testing::free_loopback_ports(1)[0]
    );
    c.extra_args[0] = vec!["--metrics".into(), metrics.clone()];
    // Member 3 is down from the start: the other three decide.
    for i in 0..3 {
        c.start(i);
    }
    c.submit(0, "first", "1.0.0").await;
    let stall = longest_stall(&c, 0, Duration::from_secs(12)).await;
    let st = c.decided_on(&[0, 1, 2], "first@1.0.0", 60).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced);
    println!("one member down from the start: longest stall {stall:?}");
    let (status, text) = support::http::request(&metrics, "GET", "/metrics", "");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("synchronicity_verdicts_reproduced_total 1"),
        "{text}"
    );
    assert!(text.contains("synchronicity_log_size 1"), "{text}");
    assert!(text.contains("synchronicity_builds_total 1"), "{text}");
    assert!(stall <= Duration::from_secs(15), "stall {stall:?}");

    // It returns and catches up from the others' decided heights.
    c.start(3);
    c.converge(&[0, 1, 2, 3], 60).await;

    // Killed mid-round: the others decide without it.
    c.submit(1, "second", "1.0.0").await;
    loop {
        let s = c.status(0, Some("second@1.0.0")).await;
        if s.is_some_and(|s| !s.open.is_empty() || s.entry.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.kill(3);
    let stall = longest_stall(&c, 0, Duration::from_secs(12)).await;
    println!("one member killed mid-round: longest stall {stall:?}");
    assert!(stall <= Duration::from_secs(15), "stall {stall:?}");
    c.decided_on(&[0, 1, 2], "second@1.0.0", 60).await;

    // Two down: nothing is decided (no quorum), so nothing can fork.
    c.kill(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<_> = [
        c.status(0, None).await.unwrap(),
        c.status(1, None).await.unwrap(),
    ]
    .into_iter()
    .map(|s| (s.applied_height, s.root))
    .collect();
    c.submit(0, "stuck", "1.0.0").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after: Vec<_> = [
        c.status(0, None).await.unwrap(),
        c.status(1, None).await.unwrap(),
    ]
    .into_iter()
    .map(|s| (s.applied_height, s.root))
    .collect();
    assert_eq!(before, after, "two of four cannot decide");

    // They return: everyone catches up, the stuck request completes, one root.
    c.start(2);
    c.start(3);
    c.decided_on(&[0, 1, 2, 3], "stuck@1.0.0", 90).await;
    let head = c.converge(&[0, 1, 2, 3], 60).await;
    assert_eq!(head.log_size, 3);
    for i in 0..4 {
        c.stop(i);
        c.fsck(i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_during_100_requests() {
    let mut c = Cluster::new(42, 4, short_rounds(), NODE_TOML);
    for i in 0..4 {
        c.start(i);
    }
    // A small xorshift so the kill schedule is random but printed and repeatable.
    let mut seed: u64 = std::env::var("SYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill schedule seed {seed} (SYNC_TEST_SEED to repeat)");
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let submitter = tokio::spawn({
        let dir = c.dir(0);
        async move {
            for k in 0..100 {
                let req = synchronicity::node::control::ControlRequest::Submit {
                    krate: format!("crate{k}"),
                    version: "1.0.0".into(),
                    lockfile: Some("lock".into()),
                    variant: Default::default(),
                };
                loop {
                    if synchronicity::node::control::request(&dir, &req)
                        .await
                        .is_ok()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    });
    let mut kills = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500 + next() % 2500)).await;
        let victim = 1 + (next() % 3) as usize;
        c.kill(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(200 + next() % 1500)).await;
        c.start(victim);
    }
    submitter.await.unwrap();
    println!("{kills} SIGKILLs");
    for k in 0..100 {
        c.decided_on(&[0, 1, 2, 3], &format!("crate{k}@1.0.0"), 180)
            .await;
    }
    let head = c.converge(&[0, 1, 2, 3], 60).await;
    assert_eq!(head.log_size, 100);

    // A second variant of "crate0" (another lockfile): `status crate0@1.0.0` lists both with
    // their verdicts, and the answer for `crate0@1.0.0` stays the earlier entry.
    let chosen = |s: Option<synchronicity::node::control::NodeStatus>| {
        s.and_then(|s| s.entry).map(|e| e.index).expect("decided")
    };
    let before = chosen(c.status(0, Some("crate0@1.0.0")).await);
    let id = c
        .submit_with(0, "crate0", "1.0.0", Some("another lock".into()))
        .await;
    c.decided_on(&[0, 1, 2, 3], &id, 60).await;
    assert_eq!(chosen(c.status(0, Some("crate0@1.0.0")).await), before);
    let o = support::cli::bin()
        .args(["status", "crate0@1.0.0", "--node"])
        .arg(c.dir(0))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("  variants: 2\n"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("  * entry {before}: Reproduced"))),
        "the chosen entry is marked: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("    entry ") && l.contains(&id[..16])),
        "the new variant is listed: {text}"
    );
    for i in 0..4 {
        c.stop(i);
        c.fsck(i);
    }
}
