//! A followed release is built with its shipped lockfile even when someone ordered a variant
//! of it first: four real member processes (`src/bin/fixed_builder_node.rs`, following a
//! crates.io-like registry on loopback, `support::registry`). The follower counts only
//! ordered or decided requests of the default variant (the mempool case: `node::app`'s unit
//! test).

mod support;

use std::time::{Duration, Instant};

use support::Cluster;
use support::registry::LoopbackRegistry;
use support::rules::short_rounds;
use synchronicity::protocol::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_ordered_first_does_not_stop_a_followed_release() {
    let reg = LoopbackRegistry::start();
    reg.publish_lone("fol", "0.1.0");
    let toml = format!(
        "idle_interval_ms = 1000\n[builder]\n{}[follow]\ncrates = [\"fol\"]\ninterval_secs = 1\n",
        reg.node_toml()
    );
    let mut c = Cluster::new(69, 4, short_rounds(), &toml);
    for i in 0..4 {
        c.start(i);
    }
    // Following starts from the newest release.
    c.decided_on(&[0, 1, 2, 3], "fol@0.1.0", 120).await;
    // Someone orders the next release first, with a lockfile of its choice.
    let junk = c
        .submit_with(
            0,
            "fol",
            "0.2.0",
            Some("# a lockfile of someone's choice\n".into()),
        )
        .await;
    let st = c.decided_on(&[0, 1, 2, 3], &junk, 120).await;
    assert!(!st[0].entry.as_ref().unwrap().entry.request.lockfile_shipped);
    // The release appears: the followers still order its default variant.
    reg.publish_lone("fol", "0.2.0");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c.status(0, Some("fol@0.2.0")).await;
        if let Some(s) = s
            && s.variants.len() == 2
            && s.entry.as_ref().is_some_and(|e| e.cosigned)
        {
            let chosen = &s.entry.unwrap().entry;
            assert!(chosen.request.lockfile_shipped, "{chosen:?}");
            assert_eq!(chosen.verdict, Verdict::Reproduced);
            assert_ne!(hex::encode(chosen.request.id()), junk);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the followed release was not ordered: {}",
            c.log_tail(0)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
