//! Backend `swarm`: each build is a Docker Swarm job (`--mode replicated-job`, one task) on
//! the member's own swarm, with the `docker` backend's files, user, environment and limits
//! (issue 27; what this engine's swarm can and cannot enforce was measured first:
//! docs/decisions.md, "Builds on a swarm").
//!
//! - The job's task is the sandbox idling (`sleep infinity`, as a user of its own); the
//!   build runs in it by `docker exec` as the build user, exactly as in the `docker` backend (`docker::exec_build`),
//!   so output and time are watched the same way and the task's cgroup counters (OOM kills,
//!   refused forks) are read before it is removed (`docker::exceeded`). Same command, same
//!   files: same bytes (tests/build.rs compares the digests).
//! - Limits: `--limit-memory`, `--limit-pids`, `--read-only`, `--cap-drop ALL`, `--user`;
//!   services have no `no-new-privileges` option on this engine, so the build runs under
//!   `setpriv --no-new-privs` (a setuid binary in the image gives nothing back).
//! - No network: services cannot take `--network none`; each job gets its own `--internal`
//!   overlay network (no route out, no other build on it), removed with the job.
//! - The task is pinned to this node (`node.id` constraint): its disks and the pristine
//!   source are bind mounts of this host's directories. Results stay on the build's disk,
//!   checked by the host exactly as the other backends' (`artifacts.rs`).
//! - Names and labels: the service and its network are `synchronicity-<work>-<job hash>`;
//!   both carry `synchronicity.work` and `synchronicity.job`. A builder that starts removes
//!   every job and network a crashed predecessor left with its work label.
//! - Removal: the task's container first (`rm -f`: Docker 20.10 leaves a removed running
//!   job's container running, moby#44312), then the service, then the network.

use std::path::Path;
use std::time::{Duration, Instant};

use super::docker::{docker, exceeded, exec_build, image_id, work_label};
use super::limits::DiskLimit;
use super::sandbox::{BUILD_UID, SOURCE_IN_SANDBOX, base_env};
use super::workspace::BuildWorkspace;
use super::{BuildError, Job, RunOutput};

/// The user of a job's idling PID 1 (not [`BUILD_UID`], which the build runs as).
const IDLE_UID: u32 = BUILD_UID - 1;

/// How long a job's task may take to start running (scheduling, container creation).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct SwarmBackend {
    ws: BuildWorkspace,
    image_id: String,
    work_label: String,
    /// This engine's swarm node id: every task is placed here.
    node_id: String,
}

/// This engine's swarm node id, if it is an active swarm manager.
pub fn swarm_manager() -> Result<String, BuildError> {
    let info = docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}",
    ])?;
    match info.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["active", "true", id] => Ok(id.to_string()),
        _ => Err(BuildError::Backend(format!(
            "swarm: this Docker engine is not a swarm manager ({info}); run `docker swarm init --advertise-addr 127.0.0.1`"
        ))),
    }
}

impl SwarmBackend {
    pub(crate) fn new(ws: &BuildWorkspace, tag: &str) -> Result<Self, BuildError> {
        let backend = Self {
            ws: ws.clone(),
            image_id: image_id(tag)?,
            work_label: work_label(ws),
            node_id: swarm_manager()?,
        };
        backend.remove_leftovers();
        Ok(backend)
    }

    pub(crate) fn image_id(&self) -> &str {
        &self.image_id
    }

    /// Removes the jobs and networks a crashed builder of this work directory left.
    fn remove_leftovers(&self) {
        let filter = format!("label=synchronicity.work={}", self.work_label);
        if let Ok(names) = docker(&["service", "ls", "-q", "--filter", &filter]) {
            for service in names.split_whitespace() {
                SwarmJob::new(service.to_string()).remove_quietly();
            }
        }
        if let Ok(ids) = docker(&["network", "ls", "-q", "--filter", &filter]) {
            for id in ids.split_whitespace() {
                let _ = docker(&["network", "rm", id]);
            }
        }
    }

    /// The job's service (and network) name: 43 characters, within Docker's 63.
    fn job_name(&self, job: &Job) -> String {
        let h = crate::crypto::sha256(job.name.as_bytes());
        format!("synchronicity-{}-{}", self.work_label, hex::encode(&h[..8]))
    }

    /// Runs `job` as a swarm job. A task lost mid-build (its container stopped, and
    /// neither the watcher nor the OOM killer stopped it: the worker's engine went away, or
    /// someone removed the container) is rescheduled once as a new job on a fresh disk; lost
    /// again, the build fails locally and nothing is committed (the round goes on with the
    /// other members).
    pub(crate) fn run(&self, job: &Job) -> Result<RunOutput, BuildError> {
        match self.run_once(job)? {
            Some(out) => Ok(out),
            None => {
                tracing::warn!(job = %job.name, "swarm: the job's task was lost mid-build; rescheduling it once");
                match self.run_once(job)? {
                    Some(mut out) => {
                        out.log.insert_str(
                            0,
                            "[swarm] the first task of this job was lost mid-build; this is its rescheduled run\n",
                        );
                        Ok(out)
                    }
                    None => Err(BuildError::Backend(
                        "swarm: the job's task was lost mid-build twice; nothing is committed"
                            .into(),
                    )),
                }
            }
        }
    }

    /// One job for `job`; `None` if its task was lost mid-build.
    fn run_once(&self, job: &Job) -> Result<Option<RunOutput>, BuildError> {
        let base = self.ws.root().join("swarm-builds").join(&job.name);
        let disk = DiskLimit::mount(&base, &self.ws.disks(), job.limits.disk)?;
        let (target, tmp) = disk.build_dirs()?;
        let workdir = self.ws.root().join("swarm-builds/empty-workdir");
        std::fs::create_dir_all(&workdir)
            .map_err(|e| BuildError::Backend(format!("{}: {e}", workdir.display())))?;
        let name = self.job_name(job);
        // A job of this name left by a crash (the sweep at start-up takes the rest).
        SwarmJob::new(name.clone()).remove_quietly();
        let mut swarm_job = SwarmJob::new(name.clone());
        docker(&[
            "network",
            "create",
            "--driver",
            "overlay",
            "--internal",
            "--label",
            &format!("synchronicity.work={}", self.work_label),
            "--label",
            &format!("synchronicity.job={}", job.name),
            &name,
        ])?;
        let create = self.create_args(job, &name, &target, &tmp, &workdir)?;
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        docker(&create)?;
        let container = swarm_job.wait_running()?;
        let build_user = format!("{BUILD_UID}:{BUILD_UID}");
        let watched = exec_build(
            &container,
            &["--user", &build_user],
            &["/usr/bin/setpriv", "--no-new-privs"],
            job,
        )?;
        let exceeded = exceeded(&container);
        // The task's PID 1 idles and no signal from inside its PID namespace can stop it:
        // a container that stopped while the watcher did not kill it and no OOM kill was
        // counted was stopped from outside.
        let lost = !watched.timed_out
            && !watched.output_over
            && exceeded.oom_kills == 0
            && !is_running(&container);
        // Every process of the build is gone before the host walks its target directory;
        // a job that cannot be removed is the host's failure (nothing is committed).
        swarm_job.remove()?;
        if lost {
            return Ok(None);
        }
        Ok(Some(watched.into_run_output(exceeded, disk, target, job)))
    }

    fn create_args(
        &self,
        job: &Job,
        name: &str,
        target: &Path,
        tmp: &Path,
        workdir: &Path,
    ) -> Result<Vec<String>, BuildError> {
        let tmpfs = |path: &str, mode: &str| {
            format!(
                "type=tmpfs,dst={path},tmpfs-size={},tmpfs-mode={mode}",
                job.limits.memory
            )
        };
        // `--mount` is comma-separated: a host path with a comma or an equals sign would
        // change its meaning (the work directory's paths never have them; refuse if so).
        let bind = |host: &Path, inside: &str, ro: bool| -> Result<String, BuildError> {
            let host = host.display().to_string();
            if host.contains([',', '=', '"']) {
                return Err(BuildError::Backend(format!(
                    "swarm: cannot mount {host:?} (a comma, equals sign or quote in the path)"
                )));
            }
            Ok(format!(
                "type=bind,src={host},dst={inside}{}",
                if ro { ",readonly" } else { "" }
            ))
        };
        let labels = [
            format!("synchronicity.work={}", self.work_label),
            format!("synchronicity.job={}", job.name),
        ];
        let mut a: Vec<String> = vec![
            "service".into(),
            "create".into(),
            "--detach".into(),
            "--quiet".into(),
            "--name".into(),
            name.into(),
            "--mode".into(),
            "replicated-job".into(),
            "--replicas".into(),
            "1".into(),
            "--max-concurrent".into(),
            "1".into(),
            "--restart-condition".into(),
            "none".into(),
            "--constraint".into(),
            format!("node.id=={}", self.node_id),
            // The idling PID 1 is another user than the build's: the build can neither
            // signal nor trace it, so its task cannot be made to look lost.
            "--user".into(),
            format!("{IDLE_UID}:{IDLE_UID}"),
            "--read-only".into(),
            "--cap-drop".into(),
            "ALL".into(),
            "--network".into(),
            name.into(),
            // As in the docker backend: PID 1's stdout must not reach the engine's logs.
            "--log-driver".into(),
            "none".into(),
            "--hostname".into(),
            "synchronicity".into(),
            "--limit-memory".into(),
            job.limits.memory.to_string(),
            "--limit-pids".into(),
            job.limits.processes.to_string(),
            "--mount".into(),
            tmpfs("/opt", "755"),
            "--mount".into(),
            tmpfs("/root", "1777"),
            "--mount".into(),
            tmpfs("/var/tmp", "1777"),
            "--mount".into(),
            bind(&self.ws.cargo_home(), "/opt/rustwide/cargo-home", true)?,
            "--mount".into(),
            bind(&self.ws.rustup_home(), "/opt/rustwide/rustup-home", true)?,
            "--mount".into(),
            bind(&job.source, SOURCE_IN_SANDBOX, true)?,
            "--mount".into(),
            bind(workdir, "/opt/rustwide/workdir", true)?,
            "--mount".into(),
            bind(target, "/opt/rustwide/target", false)?,
            "--mount".into(),
            bind(tmp, "/tmp", false)?,
            "--workdir".into(),
            "/opt/rustwide/workdir".into(),
        ];
        for l in &labels {
            a.extend(["--label".into(), l.clone()]);
            a.extend(["--container-label".into(), l.clone()]);
        }
        for (k, v) in base_env() {
            a.extend(["--env".into(), format!("{k}={v}")]);
        }
        for (k, v) in &job.env {
            a.extend(["--env".into(), format!("{k}={v}")]);
        }
        a.extend([self.image_id.clone(), "sleep".into(), "infinity".into()]);
        Ok(a)
    }
}

/// Whether `container` still runs (`false` also when it is gone).
fn is_running(container: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", container])
        .is_ok_and(|s| s.trim() == "true")
}

/// One build's swarm job (its service and network, both named `name`); dropping it removes
/// them unless [`SwarmJob::remove`] already tried.
struct SwarmJob {
    name: String,
    removed: bool,
}

impl SwarmJob {
    fn new(name: String) -> Self {
        Self {
            name,
            removed: false,
        }
    }

    /// Waits until the job's one task runs; its container's id.
    fn wait_running(&self) -> Result<String, BuildError> {
        let start = Instant::now();
        loop {
            let tasks = docker(&["service", "ps", "-q", "--no-trunc", &self.name])?;
            if let Some(task) = tasks.split_whitespace().next() {
                // The status as JSON: a task without a container yet has no
                // `ContainerStatus` key, which a template cannot ask for.
                let status = docker(&["inspect", "--format", "{{json .Status}}", task])?;
                let status: serde_json::Value = serde_json::from_str(&status)
                    .map_err(|e| BuildError::Backend(format!("swarm: task status: {e}")))?;
                let state = status["State"].as_str().unwrap_or("");
                let container = status["ContainerStatus"]["ContainerID"]
                    .as_str()
                    .unwrap_or("");
                match state {
                    "running" if !container.is_empty() => return Ok(container.into()),
                    "failed" | "rejected" | "shutdown" | "complete" | "orphaned" => {
                        return Err(BuildError::Backend(format!(
                            "swarm: the job's task is {state} before the build: {}",
                            status["Err"].as_str().unwrap_or("").trim()
                        )));
                    }
                    _ => {}
                }
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(BuildError::Backend(format!(
                    "swarm: the job's task did not start in {} s (no node can take it?)",
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The containers of the job's tasks (running or not).
    fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.swarm.service.name={}", self.name);
        docker(&["ps", "-aq", "--filter", &filter])
            .map(|ids| ids.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Removes the job: its containers (killing what is left inside), the service, the
    /// network; or says why not. Tried once: `Drop` does not try again.
    fn remove(&mut self) -> Result<(), BuildError> {
        self.removed = true;
        self.teardown()
    }

    /// Removes what there is of the job, ignoring what is not there.
    fn remove_quietly(mut self) {
        self.removed = true;
        let _ = self.teardown();
    }

    fn teardown(&self) -> Result<(), BuildError> {
        for c in self.containers() {
            if let Err(e) = docker(&["rm", "-f", &c]) {
                // Someone else removes it (a lost task: the engine, an operator): wait until
                // it is gone, at most 20 s.
                let start = Instant::now();
                while docker(&["inspect", "--format", "{{.Id}}", &c]).is_ok() {
                    if start.elapsed() > Duration::from_secs(20) {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let exists = |kind: &str| {
            docker(&[kind, "ls", "-q", "--filter", &format!("name={}", self.name)])
                .is_ok_and(|ids| !ids.is_empty())
        };
        if exists("service") {
            docker(&["service", "rm", &self.name])?;
            // `service rm` returns before the swarm has removed it: wait until it is
            // unlisted (at most 20 s), so no later look finds the job.
            let start = Instant::now();
            while exists("service") && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The network is free once its last task's endpoint is gone (a moment after), and
        // a removed overlay network stays listed until the swarm has removed it: wait until
        // it is gone (at most 20 s).
        let start = Instant::now();
        while exists("network") {
            let removed = docker(&["network", "rm", &self.name]);
            if start.elapsed() > Duration::from_secs(20) {
                return Err(removed.err().unwrap_or_else(|| {
                    BuildError::Backend(format!(
                        "swarm: network {} still there 20 s after its removal",
                        self.name
                    ))
                }));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

impl Drop for SwarmJob {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.teardown();
        }
    }
}
