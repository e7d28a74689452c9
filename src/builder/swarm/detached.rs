//! A swarm job's build, detached from the node: its exec created through the engine's API
//! (so its id is known, and recorded, before it starts), started detached, its stdout and
//! stderr written to files on the build's own disk, its exit code the engine's record of
//! the exec (never a file the build could write). Nothing of the build lives in the node's
//! process, so a node that restarts mid-build finds all of it again and re-attaches
//! (`swarm.rs`); a fresh build and a re-attached one are watched by the same loop.
//!
//! - The output files: `run/` on the build's disk is root's (0755) and holds `stdout` and
//!   `stderr`, made by the host and owned by the build user, so the build can write them but
//!   cannot replace them with links; the host reads them through `O_NOFOLLOW`, at most the
//!   output cap (`output::read_detached`). A build that truncates its own files writes more
//!   than the cap unseen, bounded by its disk: it only hides its own output.
//! - The host's record ([`ExecRecord`]: the exec id and when it started) is a file in the
//!   work directory beside the disk, never on it: a build that fills its disk cannot stop
//!   the host from writing it, and cannot reach it.
//! - Output is watched by the files' sizes, time from the exec's start: past either the
//!   task's container is killed, as in the other backends.
//! - The engine forgets an exec that ended 5 to 10 minutes after its end (its exec GC): a
//!   node that comes back later finds no record and the build counts as lost (rescheduled
//!   once, `swarm.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::super::output::{Captured, read_detached};
use super::super::sandbox::{BUILD_SHELL, BUILD_UID, CARGO_IN_SANDBOX};
use super::super::{BuildError, Job};
use super::engine::Engine;

/// Where the build's output files are, in the task.
pub(super) const RUN_IN_SANDBOX: &str = "/opt/rustwide/run";
/// How often the watcher looks at the exec, the clock and the output files.
const TICK: Duration = Duration::from_millis(200);
/// Engine calls that may fail in a row (a busy engine) before the build is given up.
const ENGINE_RETRIES: u32 = 10;
/// How long a killed build may take to be seen ended.
const KILL_GRACE: Duration = Duration::from_secs(30);

fn backend(msg: String) -> BuildError {
    BuildError::Backend(format!("swarm: {msg}"))
}

/// The host's side of a detached build's output files, on its disk mounted at `disk`.
pub(super) struct RunFiles {
    dir: PathBuf,
}

impl RunFiles {
    pub(super) fn at(disk: &Path) -> Self {
        Self {
            dir: disk.join("run"),
        }
    }

    /// Makes `run/` (root's, 0755) with empty `stdout` and `stderr` owned by the build user.
    pub(super) fn make(&self) -> Result<(), BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |p: &Path, e: std::io::Error| backend(format!("{}: {e}", p.display()));
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io(&self.dir, e))?;
        for f in ["stdout", "stderr"] {
            let p = self.dir.join(f);
            std::fs::write(&p, b"").map_err(|e| io(&p, e))?;
            std::os::unix::fs::chown(&p, Some(BUILD_UID), Some(BUILD_UID))
                .map_err(|e| io(&p, e))?;
        }
        Ok(())
    }

    /// The host directory mounted at [`RUN_IN_SANDBOX`].
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in both files now (their sizes; a file replaced or gone counts as 0).
    pub(super) fn written(&self) -> u64 {
        ["stdout", "stderr"]
            .iter()
            .filter_map(|f| std::fs::symlink_metadata(self.dir.join(f)).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }

    /// What the build wrote, at most `cap` bytes; true when there was more.
    pub(super) fn read(&self, cap: u64) -> (Captured, bool) {
        read_detached(&self.dir.join("stdout"), &self.dir.join("stderr"), cap)
    }
}

/// The host's record of a job's build: `<disk mount point>.exec` in the work directory,
/// `EXEC_ID START_UNIX_MS`.
pub(super) struct ExecRecord {
    path: PathBuf,
}

impl ExecRecord {
    /// The record of the job whose disk is mounted at `disk`.
    pub(super) fn beside(disk: &Path) -> Self {
        let mut path = disk.as_os_str().to_owned();
        path.push(".exec");
        Self { path: path.into() }
    }

    /// The recorded exec id and start time, if a build was started.
    pub(super) fn read(&self) -> Option<(String, SystemTime)> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut it = text.split_whitespace();
        let id = it.next()?;
        let ms: u64 = it.next()?.parse().ok()?;
        let valid = id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit());
        let started = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
        valid.then(|| (id.to_string(), started))
    }

    /// Removes the record (the job is done, or a new one starts on a fresh disk).
    pub(super) fn clear(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn write(&self, exec: &str, started: SystemTime) -> Result<(), BuildError> {
        let ms = started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        crate::node_dir::write_atomic(&self.path, format!("{exec} {ms}\n").as_bytes())
            .map_err(|e| backend(e.to_string()))
    }
}

/// Starts `job`'s build in the running `container`, detached, as the build user under
/// `setpriv --no-new-privs`: the exec is created, recorded, then started. Its id.
pub(super) fn start(
    engine: &Engine,
    container: &str,
    job: &Job,
    record: &ExecRecord,
) -> Result<String, BuildError> {
    let redirect = format!("exec \"$@\" >{RUN_IN_SANDBOX}/stdout 2>{RUN_IN_SANDBOX}/stderr");
    let mut cmd: Vec<String> = [
        "/usr/bin/setpriv",
        "--no-new-privs",
        "/bin/sh",
        "-c",
        &redirect,
        "sh",
    ]
    .iter()
    .chain(BUILD_SHELL.iter())
    .map(|s| s.to_string())
    .collect();
    cmd.push(CARGO_IN_SANDBOX.into());
    cmd.push(format!("+{}", job.toolchain));
    cmd.extend(job.cargo_args.iter().cloned());
    let spec = serde_json::json!({
        "User": format!("{BUILD_UID}:{BUILD_UID}"),
        "Cmd": cmd,
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": false,
    });
    if !container.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(backend(format!("container id {container:?}")));
    }
    let (code, body) = engine.post(&format!("/containers/{container}/exec"), &spec)?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let exec = match (code, answer["Id"].as_str()) {
        (201, Some(id)) if id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()) => id,
        _ => {
            return Err(backend(format!(
                "creating the build's exec: {code} {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
    };
    // Recorded before it starts (temp file, fsync, rename): after a crash here a restarted
    // node finds the record of an exec that never ran, which counts as lost — the job is
    // run again on a fresh disk, never twice on this one.
    record.write(exec, SystemTime::now())?;
    let (code, body) = engine.post(
        &format!("/exec/{exec}/start"),
        &serde_json::json!({"Detach": true, "Tty": false}),
    )?;
    if code != 200 {
        return Err(backend(format!(
            "starting the build's exec: {code} {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok(exec.to_string())
}

/// How a detached build ended.
pub(super) enum Ended {
    /// Its exec exited with this code (after a kill, the kill's).
    Exited {
        code: i64,
        timed_out: bool,
        output_over: bool,
    },
    /// The engine has no record of its end: the task's container is gone, or the exec
    /// never ran, or the engine forgot it.
    Unknown { timed_out: bool, output_over: bool },
}

impl Ended {
    /// The watcher killed the task (time or output limit).
    pub(super) fn killed_by_watcher(&self) -> bool {
        match *self {
            Self::Exited {
                timed_out,
                output_over,
                ..
            }
            | Self::Unknown {
                timed_out,
                output_over,
            } => timed_out || output_over,
        }
    }
}

/// Watches the build of `exec` until it ends: kills the task (with `kill`) once its output
/// files hold more than `cap` bytes (`written`) or past `deadline`.
pub(super) fn watch(
    engine: &Engine,
    exec: &str,
    written: &dyn Fn() -> u64,
    cap: u64,
    deadline: Instant,
    kill: &dyn Fn(),
) -> Result<Ended, BuildError> {
    let (mut timed_out, mut output_over) = (false, false);
    let mut killed_at: Option<Instant> = None;
    let mut failures = 0;
    loop {
        // A kill that did not end the build (an engine that goes on saying it runs): the
        // watcher does not wait for ever.
        if killed_at.is_some_and(|k| k.elapsed() > KILL_GRACE) {
            return Ok(Ended::Unknown {
                timed_out,
                output_over,
            });
        }
        match exec_state(engine, exec) {
            Ok(Some(ExecState { running: true, .. })) => failures = 0,
            Ok(Some(ExecState {
                running: false,
                exit_code: Some(code),
            })) => {
                return Ok(Ended::Exited {
                    code,
                    timed_out,
                    output_over,
                });
            }
            Ok(_) => {
                return Ok(Ended::Unknown {
                    timed_out,
                    output_over,
                });
            }
            Err(e) => {
                failures += 1;
                if failures > ENGINE_RETRIES {
                    return Err(e);
                }
                tracing::warn!("swarm: reading the build's exec: {e}");
            }
        }
        if !timed_out && !output_over {
            if written() > cap {
                output_over = true;
                kill();
                killed_at = Some(Instant::now());
            } else if Instant::now() > deadline {
                timed_out = true;
                kill();
                killed_at = Some(Instant::now());
            }
        }
        std::thread::sleep(TICK);
    }
}

struct ExecState {
    running: bool,
    exit_code: Option<i64>,
}

/// The engine's record of `exec`; `None` if it has none (its container is gone, or the
/// record was collected).
fn exec_state(engine: &Engine, exec: &str) -> Result<Option<ExecState>, BuildError> {
    if !exec.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(backend(format!("exec id {exec:?}")));
    }
    let (code, body) = engine.get(&format!("/exec/{exec}/json"))?;
    match code {
        200 => {
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| backend(format!("exec record: {e}")))?;
            Ok(Some(ExecState {
                running: v["Running"].as_bool().unwrap_or(false),
                exit_code: v["ExitCode"].as_i64(),
            }))
        }
        404 => Ok(None),
        code => Err(backend(format!(
            "the engine answered {code} for exec {exec}: {}",
            String::from_utf8_lossy(&body).trim()
        ))),
    }
}
