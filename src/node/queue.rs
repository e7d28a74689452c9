//! The node's build queue: ordered requests wait in block order, and at most
//! `max_parallel` (node.toml `[builder] max_parallel`, default 1) build at once, whatever a
//! member orders. The queue is not stored: after a restart the open rounds this node has not
//! committed to are queued again, in the order their requests were ordered.
//!
//! Bounds: one entry per open round (the protocol state bounds those).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::build::Phase;

/// One running build.
#[derive(Debug, Clone)]
struct Running {
    since: Instant,
    phase: Phase,
}

/// Queued and running builds.
#[derive(Debug)]
pub struct BuildQueue {
    max_parallel: usize,
    queued: VecDeque<[u8; 32]>,
    running: BTreeMap<[u8; 32], Running>,
    /// The most builds that ever ran at once (the node's own accounting).
    peak: usize,
    /// The latest builds that could not run for a local reason (newest last).
    local_failures: VecDeque<([u8; 32], String)>,
}

/// Local failures remembered for `status`.
const MAX_LOCAL_FAILURES: usize = 16;

/// What `status` shows of the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// `[builder] max_parallel`.
    pub max_parallel: usize,
    /// Waiting requests (hex ids), first to start first.
    pub queued: Vec<String>,
    /// Running builds: (hex id, phase, elapsed ms).
    pub running: Vec<(String, String, u64)>,
    /// The most builds that ran at once since the node started.
    pub peak_running: usize,
    /// The latest builds this member could not run for a local reason (it committed
    /// nothing for them): (hex id, why), newest last.
    #[serde(default)]
    pub local_failures: Vec<(String, String)>,
}

impl BuildQueue {
    /// An empty queue running at most `max_parallel` (at least 1) builds at once.
    pub fn new(max_parallel: usize) -> Self {
        Self {
            max_parallel: max_parallel.max(1),
            queued: VecDeque::new(),
            running: BTreeMap::new(),
            peak: 0,
            local_failures: VecDeque::new(),
        }
    }

    /// Queues `id` (false when it is already queued or running).
    pub fn push(&mut self, id: [u8; 32]) -> bool {
        if self.running.contains_key(&id) || self.queued.contains(&id) {
            return false;
        }
        self.queued.push_back(id);
        true
    }

    /// The next request to start, if a slot is free; it counts as running from now.
    pub fn start_next(&mut self) -> Option<[u8; 32]> {
        if self.running.len() >= self.max_parallel {
            return None;
        }
        let id = self.queued.pop_front()?;
        self.running.insert(
            id,
            Running {
                since: Instant::now(),
                phase: Phase::Resolve,
            },
        );
        self.peak = self.peak.max(self.running.len());
        Some(id)
    }

    /// A running build reached `phase`.
    pub fn set_phase(&mut self, id: &[u8; 32], phase: Phase) {
        if let Some(r) = self.running.get_mut(id) {
            r.phase = phase;
        }
    }

    /// A running build ended; how long it ran.
    pub fn finished(&mut self, id: &[u8; 32]) -> Option<Duration> {
        self.running.remove(id).map(|r| r.since.elapsed())
    }

    /// A build could not run here (the registry is unreachable, the sandbox is missing...):
    /// this member commits nothing for it; remembered for `status`.
    pub fn local_failure(&mut self, id: [u8; 32], why: String) {
        if self.local_failures.len() >= MAX_LOCAL_FAILURES {
            self.local_failures.pop_front();
        }
        self.local_failures.push_back((id, why));
    }

    /// Drops a queued request (its round closed before its build started).
    pub fn forget(&mut self, id: &[u8; 32]) {
        self.queued.retain(|q| q != id);
    }

    /// Builds running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// For `status`.
    pub fn status(&self) -> QueueStatus {
        QueueStatus {
            max_parallel: self.max_parallel,
            queued: self.queued.iter().map(hex::encode).collect(),
            running: self
                .running
                .iter()
                .map(|(id, r)| {
                    (
                        hex::encode(id),
                        format!("{:?}", r.phase).to_lowercase(),
                        r.since.elapsed().as_millis() as u64,
                    )
                })
                .collect(),
            peak_running: self.peak,
            local_failures: self
                .local_failures
                .iter()
                .map(|(id, why)| (hex::encode(id), why.clone()))
                .collect(),
        }
    }
}

/// Upper bounds (seconds) of the build-duration histogram's buckets (then +Inf).
pub const BUILD_SECONDS_BUCKETS: [u64; 6] = [1, 10, 60, 300, 900, 1800];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_parallel_run_in_order() {
        let mut q = BuildQueue::new(2);
        for i in 0..5u8 {
            assert!(q.push([i; 32]));
        }
        assert!(!q.push([0; 32]), "queued once");
        assert_eq!(q.start_next(), Some([0; 32]));
        assert_eq!(q.start_next(), Some([1; 32]));
        assert_eq!(q.start_next(), None, "two running");
        assert!(!q.push([1; 32]), "running once");
        q.forget(&[2; 32]);
        q.finished(&[0; 32]).unwrap();
        assert_eq!(
            q.start_next(),
            Some([3; 32]),
            "block order, minus the forgotten"
        );
        assert_eq!(q.status().peak_running, 2);
        assert_eq!(q.status().queued, vec![hex::encode([4u8; 32])]);
    }
}
