//! The group as a build cache, end to end (issue 28): a workspace over real crates.io
//! dependencies (itoa, memchr, and libc with its build script) is ordered as a recipe,
//! built by four real members in their sandboxes and decided reproduced; `cook` then unpacks
//! the attested units, and a plain `cargo build --release -v` finds every dependency
//! `Fresh` and compiles only the workspace's two crates; the binary runs. A member serving
//! a tampered file is refused and nothing is unpacked; a recipe the group never built is a
//! proven miss, which a member that accepts recipes orders at the user's request (`cook
//! --order`), and which is then cooked into the existing target directory.
//!
//! Needs the sandbox root filesystem (`scripts/build-image.sh`), crates.io, and root (cook
//! makes `/opt/rustwide/cargo-home` a symlink to the test's cargo home).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::Cluster;
use support::cli::bin;
use support::rules::real_builds;
use synchronicity::protocol::Verdict;

const BUILDERS_CARGO_HOME: &str = "/opt/rustwide/cargo-home";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `cook` in `ws` with the user's cargo home `home`, asking `peer`.
fn cook(c: &Cluster, ws: &Path, home: &Path, peer: usize, extra: &[&str]) -> Output {
    bin()
        .arg("cook")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .args(["--peer", &c.peer(peer), "--timeout", "120", "--trust"])
        .arg(&c.committee_file)
        .args(extra)
        .env("CARGO_HOME", home)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooked_workspace_builds_only_its_own_crates() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("cook-app");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cook-app"),
        &ws,
    );
    let home = tmp.path().join("user-cargo-home");
    std::fs::create_dir_all(&home).unwrap();

    let toml = "idle_interval_ms = 1000\n[builder]\nbackend = \"sandbox\"\n";
    let mut c = Cluster::real_nodes(88, 4, real_builds(), toml);
    // Member 2 takes users' recipe orders over HTTP.
    let port = synchronicity::testing::free_loopback_ports(1)[0];
    let http = format!("127.0.0.1:{port}");
    c.extra_args[2] = vec!["--http".into(), http.clone()];
    std::fs::write(
        c.dir(2).join("node.toml"),
        format!("{toml}[light]\naccept_recipes = true\n"),
    )
    .unwrap();
    for i in 0..4 {
        c.start(i);
    }
    // Ordered through member 0's control socket, read from the workspace itself.
    let mut submitted = None;
    let mut last = String::new();
    for _ in 0..100 {
        let out = bin()
            .args(["submit", "--recipe"])
            .arg(&ws)
            .arg("--node")
            .arg(c.dir(0))
            .env("CARGO_HOME", &home)
            .output()
            .unwrap();
        if out.status.success() {
            submitted = Some(out);
            break;
        }
        last = text(&out);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let out = submitted
        .unwrap_or_else(|| panic!("member 0 refuses the recipe: {last}\n{}", c.log_tail(0)));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let recipe = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("recipe ").map(str::to_string))
        .expect("submit names the recipe");
    let st = c.decided_on(&[0, 1, 2, 3], &id, 600).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced, "{e:?}");
    assert_eq!(e.request.krate, "_recipe");
    assert_eq!(e.request.version, recipe);
    // `status RECIPE_ID` answers for the recipe.
    let by_recipe = c.status(1, Some(&recipe)).await.unwrap();
    assert_eq!(
        by_recipe.entry.as_ref().map(|e| e.entry.request.id()),
        Some(e.request.id())
    );
    c.converge(&[0, 1, 2, 3], 120).await;

    if std::fs::symlink_metadata(BUILDERS_CARGO_HOME).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(BUILDERS_CARGO_HOME).unwrap();
    }
    let target = ws.join("target");

    // Member 1 serves a tampered unit: refused, and nothing reaches target/.
    let store = c.dir(1).join("artifacts");
    let victim = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 1000 && p.file_name().unwrap().len() == 64)
        .expect("member 1 keeps the units");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[500] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let bad = cook(&c, &ws, &home, 1, &[]);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("do not hash"), "{}", text(&bad));
    assert!(
        !target.exists(),
        "a refused bundle leaves no target directory"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cook-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A recipe the group never built (other features): a proven miss.
    let miss = cook(&c, &ws, &home, 2, &["--no-default-features"]);
    assert!(!miss.status.success(), "{}", text(&miss));
    assert!(text(&miss).contains("proven absent"), "{}", text(&miss));
    let fallback = cook(&c, &ws, &home, 2, &["--no-default-features", "--fallback"]);
    assert!(fallback.status.success(), "{}", text(&fallback));
    assert!(!target.exists());

    // The same miss ordered at member 2 (it accepts recipes): cooked once decided.
    let url = format!("http://{http}");
    let ordered = cook(
        &c,
        &ws,
        &home,
        2,
        &["--no-default-features", "--order", &url, "--wait", "300"],
    );
    assert!(ordered.status.success(), "{}", text(&ordered));
    assert!(
        text(&ordered).contains(&format!("ordered at {url}")),
        "{}",
        text(&ordered)
    );
    assert!(target.join("release").is_dir());
    std::fs::remove_file(BUILDERS_CARGO_HOME).unwrap();

    // From an honest member: cooked.
    let good = cook(&c, &ws, &home, 2, &[]);
    assert!(good.status.success(), "{}", text(&good));
    let exports = String::from_utf8_lossy(&good.stdout).to_string();
    assert!(
        exports.contains(&format!("export CARGO_HOME={BUILDERS_CARGO_HOME}")),
        "{exports}"
    );
    assert_eq!(
        std::fs::canonicalize(BUILDERS_CARGO_HOME).unwrap(),
        std::fs::canonicalize(&home).unwrap()
    );

    let build = Command::new("cargo")
        .args(["build", "--release", "-v", "--locked"])
        .current_dir(&ws)
        .env("CARGO_HOME", BUILDERS_CARGO_HOME)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let log = text(&build);
    assert!(build.status.success(), "{log}");
    for dep in ["itoa", "libc", "memchr"] {
        assert!(
            log.contains(&format!("Fresh {dep} v")),
            "{dep} is not Fresh:\n{log}"
        );
        assert!(!log.contains(&format!("Compiling {dep} v")), "{log}");
    }
    for member in ["app", "util"] {
        assert!(log.contains(&format!("Compiling {member} v")), "{log}");
    }
    let run = Command::new(target.join("release/app")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "cooked 4 0\n");
    std::fs::remove_file(BUILDERS_CARGO_HOME).unwrap();
    for i in 0..4 {
        c.stop(i);
    }
}
