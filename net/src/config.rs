//! Network configuration, with `with_*` setters whose docs give the defaults.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

use crate::protocol::DEFAULT_MAX_FRAME;

/// A gossip topic and the largest message accepted on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Topic name, versioned (e.g. `/synchronicity/reveals/1`).
    pub name: String,
    /// Largest message in bytes; larger ones are rejected and counted.
    pub max_size: usize,
}

/// A committee member as the network sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddr {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Addresses from the committee file (may be empty: then discovered via Kademlia).
    pub addrs: Vec<Multiaddr>,
}

/// Everything the network needs to start.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub(crate) keypair: Keypair,
    pub(crate) members: Vec<MemberAddr>,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) bootstrap: Vec<Multiaddr>,
    pub(crate) topics: Vec<TopicConfig>,
    pub(crate) max_frame: usize,
    pub(crate) light_burst: u32,
    pub(crate) light_per_second: u32,
    pub(crate) max_light_clients: usize,
    pub(crate) max_light_per_address: usize,
    pub(crate) light_idle_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) redial_max: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) open_sync: bool,
}

impl NetConfig {
    /// A node with identity `keypair` in a group of `members` (itself included if it is a
    /// member; a light client is simply not in the list).
    pub fn new(keypair: Keypair, members: Vec<MemberAddr>) -> Self {
        Self {
            keypair,
            members,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            topics: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            light_burst: 100,
            light_per_second: 50,
            max_light_clients: 64,
            max_light_per_address: 8,
            light_idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            redial_max: Duration::from_secs(30),
            heartbeat: Duration::from_millis(700),
            open_sync: false,
        }
    }

    /// Whether non-members may send sync requests (a node that follows the log before it
    /// is a member: a joining builder). They are then rate limited like light-client
    /// requests, on the same budget. Default: no (refused as `NotMember`).
    pub fn with_open_sync(mut self, open: bool) -> Self {
        self.open_sync = open;
        self
    }

    /// Addresses to listen on. Default: none (a client).
    pub fn with_listen(mut self, addrs: Vec<Multiaddr>) -> Self {
        self.listen = addrs;
        self
    }

    /// Extra addresses to dial at start (e.g. one bootstrap member). Default: none; member
    /// addresses from the committee are dialled anyway.
    pub fn with_bootstrap(mut self, addrs: Vec<Multiaddr>) -> Self {
        self.bootstrap = addrs;
        self
    }

    /// Gossip topics to join, with their size limits. Default: none.
    pub fn with_topics(mut self, topics: Vec<TopicConfig>) -> Self {
        self.topics = topics;
        self
    }

    /// Largest consensus frame. Default: 4 MiB.
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Light-client rate limit per non-member peer: `burst` requests, refilled at
    /// `per_second`. Default: 100 and 50/s (a cook fetches a bundle of several hundred small
    /// files one request each).
    pub fn with_light_rate(mut self, burst: u32, per_second: u32) -> Self {
        self.light_burst = burst;
        self.light_per_second = per_second;
        self
    }

    /// Most simultaneous non-member connections. Default: 64. When reached, a newcomer
    /// from an address holding fewer connections than the largest holder evicts that
    /// holder's least recently active connection; otherwise it is closed and counted.
    pub fn with_max_light_clients(mut self, n: usize) -> Self {
        self.max_light_clients = n;
        self
    }

    /// Most simultaneous non-member connections from one IPv4 address or one IPv6 /64
    /// (throwaway keys are free, addresses are not); over it a new one is closed and
    /// counted. Default: 8 (so one address makes at most 8 × the per-peer light rate).
    pub fn with_max_light_per_address(mut self, n: usize) -> Self {
        self.max_light_per_address = n;
        self
    }

    /// A non-member connection with no light-client request for this long is closed and
    /// counted. Default: 60 s.
    pub fn with_light_idle_timeout(mut self, t: Duration) -> Self {
        self.light_idle_timeout = t;
        self
    }

    /// Request timeout. Default: 10 s.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Longest wait between redials of a lost member (exponential from 1 s). Default: 30 s.
    pub fn with_redial_max(mut self, t: Duration) -> Self {
        self.redial_max = t;
        self
    }

    /// Gossipsub heartbeat. Default: 700 ms.
    pub fn with_gossip_heartbeat(mut self, t: Duration) -> Self {
        self.heartbeat = t;
        self
    }

    /// The local peer id.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }
}
