//! The builder with real sandboxes and real crates from crates.io: identical digests across
//! work directories at different host paths and across the docker and sandbox backends; a
//! build script that tries the network fails cleanly; memory and time limits are reported.
//!
//! Needs the sandbox image (`scripts/build-image.sh`, run by `scripts/test.sh`) and access
//! to crates.io. The Docker and swarm comparisons run when an engine answers;
//! `scripts/test.sh` sets SYNCHRONICITY_REQUIRE_DOCKER=1 when it does (and makes the engine a
//! swarm manager), so they cannot be skipped silently there.

mod support;

use std::path::Path;
use std::time::Duration;

use support::builder::{TOOLCHAIN, backends, digest_of};
use synchronicity::builder::{Backend, Builder, BuilderConfig, Durations, FailureClass, Outcome};
use synchronicity::request::BuildRequest;

fn builder(dir: &Path, backend: Backend) -> Builder {
    let mut cfg = BuilderConfig::new(dir, TOOLCHAIN);
    cfg.backend = backend;
    Builder::new(&cfg).unwrap()
}

#[test]
fn real_crates_are_identical_across_paths_and_backends() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::Builder::new()
        .prefix("another-host-path-")
        .tempdir()
        .unwrap();
    // A plain library, a proc macro, and a crate whose shipped lockfile names a
    // dev-dependency version the index does not have (built without its dev-dependencies).
    for (name, version) in [
        ("itoa", "1.0.15"),
        ("serde_derive", "1.0.219"),
        ("anyhow", "1.0.105"),
    ] {
        let first = digest_of(&builder(a.path(), Backend::Sandbox), name, version);
        let second = digest_of(
            &builder(&b.path().join("nested/work"), Backend::Sandbox),
            name,
            version,
        );
        assert_eq!(first, second, "{name}: two work directories differ");
        for backend in backends() {
            if backend != Backend::Sandbox {
                let other = digest_of(
                    &builder(&b.path().join(format!("{backend:?}")), backend),
                    name,
                    version,
                );
                assert_eq!(first, other, "{name}: {backend:?} and sandbox differ");
            }
        }
    }
}

fn fixture_request(name: &str) -> (BuildRequest, std::path::PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let lockfile = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    let req = synchronicity::testing::request(name, "0.1.0", &lockfile).request;
    (req, dir)
}

fn build_fixture(backend: Backend, name: &str, memory: u64, time: Duration) -> (Outcome, String) {
    build_fixture_with(backend, name, |l| {
        l.memory = memory;
        l.time = time;
    })
}

fn build_fixture_with(
    backend: Backend,
    name: &str,
    limits: impl FnOnce(&mut synchronicity::builder::Limits),
) -> (Outcome, String) {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = BuilderConfig::new(work.path(), TOOLCHAIN);
    cfg.backend = backend;
    limits(&mut cfg.limits);
    let b = Builder::new(&cfg).unwrap();
    let (req, dir) = fixture_request(name);
    let report = b
        .build_dir(req, &dir, Durations::default(), &|_| {})
        .unwrap();
    let log = std::fs::read_to_string(&report.log_path).unwrap();
    // Nothing of a swarm build is left: no job, network or container with its label.
    if backend == Backend::Swarm {
        let job = format!(
            "label=synchronicity.job={name}-0.1.0-{}",
            &hex::encode(report.request.id())[..16]
        );
        for what in [
            &["service", "ls", "-q", "--filter"][..],
            &["network", "ls", "-q", "--filter"],
            &["ps", "-aq", "--filter"],
        ] {
            let out = std::process::Command::new("docker")
                .args(what)
                .arg(&job)
                .output()
                .unwrap();
            assert!(out.status.success(), "{what:?}");
            assert!(
                out.stdout.is_empty(),
                "{name}: left by the swarm job: {what:?}"
            );
        }
    }
    // Nothing of the build is left: no mount below the work directory.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = work.path().to_string_lossy().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&prefix)),
        "{name}: a mount is left below {prefix}"
    );
    (report.outcome, log)
}

#[test]
fn a_build_script_cannot_reach_the_network() {
    for backend in backends() {
        let (outcome, log) = build_fixture(backend, "netprobe", 2 << 30, Duration::from_secs(300));
        assert!(!log.contains("SANDBOX-ESCAPE"), "{backend:?}: {log}");
        assert!(
            log.contains("no network in the sandbox"),
            "{backend:?}: {log}"
        );
        assert!(
            matches!(
                outcome,
                Outcome::Failure {
                    class: FailureClass::CompileError,
                    ..
                }
            ),
            "{backend:?}: {outcome:?}"
        );
    }
}

#[test]
fn memory_and_time_limits_are_reported_as_such() {
    for backend in backends() {
        // 8 children of 1 GiB each: each one under the limit, the tree over it.
        let (outcome, log) = build_fixture(backend, "memhog", 2 << 30, Duration::from_secs(300));
        assert!(
            matches!(
                outcome,
                Outcome::Failure {
                    class: FailureClass::OutOfMemory,
                    ..
                }
            ),
            "{backend:?}: {outcome:?}\n{log}"
        );
        let (outcome, _) = build_fixture(backend, "sleeper", 2 << 30, Duration::from_secs(8));
        assert!(
            matches!(
                outcome,
                Outcome::Failure {
                    class: FailureClass::Timeout,
                    ..
                }
            ),
            "{backend:?}: {outcome:?}"
        );
    }
}

fn class_of(outcome: &Outcome) -> Option<FailureClass> {
    match outcome {
        Outcome::Failure { class, .. } => Some(*class),
        Outcome::Success(_) => None,
    }
}

#[test]
fn process_and_disk_limits_hold_for_the_whole_build() {
    for backend in backends() {
        // 10,000 live processes against the default limit (4,096).
        let (outcome, log) = build_fixture_with(backend, "forkbomb", |_| {});
        assert_eq!(
            class_of(&outcome),
            Some(FailureClass::TooManyProcesses),
            "{backend:?}: {outcome:?}\n{log}"
        );
        // 50 GiB written to /tmp and to the target directory, on a 1 GiB disk.
        let (outcome, log) = build_fixture_with(backend, "diskfill", |l| l.disk = 1 << 30);
        assert_eq!(
            class_of(&outcome),
            Some(FailureClass::DiskLimit),
            "{backend:?}: {outcome:?}\n{log}"
        );
        assert!(
            log.contains("No space left on device"),
            "{backend:?}: both /tmp and target must hit the limit\n{log}"
        );
    }
}

/// `submit --features/--no-default-features/--all-features`: the pinned request lists the
/// features asked for (sorted), `--all-features` becomes every feature the crate declares
/// (cargo's list, without `default`), and a feature the crate does not declare is refused
/// with its name.
#[test]
fn variants_pin_the_features_asked_for() {
    use synchronicity::builder::Variant;
    let work = tempfile::tempdir().unwrap();
    let b = builder(work.path(), Backend::Sandbox);
    let target = "x86_64-unknown-linux-gnu";
    let pin = |v: Variant| b.pin_variant("serde", "1.0.219", None, target, &v);
    let default = pin(Variant::default()).unwrap();
    assert!(default.request.is_default_variant());

    let some = pin(Variant {
        features: vec!["std".into(), "derive".into(), "std".into()],
        no_default_features: true,
        all_features: false,
    })
    .unwrap();
    assert_eq!(some.request.features, ["derive", "std"]);
    assert!(some.request.no_default_features);
    assert_ne!(some.request.id(), default.request.id());
    assert_eq!(
        some.lockfile, default.lockfile,
        "features do not change the lockfile"
    );

    let all = pin(Variant {
        all_features: true,
        ..Variant::default()
    })
    .unwrap();
    for f in ["alloc", "derive", "rc", "std", "unstable"] {
        assert!(
            all.request.features.iter().any(|x| x == f),
            "{f}: {:?}",
            all.request.features
        );
    }
    assert!(!all.request.features.iter().any(|x| x == "default"));

    let err = pin(Variant {
        features: vec!["derive".into(), "nope".into()],
        ..Variant::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("declares no feature \"nope\""), "{err}");
}

/// A swarm task lost mid-build (its container removed from outside, as when a worker's
/// engine goes away) is rescheduled once as a new job: the build completes, with the same
/// manifest as a build that lost nothing, and its log says it was rescheduled. Without the
/// rescheduling the build would end as a failure every member but this one could dispute.
#[test]
fn a_swarm_task_lost_mid_build_is_rescheduled() {
    if !backends().contains(&Backend::Swarm) {
        return; // no swarm here; scripts/test.sh requires one (SYNCHRONICITY_REQUIRE_DOCKER=1)
    }
    let (req, _) = fixture_request("napper");
    let label = format!(
        "label=synchronicity.job=napper-0.1.0-{}",
        &hex::encode(req.id())[..16]
    );
    // The first task's container, once the build has run in it for a moment, is removed.
    let killer = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let out = std::process::Command::new("docker")
                .args(["ps", "-q", "--filter", &label])
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !id.is_empty() {
                std::thread::sleep(Duration::from_secs(3));
                let rm = std::process::Command::new("docker")
                    .args(["rm", "-f", &id])
                    .output()
                    .unwrap();
                assert!(rm.status.success(), "{rm:?}");
                return id;
            }
            assert!(std::time::Instant::now() < deadline, "the job never ran");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let (outcome, log) = build_fixture_with(Backend::Swarm, "napper", |_| {});
    let lost = killer.join().unwrap();
    assert!(!lost.is_empty());
    assert!(
        log.starts_with("[swarm] the first task of this job was lost mid-build"),
        "{log}"
    );
    let (again, _) = build_fixture_with(Backend::Swarm, "napper", |_| {});
    match (&outcome, &again) {
        (Outcome::Success(a), Outcome::Success(b)) => assert_eq!(a.digest(), b.digest()),
        _ => panic!("{outcome:?} / {again:?}"),
    }
}
