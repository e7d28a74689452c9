//! A backlog (`[follow] list = FILE`) worked through by a group: four real member
//! processes (`src/bin/fixed_builder_node.rs`) with the same list, a crates.io-like registry
//! on loopback (`support::registry`) for the lines without a version. Every buildable line is
//! decided exactly once across the group; a line that cannot be pinned is given up with its
//! reason; the committee's bounds pace it (half of `max_open_requests_per_member` per member
//! for the backlog, `max_requests_per_block`); `status` shows the progress on every member.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;
use support::registry::LoopbackRegistry;
use support::rules::short_rounds;
use synchronicity::committee::ProtocolRules;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_works_through_a_backlog_once_at_the_committees_pace() {
    let reg = LoopbackRegistry::start();
    for name in ["bl0", "bl2", "bl4", "bl5"] {
        reg.publish_lone(name, "0.1.0");
    }
    reg.publish_lone("bl2", "0.3.0");
    let toml = format!(
        "idle_interval_ms = 1000\n[builder]\n{}[follow]\nlist = \"backlog.txt\"\ninterval_secs = 1\n",
        reg.node_toml()
    );
    let rules = ProtocolRules {
        max_open_requests_per_member: 2,
        max_requests_per_block: 2,
        ..short_rounds()
    };
    let mut c = Cluster::new(71, 4, rules, &toml);
    // Newest releases (bl2: 0.3.0), an exact version the index is not asked for, a variant
    // this builder cannot pin, a crate the registry does not have, and a repeated line.
    let list = "# the backlog\nbl0\nbl1@0.1.0\nbl2\nbl3@0.1.0 --features x\nbl4\nbl5\nnope\nbl0\n";
    for i in 0..4 {
        std::fs::write(c.dir(i).join("backlog.txt"), list).unwrap();
        c.start(i);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut most_open = 0;
    loop {
        let mut done = 0;
        for i in 0..4 {
            let Some(s) = c.status(i, None).await else {
                continue;
            };
            // Each member keeps at most one backlog round open (half its share of two).
            most_open = most_open.max(s.open.len());
            assert!(
                s.open.len() <= 4,
                "member {i}: {} rounds open",
                s.open.len()
            );
            let b = s.backlog.expect("a backlog");
            assert_eq!(b.total, 7, "the repeated line counts once");
            if b.decided() == 5 && b.unbuildable == 2 && b.waiting == 0 {
                assert_eq!(b.reproduced, 5);
                assert_eq!(s.log_size, 5, "member {i}: one entry per buildable line");
                let errors: Vec<String> =
                    b.errors.iter().map(|(l, e)| format!("{l}: {e}")).collect();
                assert!(
                    errors
                        .iter()
                        .any(|e| e.starts_with("nope: ") && e.contains("not in the index")),
                    "{errors:?}"
                );
                assert!(
                    errors
                        .iter()
                        .any(|e| e.starts_with("bl3@0.1.0 --features x: ")),
                    "{errors:?}"
                );
                done += 1;
            }
        }
        if done == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog was not worked through: {}",
            c.log_tail(0)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(most_open >= 1, "rounds were seen open");
    // Each release once, the newest one for a line without a version.
    for spec in [
        "bl0@0.1.0",
        "bl1@0.1.0",
        "bl2@0.3.0",
        "bl4@0.1.0",
        "bl5@0.1.0",
    ] {
        let s = c.status(0, Some(spec)).await.unwrap();
        assert_eq!(s.variants.len(), 1, "{spec} decided once");
    }
    for i in 0..4 {
        c.stop(i);
    }
}
