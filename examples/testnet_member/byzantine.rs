//! The fault suite's Byzantine member (`testnet/faults.sh`, `--byzantine B,..`): a member
//! with valid keys that lies or overloads the others through the node's seams, with no
//! test code in the product. It wraps:
//! - the consensus actor's outgoing frames ([`OutgoingFrames`]):
//!   [`Behaviour::Equivocate`] sends every vote and proposal of ours to half of the peers
//!   as is and to the other half as a second, conflicting one (same height, round and
//!   kind; another value, or nil), both validly signed;
//! - the node's outgoing protocol messages ([`OutgoingMessages`]):
//!   [`Behaviour::ConflictingCommitments`] sends two different commitments for every round,
//!   [`Behaviour::WrongReveal`] reveals another (well-formed) outcome than the one committed
//!   to, with a valid attestation over it, [`Behaviour::WithholdReveal`] commits and never
//!   reveals;
//! - and runs the floods beside the node on its network handle ([`super::flood`]).
//!
//! What the honest members must do about each is the fault suite's business; this module
//! only misbehaves.

use std::sync::Arc;

use arc_malachitebft_core_types::{NilOrVal, SignedMessage};
use arc_malachitebft_signing_ed25519::PrivateKey;
use synchronicity::committee::Committee;
use synchronicity::consensus::wire::Wire;
use synchronicity::consensus::{Ctx, OutgoingFrames, Value, ValueId};
use synchronicity::crypto::{BlsSecretKey, NodeIdentity};
use synchronicity::node::{NodeConfig, NodeHandle, OutgoingMessages};
use synchronicity::node_dir::NodeKeys;
use synchronicity::protocol::{Body, RevealedOutcome, attestation_statement, outcome_digest};
use synchronicity_net::PeerId;

use super::flood;

/// One misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
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
    pub(crate) const ALL: [(&'static str, Behaviour); 8] = [
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
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }
}

/// What a Byzantine member signs with: its own keys, loaded from its node directory.
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) committee: Committee,
    pub(crate) me: u32,
    pub(crate) identity: NodeIdentity,
    pub(crate) bls: BlsSecretKey,
    /// Every other member.
    pub(crate) peers: Vec<PeerId>,
}

/// The behaviours of one member, and its keys.
pub(crate) struct Byzantine {
    behaviours: Vec<Behaviour>,
    keys: Keys,
}

impl Byzantine {
    /// A member misbehaving as `behaviours` (none: honest) with `keys` in `committee`.
    pub(crate) fn new(
        behaviours: Vec<Behaviour>,
        keys: NodeKeys,
        committee: Committee,
    ) -> anyhow::Result<Self> {
        let peer = keys.identity.peer_id();
        // An honest node need not be a member of the genesis (a joining node, `--join`).
        let me = match committee.index_of_peer(&peer) {
            Some(me) => me,
            None if behaviours.is_empty() => usize::MAX,
            None => anyhow::bail!("this node ({peer}) is not a member: it cannot misbehave as one"),
        };
        let peers = committee
            .members()
            .iter()
            .map(|m| m.peer_id)
            .filter(|p| *p != peer)
            .collect();
        Ok(Self {
            behaviours,
            keys: Keys {
                committee,
                me: u32::try_from(me).unwrap_or(u32::MAX),
                identity: keys.identity,
                bls: keys.bls,
                peers,
            },
        })
    }

    fn is(&self, b: Behaviour) -> bool {
        self.behaviours.contains(&b)
    }

    /// Sets the node's seams for the enabled lies (the others stay honest).
    pub(crate) fn configure(&self, config: &mut NodeConfig) {
        if self.behaviours.is_empty() {
            return;
        }
        tracing::warn!(behaviours = ?self.behaviours, "BYZANTINE member");
        if self.is(Behaviour::Equivocate) {
            config.outgoing_frames = Arc::new(Equivocate {
                ctx: Ctx::new(self.keys.committee.signing_domain()),
                key: PrivateKey::from(self.keys.identity.secret_bytes()),
            });
        }
        let lies = Lies {
            conflicting_commitments: self.is(Behaviour::ConflictingCommitments),
            wrong_reveal: self.is(Behaviour::WrongReveal),
            withhold_reveal: self.is(Behaviour::WithholdReveal),
            origin: self.keys.committee.origin().to_string(),
            bls: self.keys.bls.clone(),
        };
        if lies.conflicting_commitments || lies.wrong_reveal || lies.withhold_reveal {
            config.outgoing_messages = Arc::new(lies);
        }
    }

    /// Starts the enabled floods beside `node` (none: nothing).
    pub(crate) fn start_floods(&self, node: &NodeHandle) {
        let floods = flood::Floods {
            gossip: self.is(Behaviour::FloodGossip),
            cosign: self.is(Behaviour::FloodCosign),
            streams: self.is(Behaviour::FloodStreams),
            requests: self.is(Behaviour::FloodRequests),
        };
        if floods.any() {
            tokio::spawn(flood::run(node.net().clone(), self.keys.clone(), floods));
        }
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    let _ = getrandom::fill(&mut b);
    b
}

/// [`Behaviour::Equivocate`]: a conflicting twin of each frame to every other peer.
struct Equivocate {
    ctx: Ctx,
    key: PrivateKey,
}

impl std::fmt::Debug for Equivocate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Equivocate")
    }
}

impl Equivocate {
    /// The conflicting twin of one of our votes or proposals (same height, round and kind;
    /// another value or nil), validly signed; none for a certificate.
    fn twin(&self, w: &Wire) -> Option<Wire> {
        match w {
            Wire::Vote(v) => {
                let mut twin = v.message.clone();
                twin.value = match twin.value {
                    NilOrVal::Nil => NilOrVal::Val(ValueId([0xBB; 32])),
                    NilOrVal::Val(_) => NilOrVal::Nil,
                };
                let sig = self.key.sign(&self.ctx.vote_sign_bytes(&twin));
                Some(Wire::Vote(SignedMessage::new(twin, sig)))
            }
            Wire::Proposal(p) => {
                let mut twin = p.message.clone();
                let mut bytes = twin.value.bytes().to_vec();
                bytes.extend_from_slice(b"byzantine");
                twin.value = Value::new(bytes);
                let sig = self.key.sign(&self.ctx.proposal_sign_bytes(&twin));
                Some(Wire::Proposal(SignedMessage::new(twin, sig)))
            }
            _ => None,
        }
    }
}

impl OutgoingFrames for Equivocate {
    fn broadcast(&self, wire: &Wire, peers: &[PeerId], send: &mut dyn FnMut(PeerId, Vec<u8>)) {
        let bytes = wire.encode();
        let twin = self.twin(wire).map(|t| t.encode());
        for (i, p) in peers.iter().enumerate() {
            let frame = match &twin {
                Some(t) if i % 2 == 1 => t.clone(),
                _ => bytes.clone(),
            };
            send(*p, frame);
        }
    }
}

/// The lies about our own rounds: [`Behaviour::ConflictingCommitments`],
/// [`Behaviour::WrongReveal`], [`Behaviour::WithholdReveal`] (which wins over a wrong one).
#[derive(Debug)]
struct Lies {
    conflicting_commitments: bool,
    wrong_reveal: bool,
    withhold_reveal: bool,
    /// The committee's origin (the attestation statement names it).
    origin: String,
    bls: BlsSecretKey,
}

impl Lies {
    /// `committed` changed into another, well-formed outcome (a malformed one would be
    /// dropped unjudged): a failure class other than the committed one.
    fn other_outcome(committed: &RevealedOutcome) -> RevealedOutcome {
        use synchronicity::verify::FailureClass;
        let other = FailureClass::ALL
            .into_iter()
            .find(|c| !matches!(committed, RevealedOutcome::Failure(f) if f == c))
            .unwrap_or(FailureClass::Timeout);
        RevealedOutcome::Failure(other)
    }
}

impl OutgoingMessages for Lies {
    fn publish(&self, body: Body, publish: &mut dyn FnMut(Body)) {
        match body {
            Body::Commit {
                request_id,
                commitment,
            } if self.conflicting_commitments => {
                let twin = Body::Commit {
                    request_id: request_id.clone(),
                    commitment: random_bytes(32),
                };
                publish(Body::Commit {
                    request_id,
                    commitment,
                });
                publish(twin);
            }
            Body::Reveal { .. } if self.withhold_reveal => {}
            Body::Reveal {
                request_id,
                outcome,
                salt,
                attestation,
            } if self.wrong_reveal => {
                let outcome_now = Self::other_outcome(&outcome);
                let signed = <[u8; 32]>::try_from(request_id.as_slice())
                    .ok()
                    .zip(outcome_digest(&outcome_now))
                    .map(|(id, digest)| {
                        let statement = attestation_statement(&self.origin, &id, &digest);
                        self.bls.sign(statement.as_bytes()).to_bytes().to_vec()
                    });
                // Our own reveal is always well-formed; were it not, it goes out unchanged.
                let (outcome, attestation) = match signed {
                    Some(a) => (outcome_now, a),
                    None => (outcome, attestation),
                };
                publish(Body::Reveal {
                    request_id,
                    outcome,
                    salt,
                    attestation,
                });
            }
            other => publish(other),
        }
    }
}
