//! The consensus application: blocks of protocol messages proposed from the mempool,
//! validated by re-applying them to the protocol state, and applied to the log.
//!
//! Applying a decided height is ONE redb transaction (`LogStore::append_decided`): the
//! height's log entries, their lookup keys, the decided block with its certificate, the
//! open-round rows the block changed, and the applied height. A restarted node loads the
//! open rounds from those rows ([`Shared::restore`]): start-up costs the open work, not
//! the history.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_malachitebft_core_types::{CommitCertificate, Round, Validity};
use tokio::sync::mpsc;

use super::mempool::Mempool;
use crate::codec;
use crate::committee::Committee;
use crate::consensus::actor::App;
use crate::consensus::record::DecidedRecord;
use crate::consensus::wire::MAX_WIRE_SIZE;
use crate::consensus::{Ctx, Height, Value};
use crate::log::{CosignedCheckpoint, Height as StoreHeight, LogStore, NewEntry};
use crate::protocol::{
    Block, Decided, DecidedIndex, Duty, Env, EnvelopeCache, ProtocolParams, ProtocolState, Verdict,
};
use crate::request::BuildRequest;

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
        Some((
            entry.verdict == crate::protocol::Verdict::Reproduced,
            block.time_ms,
        ))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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

/// State shared by the consensus actor and the node's event loop.
pub struct Shared {
    /// Counters for metrics.
    pub counters: NodeCounters,
    /// The group.
    pub committee: Committee,
    /// Our committee position.
    pub me: u32,
    /// The log.
    pub store: LogStore,
    /// The artifacts of this member's builds, served to anyone.
    pub artifacts: Option<std::sync::Arc<super::artifacts::ArtifactStore>>,
    /// Message envelopes verified before (each is checked once per node).
    pub envelopes: EnvelopeCache,
    /// Set once when the node cannot go on (fail-stop): why.
    halt: tokio::sync::watch::Sender<Option<String>>,
    /// Queued and running builds.
    builds: Mutex<super::queue::BuildQueue>,
    inner: Mutex<Inner>,
}

/// The mutable part, behind one lock.
pub struct Inner {
    /// Messages waiting to be ordered.
    pub(crate) mempool: Mempool,
    /// Open rounds, as of the last applied height.
    pub state: ProtocolState,
    /// Last applied height (0 before the first).
    pub height: u64,
}

impl Shared {
    /// The requests for `spec` with the default variant's settings on the committee's
    /// target (`BuildRequest::is_default_variant_for`) that the group has ORDERED (an open
    /// round: verdict `None`) or DECIDED (a log entry: its verdict). Requests that only wait
    /// in the mempool are not among them: any member can gossip one and it may never be
    /// ordered, and a junk request gossiped first must not stop a followed release's build.
    pub fn default_requests(&self, spec: &str) -> Vec<(BuildRequest, Option<Verdict>)> {
        let target = &self.committee.build().target;
        let fits = |r: &BuildRequest| r.spec() == spec && r.is_default_variant_for(target);
        let mut out: Vec<(BuildRequest, Option<Verdict>)> = self
            .store
            .variant_entries(spec)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, e)| fits(&e.request))
            .map(|(_, e)| (e.request, Some(e.verdict)))
            .collect();
        out.extend(
            self.lock()
                .state
                .open_requests()
                .filter(|(_, r)| fits(r))
                .map(|(_, r)| (r.clone(), None)),
        );
        out
    }

    /// Bytes of `member`'s messages waiting in the mempool (at most
    /// [`super::mempool::MAX_BYTES_PER_SIGNER`], 64 MiB).
    pub fn mempool_bytes_of(&self, member: u32) -> usize {
        self.lock().mempool.bytes_of(member)
    }

    /// Opens the shared state over `store`: the open rounds stored with the applied height
    /// (a store written before rows were kept is replayed from its blocks instead).
    pub fn restore(committee: Committee, me: u32, store: LogStore) -> Result<Self, String> {
        let params = ProtocolParams::of(&committee);
        let applied = store.applied_height().map_err(|e| e.to_string())?;
        let applied = applied.unwrap_or(0);
        let (time_ms, rows) = store.open_rounds().map_err(|e| e.to_string())?;
        let envelopes = EnvelopeCache::default();
        let state = if applied == 0 || time_ms > 0 {
            let last = (applied > 0).then_some((applied, time_ms));
            ProtocolState::from_snapshot(params, last, rows)?
        } else {
            replay(&committee, &store, applied, params, &envelopes)?
        };
        Ok(Self {
            counters: NodeCounters::default(),
            committee,
            me,
            store,
            artifacts: None,
            envelopes,
            halt: tokio::sync::watch::Sender::new(None),
            builds: Mutex::new(super::queue::BuildQueue::new(1)),
            inner: Mutex::new(Inner {
                mempool: Mempool::default(),
                state,
                height: applied,
            }),
        })
    }

    /// The same, serving the artifacts in `store`.
    pub fn with_artifacts(
        mut self,
        store: Option<std::sync::Arc<super::artifacts::ArtifactStore>>,
    ) -> Self {
        self.artifacts = store;
        self
    }

    /// The same, building at most `max_parallel` requests at once.
    pub fn with_build_queue(mut self, max_parallel: usize) -> Self {
        self.builds = Mutex::new(super::queue::BuildQueue::new(max_parallel));
        self
    }

    /// The build queue (a poisoned lock is recovered: each change is one small step).
    pub fn build_queue(&self) -> MutexGuard<'_, super::queue::BuildQueue> {
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The latest stored cosigned checkpoint, verified against the committee.
    pub fn latest_cosigned(&self) -> Result<Option<CosignedCheckpoint>, String> {
        match self.store.latest_checkpoint().map_err(|e| e.to_string())? {
            Some(note) => CosignedCheckpoint::verify(&note, &self.committee)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// Locks the mutable part (a poisoned lock is recovered: every change under it is
    /// made on a copy and swapped in, so it is never half-done).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The protocol state re-derived from every stored block (stores without open-round rows).
fn replay(
    committee: &Committee,
    store: &LogStore,
    applied: u64,
    params: ProtocolParams,
    envelopes: &EnvelopeCache,
) -> Result<ProtocolState, String> {
    let mut state = ProtocolState::new(params);
    // Entries decided by the replayed blocks are in the store already; the blocks that
    // decided them are replayed before any later Request for the same id could be.
    let none = std::collections::HashMap::new();
    let env = Env {
        committee,
        decided: &none,
        envelopes,
    };
    for h in 1..=applied {
        let raw = store
            .decided_record(h)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the log store lacks the decided block of height {h}"))?;
        let rec = DecidedRecord::decode(&raw).map_err(|e| format!("height {h}: {e}"))?;
        let block = decode_block(&rec.value)?;
        state
            .apply_block(&block, env)
            .map_err(|e| format!("stored block {h} does not apply: {e}"))?;
    }
    Ok(state)
}

/// What the app tells the node loop after a height.
#[derive(Debug)]
pub(crate) enum AppEvent {
    /// Duties for our builder (build, reveal).
    Duties(Vec<Duty>),
    /// The log grew to `size` with this root: cosign it.
    Grown {
        /// New size.
        size: u64,
        /// Root at that size.
        root: [u8; 32],
        /// The requests whose entries it added (their round files can go).
        decided: Vec<[u8; 32]>,
    },
    /// Peers are ahead: fetch decided heights from `from`.
    Lagging {
        /// First height we lack.
        from: u64,
    },
    /// A height was applied (for metrics and waiters).
    Applied {
        /// Height.
        height: u64,
        /// Entries logged by it.
        entries: usize,
    },
}

/// Decodes a value into a block (bounded).
pub fn decode_block(value: &Value) -> Result<Block, String> {
    codec::from_slice::<Block>(value.bytes(), MAX_WIRE_SIZE).map_err(|e| format!("block: {e}"))
}

/// What the store indexes for a decided request: the entry, its request id and
/// `crate@version`, and the texts it pins (lockfile, manifest).
pub fn new_entry(d: &Decided) -> NewEntry {
    let mut blobs = vec![d.lockfile.clone().into_bytes()];
    blobs.extend(d.manifest.clone().map(String::into_bytes));
    NewEntry {
        bytes: d.entry.to_cbor(),
        request_id: d.entry.request.id(),
        spec: d.entry.request.spec(),
        blobs,
    }
}

/// The consensus application of one node.
pub(crate) struct NodeApp {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<AppEvent>,
}

impl NodeApp {
    /// An app over `shared`, reporting to `events`.
    pub(crate) fn new(shared: Arc<Shared>, events: mpsc::UnboundedSender<AppEvent>) -> Self {
        Self { shared, events }
    }
}

impl App for NodeApp {
    fn build_value(&mut self, height: Height, _round: Round) -> Value {
        let inner = self.shared.lock();
        let time_ms = now_ms().max(inner.state.last_time_ms());
        let messages = inner
            .mempool
            .select(&inner.state, time_ms, self.shared.env());
        let block = Block {
            height: height.0,
            time_ms,
            messages,
        };
        Value::new(codec::to_vec(&block))
    }

    fn validate(&mut self, height: Height, value: &Value) -> Validity {
        let Ok(block) = decode_block(value) else {
            return Validity::Invalid;
        };
        let inner = self.shared.lock();
        let rules = *inner.state.params();
        // The committee's rules: size, clock drift (the only use of the local clock).
        if value.bytes().len() > rules.max_block_bytes
            || block.height != height.0
            || block.time_ms > now_ms().saturating_add(rules.max_clock_drift_ms)
        {
            return Validity::Invalid;
        }
        Validity::from_bool(inner.state.check_block(&block, self.shared.env()).is_ok())
    }

    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        certificate: &CommitCertificate<Ctx>,
    ) -> Result<(), String> {
        let block = decode_block(value)?;
        // Only this actor changes the state and the height: the block's effects are computed
        // under the lock, made durable without it (the event loop never waits on an
        // fsync), then applied.
        let prepared = {
            let inner = self.shared.lock();
            if height.0 <= inner.height {
                return Ok(()); // already applied (a fetched copy of a height we decided)
            }
            inner
                .state
                .prepare(&block, self.shared.env())
                .map_err(|e| format!("decided block {} does not apply: {e}", height.0))?
        };
        let entries = &prepared.applied().decided;
        let c = &self.shared.counters;
        let new: Vec<NewEntry> = entries.iter().map(new_entry).collect();
        let record = DecidedRecord {
            value: value.clone(),
            certificate: certificate.clone(),
        }
        .encode();
        // Durable here: entries, their index keys and pinned texts, block + certificate and
        // the applied height in one transaction. Only then does memory move on.
        let appended = self
            .shared
            .store
            .append_decided(
                &new,
                StoreHeight {
                    height: height.0,
                    time_ms: block.time_ms,
                    record: &record,
                    rounds: &prepared.applied().changed_rounds,
                },
            )
            .map_err(|e| e.to_string())?;
        let mut inner = self.shared.lock();
        let applied = inner.state.commit(prepared);
        let (entries, duties) = (applied.decided, applied.duties);
        inner.height = height.0;
        for e in &entries {
            let counter = match e.entry.verdict {
                crate::protocol::Verdict::Reproduced => &c.reproduced,
                crate::protocol::Verdict::Failed => &c.failed,
                crate::protocol::Verdict::NotReproduced => &c.not_reproduced,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let Inner { mempool, state, .. } = &mut *inner;
        mempool.prune(&block, state);
        drop(inner);
        let _ = self.events.send(AppEvent::Applied {
            height: height.0,
            entries: entries.len(),
        });
        if !entries.is_empty() {
            let root = self
                .shared
                .store
                .tree_hash(appended.size)
                .map_err(|e| e.to_string())?;
            let _ = self.events.send(AppEvent::Grown {
                size: appended.size,
                root,
                decided: entries.iter().map(|e| e.entry.request.id()).collect(),
            });
        }
        if !duties.is_empty() {
            let _ = self.events.send(AppEvent::Duties(duties));
        }
        Ok(())
    }

    fn has_work(&mut self) -> bool {
        let inner = self.shared.lock();
        let now = now_ms().max(inner.state.last_time_ms());
        inner
            .state
            .next_deadline_ms(&self.shared.committee)
            .is_some_and(|d| d <= now)
            || inner
                .mempool
                .has_applicable(&inner.state, now, self.shared.env())
    }

    fn lagging(&mut self, current: Height, _seen: Height) {
        let _ = self.events.send(AppEvent::Lagging { from: current.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Body, SignedMessage};
    use crate::testing::{TestCommittee, request};

    fn app(tc: &TestCommittee, dir: &std::path::Path) -> (NodeApp, Arc<Shared>) {
        let store = LogStore::open(dir).unwrap();
        let shared = Arc::new(Shared::restore(tc.committee.clone(), 0, store).unwrap());
        let (tx, _rx) = mpsc::unbounded_channel();
        (NodeApp::new(shared.clone(), tx), shared)
    }

    fn block(height: u64, time_ms: u64, messages: Vec<SignedMessage>) -> Value {
        Value::new(codec::to_vec(&Block {
            height,
            time_ms,
            messages,
        }))
    }

    /// What a proposer may put in a block, as every validator judges it.
    #[test]
    fn validators_refuse_invalid_blocks() {
        let tc = TestCommittee::new(4, 12);
        let dir = tempfile::tempdir().unwrap();
        let (mut a, _) = app(&tc, dir.path());
        let chain = tc.committee.signing_domain();
        let good = SignedMessage::sign(
            Body::Request(request("a", "1.0.0", "l")),
            1,
            &tc.identities[1],
            chain,
        );
        let now = now_ms();
        assert!(
            a.validate(Height(1), &block(1, now, vec![good.clone()]))
                .is_valid()
        );
        assert!(a.validate(Height(1), &block(1, now, vec![])).is_valid());
        // Wrong height, a time far ahead of our clock, not a block at all.
        assert!(a.validate(Height(2), &block(1, now, vec![])).is_invalid());
        assert!(
            a.validate(Height(1), &block(1, now + 60_000, vec![]))
                .is_invalid()
        );
        assert!(
            a.validate(Height(1), &Value::new(b"junk".to_vec()))
                .is_invalid()
        );
        // A non-member's message (signed with another key under a member's position), a
        // forged signature, the same request twice.
        let outsider = crate::crypto::NodeIdentity::from_secret_bytes(&[5; 32]).unwrap();
        let forged = SignedMessage::sign(
            Body::Request(request("b", "1.0.0", "l")),
            2,
            &outsider,
            chain,
        );
        assert!(
            a.validate(Height(1), &block(1, now, vec![forged]))
                .is_invalid()
        );
        let mut tampered = good.clone();
        tampered.signature[0] ^= 1;
        assert!(
            a.validate(Height(1), &block(1, now, vec![tampered]))
                .is_invalid()
        );
        assert!(
            a.validate(Height(1), &block(1, now, vec![good.clone(), good.clone()]))
                .is_invalid()
        );
        // A commit for a request nobody ordered.
        let commit = SignedMessage::sign(
            Body::Commit {
                request_id: vec![7; 32],
                commitment: vec![1; 32],
            },
            1,
            &tc.identities[1],
            chain,
        );
        assert!(
            a.validate(Height(1), &block(1, now, vec![commit]))
                .is_invalid()
        );
    }

    /// A committed height is durable and the protocol state comes back from the store.
    #[test]
    fn committed_heights_restore_the_protocol_state() {
        let tc = TestCommittee::new(4, 13);
        let dir = tempfile::tempdir().unwrap();
        let req = request("a", "1.0.0", "l");
        let msg = SignedMessage::sign(
            Body::Request(req.clone()),
            1,
            &tc.identities[1],
            tc.committee.signing_domain(),
        );
        {
            let (mut a, shared) = app(&tc, dir.path());
            let v = block(1, now_ms(), vec![msg]);
            let cert = arc_malachitebft_core_types::CommitCertificate {
                height: Height(1),
                round: Round::new(0),
                value_id: arc_malachitebft_core_types::Value::id(&v),
                commit_signatures: vec![],
            };
            a.commit(Height(1), &v, &cert).unwrap();
            assert!(shared.lock().state.is_open(&req.id()));
            // Applying a height twice is a no-op.
            a.commit(Height(1), &v, &cert).unwrap();
            assert_eq!(shared.lock().height, 1);
            assert!(
                a.commit(Height(2), &Value::new(b"junk".to_vec()), &cert)
                    .is_err()
            );
        }
        let (_, shared) = app(&tc, dir.path());
        let inner = shared.lock();
        assert_eq!(inner.height, 1);
        let st = inner.state.round_status(&req.id(), &tc.committee).unwrap();
        assert_eq!(st.phase, crate::protocol::Phase::Commit);
        assert_eq!(st.request, req.request);
    }

    /// The follower's input: what the group has ORDERED or DECIDED of a release's default
    /// variant. A request waiting in the mempool, another variant or another target are not
    /// in it.
    #[test]
    fn only_ordered_default_requests_are_listed() {
        let tc = TestCommittee::new(4, 14);
        let dir = tempfile::tempdir().unwrap();
        let (mut a, shared) = app(&tc, dir.path());
        let chain = tc.committee.signing_domain();
        let signed = |p: &crate::request::PinnedRequest, who: usize| {
            SignedMessage::sign(
                Body::Request(p.clone()),
                who as u32,
                &tc.identities[who],
                chain,
            )
        };
        let commit = |a: &mut NodeApp, h: u64, msgs: Vec<SignedMessage>| {
            let v = block(h, now_ms(), msgs);
            let cert = arc_malachitebft_core_types::CommitCertificate {
                height: Height(h),
                round: Round::new(0),
                value_id: arc_malachitebft_core_types::Value::id(&v),
                commit_signatures: vec![],
            };
            a.commit(Height(h), &v, &cert).unwrap();
        };
        let spec = "fol@1.0.0";
        let ids = |s: &Shared| -> Vec<[u8; 32]> {
            s.default_requests(spec)
                .iter()
                .map(|(r, v)| {
                    assert_eq!(*v, None, "open, not decided");
                    r.id()
                })
                .collect()
        };
        // A junk request (a lockfile of someone's choice) gossiped first: not ordered.
        let mut junk = request("fol", "1.0.0", "# junk\n");
        junk.request.lockfile_shipped = false;
        assert!(
            shared
                .lock()
                .mempool
                .insert(signed(&junk, 1), false)
                .is_ok()
        );
        assert!(ids(&shared).is_empty());
        // Ordered: other features and the junk lockfile. (Another target cannot be ordered
        // at all: `check_request` makes such a block invalid, tested in the protocol.)
        let mut featured = request("fol", "1.0.0", "lock");
        featured.request.features = vec!["extra".into()];
        commit(&mut a, 1, vec![signed(&featured, 1), signed(&junk, 1)]);
        assert!(shared.lock().state.is_open(&featured.id()));
        assert_eq!(ids(&shared), [junk.id()]);
        assert!(shared.default_requests("fol@1.0.1").is_empty());
        // The default variant with the shipped lockfile, ordered.
        let shipped = request("fol", "1.0.0", "lock");
        commit(&mut a, 2, vec![signed(&shipped, 3)]);
        let mut got = ids(&shared);
        got.sort();
        let mut want = vec![junk.id(), shipped.id()];
        want.sort();
        assert_eq!(got, want);
    }
}
