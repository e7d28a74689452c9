//! A node that is not a member of its log's epoch: a joining builder. It follows the log as a
//! non-voter until the epoch that adds it (docs/decisions.md, "Joining"):
//!
//! ```text
//! start (genesis file, empty log) ─► sync decided heights from members, each applied only
//!   after its commit certificate verifies under the epoch's committee ─► a change entry
//!   ends the epoch ─► restart into the next epoch (as every member does) ─► a member of it?
//!   yes: a voter from its first height; no: follow on
//! ```
//!
//! It runs the same consensus app (the same apply path, the same store) as a member, so the
//! log it serves is the one every member holds. The consensus actor runs with an address
//! that is not in the validator set: Malachite's core then never votes or proposes, and the
//! actor sends no frame (no peers). What it does not run: the builder, cosigning (it only
//! stores checkpoints members cosigned), follow, witnesses, gossip (it has no vote on what
//! is ordered). Its sync requests are rate limited by members like a light client's.

use std::sync::Arc;
use std::time::Duration;

use arc_malachitebft_signing_ed25519::PrivateKey;
use synchronicity_net::{Multiaddr, NetEvent, Validation};
use tokio::sync::{mpsc, watch};

use super::answers::Answers;
use super::app::AppEvent;
use super::builder_driver::SubmitError;
use super::cosigning::Cosigning;
use super::outbox::{Keys, Outbox};
use super::queue::BuildQueue;
use super::run::{Command, REPUBLISH};
use super::shared::Shared;
use super::sync::Catchup;
use super::wire::SyncResponse;
use super::{NodeConfig, NodeError, NodeHandle, app, storage};
use crate::committee::Committee;
use crate::consensus::actor::{self, ActorConfig};
use crate::consensus::{Core, Ctx, Height, ValidatorSet};
use crate::log::{LogStore, StoredEpoch};
use crate::node_dir::NodeKeys;

/// How often a follower asks a member for heights decided after its own: it hears no
/// gossip, so it learns of new heights only by asking. A full batch is followed at once.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// Starts a follower of `committee`'s epoch (see the module doc).
pub(super) async fn start_follower(
    config: NodeConfig,
    committee: Committee,
    past: Vec<StoredEpoch>,
    epoch_start: u64,
    store: LogStore,
    keys: NodeKeys,
) -> Result<NodeHandle, NodeError> {
    let epoch = committee.epoch();
    let (shared, app_state) = Shared::restore(committee.clone(), Shared::FOLLOWER, store)?;
    let (_, queue) = watch::channel(BuildQueue::new(1));
    let shared = Arc::new(shared.with_past(past, epoch_start).with_builds(queue));
    // Where we listen: the addresses our member.toml names (the ones the committee that
    // adds us will name), unless told otherwise.
    let listen: Vec<Multiaddr> = if config.listen.is_empty() {
        let member = crate::node_dir::load_member(&config.dir)?;
        // Checked by the committee file that adds us; here only where to listen.
        member.addrs.iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        config.listen.clone()
    };
    let (net, net_events) =
        synchronicity_net::start(super::net_config(&keys, &committee, listen, &config)).await?;
    tracing::info!(
        epoch,
        "not a member of this epoch's committee: following the log as a non-voter"
    );

    let ctx = Ctx::new(committee.signing_domain());
    let vs = ValidatorSet::from_committee(&committee);
    let key = PrivateKey::from(keys.identity.secret_bytes());
    let core = Core::new(ctx, vs, key, config.timeouts);
    let storage: Arc<dyn storage::NodeStorage> =
        Arc::new(storage::RedbStorage::open(&config.dir.join("rounds.redb"))?);
    let (app_tx, app_rx) = mpsc::unbounded_channel();
    let first_height = Height(app_state.height + 1);
    let app = app::NodeApp::new(shared.clone(), storage, app_state, app_tx);
    let (actor_tx, actor_task) = actor::spawn(
        core,
        app,
        net.clone(),
        ActorConfig {
            peers: Vec::new(),
            first_height,
            idle_interval: config.idle_interval,
            wal: None,
            outgoing: config.outgoing_frames.clone(),
        },
    );
    let outbox = Outbox::new(
        shared.clone(),
        net.clone(),
        actor_tx,
        Keys {
            identity: keys.identity,
            bls: keys.bls,
        },
        config.outgoing_messages.clone(),
    );
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (synced_tx, synced_rx) = mpsc::unbounded_channel();
    let follower = Follower {
        shared: shared.clone(),
        catchup: Catchup::new(0, synced_tx),
        cosigning: Cosigning::new(shared.clone(), REPUBLISH),
        answers: Answers::new(shared.clone()),
        outbox,
    };
    let loop_task = tokio::spawn(follower.run(net_events, app_rx, cmd_rx, synced_rx));
    let watcher = tokio::spawn({
        let shared = shared.clone();
        async move {
            if let Ok(Some(reason)) = actor_task.await {
                shared.halt(reason);
            }
        }
    });
    let backfill = tokio::spawn(super::epochs::backfill_handoffs(
        shared.clone(),
        net.clone(),
    ));
    Ok(NodeHandle {
        shared,
        net,
        commands: cmd_tx,
        tasks: vec![loop_task, watcher, backfill],
    })
}

/// The follower's loop: catch-up and what it stores; answers to others' requests.
struct Follower {
    shared: Arc<Shared>,
    outbox: Outbox,
    catchup: Catchup,
    cosigning: Cosigning,
    answers: Answers,
}

impl Follower {
    async fn run(
        mut self,
        mut net: mpsc::Receiver<NetEvent>,
        mut app: mpsc::UnboundedReceiver<AppEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut synced: mpsc::UnboundedReceiver<Option<SyncResponse>>,
    ) {
        let mut poll = tokio::time::interval(FOLLOW_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let epoch = self.shared.committee.epoch();
        let not_voter = move || {
            format!(
                "this node is not a member of epoch {epoch}: it follows the log until the epoch that adds it"
            )
        };
        loop {
            tokio::select! {
                e = net.recv() => match e {
                    Some(NetEvent::Request(r)) => self.answers.on_request(r),
                    // Not ours to judge or relay: the members' gossip.
                    Some(NetEvent::Gossip(g)) => self.outbox.net().validate(&g, Validation::Ignore),
                    Some(NetEvent::MemberConnected(peer)) => {
                        let from = self.shared.view().height + 1;
                        self.catchup.sync_from(from, Some(peer), &self.outbox);
                    }
                    Some(_) => {}
                    None => break,
                },
                // Duties, cosigning and builds are members' work.
                Some(_) = app.recv() => {}
                c = commands.recv() => match c {
                    Some(Command::Submit { reply, .. }) => {
                        let _ = reply.send(Err(SubmitError::NotVoter { epoch }));
                    }
                    Some(Command::Approve { reply, .. }) => {
                        let _ = reply.send(Err(not_voter()));
                    }
                    Some(Command::Shutdown) | None => break,
                },
                Some(resp) = synced.recv() => {
                    if let Some(note) = self.catchup.on_synced(resp, &self.outbox) {
                        self.cosigning.on_fetched(note);
                    }
                }
                _ = poll.tick() => {
                    let from = self.shared.view().height + 1;
                    self.catchup.sync_from(from, None, &self.outbox);
                }
            }
        }
        self.outbox.shutdown().await;
    }
}
