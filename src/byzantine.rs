//! A Byzantine member, for the fault suite only (`testnet/faults.sh`): compiled with the
//! `byzantine` feature, which only the crate's own dev-dependency on itself enables, and
//! switched on only by a test binary calling [`enable`] (`examples/testnet_member.rs`). The
//! product build has none of this; a test build's `synchronicity` binary never calls
//! [`enable`], so it behaves honestly.
//!
//! Each [`Behaviour`] is one way a member with valid keys can lie or overload the others:
//! - [`Behaviour::Equivocate`]: every vote and proposal we broadcast goes to half of the
//!   peers as is and to the other half as a second, conflicting one (same height, round and
//!   kind; another value, or nil), both validly signed;
//! - [`Behaviour::ConflictingCommitments`]: two different commitments for every round;
//! - [`Behaviour::WrongReveal`]: the reveal carries another (well-formed) outcome than the
//!   one committed to, with a valid attestation over it;
//! - [`Behaviour::WithholdReveal`]: commits, never reveals;
//! - the floods ([`flood`]): junk and validly signed useless messages on the messages topic,
//!   cosignature partials for sizes and roots that do not exist, consensus streams opened
//!   and filled with garbage plus sync requests, and build requests by the thousand.
//!
//! What the honest members must do about each is the fault suite's business; this module
//! only misbehaves.

use std::sync::OnceLock;
use std::time::Duration;

use synchronicity_net::{NetworkHandle, PeerId, RequestKind};

use crate::committee::Committee;
use crate::crypto::{BlsSecretKey, NodeIdentity};
use crate::protocol::{Body, SignedMessage};

/// One misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Conflicting proposals and votes to different peers.
    Equivocate,
    /// Two different commitments per round.
    ConflictingCommitments,
    /// A reveal that does not match the commitment.
    WrongReveal,
    /// Commit, never reveal.
    WithholdReveal,
    /// Junk and useless signed messages on the messages topic.
    FloodGossip,
    /// Cosignature partials for sizes and roots that do not exist, and junk.
    FloodCosign,
    /// Consensus streams filled with garbage; sync requests.
    FloodStreams,
    /// Thousands of build requests.
    FloodRequests,
}

impl Behaviour {
    /// Every behaviour, with its name on the command line.
    pub const ALL: [(&'static str, Behaviour); 8] = [
        ("equivocate", Behaviour::Equivocate),
        ("conflicting-commitments", Behaviour::ConflictingCommitments),
        ("wrong-reveal", Behaviour::WrongReveal),
        ("withhold-reveal", Behaviour::WithholdReveal),
        ("flood-gossip", Behaviour::FloodGossip),
        ("flood-cosign", Behaviour::FloodCosign),
        ("flood-streams", Behaviour::FloodStreams),
        ("flood-requests", Behaviour::FloodRequests),
    ];

    /// Parses a name of [`Behaviour::ALL`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }
}

static ENABLED: OnceLock<Vec<Behaviour>> = OnceLock::new();

/// Makes this process misbehave (once, before the node starts).
pub fn enable(behaviours: Vec<Behaviour>) {
    let _ = ENABLED.set(behaviours);
}

/// True if `b` was enabled.
pub(crate) fn is(b: Behaviour) -> bool {
    ENABLED.get().is_some_and(|v| v.contains(&b))
}

fn any_flood() -> bool {
    [
        Behaviour::FloodGossip,
        Behaviour::FloodCosign,
        Behaviour::FloodStreams,
        Behaviour::FloodRequests,
    ]
    .into_iter()
    .any(is)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    let _ = getrandom::fill(&mut b);
    b
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes(8).try_into().unwrap_or([0; 8]))
}

/// What the flood tasks sign with.
pub(crate) struct FloodKeys {
    pub(crate) committee: Committee,
    pub(crate) me: u32,
    pub(crate) identity: NodeIdentity,
    pub(crate) bls: BlsSecretKey,
    pub(crate) peers: Vec<PeerId>,
}

impl FloodKeys {
    /// Signs `body` as this member and gossips it on the messages topic.
    async fn publish_signed(&self, net: &NetworkHandle, body: Body) {
        let msg = SignedMessage::sign(
            body,
            self.me,
            &self.identity,
            self.committee.signing_domain(),
        );
        let _ = net
            .publish(crate::node::wire::MESSAGES_TOPIC, msg.to_cbor())
            .await;
    }
}

/// Runs the enabled floods until the node stops (nothing when none is enabled).
pub(crate) async fn flood(net: NetworkHandle, keys: FloodKeys) {
    if !any_flood() {
        return;
    }
    tracing::warn!("BYZANTINE member: flooding the group");
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        if is(Behaviour::FloodGossip) {
            // Undecodable bytes, then a validly signed commitment for a request nobody
            // asked for (it passes the envelope check and must be bounded by the pool).
            let _ = net
                .publish(
                    crate::node::wire::MESSAGES_TOPIC,
                    random_bytes(1 + (n as usize % 4096)),
                )
                .await;
            keys.publish_signed(
                &net,
                Body::Commit {
                    request_id: random_bytes(32),
                    commitment: random_bytes(32),
                },
            )
            .await;
        }
        if is(Behaviour::FloodCosign) {
            // A validly signed partial for a size far ahead with a random root, and junk.
            let size = 1_000_000 + random_u64() % 1_000_000;
            let mut root = [0u8; 32];
            root.copy_from_slice(&random_bytes(32));
            let c = crate::node::cosign::sign_with_identity(
                &keys.committee,
                &keys.bls,
                &keys.identity,
                size,
                root,
            );
            let _ = net
                .publish(
                    crate::node::wire::COSIGN_TOPIC,
                    crate::node::wire::encode(&c),
                )
                .await;
            let _ = net
                .publish(crate::node::wire::COSIGN_TOPIC, random_bytes(300))
                .await;
        }
        if is(Behaviour::FloodStreams) {
            for p in &keys.peers {
                // Garbage frames on the direct stream (a full queue drops them), and every
                // 50th tick a fresh raw stream written with a frame header that lies.
                let _ = net.send_frame(*p, random_bytes(2048));
                if n.is_multiple_of(50) {
                    let net = net.clone();
                    let p = *p;
                    tokio::spawn(async move {
                        use futures::AsyncWriteExt;
                        if let Ok(mut s) = net.raw_consensus_stream(p).await {
                            let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
                            let _ = s.write_all(&random_bytes(64 * 1024)).await;
                            let _ = s.close().await;
                        }
                    });
                }
                if n.is_multiple_of(5) {
                    let net = net.clone();
                    let p = *p;
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(5),
                            net.request(p, RequestKind::Sync, random_bytes(512)),
                        )
                        .await;
                    });
                }
            }
        }
        if is(Behaviour::FloodRequests) && n <= 4000 {
            // Valid requests (the test builder's pins), each a new one: the group orders
            // and builds them; the pool and blocks must stay bounded while it does. Pinned
            // to the committee's toolchain and target (others are invalid, not flood).
            let mut req = crate::testing::request(&format!("flood-{n}"), "1.0.0", "lock");
            req.request
                .toolchain
                .clone_from(&keys.committee.build().toolchain);
            req.request
                .target
                .clone_from(&keys.committee.build().target);
            keys.publish_signed(&net, Body::Request(req)).await;
        }
    }
}

/// With [`Behaviour::Equivocate`]: the conflicting twin of a vote or proposal we are about
/// to broadcast (sent to every other peer instead of the original).
pub(crate) fn conflicting(
    core: &crate::consensus::Core,
    w: &crate::consensus::wire::Wire,
) -> Option<crate::consensus::wire::Wire> {
    if !is(Behaviour::Equivocate) {
        return None;
    }
    core.conflicting(w)
}

/// With [`Behaviour::ConflictingCommitments`]: a second commitment for the same round.
pub(crate) fn second_commitment(request_id: &[u8; 32]) -> Option<Body> {
    is(Behaviour::ConflictingCommitments).then(|| Body::Commit {
        request_id: request_id.to_vec(),
        commitment: random_bytes(32),
    })
}

/// With [`Behaviour::WrongReveal`]: another outcome than the committed one.
pub(crate) fn wrong_outcome(
    committed: crate::protocol::RevealedOutcome,
) -> crate::protocol::RevealedOutcome {
    use crate::protocol::RevealedOutcome;
    if !is(Behaviour::WrongReveal) {
        return committed;
    }
    // A well-formed outcome (a malformed one is dropped unjudged): a failure class other
    // than the committed one.
    let other = crate::verify::entry::FAILURE_CLASSES
        .iter()
        .find(|c| !matches!(&committed, RevealedOutcome::Failure(f) if f == *c))
        .copied()
        .unwrap_or("timeout");
    RevealedOutcome::Failure(other.to_string())
}

/// With [`Behaviour::WithholdReveal`]: true (do not reveal).
pub(crate) fn withhold_reveal() -> bool {
    is(Behaviour::WithholdReveal)
}
