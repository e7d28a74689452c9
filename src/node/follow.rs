//! Following the registry: new releases of chosen crates are ordered without an operator.
//!
//! The node polls each followed crate's sparse-index file with `If-None-Match` (the ETag of
//! the last answer), one request at a time, at least [`MIN_SPACING`] apart and spread over
//! the interval. A version is a CANDIDATE when it appears after the first poll (the first
//! poll of a crate makes only its newest non-yanked version a candidate: following starts
//! from now, it does not rebuild a crate's history). A candidate is done as soon as the group
//! has ORDERED (an open round) or DECIDED (a log entry) its DEFAULT variant: default
//! settings on the committee's target with the crate's shipped lockfile, or, for a crate
//! that ships none (known once pinned), any generated one. A request that only waits in
//! the mempool, or another variant (other features, a lockfile of someone's choosing),
//! does not count: a junk request gossiped first cannot stop the release's build.
//!
//! **Exactly once across the group**, though every member may follow the same list: each
//! candidate has one designated member (`SHA-256("synchronicity/follow/v1\n" ‖ spec)` mod n);
//! it submits at once, every other member only after the takeover time has passed without
//! the group knowing the version (the designated member is down or cannot pin it). Members
//! pin the same shipped lockfile and so the same request id, which the protocol orders once.
//!
//! State (`DIR/follow.json`: ETags, versions seen, open candidates) is written atomically
//! (temp file, fsync, rename) after each change; after a crash the node re-polls and at
//! worst re-checks candidates the group already knows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::run::{self, Command};
use super::service::BuildService;
use super::shared::Shared;
use crate::builder::{IndexPoll, Registry, index_versions};
use crate::clock::now_ms;
use crate::crypto::sha256;
use crate::protocol::Verdict;
use crate::request::BuildRequest;

/// Most crates one node follows.
pub const MAX_FOLLOWED: usize = 10_000;
/// Shortest gap between two index requests.
pub const MIN_SPACING: Duration = Duration::from_millis(200);
/// Most open candidates kept per crate (a registry that lists thousands of new versions at
/// once gets its newest ones built).
const MAX_CANDIDATES_PER_CRATE: usize = 16;

/// What to follow (node.toml `[follow]`).
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Crate names.
    pub crates: Vec<String>,
    /// How often each crate's index file is polled.
    pub interval: Duration,
    /// The registry to poll.
    pub registry: Registry,
    /// `DIR/follow.json`.
    pub state_file: PathBuf,
}

impl FollowConfig {
    /// How long a non-designated member waits for the designated one.
    pub fn takeover(&self) -> Duration {
        self.interval * 2 + Duration::from_secs(30)
    }
}

/// One crate's polling state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CrateState {
    etag: Option<String>,
    /// Every version seen so far.
    seen: BTreeSet<String>,
    /// Versions to order, with the time (ms since the epoch) they were first seen.
    candidates: BTreeMap<String, u64>,
}

/// The follower's durable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FollowState {
    crates: BTreeMap<String, CrateState>,
}

impl FollowState {
    fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Temp file, fsync, rename: a crash leaves the old state or the new one.
    fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).unwrap_or_default())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

impl CrateState {
    /// Takes in a fresh index file: new non-yanked versions become candidates (on the first
    /// poll only the newest one). Returns true if anything changed.
    fn observe(&mut self, versions: &[(String, bool)], now_ms: u64) -> bool {
        let first = self.seen.is_empty();
        let mut fresh: Vec<&String> = versions
            .iter()
            .filter(|(v, yanked)| !yanked && !self.seen.contains(v))
            .map(|(v, _)| v)
            .collect();
        if first {
            fresh = fresh.into_iter().next_back().into_iter().collect();
        }
        let before = (self.seen.len(), self.candidates.len());
        for v in fresh {
            self.candidates.insert(v.clone(), now_ms);
        }
        // A version yanked since it was seen is no longer wanted.
        for (v, yanked) in versions {
            if *yanked {
                self.candidates.remove(v);
            }
            self.seen.insert(v.clone());
        }
        while self.candidates.len() > MAX_CANDIDATES_PER_CRATE {
            let oldest = self.candidates.keys().next().cloned().unwrap_or_default();
            self.candidates.remove(&oldest);
        }
        before != (self.seen.len(), self.candidates.len())
    }
}

/// Why a followed release could not be ordered (counted, logged, tried again next poll).
#[derive(Debug, thiserror::Error)]
enum OrderError {
    /// The builder could not pin it.
    #[error("{0}")]
    Pin(String),
    /// The pinning task did not finish.
    #[error(transparent)]
    PinTask(#[from] tokio::task::JoinError),
    /// The node did not order it.
    #[error(transparent)]
    Submit(#[from] super::SubmitError),
}

/// The member that orders `spec` first.
pub fn designated(spec: &str, members: usize) -> u32 {
    let h = sha256(format!("synchronicity/follow/v1\n{spec}").as_bytes());
    (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize % members.max(1)) as u32
}

/// Runs the follower until the node stops.
pub(crate) async fn run(
    config: FollowConfig,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    service: Arc<dyn BuildService>,
) {
    let mut state = FollowState::load(&config.state_file);
    let n = shared.committee.members().len();
    let spacing = (config.interval / config.crates.len().max(1) as u32).max(MIN_SPACING);
    loop {
        for name in &config.crates {
            let mut entry = state.crates.remove(name).unwrap_or_default();
            let registry = config.registry.clone();
            let (crate_name, etag) = (name.clone(), entry.etag.clone());
            let poll = tokio::task::spawn_blocking(move || {
                registry.poll_index(&crate_name, etag.as_deref())
            })
            .await;
            shared.counters.follow_polls.fetch_add(1, Ordering::Relaxed);
            let mut changed = false;
            match poll {
                Ok(Ok(IndexPoll::Changed { body, etag })) => {
                    changed |= entry.etag != etag;
                    entry.etag = etag;
                    changed |= entry.observe(&index_versions(&body), now_ms());
                }
                Ok(Ok(IndexPoll::NotModified)) => {
                    shared
                        .counters
                        .follow_not_modified
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(IndexPoll::Unknown)) => {
                    tracing::warn!(krate = %name, "followed crate is not in the index");
                }
                Ok(Err(e)) => {
                    shared
                        .counters
                        .follow_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(krate = %name, error = %e, "polling the index failed");
                }
                Err(_) => return,
            }
            changed |=
                order_candidates(&config, name, &mut entry, &shared, &commands, &service, n).await;
            state.crates.insert(name.clone(), entry);
            if changed && let Err(e) = state.save(&config.state_file) {
                tracing::warn!(error = %e, file = %config.state_file.display(), "cannot save the follow state");
            }
            tokio::time::sleep(spacing).await;
        }
        if commands.is_closed() {
            return;
        }
    }
}

/// Whether the group has the default variant of a release, before pinning it (cheap): an
/// ordered or REPRODUCED request with the shipped lockfile. A decided one that failed does
/// not count here: it may be a request whose `lockfile_shipped` lied (failed
/// invalid-request by every member), which must not stop the real one.
fn known_before_pin(known: &[(BuildRequest, Option<Verdict>)]) -> bool {
    known
        .iter()
        .any(|(r, v)| r.lockfile_shipped && v.is_none_or(|v| v == Verdict::Reproduced))
}

/// Whether the group has the default variant of a release, once pinned as `pinned`: this
/// very build (the same `.crate` and lockfile: any attempt, any verdict; re-attempts are
/// the group's business), or, for a crate that ships no lockfile, an ordered or reproduced
/// build with a generated one (the first of those is its default).
fn known_after_pin(known: &[(BuildRequest, Option<Verdict>)], pinned: &BuildRequest) -> bool {
    known.iter().any(|(r, v)| {
        let same = r.source_sha256 == pinned.source_sha256
            && r.lockfile_sha256 == pinned.lockfile_sha256
            && r.lockfile_shipped == pinned.lockfile_shipped;
        let generated = !pinned.lockfile_shipped
            && !r.lockfile_shipped
            && v.is_none_or(|v| v == Verdict::Reproduced);
        same || generated
    })
}

/// Submits the candidates that are due; drops those whose default variant the group has
/// ordered or decided ([`Shared::default_requests`]: never a request that only waits in
/// the mempool, never another variant; [`known_before_pin`], [`known_after_pin`]). True if
/// any changed.
async fn order_candidates(
    config: &FollowConfig,
    name: &str,
    entry: &mut CrateState,
    shared: &Arc<Shared>,
    commands: &mpsc::Sender<Command>,
    service: &Arc<dyn BuildService>,
    members: usize,
) -> bool {
    let mut changed = false;
    let takeover = config.takeover().as_millis() as u64;
    for (version, since) in entry.candidates.clone() {
        let spec = format!("{name}@{version}");
        if known_before_pin(&shared.default_requests(&spec)) {
            entry.candidates.remove(&version);
            changed = true;
            continue;
        }
        let mine = designated(&spec, members) == shared.me;
        if !mine && now_ms().saturating_sub(since) < takeover {
            continue;
        }
        let (service, krate, v) = (service.clone(), name.to_string(), version.clone());
        let pinned = match tokio::task::spawn_blocking(move || service.pin(&krate, &v, None)).await
        {
            Ok(r) => r.map_err(OrderError::Pin),
            Err(e) => Err(OrderError::PinTask(e)),
        };
        if let Ok(p) = &pinned
            && known_after_pin(&shared.default_requests(&spec), &p.request)
        {
            entry.candidates.remove(&version);
            changed = true;
            continue;
        }
        if shared.mempool.has_request_for(&spec) {
            tracing::debug!(spec = %spec, "a request for this release waits unordered in the mempool; ordering the default variant anyway");
        }
        let result = match pinned {
            Ok(p) => run::submit(commands, p).await.map_err(OrderError::Submit),
            Err(e) => Err(e),
        };
        match result {
            Ok(id) => {
                shared
                    .counters
                    .follow_submitted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(spec = %spec, id = %hex::encode(id), designated = mine, "followed release ordered");
                // Kept until the group has ordered it (then dropped above); submitting the
                // same request again only publishes it again.
            }
            Err(e) => {
                shared
                    .counters
                    .follow_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(spec = %spec, error = %e, "cannot order a followed release");
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(s, y)| (s.to_string(), *y)).collect()
    }

    #[test]
    fn the_first_poll_takes_the_newest_release_later_polls_every_new_one() {
        let mut s = CrateState::default();
        assert!(s.observe(
            &v(&[("1.0.0", false), ("1.1.0", false), ("1.2.0", true)]),
            5
        ));
        assert_eq!(s.candidates.keys().collect::<Vec<_>>(), ["1.1.0"]);
        assert!(!s.observe(
            &v(&[("1.0.0", false), ("1.1.0", false), ("1.2.0", true)]),
            6
        ));
        s.candidates.clear();
        assert!(s.observe(
            &v(&[
                ("1.0.0", false),
                ("1.1.0", false),
                ("1.2.0", true),
                ("1.3.0", false),
                ("1.4.0", false)
            ]),
            7
        ));
        assert_eq!(s.candidates.keys().collect::<Vec<_>>(), ["1.3.0", "1.4.0"]);
        // Yanked after it was seen: no longer wanted.
        s.observe(&v(&[("1.3.0", true), ("1.4.0", false)]), 8);
        assert_eq!(s.candidates.keys().collect::<Vec<_>>(), ["1.4.0"]);
    }

    #[test]
    fn a_failed_or_foreign_variant_does_not_stop_a_release() {
        use Verdict::*;
        let shipped = crate::testing::request("fol", "1.0.0", "shipped").request;
        let mut lying = crate::testing::request("fol", "1.0.0", "# a lie\n").request;
        lying.lockfile_shipped = true; // claims the shipped lockfile; fails invalid-request
        let mut junk = lying.clone();
        junk.lockfile_shipped = false;
        let k = |r: &BuildRequest, v: Option<Verdict>| (r.clone(), v);
        // Before pinning: only an ordered or reproduced shipped one counts.
        assert!(!known_before_pin(&[]));
        assert!(!known_before_pin(&[
            k(&lying, Some(Failed)),
            k(&junk, Some(Reproduced))
        ]));
        assert!(known_before_pin(&[k(&shipped, None)]));
        assert!(known_before_pin(&[k(&shipped, Some(Reproduced))]));
        // Once pinned: this very build (any verdict) counts; a lie or a junk lockfile not.
        assert!(!known_after_pin(
            &[k(&lying, Some(Failed)), k(&junk, None)],
            &shipped
        ));
        assert!(known_after_pin(
            &[k(&shipped, Some(NotReproduced))],
            &shipped
        ));
        // A crate that ships none: an ordered or reproduced generated build counts, a
        // failed one or a lying "shipped" one does not.
        let mut ours = crate::testing::request("fol", "1.0.0", "# generated\n").request;
        ours.lockfile_shipped = false;
        assert!(known_after_pin(&[k(&junk, None)], &ours));
        assert!(known_after_pin(&[k(&junk, Some(Reproduced))], &ours));
        assert!(!known_after_pin(
            &[k(&junk, Some(Failed)), k(&lying, None)],
            &ours
        ));
    }

    #[test]
    fn one_designated_member_per_release_spread_over_the_group() {
        let picks: BTreeSet<u32> = (0..64)
            .map(|i| designated(&format!("c@1.0.{i}"), 4))
            .collect();
        assert_eq!(picks, (0..4).collect());
        assert_eq!(designated("itoa@1.0.15", 4), designated("itoa@1.0.15", 4));
    }

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("follow.json");
        let mut st = FollowState::default();
        st.crates
            .entry("a".into())
            .or_default()
            .observe(&v(&[("0.1.0", false)]), 1);
        st.save(&path).unwrap();
        assert_eq!(FollowState::load(&path), st);
    }
}
