//! One build's swarm job: its service and network (both named alike), waited for until its
//! task runs, and removed container first (Docker 20.10 leaves a removed running job's
//! container running, moby#44312), then service, then network.

use std::time::{Duration, Instant};

use super::super::BuildError;
use super::super::docker::docker;

/// How long a job's task may take to start running (scheduling, container creation).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `container` still runs (`false` also when it is gone).
pub(super) fn is_running(container: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", container])
        .is_ok_and(|s| s.trim() == "true")
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

    /// Waits until the job's one task runs; its container's id.
    pub(super) fn wait_running(&self) -> Result<String, BuildError> {
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
