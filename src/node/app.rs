//! The consensus application: blocks of protocol messages proposed from the mempool,
//! validated by re-applying them to the protocol state, and applied to the log.
//!
//! Applying a decided height is ONE redb transaction (`LogStore::append_decided`): the
//! height's log entries, their lookup keys, the decided block with its certificate, and the
//! applied height. The in-memory protocol state is a pure function of the stored blocks, so
//! a restarted node rebuilds it by re-applying them ([`Shared::restore`]).

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
use crate::log::{CosignedCheckpoint, LogStore, NewEntry};
use crate::protocol::{Block, Decided, Duty, ProtocolParams, ProtocolState};

/// How far ahead of our clock a proposer's block time may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 2_000;

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
    /// Opens the shared state over `store`, rebuilding the protocol state from the stored
    /// decided blocks.
    pub fn restore(
        committee: Committee,
        me: u32,
        store: LogStore,
        params: ProtocolParams,
    ) -> Result<Self, String> {
        let mut state = ProtocolState::new(params);
        let applied = store.applied_height().map_err(|e| e.to_string())?;
        let applied = applied.unwrap_or(0);
        for h in 1..=applied {
            let raw = store
                .decided_record(h)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the log store lacks the decided block of height {h}"))?;
            let rec = DecidedRecord::decode(&raw).map_err(|e| format!("height {h}: {e}"))?;
            let block = decode_block(&rec.value)?;
            state
                .apply_block(&block, &committee)
                .map_err(|e| format!("stored block {h} does not apply: {e}"))?;
        }
        Ok(Self {
            counters: NodeCounters::default(),
            committee,
            me,
            store,
            inner: Mutex::new(Inner {
                mempool: Mempool::default(),
                state,
                height: applied,
            }),
        })
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
            .select(&inner.state, time_ms, &self.shared.committee);
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
        if block.height != height.0 || block.time_ms > now_ms() + MAX_CLOCK_DRIFT_MS {
            return Validity::Invalid;
        }
        let inner = self.shared.lock();
        let mut probe = inner.state.clone();
        drop(inner);
        Validity::from_bool(probe.apply_block(&block, &self.shared.committee).is_ok())
    }

    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        certificate: &CommitCertificate<Ctx>,
    ) -> Result<(), String> {
        let block = decode_block(value)?;
        // Only this actor changes the state and the height, so the lock is held just to copy
        // and, after the durable write, to swap: the event loop is never blocked on an fsync.
        let mut next = {
            let inner = self.shared.lock();
            if height.0 <= inner.height {
                return Ok(()); // already applied (a fetched copy of a height we decided)
            }
            inner.state.clone()
        };
        let (entries, duties) = next
            .apply_block(&block, &self.shared.committee)
            .map_err(|e| format!("decided block {} does not apply: {e}", height.0))?;
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
            .append_decided(&new, height.0, &record)
            .map_err(|e| format!("log store: {e}"))?;
        let mut inner = self.shared.lock();
        inner.state = next;
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
                .map_err(|e| format!("log store: {e}"))?;
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
        inner.state.next_deadline_ms().is_some_and(|d| d <= now)
            || inner
                .mempool
                .has_applicable(&inner.state, now, &self.shared.committee)
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
        let shared = Arc::new(
            Shared::restore(tc.committee.clone(), 0, store, ProtocolParams::default()).unwrap(),
        );
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
        let chain = tc.committee.chain_id();
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
            tc.committee.chain_id(),
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
            assert!(shared.lock().state.round_status(&req.id()).is_some());
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
        let st = inner.state.round_status(&req.id()).unwrap();
        assert_eq!(st.phase, "commit");
        assert_eq!(st.request, req.request);
    }
}
