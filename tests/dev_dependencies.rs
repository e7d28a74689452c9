//! Only what the build needs is fetched: a crate whose shipped lockfile names a
//! dev-dependency version its registry does not have (like anyhow@1.0.105 on crates.io:
//! `trybuild = "^1.0.125"`) is pinned and built on both backends, from a loopback registry.
//! The lockfile the request pins is the shipped one without the dev-only packages, and the
//! same on every pin.

mod support;

use std::path::Path;
use support::builder::{TOOLCHAIN, backends};
use support::registry::{CRATES_IO, LoopbackRegistry};

use synchronicity::builder::{Backend, Builder, BuilderConfig, Outcome};
use synchronicity::request::PinnedRequest;

/// A builder on `backend` in `work` that fetches from the loopback registry.
fn loopback_builder(reg: &LoopbackRegistry, backend: Backend, work: &Path) -> Builder {
    let mut cfg = BuilderConfig::new(work, TOOLCHAIN);
    cfg.backend = backend;
    cfg.registry = Some((format!("{}/index", reg.base), format!("{}/dl", reg.base)));
    Builder::new(&cfg).unwrap()
}

/// Builds `pinned`; its manifest digest, or a panic with the build's log.
fn built_digest(b: &Builder, pinned: &PinnedRequest, backend: Backend) -> [u8; 32] {
    let report = b.build(pinned, &|_| {}).unwrap();
    match report.outcome {
        Outcome::Success(m) => m.digest(),
        other => panic!(
            "{backend:?}: {other:?}\n{}",
            std::fs::read_to_string(&report.log_path).unwrap_or_default()
        ),
    }
}

#[test]
fn a_missing_dev_dependency_does_not_stop_the_build() {
    let reg = LoopbackRegistry::start();
    let leaf = reg.publish(
        "leaf",
        "0.1.0",
        &[("src/lib.rs", "pub fn leaf() -> u32 { 7 }\n")],
        &[],
    );
    // The index has gone@1.0.0 only; the shipped lockfile wants 1.0.5.
    reg.publish("gone", "1.0.0", &[], &[]);
    let lock = format!(
        "version = 4\n\n[[package]]\nname = \"devdemo\"\nversion = \"0.1.0\"\ndependencies = [\n \"gone\",\n \"leaf\",\n]\n\n[[package]]\nname = \"gone\"\nversion = \"1.0.5\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{}\"\n\n[[package]]\nname = \"leaf\"\nversion = \"0.1.0\"\nsource = \"{CRATES_IO}\"\nchecksum = \"{}\"\n",
        hex::encode([0x11u8; 32]),
        hex::encode(leaf)
    );
    reg.publish(
        "devdemo",
        "0.1.0",
        &[
            ("Cargo.lock", lock.as_str()),
            ("src/lib.rs", "pub fn demo() -> u32 { leaf::leaf() * 6 }\n"),
        ],
        &[("leaf", "0.1.0", "normal"), ("gone", "^1.0.5", "dev")],
    );

    let mut digests = Vec::new();
    for backend in backends() {
        let work = tempfile::tempdir().unwrap();
        let b = loopback_builder(&reg, backend, work.path());
        let pinned = b
            .pin("devdemo", "0.1.0", None, "x86_64-unknown-linux-gnu")
            .unwrap();
        assert!(
            !pinned.lockfile.contains("name = \"gone\""),
            "{backend:?}: the dev-only package stays in\n{}",
            pinned.lockfile
        );
        assert!(pinned.lockfile.contains("name = \"leaf\""));
        assert!(
            pinned.request.lockfile_shipped,
            "pruned from the shipped one"
        );
        // Deterministic: a second pin pins the same request.
        let again = b
            .pin("devdemo", "0.1.0", None, "x86_64-unknown-linux-gnu")
            .unwrap();
        assert_eq!(again.id(), pinned.id());
        digests.push((pinned.id(), built_digest(&b, &pinned, backend)));
    }
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "backends differ: {digests:?}"
    );
}

/// A crate whose features and a test target's `required-features` name a dev-only
/// dependency (hashbrown@0.17.2's shape: `nightly = ["foldhash?/nightly",
/// "bumpalo/allocator_api"]`, `bumpalo` a dev-dependency) pins and builds on both backends:
/// those entries go with the dev-dependency, and the lib's bytes are the same everywhere.
#[test]
fn features_that_name_a_dev_dependency_do_not_stop_the_build() {
    let reg = LoopbackRegistry::start();
    reg.publish(
        "leaf",
        "0.1.0",
        &[("src/lib.rs", "pub fn leaf() -> u32 { 7 }\n")],
        &[],
    );
    reg.publish("bump", "3.0.0", &[], &[]);
    let manifest = r#"[package]
name = "featdemo"
version = "0.1.0"
edition = "2021"

[dependencies]
leaf = { version = "0.1.0", optional = true }

[dev-dependencies]
bump = "3"

[features]
default = ["dep:leaf"]
nightly = ["dep:leaf", "bump/allocator_api"]
weak = ["bump?/allocator_api"]

[[test]]
name = "t"
required-features = ["bump/allocator_api"]
"#;
    reg.publish(
        "featdemo",
        "0.1.0",
        &[
            ("Cargo.toml", manifest),
            ("src/lib.rs", "pub fn demo() -> u32 { leaf::leaf() * 6 }\n"),
            ("tests/t.rs", "#[test]\nfn t() {}\n"),
        ],
        &[("leaf", "0.1.0", "normal"), ("bump", "^3", "dev")],
    );

    let mut digests = Vec::new();
    for backend in backends() {
        let work = tempfile::tempdir().unwrap();
        let b = loopback_builder(&reg, backend, work.path());
        let pinned = b
            .pin("featdemo", "0.1.0", None, "x86_64-unknown-linux-gnu")
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        assert!(!pinned.lockfile.contains("name = \"bump\""));
        digests.push((pinned.id(), built_digest(&b, &pinned, backend)));
    }
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "backends differ: {digests:?}"
    );
}
