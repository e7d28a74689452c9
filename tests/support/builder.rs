//! The real builder's test settings: the toolchain the sandbox image has, and the backends
//! this machine must test.

use synchronicity::builder::{Backend, engine_available, swarm_manager};

/// The toolchain of the sandbox image (`scripts/build-image.sh`).
pub(crate) const TOOLCHAIN: &str = "1.95.0";

/// Whether this machine tests the Docker backend: where an engine answers.
/// `SYNCHRONICITY_REQUIRE_DOCKER=1` (set by `scripts/test.sh` where one does) makes a missing
/// engine a failure, so the Docker comparisons cannot be skipped silently there.
pub(crate) fn docker_tested() -> bool {
    let required = std::env::var("SYNCHRONICITY_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    assert!(
        !required || engine_available(),
        "SYNCHRONICITY_REQUIRE_DOCKER=1 but no Docker engine answers"
    );
    required || engine_available()
}

/// The sandbox backend; Docker where [`docker_tested`], and the swarm backend there too
/// (required with `SYNCHRONICITY_REQUIRE_DOCKER=1`: `scripts/test.sh` makes the engine a
/// swarm manager; elsewhere only where it is one).
pub(crate) fn backends() -> Vec<Backend> {
    let required = std::env::var("SYNCHRONICITY_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    if !docker_tested() {
        vec![Backend::Sandbox]
    } else if required || swarm_manager().is_ok() {
        vec![Backend::Sandbox, Backend::Docker, Backend::Swarm]
    } else {
        vec![Backend::Sandbox, Backend::Docker]
    }
}

/// `scripts/swarm-workers.sh ARGS` (Docker engines in containers as the swarm's build
/// workers), which must succeed: its stdout.
pub(crate) fn swarm_workers(args: &[&str]) -> String {
    let out = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/swarm-workers.sh"
    ))
    .args(args)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "scripts/swarm-workers.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The manifest digest (hex) of crates.io's `name@version` built with `b`, which must
/// succeed with artifacts (else a panic with the build's log).
pub(crate) fn digest_of(b: &synchronicity::builder::Builder, name: &str, version: &str) -> String {
    use synchronicity::builder::Outcome;
    let req = b
        .pin(name, version, None, "x86_64-unknown-linux-gnu")
        .unwrap();
    let report = b.build(&req, &|_| {}).unwrap();
    match &report.outcome {
        Outcome::Success(m) => {
            assert!(!m.is_empty(), "{name}@{version}: no artifacts");
            hex::encode(m.digest())
        }
        Outcome::Failure { class, reason } => {
            let log = std::fs::read_to_string(&report.log_path).unwrap_or_default();
            panic!("{name}@{version} failed ({class}): {reason}\n{log}")
        }
    }
}
