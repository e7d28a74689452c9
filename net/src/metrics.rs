//! Network metrics (prometheus-client): what was rejected and why, and traffic.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters shared by the swarm task and the stream tasks. Cheap to clone (shared atomics).
#[derive(Debug, Clone, Default)]
pub struct NetMetrics {
    /// Gossip messages or subscriptions from non-members, rejected.
    pub gossip_rejected_non_member: Counter,
    /// Gossip messages over their topic's size limit, rejected.
    pub gossip_rejected_oversized: Counter,
    /// Gossip messages the node judged invalid.
    pub gossip_rejected_by_node: Counter,
    /// Gossip messages delivered to the node.
    pub gossip_received: Counter,
    /// Gossip messages ignored because the node's event queue was full (the node is
    /// behind; the swarm does not wait for it).
    pub gossip_dropped_node_busy: Counter,
    /// Gossip messages ignored because their author already held its share of the node's
    /// event queue (one member's flood cannot take the others' room).
    pub gossip_dropped_author_share: Counter,
    /// Requests refused because the node's event queue was full.
    pub requests_dropped_node_busy: Counter,
    /// The node's verdicts on gossip dropped because the command queue was full.
    pub validations_dropped: Counter,
    /// Consensus streams opened by non-members, dropped.
    pub streams_rejected: Counter,
    /// Frames over the maximum size (their stream is closed).
    pub frames_oversized: Counter,
    /// Empty or truncated frames.
    pub frames_malformed: Counter,
    /// Frames delivered to the node.
    pub frames_received: Counter,
    /// Frames written to members.
    pub frames_sent: Counter,
    /// Frames dropped because the member could not be reached.
    pub frames_dropped: Counter,
    /// Requests refused for rate.
    pub requests_rate_limited: Counter,
    /// Members-only requests from non-members, refused.
    pub requests_not_member: Counter,
    /// Requests handed to the node.
    pub requests_received: Counter,
    /// Connections from non-members closed over the light-client connection limit.
    pub connections_refused: Counter,
    /// Connections from non-members closed because their address (IPv4, IPv6 /64) held
    /// the most allowed.
    pub light_connections_refused_address: Counter,
    /// Non-member connections closed to make room for one from a smaller holder.
    pub light_connections_evicted: Counter,
    /// Non-member connections closed after the idle timeout without a light request.
    pub light_connections_idle_closed: Counter,
    /// Non-member connections open now.
    pub light_connections: Gauge,
    /// Members currently connected.
    pub members_connected: Gauge,
}

impl NetMetrics {
    /// Registers every metric under `registry` (prefix it with a sub-registry if wanted).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "gossip_rejected_non_member",
            "Gossip from non-members",
            self.gossip_rejected_non_member.clone(),
        );
        r.register(
            "gossip_rejected_oversized",
            "Gossip over the topic size limit",
            self.gossip_rejected_oversized.clone(),
        );
        r.register(
            "gossip_rejected_by_node",
            "Gossip the node judged invalid",
            self.gossip_rejected_by_node.clone(),
        );
        r.register(
            "gossip_received",
            "Gossip delivered to the node",
            self.gossip_received.clone(),
        );
        r.register(
            "gossip_dropped_node_busy",
            "Gossip ignored because the node's event queue was full",
            self.gossip_dropped_node_busy.clone(),
        );
        r.register(
            "gossip_dropped_author_share",
            "Gossip ignored because its author held its share of the node's event queue",
            self.gossip_dropped_author_share.clone(),
        );
        r.register(
            "requests_dropped_node_busy",
            "Requests refused because the node's event queue was full",
            self.requests_dropped_node_busy.clone(),
        );
        r.register(
            "validations_dropped",
            "Gossip verdicts dropped because the command queue was full",
            self.validations_dropped.clone(),
        );
        r.register(
            "streams_rejected",
            "Consensus streams from non-members",
            self.streams_rejected.clone(),
        );
        r.register(
            "frames_oversized",
            "Frames over the size limit",
            self.frames_oversized.clone(),
        );
        r.register(
            "frames_malformed",
            "Empty or truncated frames",
            self.frames_malformed.clone(),
        );
        r.register(
            "frames_received",
            "Frames delivered to the node",
            self.frames_received.clone(),
        );
        r.register(
            "frames_sent",
            "Frames written to members",
            self.frames_sent.clone(),
        );
        r.register(
            "frames_dropped",
            "Frames to unreachable members",
            self.frames_dropped.clone(),
        );
        r.register(
            "requests_rate_limited",
            "Requests refused for rate",
            self.requests_rate_limited.clone(),
        );
        r.register(
            "requests_not_member",
            "Members-only requests from non-members",
            self.requests_not_member.clone(),
        );
        r.register(
            "requests_received",
            "Requests handed to the node",
            self.requests_received.clone(),
        );
        r.register(
            "connections_refused",
            "Non-member connections over the limit",
            self.connections_refused.clone(),
        );
        r.register(
            "light_connections_refused_address",
            "Non-member connections over the per-address limit",
            self.light_connections_refused_address.clone(),
        );
        r.register(
            "light_connections_evicted",
            "Non-member connections evicted for a smaller holder",
            self.light_connections_evicted.clone(),
        );
        r.register(
            "light_connections_idle_closed",
            "Non-member connections closed when idle",
            self.light_connections_idle_closed.clone(),
        );
        r.register(
            "light_connections",
            "Non-member connections open now",
            self.light_connections.clone(),
        );
        r.register(
            "members_connected",
            "Members currently connected",
            self.members_connected.clone(),
        );
    }
}
