//! The node's side of the network: a cheap, cloneable handle that sends commands to the
//! swarm task and frames to the per-member stream writers, and the events it receives.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use crate::error::NetError;
use crate::metrics::NetMetrics;
use crate::protocol::{Refusal, Response};
use crate::streams;

/// Which request-response protocol a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `/synchronicity/proof/2`: light clients, open to anyone (rate limited).
    Light,
    /// `/synchronicity/sync/1`: members only.
    Sync,
}

/// What the node decides about a gossip message: forwarded only when accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: deliver and forward.
    Accept,
    /// Invalid: drop and penalise the forwarder.
    Reject,
    /// Not useful (e.g. a duplicate in meaning): drop without penalty.
    Ignore,
}

/// A gossip message relayed by a member and claiming a member as its author (`source`; not
/// signed by gossipsub: the payload must prove its author, see the behaviour's docs). It is
/// not forwarded until the node calls [`NetworkHandle::validate`].
#[derive(Debug, Clone)]
pub struct GossipMessage {
    /// Topic name.
    pub topic: String,
    /// The claimed author, a member (the payload proves it or the node rejects it).
    pub source: PeerId,
    /// Payload.
    pub data: Vec<u8>,
    pub(crate) id: MessageId,
    pub(crate) propagation_source: PeerId,
    /// The place it takes in its author's share of the node's event queue, given back when
    /// the node drops the message (see [`AuthorShare`]).
    pub(crate) _share: Option<Arc<AuthorShare>>,
}

/// One gossip message of an author in the node's hands (queued or being judged). Each
/// author may have at most a fixed share of the node's event queue at once (the swarm
/// ignores, and counts, the rest: `gossip_dropped_author_share`); the shares of all members
/// together fit the queue. So a flooding member only ever fills its own share: another
/// member's gossip (a reveal, a commitment) still finds room, and the frames and requests
/// behind it wait for two members' shares at most, not for a queue full of one member's
/// flood. The count goes down when the message is dropped, whatever the node did with it
/// (nothing to forget to give back).
#[derive(Debug)]
pub(crate) struct AuthorShare {
    pub(crate) held: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for AuthorShare {
    fn drop(&mut self) {
        self.held.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An inbound request, to answer with [`InboundRequest::respond`].
#[derive(Debug)]
pub struct InboundRequest {
    /// The authenticated requester.
    pub peer: PeerId,
    /// Which protocol.
    pub kind: RequestKind,
    /// Request body.
    pub data: Vec<u8>,
    pub(crate) id: u64,
    pub(crate) commands: mpsc::Sender<Command>,
}

impl InboundRequest {
    /// Sends the node's answer.
    pub async fn respond(self, data: Vec<u8>) {
        let _ = self
            .commands
            .send(Command::Respond {
                id: self.id,
                response: Response::Ok(data),
            })
            .await;
    }

    /// Refuses with a reason.
    pub async fn refuse(self, reason: String) {
        let response = Response::Refused(Refusal::Unavailable(reason));
        let _ = self
            .commands
            .send(Command::Respond {
                id: self.id,
                response,
            })
            .await;
    }
}

/// What the network delivers to the node.
#[derive(Debug)]
pub enum NetEvent {
    /// Gossip from a member, awaiting validation.
    Gossip(GossipMessage),
    /// A consensus frame from a member, in the order the member sent it.
    Frame {
        /// The authenticated sender (a member).
        from: PeerId,
        /// The frame.
        data: Vec<u8>,
    },
    /// A request to answer.
    Request(InboundRequest),
    /// A member's first connection opened.
    MemberConnected(PeerId),
    /// A member's last connection closed.
    MemberDisconnected(PeerId),
}

pub(crate) enum Command {
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Validate {
        id: MessageId,
        propagation_source: PeerId,
        acceptance: MessageAcceptance,
    },
    Respond {
        id: u64,
        response: Response,
    },
    Request {
        peer: PeerId,
        kind: RequestKind,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
    },
    Shutdown,
}

/// The handle. Clone it freely.
#[derive(Clone)]
pub struct NetworkHandle {
    pub(crate) local: PeerId,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) members: Arc<HashSet<PeerId>>,
    pub(crate) connected: Arc<RwLock<HashSet<PeerId>>>,
    pub(crate) topics: Arc<HashMap<String, usize>>,
    pub(crate) frames: streams::FrameSender,
    pub(crate) metrics: NetMetrics,
    pub(crate) registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl NetworkHandle {
    /// The local peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    async fn command(&self, c: Command) -> Result<(), NetError> {
        self.commands.send(c).await.map_err(|_| NetError::Stopped)
    }

    /// Publishes `data` on `topic` (size-checked against the topic's limit).
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), NetError> {
        let max = *self
            .topics
            .get(topic)
            .ok_or_else(|| NetError::UnknownTopic(topic.into()))?;
        if data.len() > max {
            return Err(NetError::TooLarge {
                len: data.len(),
                max,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.command(Command::Publish {
            topic: topic.into(),
            data,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Reports the node's verdict on a gossip message (forwarded only if accepted). Never
    /// waits: the node's loop calls this for every message a peer sends, and the swarm task
    /// may itself be waiting for that loop (a full event queue), so awaiting room here could
    /// deadlock both. When the command queue is full the verdict is dropped and counted;
    /// gossipsub then neither forwards nor keeps the message past its cache window. A
    /// dropped `Reject` spares its forwarder gossipsub's penalty: accepted, as the message
    /// itself goes no further either way.
    pub fn validate(&self, msg: &GossipMessage, v: Validation) {
        let acceptance = match v {
            Validation::Accept => MessageAcceptance::Accept,
            Validation::Reject => {
                self.metrics.gossip_rejected_by_node.inc();
                MessageAcceptance::Reject
            }
            Validation::Ignore => MessageAcceptance::Ignore,
        };
        let c = Command::Validate {
            id: msg.id.clone(),
            propagation_source: msg.propagation_source,
            acceptance,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.commands.try_send(c) {
            self.metrics.validations_dropped.inc();
        }
    }

    /// Queues a frame for `peer` (a member) on its direct consensus stream. Frames to one
    /// member arrive in the order sent; a frame to an unreachable member is dropped (and
    /// counted) after one retry: consensus retransmits by its own timeouts.
    pub fn send_frame(&self, peer: PeerId, data: Vec<u8>) -> Result<(), NetError> {
        if !self.members.contains(&peer) {
            return Err(NetError::NotMember(peer));
        }
        self.frames.send(peer, data)
    }

    /// Like [`Self::send_frame`], but waits for room in the member's queue instead of
    /// failing with [`NetError::QueueFull`].
    pub async fn send_frame_wait(&self, peer: PeerId, data: Vec<u8>) -> Result<(), NetError> {
        if !self.members.contains(&peer) {
            return Err(NetError::NotMember(peer));
        }
        self.frames.send_wait(peer, data).await
    }

    /// Sends a request and waits for the answer.
    pub async fn request(
        &self,
        peer: PeerId,
        kind: RequestKind,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Request {
            peer,
            kind,
            data,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Dials an address (e.g. a member's, for a light client).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.command(Command::Dial { addr }).await
    }

    /// The addresses the swarm listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::ListenAddrs { reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Members currently connected (the membership view).
    pub fn connected_members(&self) -> HashSet<PeerId> {
        self.connected.read().expect("lock").clone()
    }

    /// The committee's peer ids.
    pub fn members(&self) -> &HashSet<PeerId> {
        &self.members
    }

    /// Rejection and traffic counters.
    pub fn metrics(&self) -> &NetMetrics {
        &self.metrics
    }

    /// The Prometheus text exposition of the network's metrics (ours and libp2p's).
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(
            &mut out,
            &self.registry.lock().expect("lock"),
        );
        out
    }

    /// Opens a raw consensus stream to `peer`, bypassing framing: for fault-injection tests
    /// that must send malformed frames. Not for production use.
    #[doc(hidden)]
    pub async fn raw_consensus_stream(&self, peer: PeerId) -> Result<libp2p::Stream, NetError> {
        self.frames.open_raw(peer).await
    }

    /// Stops the network task (connections close).
    pub async fn shutdown(&self) {
        let _ = self.command(Command::Shutdown).await;
    }
}
