//! The committee as a node sees it: the trust root of `synchronicity-verify` (origin,
//! threshold, BLS keys with verified proofs of possession, digest and key ID) plus each
//! member's libp2p identity and parsed listen addresses.
//!
//! [`Committee`] dereferences to [`synchronicity_verify::Committee`], so everything that
//! verifies (checkpoints, proofs, attestations) takes it directly; [`Committee::members`]
//! gives the node's view of each member.

#[cfg(test)]
mod tests;

use std::ops::Deref;

use libp2p_identity::{PeerId, PublicKey, ed25519};
use multiaddr::Multiaddr;

pub use synchronicity_verify::committee::{
    BuildEnvironment, CommitteeError, CommitteeFile, KEY_ID_DOMAIN, MemberEntry, ProtocolRules,
    check_origin, committee_digest, default_threshold, key_id, rule_book,
};

use crate::crypto::BlsPublicKey;

/// A validated member, with its network identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Unique name.
    pub name: String,
    /// libp2p peer id.
    pub peer_id: PeerId,
    /// The Ed25519 key embedded in the peer id (the consensus validator key).
    pub ed25519: ed25519::PublicKey,
    /// BLS public key (PoP verified).
    pub bls_public_key: BlsPublicKey,
    /// Listen addresses.
    pub addrs: Vec<Multiaddr>,
}

/// A validated committee (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committee {
    root: synchronicity_verify::Committee,
    members: Vec<Member>,
}

impl Deref for Committee {
    type Target = synchronicity_verify::Committee;

    fn deref(&self) -> &Self::Target {
        &self.root
    }
}

impl Committee {
    /// Parses and validates a committee file's text (every check of the trust root, then
    /// the members' Ed25519 keys and multiaddresses).
    pub fn from_toml(text: &str) -> Result<Self, CommitteeError> {
        Self::from_trust_root(synchronicity_verify::Committee::from_toml(text)?)
    }

    /// Validates a parsed committee file.
    pub fn from_file(file: CommitteeFile) -> Result<Self, CommitteeError> {
        Self::from_trust_root(synchronicity_verify::Committee::from_file(file)?)
    }

    /// Adds the network view to a validated trust root.
    pub fn from_trust_root(root: synchronicity_verify::Committee) -> Result<Self, CommitteeError> {
        let members = root
            .members()
            .iter()
            .map(|m| {
                let bad_peer = || CommitteeError::BadPeerId {
                    member: m.name.clone(),
                    peer_id: m.peer_id.clone(),
                };
                let ed25519 = ed25519::PublicKey::try_from_bytes(&m.ed25519_public_key)
                    .map_err(|_| bad_peer())?;
                let peer_id = PeerId::from_public_key(&PublicKey::from(ed25519.clone()));
                if peer_id.to_base58() != m.peer_id {
                    return Err(bad_peer());
                }
                let addrs = m
                    .addrs
                    .iter()
                    .map(|a| {
                        a.parse().map_err(|_| CommitteeError::BadAddr {
                            member: m.name.clone(),
                            addr: a.clone(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Member {
                    name: m.name.clone(),
                    peer_id,
                    ed25519,
                    bls_public_key: m.bls_public_key.clone(),
                    addrs,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { root, members })
    }

    /// The trust root (what a relying party checks proofs against).
    pub fn trust_root(&self) -> &synchronicity_verify::Committee {
        &self.root
    }

    /// Members in committee order, with their network identities.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The position of a peer in the committee.
    pub fn index_of_peer(&self, peer: &PeerId) -> Option<usize> {
        self.members.iter().position(|m| &m.peer_id == peer)
    }
}
