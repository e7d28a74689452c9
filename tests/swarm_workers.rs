//! Builds on other Docker engines (issue 27): this engine is the swarm's manager, and two
//! Docker engines in containers (`scripts/swarm-workers.sh up 2`: debootstrap plus Debian's
//! docker.io) are its labelled workers; the builder's `swarm_workers` placement runs every
//! build on them, its inputs streamed in and its results streamed back.
//!
//! - A real crate with dependencies built on a worker has the sandbox backend's manifest.
//! - The limits hold there with the same failure classes.
//!
//! A worker stopped mid-build, with the group deciding on the rescheduled build, is in
//! `tests/swarm_reattach.rs`.
//!
//! Needs Docker, a swarm whose manager advertises an address containers reach
//! (`scripts/test.sh` makes one) and debootstrap (the worker engines' image); the tests of
//! this file share the two workers and run one at a time.

mod support;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use support::builder::{TOOLCHAIN, digest_of, docker_tested, swarm_workers};
use synchronicity::builder::{
    Backend, Builder, BuilderConfig, Durations, FailureClass, Limits, Outcome,
};

/// One test at a time: they share the workers.
static WORKERS: Mutex<()> = Mutex::new(());

/// Two workers up (kept between tests and runs: their image store holds the build image).
fn workers_up() -> std::sync::MutexGuard<'static, ()> {
    let guard = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(docker_tested(), "these tests need a Docker engine");
    let up = swarm_workers(&["up", "2"]);
    assert_eq!(up.lines().count(), 2, "{up}");
    guard
}

fn builder(dir: &Path, backend: Backend, limits: impl FnOnce(&mut Limits)) -> Builder {
    let mut cfg = BuilderConfig::new(dir, TOOLCHAIN);
    cfg.backend = backend;
    cfg.swarm_workers = backend == Backend::Swarm;
    limits(&mut cfg.limits);
    Builder::new(&cfg).unwrap()
}

fn fixture(b: &Builder, name: &str) -> (Outcome, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let lockfile = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    let req = synchronicity::testing::request(name, "0.1.0", &lockfile).request;
    let report = b
        .build_dir(req, &dir, Durations::default(), &|_| {})
        .unwrap();
    let log = std::fs::read_to_string(&report.log_path).unwrap();
    (report.outcome, log)
}

fn class_of(outcome: &Outcome) -> Option<FailureClass> {
    match outcome {
        Outcome::Failure { class, .. } => Some(*class),
        Outcome::Success(_) => None,
    }
}

#[test]
fn a_real_crate_built_on_a_worker_has_the_sandbox_digest() {
    let _workers = workers_up();
    let work = tempfile::tempdir().unwrap();
    // A proc macro with three dependencies: the registry's sources travel to the worker.
    let (name, version) = ("serde_derive", "1.0.219");
    let here = digest_of(
        &builder(&work.path().join("sandbox"), Backend::Sandbox, |_| {}),
        name,
        version,
    );
    let there = digest_of(
        &builder(&work.path().join("workers"), Backend::Swarm, |_| {}),
        name,
        version,
    );
    assert_eq!(here, there, "{name}: a worker and the sandbox differ");
}

#[test]
fn limits_hold_on_a_worker_with_the_same_classes() {
    let _workers = workers_up();
    let work = tempfile::tempdir().unwrap();
    // A worker's build disk is memory, counted in its task's limit (memory + disk): a small
    // disk keeps the memory hog's 8 GiB over it.
    let b = builder(work.path(), Backend::Swarm, |l| {
        l.memory = 2 << 30;
        l.disk = 1 << 30;
        l.time = Duration::from_secs(300);
    });
    for (fixture_name, class) in [
        ("memhog", FailureClass::OutOfMemory),
        ("forkbomb", FailureClass::TooManyProcesses),
        ("diskfill", FailureClass::DiskLimit),
    ] {
        let (outcome, log) = fixture(&b, fixture_name);
        assert_eq!(
            class_of(&outcome),
            Some(class),
            "{fixture_name}: {outcome:?}\n{log}"
        );
    }
    let b = builder(&work.path().join("short"), Backend::Swarm, |l| {
        l.time = Duration::from_secs(8);
    });
    let (outcome, log) = fixture(&b, "sleeper");
    assert_eq!(
        class_of(&outcome),
        Some(FailureClass::Timeout),
        "{outcome:?}\n{log}"
    );
    // A build script that tries the network finds none on a worker either.
    let (outcome, log) = fixture(
        &builder(&work.path().join("net"), Backend::Swarm, |_| {}),
        "netprobe",
    );
    assert!(log.contains("no network in the sandbox"), "{log}");
    assert_eq!(
        class_of(&outcome),
        Some(FailureClass::CompileError),
        "{outcome:?}"
    );
}
