//! The fault suite's short subset (`testnet/faults.sh ci`: a 2 + 2 partition healed, an
//! equivocating member, ten SIGKILLs under load), each against a fresh group of member
//! containers, must pass its invariants; and a deliberately broken group (two members given
//! another committee file, `broken-committee`) must FAIL, naming the invariant it breaks.
//! The whole suite (`testnet/faults.sh all`) runs on demand; its figures are in
//! docs/reliability.md.
//!
//! Needs Docker, nsenter and iptables, and root (loop mounts, network namespaces): the
//! machine kind has them, and without them this test fails rather than skips.

use std::process::Command;

fn faults(args: &[&str]) -> (bool, String) {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testnet/faults.sh"))
        .args(["--profile", "debug"])
        // The binaries this `cargo test` made (testnet/lib.sh, build_bins).
        .env("TESTNET_PREBUILT", "1")
        .args(args)
        .output()
        .expect("cannot run testnet/faults.sh");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    (out.status.success(), text)
}

#[test]
fn short_fault_suite_passes_and_a_broken_group_fails_loudly() {
    // One test: the scenarios share the Docker network and container names.
    let (ok, text) = faults(&["ci"]);
    assert!(ok, "the short fault suite failed:\n{text}");
    assert!(text.contains("every scenario passed"), "{text}");
    for scenario in ["partition", "byz-equivocate", "sigkill-short"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("| {scenario} |")) && l.ends_with("| ok |")),
            "no passing row for {scenario}:\n{text}"
        );
    }

    let (ok, text) = faults(&["broken-committee"]);
    assert!(!ok, "a group split by two committee files passed:\n{text}");
    assert!(
        text.contains("INVARIANT no-lost-request"),
        "the broken invariant is not named:\n{text}"
    );
    assert!(text.contains("FAILED: broken-committee"), "{text}");
}
