//! Backend `swarm`: each build is a Docker Swarm job (`--mode replicated-job`, one task) on
//! the member's own swarm, with the `docker` backend's files, user, environment and limits
//! (issue 27; what this engine's swarm can and cannot enforce was measured first:
//! docs/decisions.md, "Builds on a swarm").
//!
//! - The job's task is the sandbox idling (`sleep` past its time limit, as a user of its own); the
//!   build runs in it as the build user, detached (`docker exec -d`, `detached.rs`): its
//!   output goes to files on its own disk and its exit code is the engine's record, so the
//!   task's cgroup counters (OOM kills, refused forks) are read before it is removed
//!   (`docker::exceeded`) and a node that restarts mid-build re-attaches to it. Same command,
//!   same files: same bytes (tests/build.rs compares the digests).
//! - Limits: `--limit-memory`, `--limit-pids`, `--read-only`, `--cap-drop ALL`, `--user`;
//!   services have no `no-new-privileges` option on this engine, so the build runs under
//!   `setpriv --no-new-privs` (a setuid binary in the image gives nothing back).
//! - No network: services cannot take `--network none`; each job gets its own `--internal`
//!   overlay network (no route out, no other build on it), removed with the job.
//! - The task is pinned to this node (`node.id` constraint): its disks and the pristine
//!   source are bind mounts of this host's directories. Results stay on the build's disk,
//!   checked by the host exactly as the other backends' (`artifacts.rs`).
//! - Names and labels: the service and its network are `synchronicity-<work>-<job hash>`;
//!   both carry `synchronicity.work` and `synchronicity.job`, the service also
//!   `synchronicity.deadline` (the end of its time limit, Unix seconds).
//! - After a restart: a job its predecessor left whose task still runs, whose deadline is
//!   ahead and whose disk is still mounted is kept, and the next build of the same request
//!   re-attaches to it instead of starting a second job for the round (`Builder::build`
//!   then skips its own fetch and unpack: the task reads the source as it was). Every other
//!   job and network with this work label is removed; a kept job no build claims by its
//!   deadline is removed then.
//! - Removal: the task's container first (`rm -f`: Docker 20.10 leaves a removed running
//!   job's container running, moby#44312), then the service, then the network.

mod detached;
mod engine;
mod job;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::docker::{docker, exceeded, image_id, work_label};
use super::limits::DiskLimit;
use super::output::Watched;
use super::sandbox::{BUILD_UID, SOURCE_IN_SANDBOX, base_env};
use super::workspace::BuildWorkspace;
use super::{BuildError, Job, RunOutput};
use detached::{Ended, ExecRecord, RUN_IN_SANDBOX, RunFiles};
use engine::Engine;
use job::{START_TIMEOUT, SwarmJob, is_running};

/// The user of a job's idling PID 1 (not [`BUILD_UID`], which the build runs as).
const IDLE_UID: u32 = BUILD_UID - 1;

/// How long a task outlives its build's time limit before its idling PID 1 exits by itself
/// (a node that never comes back leaves no task running for ever).
const TASK_GRACE: Duration = Duration::from_secs(120);

/// A job a predecessor of this builder left running, which a build of the same request
/// re-attaches to.
struct Kept {
    service: String,
    container: String,
    /// The end of the time the job may be kept (its label).
    deadline: SystemTime,
    /// Its `synchronicity.image` and `synchronicity.limits` labels: a job started with
    /// another image or other limits is not re-attached to.
    image: String,
    limits: String,
    disk: DiskLimit,
}

/// The kept jobs, by job name (shared with the thread that removes unclaimed ones).
type KeptJobs = Arc<Mutex<HashMap<String, Kept>>>;

pub(crate) struct SwarmBackend {
    ws: BuildWorkspace,
    image_id: String,
    work_label: String,
    /// This engine's swarm node id: every task is placed here.
    node_id: String,
    /// The engine's API, for execs (the CLI has no way to read an exec's exit code).
    engine: Engine,
    kept: KeptJobs,
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
            engine: Engine::resolve()?,
            kept: Arc::default(),
        };
        backend.keep_or_remove_leftovers();
        Ok(backend)
    }

    pub(crate) fn image_id(&self) -> &str {
        &self.image_id
    }

    /// The disks of the jobs kept for re-attaching (the builder's start-up sweep leaves them).
    pub(crate) fn kept_disks(&self) -> Vec<PathBuf> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.values()
            .map(|k| k.disk.mount_point().to_path_buf())
            .collect()
    }

    /// Whether a build of the job named `job` would re-attach to a running one.
    pub(crate) fn has_kept(&self, job: &str) -> bool {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.contains_key(job)
    }

    /// Keeps the jobs a predecessor of this work directory left that can be re-attached to
    /// (task running, deadline ahead, disk mounted) and removes every other job and network
    /// with its work label. Kept jobs no build claims are removed at their deadline.
    fn keep_or_remove_leftovers(&self) {
        let filter = format!("label=synchronicity.work={}", self.work_label);
        let mut networks_kept = Vec::new();
        if let Ok(names) = docker(&[
            "service",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            &filter,
        ]) {
            for service in names.split_whitespace() {
                match self.keepable(service) {
                    Some((job, kept)) => {
                        tracing::info!(
                            job,
                            "swarm: a job left running by a predecessor is kept for re-attaching"
                        );
                        networks_kept.push(service.to_string());
                        self.kept
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(job, kept);
                    }
                    None => SwarmJob::new(service.to_string()).remove_quietly(),
                }
            }
        }
        if let Ok(names) = docker(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            &filter,
        ]) {
            for name in names.split_whitespace() {
                if !networks_kept.iter().any(|k| k == name) {
                    let _ = docker(&["network", "rm", name]);
                }
            }
        }
        let kept = self.kept.clone();
        if !kept.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            std::thread::spawn(move || remove_unclaimed(kept));
        }
    }

    /// The job name and what to keep of the leftover `service`, if it can be re-attached to.
    fn keepable(&self, service: &str) -> Option<(String, Kept)> {
        let labels = docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.Labels}}",
            service,
        ])
        .ok()?;
        let labels: HashMap<String, String> = serde_json::from_str(&labels).ok()?;
        let job = labels.get("synchronicity.job")?;
        // Our own label, but a path component below: only the alphabet job names use.
        let safe = !job.starts_with('.')
            && job
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-+".contains(c));
        let deadline = UNIX_EPOCH.checked_add(Duration::from_secs(
            labels.get("synchronicity.deadline")?.parse().ok()?,
        ))?;
        if !safe || deadline <= SystemTime::now() {
            return None;
        }
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let running = docker(&["ps", "-q", "--no-trunc", "--filter", &filter]).ok()?;
        let [container] = running.split_whitespace().collect::<Vec<_>>()[..] else {
            return None;
        };
        let disk = DiskLimit::adopt(
            &self.ws.root().join("swarm-builds").join(job),
            &self.ws.disks(),
        )?;
        Some((
            job.clone(),
            Kept {
                service: service.to_string(),
                container: container.to_string(),
                deadline,
                image: labels.get("synchronicity.image")?.clone(),
                limits: labels.get("synchronicity.limits")?.clone(),
                disk,
            },
        ))
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

    /// One job for `job` (the one kept for it after a restart, else a new one); `None` if
    /// its task was lost mid-build.
    fn run_once(&self, job: &Job) -> Result<Option<RunOutput>, BuildError> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.name);
        let kept = match kept {
            Some(k) if k.image == self.image_id && k.limits == limits_label(job) => Some(k),
            Some(k) => {
                tracing::info!(job = %job.name, "swarm: the kept job ran with another image or other limits; starting a new one");
                SwarmJob::new(k.service).remove_quietly();
                None
            }
            None => None,
        };
        let reattached = kept.is_some();
        let (mut swarm_job, container, disk) = match kept {
            Some(k) => {
                tracing::info!(job = %job.name, "swarm: re-attached to the job a predecessor started");
                (SwarmJob::new(k.service), k.container, k.disk)
            }
            None => self.start_job(job)?,
        };
        let files = RunFiles::at(disk.mount_point());
        let record = ExecRecord::beside(disk.mount_point());
        let (exec, deadline) = match record.read() {
            Some((exec, started)) => {
                let end = started + job.limits.time;
                let left = end.duration_since(SystemTime::now()).unwrap_or_default();
                (exec, Instant::now() + left)
            }
            // No record: no build was started on this disk (it is recorded first).
            None => match detached::start(&self.engine, &container, job, &record) {
                Ok(exec) => (exec, Instant::now() + job.limits.time),
                Err(_) if reattached && !is_running(&container) => {
                    record.clear();
                    swarm_job.remove()?;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            },
        };
        let kill = || {
            // `kill`, else `rm -f` (the watcher calls this once; the task must go).
            if docker(&["kill", &container]).is_err() {
                let _ = docker(&["rm", "-f", &container]);
            }
        };
        let ended = detached::watch(
            &self.engine,
            &exec,
            &files,
            job.limits.output,
            deadline,
            &kill,
        )?;
        let exceeded = exceeded(&container);
        let running = is_running(&container);
        // Every process of the build is gone before the host reads its files and walks its
        // target directory; a job that cannot be removed is the host's failure (nothing is
        // committed).
        record.clear();
        swarm_job.remove()?;
        let stopped = ended.killed_by_watcher() || exceeded.oom_kills > 0;
        let (status, timed_out, output_over) = match ended {
            // The task's PID 1 idles and no signal from inside its PID namespace can stop
            // it: a task that stopped (or is gone) while neither the watcher nor the OOM
            // killer stopped it was stopped from outside (a worker engine that went away,
            // an operator), whatever the engine recorded for the build.
            _ if !running && !stopped => return Ok(None),
            Ended::Exited {
                code,
                timed_out,
                output_over,
            } => (
                ExitStatus::from_raw(((code & 0xff) as i32) << 8),
                timed_out,
                output_over,
            ),
            // No end recorded, but the watcher or the OOM killer stopped the task.
            Ended::Unknown {
                timed_out,
                output_over,
            } if !running => (ExitStatus::from_raw(137 << 8), timed_out, output_over),
            // The task runs and the engine has no end for the build: it forgot it (a
            // restart long after), or the exec never ran (a crash between its record and
            // its start).
            Ended::Unknown { .. } => return Ok(None),
        };
        let (captured, over) = files.read(job.limits.output);
        let watched = Watched {
            status,
            timed_out,
            output_over: output_over || over,
            captured,
        };
        let target = disk.mount_point().join("target");
        let mut out = watched.into_run_output(exceeded, disk, target, job);
        if reattached {
            out.log.insert_str(
                0,
                "[swarm] the node restarted mid-build and re-attached to this job's task\n",
            );
        }
        Ok(Some(out))
    }

    /// A new job for `job`, its task running: the job, its task's container, its disk and
    /// its deadline.
    fn start_job(&self, job: &Job) -> Result<(SwarmJob, String, DiskLimit), BuildError> {
        let base = self.ws.root().join("swarm-builds").join(&job.name);
        let disk = DiskLimit::mount(&base, &self.ws.disks(), job.limits.disk)?;
        let (target, tmp) = disk.build_dirs()?;
        let files = RunFiles::at(disk.mount_point());
        files.make()?;
        ExecRecord::beside(disk.mount_point()).clear();
        let workdir = self.ws.root().join("swarm-builds/empty-workdir");
        std::fs::create_dir_all(&workdir)
            .map_err(|e| BuildError::Backend(format!("{}: {e}", workdir.display())))?;
        let name = self.job_name(job);
        // A job of this name left by a crash (the sweep at start-up takes the rest).
        SwarmJob::new(name.clone()).remove_quietly();
        let swarm_job = SwarmJob::new(name.clone());
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
        // The job may be kept for re-attaching until its task's PID 1 exits by itself.
        let deadline = SystemTime::now() + START_TIMEOUT + job.limits.time + TASK_GRACE;
        let paths = JobPaths {
            target: &target,
            tmp: &tmp,
            run: files.dir(),
            workdir: &workdir,
        };
        let create = self.create_args(job, &name, &paths, deadline)?;
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        docker(&create)?;
        let container = swarm_job.wait_running()?;
        Ok((swarm_job, container, disk))
    }

    fn create_args(
        &self,
        job: &Job,
        name: &str,
        paths: &JobPaths,
        deadline: SystemTime,
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
            format!("synchronicity.image={}", self.image_id),
            format!("synchronicity.limits={}", limits_label(job)),
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
            bind(paths.workdir, "/opt/rustwide/workdir", true)?,
            "--mount".into(),
            bind(paths.target, "/opt/rustwide/target", false)?,
            "--mount".into(),
            bind(paths.tmp, "/tmp", false)?,
            "--mount".into(),
            bind(paths.run, RUN_IN_SANDBOX, false)?,
            "--label".into(),
            format!(
                "synchronicity.deadline={}",
                deadline
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            ),
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
        let idle = START_TIMEOUT + job.limits.time + TASK_GRACE;
        a.extend([
            self.image_id.clone(),
            "sleep".into(),
            idle.as_secs().to_string(),
        ]);
        Ok(a)
    }
}

/// The host directories a job's task mounts.
struct JobPaths<'a> {
    target: &'a Path,
    tmp: &'a Path,
    run: &'a Path,
    workdir: &'a Path,
}

/// Removes the kept jobs no build claimed, each at its deadline; returns once none is left.
fn remove_unclaimed(kept: KeptJobs) {
    loop {
        let now = SystemTime::now();
        let (expired, next) = {
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            let names: Vec<String> = kept
                .iter()
                .filter(|(_, k)| k.deadline <= now)
                .map(|(n, _)| n.clone())
                .collect();
            let expired: Vec<Kept> = names.iter().filter_map(|n| kept.remove(n)).collect();
            (expired, kept.values().map(|k| k.deadline).min())
        };
        for k in expired {
            tracing::info!(service = %k.service, "swarm: a kept job no build claimed is removed at its deadline");
            SwarmJob::new(k.service).remove_quietly();
            drop(k.disk);
        }
        let Some(next) = next else { return };
        let wait = next.duration_since(now).unwrap_or_default();
        std::thread::sleep(wait.min(Duration::from_secs(60)));
    }
}

/// The `synchronicity.limits` label of a job: a digest of its limits.
fn limits_label(job: &Job) -> String {
    let l = format!("{:?}", job.limits);
    hex::encode(&crate::crypto::sha256(l.as_bytes())[..8])
}
