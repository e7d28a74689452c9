//! What every part of the node reads and none owns alone: the committee, the log store, the
//! counters, the mempool, the fail-stop flag, and the views the owners publish (the protocol
//! state after each height, the build queue after each change).
//!
//! Nothing here is behind a lock a reader can wait on for long: the committee and our
//! position never change; the store is redb (its own transactions: readers never wait for
//! a writer); counters are atomics; the mempool has its own leaf lock
//! ([`super::mempool::MessagePool`]); the views are `watch` channels whose value is an
//! immutable snapshot, cloned out (an `Arc` or a small copy) and read without a lock. The
//! protocol state itself is owned by the consensus app ([`super::app::NodeApp`]); the
//! build queue by the builder driver ([`super::builder_driver::BuilderDriver`]).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::watch;

use super::app::{DecodeBlockError, decode_block};
use super::artifacts::ArtifactStore;
use super::backlog::BacklogProgress;
use super::mempool::MessagePool;
use super::queue::{BuildQueue, QueueStatus};
use crate::committee::Committee;
use crate::consensus::record::{DecidedRecord, RecordError};
use crate::log::{CheckpointError, CosignedCheckpoint, LogStore, StoreError};
use crate::protocol::{
    BlockError, DecidedIndex, Env, EnvelopeCache, ProtocolParams, ProtocolState, Verdict,
};
use crate::request::BuildRequest;

/// Least time between two checks of one member's gossiped approvals.
pub(crate) const APPROVAL_CHECK_SPACING: std::time::Duration = std::time::Duration::from_secs(1);

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Entries logged with verdict reproduced.
    pub reproduced: AtomicU64,
    /// Entries logged with verdict failed.
    pub failed: AtomicU64,
    /// Entries logged with verdict not reproduced.
    pub not_reproduced: AtomicU64,
    /// Builds this node ran.
    pub builds: AtomicU64,
    /// Their total wall time, milliseconds.
    pub build_ms: AtomicU64,
    /// Builds by duration: one counter per bucket of [`super::queue::BUILD_SECONDS_BUCKETS`]
    /// (at most that many seconds), then one for longer.
    pub build_seconds: [AtomicU64; 7],
    /// Builds that could not run for a local reason (nothing committed).
    pub local_failures: AtomicU64,
    /// This member's failed builds, by class: one counter per entry of
    /// [`FAILURE_CLASSES`](synchronicity_verify::entry::FAILURE_CLASSES), in its order
    /// ([`FailureClass::index`](crate::protocol::FailureClass::index)).
    pub build_failures: [AtomicU64; synchronicity_verify::entry::FAILURE_CLASSES.len()],
    /// Consensus frames dropped because the actor's queue was full.
    pub frames_dropped: AtomicU64,
    /// Index polls of followed crates.
    pub follow_polls: AtomicU64,
    /// Of which answered `304 Not Modified`.
    pub follow_not_modified: AtomicU64,
    /// Followed releases this node ordered.
    pub follow_submitted: AtomicU64,
    /// Polls or orders of followed releases that failed.
    pub follow_errors: AtomicU64,
    /// Gossiped protocol messages rejected as invalid (not decodable, a bad envelope, a
    /// request this committee can never order): not admitted, not relayed.
    pub gossip_invalid: AtomicU64,
    /// Gossiped messages refused because their author holds the mempool's per-member
    /// message or byte bound, or the pool is full (not admitted, not relayed; nothing
    /// evicted).
    pub mempool_refused_over_budget: AtomicU64,
    /// HTTP connections closed at once: the server's or one address's limit was reached.
    pub http_connections_refused: AtomicU64,
    /// HTTP requests answered 429 (the client address's rate).
    pub http_rate_limited: AtomicU64,
}

/// The protocol state as of an applied height: what the consensus app publishes after each
/// height, immutable. Readers hold an `Arc` to it for as long as they like; the app never
/// waits for them.
#[derive(Debug, Clone)]
pub struct StateView {
    /// Last applied height (0 before the first).
    pub height: u64,
    /// The open rounds after it.
    pub state: ProtocolState,
}

/// The consensus app's part of a restored node: the protocol state it alone owns, the
/// applied height, and the sending end of the view every other part reads.
#[derive(Debug)]
pub struct AppState {
    /// Open rounds, as of the applied height.
    pub state: ProtocolState,
    /// Last applied height (0 before the first).
    pub height: u64,
    /// Where the app publishes a [`StateView`] after each height.
    pub(crate) view: watch::Sender<Arc<StateView>>,
}

/// Why the node's state could not be opened from its log store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored open-round row does not decode.
    #[error("{0}")]
    Snapshot(String),
    /// A height the store says is applied has no decided block.
    #[error("the log store lacks the decided block of height {0}")]
    MissingBlock(u64),
    /// A stored decided record does not decode.
    #[error("height {height}: {source}")]
    Record {
        /// Its height.
        height: u64,
        /// Why.
        source: RecordError,
    },
    /// A stored block does not decode.
    #[error(transparent)]
    Block(#[from] DecodeBlockError),
    /// A stored block does not apply to the state before it.
    #[error("stored block {height} does not apply: {source}")]
    Replay {
        /// Its height.
        height: u64,
        /// Why.
        source: BlockError,
    },
}

/// Why the latest cosigned checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LatestCheckpointError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored note does not verify against the committee.
    #[error(transparent)]
    Verify(#[from] CheckpointError),
}

/// The log's request index answers "decided before?". A read error counts as decided:
/// the request is refused (and a block that needs it cannot apply, which stops the node).
impl DecidedIndex for LogStore {
    fn is_decided(&self, id: &[u8; 32]) -> bool {
        self.lookup_request(id).map(|i| i.is_some()).unwrap_or(true)
    }

    /// The entry's verdict, and the block time of the height that decided it (from that
    /// height's stored block). Read errors: `None` (the next attempt is refused).
    fn decision(&self, id: &[u8; 32]) -> Option<(bool, u64)> {
        let index = self.lookup_request(id).ok()??;
        let entry = crate::protocol::LogEntry::decode(&self.entry(index).ok()?).ok()?;
        let record = DecidedRecord::decode(&self.decided_record(entry.height).ok()??).ok()?;
        let block = decode_block(&record.value).ok()?;
        Some((entry.verdict == Verdict::Reproduced, block.time_ms))
    }
}

/// What every part of the node reads (see the module doc).
pub struct Shared {
    /// Counters for metrics.
    pub counters: NodeCounters,
    /// The group.
    pub committee: Committee,
    /// The log's earlier epochs, oldest first, with the sizes each committee signed (their
    /// checkpoints, such as the handoff a restart into this epoch finds last, are still
    /// this log's).
    pub past: Vec<crate::log::StoredEpoch>,
    /// The log size at which this epoch began (its handoff; 0 in the genesis epoch): the
    /// current committee signs no checkpoint below it.
    pub epoch_start: u64,
    /// Our committee position; [`Shared::FOLLOWER`] when this node is not a member of the
    /// epoch (a joining node following the log until the epoch that adds it).
    pub me: u32,
    /// The log.
    pub store: LogStore,
    /// The artifacts of this member's builds, served to anyone.
    pub artifacts: Option<Arc<ArtifactStore>>,
    /// Message envelopes verified before (each is checked once per node).
    pub envelopes: EnvelopeCache,
    /// Messages waiting to be ordered (fed by gossip and by us, read by the proposer).
    pub(crate) mempool: MessagePool,
    /// When each member's last gossiped approval was checked (at most one check per member
    /// and [`APPROVAL_CHECK_SPACING`]: a check can cost a proposal's proofs of possession).
    pub(crate) approval_checks:
        std::sync::Mutex<std::collections::BTreeMap<u32, std::time::Instant>>,
    /// Set once when the node cannot go on (fail-stop): why.
    halt: watch::Sender<Option<String>>,
    /// The protocol state as of the last applied height (published by the consensus app).
    view: watch::Receiver<Arc<StateView>>,
    /// The build queue as of its last change (published by the builder driver).
    builds: watch::Receiver<BuildQueue>,
    /// The node's directory (its kept build logs and diff reports are served from it).
    pub node_dir: Option<std::path::PathBuf>,
    /// The backlog's progress (published by the backlog task; `None` without a backlog).
    backlog: watch::Receiver<Option<BacklogProgress>>,
}

impl Shared {
    /// The position of a node that is not a member of this epoch's committee.
    pub const FOLLOWER: u32 = u32::MAX;

    /// Whether this node votes, builds and cosigns in this epoch (it is a member).
    pub fn is_voter(&self) -> bool {
        self.me != Self::FOLLOWER
    }

    /// Opens the node's state over `store`: the open rounds stored with the applied height
    /// (a store written before rows were kept is replayed from its blocks instead). Returns
    /// what every part reads, and the consensus app's part.
    pub fn restore(
        committee: Committee,
        me: u32,
        store: LogStore,
    ) -> Result<(Self, AppState), RestoreError> {
        let params = ProtocolParams::of(&committee);
        let applied = store.applied_height()?.unwrap_or(0);
        let (time_ms, rows) = store.open_rounds()?;
        let envelopes = EnvelopeCache::default();
        let state = if applied == 0 || time_ms > 0 {
            let last = (applied > 0).then_some((applied, time_ms));
            ProtocolState::from_snapshot(params, last, rows).map_err(RestoreError::Snapshot)?
        } else {
            replay(&committee, &store, applied, params, &envelopes)?
        };
        let (view_tx, view_rx) = watch::channel(Arc::new(StateView {
            height: applied,
            state: state.clone(),
        }));
        // No builder driver yet: an empty queue until one is attached (`with_builds`).
        let (_, builds) = watch::channel(BuildQueue::new(1));
        let (_, backlog) = watch::channel(None);
        let shared = Self {
            counters: NodeCounters::default(),
            committee,
            past: Vec::new(),
            epoch_start: 0,
            me,
            store,
            artifacts: None,
            envelopes,
            mempool: MessagePool::default(),
            approval_checks: Default::default(),
            halt: watch::Sender::new(None),
            view: view_rx,
            builds,
            node_dir: None,
            backlog,
        };
        let app = AppState {
            state,
            height: applied,
            view: view_tx,
        };
        Ok((shared, app))
    }

    /// The same, knowing the log's earlier epochs (oldest first) and the size at which this
    /// one began.
    pub fn with_past(mut self, past: Vec<crate::log::StoredEpoch>, epoch_start: u64) -> Self {
        self.past = past;
        self.epoch_start = epoch_start;
        self
    }

    /// The same, serving the artifacts in `store`.
    pub fn with_artifacts(mut self, store: Option<Arc<ArtifactStore>>) -> Self {
        self.artifacts = store;
        self
    }

    /// The same, showing the build queue the builder driver publishes on `builds`.
    pub(crate) fn with_builds(mut self, builds: watch::Receiver<BuildQueue>) -> Self {
        self.builds = builds;
        self
    }

    /// The same, showing the backlog progress the backlog task publishes on `backlog`.
    pub(crate) fn with_backlog(
        mut self,
        backlog: watch::Receiver<Option<BacklogProgress>>,
    ) -> Self {
        self.backlog = backlog;
        self
    }

    /// The same, serving build logs and diff reports from `dir`.
    pub(crate) fn with_node_dir(mut self, dir: &std::path::Path) -> Self {
        self.node_dir = Some(dir.to_path_buf());
        self
    }

    /// How far the backlog (`[follow] list`) has come; `None` without one.
    pub fn backlog_progress(&self) -> Option<BacklogProgress> {
        self.backlog.borrow().clone()
    }

    /// The protocol state as of the last applied height (an immutable snapshot; holding it
    /// blocks nobody).
    pub fn view(&self) -> Arc<StateView> {
        self.view.borrow().clone()
    }

    /// What `status` shows of the build queue, as of its last change.
    pub fn build_status(&self) -> QueueStatus {
        self.builds.borrow().status()
    }

    /// The requests for `spec` with the default variant's settings on the committee's
    /// target (`BuildRequest::is_default_variant_for`) that the group has ORDERED (an open
    /// round: verdict `None`) or DECIDED (a log entry: its verdict). Requests that only wait
    /// in the mempool are not among them: any member can gossip one and it may never be
    /// ordered, and a junk request gossiped first must not stop a followed release's build.
    pub fn default_requests(&self, spec: &str) -> Vec<(BuildRequest, Option<Verdict>)> {
        let target = &self.committee.build().target;
        let mut out = self.known_requests(spec);
        out.retain(|(r, _)| r.is_default_variant_for(target));
        out
    }

    /// Every request for `spec` (any variant, any target) that the group has ORDERED
    /// (verdict `None`) or DECIDED (its verdict); never one that only waits in the mempool.
    pub fn known_requests(&self, spec: &str) -> Vec<(BuildRequest, Option<Verdict>)> {
        let mut out: Vec<(BuildRequest, Option<Verdict>)> = self
            .store
            .variant_entries(spec)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, e)| (e.request, Some(e.verdict)))
            .collect();
        out.extend(
            self.view()
                .state
                .open_requests()
                .filter(|(_, r)| r.spec() == spec)
                .map(|(_, r)| (r.clone(), None)),
        );
        out
    }

    /// Bytes of `member`'s messages waiting in the mempool (at most
    /// `MAX_BYTES_PER_SIGNER`, 64 MiB).
    pub fn mempool_bytes_of(&self, member: u32) -> usize {
        self.mempool.bytes_of(member)
    }

    /// Stops the node for good (fail-stop): a write that matters failed, or a decided
    /// height does not apply. The first reason wins; the process exits with it.
    pub fn halt(&self, reason: String) {
        self.halt.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            tracing::error!("halting: {reason}");
            *r = Some(reason);
            true
        });
    }

    /// Why the node halted, if it did.
    pub fn halted(&self) -> Option<String> {
        self.halt.borrow().clone()
    }

    /// Waits until the node halts; returns why.
    pub async fn wait_halted(&self) -> String {
        let mut rx = self.halt.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return "the node stopped".into();
            }
        }
    }

    /// What the protocol rules need: the committee, the log's request index, the envelope
    /// cache.
    pub fn env(&self) -> Env<'_> {
        Env {
            committee: &self.committee,
            decided: &self.store,
            envelopes: &self.envelopes,
        }
    }

    /// The latest stored cosigned checkpoint, verified against the committee of its epoch.
    pub fn latest_cosigned(&self) -> Result<Option<CosignedCheckpoint>, LatestCheckpointError> {
        match self.store.latest_checkpoint()? {
            Some(note) => Ok(Some(self.verify_checkpoint(&note)?)),
            None => Ok(None),
        }
    }

    /// Verifies a checkpoint of this log: cosigned by the current committee for a size from
    /// this epoch's start on, or by an earlier epoch's committee for a size inside that
    /// epoch (a retired committee's keys sign nothing beyond their handoff).
    pub fn verify_checkpoint(
        &self,
        note: &str,
    ) -> Result<CosignedCheckpoint, crate::log::CheckpointError> {
        let inside = |cp: &CosignedCheckpoint, start: u64, end: Option<u64>| {
            let size = cp.checkpoint().size;
            size >= start && end.is_none_or(|end| size <= end)
        };
        let outside = || {
            crate::log::CheckpointError::Format(crate::log::FormatError::Checkpoint(
                "signed by a committee outside its epoch's sizes",
            ))
        };
        match CosignedCheckpoint::verify(note, &self.committee) {
            Ok(cp) if inside(&cp, self.epoch_start, None) => Ok(cp),
            Ok(_) => Err(outside()),
            Err(e) => self
                .past
                .iter()
                .rev()
                .find_map(|p| {
                    CosignedCheckpoint::verify(note, &p.committee)
                        .ok()
                        .map(|cp| (cp, p))
                })
                .map(|(cp, p)| {
                    if inside(&cp, p.start, p.end) {
                        Ok(cp)
                    } else {
                        Err(outside())
                    }
                })
                .unwrap_or(Err(e)),
        }
    }
}

/// The protocol state re-derived from every stored block (stores without open-round rows).
fn replay(
    committee: &Committee,
    store: &LogStore,
    applied: u64,
    params: ProtocolParams,
    envelopes: &EnvelopeCache,
) -> Result<ProtocolState, RestoreError> {
    let mut state = ProtocolState::new(params);
    // Entries decided by the replayed blocks are in the store already; the blocks that
    // decided them are replayed before any later Request for the same id could be.
    let none = std::collections::HashMap::new();
    let env = Env {
        committee,
        decided: &none,
        envelopes,
    };
    for height in 1..=applied {
        let raw = store
            .decided_record(height)?
            .ok_or(RestoreError::MissingBlock(height))?;
        let rec = DecidedRecord::decode(&raw)
            .map_err(|source| RestoreError::Record { height, source })?;
        let block = decode_block(&rec.value)?;
        state
            .apply_block(&block, env)
            .map_err(|source| RestoreError::Replay { height, source })?;
    }
    Ok(state)
}
