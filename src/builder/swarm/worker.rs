//! Builds on other engines (`[builder] swarm_workers = true`): the swarm's worker nodes
//! labelled `synchronicity.worker=true`, whose engine API the node reaches at the endpoint
//! of their `synchronicity.engine` label (the operator's labels: managers set them, a
//! worker cannot). A worker has none of the node's files and is as untrusted as a build:
//!
//! - **Image**: the sandbox image with the workspace's toolchain in it ([`worker_image`],
//!   built once per sandbox image and toolchain on this host), sent to each worker that
//!   lacks it by `docker save | docker load` through its engine, never pulled.
//! - **Inputs**, per build, streamed into the task's memory filesystems through its engine
//!   (`docker exec -i … tar -x`, as root of the task: the build user can read them, not
//!   change them): the pristine source, and the cargo home: cargo's proxies, its
//!   configuration, the index, and the `.crate` files and sources of the packages the
//!   source's `Cargo.lock` names.
//! - **Results** streamed back once the build ended and every process of the build user is
//!   killed: its target directory and its two output files, as tar streams unpacked by
//!   `unpack.rs` (hostile input: bounded, nothing written through a link) onto a disk of
//!   the build's size on this host, where `artifacts.rs` checks them exactly as a local
//!   build's. The exit code is the worker engine's record of the exec, the OOM kills and
//!   refused forks its cgroup's own counters, read by the node.
//! - **Disk**: a worker has no loop disk for the build: the target directory and `/tmp` are
//!   memory filesystems of the disk limit each, counted in the task's memory, whose limit is
//!   the memory limit plus the disk limit (docs/decisions.md).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::BuildError;
use super::super::docker::docker;
use super::super::limits::Exceeded;
use super::super::sandbox::{BUILD_UID, SOURCE_IN_SANDBOX};
use super::super::workspace::BuildWorkspace;
use super::detached::RUN_IN_SANDBOX;
use super::engine::Engine;
use super::unpack::{Unpack, unpack};

/// A worker task's cargo home (a memory filesystem over the image's empty directory).
pub(super) const CARGO_HOME_IN_SANDBOX: &str = "/opt/rustwide/cargo-home";
/// The target directory in a task.
pub(super) const TARGET_IN_SANDBOX: &str = "/opt/rustwide/target";

fn backend(msg: String) -> BuildError {
    BuildError::Backend(format!("swarm: {msg}"))
}

/// How long one short command on a worker's engine may take (an inspect, a `stat`).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long streaming a build's inputs in, or its results out, may take.
pub(super) const STREAM_TIMEOUT: Duration = Duration::from_secs(600);
/// How long sending the workers' image to one worker may take.
const IMAGE_TIMEOUT: Duration = Duration::from_secs(1800);

/// `docker --host <engine> args…`, killed past [`CALL_TIMEOUT`] (a worker that hangs must
/// not stall the watcher): its stdout, trimmed.
pub(super) fn docker_on(engine: &Engine, args: &[&str]) -> Result<String, BuildError> {
    let mut cmd = Command::new("docker");
    cmd.arg("--host").arg(engine.host()).args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Bounded::spawn(cmd, CALL_TIMEOUT)?;
    let out = p
        .child_stdout()
        .map(|o| read_capped(o, 1 << 20))
        .unwrap_or_default();
    let err = p
        .child_stderr()
        .map(|e| read_capped(e, 4096))
        .unwrap_or_default();
    let status = p.finish()?;
    if !status.success() {
        return Err(backend(format!(
            "docker {} on {}: {}",
            args.first().unwrap_or(&""),
            engine.host(),
            String::from_utf8_lossy(&err).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

fn read_capped(r: impl Read, cap: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.take(cap).read_to_end(&mut v);
    v
}

/// A child process killed once it outlives its time (by a watchdog thread, through the
/// shared handle: never a bare pid that may have been reused).
struct Bounded {
    child: Arc<Mutex<Child>>,
    done: Arc<AtomicBool>,
    stdout: Option<ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    stdin: Option<ChildStdin>,
}

impl Bounded {
    fn spawn(mut cmd: Command, timeout: Duration) -> Result<Self, BuildError> {
        let mut child = cmd.spawn().map_err(|e| backend(format!("docker: {e}")))?;
        let (stdout, stderr, stdin) =
            (child.stdout.take(), child.stderr.take(), child.stdin.take());
        let child = Arc::new(Mutex::new(child));
        let done = Arc::new(AtomicBool::new(false));
        let (c, d) = (child.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !d.load(Ordering::Acquire) {
                if start.elapsed() > timeout {
                    let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                    if !d.load(Ordering::Acquire) {
                        let _ = c.kill();
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(Self {
            child,
            done,
            stdout,
            stderr,
            stdin,
        })
    }

    fn child_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    fn child_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.stderr.take()
    }

    fn child_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Waits for the child (the watchdog still runs: a child that does not end is killed
    /// at its time), then stops the watchdog.
    fn finish(self) -> Result<ExitStatus, BuildError> {
        drop(self.stdin);
        let status = loop {
            let polled = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait();
            match polled {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(backend(format!("docker: {e}"))),
            }
        };
        self.done.store(true, Ordering::Release);
        Ok(status)
    }
}

/// A worker node's id and its engine.
pub(super) type Worker = (String, Engine);

/// The swarm's ready, active worker nodes for builds (their node ids and engines), and the
/// ids of the labelled nodes that are not (down, drained, an engine label that is no
/// endpoint).
pub(super) fn workers() -> Result<(Vec<Worker>, Vec<String>), BuildError> {
    let ids = docker(&[
        "node",
        "ls",
        "-q",
        "--filter",
        "node.label=synchronicity.worker=true",
    ])?;
    let (mut out, mut unusable) = (Vec::new(), Vec::new());
    for id in ids.split_whitespace() {
        let info = docker(&[
            "node",
            "inspect",
            "--format",
            "{{.Status.State}} {{.Spec.Availability}} {{index .Spec.Labels \"synchronicity.engine\"}}",
            id,
        ])?;
        match info.split_whitespace().collect::<Vec<_>>()[..] {
            ["ready", "active", endpoint] => match Engine::at(endpoint) {
                Ok(e) => out.push((id.to_string(), e)),
                Err(e) => {
                    tracing::warn!(node = id, "swarm: worker skipped: {e}");
                    unusable.push(id.to_string());
                }
            },
            _ => unusable.push(id.to_string()),
        }
    }
    Ok((out, unusable))
}

/// The engine of worker node `node`, by its label now.
pub(super) fn engine_of(node: &str) -> Result<Engine, BuildError> {
    let endpoint = docker(&[
        "node",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"synchronicity.engine\"}}",
        node,
    ])?;
    Engine::at(endpoint.trim())
}

/// Held while the workers' image is built or sent, by every builder on this host (builds
/// of several members start together: one builds and sends it, the others find it).
fn image_lock() -> Result<std::fs::File, BuildError> {
    let path = std::env::temp_dir().join("synchronicity-worker-image.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| backend(format!("{}: {e}", path.display())))?;
    f.lock()
        .map_err(|e| backend(format!("{}: {e}", path.display())))?;
    Ok(f)
}

/// The image builds run in on workers, one per sandbox image and toolchain: the sandbox
/// image `base` (tag `base_tag`) with the workspace's toolchain (its `share/` of
/// documentation left out) at `/opt/rustwide/rustup-home` and the empty directories a task
/// mounts over; cargo's home comes with each build's inputs. Built once (tagged by the
/// two); its id.
pub(super) fn worker_image(
    ws: &BuildWorkspace,
    base: &str,
    base_tag: &str,
) -> Result<String, BuildError> {
    let key = format!("{base}\n{}\n", ws.toolchain_name());
    let tag = format!(
        "synchronicity-worker-sandbox:{}-{}",
        ws.toolchain(),
        hex::encode(&crate::crypto::sha256(key.as_bytes())[..6])
    );
    let inspect = || docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    if let Ok(id) = inspect() {
        return Ok(id);
    }
    let _lock = image_lock()?;
    if let Ok(id) = inspect() {
        return Ok(id);
    }
    tracing::info!(%tag, "swarm: building the workers' image (the sandbox image and the toolchain)");
    let mut child = Command::new("docker")
        .args(["build", "--quiet", "--tag", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| backend(format!("docker build: {e}")))?;
    let stdin = child.stdin.take().expect("piped");
    let context = write_context(stdin, ws, base_tag);
    let out = child
        .wait_with_output()
        .map_err(|e| backend(format!("docker build: {e}")))?;
    context?;
    if !out.status.success() {
        return Err(backend(format!(
            "building the workers' image: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    inspect()
}

/// The build context of the workers' image, as a tar stream.
fn write_context(to: impl Write, ws: &BuildWorkspace, base_tag: &str) -> Result<(), BuildError> {
    let err = |e: std::io::Error| backend(format!("the workers' image: {e}"));
    let mut b = tar::Builder::new(to);
    b.follow_symlinks(false);
    let dockerfile = format!(
        "FROM {base_tag}\nCOPY rustup-home /opt/rustwide/rustup-home\nCOPY empty /opt/rustwide/workdir\nCOPY empty /opt/rustwide/cargo-home\n"
    );
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .map_err(err)?;
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir.clone(), "empty/", std::io::empty())
        .map_err(err)?;
    let rustup = ws.rustup_home();
    b.append_path_with_name(rustup.join("settings.toml"), "rustup-home/settings.toml")
        .map_err(err)?;
    for empty in ["update-hashes", "downloads", "tmp"] {
        b.append_data(
            &mut dir.clone(),
            format!("rustup-home/{empty}/"),
            std::io::empty(),
        )
        .map_err(err)?;
    }
    let tc = ws.toolchain_name();
    let tc_dir = rustup.join("toolchains").join(&tc);
    for part in ["bin", "lib", "libexec", "etc"] {
        let p = tc_dir.join(part);
        if p.exists() {
            b.append_dir_all(format!("rustup-home/toolchains/{tc}/{part}"), &p)
                .map_err(err)?;
        }
    }
    b.into_inner().map_err(err)?.flush().map_err(err)
}

/// The workers that were sent the image already (by node id).
#[derive(Default)]
pub(super) struct ImageSent {
    nodes: Mutex<HashSet<String>>,
}

impl ImageSent {
    /// Sends `image` to each worker that lacks it (`docker save | docker load` through its
    /// engine, one sender on this host at a time); the ids of the workers that have it (a
    /// worker that could not take it is left out, with a warning).
    pub(super) fn ensure(&self, image: &str, workers: &[Worker]) -> Vec<String> {
        let mut sent = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let has = |engine: &Engine| {
            docker_on(engine, &["image", "inspect", "--format", "{{.Id}}", image])
                .is_ok_and(|id| id == image)
        };
        let mut ready = Vec::new();
        for (node, engine) in workers {
            let ok = sent.contains(node) || has(engine) || {
                let _lock = image_lock();
                has(engine) || send_image(image, engine).is_ok()
            };
            if ok {
                sent.insert(node.clone());
                ready.push(node.clone());
            }
        }
        ready
    }
}

fn send_image(image: &str, engine: &Engine) -> Result<(), BuildError> {
    tracing::info!(engine = %engine.host(), "swarm: sending the workers' image");
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| backend(format!("docker save: {e}")))?;
    let Some(stdout) = save.stdout.take() else {
        let _ = save.kill();
        let _ = save.wait();
        return Err(backend("docker save: no output".into()));
    };
    let mut cmd = Command::new("docker");
    cmd.args(["--host", &engine.host(), "load", "--quiet"])
        .stdin(stdout)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Bounded: a worker that stalls the load is killed at its time (and `save` with it).
    let mut load = Bounded::spawn(cmd, IMAGE_TIMEOUT)?;
    let stderr = load
        .child_stderr()
        .map(|e| read_capped(e, 4096))
        .unwrap_or_default();
    let loaded = load.finish()?;
    let _ = save.kill();
    let saved = save
        .wait()
        .map_err(|e| backend(format!("docker save: {e}")))?;
    if !saved.success() || !loaded.success() {
        let why = String::from_utf8_lossy(&stderr).trim().to_string();
        tracing::warn!(engine = %engine.host(), "swarm: the workers' image was not sent: {why}");
        return Err(backend(format!(
            "sending the image to {}: {why}",
            engine.host()
        )));
    }
    Ok(())
}

/// Streams `job`'s inputs into the running `container` on `engine`: the pristine source,
/// and the cargo home: its proxies and configuration, its registry index, and the packages
/// the source's `Cargo.lock` names.
pub(super) fn send_inputs(
    engine: &Engine,
    container: &str,
    source: &Path,
    ws: &BuildWorkspace,
) -> Result<(), BuildError> {
    extract_in(engine, container, SOURCE_IN_SANDBOX, |b| {
        b.append_dir_all(".", source)
    })?;
    let cargo_home = ws.cargo_home();
    let registry = cargo_home.join("registry");
    let lock = std::fs::read_to_string(source.join("Cargo.lock")).unwrap_or_default();
    let packages = lock_packages(&lock);
    extract_in(engine, container, CARGO_HOME_IN_SANDBOX, |b| {
        b.append_dir_all("bin", cargo_home.join("bin"))?;
        b.append_path_with_name(cargo_home.join("config.toml"), "config.toml")?;
        if registry.join("index").is_dir() {
            b.append_dir_all("registry/index", registry.join("index"))?;
        }
        for kind in ["cache", "src"] {
            let Ok(regs) = std::fs::read_dir(registry.join(kind)) else {
                continue;
            };
            for reg in regs.flatten() {
                let reg_name = reg.file_name().to_string_lossy().to_string();
                for (name, version) in &packages {
                    let (file, dir) = (
                        reg.path().join(format!("{name}-{version}.crate")),
                        reg.path().join(format!("{name}-{version}")),
                    );
                    if kind == "cache" && file.is_file() {
                        b.append_path_with_name(
                            &file,
                            format!("registry/cache/{reg_name}/{name}-{version}.crate"),
                        )?;
                    } else if kind == "src" && dir.is_dir() {
                        b.append_dir_all(
                            format!("registry/src/{reg_name}/{name}-{version}"),
                            &dir,
                        )?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// The registry packages (name, version) a `Cargo.lock` names.
fn lock_packages(lock: &str) -> Vec<(String, String)> {
    let Ok(t) = lock.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(packages) = t.get("package").and_then(|p| p.as_array()) else {
        return Vec::new();
    };
    packages
        .iter()
        .filter(|p| {
            p.get("source")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let version = p.get("version")?.as_str()?;
            // Names and versions become path components below.
            let safe = |s: &str| {
                !s.is_empty()
                    && !s.starts_with('.')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
            };
            (safe(name) && safe(version)).then(|| (name.to_string(), version.to_string()))
        })
        .collect()
}

/// `tar -x` in `dir` of `container`, as its root, of the stream `fill` writes.
fn extract_in(
    engine: &Engine,
    container: &str,
    dir: &str,
    fill: impl FnOnce(&mut tar::Builder<&mut dyn Write>) -> std::io::Result<()>,
) -> Result<(), BuildError> {
    let mut cmd = Command::new("docker");
    cmd.arg("--host").arg(engine.host()).args([
        "exec",
        "-i",
        "--user",
        "0:0",
        container,
        "tar",
        "-x",
        "--no-same-owner",
        "-C",
        dir,
    ]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut p = Bounded::spawn(cmd, STREAM_TIMEOUT)?;
    let stderr = p.child_stderr();
    let errors =
        std::thread::spawn(move || stderr.map(|e| read_capped(e, 4096)).unwrap_or_default());
    let written = match p.child_stdin() {
        Some(mut stdin) => {
            let w: &mut dyn Write = &mut stdin;
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            fill(&mut b).and_then(|()| b.finish())
        }
        None => Ok(()),
    };
    let status = p.finish()?;
    let errors = errors.join().unwrap_or_default();
    if let Err(e) = written {
        return Err(backend(format!("streaming the inputs to {dir}: {e}")));
    }
    if !status.success() {
        return Err(backend(format!(
            "unpacking the inputs in {dir}: {}",
            String::from_utf8_lossy(&errors).trim()
        )));
    }
    Ok(())
}

/// Bytes the build wrote to its output files so far (their sizes in the task; a file the
/// build removed counts as 0).
pub(super) fn written(engine: &Engine, container: &str) -> Result<u64, BuildError> {
    let script = format!(
        "stat --format=%s {RUN_IN_SANDBOX}/stdout {RUN_IN_SANDBOX}/stderr 2>/dev/null; true"
    );
    let out = docker_on(
        engine,
        &["exec", "--user", "0:0", container, "sh", "-c", &script],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum())
}

/// The task's cgroup counters (refused forks, OOM kills) and whether its target directory
/// or `/tmp` is full, read in the task as its root (the kernel's files: the build cannot
/// write them; cgroup v1 or v2, whichever the worker has). An unreadable answer is an
/// error, never zero.
pub(super) fn counters(engine: &Engine, container: &str) -> Result<(Exceeded, bool), BuildError> {
    let script = format!(
        "cd /sys/fs/cgroup || exit 1; \
         for f in pids/pids.events pids.events memory/memory.oom_control memory.events; do \
         [ -f $f ] && sed \"s|^|$f |\" $f; done; \
         stat -f --format='free %a' {TARGET_IN_SANDBOX} /tmp"
    );
    let out = docker_on(
        engine,
        &["exec", "--user", "0:0", container, "sh", "-c", &script],
    )?;
    let (mut e, full, seen) = parse_counters(&out);
    if !seen {
        return Err(backend(format!("the task's cgroup counters: {out:?}")));
    }
    let oom = docker_on(
        engine,
        &["inspect", "--format", "{{.State.OOMKilled}}", container],
    )?;
    if oom == "true" {
        e.oom_kills = e.oom_kills.max(1);
    }
    Ok((e, full))
}

/// The counters in `FILE KEY VALUE` lines and the free blocks in `free N` lines; whether
/// both a process and a memory counter file were read.
fn parse_counters(out: &str) -> (Exceeded, bool, bool) {
    let mut e = Exceeded::default();
    let (mut full, mut pids, mut memory) = (false, false, false);
    for line in out.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let number = |s: &str| s.parse::<u64>().ok();
        match parts[..] {
            ["free", n] => full |= number(n).is_some_and(|n| n < 16),
            [file, key, n] => {
                let Some(n) = number(n) else { continue };
                match (file, key) {
                    ("pids/pids.events" | "pids.events", "max") => {
                        pids = true;
                        e.fork_refusals = e.fork_refusals.max(n);
                    }
                    ("memory/memory.oom_control" | "memory.events", "oom_kill") => {
                        memory = true;
                        e.oom_kills = e.oom_kills.max(n);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (e, full, pids && memory)
}

/// Ends every process of the build user in the task (its PID 1 is another user's): the
/// task's process limit is raised a little first, so that the exec can start even when the
/// build filled it, then `kill -KILL -1` as that user, twice (for one forked between).
pub(super) fn kill_build(
    engine: &Engine,
    container: &str,
    processes: u32,
) -> Result<(), BuildError> {
    let raised = processes.saturating_add(32).to_string();
    docker_on(engine, &["update", "--pids-limit", &raised, container])?;
    let user = format!("{BUILD_UID}:{BUILD_UID}");
    for _ in 0..2 {
        // `kill -1` exits 1 when nothing was left to signal.
        let _ = docker_on(
            engine,
            &["exec", "--user", &user, container, "kill", "-KILL", "-1"],
        );
    }
    Ok(())
}

/// How a build's results came back.
pub(super) enum Fetched {
    /// Everything, onto the host's disk.
    All,
    /// More than that disk holds (bytes or inodes): the build filled a disk of its size.
    DiskFull,
}

/// Streams the target directory and the output files of the task (whose build processes
/// [`kill_build`] ended) back onto the host disk mounted at `disk` (`target/`, `run/`),
/// at most `max_bytes` of target files.
pub(super) fn fetch_results(
    engine: &Engine,
    container: &str,
    disk: &Path,
    max_bytes: u64,
    output_cap: u64,
) -> Result<Fetched, BuildError> {
    let user = format!("{BUILD_UID}:{BUILD_UID}");
    let target = disk.join("target");
    let run = disk.join("run");
    std::fs::create_dir_all(&run).map_err(|e| backend(format!("{}: {e}", run.display())))?;
    // The output files first (small, and the log matters even for a full disk).
    let output_bound = output_cap.saturating_mul(2).saturating_add(1 << 20);
    pull(engine, container, &user, RUN_IN_SANDBOX, &run, output_bound)?;
    pull(
        engine,
        container,
        &user,
        TARGET_IN_SANDBOX,
        &target,
        max_bytes,
    )
}

/// `tar -c` of `dir` in the task, as `user`, unpacked into `dest`.
fn pull(
    engine: &Engine,
    container: &str,
    user: &str,
    dir: &str,
    dest: &Path,
    max_bytes: u64,
) -> Result<Fetched, BuildError> {
    let mut cmd = Command::new("docker");
    cmd.arg("--host").arg(engine.host()).args([
        "exec",
        "--user",
        user,
        container,
        "tar",
        "-c",
        // Holes stay holes (a sparse file does not become its length in zeros), and a
        // file the build made unreadable is left out (the host's walker would refuse it
        // as an artifact either way).
        "--sparse",
        "--ignore-failed-read",
        "-C",
        dir,
        ".",
    ]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut p = Bounded::spawn(cmd, STREAM_TIMEOUT)?;
    let (unpacked, cut) = match p.child_stdout() {
        Some(stdout) => {
            // Read to its end (tar pads the stream), at most a little past the bound: a
            // stream cut there is refused, not taken for a whole one.
            let mut limited = stdout.take(max_bytes.saturating_add(64 << 20));
            let unpacked = unpack(&mut limited, dest, max_bytes);
            let _ = std::io::copy(&mut limited, &mut std::io::sink());
            (unpacked, limited.limit() == 0)
        }
        None => (Err(Unpack::Refused("no stream".into())), false),
    };
    let status = p.finish()?;
    let done = match unpacked {
        Ok(done) => done,
        Err(Unpack::NoSpace) => return Ok(Fetched::DiskFull),
        Err(Unpack::Refused(e)) => return Err(backend(format!("{dir}: {e}"))),
    };
    if cut {
        return Err(backend(format!("{dir}: the stream goes on past its bound")));
    }
    if !status.success() {
        return Err(backend(format!(
            "streaming {dir} back: tar exited with {status}"
        )));
    }
    tracing::debug!(
        dir,
        files = done.files,
        bytes = done.bytes,
        skipped = done.skipped,
        "swarm: results streamed back"
    );
    Ok(Fetched::All)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockfile_names_its_registry_packages_only() {
        let lock = r#"
version = 4
[[package]]
name = "app"
version = "0.1.0"
[[package]]
name = "itoa"
version = "1.0.15"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"
[[package]]
name = "../etc"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "g"
version = "1.0.0"
source = "git+https://example.org/g#abc"
"#;
        assert_eq!(
            lock_packages(lock),
            vec![("itoa".to_string(), "1.0.15".to_string())]
        );
        assert!(lock_packages("not toml [").is_empty());
    }

    #[test]
    fn counters_are_read_from_v1_or_v2_files_only() {
        let v1 = "pids/pids.events max 3\nmemory/memory.oom_control oom_kill_disable 0\nmemory/memory.oom_control oom_kill 2\nfree 10\nfree 900\n";
        let (e, full, seen) = parse_counters(v1);
        assert_eq!(
            (e.fork_refusals, e.oom_kills, full, seen),
            (3, 2, true, true)
        );
        // v2's memory.events has a `max` key too: it is not a refused fork.
        let v2 = "pids.events max 0\nmemory.events max 7\nmemory.events oom_kill 1\nfree 900\n";
        let (e, full, seen) = parse_counters(v2);
        assert_eq!(
            (e.fork_refusals, e.oom_kills, full, seen),
            (0, 1, false, true)
        );
        // A build's own words are not counters; neither file read is no answer.
        let (_, _, seen) = parse_counters("max 99\noom_kill 5\n");
        assert!(!seen);
    }
}
