//! The consensus application: blocks of protocol messages proposed from the mempool,
//! validated by re-applying them to the protocol state, and applied to the log.
//!
//! The app runs on the consensus thread and alone owns the [`ProtocolState`] and the applied
//! height: nothing else changes them and it waits for no other part of the node. After each
//! height it publishes an immutable [`StateView`] that every other part reads. The one thing
//! it shares is the mempool, behind a leaf lock taken only for a snapshot or a prune
//! ([`super::mempool::MessagePool`]): no lock is held while a block's signatures are
//! checked (its envelopes, and the batched BLS check of the rounds it decides).
//!
//! Applying a decided height is ONE redb transaction (`LogStore::append_decided`): the
//! height's log entries, their lookup keys, the decided block with its certificate, the
//! open-round rows the block changed, and the applied height. A restarted node loads the
//! open rounds from those rows ([`Shared::restore`]): start-up costs the open work, not
//! the history.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_malachitebft_core_types::{CommitCertificate, Round, Validity};
use tokio::sync::{mpsc, watch};

use super::shared::{AppState, Shared, StateView};
use super::storage::{NodeStorage, StorageError};
use crate::clock::now_ms;
use crate::codec::{self, CodecError};
use crate::consensus::actor::App;
use crate::consensus::record::DecidedRecord;
use crate::consensus::wire::MAX_WIRE_SIZE;
use crate::consensus::{Ctx, Height, Value};
use crate::log::{Height as StoreHeight, NewEntry, StoreError};
use crate::protocol::{Block, BlockError, Decided, Duty, ProtocolState, Verdict};

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

/// Why a value is not a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block: {0}")]
pub struct DecodeBlockError(#[from] CodecError);

/// Decodes a value into a block (bounded).
pub fn decode_block(value: &Value) -> Result<Block, DecodeBlockError> {
    Ok(codec::from_slice::<Block>(value.bytes(), MAX_WIRE_SIZE)?)
}

/// Why a decided height could not be applied (the node halts with this line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApplyError {
    /// The decided value is not a block.
    #[error(transparent)]
    Decode(#[from] DecodeBlockError),
    /// The decided block does not apply to our state.
    #[error("decided block {height} does not apply: {source}")]
    DoesNotApply {
        /// Its height.
        height: u64,
        /// Why.
        source: BlockError,
    },
    /// The decided block ended the epoch with a committee change: the height and the change
    /// entry are durable, and this committee decides no more heights. The node restarts
    /// into the next epoch (`log::stored_epochs` reads it from the log).
    #[error("decided block {height} ended epoch {epoch} with a committee change")]
    EpochEnded {
        /// Its height.
        height: u64,
        /// The epoch it ends.
        epoch: u64,
    },
    /// The log store could not read it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node's storage could not write it.
    #[error(transparent)]
    Write(#[from] StorageError),
}

/// What the store indexes for a decided request: the entry, its request id and
/// `crate@version`, and the texts it pins (lockfile, manifest) or that explain it (the
/// dissenters' manifests, served by sha256 like the others).
pub fn new_entry(d: &Decided) -> NewEntry {
    let mut blobs = vec![d.lockfile.clone().into_bytes()];
    blobs.extend(d.manifest.clone().map(String::into_bytes));
    blobs.extend(
        d.dissenting_manifests
            .iter()
            .map(|m| m.clone().into_bytes()),
    );
    NewEntry {
        bytes: d.entry.to_cbor(),
        request_id: d.entry.request.id(),
        spec: d.entry.request.spec(),
        blobs,
    }
}

/// The consensus application of one node (see the module doc).
pub(crate) struct NodeApp {
    shared: Arc<Shared>,
    /// Where decided heights are written (the log's one-transaction append).
    storage: Arc<dyn NodeStorage>,
    /// Open rounds, as of `height`: owned here, published as views.
    state: ProtocolState,
    /// Last applied height.
    height: u64,
    view: watch::Sender<Arc<StateView>>,
    events: mpsc::UnboundedSender<AppEvent>,
}

impl NodeApp {
    /// The app over the restored `app` state, reading `shared`, writing decided heights
    /// through `storage`, reporting to `events`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        storage: Arc<dyn NodeStorage>,
        app: AppState,
        events: mpsc::UnboundedSender<AppEvent>,
    ) -> Self {
        Self {
            shared,
            storage,
            state: app.state,
            height: app.height,
            view: app.view,
            events,
        }
    }

    /// Applies decided height `height` (see [`App::commit`]).
    fn apply(
        &mut self,
        height: Height,
        value: &Value,
        certificate: &CommitCertificate<Ctx>,
    ) -> Result<(), ApplyError> {
        let block = decode_block(value)?;
        if height.0 <= self.height {
            return Ok(()); // already applied (a fetched copy of a height we decided)
        }
        // The block's effects, with its signature checks (the batched BLS check of the
        // rounds it decides), computed on our own state: no lock held, nobody waits.
        let prepared = self
            .state
            .prepare(&block, self.shared.env())
            .map_err(|source| ApplyError::DoesNotApply {
                height: height.0,
                source,
            })?;
        let change = prepared.applied().change.as_ref().map(|c| c.to_cbor());
        let next_epoch = self.shared.committee.epoch() + 1;
        let new: Vec<NewEntry> = prepared.applied().decided.iter().map(new_entry).collect();
        let record = DecidedRecord {
            value: value.clone(),
            certificate: certificate.clone(),
        }
        .encode();
        // Crash point 2 (see `storage`): entries, their index keys and pinned texts, block +
        // certificate, the open-round rows and the applied height, durable in one
        // transaction. Only then does memory move on. A crash before it returns leaves the
        // height unapplied (the WAL replays it, or it is fetched); after it, the height is
        // applied and the open rounds load from the rows it wrote. A change entry that ends the
        // epoch is written in the same transaction (with its epoch row), so a restart finds
        // the next committee exactly when it finds the height.
        let appended = self.storage.apply_height(
            &self.shared.store,
            &new,
            StoreHeight {
                height: height.0,
                time_ms: block.time_ms,
                record: &record,
                rounds: &prepared.applied().changed_rounds,
                change: change.as_deref().map(|bytes| (next_epoch, bytes)),
            },
        )?;
        let applied = self.state.commit(prepared);
        self.height = height.0;
        let (entries, duties) = (applied.decided, applied.duties);
        let c = &self.shared.counters;
        for e in &entries {
            let counter = match e.entry.verdict {
                Verdict::Reproduced => &c.reproduced,
                Verdict::Failed => &c.failed,
                Verdict::NotReproduced => &c.not_reproduced,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.mempool.prune(&block, &self.state);
        // The view first, then the events: a part handling an event reads this height or
        // a later one.
        self.view.send_replace(Arc::new(StateView {
            height: self.height,
            state: self.state.clone(),
        }));
        let _ = self.events.send(AppEvent::Applied {
            height: height.0,
            entries: entries.len(),
        });
        if !entries.is_empty() || change.is_some() {
            let root = self.shared.store.tree_hash(appended.size)?;
            let _ = self.events.send(AppEvent::Grown {
                size: appended.size,
                root,
                decided: entries.iter().map(|e| e.entry.request.id()).collect(),
            });
        }
        if !duties.is_empty() {
            let _ = self.events.send(AppEvent::Duties(duties));
        }
        if change.is_some() {
            // Consensus under this committee ends here; the node loop still cosigns the
            // handoff checkpoint (the Grown event above) before the node restarts.
            return Err(ApplyError::EpochEnded {
                height: height.0,
                epoch: self.shared.committee.epoch(),
            });
        }
        Ok(())
    }
}

impl App for NodeApp {
    fn build_value(&mut self, height: Height, _round: Round) -> Value {
        let time_ms = now_ms().max(self.state.last_time_ms());
        let messages = self
            .shared
            .mempool
            .select(&self.state, time_ms, self.shared.env());
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
        let rules = *self.state.params();
        // The committee's rules: size, clock drift (the only use of the local clock).
        if value.bytes().len() > rules.max_block_bytes
            || block.height != height.0
            || block.time_ms > now_ms().saturating_add(rules.max_clock_drift_ms)
        {
            return Validity::Invalid;
        }
        Validity::from_bool(self.state.check_block(&block, self.shared.env()).is_ok())
    }

    fn commit(
        &mut self,
        height: Height,
        value: &Value,
        certificate: &CommitCertificate<Ctx>,
    ) -> Result<(), String> {
        self.apply(height, value, certificate)
            .map_err(|e| e.to_string())
    }

    fn has_work(&mut self) -> bool {
        let now = now_ms().max(self.state.last_time_ms());
        self.state
            .next_deadline_ms(&self.shared.committee)
            .is_some_and(|d| d <= now)
            || self
                .shared
                .mempool
                .has_applicable(&self.state, now, self.shared.env())
    }

    fn lagging(&mut self, current: Height, _seen: Height) {
        let _ = self.events.send(AppEvent::Lagging { from: current.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogStore;
    use crate::protocol::{Body, SignedMessage};
    use crate::testing::{TestCommittee, request};

    fn app(tc: &TestCommittee, dir: &std::path::Path) -> (NodeApp, Arc<Shared>) {
        let store = LogStore::open(dir).unwrap();
        let (shared, state) = Shared::restore(tc.committee.clone(), 0, store).unwrap();
        let shared = Arc::new(shared);
        let storage = crate::node::storage::RedbStorage::open(&dir.join("rounds.redb")).unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        (
            NodeApp::new(shared.clone(), Arc::new(storage), state, tx),
            shared,
        )
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
            assert!(shared.view().state.is_open(&req.id()));
            // Applying a height twice is a no-op.
            a.commit(Height(1), &v, &cert).unwrap();
            assert_eq!(shared.view().height, 1);
            assert!(
                a.commit(Height(2), &Value::new(b"junk".to_vec()), &cert)
                    .is_err()
            );
        }
        let (_, shared) = app(&tc, dir.path());
        let view = shared.view();
        assert_eq!(view.height, 1);
        let st = view.state.round_status(&req.id(), &tc.committee).unwrap();
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
        assert!(shared.mempool.insert(signed(&junk, 1), false).is_ok());
        assert!(ids(&shared).is_empty());
        // Ordered: other features and the junk lockfile. (Another target cannot be ordered
        // at all: `check_request` makes such a block invalid, tested in the protocol.)
        let mut featured = request("fol", "1.0.0", "lock");
        featured.request.features = vec!["extra".into()];
        commit(&mut a, 1, vec![signed(&featured, 1), signed(&junk, 1)]);
        assert!(shared.view().state.is_open(&featured.id()));
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
