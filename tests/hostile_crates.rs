//! The hostile-crate suite: four real `synchronicity node` processes build crates whose build
//! scripts attack the host (`tests/hostile/*.rs`), from a crates.io-like registry on
//! loopback, on each backend (bubblewrap, docker, swarm):
//!
//! - one planted object per crate, where an artifact goes, named by a forged
//!   `compiler-artifact` message written into cargo's own stdout (by `/proc/<cargo>/fd/1`
//!   where its permissions allow, else `pidfd_getfd`): a link to a host canary file
//!   (`hlinkabs`, `hlinkrel`), a link to a member's `bls.key` (`hlinkkey`), a FIFO
//!   (`hfifo`), a link to `/dev/zero` (`hzero`), a file only its owner may read
//!   (`hprivate`), a name with a space (`hspaced`), a name with `..` (`hdotdot`), a host
//!   file's absolute path (`habsolute`) → each `forbidden-output` on every member, for the
//!   reason of that object (read in each member's log);
//! - `hflood`: 1 GiB into cargo's stdout → `output-limit`, the node's memory bounded;
//! - `hescape`: reads of host paths (directly, through `/proc/<pid>/root`), writes outside
//!   its target dir and into the members' directories, a hard link to `/etc/passwd`, a
//!   setuid file of its own named as an artifact → reproduced, with only its own files (the
//!   setuid bit gone), and its report says it ran as the build user with no capability and
//!   `no_new_privs`;
//! - `hdaemon`: a process in a new session that holds cargo's stdout open and tries to
//!   outlive the build → reproduced, none is left;
//! - `plain`, built at the same time as the others: reproduced 4 of 4.
//!
//! For every crate: the canary's bytes never appear in any file below any member's
//! directory, nor a member's key in any artifact store; the group decides the next request.
//!
//! Needs the sandbox root filesystem and the Docker image (`scripts/build-image.sh`, run by
//! `scripts/test.sh`); the Docker case runs when an engine answers and cannot be skipped
//! when `SYNCHRONICITY_REQUIRE_DOCKER=1` (set by `scripts/test.sh` where one does).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::Cluster;
use support::builder::{TOOLCHAIN, docker_tested};
use support::procs::peak_rss_kib;
use support::registry::{LoopbackRegistry, lone_lock};
use support::rules::real_builds;
use synchronicity::protocol::Verdict;
use synchronicity_verify::entry::failure_class;

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

fn hostile_source(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    format!("{}\n{}", read("prelude.rs"), read(&format!("{name}.rs")))
}

/// Every regular file below `dir` (links not followed), but in the workspace's toolchain and
/// cargo home: the host writes those from its own toolchain and the registry, and every
/// build sees them read-only (1.4 GB to read for nothing).
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if m.is_dir() && (e.file_name() == "rustup-home" || e.file_name() == "cargo-home") {
            continue;
        }
        if m.is_dir() {
            files_below(&e.path(), out);
        } else if m.is_file() {
            out.push(e.path());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((first, rest)) = needle.split_first() else {
        return true;
    };
    hay.iter()
        .enumerate()
        .filter(|(_, b)| *b == first)
        .any(|(i, _)| hay[i + 1..].starts_with(rest))
}

/// Host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if contains(&cmd, needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// The suite on `backend`: every hostile crate, or those of `only`. `swarm-workers` is
/// the swarm backend building on worker engines (`swarm_workers = true`).
async fn hostile_crates_on(backend: &str, seed: u8, only: Option<&[&str]>) {
    let builder_toml = match backend {
        "swarm-workers" => "backend = \"swarm\"\nswarm_workers = true".to_string(),
        b => format!("backend = \"{b}\""),
    };
    let reg = LoopbackRegistry::start();
    let mut c = Cluster::real_nodes(seed, 4, real_builds(), "");
    let root = c.root.path().to_path_buf();
    let canary_text = format!("CANARY-{}", hex::encode(rand_bytes()));
    let canary = root.join("canary");
    std::fs::write(&canary, &canary_text).unwrap();
    let key = c.dir(0).join("bls.key");
    let key_text = std::fs::read(&key).unwrap();
    let sleep = format!(
        "{}",
        100_000 + u32::from_le_bytes(rand_bytes()[..4].try_into().unwrap()) % 100_000
    );
    let lib = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/lib.rs"),
    )
    .unwrap();
    let crates = [
        "hlinkabs",
        "hlinkrel",
        "hlinkkey",
        "hfifo",
        "hzero",
        "hprivate",
        "hspaced",
        "hdotdot",
        "habsolute",
        "hflood",
        "hescape",
        "hdaemon",
    ];
    let crates: Vec<&str> = crates
        .into_iter()
        .filter(|c| only.is_none_or(|o| o.contains(c)))
        .collect();
    for &name in &crates {
        let script = hostile_source(&name[1..])
            .replace("@CANARY@", &canary.display().to_string())
            .replace("@KEY@", &key.display().to_string())
            .replace("@ROOT@", &root.display().to_string())
            .replace("@SLEEP@", &sleep);
        let lock = lone_lock(name, "0.1.0");
        reg.publish(
            name,
            "0.1.0",
            &[
                ("Cargo.lock", lock.as_str()),
                ("build.rs", script.as_str()),
                ("src/lib.rs", lib.as_str()),
            ],
            &[],
        );
    }
    for name in ["plain", "after"] {
        reg.publish_lone(name, "0.1.0");
    }
    let toml = format!(
        "idle_interval_ms = 1000\n[builder]\n{builder_toml}\nmax_parallel = 4\n{}",
        reg.node_toml()
    );
    for i in 0..4 {
        std::fs::write(c.dir(i).join("node.toml"), &toml).unwrap();
    }
    for i in 0..4 {
        c.start(i);
    }
    // Every process below a sandbox's fixed paths, sampled while the group builds: none may
    // run as root on the host.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let watching = watching.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeMap::<u32, u32>::new();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                for pid in processes_with("/opt/rustwide/") {
                    let argv0 = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let argv0 = argv0.split(|b| *b == 0).next().unwrap_or_default().to_vec();
                    // The sandbox's own supervisors (bubblewrap, the docker client) name the
                    // paths in their arguments; build processes run FROM them.
                    if !argv0.starts_with(b"/opt/rustwide/")
                        && !argv0.ends_with(b"build-script-build")
                    {
                        continue;
                    }
                    if let Ok(m) = std::fs::metadata(format!("/proc/{pid}")) {
                        seen.insert(pid, m.uid());
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    let mut ids = Vec::new();
    // HOSTILE_ONLY=name,name builds only those (to look at one case); the checks of the
    // whole suite then fail, by design.
    let only = std::env::var("HOSTILE_ONLY").unwrap_or_default();
    for (i, name) in crates.iter().chain(&["plain"]).enumerate() {
        if !only.is_empty() && !only.split(',').any(|o| o == *name) {
            continue;
        }
        ids.push((*name, c.submit_with(i % 4, name, "0.1.0", None).await));
    }
    let mut verdicts = Vec::new();
    let mut entries = Vec::new();
    for (name, id) in &ids {
        let st = c.decided_on(&[0, 1, 2, 3], id, 600).await;
        let e = &st[0].entry.as_ref().unwrap().entry;
        for s in &st {
            assert_eq!(
                s.entry.as_ref().unwrap().entry.digest,
                e.digest,
                "{backend} {name}: member {} disagrees",
                s.member
            );
        }
        verdicts.push((*name, e.verdict, failure_class(&e.digest)));
        entries.push((*name, e.clone()));
    }
    let planted = format!("{TRIPLE}/release/libplanted.rlib");
    let not_regular = format!("artifact {planted} is not a regular file");
    let bad_name = |n: &str| format!("artifact name {n:?} is not a plain relative path");
    let forbidden = |reason: String| (Verdict::Failed, Some("forbidden-output"), Some(reason));
    let expect = [
        ("hlinkabs", forbidden(not_regular.clone())),
        ("hlinkrel", forbidden(not_regular.clone())),
        ("hlinkkey", forbidden(not_regular.clone())),
        ("hfifo", forbidden(not_regular.clone())),
        ("hzero", forbidden(not_regular.clone())),
        (
            "hprivate",
            forbidden(format!("artifact {planted} is not readable by everyone")),
        ),
        (
            "hspaced",
            forbidden(bad_name(&format!("{TRIPLE}/release/lib spaced.rlib"))),
        ),
        (
            "hdotdot",
            forbidden(bad_name(&format!(
                "{}{}",
                "../".repeat(40),
                canary.display().to_string().trim_start_matches('/')
            ))),
        ),
        (
            "habsolute",
            forbidden(bad_name(&canary.display().to_string())),
        ),
        ("hflood", (Verdict::Failed, Some("output-limit"), None)),
        ("hescape", (Verdict::Reproduced, None, None)),
        ("hdaemon", (Verdict::Reproduced, None, None)),
        ("plain", (Verdict::Reproduced, None, None)),
    ];
    for (name, verdict, class) in &verdicts {
        let (want_name, (want_verdict, want_class, reason)) =
            expect.iter().find(|(n, _)| n == name).unwrap();
        let id = &ids.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(
            (name, verdict, class),
            (want_name, want_verdict, want_class),
            "{backend}: {:?}\n{}",
            entries.iter().find(|(n, _)| n == name).map(|(_, e)| e),
            (0..4)
                .map(|i| lines_about(&c.dir(i).join("node.log"), id))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Each member refused the crate for the reason of the one object it planted.
        let Some(reason) = reason else { continue };
        for i in 0..4 {
            let log = std::fs::read_to_string(c.dir(i).join("node.log")).unwrap();
            assert!(
                log.lines()
                    .any(|l| l.contains(id.as_str())
                        && l.contains(&format!("build failed: {reason}"))),
                "{backend} {name} member {i}: no line says {reason:?}"
            );
        }
    }
    assert_eq!(
        verdicts.len(),
        crates.len() + 1,
        "every crate and plain decided"
    );
    // A reproduced build's copies are its own lib (and, for hescape, the file it named).
    for (name, id) in &ids {
        let own = format!("{TRIPLE}/release/lib{name}.rlib");
        let suid = format!("{TRIPLE}/release/libsuid.rlib");
        for i in 0..4 {
            let dir = c.dir(i).join("work/artifacts").join(id);
            let mut files = Vec::new();
            files_below(&dir, &mut files);
            let mut names: Vec<String> = files
                .iter()
                .map(|f| f.strip_prefix(&dir).unwrap().display().to_string())
                .collect();
            names.sort();
            let expected: Vec<String> = match verdicts.iter().find(|v| v.0 == *name).unwrap().1 {
                Verdict::Reproduced if *name == "hescape" => vec![own.clone(), suid.clone()],
                Verdict::Reproduced => vec![own.clone()],
                _ => vec![],
            };
            assert_eq!(names, expected, "{backend} {name} member {i}");
        }
    }
    // The node's memory stayed bounded through 1 GiB of a build's output.
    for i in 0..4 {
        let pid = c.children[i].as_ref().unwrap().id();
        let kib = peak_rss_kib(pid);
        eprintln!("{backend}: member {i} peak RSS {} MiB", kib >> 10);
        assert!(
            kib > 0 && kib < 256 << 10,
            "{backend}: member {i} peak RSS {kib} KiB"
        );
    }
    // hescape ran as the build user, with no capability and no_new_privs, reached nothing,
    // and its setuid file came out as a plain file.
    let escape_id = &ids.iter().find(|(n, _)| *n == "hescape").unwrap().1;
    for i in 0..4 {
        let dir = c.dir(i).join("work/artifacts").join(escape_id);
        let rlib = std::fs::read(dir.join(TRIPLE).join("release/libhescape.rlib")).unwrap();
        let report = format!(
            "ESCAPE-REPORT uid={} nnp=1 capeff=0000000000000000 capbnd=0000000000000000",
            synchronicity::builder::BUILD_UID
        );
        assert!(
            contains(&rlib, report.as_bytes()),
            "{backend} member {i}: {}",
            String::from_utf8_lossy(&rlib)
                .lines()
                .find(|l| l.contains("ESCAPE-REPORT"))
                .unwrap_or("no report")
        );
        for marker in ["READ ", "WROTE ", "LISTED ", "HARDLINKED"] {
            assert!(
                !contains(&rlib, marker.as_bytes()),
                "{backend} member {i}: the build reached the host ({marker})"
            );
        }
        let suid = dir.join(TRIPLE).join("release/libsuid.rlib");
        let mode = std::fs::metadata(&suid).unwrap().mode();
        assert_eq!(mode & 0o7000, 0, "{backend} member {i}: {mode:o}");
    }
    // No file below any member's directory holds the canary; no artifact store or log holds
    // member 0's key; nothing was written outside the builds' own disks.
    for i in 0..4 {
        let mut files = Vec::new();
        files_below(&c.dir(i), &mut files);
        assert!(files.len() > 10, "{}", files.len());
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_default();
            assert!(
                !contains(&bytes, canary_text.as_bytes()),
                "{backend}: the canary is in {}",
                f.display()
            );
            assert!(
                !f.ends_with("hostile-was-here"),
                "{backend}: {} written",
                f.display()
            );
            let store = f
                .components()
                .any(|c| c.as_os_str() == "artifacts" || c.as_os_str() == "logs");
            if store {
                assert!(
                    !contains(&bytes, &key_text),
                    "{backend}: member 0's key is in {}",
                    f.display()
                );
            }
        }
    }
    // No process of hdaemon outlived its build (bounded wait: the sandbox is torn down when
    // the build ends, before the member commits).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with(&format!("sleep {sleep}")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{backend}: hdaemon's process outlived its build"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    assert!(!seen.is_empty(), "{backend}: no build process was seen");
    assert!(
        seen.values()
            .all(|uid| *uid == synchronicity::builder::BUILD_UID),
        "{backend}: build processes by uid: {seen:?}"
    );
    // And the group goes on.
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

/// The lines of a member's log about request `id` (for a failure's message).
fn lines_about(log: &Path, id: &str) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(id) || l.contains(&id[..16]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_crates_on_the_sandbox_backend() {
    hostile_crates_on("sandbox", 91, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_crates_on_the_docker_backend() {
    if docker_tested() {
        hostile_crates_on("docker", 92, None).await;
    }
}

/// The swarm backend (a swarm job per build, the build by `docker exec` in its task) meets
/// the same attacks with the same answers. It shares the docker backend's exec, output and
/// artifact code, so CI runs the crates that attack what differs (the task's user and
/// network, its removal, the node's keys): a link to a key, the output flood, the escapes
/// and the daemon; `SYNCHRONICITY_HOSTILE_ALL=1` runs every crate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_crates_on_the_swarm_backend() {
    if docker_tested() {
        let all = std::env::var("SYNCHRONICITY_HOSTILE_ALL").is_ok_and(|v| v == "1");
        let subset: &[&str] = &["hlinkkey", "hflood", "hescape", "hdaemon"];
        hostile_crates_on("swarm", 93, (!all).then_some(subset)).await;
    }
}

/// The swarm backend on worker engines (two Docker engines in containers,
/// `scripts/swarm-workers.sh`): the build's files come back as a tar stream from a task on
/// another engine, so CI runs the crates that attack that path (links, a FIFO, an
/// unreadable file, names that leave the directory, the output flood, the escapes, the
/// daemon that outlives its build); `SYNCHRONICITY_HOSTILE_ALL=1` runs every crate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_crates_on_swarm_workers() {
    assert!(docker_tested(), "swarm workers need a Docker engine");
    support::builder::swarm_workers(&["up", "2"]);
    let all = std::env::var("SYNCHRONICITY_HOSTILE_ALL").is_ok_and(|v| v == "1");
    let subset: &[&str] = &[
        "hlinkabs", "hfifo", "hprivate", "hdotdot", "hflood", "hescape", "hdaemon",
    ];
    hostile_crates_on("swarm-workers", 94, (!all).then_some(subset)).await;
}

/// A request that says its lockfile is the one the `.crate` ships, and carries another (or
/// names a crate that ships none), fails `invalid-request` before any build; the honest
/// request of the same crate builds. Every member runs this same check on the same `.crate`
/// (the builder's `build`), so every member refuses the lie alike.
#[test]
fn a_request_that_lies_about_its_lockfile_fails_invalid_request() {
    use synchronicity::builder::{Backend, Builder, BuilderConfig, FailureClass, Outcome};
    use synchronicity::request::PinnedRequest;
    let reg = LoopbackRegistry::start();
    reg.publish_lone("shipsone", "0.1.0");
    reg.publish(
        "shipsnone",
        "0.1.0",
        &[("src/lib.rs", "pub fn answer() -> u32 { 7 }\n")],
        &[],
    );
    let work = tempfile::tempdir().unwrap();
    let mut cfg = BuilderConfig::new(work.path(), TOOLCHAIN);
    cfg.backend = Backend::Sandbox;
    cfg.registry = Some((format!("{}/index", reg.base), format!("{}/dl", reg.base)));
    let b = Builder::new(&cfg).unwrap();
    let class = |p: &PinnedRequest| match b.build(p, &|_| {}).unwrap().outcome {
        Outcome::Success(_) => None,
        Outcome::Failure { class, .. } => Some(class),
    };
    let honest = b.pin("shipsone", "0.1.0", None, TRIPLE).unwrap();
    assert!(honest.request.lockfile_shipped);
    assert_eq!(class(&honest), None, "the honest request builds");
    // The shipped claim with another lockfile (a comment more is enough).
    let lie = PinnedRequest::new(
        honest.request.clone(),
        format!("# chosen by the submitter\n{}", honest.lockfile),
    );
    assert!(lie.request.lockfile_shipped && lie.request.id() != honest.request.id());
    assert_eq!(class(&lie), Some(FailureClass::InvalidRequest));
    // The shipped claim for a crate that ships no lockfile.
    let mut none = b.pin("shipsnone", "0.1.0", None, TRIPLE).unwrap();
    assert!(!none.request.lockfile_shipped);
    assert_eq!(class(&none), None);
    none.request.lockfile_shipped = true;
    assert_eq!(class(&none), Some(FailureClass::InvalidRequest));
}
