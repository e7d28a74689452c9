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
mod unpack;
mod worker;

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
use job::{START_TIMEOUT, SwarmJob, WORKER_START_TIMEOUT, is_running, task_of};
use worker::{CARGO_HOME_IN_SANDBOX, ImageSent, TARGET_IN_SANDBOX, docker_on};

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
    /// The worker's engine the task runs on (`None`: this engine).
    engine: Option<Engine>,
}

/// The kept jobs, by job name (shared with the thread that removes unclaimed ones).
type KeptJobs = Arc<Mutex<HashMap<String, Kept>>>;

/// Where a job's task runs.
enum Placement {
    /// On this node (`node.id` constraint), the inputs and the build's disk bind mounts of
    /// this host's directories.
    Manager { node_id: String },
    /// On the swarm's labelled worker nodes, in the workers' image (made at the first
    /// build: minutes, not at the node's start), inputs streamed in and results streamed
    /// back (`worker.rs`).
    Workers {
        base_tag: String,
        image: Mutex<Option<String>>,
        sent: ImageSent,
    },
}

pub(crate) struct SwarmBackend {
    ws: BuildWorkspace,
    /// The sandbox image (what a build report names; a worker's image adds the toolchain).
    image_id: String,
    work_label: String,
    placement: Placement,
    /// This engine's API, for execs (the CLI has no way to read an exec's exit code).
    engine: Engine,
    kept: KeptJobs,
}

/// A job's running task: its job, its container, the build's disk on this host, and the
/// worker's engine it runs on (`None`: this engine).
struct Task {
    job: SwarmJob,
    container: String,
    disk: DiskLimit,
    engine: Option<Engine>,
    /// Its swarm node (empty for a kept one).
    node: String,
}

/// `docker args…` on `engine` (`None`: this engine).
fn docker_at(engine: Option<&Engine>, args: &[&str]) -> Result<String, BuildError> {
    match engine {
        Some(e) => docker_on(e, args),
        None => docker(args),
    }
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
            "swarm: this Docker engine is not a swarm manager ({info}); run `docker swarm init --advertise-addr ADDR` (scripts/test.sh uses the docker0 bridge's address, which worker engines in containers reach)"
        ))),
    }
}

impl SwarmBackend {
    /// The backend on this engine's swarm; with `workers`, builds run on the swarm's
    /// labelled worker nodes, else on this node.
    pub(crate) fn new(ws: &BuildWorkspace, tag: &str, workers: bool) -> Result<Self, BuildError> {
        let image = image_id(tag)?;
        let node_id = swarm_manager()?;
        let placement = if workers {
            Placement::Workers {
                base_tag: tag.to_string(),
                image: Mutex::default(),
                sent: ImageSent::default(),
            }
        } else {
            Placement::Manager { node_id }
        };
        let backend = Self {
            ws: ws.clone(),
            image_id: image,
            work_label: work_label(ws),
            placement,
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
        let (container, node) = task_of(service)?;
        let engine = match &self.placement {
            Placement::Manager { .. } => None,
            Placement::Workers { .. } => Some(worker::engine_of(&node).ok()?),
        };
        if !is_running(engine.as_ref(), &container) {
            return None;
        }
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
                engine,
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
        let mut lost_on = None;
        match self.run_once(job, None, &mut lost_on)? {
            Some(out) => Ok(out),
            None => {
                tracing::warn!(job = %job.name, node = ?lost_on, "swarm: the job's task was lost mid-build; rescheduling it once");
                // Not on the node that lost it (its engine may be gone, and the swarm may not
                // know yet).
                let avoid = lost_on.clone();
                match self.run_once(job, avoid.as_deref(), &mut lost_on)? {
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

    /// One job for `job` (the one kept for it after a restart, else a new one, not on node
    /// `avoid`); `None` if its task was lost mid-build (`lost_on`: its node).
    fn run_once(
        &self,
        job: &Job,
        avoid: Option<&str>,
        lost_on: &mut Option<String>,
    ) -> Result<Option<RunOutput>, BuildError> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.name);
        let kept = match kept {
            Some(k) if k.image == self.task_image()? && k.limits == limits_label(job) => Some(k),
            Some(k) => {
                tracing::info!(job = %job.name, "swarm: the kept job ran with another image or other limits; starting a new one");
                SwarmJob::new(k.service).remove_quietly();
                None
            }
            None => None,
        };
        let reattached = kept.is_some();
        let task = match kept {
            Some(k) => {
                tracing::info!(job = %job.name, "swarm: re-attached to the job a predecessor started");
                Task {
                    job: SwarmJob::new(k.service),
                    container: k.container,
                    disk: k.disk,
                    engine: k.engine,
                    node: String::new(),
                }
            }
            None => match self.start_job(job, avoid) {
                Ok(task) => task,
                Err(Started::Lost(node)) => {
                    *lost_on = Some(node);
                    return Ok(None);
                }
                Err(Started::Failed(e)) => return Err(e),
            },
        };
        let Task {
            job: mut swarm_job,
            container,
            disk,
            engine: on_worker,
            node,
        } = task;
        let exec_engine = on_worker.as_ref().unwrap_or(&self.engine);
        let files = RunFiles::at(disk.mount_point());
        let record = ExecRecord::beside(disk.mount_point());
        let lost = |swarm_job: &mut SwarmJob, lost_on: &mut Option<String>| {
            record.clear();
            *lost_on = Some(node.clone()).filter(|n| !n.is_empty());
            swarm_job.remove()
        };
        let (exec, deadline) = match record.read() {
            Some((exec, started)) => {
                let end = started + job.limits.time;
                let left = end.duration_since(SystemTime::now()).unwrap_or_default();
                (exec, Instant::now() + left)
            }
            // No record on a job a predecessor left: it crashed before the build's exec
            // (on a worker: maybe mid-way through the inputs): lost, run anew on a fresh
            // disk, never on what it may have left half done.
            None if reattached => {
                lost(&mut swarm_job, lost_on)?;
                return Ok(None);
            }
            // No record: no build was started on this disk (it is recorded first).
            None => match detached::start(exec_engine, &container, job, &record) {
                Ok(exec) => (exec, Instant::now() + job.limits.time),
                Err(_) if !is_running(on_worker.as_ref(), &container) => {
                    lost(&mut swarm_job, lost_on)?;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            },
        };
        let kill = || {
            // On a worker the build's processes are killed in the task, which stays for its
            // output and counters to be read; else (or if that fails) `kill`, else `rm -f`
            // (the watcher calls this once; the build must end).
            let on = on_worker.as_ref();
            if let Some(e) = on
                && worker::kill_build(e, &container, job.limits.processes).is_ok()
            {
                return;
            }
            if docker_at(on, &["kill", &container]).is_err() {
                let _ = docker_at(on, &["rm", "-f", &container]);
            }
        };
        // Output by the files' sizes: here on the build's disk, on a worker in the task
        // (every other tick: each look is an exec there).
        let last = std::cell::Cell::new(0u64);
        let ticks = std::cell::Cell::new(0u32);
        let written = || match &on_worker {
            None => files.written(),
            Some(e) => {
                ticks.set(ticks.get() + 1);
                if ticks.get() % 10 == 1 {
                    last.set(worker::written(e, &container).unwrap_or(last.get()));
                }
                last.get()
            }
        };
        let ended = match detached::watch(
            exec_engine,
            &exec,
            &written,
            job.limits.output,
            deadline,
            &kill,
        ) {
            Ok(ended) => ended,
            // A worker whose engine stopped answering: its task is lost with it.
            Err(e) if on_worker.as_ref().is_some_and(|w| w.ping().is_err()) => {
                tracing::warn!(job = %job.name, "swarm: the worker's engine went away: {e}");
                lost(&mut swarm_job, lost_on)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let running = is_running(on_worker.as_ref(), &container);
        let (exceeded, remote_full) = match &on_worker {
            None => (exceeded(&container), false),
            // The counters are read in the task (a gone task is lost, below).
            Some(e) if running => {
                worker::kill_build(e, &container, job.limits.processes)?;
                worker::counters(e, &container)?
            }
            Some(_) => Default::default(),
        };
        let stopped = ended.killed_by_watcher() || exceeded.oom_kills > 0;
        // The task's PID 1 idles and no signal from inside its PID namespace can stop it: a
        // task that stopped (or is gone) while neither the watcher nor the OOM killer
        // stopped it was stopped from outside (a worker engine that went away, an
        // operator), whatever the engine recorded for the build.
        if !running && !stopped {
            lost(&mut swarm_job, lost_on)?;
            return Ok(None);
        }
        // A worker's results come back before its task is removed (its files are there).
        let mut over_disk = false;
        if let Some(e) = &on_worker
            && running
        {
            match worker::fetch_results(
                e,
                &container,
                disk.mount_point(),
                job.limits.disk,
                job.limits.output,
            ) {
                Ok(worker::Fetched::All) => {}
                // More than fits a disk of the build's size (files, inodes): on the host's
                // own disk the build would have met the same wall.
                Ok(worker::Fetched::DiskFull) => over_disk = true,
                Err(_) if e.ping().is_err() || !is_running(Some(e), &container) => {
                    lost(&mut swarm_job, lost_on)?;
                    return Ok(None);
                }
                Err(err) => return Err(err),
            }
        }
        // Every process of the build is gone before the host reads its files and walks its
        // target directory; a job that cannot be removed is the host's failure (nothing is
        // committed).
        record.clear();
        swarm_job.remove()?;
        let (status, timed_out, output_over) = match ended {
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
            } if !running || timed_out || output_over => {
                (ExitStatus::from_raw(137 << 8), timed_out, output_over)
            }
            // The task runs and the engine has no end for the build: it forgot it (a
            // restart long after), or the exec never ran (a crash between its record and
            // its start).
            Ended::Unknown { .. } => return Ok(None),
        };
        let (captured, over) = files.read(job.limits.output);
        // A build whose results did not fit its disk did not succeed (cargo, writing them
        // on such a disk, would have exited 101).
        let status = if over_disk && status.success() {
            ExitStatus::from_raw(101 << 8)
        } else {
            status
        };
        let watched = Watched {
            status,
            timed_out,
            output_over: output_over || over,
            captured,
            disk_seen_full: remote_full || over_disk,
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

    /// How long a task's PID 1 idles: its start, the build's time, a grace, and on a worker
    /// the streams of its inputs and results.
    fn task_life(&self, job: &Job) -> Duration {
        let life = self.start_timeout() + job.limits.time + TASK_GRACE;
        match self.placement {
            Placement::Manager { .. } => life,
            Placement::Workers { .. } => life + 2 * worker::STREAM_TIMEOUT,
        }
    }

    /// How long a new job's task may take to start.
    fn start_timeout(&self) -> Duration {
        match self.placement {
            Placement::Manager { .. } => START_TIMEOUT,
            Placement::Workers { .. } => WORKER_START_TIMEOUT,
        }
    }

    /// The image a task runs (the workers' image is made the first time it is asked for).
    fn task_image(&self) -> Result<String, BuildError> {
        match &self.placement {
            Placement::Manager { .. } => Ok(self.image_id.clone()),
            Placement::Workers {
                base_tag, image, ..
            } => {
                let mut image = image.lock().unwrap_or_else(|e| e.into_inner());
                if image.is_none() {
                    *image = Some(worker::worker_image(&self.ws, &self.image_id, base_tag)?);
                }
                Ok(image.clone().unwrap_or_default())
            }
        }
    }

    /// A new job for `job`, not on node `avoid`, its task running (on a worker: its inputs
    /// streamed in).
    fn start_job(&self, job: &Job, avoid: Option<&str>) -> Result<Task, Started> {
        let base = self.ws.root().join("swarm-builds").join(&job.name);
        let on_workers = matches!(self.placement, Placement::Workers { .. });
        let (disk, paths) = if on_workers {
            // The results come back onto a disk of the build's size (and its output).
            let size = job
                .limits
                .disk
                .saturating_add(job.limits.output.saturating_mul(2))
                .saturating_add(1 << 20);
            let disk = DiskLimit::mount(&base, &self.ws.disks(), size)?;
            for d in ["target", "run"] {
                let p = disk.mount_point().join(d);
                std::fs::create_dir_all(&p)
                    .map_err(|e| BuildError::Backend(format!("{}: {e}", p.display())))?;
            }
            (disk, None)
        } else {
            let disk = DiskLimit::mount(&base, &self.ws.disks(), job.limits.disk)?;
            let (target, tmp) = disk.build_dirs()?;
            let files = RunFiles::at(disk.mount_point());
            files.make()?;
            let workdir = self.ws.root().join("swarm-builds/empty-workdir");
            std::fs::create_dir_all(&workdir)
                .map_err(|e| BuildError::Backend(format!("{}: {e}", workdir.display())))?;
            (
                disk,
                Some((target, tmp, files.dir().to_path_buf(), workdir)),
            )
        };
        ExecRecord::beside(disk.mount_point()).clear();
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
        let deadline = SystemTime::now() + self.task_life(job);
        let mounts = match &paths {
            Some((target, tmp, run, workdir)) => self.manager_mounts(&JobPaths {
                source: &job.source,
                target,
                tmp,
                run,
                workdir,
            })?,
            None => worker_mounts(job),
        };
        let placement = match (&self.placement, avoid) {
            (Placement::Manager { node_id }, _) => vec![format!("node.id=={node_id}")],
            (Placement::Workers { sent, .. }, avoid) => {
                let (workers, unusable) = worker::workers()?;
                let workers: Vec<_> = workers
                    .into_iter()
                    .filter(|(id, _)| Some(id.as_str()) != avoid)
                    .collect();
                let ready = sent.ensure(&self.task_image()?, &workers);
                if ready.is_empty() {
                    return Err(BuildError::Backend(
                        "swarm: no worker node is ready with the image (label synchronicity.worker=true, README \"Run a node\")".into(),
                    )
                    .into());
                }
                // Only where the image is and the engine is known: every other labelled
                // node is excluded by name (the swarm still spreads over the rest).
                let mut c = vec!["node.labels.synchronicity.worker==true".to_string()];
                let excluded = workers
                    .iter()
                    .map(|(id, _)| id)
                    .filter(|id| !ready.contains(id))
                    .chain(&unusable)
                    .map(|id| id.as_str())
                    .chain(avoid);
                c.extend(excluded.map(|id| format!("node.id!={id}")));
                c
            }
        };
        let create = self.create_args(job, &name, &mounts, &placement, deadline)?;
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        docker(&create)?;
        let (container, node) = match swarm_job.wait_running(self.start_timeout()) {
            Ok(task) => task,
            // A worker that rejected the task (its image gone, its engine failing), or took
            // it and did not start it in time, lost it.
            Err(job::NotRunning::OnNode(node, e)) if on_workers => {
                tracing::warn!(%node, "swarm: {e}");
                let mut swarm_job = swarm_job;
                swarm_job.remove()?;
                return Err(Started::Lost(node));
            }
            Err(e) => return Err(BuildError::from(e).into()),
        };
        let engine = if on_workers {
            Some(worker::engine_of(&node)?)
        } else {
            None
        };
        if let Some(e) = &engine
            && let Err(err) = worker::send_inputs(e, &container, &job.source, &self.ws)
        {
            let mut swarm_job = swarm_job;
            if e.ping().is_err() || !is_running(Some(e), &container) {
                swarm_job.remove()?;
                return Err(Started::Lost(node));
            }
            return Err(err.into());
        }
        Ok(Task {
            job: swarm_job,
            container,
            disk,
            engine,
            node,
        })
    }

    /// The mounts of a task on this node: the workspace's homes and the source read-only,
    /// the build's disk read-write (bind mounts of this host's directories).
    fn manager_mounts(&self, paths: &JobPaths) -> Result<Vec<String>, BuildError> {
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
        Ok(vec![
            bind(&self.ws.cargo_home(), "/opt/rustwide/cargo-home", true)?,
            bind(&self.ws.rustup_home(), "/opt/rustwide/rustup-home", true)?,
            bind(paths.source, SOURCE_IN_SANDBOX, true)?,
            bind(paths.workdir, "/opt/rustwide/workdir", true)?,
            bind(paths.target, "/opt/rustwide/target", false)?,
            bind(paths.tmp, "/tmp", false)?,
            bind(paths.run, RUN_IN_SANDBOX, false)?,
        ])
    }

    fn create_args(
        &self,
        job: &Job,
        name: &str,
        mounts: &[String],
        constraints: &[String],
        deadline: SystemTime,
    ) -> Result<Vec<String>, BuildError> {
        let image = self.task_image()?;
        let tmpfs = |path: &str, mode: &str| {
            format!(
                "type=tmpfs,dst={path},tmpfs-size={},tmpfs-mode={mode}",
                job.limits.memory
            )
        };
        let labels = [
            format!("synchronicity.work={}", self.work_label),
            format!("synchronicity.job={}", job.name),
            format!("synchronicity.image={image}"),
            format!("synchronicity.limits={}", limits_label(job)),
        ];
        // On a worker the build's disk is memory (`worker_mounts`): its limit is counted in.
        let memory = match self.placement {
            Placement::Manager { .. } => job.limits.memory,
            Placement::Workers { .. } => job.limits.memory.saturating_add(job.limits.disk),
        };
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
            memory.to_string(),
            "--limit-pids".into(),
            job.limits.processes.to_string(),
            "--mount".into(),
            tmpfs("/root", "1777"),
            "--mount".into(),
            tmpfs("/var/tmp", "1777"),
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
        if let Placement::Manager { .. } = self.placement {
            // The image's /opt is covered (the homes are mounted into it); a worker's image
            // holds the toolchain there.
            a.extend(["--mount".into(), tmpfs("/opt", "755")]);
        }
        for m in mounts {
            a.extend(["--mount".into(), m.clone()]);
        }
        for c in constraints {
            a.extend(["--constraint".into(), c.clone()]);
        }
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
        let idle = self.task_life(job);
        a.extend([image, "sleep".into(), idle.as_secs().to_string()]);
        Ok(a)
    }
}

/// The mounts of a task on a worker: memory filesystems the inputs are streamed into (the
/// source, the cargo home) and the build writes (its target directory and `/tmp`, of the
/// disk limit each; its output files, of twice the output cap). Each is a task-scoped
/// volume of the local driver mounting a `tmpfs`: a service's own tmpfs mounts are always
/// `noexec` on this engine (its API has no option for it), and build scripts run from the
/// target directory. Removed with the task's container (`rm -v`).
fn worker_mounts(job: &Job) -> Vec<String> {
    let tmpfs = |path: &str, size: u64, mode: &str| {
        // `--mount` is CSV: the quoted field keeps the options' commas.
        // As many inodes as ext4 gives a disk of this size (one per 16 KiB, mkfs's
        // default): a build that makes many small files meets the wall it meets here.
        format!(
            "type=volume,dst={path},volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,\"volume-opt=o=size={size},nr_inodes={},mode={mode},nosuid,nodev\"",
            (size / 16384).max(1024)
        )
    };
    let l = &job.limits;
    vec![
        tmpfs(SOURCE_IN_SANDBOX, l.memory, "755"),
        tmpfs(CARGO_HOME_IN_SANDBOX, l.memory, "755"),
        tmpfs(TARGET_IN_SANDBOX, l.disk, "1777"),
        tmpfs("/tmp", l.disk, "1777"),
        tmpfs(
            RUN_IN_SANDBOX,
            l.output.saturating_mul(2).saturating_add(1 << 20),
            "1777",
        ),
    ]
}

/// Why a job did not start: its task was lost on this node, or anything else.
enum Started {
    Lost(String),
    Failed(BuildError),
}

impl From<BuildError> for Started {
    fn from(e: BuildError) -> Self {
        Self::Failed(e)
    }
}

/// The host paths a task on this node mounts.
struct JobPaths<'a> {
    source: &'a Path,
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
