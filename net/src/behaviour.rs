//! The composed libp2p behaviour. Every sub-protocol carries a versioned name of our own.

use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{PeerId, connection_limits, gossipsub, identify, kad};

use crate::config::NetConfig;
use crate::protocol::{
    IDENTIFY_VERSION, KAD_PROTOCOL, LIGHT_PROTOCOL, MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE, Request,
    Response, SYNC_PROTOCOL,
};

pub(crate) type RequestResponse = request_response::cbor::Behaviour<Request, Response>;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) light: RequestResponse,
    pub(crate) sync: RequestResponse,
    pub(crate) stream: libp2p_stream::Behaviour,
}

/// Twice the largest topic limit plus 64 KiB.
pub(crate) fn protocol_limit(cfg: &NetConfig) -> usize {
    2 * cfg.topics.iter().map(|t| t.max_size).max().unwrap_or(0) + 64 * 1024
}

/// Gossipsub for 4..100 members: mesh of 6 (3..12), every message held until the node
/// validates it.
///
/// Messages carry their author's peer id and a random sequence number but NO gossipsub
/// signature: every payload proves its own author (the node's messages carry an Ed25519
/// envelope, its cosignatures are BLS-verified under the claimed member's key), and
/// verifying a second signature per message cost ~15 % of the ordering benchmark. So
/// `source` is a claim: only members can inject (the direct sender, authenticated by the
/// transport, must be a member, and so must the claimed author), and a member claiming
/// another's authorship is caught by the payload check, whose rejection penalises the peer
/// that sent it. Random sequence numbers keep message ids unpredictable (no id squatting).
fn gossipsub(key: &Keypair, cfg: &NetConfig) -> Result<gossipsub::Behaviour, String> {
    let mut b = gossipsub::ConfigBuilder::default();
    // Permissive: unsigned messages pass; a signature, if a peer adds one, is checked.
    b.validation_mode(gossipsub::ValidationMode::Permissive)
        .validate_messages()
        .heartbeat_interval(cfg.heartbeat)
        .mesh_n(6)
        .mesh_n_low(3)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        // The protocol-level limit is generous on purpose: messages between a topic's limit
        // and this one reach our validation, which rejects and COUNTS them; only grossly
        // oversized RPCs are dropped by the codec itself.
        .max_transmit_size(protocol_limit(cfg));
    let config = b.build().map_err(|e| e.to_string())?;
    gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Author(key.public().to_peer_id()),
        config,
    )
    .map_err(str::to_string)
}

fn request_response(protocol: libp2p::StreamProtocol, cfg: &NetConfig) -> RequestResponse {
    let codec = request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_REQUEST_SIZE)
        .set_response_size_maximum(MAX_RESPONSE_SIZE);
    request_response::Behaviour::with_codec(
        codec,
        [(protocol, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(cfg.request_timeout),
    )
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, cfg: &NetConfig) -> Result<Self, String> {
        let peer: PeerId = key.public().to_peer_id();
        let mut kad = kad::Behaviour::with_config(
            peer,
            kad::store::MemoryStore::new(peer),
            kad::Config::new(KAD_PROTOCOL),
        );
        // Members serve the DHT even without a confirmed external address (loopback testnets).
        kad.set_mode(Some(kad::Mode::Server));
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(4))
            .with_max_pending_incoming(Some(64));
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                    .with_push_listen_addr_updates(true),
            ),
            kad,
            gossipsub: gossipsub(key, cfg)?,
            light: request_response(LIGHT_PROTOCOL, cfg),
            sync: request_response(SYNC_PROTOCOL, cfg),
            stream: libp2p_stream::Behaviour::new(),
        })
    }
}
