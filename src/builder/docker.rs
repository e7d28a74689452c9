//! Backend `docker`: one container per build from a LOCAL image (no registry is reachable),
//! with the same files, user and environment as the `sandbox` backend:
//!
//! - `--user` [`BUILD_UID`], `--cap-drop ALL`, `no-new-privileges`, `--network none`,
//!   `--read-only` root: the container has no writable layer, so nothing escapes the disk
//!   limit; tmpfs on `/opt`, `/root` and `/var/tmp` as in the sandbox (their pages are
//!   charged to the container's memory limit);
//! - `/tmp` and `/opt/rustwide/target` on the build's own size-limited disk (`limits.rs`),
//!   the pristine source, the cargo and rustup homes and an empty working directory
//!   read-only, at the sandbox's paths;
//! - `--memory` (no swap on top) and `--pids-limit` for the whole container; time and
//!   output watched by `output.rs`, the container killed at either limit.
//!
//! The container idles (`sleep infinity`, as the build user) and the build runs by
//! `docker exec`, so the container's cgroup counters (OOM kills, refused forks) can be read
//! after the build and before the container is removed. Containers carry the labels
//! `synchronicity.work` (this work directory) and `synchronicity.job`; a builder that starts
//! removes every container a crashed predecessor left with its work label.
//!
//! This replaces rustwide (used up to wave 2): rustwide runs every command as the node's
//! own uid (root) by `docker exec --user`, and offers no read-only root, no capability drop
//! and no bound on the output it stores (docs/decisions.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::limits::{DiskLimit, Exceeded, counter};
use super::output::watch;
use super::sandbox::{BUILD_SHELL, BUILD_UID, CARGO_IN_SANDBOX, SOURCE_IN_SANDBOX, base_env};
use super::workspace::BuildWorkspace;
use super::{BuildError, Job, RunOutput};

/// Docker image tag made by `scripts/build-image.sh`.
pub const DEFAULT_IMAGE: &str = "synchronicity-sandbox:bookworm-v2";

/// True when a Docker engine answers.
pub fn engine_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The image id (`sha256:…`) of `tag`.
pub fn image_id(tag: &str) -> Result<String, BuildError> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .map_err(|e| BuildError::Backend(format!("docker: {e}")))?;
    if !out.status.success() {
        return Err(BuildError::Backend(format!(
            "image {tag} not found; run scripts/build-image.sh"
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(super) fn docker(args: &[&str]) -> Result<String, BuildError> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| BuildError::Backend(format!("docker: {e}")))?;
    if !out.status.success() {
        return Err(BuildError::Backend(format!(
            "docker {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `synchronicity.work` label of a work directory on this host (12 hex digits): what
/// a builder's containers and swarm jobs carry, so that a restarted builder finds its own.
pub(super) fn work_label(ws: &BuildWorkspace) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let me = format!("{}\n{}", host.trim(), ws.root().display());
    hex::encode(&crate::crypto::sha256(me.as_bytes())[..6])
}

pub(crate) struct DockerBackend {
    ws: BuildWorkspace,
    image_id: String,
    /// The `synchronicity.work` label: this work directory on this host.
    work_label: String,
}

impl DockerBackend {
    pub(crate) fn new(ws: &BuildWorkspace, tag: &str) -> Result<Self, BuildError> {
        let backend = Self {
            ws: ws.clone(),
            image_id: image_id(tag)?,
            work_label: work_label(ws),
        };
        backend.remove_leftovers();
        Ok(backend)
    }

    pub(crate) fn image_id(&self) -> &str {
        &self.image_id
    }

    /// Removes the containers a crashed builder of this work directory left.
    fn remove_leftovers(&self) {
        let filter = format!("label=synchronicity.work={}", self.work_label);
        let Ok(ids) = docker(&["ps", "-aq", "--filter", &filter]) else {
            return;
        };
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = docker(&args);
        }
    }

    /// The container's name: its work label and the job's name, in docker's alphabet.
    fn container_name(&self, job: &Job) -> String {
        let job: String = job
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("synchronicity-{}-{job}", self.work_label)
    }

    pub(crate) fn run(&self, job: &Job) -> Result<RunOutput, BuildError> {
        let base = self.ws.root().join("docker-builds").join(&job.name);
        let disk = DiskLimit::mount(&base, &self.ws.disks(), job.limits.disk)?;
        let (target, tmp) = disk.build_dirs()?;
        let workdir = self.ws.root().join("docker-builds/empty-workdir");
        std::fs::create_dir_all(&workdir)
            .map_err(|e| BuildError::Backend(format!("{}: {e}", workdir.display())))?;
        let name = self.container_name(job);
        // A container of this name left by a crash (the sweep at start-up takes the rest).
        let _ = docker(&["rm", "-f", &name]);
        let mut container = Container::new(name);
        let create = self.create_args(job, &container.name, &target, &tmp, &workdir);
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        docker(&create)?;
        docker(&["start", &container.name])?;

        let watched = exec_build(&container.name, &[], &[], job)?;
        let exceeded = exceeded(&container.name);
        // Every process of the build is gone before the host walks its target directory;
        // a container that cannot be removed is the host's failure (nothing is committed).
        container.remove()?;
        Ok(watched.into_run_output(exceeded, disk, target, job))
    }

    fn create_args(
        &self,
        job: &Job,
        name: &str,
        target: &Path,
        tmp: &Path,
        workdir: &Path,
    ) -> Vec<String> {
        let user = format!("{BUILD_UID}:{BUILD_UID}");
        let memory = job.limits.memory.to_string();
        let tmpfs = |path: &str, mode: &str| {
            format!(
                "{path}:rw,exec,nosuid,nodev,mode={mode},size={}",
                job.limits.memory
            )
        };
        let bind =
            |host: &Path, inside: &str, mode: &str| format!("{}:{inside}:{mode}", host.display());
        let mut a: Vec<String> = vec![
            "create".into(),
            "--name".into(),
            name.into(),
            "--label".into(),
            format!("synchronicity.work={}", self.work_label),
            "--label".into(),
            format!("synchronicity.job={}", job.name),
            "--user".into(),
            user,
            "--read-only".into(),
            "--cap-drop".into(),
            "ALL".into(),
            "--security-opt".into(),
            "no-new-privileges".into(),
            "--network".into(),
            "none".into(),
            // The container's own stdout (its PID 1's, which a build process of the same
            // user can open) would go to the engine's log file, outside every limit.
            "--log-driver".into(),
            "none".into(),
            "--hostname".into(),
            "synchronicity".into(),
            "--memory".into(),
            memory.clone(),
            "--memory-swap".into(),
            memory,
            "--pids-limit".into(),
            job.limits.processes.to_string(),
            "--tmpfs".into(),
            tmpfs("/opt", "755"),
            "--tmpfs".into(),
            tmpfs("/root", "1777"),
            "--tmpfs".into(),
            tmpfs("/var/tmp", "1777"),
            "-v".into(),
            bind(&self.ws.cargo_home(), "/opt/rustwide/cargo-home", "ro"),
            "-v".into(),
            bind(&self.ws.rustup_home(), "/opt/rustwide/rustup-home", "ro"),
            "-v".into(),
            bind(&job.source, SOURCE_IN_SANDBOX, "ro"),
            "-v".into(),
            bind(workdir, "/opt/rustwide/workdir", "ro"),
            "-v".into(),
            bind(target, "/opt/rustwide/target", "rw"),
            "-v".into(),
            bind(tmp, "/tmp", "rw"),
            "--workdir".into(),
            "/opt/rustwide/workdir".into(),
        ];
        for (k, v) in base_env() {
            a.extend(["-e".into(), format!("{k}={v}")]);
        }
        for (k, v) in &job.env {
            a.extend(["-e".into(), format!("{k}={v}")]);
        }
        a.extend([self.image_id.clone(), "sleep".into(), "infinity".into()]);
        a
    }
}

/// A build's container; dropping it removes it (and kills what is left inside) unless
/// [`Container::remove`] already tried.
struct Container {
    name: String,
    /// `remove` ran (whatever it answered): `Drop` has nothing left to do.
    removed: bool,
}

impl Container {
    fn new(name: String) -> Self {
        Self {
            name,
            removed: false,
        }
    }

    /// Removes the container (killing what is left inside), or says why not. Tried once:
    /// `Drop` does not try again.
    fn remove(&mut self) -> Result<(), BuildError> {
        self.removed = true;
        docker(&["rm", "-f", &self.name]).map(|_| ())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.removed {
            let _ = docker(&["rm", "-f", &self.name]);
        }
    }
}

/// What the container's cgroups counted (read on the host: the container may be too full
/// of processes to run anything more). A container whose PID 1 the OOM killer took is
/// gone with its cgroup; docker's `OOMKilled` says so.
pub(super) fn exceeded(container: &str) -> Exceeded {
    let state = docker(&[
        "inspect",
        "--format",
        "{{.State.Pid}} {{.State.OOMKilled}}",
        container,
    ])
    .unwrap_or_default();
    let mut it = state.split_whitespace();
    let pid = it.next().unwrap_or("0");
    let oom_killed = it.next() == Some("true");
    let mut e = Exceeded::default();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let has = |c: &str| controllers.split(',').any(|x| x == c);
        let v1 = |c: &str, file: &str| PathBuf::from(format!("/sys/fs/cgroup/{c}{path}/{file}"));
        // Hybrid hosts list a `0::` (v2) line beside the v1 ones: every counter found
        // counts, the largest wins.
        if has("pids") {
            let n = counter(&v1("pids", "pids.events"), "max");
            e.fork_refusals = e.fork_refusals.max(n);
        } else if has("memory") {
            let n = counter(&v1("memory", "memory.oom_control"), "oom_kill");
            e.oom_kills = e.oom_kills.max(n);
        } else if controllers.is_empty() {
            let v2 = |file: &str| PathBuf::from(format!("/sys/fs/cgroup{path}/{file}"));
            e.fork_refusals = e.fork_refusals.max(counter(&v2("pids.events"), "max"));
            e.oom_kills = e.oom_kills.max(counter(&v2("memory.events"), "oom_kill"));
        }
    }
    if oom_killed {
        e.oom_kills = e.oom_kills.max(1);
    }
    e
}

/// Runs `job`'s build in the running `container` (by `docker exec` with `options`, `prefix`
/// before the build shell), watched by `output.rs`: at the time or output limit the
/// container is killed, which ends every process in it (its PID 1 goes, and the PID
/// namespace with it).
pub(super) fn exec_build(
    container: &str,
    options: &[&str],
    prefix: &[&str],
    job: &Job,
) -> Result<super::output::Watched, BuildError> {
    let mut exec = Command::new("docker");
    exec.arg("exec")
        .args(options)
        .arg(container)
        .args(prefix)
        .args(BUILD_SHELL)
        .arg(CARGO_IN_SANDBOX)
        .arg(format!("+{}", job.toolchain))
        .args(&job.cargo_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = exec
        .spawn()
        .map_err(|e| BuildError::Backend(format!("docker exec: {e}")))?;
    let kill = {
        let name = container.to_string();
        move || {
            // `kill`, else `rm -f` (the watcher calls this once; the container must go).
            let killed = Command::new("docker")
                .args(["kill", &name])
                .output()
                .is_ok_and(|o| o.status.success());
            if !killed {
                let _ = Command::new("docker").args(["rm", "-f", &name]).output();
            }
        }
    };
    watch(&mut child, job.limits.output, job.limits.time, &kill)
}
