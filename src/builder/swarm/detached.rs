//! A swarm job's build, detached from the node: started by `docker exec -d`, its stdout and
//! stderr written to files on the build's own disk, its exit code the engine's record of the
//! exec (never a file the build could write). Nothing of the build lives in the node's
//! process, so a node that restarts mid-build finds all of it again and re-attaches
//! (`swarm.rs`); a fresh build and a re-attached one are watched by the same loop.
//!
//! - The files: `run/` on the build's disk is root's (0755) and holds `stdout` and `stderr`,
//!   made by the host and owned by the build user, so the build can write them but cannot
//!   replace them with links; the host reads them through `O_NOFOLLOW`, at most the output
//!   cap (`output::read_detached`). The disk's root is the host's: the `started` marker
//!   there is out of the build's reach (only `target`, `tmp` and `run` are mounted in).
//! - Output is watched by the files' sizes, time by the job's deadline (a label set when the
//!   job was created): past either the task's container is killed, as in the other backends.
//! - The exit code comes from the engine's API (`GET /exec/{id}/json` on its unix socket):
//!   the docker CLI has no command that shows an exec's exit code. The engine forgets an
//!   exec that ended 5 to 10 minutes after its end (its exec GC); a node that comes back
//!   later finds no record and the build counts as lost (rescheduled once, `swarm.rs`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::super::docker::docker;
use super::super::output::{Captured, read_detached};
use super::super::sandbox::{BUILD_SHELL, BUILD_UID, CARGO_IN_SANDBOX};
use super::super::{BuildError, Job};

/// Where the build's output files are, in the task.
pub(super) const RUN_IN_SANDBOX: &str = "/opt/rustwide/run";
/// How often the watcher looks at the exec, the clock and the output files.
const TICK: Duration = Duration::from_millis(200);
/// The most of an engine API answer read (an exec's record is a few hundred bytes).
const MAX_ANSWER: u64 = 1 << 20;

/// The host's side of a detached build's files, on its disk mounted at `disk`.
pub(super) struct RunFiles {
    dir: PathBuf,
    started: PathBuf,
    exec: PathBuf,
}

impl RunFiles {
    pub(super) fn at(disk: &Path) -> Self {
        Self {
            dir: disk.join("run"),
            started: disk.join("started"),
            exec: disk.join("exec"),
        }
    }

    /// Makes `run/` (root's, 0755) with empty `stdout` and `stderr` owned by the build user.
    pub(super) fn make(&self) -> Result<(), BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |p: &Path, e: std::io::Error| {
            BuildError::Backend(format!("swarm: {}: {e}", p.display()))
        };
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

    /// Whether a build was started on this disk (the marker is written just before).
    pub(super) fn was_started(&self) -> bool {
        self.started.exists()
    }

    /// The build's exec, as recorded when it was started (the engine drops an exec from
    /// its container's list once it ends, but keeps its record for a while).
    pub(super) fn recorded_exec(&self) -> Option<String> {
        let id = std::fs::read_to_string(&self.exec).ok()?;
        let id = id.trim();
        (id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
    }

    /// Bytes in both files now (their sizes; a file replaced or gone counts as 0).
    fn written(&self) -> u64 {
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

/// Starts `job`'s build in the running `container`, detached, as the build user under
/// `setpriv --no-new-privs`; the id of its exec.
pub(super) fn start(container: &str, job: &Job, files: &RunFiles) -> Result<String, BuildError> {
    // Crash here: a restarted node finds the marker and no exec, and reschedules the job
    // (the build may have been started; a second run on a used disk would not be clean).
    std::fs::write(&files.started, b"")
        .map_err(|e| BuildError::Backend(format!("swarm: {}: {e}", files.started.display())))?;
    let user = format!("{BUILD_UID}:{BUILD_UID}");
    let redirect = format!("exec \"$@\" >{RUN_IN_SANDBOX}/stdout 2>{RUN_IN_SANDBOX}/stderr");
    let toolchain = format!("+{}", job.toolchain);
    let mut args: Vec<&str> = vec![
        "exec",
        "--detach",
        "--user",
        &user,
        container,
        "/usr/bin/setpriv",
        "--no-new-privs",
        "/bin/sh",
        "-c",
        &redirect,
        "sh",
    ];
    args.extend(BUILD_SHELL);
    args.push(CARGO_IN_SANDBOX);
    args.push(&toolchain);
    args.extend(job.cargo_args.iter().map(String::as_str));
    docker(&args)?;
    let exec = the_exec(container)?.ok_or_else(|| {
        BuildError::Backend("swarm: the engine lists no exec for the build just started".into())
    })?;
    // Written whole, then renamed: a crash before leaves no record, and a restarted node
    // finds the exec in its container's list while it runs (and the build lost if not).
    let tmp = files.exec.with_extension("partial");
    std::fs::write(&tmp, &exec)
        .and_then(|()| std::fs::rename(&tmp, &files.exec))
        .map_err(|e| BuildError::Backend(format!("swarm: {}: {e}", files.exec.display())))?;
    Ok(exec)
}

/// The build's exec in `container`, if the engine lists one: the task's only exec, while it
/// runs.
pub(super) fn the_exec(container: &str) -> Result<Option<String>, BuildError> {
    let ids = docker(&["inspect", "--format", "{{json .ExecIDs}}", container])?;
    let ids: Option<Vec<String>> = serde_json::from_str(&ids)
        .map_err(|e| BuildError::Backend(format!("swarm: the task's exec ids: {e}")))?;
    match ids.unwrap_or_default().as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        more => Err(BuildError::Backend(format!(
            "swarm: {} execs in the build's task, one expected",
            more.len()
        ))),
    }
}

/// How a detached build ended.
pub(super) enum Ended {
    /// Its exec exited with this code (after a kill, the kill's).
    Exited {
        code: i64,
        timed_out: bool,
        output_over: bool,
    },
    /// The engine has no record of its end: the task's container is gone or stopped
    /// without the exec's end being recorded (stopped from outside).
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

/// Watches the build of `exec` in `container` until it ends: kills the container (with
/// `kill`) once its files hold more than `cap` bytes or past `deadline`.
pub(super) fn watch(
    exec: &str,
    files: &RunFiles,
    cap: u64,
    deadline: SystemTime,
    kill: &dyn Fn(),
) -> Result<Ended, BuildError> {
    let (mut timed_out, mut output_over) = (false, false);
    loop {
        match exec_state(exec)? {
            Some(ExecState { running: true, .. }) => {}
            Some(ExecState {
                running: false,
                exit_code: Some(code),
            }) => {
                return Ok(Ended::Exited {
                    code,
                    timed_out,
                    output_over,
                });
            }
            _ => {
                return Ok(Ended::Unknown {
                    timed_out,
                    output_over,
                });
            }
        }
        if !timed_out && !output_over {
            if files.written() > cap {
                output_over = true;
                kill();
            } else if SystemTime::now() > deadline {
                timed_out = true;
                kill();
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
fn exec_state(exec: &str) -> Result<Option<ExecState>, BuildError> {
    if !exec.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(BuildError::Backend(format!("swarm: exec id {exec:?}")));
    }
    let (code, body) = engine_get(&format!("/exec/{exec}/json"))?;
    match code {
        200 => {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| BuildError::Backend(format!("swarm: exec record: {e}")))?;
            Ok(Some(ExecState {
                running: v["Running"].as_bool().unwrap_or(false),
                exit_code: v["ExitCode"].as_i64(),
            }))
        }
        404 => Ok(None),
        code => Err(BuildError::Backend(format!(
            "swarm: the engine answered {code} for exec {exec}: {}",
            String::from_utf8_lossy(&body).trim()
        ))),
    }
}

/// The engine's unix socket: `DOCKER_HOST` if it names one, else the default.
fn engine_socket() -> Result<PathBuf, BuildError> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h.strip_prefix("unix://").map(PathBuf::from).ok_or_else(|| {
            BuildError::Backend(format!(
                "swarm: DOCKER_HOST={h}: the swarm backend reads build exits from the engine's unix socket"
            ))
        }),
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

/// `GET path` on the engine's API (HTTP/1.0: the answer ends when the engine closes).
fn engine_get(path: &str) -> Result<(u16, Vec<u8>), BuildError> {
    let socket = engine_socket()?;
    let err = |e: std::io::Error| BuildError::Backend(format!("swarm: {}: {e}", socket.display()));
    let mut s = UnixStream::connect(&socket).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(err)?;
    let mut answer = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut answer).map_err(err)?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            BuildError::Backend("swarm: the engine's answer has no header end".into())
        })?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| BuildError::Backend(format!("swarm: the engine answered {head:?}")))?;
    Ok((code, answer[end + 4..].to_vec()))
}
