//! Synchronicity's network layer on libp2p: discovery, gossip, direct streams and
//! light-client protocols for a PERMISSIONED group. It knows no consensus or log types:
//! payloads are bytes, and the node gives them meaning.
//!
//! | protocol | name | who |
//! |---|---|---|
//! | identify | `/synchronicity/id/1` | anyone |
//! | Kademlia (server mode, seeded from the committee, fed by identify) | `/synchronicity/kad/1` | anyone |
//! | gossipsub (validated by the node before forwarding; unsigned: payloads prove their author) | topics of the node | members; a non-member's subscription or message is rejected, counted, and the peer ignored |
//! | consensus stream (length-prefixed frames, after the reader's accepted byte) | `/synchronicity/consensus/2` | members; other streams dropped and counted |
//! | light-client request-response (CBOR) | `/synchronicity/proof/2` | anyone, rate limited per peer (and at most 8 peers per address) |
//! | sync request-response (CBOR) | `/synchronicity/sync/1` | members only |
//!
//! Transport: TCP + Noise + Yamux. Non-member connections are capped in total
//! ([`NetConfig::with_max_light_clients`]) and per IPv4 address or IPv6 /64
//! ([`NetConfig::with_max_light_per_address`]), closed when idle
//! ([`NetConfig::with_light_idle_timeout`]), and a full table yields the largest holder's
//! least active connection to a newcomer; lost members are redialled with exponential
//! backoff. Start with [`start`]; use the [`NetworkHandle`]; read [`NetEvent`]s.
//!
//! # Dependencies
//!
//! libp2p, tokio and small generic crates. It must NEVER depend on another workspace crate
//! (the formats in `synchronicity-verify`, the node) or on storage, consensus or the
//! builder: the light client embeds it, and what a frame means is the node's business.

#![forbid(unsafe_code)]

mod behaviour;
mod config;
mod error;
mod handle;
mod light_connections;
mod metrics;
mod protocol;
mod rate_limit;
mod service;
mod streams;

pub use config::{MemberAddr, NetConfig, TopicConfig};
pub use error::NetError;
pub use handle::{GossipMessage, InboundRequest, NetEvent, NetworkHandle, RequestKind, Validation};
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId, multiaddr};
pub use light_connections::AddressBucket;
pub use metrics::NetMetrics;
pub use protocol::{
    CONSENSUS_PROTOCOL, DEFAULT_MAX_FRAME, FrameError, IDENTIFY_VERSION, KAD_PROTOCOL,
    LIGHT_PROTOCOL, MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE, Refusal, Request, Response, SYNC_PROTOCOL,
    read_frame, write_frame,
};
pub use service::start;
