//! Four real `synchronicity node` processes (sandbox backend, real builds) against a
//! crates.io-like registry on loopback (`support::registry`):
//!
//! - a followed crate: each new release is ordered exactly once across the group, built and
//!   logged; polls are conditional (`304`) and order nothing more;
//! - one member's registry URL points at a closed port: it commits nothing and says why;
//!   under a 4-of-4 threshold attempt 1 is not reproduced; once the member is fixed attempt 2
//!   is reproduced 4 of 4 and `proof` returns it;
//! - two variants of one crate@version (shipped lockfile, another lockfile) ordered together:
//!   both reproduced, each with its own entry and proof; build scripts that fork 10,000
//!   processes, allocate 8 GiB across children, or write 50 GiB are logged `Failed` with
//!   `too-many-processes`, `out-of-memory`, `disk-limit` (4 of 4 agree), and the group
//!   builds the next request.
//!
//! Needs the sandbox root filesystem (`scripts/build-image.sh`, run by `scripts/test.sh`).

mod support;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::Cluster;
use support::cli::bin;
use support::registry::{CRATES_IO, LoopbackRegistry, closed_port_url, lone_lock};
use support::rules::real_builds;
use synchronicity::committee::ProtocolRules;
use synchronicity::protocol::Verdict;

fn node_toml(builder: &str, extra: &str) -> String {
    format!("idle_interval_ms = 1000\n[builder]\nbackend = \"sandbox\"\n{builder}{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_crate_gets_each_new_release_ordered_once() {
    let reg = LoopbackRegistry::start();
    reg.publish_lone("fol", "0.1.0");
    let toml = node_toml(
        &reg.node_toml(),
        "[follow]\ncrates = [\"fol\"]\ninterval_secs = 1\n",
    );
    let mut c = Cluster::real_nodes(81, 4, real_builds(), &toml);
    for i in 0..4 {
        c.start(i);
    }
    // Following starts from the newest release.
    let st = c.decided_on(&[0, 1, 2, 3], "fol@0.1.0", 300).await;
    assert_eq!(
        st[0].entry.as_ref().unwrap().entry.verdict,
        Verdict::Reproduced
    );
    reg.publish_lone("fol", "0.2.0");
    let st = c.decided_on(&[0, 1, 2, 3], "fol@0.2.0", 300).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(
        (e.verdict, c.signers(&e.attestation)),
        (Verdict::Reproduced, 4)
    );
    // Nothing more is ordered while every member keeps polling: over 10 more conditional
    // polls answered 304 by the registry, the log stays at two entries, one per release.
    let base = reg.not_modified.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reg.not_modified.load(Ordering::Relaxed) < base + 10 {
        assert!(Instant::now() < deadline, "members stopped polling");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..4 {
        let s = c.status(i, Some("fol@0.2.0")).await.unwrap();
        assert_eq!(s.log_size, 2, "member {i}: one entry per release");
        assert_eq!(s.variants.len(), 1, "member {i}: fol@0.2.0 ordered once");
        assert!(s.open.is_empty(), "member {i}: nothing else open");
    }
    for i in 0..4 {
        c.stop(i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_closed_registry_commits_nothing_and_a_new_attempt_is_four_of_four() {
    let reg = LoopbackRegistry::start();
    reg.publish_lone("closed", "1.0.0");
    let good = node_toml(&reg.node_toml(), "");
    let dead = closed_port_url();
    let broken = node_toml(
        &format!("registry_index = \"{dead}/index\"\nregistry_dl = \"{dead}/dl\"\n"),
        "",
    );
    // Member 3 never commits: under 4 of 4 the commit phase lasts the whole window.
    let rules = ProtocolRules {
        commit_window_secs: 40,
        ..real_builds()
    };
    let mut c = Cluster::real_nodes(82, 4, rules, &good);
    // Every attester counts: 4 of 4.
    c.set_threshold(4);
    std::fs::write(c.dir(3).join("node.toml"), &broken).unwrap();
    for i in 0..4 {
        c.start(i);
    }
    let first = c.submit_with(0, "closed", "1.0.0", None).await;
    let st = c.decided_on(&[0, 1, 2, 3], &first, 300).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(
        (e.verdict, e.request.attempt),
        (Verdict::NotReproduced, 1),
        "{e:?}"
    );
    // Member 3 committed nothing: it is neither listed with a digest nor silent (committed,
    // then no reveal); the three others agree, one short of the threshold.
    let revealed: Vec<u32> = e.dissenters.iter().map(|d| d.member).collect();
    assert_eq!(revealed, [0, 1, 2], "{e:?}");
    assert!(
        e.dissenters
            .iter()
            .all(|d| d.digest == e.dissenters[0].digest)
            && e.silent.is_empty(),
        "{e:?}"
    );
    let s3 = c.status(3, None).await.unwrap();
    assert!(
        s3.builds
            .local_failures
            .iter()
            .any(|(_, why)| why.contains(&dead[7..])),
        "member 3 says why: {:?}",
        s3.builds.local_failures
    );
    assert!(
        c.log_tail(3).contains("committing nothing"),
        "{}",
        c.log_tail(3)
    );
    // Fixed: attempt 2, reproduced 4 of 4, and `proof` returns it.
    c.stop(3);
    std::fs::write(c.dir(3).join("node.toml"), &good).unwrap();
    c.start(3);
    c.converge(&[0, 1, 2, 3], 120).await;
    let second = c.submit_with(3, "closed", "1.0.0", None).await;
    assert_ne!(second, first);
    let st = c.decided_on(&[0, 1, 2, 3], &second, 300).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(
        (e.verdict, e.request.attempt, c.signers(&e.attestation)),
        (Verdict::Reproduced, 2, 4)
    );
    assert_eq!(
        proven_request(&c, "closed@1.0.0"),
        second,
        "proof returns attempt 2"
    );
    for i in 0..4 {
        c.stop(i);
    }
}

/// Fetches the proof for `what` (crate@version or a request id) from member 1, verifies it
/// offline, and returns the request id it proves.
fn proven_request(c: &Cluster, what: &str) -> String {
    let file = c
        .root
        .path()
        .join(format!("{}.tlog-proof", what.replace('@', "-")));
    let out = c.proof(1, what, &[], &file);
    assert!(
        out.status.success(),
        "proof {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .arg("verify")
        .arg(&file)
        .arg("--trust")
        .arg(&c.committee_file)
        .arg(if what.contains('@') {
            "--crate"
        } else {
            "--request"
        })
        .arg(what)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["build"]["request_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_variants_build_side_by_side_and_limit_breakers_are_failed_with_their_class() {
    let reg = LoopbackRegistry::start();
    let leaf1 = reg.publish(
        "leaf",
        "0.1.0",
        &[("src/lib.rs", "pub const N: u32 = 1;\n")],
        &[],
    );
    let leaf2 = reg.publish(
        "leaf",
        "0.1.1",
        &[("src/lib.rs", "pub const N: u32 = 2;\n")],
        &[],
    );
    let lock = |leaf_version: &str, sum: &[u8; 32]| {
        format!(
            "version = 4\n\n[[package]]\nname = \"leaf\"\nversion = \"{leaf_version}\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{}\"\n\n[[package]]\nname = \"vara\"\nversion = \"0.1.0\"\ndependencies = [\n \"leaf\",\n]\n",
            hex::encode(sum)
        )
    };
    let shipped = lock("0.1.0", &leaf1);
    reg.publish(
        "vara",
        "0.1.0",
        &[
            ("Cargo.lock", shipped.as_str()),
            ("src/lib.rs", "pub fn n() -> u32 { leaf::N }\n"),
        ],
        &[("leaf", "^0.1", "normal")],
    );
    // The limit fixtures as crates: fork 10,000 processes, allocate 8 GiB across children,
    // write 50 GiB.
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (krate, fixture) in [
        ("bomb", "forkbomb"),
        ("hog", "memhog"),
        ("fill", "diskfill"),
    ] {
        let script = std::fs::read_to_string(fixtures.join(fixture).join("build.rs")).unwrap();
        let lock = lone_lock(krate, "0.1.0");
        reg.publish(
            krate,
            "0.1.0",
            &[("Cargo.lock", lock.as_str()), ("build.rs", script.as_str())],
            &[],
        );
    }
    let limits = "processes = 256\nmemory_mib = 1024\ndisk_mib = 512\n";
    let toml = node_toml(&format!("{}{limits}", reg.node_toml()), "");
    let mut c = Cluster::real_nodes(83, 4, real_builds(), &toml);
    for i in 0..4 {
        c.start(i);
    }
    let a = c.submit_with(0, "vara", "0.1.0", None).await;
    let b = c
        .submit_with(1, "vara", "0.1.0", Some(lock("0.1.1", &leaf2)))
        .await;
    let bomb = c.submit_with(2, "bomb", "0.1.0", None).await;
    let hog = c.submit_with(2, "hog", "0.1.0", None).await;
    let fill = c.submit_with(3, "fill", "0.1.0", None).await;
    assert_ne!(a, b, "two variants, two requests");
    for id in [&a, &b] {
        let st = c.decided_on(&[0, 1, 2, 3], id, 300).await;
        let e = &st[0].entry.as_ref().unwrap().entry;
        assert_eq!(
            (e.verdict, c.signers(&e.attestation)),
            (Verdict::Reproduced, 4),
            "{id}"
        );
    }
    let s = c.status(0, Some("vara@0.1.0")).await.unwrap();
    assert_eq!(s.variants.len(), 2, "each variant has its own entry");
    let (ea, eb) = (&s.variants[0].entry, &s.variants[1].entry);
    assert_ne!(ea.digest, eb.digest, "other lockfile, other bytes");
    for id in [&a, &b] {
        assert_eq!(
            &proven_request(&c, id),
            id,
            "each variant has its own proof"
        );
    }
    for (id, class) in [
        (&bomb, "too-many-processes"),
        (&hog, "out-of-memory"),
        (&fill, "disk-limit"),
    ] {
        let st = c.decided_on(&[0, 1, 2, 3], id, 300).await;
        for s in &st {
            let e = &s.entry.as_ref().unwrap().entry;
            assert_eq!(e.verdict, Verdict::Failed, "member {}: {e:?}", s.member);
            assert_eq!(
                synchronicity_verify::entry::failure_class(&e.digest),
                Some(class),
                "member {}",
                s.member
            );
            assert_eq!(c.signers(&e.attestation), 4, "{class}: all four agree");
        }
    }
    // The members and the host keep working: one more build after the bomb.
    reg.publish_lone("after", "0.1.0");
    let after = c.submit_with(3, "after", "0.1.0", None).await;
    let st = c.decided_on(&[0, 1, 2, 3], &after, 300).await;
    assert_eq!(
        st[0].entry.as_ref().unwrap().entry.verdict,
        Verdict::Reproduced
    );
    for i in 0..4 {
        c.stop(i);
    }
}
