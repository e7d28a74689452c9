//! `synchronicity recipe` (`cargo synchronicity recipe`) on real workspaces: the id follows
//! the dependencies, not the workspace's own code, its directory or its formatting; bad
//! workspaces are refused with one line naming the problem, nothing written. The
//! workspaces' crates.io dependencies come from a loopback registry (cargo's source
//! replacement, in a CARGO_HOME of the test's own).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::cli::bin;
use support::registry::LoopbackRegistry;
use synchronicity::verify::recipe::{Recipe, StubKind};

struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
    reg: LoopbackRegistry,
}

const APP_TOML: &str = r#"[package]
name = "app"
version = "0.1.0"
edition = "2021"
build = "build.rs"

[dependencies]
util = { path = "../util" }
lonely = "0.1"
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

impl Fixture {
    /// A workspace of two members (`app`, a binary with a build script, using `util` and
    /// `lonely` from the registry), its lockfile made.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LoopbackRegistry::start();
        reg.publish_lone("lonely", "0.1.0");
        reg.publish_lone("other", "0.2.0");
        let home = tmp.path().join("cargo-home");
        write(
            &home.join("config.toml"),
            &format!(
                "[source.crates-io]\nreplace-with = \"loopback\"\n\n[source.loopback]\nregistry = \"sparse+{}/index/\"\n",
                reg.base
            ),
        );
        let ws = tmp.path().join("ws");
        write(
            &ws.join("Cargo.toml"),
            "[workspace]\nmembers = [\"app\", \"util\"]\nresolver = \"2\"\n",
        );
        write(&ws.join("app/Cargo.toml"), APP_TOML);
        write(&ws.join("app/build.rs"), "fn main() {}\n");
        write(
            &ws.join("app/src/main.rs"),
            "fn main() { println!(\"{}\", util::x()); }\n",
        );
        write(
            &ws.join("util/Cargo.toml"),
            "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        );
        write(&ws.join("util/src/lib.rs"), "pub fn x() -> u32 { 1 }\n");
        let f = Self {
            _tmp: tmp,
            home,
            ws,
            reg,
        };
        f.cargo(&f.ws, &["generate-lockfile"]);
        f
    }

    fn cargo(&self, ws: &Path, args: &[&str]) {
        let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(args)
            .arg("--manifest-path")
            .arg(ws.join("Cargo.toml"))
            .env("CARGO_HOME", &self.home)
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo {args:?}: {out:?}");
    }

    fn recipe_in(&self, ws: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
        bin()
            .arg("recipe")
            .arg("--manifest-path")
            .arg(ws.join("Cargo.toml"))
            .args([
                "--toolchain",
                "1.95.0",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .args(extra)
            .env("CARGO_HOME", &self.home)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// The id `recipe` prints for `ws`.
    fn id_of(&self, ws: &Path, env: &[(&str, &str)]) -> String {
        let out = self.recipe_in(ws, &[], env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = stdout.lines().next().unwrap();
        first.strip_prefix("recipe ").unwrap().to_string()
    }

    /// `recipe` on `ws` fails with one line holding `needle`, writing no `--out` file.
    fn refused(&self, ws: &Path, needle: &str) {
        let out_file = ws.join("refused.recipe");
        let out = self.recipe_in(ws, &["--out", out_file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
        assert!(!out_file.exists(), "nothing written");
    }
}

#[test]
fn the_recipe_id_follows_the_dependencies_not_the_workspace_code() {
    let f = Fixture::new();
    let id = f.id_of(&f.ws, &[]);
    assert_eq!(id.len(), 64);

    // The workspace's own code, the manifests' formatting and the directory do not count.
    write(
        &f.ws.join("app/src/main.rs"),
        "fn main() { /* new code */ }\n",
    );
    write(&f.ws.join("util/src/lib.rs"), "pub fn x() -> u32 { 2 }\n");
    let reordered = format!(
        "# a comment\n[dependencies]\nlonely = \"0.1\"\nutil = {{ path = \"../util\" }}\n\n{}",
        APP_TOML.split("\n\n[dependencies]").next().unwrap()
    );
    write(&f.ws.join("app/Cargo.toml"), &reordered);
    assert_eq!(f.id_of(&f.ws, &[]), id, "code, comments and key order");
    let moved = f.ws.with_file_name("elsewhere");
    std::fs::rename(&f.ws, &moved).unwrap();
    assert_eq!(f.id_of(&moved, &[]), id, "another directory");

    // What the dependencies compile with does.
    assert_ne!(
        f.id_of(&moved, &[("RUSTFLAGS", "-C opt-level=2")]),
        id,
        "RUSTFLAGS"
    );
    let out = f.recipe_in(&moved, &["--features", "x"], &[]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&id),
        "features"
    );
    let toml = std::fs::read_to_string(moved.join("app/Cargo.toml")).unwrap();
    write(
        &moved.join("app/Cargo.toml"),
        &toml.replace("lonely = \"0.1\"", "lonely = \"0.1\"\nother = \"0.2\""),
    );
    f.cargo(&moved, &["update", "--workspace"]);
    assert_ne!(f.id_of(&moved, &[]), id, "a new dependency");

    // --out writes the canonical recipe; its id is the printed one; --json shows the stubs.
    let file = moved.join("app.recipe");
    let out = f.recipe_in(&moved, &["--out", file.to_str().unwrap(), "--json"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recipe = Recipe::from_cbor(&std::fs::read(&file).unwrap()).unwrap();
    assert!(stdout.starts_with(&format!("recipe {}", hex::encode(recipe.id()))));
    let stubs: Vec<(&str, StubKind)> = recipe.stubs().map(|s| (s.path.as_str(), s.kind)).collect();
    assert_eq!(
        stubs,
        [
            ("app/build.rs", StubKind::Main),
            ("app/src/main.rs", StubKind::Main),
            ("util/src/lib.rs", StubKind::Lib),
        ]
    );
    assert!(recipe.lockfile.contains("name = \"other\""));
    assert!(stdout.contains("\"manifests\""), "{stdout}");
    assert!(!stdout.contains("new code"), "no source text in a recipe");
    let _ = &f.reg;
}

#[test]
fn bad_workspaces_are_refused_with_one_line_naming_the_problem() {
    let f = Fixture::new();
    let app = f.ws.join("app/Cargo.toml");

    // A lockfile that does not match the manifests (a dependency added, the lock not).
    write(&app, &format!("{APP_TOML}other = \"0.2\"\n"));
    f.refused(&f.ws, "Cargo.lock does not match the workspace's manifests");

    // RUSTFLAGS that name the builders' CPU, or a linker.
    for flags in ["-C target-cpu=native", "-C linker=/tmp/x"] {
        let out = f.recipe_in(&f.ws, &[], &[("RUSTFLAGS", flags)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("RUSTFLAGS argument"),
            "{flags}: {stderr}"
        );
    }

    // A git dependency (refused before cargo would fetch it).
    write(
        &app,
        &format!("{APP_TOML}gitdep = {{ git = \"https://example.invalid/gitdep\" }}\n"),
    );
    f.refused(
        &f.ws,
        "app/Cargo.toml: [dependencies] gitdep is a git dependency",
    );

    // A path dependency outside the workspace.
    let outside = f.ws.with_file_name("outside");
    write(
        &outside.join("Cargo.toml"),
        "[package]\nname = \"outside\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(&outside.join("src/lib.rs"), "");
    write(
        &app,
        &format!("{APP_TOML}outside = {{ path = \"../../outside\" }}\n"),
    );
    f.refused(&f.ws, "outside is a path dependency outside the workspace");

    // No lockfile.
    write(&app, APP_TOML);
    std::fs::remove_file(f.ws.join("Cargo.lock")).unwrap();
    f.refused(&f.ws, "a recipe needs the workspace's lockfile");
    f.cargo(&f.ws, &["generate-lockfile"]);

    // Over the size bound: manifests of 200 KiB each, six members.
    let mut members = vec!["\"app\"".to_string(), "\"util\"".to_string()];
    for i in 0..6 {
        let big = "x".repeat(200 << 10);
        write(
            &f.ws.join(format!("big{i}/Cargo.toml")),
            &format!(
                "[package]\nname = \"big{i}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata]\nfiller = \"{big}\"\n"
            ),
        );
        write(&f.ws.join(format!("big{i}/src/lib.rs")), "");
        members.push(format!("\"big{i}\""));
    }
    write(
        &f.ws.join("Cargo.toml"),
        &format!(
            "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
            members.join(", ")
        ),
    );
    f.cargo(&f.ws, &["generate-lockfile"]);
    f.refused(&f.ws, "more than 1048576");
}
