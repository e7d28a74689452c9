//! The build queue, as separate member processes (the real node with a builder that takes
//! 800 ms and returns chosen manifests): 12 requests ordered at once on 4 members with
//! `[builder] max_parallel = 2` — no member ever runs more than 2 builds at once (its own
//! accounting, read from `status` while they run), builds do queue, and all 12 are decided.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;
use support::rules::windows;
use synchronicity::committee::ProtocolRules;
use synchronicity::protocol::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_parallel_builds_and_all_decided() {
    let rules = windows(120, 10, 10);
    let node_toml = "idle_interval_ms = 1000\n[builder]\nmax_parallel = 2\n";
    let mut c = Cluster::new(73, 4, rules, node_toml);
    for i in 0..4 {
        c.extra_env[i] = vec![("SYNC_TEST_BUILD_MS".into(), "800".into())];
        c.start(i);
    }
    for k in 0..12 {
        c.submit(k % 4, &format!("queued{k}"), "1.0.0").await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut most_running, mut most_queued) = (0, 0);
    loop {
        let mut done = 0;
        for i in 0..4 {
            let Some(s) = c.status(i, None).await else {
                continue;
            };
            assert!(
                s.builds.running.len() <= 2 && s.builds.peak_running <= 2,
                "member {i}: {:?}",
                s.builds
            );
            assert_eq!(s.builds.max_parallel, 2);
            most_running = most_running.max(s.builds.running.len());
            most_queued = most_queued.max(s.builds.queued.len());
            if s.log_size == 12 {
                done += 1;
            }
        }
        if done == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "not all 12 decided in 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("most running {most_running}, most queued {most_queued}");
    assert_eq!(most_running, 2, "the queue ran two at a time");
    assert!(most_queued > 0, "builds waited in the queue");
    for k in 0..12 {
        let st = c
            .decided_on(&[0, 1, 2, 3], &format!("queued{k}@1.0.0"), 30)
            .await;
        let e = &st[0].entry.as_ref().unwrap().entry;
        assert_eq!(e.verdict, Verdict::Reproduced, "queued{k}");
    }
    for i in 0..4 {
        let s = c.status(i, None).await.unwrap();
        assert_eq!(s.builds.peak_running, 2, "member {i}");
        c.stop(i);
    }
}

/// A member whose builder cannot run (here: it says its registry is unreachable) commits
/// nothing and says why in `status`; the others reproduce the request 3 of 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_failure_commits_nothing_and_is_reported() {
    let rules = windows(60, 3, 10);
    let mut c = Cluster::new(74, 4, rules, "idle_interval_ms = 1000\n");
    c.overrides[3] = "broken=!registry unreachable: connection refused".into();
    for i in 0..4 {
        c.start(i);
    }
    c.submit(0, "broken", "1.0.0").await;
    let st = c.decided_on(&[0, 1, 2, 3], "broken@1.0.0", 60).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert!(
        e.silent.is_empty() && e.dissenters.is_empty() && e.misbehaviour.is_empty(),
        "member 3 committed nothing: {e:?}"
    );
    let s3 = c.status(3, None).await.unwrap();
    assert!(
        s3.builds
            .local_failures
            .iter()
            .any(|(_, why)| why.contains("registry unreachable")),
        "{:?}",
        s3.builds
    );
    for i in 0..4 {
        c.stop(i);
    }
}

/// Not reproduced at the first attempt (two members' builds differ); once they are fixed,
/// `submit` orders attempt 2 (after the committee's spacing), it is reproduced 4 of 4, and
/// `crate@version` answers with that attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_reproduced_request_is_attempted_again() {
    let rules = ProtocolRules {
        attempt_spacing_secs: 1,
        ..windows(60, 3, 10)
    };
    let mut c = Cluster::new(75, 4, rules, "idle_interval_ms = 1000\n");
    c.overrides[2] = "retry=other".into();
    c.overrides[3] = "retry=other".into();
    for i in 0..4 {
        c.start(i);
    }
    let first = c.submit(0, "retry", "1.0.0").await;
    let st = c.decided_on(&[0, 1, 2, 3], &first, 60).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!((e.verdict, e.request.attempt), (Verdict::NotReproduced, 1));
    for i in [2, 3] {
        c.stop(i);
        c.overrides[i].clear();
        c.start(i);
    }
    c.converge(&[0, 1, 2, 3], 60).await;
    let second = c.submit(0, "retry", "1.0.0").await;
    assert_ne!(second, first, "a new attempt is a new request");
    let st = c.decided_on(&[0, 1, 2, 3], &second, 60).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!((e.verdict, e.request.attempt), (Verdict::Reproduced, 2));
    assert!(
        e.dissenters.is_empty() && e.silent.is_empty(),
        "4 of 4: {e:?}"
    );
    // `crate@version` (what `proof` asks for) answers with the reproduced attempt.
    let s = c.status(1, Some("retry@1.0.0")).await.unwrap();
    assert_eq!(s.entry.unwrap().entry.request.attempt, 2);
    assert_eq!(s.variants.len(), 2);
    // Reproduced: submitting again orders nothing new.
    assert_eq!(c.submit(1, "retry", "1.0.0").await, second);
    for i in 0..4 {
        c.stop(i);
    }
}

/// Queued builds survive a restart: member 3 (one build at a time, 1.5 s each) is killed
/// with builds still queued; restarted, it queues the open rounds again, builds them, and
/// commits and reveals in time: every entry is attested 4 of 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_builds_survive_a_restart() {
    let rules = windows(120, 60, 20);
    let mut c = Cluster::new(76, 4, rules, "idle_interval_ms = 1000\n");
    c.extra_env[3] = vec![("SYNC_TEST_BUILD_MS".into(), "1500".into())];
    for i in 0..4 {
        c.start(i);
    }
    for k in 0..4 {
        c.submit(0, &format!("restart{k}"), "1.0.0").await;
    }
    // Wait until member 3 has builds queued behind a running one, then kill it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = c.status(3, None).await
            && s.builds.running.len() == 1
            && !s.builds.queued.is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "member 3 never queued builds");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.kill(3);
    c.start(3);
    for k in 0..4 {
        let st = c
            .decided_on(&[0, 1, 2, 3], &format!("restart{k}@1.0.0"), 120)
            .await;
        let e = &st[0].entry.as_ref().unwrap().entry;
        let signers = synchronicity::crypto::ThresholdSignature::from_bytes(&e.attestation, 4)
            .unwrap()
            .signers
            .count();
        assert_eq!(
            (e.verdict, signers),
            (Verdict::Reproduced, 4),
            "restart{k}: {e:?}"
        );
    }
    for i in 0..4 {
        c.stop(i);
    }
}
