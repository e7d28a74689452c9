//! A member node: the network, the consensus actor, the builder and the log wired
//! together. [`start`] opens the node directory and returns a [`NodeHandle`].
//!
//! ```text
//! DIR/identity.key, bls.key, member.toml   keys (see node_dir)
//! DIR/log/log.redb                         the log, decided blocks, checkpoints
//! DIR/consensus.wal                        inputs of the height in progress
//! DIR/rounds.redb                          our rounds: submitted, built (outcome, salt), committed, revealed
//! ```
//!
//! Inside, each piece of state has one owner (docs/node.md, "Owners, threads and
//! channels"): the consensus app (`app.rs`) owns the protocol state and publishes a
//! [`StateView`] after each height; the node loop (`run.rs`) is a thin shell over parts
//! that own the rest: the outbox (our keys, gossip, the actor's queue), the builder driver
//! (build queue, builds, `rounds.redb`, driven by the pure `lifecycle.rs`), catch-up
//! (`sync.rs`), cosigning and the answers in flight. [`Shared`] is what they all read.
//!
//! Restart: the open rounds are loaded from the rows stored with the applied height, consensus resumes
//! at the first unapplied height and replays its WAL, open rounds resume (build, commit or
//! reveal as needed), and missing heights are fetched from members with their commit
//! certificates.

mod answers;
mod app;
pub mod artifacts;
pub mod backlog;
pub mod build_logs;
mod builder_driver;
pub mod control;
pub(crate) mod cosign;
mod cosigning;
pub mod epochs;
pub mod follow;
mod gossip;
mod join;
mod lifecycle;
mod light;
mod mempool;
mod outbox;
mod outgoing;
mod own;
pub mod queue;
pub(crate) mod run;
mod service;
mod shared;
mod storage;
mod sync;
pub mod wire;
pub mod witness_submit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_malachitebft_core_types::LinearTimeouts;
use arc_malachitebft_signing_ed25519::PrivateKey;
use synchronicity_net::{MemberAddr, Multiaddr, NetConfig, NetworkHandle, PeerId, TopicConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use crate::clock::now_ms;
pub use app::{DecodeBlockError, decode_block, new_entry};
pub use builder_driver::SubmitError;
pub use outgoing::{HonestMessages, OutgoingMessages};
pub use own::OwnRoundsError;
pub use service::{BuildService, SandboxBuildService};
pub use shared::{AppState, LatestCheckpointError, NodeCounters, RestoreError, Shared, StateView};
pub use storage::StorageError;

use crate::committee::Committee;
use crate::consensus::actor::{self, ActorConfig};
use crate::consensus::wal::Wal;
use crate::consensus::{Core, Ctx, Height, HonestFrames, OutgoingFrames, ValidatorSet};
use crate::log::LogStore;
use crate::protocol::{MAX_MESSAGE_SIZE, RoundStatus};
use crate::request::PinnedRequest;
use queue::BuildQueue;

/// Everything a node needs besides its builder.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node directory (keys; the log and WAL are created inside).
    pub dir: PathBuf,
    /// The group.
    pub committee: Committee,
    /// Listen addresses (default: the committee entry's addresses).
    pub listen: Vec<Multiaddr>,
    /// Extra addresses to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// How often an idle node re-checks for work (no empty heights are decided).
    pub idle_interval: Duration,
    /// Most builds at once (`[builder] max_parallel`).
    pub max_parallel_builds: usize,
    /// Crates whose new releases this node orders (`[follow]`).
    pub follow: Option<follow::FollowConfig>,
    /// A list of releases this node builds once each (`[follow] list`).
    pub backlog: Option<backlog::BacklogConfig>,
    /// The artifact store served on the light protocol (`[artifacts]`).
    pub artifacts: Option<Arc<artifacts::ArtifactStore>>,
    /// Witnesses each cosigned checkpoint is submitted to (`[[witnesses]]`).
    pub witnesses: Vec<crate::node::witness_submit::WitnessEndpoint>,
    /// When this node is not a member of its log's epoch: follow the log as a non-voter
    /// until the epoch that adds it (a joining builder), instead of refusing to start.
    pub join: bool,
    /// Consensus timeouts.
    pub timeouts: LinearTimeouts,
    /// What the consensus actor's broadcasts send (default [`HonestFrames`]: the same
    /// frame to every peer). A seam for test members; a product node keeps the default.
    pub outgoing_frames: Arc<dyn OutgoingFrames>,
    /// What our protocol messages become on the way out (default [`HonestMessages`]:
    /// unchanged). A seam for test members; a product node keeps the default.
    pub outgoing_messages: Arc<dyn OutgoingMessages>,
}

impl NodeConfig {
    /// Defaults for `dir` in `committee` (whose `[protocol]` rules the node applies):
    /// listen where the committee says, an idle re-check every 5 s (no empty heights),
    /// Malachite's default timeouts (propose 3 s), honest outgoing frames and messages.
    pub fn new(dir: &Path, committee: Committee) -> Self {
        Self {
            dir: dir.to_path_buf(),
            committee,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            idle_interval: Duration::from_secs(5),
            max_parallel_builds: 1,
            follow: None,
            backlog: None,
            artifacts: None,
            witnesses: Vec::new(),
            join: false,
            timeouts: LinearTimeouts::default(),
            outgoing_frames: Arc::new(HonestFrames),
            outgoing_messages: Arc::new(HonestMessages),
        }
    }
}

/// The committee as the network sees it: each member's peer id and addresses.
pub fn member_addrs(committee: &Committee) -> Vec<MemberAddr> {
    committee
        .members()
        .iter()
        .map(|m| MemberAddr {
            peer_id: m.peer_id,
            addrs: m.addrs.clone(),
        })
        .collect()
}

/// The network of a node with `keys` in `committee`'s epoch, listening on `listen`: the
/// committee's members, our gossip topics, and sync open to non-members (rate limited like
/// light clients) so that a joining node can follow the log before its epoch.
fn net_config(
    keys: &crate::node_dir::NodeKeys,
    committee: &Committee,
    listen: Vec<Multiaddr>,
    config: &NodeConfig,
) -> NetConfig {
    NetConfig::new(keys.identity.keypair(), member_addrs(committee))
        .with_listen(listen)
        .with_bootstrap(config.bootstrap.clone())
        .with_open_sync(true)
        .with_topics(vec![
            TopicConfig {
                name: wire::MESSAGES_TOPIC.into(),
                max_size: MAX_MESSAGE_SIZE,
            },
            TopicConfig {
                name: wire::COSIGN_TOPIC.into(),
                max_size: wire::MAX_COSIGN,
            },
        ])
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Keys could not be loaded.
    #[error("{0}")]
    Keys(#[from] crate::node_dir::NodeDirError),
    /// This node's identity is not in the committee.
    #[error("this node ({0}) is not a member of the committee of epoch {1}")]
    NotMember(PeerId, u64),
    /// The committee file is not the genesis.
    #[error(
        "the committee file is epoch {0}'s: start a node with the group's genesis file (epoch 0); the log moves it along the changes"
    )]
    NotGenesis(u64),
    /// The log's committee changes do not verify.
    #[error("log store: {0}")]
    Epoch(#[from] crate::log::EpochError),
    /// The node's BLS key is not the committee's key for it.
    #[error("bls.key does not match the committee's key for this member")]
    WrongBlsKey,
    /// The log store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::log::StoreError),
    /// The node's state could not be restored from its log store.
    #[error("log store: {0}")]
    Restore(#[from] RestoreError),
    /// `rounds.redb` could not be opened.
    #[error(transparent)]
    Rounds(#[from] OwnRoundsError),
    /// The WAL could not be opened.
    #[error("{0}")]
    Wal(#[from] crate::consensus::wal::WalError),
    /// The network could not start.
    #[error("{0}")]
    Net(#[from] synchronicity_net::NetError),
    /// A file in the node directory could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running node.
pub struct NodeHandle {
    shared: Arc<Shared>,
    net: NetworkHandle,
    commands: mpsc::Sender<run::Command>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("peer", &self.net.local_peer_id())
            .finish_non_exhaustive()
    }
}

/// Starts a node.
pub async fn start(
    config: NodeConfig,
    service: Arc<dyn BuildService>,
) -> Result<NodeHandle, NodeError> {
    // The committee file is the genesis; the log says which epoch the group is in. A later
    // epoch's file would be taken for the genesis, and no certificate would verify.
    if config.committee.epoch() != 0 {
        return Err(NodeError::NotGenesis(config.committee.epoch()));
    }
    let store = LogStore::open(&config.dir.join("log"))?;
    let mut past = crate::log::stored_epochs(&config.committee, &store)?;
    let current = past.pop().expect("the genesis at least");
    let (committee, epoch_start) = (current.committee, current.start);
    let mut keys = crate::node_dir::load_keys(&config.dir)?;
    let peer = keys.identity.peer_id();
    let me = match committee.index_of_peer(&peer) {
        Some(me) => me,
        None if config.join => {
            return join::start_follower(config, committee, past, epoch_start, store, keys).await;
        }
        None => return Err(NodeError::NotMember(peer, committee.epoch())),
    };
    // A rotated BLS key: the epoch names our next key; from now on it is our key.
    let wanted = &committee.members()[me].bls_public_key;
    if crate::node_dir::promote_next_bls(&config.dir, wanted)? {
        tracing::info!(epoch = committee.epoch(), "moved to the next BLS key");
        keys = crate::node_dir::load_keys(&config.dir)?;
    }
    if committee.members()[me].bls_public_key != keys.bls.public_key() {
        return Err(NodeError::WrongBlsKey);
    }
    let (shared, app_state) = Shared::restore(committee.clone(), me as u32, store)?;
    let (queue_tx, queue_rx) = watch::channel(BuildQueue::new(config.max_parallel_builds));
    let (backlog_tx, backlog_rx) = watch::channel(None);
    let shared = Arc::new(
        shared
            .with_past(past, epoch_start)
            .with_builds(queue_rx)
            .with_backlog(backlog_rx)
            .with_node_dir(&config.dir)
            .with_artifacts(config.artifacts.clone()),
    );
    let wal = Wal::open(&config.dir.join(epochs::wal_file(committee.epoch())))?;
    if committee.epoch() > 0 {
        // The previous epoch's WAL is done with: its heights are all decided.
        let _ = std::fs::remove_file(config.dir.join(epochs::wal_file(committee.epoch() - 1)));
    }
    let storage: Arc<dyn storage::NodeStorage> =
        Arc::new(storage::RedbStorage::open(&config.dir.join("rounds.redb"))?);

    let listen = if config.listen.is_empty() {
        committee.members()[me].addrs.clone()
    } else {
        config.listen.clone()
    };
    let net_config = net_config(&keys, &committee, listen, &config);
    let (net, net_events) = synchronicity_net::start(net_config).await?;

    let ctx = Ctx::new(committee.signing_domain());
    let vs = ValidatorSet::from_committee(&committee);
    let key = PrivateKey::from(keys.identity.secret_bytes());
    let core = Core::new(ctx, vs, key, config.timeouts);
    let (app_tx, app_rx) = mpsc::unbounded_channel();
    let first_height = Height(app_state.height + 1);
    let app = app::NodeApp::new(shared.clone(), storage.clone(), app_state, app_tx);
    let peers: Vec<PeerId> = committee
        .members()
        .iter()
        .map(|m| m.peer_id)
        .filter(|p| *p != peer)
        .collect();
    let (actor_tx, actor_task) = actor::spawn(
        core,
        app,
        net.clone(),
        ActorConfig {
            peers,
            first_height,
            idle_interval: config.idle_interval,
            wal: Some(wal),
            outgoing: config.outgoing_frames.clone(),
        },
    );

    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (builds_tx, builds_rx) = mpsc::unbounded_channel();
    let (synced_tx, synced_rx) = mpsc::unbounded_channel();
    let outbox = outbox::Outbox::new(
        shared.clone(),
        net.clone(),
        actor_tx,
        outbox::Keys {
            identity: keys.identity,
            bls: keys.bls,
        },
        config.outgoing_messages.clone(),
    );
    let builder =
        builder_driver::BuilderDriver::new(shared.clone(), service, storage, queue_tx, builds_tx);
    let follower = config.follow.clone().map(|f| {
        tokio::spawn(follow::run(
            f,
            shared.clone(),
            cmd_tx.clone(),
            builder.service().clone(),
        ))
    });
    let backlog = config.backlog.clone().map(|b| {
        tokio::spawn(backlog::run(
            b,
            shared.clone(),
            cmd_tx.clone(),
            builder.service().clone(),
            backlog_tx,
        ))
    });
    let node_loop = run::NodeLoop::new(
        shared.clone(),
        outbox,
        builder,
        sync::Catchup::new(me, synced_tx),
        cosigning::Cosigning::new(shared.clone(), run::REPUBLISH),
        answers::Answers::new(shared.clone()),
    );
    let loop_task = tokio::spawn(node_loop.run(run::Inputs {
        net: net_events,
        app: app_rx,
        commands: cmd_rx,
        builds: builds_rx,
        synced: synced_rx,
    }));
    // The consensus actor ends on shutdown, or because it cannot go on: then the node halts.
    let watcher = tokio::spawn({
        let shared = shared.clone();
        async move {
            if let Ok(Some(reason)) = actor_task.await {
                shared.halt(reason);
            }
        }
    });
    let mut tasks = vec![loop_task, watcher];
    tasks.extend(follower);
    tasks.extend(backlog);
    tasks.push(tokio::spawn(epochs::backfill_handoffs(
        shared.clone(),
        net.clone(),
    )));
    if !config.witnesses.is_empty() {
        tasks.push(tokio::spawn(crate::node::witness_submit::run(
            shared.clone(),
            config.witnesses.clone(),
        )));
    }
    Ok(NodeHandle {
        shared,
        net,
        commands: cmd_tx,
        tasks,
    })
}

impl NodeHandle {
    /// Orders a pinned request: signs it, gossips it, and proposes it when our turn comes.
    /// Returns its id (also when it was already ordered).
    pub async fn submit(&self, request: PinnedRequest) -> Result<[u8; 32], SubmitError> {
        run::submit(&self.commands, request).await
    }

    /// The node's command queue (for servers that order requests: `http::recipes`).
    pub(crate) fn commands(&self) -> mpsc::Sender<run::Command> {
        self.commands.clone()
    }

    /// The open round of `id`, or `None` when it is not open (unknown or decided).
    pub fn round_status(&self, id: &[u8; 32]) -> Option<RoundStatus> {
        self.shared
            .view()
            .state
            .round_status(id, &self.shared.committee)
    }

    /// The log index of `id`'s entry, once decided.
    pub fn decided_index(&self, id: &[u8; 32]) -> Option<u64> {
        self.shared.store.lookup_request(id).ok().flatten()
    }

    /// Waits until the node cannot go on (fail-stop); returns why.
    pub async fn halted(&self) -> String {
        self.shared.wait_halted().await
    }

    /// When the log holds a later epoch than the one this node started in (a decided block
    /// ended the epoch): that epoch and the size of its handoff checkpoint (the log up to and
    /// including the change entry).
    pub fn next_epoch(&self) -> Option<(u64, u64)> {
        let current = self.shared.committee.epoch();
        let epochs = self.shared.store.epochs().ok()?;
        let &(epoch, index) = epochs.last()?;
        (epoch > current).then_some((epoch, index + 1))
    }

    /// Whether this node is a member of the committee the log's latest change entry names
    /// (true when there is none, or it cannot be read: the restart then says why).
    pub fn member_of_next_epoch(&self) -> bool {
        let next = (|| {
            let &(_, index) = self.shared.store.epochs().ok()?.last()?;
            let bytes = self.shared.store.entry(index).ok()?;
            let entry = synchronicity_verify::ChangeEntry::decode(&bytes).ok()?;
            entry.verify(&self.shared.committee).ok()
        })();
        let me = self.net.local_peer_id().to_base58();
        next.is_none_or(|c| c.index_of_peer_id(&me).is_some())
    }

    /// Fetches the handoff checkpoint of the epoch that ended (`ended`, of size `handoff`)
    /// from a connected member, and stores it once verified (see [`epochs::fetch_handoff`]).
    /// True once the store holds it.
    pub async fn fetch_handoff(&self, ended: u64, handoff: u64) -> bool {
        let mut peers: Vec<PeerId> = self.net.connected_members().into_iter().collect();
        peers.sort();
        for peer in peers {
            match epochs::fetch_handoff(&self.shared, &self.net, peer, ended, handoff).await {
                Ok(()) => return true,
                Err(e) => tracing::debug!(%peer, "handoff checkpoint: {e}"),
            }
        }
        self.has_checkpoint_at(handoff)
    }

    /// True when the store holds a cosigned checkpoint of exactly `size` (the handoff).
    pub fn has_checkpoint_at(&self, size: u64) -> bool {
        self.shared.store.has_checkpoint_at(size)
    }

    /// Last applied height.
    pub fn applied_height(&self) -> u64 {
        self.shared.view().height
    }

    /// The shared state (log store, committee).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves the operator's control socket `dir/control.sock` (see [`control`]).
    pub fn serve_control(
        &mut self,
        dir: &Path,
        service: Arc<dyn BuildService>,
    ) -> std::io::Result<()> {
        let task = control::serve(self, dir, service)?;
        self.tasks.push(task);
        Ok(())
    }

    /// The network handle.
    pub fn net(&self) -> &NetworkHandle {
        &self.net
    }

    /// Stops the node: consensus, the loop and the network. Everything decided is already
    /// durable; the WAL keeps the height in progress.
    pub async fn shutdown(self) {
        let _ = self.commands.send(run::Command::Shutdown).await;
        let mut tasks = self.tasks;
        // The control server (if any) never ends by itself.
        for t in tasks.iter().skip(2) {
            t.abort();
        }
        tasks.truncate(2);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.net.shutdown().await;
    }
}
