//! The swarm task: owns the libp2p swarm, enforces membership per protocol, discovers and
//! redials members, and turns swarm events into [`NetEvent`]s. Nothing here blocks or spins:
//! the task sleeps in `select!` until a swarm event, a command or the redial tick.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::metrics::{Metrics as Libp2pMetrics, Recorder};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, noise, tcp, yamux};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::NetConfig;
use crate::error::NetError;
use crate::handle::{
    AuthorShare, Command, GossipMessage, InboundRequest, NetEvent, NetworkHandle, RequestKind,
};
use crate::light_connections::{AddressBucket, Admission, LightConnections};
use crate::metrics::NetMetrics;
use crate::protocol::{CONSENSUS_PROTOCOL, Refusal, Request, Response};
use crate::rate_limit::RateLimiter;
use crate::streams::{FrameSender, accept_loop};

const TICK: Duration = Duration::from_millis(500);
const KAD_BOOTSTRAP_EVERY: Duration = Duration::from_secs(5);

/// Starts the network: returns the handle and the stream of events for the node.
pub async fn start(cfg: NetConfig) -> Result<(NetworkHandle, mpsc::Receiver<NetEvent>), NetError> {
    let start = |e: &dyn std::fmt::Display| NetError::Start(e.to_string());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| start(&e))?
        .with_behaviour(|key| {
            Behaviour::new(key, &cfg).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| start(&e))?
        // Members stay connected when quiet; gossipsub and our redials keep them so.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    for addr in &cfg.listen {
        swarm.listen_on(addr.clone()).map_err(|e| start(&e))?;
    }
    let mut topics = HashMap::new();
    for t in &cfg.topics {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(&t.name))
            .map_err(|e| start(&e))?;
        topics.insert(t.name.clone(), t.max_size);
    }

    let mut registry = Registry::with_prefix("synchronicity_net");
    let metrics = NetMetrics::default();
    metrics.register(&mut registry);
    let libp2p_metrics = Libp2pMetrics::new(&mut registry);

    let local = swarm.local_peer_id().to_owned();
    let members: Arc<HashSet<PeerId>> = Arc::new(cfg.members.iter().map(|m| m.peer_id).collect());
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let mut control = swarm.behaviour().stream.new_control();
    if members.contains(&local) {
        let incoming = control.accept(CONSENSUS_PROTOCOL).map_err(|e| start(&e))?;
        tokio::spawn(accept_loop(
            incoming,
            members.clone(),
            event_tx.clone(),
            |from, data| NetEvent::Frame { from, data },
            cfg.max_frame,
            metrics.clone(),
        ));
    }
    let connected = Arc::new(RwLock::new(HashSet::new()));
    let handle = NetworkHandle {
        local,
        commands: cmd_tx.clone(),
        members: members.clone(),
        connected: connected.clone(),
        topics: Arc::new(topics),
        frames: FrameSender::new(control, cfg.max_frame, metrics.clone()),
        metrics: metrics.clone(),
        registry: Arc::new(Mutex::new(registry)),
    };

    let mut addrs: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
    let now = Instant::now();
    let mut redial = HashMap::new();
    for m in cfg.members.iter().filter(|m| m.peer_id != local) {
        addrs.insert(m.peer_id, m.addrs.clone());
        for a in &m.addrs {
            swarm.behaviour_mut().kad.add_address(&m.peer_id, a.clone());
        }
        redial.insert(
            m.peer_id,
            Redial {
                due: now,
                backoff: Duration::from_secs(1),
            },
        );
    }
    for addr in &cfg.bootstrap {
        let _ = swarm.dial(addr.clone());
    }
    let task = Service {
        swarm,
        cfg,
        local,
        members,
        connected,
        events: event_tx,
        commands_tx: cmd_tx,
        metrics,
        libp2p_metrics,
        addrs,
        redial,
        light_limiter: RateLimiter::new(0, 0),
        light: LightConnections::new(0, 0, Duration::ZERO),
        inbound: HashMap::new(),
        next_inbound: 0,
        outbound: HashMap::new(),
        last_kad_bootstrap: None,
        gossip_held: HashMap::new(),
        listen: Vec::new(),
    };
    tokio::spawn(task.run(cmd_rx));
    Ok((handle, event_rx))
}

struct Redial {
    due: Instant,
    backoff: Duration,
}

struct Service {
    swarm: Swarm<Behaviour>,
    cfg: NetConfig,
    local: PeerId,
    members: Arc<HashSet<PeerId>>,
    connected: Arc<RwLock<HashSet<PeerId>>>,
    events: mpsc::Sender<NetEvent>,
    commands_tx: mpsc::Sender<Command>,
    metrics: NetMetrics,
    libp2p_metrics: Libp2pMetrics,
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    redial: HashMap<PeerId, Redial>,
    light_limiter: RateLimiter<PeerId>,
    light: LightConnections,
    inbound: HashMap<u64, (ResponseChannel<Response>, RequestKind, Instant)>,
    next_inbound: u64,
    outbound: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, NetError>>>,
    last_kad_bootstrap: Option<Instant>,
    listen: Vec<Multiaddr>,
    /// Per author, its gossip messages in the node's hands (see [`AuthorShare`]).
    gossip_held: HashMap<PeerId, Arc<AtomicUsize>>,
}

/// The node's event queue: gossip, frames, requests.
const EVENT_QUEUE: usize = 4096;

/// Most gossip messages of one author in the node's hands at once: the members' shares
/// together fit the event queue, so gossip alone never fills it.
fn author_share(members: usize) -> usize {
    (EVENT_QUEUE / members.max(1)).max(1)
}

impl Service {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.light_limiter = RateLimiter::new(self.cfg.light_burst, self.cfg.light_per_second);
        self.light = LightConnections::new(
            self.cfg.max_light_clients,
            self.cfg.max_light_per_address,
            self.cfg.light_idle_timeout,
        );
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!("network task stopped");
    }

    fn rr(&mut self, kind: RequestKind) -> &mut crate::behaviour::RequestResponse {
        match kind {
            RequestKind::Light => &mut self.swarm.behaviour_mut().light,
            RequestKind::Sync => &mut self.swarm.behaviour_mut().sync,
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Publish { topic, data, reply } => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| NetError::Publish(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Validate {
                id,
                propagation_source,
                acceptance,
            } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &propagation_source, acceptance);
            }
            Command::Respond { id, response } => {
                if let Some((channel, kind, _)) = self.inbound.remove(&id) {
                    let _ = self.rr(kind).send_response(channel, response);
                }
            }
            Command::Request {
                peer,
                kind,
                data,
                reply,
            } => {
                if let Some(a) = self.addrs.get(&peer).filter(|a| !a.is_empty()).cloned() {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(a)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
                let id = self.rr(kind).send_request(&peer, Request(data));
                self.outbound.insert(id, reply);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen.clone());
            }
            Command::Dial { addr } => {
                if let Err(e) = self.swarm.dial(addr) {
                    tracing::debug!("dial: {e}");
                }
            }
            Command::Shutdown => {}
        }
    }

    /// Redials members that are not connected, with exponential backoff; prunes state.
    fn on_tick(&mut self) {
        let now = Instant::now();
        let connected = self.connected.read().expect("lock").clone();
        let due: Vec<PeerId> = self
            .redial
            .iter()
            .filter(|(p, r)| r.due <= now && !connected.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            let addrs = self.addrs.get(&peer).cloned().unwrap_or_default();
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
            let r = self.redial.get_mut(&peer).expect("due peer");
            r.due = now + r.backoff;
            r.backoff = (r.backoff * 2).min(self.cfg.redial_max);
        }
        if connected.len() + 1 < self.members.len() && !connected.is_empty() {
            self.kad_bootstrap(now);
        }
        let stale = self.cfg.request_timeout * 2;
        self.inbound
            .retain(|_, (_, _, at)| now.saturating_duration_since(*at) < stale);
        self.light_limiter.prune(now, Duration::from_secs(300));
        for (peer, conn) in self.light.take_idle(now) {
            tracing::debug!(%peer, "closing an idle non-member connection");
            self.metrics.light_connections_idle_closed.inc();
            self.swarm.close_connection(conn);
        }
        self.metrics.light_connections.set(self.light.len() as i64);
    }

    /// Admits a non-member connection within the per-address and total limits (see
    /// [`LightConnections`]), or closes it (or the connection it evicts), counted.
    fn admit_light(&mut self, peer: PeerId, conn: ConnectionId, remote: &Multiaddr) {
        let bucket = AddressBucket::of(remote);
        match self.light.admit(conn, peer, bucket, Instant::now()) {
            Admission::Admitted => {}
            Admission::AdmittedEvicting(victim) => {
                tracing::debug!(%peer, %remote, "non-member connection evicts one of the largest holder");
                self.metrics.light_connections_evicted.inc();
                self.swarm.close_connection(victim);
            }
            Admission::RefusedAddressFull => {
                tracing::debug!(%peer, %remote, "non-member connection refused: its address holds the most allowed");
                self.metrics.light_connections_refused_address.inc();
                self.swarm.close_connection(conn);
            }
            Admission::RefusedFull => {
                tracing::debug!(%peer, %remote, "non-member connection refused: the light-client limit is reached");
                self.metrics.connections_refused.inc();
                self.swarm.close_connection(conn);
            }
        }
        self.metrics.light_connections.set(self.light.len() as i64);
    }

    fn kad_bootstrap(&mut self, now: Instant) {
        if self
            .last_kad_bootstrap
            .is_none_or(|t| now.saturating_duration_since(t) >= KAD_BOOTSTRAP_EVERY)
        {
            self.last_kad_bootstrap = Some(now);
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    fn learn(&mut self, peer: PeerId, new: impl IntoIterator<Item = Multiaddr>) {
        if !self.members.contains(&peer) || peer == self.local {
            return;
        }
        let known = self.addrs.entry(peer).or_default();
        let mut learned = false;
        for a in new {
            if !known.contains(&a) {
                known.push(a.clone());
                learned = true;
                self.swarm.behaviour_mut().kad.add_address(&peer, a);
            }
        }
        if learned && let Some(r) = self.redial.get_mut(&peer) {
            // New addresses: try now rather than at the end of the backoff.
            r.due = Instant::now();
            r.backoff = Duration::from_secs(1);
        }
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.listen.push(address),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.members.contains(&peer_id) {
                    if num_established.get() == 1 {
                        self.connected.write().expect("lock").insert(peer_id);
                        self.metrics
                            .members_connected
                            .set(self.connected.read().expect("lock").len() as i64);
                        if let Some(r) = self.redial.get_mut(&peer_id) {
                            r.backoff = Duration::from_secs(1);
                        }
                        emit(&self.events, NetEvent::MemberConnected(peer_id)).await;
                    }
                } else {
                    self.admit_light(peer_id, connection_id, endpoint.get_remote_address());
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if self.light.remove(connection_id).is_some() {
                    self.metrics.light_connections.set(self.light.len() as i64);
                }
                if num_established == 0 && self.members.contains(&peer_id) {
                    self.connected.write().expect("lock").remove(&peer_id);
                    self.metrics
                        .members_connected
                        .set(self.connected.read().expect("lock").len() as i64);
                    if let Some(r) = self.redial.get_mut(&peer_id) {
                        r.due = Instant::now() + r.backoff;
                    }
                    emit(&self.events, NetEvent::MemberDisconnected(peer_id)).await;
                }
            }
            SwarmEvent::Behaviour(b) => self.on_behaviour_event(b).await,
            _ => {}
        }
    }

    async fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(e) => {
                self.libp2p_metrics.record(&e);
                if let identify::Event::Received { peer_id, info, .. } = e {
                    self.learn(peer_id, info.listen_addrs);
                    if self.members.contains(&peer_id) {
                        self.kad_bootstrap(Instant::now());
                    }
                }
            }
            BehaviourEvent::Kad(e) => {
                self.libp2p_metrics.record(&e);
                if let kad::Event::RoutingUpdated {
                    peer, addresses, ..
                } = e
                {
                    self.learn(peer, addresses.into_vec());
                }
            }
            BehaviourEvent::Gossipsub(e) => {
                self.libp2p_metrics.record(&e);
                self.on_gossip(e).await;
            }
            BehaviourEvent::Light(e) => self.on_request_response(RequestKind::Light, e).await,
            BehaviourEvent::Sync(e) => self.on_request_response(RequestKind::Sync, e).await,
            BehaviourEvent::Limits(_) | BehaviourEvent::Stream(_) => {}
        }
    }

    async fn on_gossip(&mut self, e: gossipsub::Event) {
        match e {
            gossipsub::Event::Subscribed { peer_id, .. } if !self.members.contains(&peer_id) => {
                // A non-member may not take part in gossip: ignore it from now on.
                self.metrics.gossip_rejected_non_member.inc();
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .blacklist_peer(&peer_id);
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let author = message.source.filter(|s| self.members.contains(s));
                let Some(source) = author.filter(|_| self.members.contains(&propagation_source))
                else {
                    self.metrics.gossip_rejected_non_member.inc();
                    gs.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                    return;
                };
                let topic = message.topic.as_str().to_string();
                let limit = self
                    .cfg
                    .topics
                    .iter()
                    .find(|t| t.name == topic)
                    .map(|t| t.max_size);
                if limit.is_none_or(|max| message.data.len() > max) {
                    self.metrics.gossip_rejected_oversized.inc();
                    gs.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                    return;
                }
                // The author's share of the node's queue first: over it, ignored (no
                // penalty: relaying it was no fault; counted).
                let held = self.gossip_held.entry(source).or_default().clone();
                if held.load(Ordering::Relaxed) >= author_share(self.members.len()) {
                    self.metrics.gossip_dropped_author_share.inc();
                    gs.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Ignore,
                    );
                    return;
                }
                held.fetch_add(1, Ordering::Relaxed);
                let msg = GossipMessage {
                    topic,
                    source,
                    data: message.data,
                    id: message_id.clone(),
                    propagation_source,
                    _share: Some(Arc::new(AuthorShare { held })),
                };
                // Never wait for the node here: a flood would stall this task (and every
                // stream and vote behind it) on one slow consumer. A full queue ignores the
                // message (no penalty: the node is behind, not the sender at fault); its
                // author re-publishes what matters.
                if self.events.try_send(NetEvent::Gossip(msg)).is_ok() {
                    self.metrics.gossip_received.inc();
                } else {
                    self.metrics.gossip_dropped_node_busy.inc();
                    gs.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Ignore,
                    );
                }
            }
            _ => {}
        }
    }

    async fn on_request_response(
        &mut self,
        kind: RequestKind,
        e: request_response::Event<Request, Response>,
    ) {
        match e {
            request_response::Event::Message {
                peer,
                connection_id,
                message,
            } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let member = self.members.contains(&peer);
                    let now = Instant::now();
                    if !member {
                        self.light.touch(connection_id, now);
                    }

                    let refusal = match kind {
                        RequestKind::Sync if !member && !self.cfg.open_sync => {
                            self.metrics.requests_not_member.inc();
                            Some(Refusal::NotMember)
                        }
                        _ if !member && !self.light_limiter.allow(peer, now) => {
                            self.metrics.requests_rate_limited.inc();
                            Some(Refusal::RateLimited)
                        }
                        _ => None,
                    };
                    if let Some(r) = refusal {
                        let _ = self.rr(kind).send_response(channel, Response::Refused(r));
                        return;
                    }
                    let id = self.next_inbound;
                    self.next_inbound += 1;
                    let req = InboundRequest {
                        peer,
                        kind,
                        data: request.0,
                        id,
                        commands: self.commands_tx.clone(),
                    };
                    // As for gossip: a node that is behind refuses, the swarm does not wait.
                    if self.events.try_send(NetEvent::Request(req)).is_ok() {
                        self.metrics.requests_received.inc();
                        self.inbound.insert(id, (channel, kind, Instant::now()));
                    } else {
                        self.metrics.requests_dropped_node_busy.inc();
                        let busy = Refusal::Unavailable("the node is busy".into());
                        let _ = self
                            .rr(kind)
                            .send_response(channel, Response::Refused(busy));
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.outbound.remove(&request_id) {
                        let _ = reply.send(match response {
                            Response::Ok(data) => Ok(data),
                            Response::Refused(r) => Err(NetError::Refused(r)),
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request(error.to_string())));
                }
            }
            _ => {}
        }
    }
}

/// Hands a membership event to the node (waits if the node is behind: backpressure, not
/// loss; these come at the rate of connections, and the node's loop never waits on this
/// task, so the wait ends). Gossip and requests, which peers send at their own rate, are
/// handed over with `try_send` instead.
async fn emit(events: &mpsc::Sender<NetEvent>, e: NetEvent) {
    let _ = events.send(e).await;
}
