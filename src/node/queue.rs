//! The node's build queue: at most `max_parallel` (node.toml `[builder] max_parallel`,
//! default 1) build at once, whatever a member orders. Members are served in turn: each
//! requester's requests wait in block order, and the next build is the oldest of the member
//! after the one served last, so one member that orders thousands of requests delays each
//! other member's next request by at most one build, not by its whole flood. The queue is
//! not stored: after a restart the open rounds this node has not committed to are queued
//! again, in the order their requests were ordered.
//!
//! Bounds: one entry per open round (the protocol state bounds those).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::builder::Phase;

/// One running build.
#[derive(Debug, Clone)]
struct Running {
    since: Instant,
    phase: Phase,
}

/// Queued and running builds.
#[derive(Debug, Clone)]
pub struct BuildQueue {
    max_parallel: usize,
    /// Per requester (committee position; `u32::MAX` when unknown), in block order.
    queued: BTreeMap<u32, VecDeque<[u8; 32]>>,
    /// The requester served last.
    last_served: Option<u32>,
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
    pub running: Vec<(String, Phase, u64)>,
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
            queued: BTreeMap::new(),
            last_served: None,
            running: BTreeMap::new(),
            peak: 0,
            local_failures: VecDeque::new(),
        }
    }

    fn is_queued(&self, id: &[u8; 32]) -> bool {
        self.queued.values().any(|q| q.contains(id))
    }

    /// Queues `id`, ordered by member `requester` (false when it is already queued or
    /// running).
    pub fn push(&mut self, id: [u8; 32], requester: u32) -> bool {
        if self.running.contains_key(&id) || self.is_queued(&id) {
            return false;
        }
        self.queued.entry(requester).or_default().push_back(id);
        true
    }

    /// The next request to start, if a slot is free: the oldest of the next requester in
    /// turn after the one served last. It counts as running from now.
    pub fn start_next(&mut self) -> Option<[u8; 32]> {
        if self.running.len() >= self.max_parallel {
            return None;
        }
        let after = self.last_served;
        let next = self
            .queued
            .keys()
            .copied()
            .find(|r| after.is_none_or(|a| *r > a))
            .or_else(|| self.queued.keys().next().copied())?;
        let q = self.queued.get_mut(&next)?;
        let id = q.pop_front()?;
        if q.is_empty() {
            self.queued.remove(&next);
        }
        self.last_served = Some(next);
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
        for q in self.queued.values_mut() {
            q.retain(|x| x != id);
        }
        self.queued.retain(|_, q| !q.is_empty());
    }

    /// Builds running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// For `status`.
    pub fn status(&self) -> QueueStatus {
        QueueStatus {
            max_parallel: self.max_parallel,
            queued: self.queued.values().flatten().map(hex::encode).collect(),
            running: self
                .running
                .iter()
                .map(|(id, r)| {
                    (
                        hex::encode(id),
                        r.phase,
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
            assert!(q.push([i; 32], 0));
        }
        assert!(!q.push([0; 32], 0), "queued once");
        assert_eq!(q.start_next(), Some([0; 32]));
        assert_eq!(q.start_next(), Some([1; 32]));
        assert_eq!(q.start_next(), None, "two running");
        assert!(!q.push([1; 32], 0), "running once");
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

    #[test]
    fn members_are_served_in_turn_whatever_one_orders() {
        let mut q = BuildQueue::new(1);
        // Member 3 orders a thousand requests first, then members 0 and 1 one each.
        for i in 0..1000u32 {
            let mut id = [3u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            q.push(id, 3);
        }
        q.push([100; 32], 0);
        q.push([101; 32], 1);
        let mut order = Vec::new();
        for _ in 0..4 {
            let id = q.start_next().unwrap();
            q.finished(&id);
            order.push(id[0]);
        }
        // 0's and 1's, then the flood: neither waits for it.
        assert_eq!(order, vec![100, 101, 0, 1]);
    }
}
