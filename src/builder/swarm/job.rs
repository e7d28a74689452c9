//! One build's swarm job: its service and network (both named alike), waited for until its
//! task runs, and removed container first (Docker 20.10 leaves a removed running job's
//! container running, moby#44312: on a worker, through its engine), then service, then
//! network.

use std::time::{Duration, Instant};

use super::super::BuildError;
use super::super::docker::docker;
use super::engine::Engine;
use super::worker;

/// How long a job's task may take to start running on this node (scheduling, container
/// creation).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a job's task may take to start running on a worker: its engine is another
/// machine, busy with other members' builds and image loads, that must also attach the
/// job's overlay network and make its volumes. A task that a worker took and did not start
/// in this time is taken as lost there (the job is rescheduled on another worker).
pub(super) const WORKER_START_TIMEOUT: Duration = Duration::from_secs(180);

/// A task's status text as reported by its node (a worker's, untrusted): trimmed, at most
/// 200 characters.
fn short(s: &str) -> String {
    s.trim().chars().take(200).collect()
}

/// Whether `container` still runs on `engine` (`None`: this engine); `false` also when it
/// is gone or its engine does not answer.
pub(super) fn is_running(engine: Option<&Engine>, container: &str) -> bool {
    super::docker_at(
        engine,
        &["inspect", "--format", "{{.State.Running}}", container],
    )
    .is_ok_and(|s| s.trim() == "true")
}

/// The container and node of `service`'s task that has a container, if any (from the
/// manager's record of its tasks).
pub(super) fn task_of(service: &str) -> Option<(String, String)> {
    tasks_of(service).into_iter().next()
}

/// The containers and nodes of `service`'s tasks.
fn tasks_of(service: &str) -> Vec<(String, String)> {
    let Ok(tasks) = docker(&["service", "ps", "-q", "--no-trunc", service]) else {
        return Vec::new();
    };
    tasks
        .split_whitespace()
        .filter_map(|task| {
            let info = docker(&[
                "inspect",
                "--format",
                "{{.NodeID}}|{{.Status.ContainerStatus.ContainerID}}",
                task,
            ])
            .ok()?;
            let (node, container) = info.split_once('|')?;
            let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
            (hex(container) && !node.is_empty()).then(|| (container.to_string(), node.to_string()))
        })
        .collect()
}

/// Removes `container` from `engine`, or waits (at most 20 s) until someone else has.
fn remove_container(engine: Option<&Engine>, container: &str) -> Result<(), BuildError> {
    // `-v`: a worker task's memory volumes go with it.
    if let Err(e) = super::docker_at(engine, &["rm", "-f", "-v", container]) {
        // Someone else removes it (a lost task: the engine, an operator), or its engine is
        // gone: wait until it is not there, at most 20 s.
        let start = Instant::now();
        while super::docker_at(engine, &["inspect", "--format", "{{.Id}}", container]).is_ok() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Why a job's task does not run: it ended on a node before the build (a worker that
/// rejected it) or a node took it and did not start it, or anything else.
pub(super) enum NotRunning {
    OnNode(String, BuildError),
    Other(BuildError),
}

impl NotRunning {
    /// `e` on `node` as the task's status names it (empty: no node took the task).
    fn at(node: &str, e: BuildError) -> Self {
        match node {
            "" => Self::Other(e),
            n => Self::OnNode(n.to_string(), e),
        }
    }
}

impl From<NotRunning> for BuildError {
    fn from(e: NotRunning) -> Self {
        match e {
            NotRunning::OnNode(_, e) | NotRunning::Other(e) => e,
        }
    }
}

impl From<BuildError> for NotRunning {
    fn from(e: BuildError) -> Self {
        Self::Other(e)
    }
}

/// One build's swarm job (its service and network, both named `name`); dropping it removes
/// them unless [`SwarmJob::remove`] already tried.
pub(super) struct SwarmJob {
    name: String,
    removed: bool,
}

impl SwarmJob {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            removed: false,
        }
    }

    /// Waits (at most `limit`) until the job's one task runs; its container's id and its
    /// node's. A task not running at `limit` is [`NotRunning::OnNode`] if a node took it.
    pub(super) fn wait_running(&self, limit: Duration) -> Result<(String, String), NotRunning> {
        let start = Instant::now();
        // What the task was last seen doing, for the error at the time limit.
        let mut last = String::from("no task yet");
        let mut taken_by = String::new();
        loop {
            let tasks = docker(&["service", "ps", "-q", "--no-trunc", &self.name])?;
            if let Some(task) = tasks.split_whitespace().next() {
                // The status as JSON: a task without a container yet has no
                // `ContainerStatus` key, which a template cannot ask for.
                let status =
                    docker(&["inspect", "--format", "{{.NodeID}}|{{json .Status}}", task])?;
                let (node, status) = status.split_once('|').unwrap_or(("", &status));
                let status: serde_json::Value = serde_json::from_str(status)
                    .map_err(|e| BuildError::Backend(format!("swarm: task status: {e}")))?;
                let state = status["State"].as_str().unwrap_or("");
                let container = status["ContainerStatus"]["ContainerID"]
                    .as_str()
                    .unwrap_or("");
                match state {
                    "running" if !container.is_empty() => {
                        return Ok((container.into(), node.into()));
                    }
                    "failed" | "rejected" | "shutdown" | "complete" | "orphaned" => {
                        let e = BuildError::Backend(format!(
                            "swarm: the job's task is {state} before the build: {}",
                            short(status["Err"].as_str().unwrap_or(""))
                        ));
                        return Err(NotRunning::at(node, e));
                    }
                    _ => {
                        taken_by = node.to_string();
                        last = format!(
                            "{state} on node {}: {} {}",
                            if node.is_empty() { "(none)" } else { node },
                            short(status["Message"].as_str().unwrap_or("")),
                            short(status["Err"].as_str().unwrap_or(""))
                        );
                    }
                }
            }
            if start.elapsed() > limit {
                let e = BuildError::Backend(format!(
                    "swarm: the job's task did not start in {} s (last seen: {last})",
                    limit.as_secs()
                ));
                return Err(NotRunning::at(&taken_by, e));
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
    pub(super) fn remove(&mut self) -> Result<(), BuildError> {
        self.removed = true;
        self.teardown()
    }

    /// Removes what there is of the job, ignoring what is not there.
    pub(super) fn remove_quietly(mut self) {
        self.removed = true;
        let _ = self.teardown();
    }

    fn teardown(&self) -> Result<(), BuildError> {
        // Its tasks' containers wherever they run (a worker's through the engine its label
        // names; a node without one is this engine's), then any left here.
        for (container, node) in tasks_of(&self.name) {
            let engine = worker::engine_of(&node).ok();
            remove_container(engine.as_ref(), &container)?;
        }
        for c in self.containers() {
            remove_container(None, &c)?;
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
