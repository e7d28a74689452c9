//! A recipe's dependencies built in the bubblewrap sandbox (issue 28): a workspace of two
//! members (one with a build script) using a library and a crate with a build script from a
//! loopback registry. The dependency units (rlibs, build-script outputs, fingerprints) are
//! taken, the members' units and the dep-info files are not, and a second build gives the
//! same manifest. A recipe with a git dependency slipped into a manifest (a submitter who
//! skipped the client's checks) is refused before anything is written, fetched or built.
//!
//! Needs the sandbox root filesystem (`scripts/build-image.sh`, run by `scripts/test.sh`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::builder::TOOLCHAIN;
use support::registry::LoopbackRegistry;
use synchronicity::builder::{Backend, Builder, BuilderConfig, FailureClass, Outcome};
use synchronicity::recipe::{RecipeOptions, recipe_of_with};
use synchronicity::verify::recipe::Recipe;

const SCRIPTED_BUILD_RS: &str = r#"fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{out}/gen.rs"), "pub const GENERATED: u32 = 7;\n").unwrap();
}
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The workspace, its recipe and a builder on the loopback registry.
fn setup(tmp: &Path, reg: &LoopbackRegistry) -> (Recipe, PathBuf) {
    reg.publish_lone("lonely", "0.1.0");
    reg.publish(
        "scripted",
        "0.1.0",
        &[
            ("build.rs", SCRIPTED_BUILD_RS),
            (
                "src/lib.rs",
                "include!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));\n",
            ),
        ],
        &[],
    );
    let home = tmp.join("cargo-home");
    write(
        &home.join("config.toml"),
        &format!(
            "[source.crates-io]\nreplace-with = \"loopback\"\n\n[source.loopback]\nregistry = \"sparse+{}/index/\"\n",
            reg.base
        ),
    );
    let ws = tmp.join("ws");
    write(
        &ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"app\", \"util\"]\nresolver = \"2\"\n",
    );
    write(
        &ws.join("app/Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nutil = { path = \"../util\" }\nlonely = \"0.1\"\nscripted = \"0.1\"\n",
    );
    write(&ws.join("app/build.rs"), "fn main() {}\n");
    write(&ws.join("app/src/main.rs"), "fn main() {}\n");
    write(
        &ws.join("util/Cargo.toml"),
        "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(&ws.join("util/src/lib.rs"), "");
    let cargo = || {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.env("CARGO_HOME", &home);
        c
    };
    let lock = cargo()
        .args(["generate-lockfile", "--manifest-path"])
        .arg(ws.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(lock.status.success(), "{lock:?}");
    let opts = RecipeOptions {
        manifest_path: Some(ws.join("Cargo.toml")),
        toolchain: Some(TOOLCHAIN.into()),
        target: Some("x86_64-unknown-linux-gnu".into()),
        rustflags: Some(vec![]),
        ..RecipeOptions::default()
    };
    (recipe_of_with(&opts, &cargo).unwrap(), ws)
}

fn builder(work: &Path, reg: &LoopbackRegistry) -> Builder {
    let mut cfg = BuilderConfig::new(work, TOOLCHAIN);
    cfg.backend = Backend::Sandbox;
    cfg.registry = Some((format!("{}/index", reg.base), format!("{}/dl", reg.base)));
    Builder::new(&cfg).unwrap()
}

#[test]
fn a_recipes_dependency_units_are_built_and_taken_the_same_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LoopbackRegistry::start();
    let (recipe, _) = setup(tmp.path(), &reg);
    let b = builder(&tmp.path().join("work"), &reg);
    let first = b.build_recipe(&recipe, &|_| {}).unwrap();
    let log = std::fs::read_to_string(&first.log_path).unwrap_or_default();
    let Outcome::Success(m) = &first.outcome else {
        panic!("{:?}\n{log}", first.outcome);
    };
    assert_eq!(first.recipe_id, recipe.id());
    let names: Vec<&str> = m.files().map(|(p, _)| p).collect();
    let has = |f: &dyn Fn(&str) -> bool| names.iter().any(|n| f(n));
    assert!(
        has(&|n| n.starts_with("release/deps/liblonely-") && n.ends_with(".rlib")),
        "{names:#?}"
    );
    assert!(
        has(&|n| n.starts_with("release/deps/libscripted-") && n.ends_with(".rmeta")),
        "{names:#?}"
    );
    assert!(
        has(&|n| n.starts_with("release/build/scripted-") && n.ends_with("/out/gen.rs")),
        "{names:#?}"
    );
    assert!(
        has(&|n| n.starts_with("release/build/scripted-") && n.ends_with("/output")),
        "{names:#?}"
    );
    assert!(
        has(&|n| n.starts_with("release/.fingerprint/lonely-")),
        "{names:#?}"
    );
    for n in &names {
        assert!(!n.ends_with(".d"), "dep-info is left out: {n}");
        for member in ["/app-", "/libapp-", "/util-", "/libutil-"] {
            assert!(!n.contains(member), "a member's unit: {n}");
        }
    }
    // The units' copies are the attested bytes.
    let (name, copy) = &first.units[0];
    let sha = synchronicity::crypto::sha256(&std::fs::read(copy).unwrap());
    assert_eq!(m.files().find(|(p, _)| p == name).unwrap().1, &sha);

    let again = builder(&tmp.path().join("work2"), &reg)
        .build_recipe(&recipe, &|_| {})
        .unwrap();
    match &again.outcome {
        Outcome::Success(m2) => assert_eq!(m2.digest(), m.digest(), "two builds, one manifest"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_recipe_with_a_git_dependency_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LoopbackRegistry::start();
    let (mut recipe, _) = setup(tmp.path(), &reg);
    let app = recipe
        .manifests
        .iter_mut()
        .find(|m| m.path == "app/Cargo.toml")
        .unwrap();
    app.toml
        .push_str("\n[build-dependencies]\nevil = { git = \"https://example.invalid/evil\" }\n");
    recipe.validate().unwrap();
    let b = builder(&tmp.path().join("work"), &reg);
    let report = b.build_recipe(&recipe, &|_| {}).unwrap();
    match &report.outcome {
        Outcome::Failure { class, reason } => {
            assert_eq!(*class, FailureClass::InvalidRequest);
            assert!(
                reason.contains("[build-dependencies] evil has `git`"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(report.units.is_empty());
    assert!(
        !tmp.path()
            .join("work/artifacts")
            .join(format!("recipe-{}", hex::encode(recipe.id())))
            .exists()
    );
}
