//! CI's subset of the cross-host check (`scripts/cross-host-check.sh`, docs/reproducibility.md
//! "Across hosts"): the same crates built in two member containers that differ in CPU count
//! and cpuset, host name, work directory and `[builder] jobs` give byte-identical manifests.
//! A plain library here; the C libraries built by cc with the job count (zstd-sys) and the
//! rest of the list run on demand (`scripts/cross-host-check.sh`), which keeps CI within its
//! time.
//!
//! Needs Docker and root (the containers' sandbox, loop disks): the machine kind has them,
//! and without them this test fails rather than skips.

use std::process::Command;

#[test]
fn two_hosts_that_differ_in_cpus_name_path_and_jobs_build_the_same_bytes() {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/cross-host-check.sh"
    ))
    .args(["--profile", "debug", "itoa@1.0.19"])
    // The binaries this `cargo test` made (testnet/lib.sh, build_bins).
    .env("TESTNET_PREBUILT", "1")
    .output()
    .expect("cannot run scripts/cross-host-check.sh");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    // The two hosts really differ in what a build script can see.
    assert!(
        text.contains("host a: nproc 1, hostname builder-a"),
        "{text}"
    );
    assert!(
        text.contains("host b: nproc 2, hostname other-host.example"),
        "{text}"
    );
    assert!(out.status.success(), "the cross-host check failed:\n{text}");
    let c = "itoa@1.0.19";
    assert!(
        text.lines()
            .any(|l| l.starts_with(c) && l.ends_with("reproduced")),
        "no reproduced row for {c}:\n{text}"
    );
    assert!(text.contains("reproduced 1 of 1 across hosts"), "{text}");
}
