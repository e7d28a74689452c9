//! The committee: the group's genesis and every light client's trust root.
//!
//! [`Committee::from_toml`] parses the committee file and accepts it only if every member's
//! peer id embeds an Ed25519 key, every BLS key decodes and its proof of possession verifies,
//! no name, peer id or BLS key repeats, every address parses, the origin is a valid note key
//! name, and the threshold is in `1..=n`. A threshold below the BFT quorum ⌊2n/3⌋+1 is
//! accepted with a warning. Pure: the caller does the file I/O.

mod file;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use libp2p_identity::{PeerId, ed25519};
use multiaddr::Multiaddr;

pub use file::{BuildEnvironment, CommitteeFile, MemberEntry};

use crate::crypto::{
    BlsError, BlsPublicKey, BlsSignature, MemberKeys, ThresholdError, ThresholdSignature,
    ed25519_key_of, sha256,
};

/// Domain string of the signed-note key ID of the committee's threshold signature.
pub const KEY_ID_DOMAIN: &str = "synchronicity/bls12381-threshold/v1";

/// Why a committee file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitteeError {
    /// The file is not valid TOML of the committee shape.
    #[error("committee file: {0}")]
    Syntax(String),
    /// The origin is empty or not usable as a note key name / checkpoint line.
    #[error("origin {origin:?} is invalid: {reason}")]
    BadOrigin {
        /// The origin as given.
        origin: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A required text field is empty or contains whitespace.
    #[error("{field} is empty or contains whitespace")]
    BadField {
        /// Which field.
        field: String,
    },
    /// No members.
    #[error("the committee has no members")]
    NoMembers,
    /// The threshold is not in `1..=n`.
    #[error("threshold {threshold} is out of range 1..={members}")]
    ThresholdOutOfRange {
        /// Given.
        threshold: usize,
        /// Committee size.
        members: usize,
    },
    /// Two members share a name, peer id or BLS key.
    #[error("members {first:?} and {second:?} have the same {what}")]
    Duplicate {
        /// "name", "peer id" or "BLS public key".
        what: &'static str,
        /// The earlier member.
        first: String,
        /// The later member.
        second: String,
    },
    /// A member's peer id is malformed or not an Ed25519 peer id.
    #[error("member {member:?}: invalid peer id {peer_id:?}")]
    BadPeerId {
        /// Member name.
        member: String,
        /// As given.
        peer_id: String,
    },
    /// A member's BLS key or proof does not decode.
    #[error("member {member:?}: {what}: {source}")]
    BadBls {
        /// Member name.
        member: String,
        /// "BLS public key" or "proof of possession".
        what: &'static str,
        /// Why.
        source: BlsError,
    },
    /// A member's proof of possession does not verify.
    #[error("member {member:?}: BLS proof of possession does not verify")]
    BadProofOfPossession {
        /// Member name.
        member: String,
    },
    /// A member's address does not parse as a multiaddress.
    #[error("member {member:?}: invalid address {addr:?}")]
    BadAddr {
        /// Member name.
        member: String,
        /// As given.
        addr: String,
    },
}

/// A validated member.
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
    /// Its proof of possession.
    pub bls_proof_of_possession: BlsSignature,
    /// Listen addresses.
    pub addrs: Vec<Multiaddr>,
}

impl Member {
    /// Validates one public member entry on its own (keys decode, PoP verifies).
    pub fn from_entry(entry: &MemberEntry) -> Result<Self, CommitteeError> {
        let member = || entry.name.clone();
        if entry.name.is_empty() || entry.name.chars().any(char::is_whitespace) {
            return Err(CommitteeError::BadField {
                field: format!("member name {:?}", entry.name),
            });
        }
        let bad_peer = || CommitteeError::BadPeerId {
            member: member(),
            peer_id: entry.peer_id.clone(),
        };
        let peer_id: PeerId = entry.peer_id.parse().map_err(|_| bad_peer())?;
        let ed25519 = ed25519_key_of(&peer_id).map_err(|_| bad_peer())?;
        let bls_public_key = hex::decode(&entry.bls_public_key)
            .map_err(|_| BlsError::BadEncoding { what: "public key" })
            .and_then(|b| BlsPublicKey::from_bytes(&b))
            .map_err(|source| CommitteeError::BadBls {
                member: member(),
                what: "BLS public key",
                source,
            })?;
        let bls_proof_of_possession = hex::decode(&entry.bls_proof_of_possession)
            .map_err(|_| BlsError::BadEncoding { what: "signature" })
            .and_then(|b| BlsSignature::from_bytes(&b))
            .map_err(|source| CommitteeError::BadBls {
                member: member(),
                what: "proof of possession",
                source,
            })?;
        bls_public_key
            .verify_proof_of_possession(&bls_proof_of_possession)
            .map_err(|_| CommitteeError::BadProofOfPossession { member: member() })?;
        let addrs = entry
            .addrs
            .iter()
            .map(|a| {
                a.parse().map_err(|_| CommitteeError::BadAddr {
                    member: member(),
                    addr: a.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: entry.name.clone(),
            peer_id,
            ed25519,
            bls_public_key,
            bls_proof_of_possession,
            addrs,
        })
    }

    /// The public entry as written in TOML.
    pub fn to_entry(&self) -> MemberEntry {
        MemberEntry {
            name: self.name.clone(),
            peer_id: self.peer_id.to_base58(),
            bls_public_key: hex::encode(self.bls_public_key.to_bytes()),
            bls_proof_of_possession: hex::encode(self.bls_proof_of_possession.to_bytes()),
            addrs: self.addrs.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// A validated committee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committee {
    origin: String,
    chain_id: String,
    threshold: usize,
    build: BuildEnvironment,
    members: Vec<Member>,
    keys: MemberKeys,
    digest: [u8; 32],
    key_id: [u8; 4],
}

/// The default threshold for `n` members: the BFT quorum ⌊2n/3⌋+1.
pub fn default_threshold(n: usize) -> usize {
    2 * n / 3 + 1
}

impl Committee {
    /// Parses and validates a committee file's text.
    pub fn from_toml(text: &str) -> Result<Self, CommitteeError> {
        let file: CommitteeFile = toml::from_str(text)
            .map_err(|e| CommitteeError::Syntax(e.message().replace('\n', " ")))?;
        Self::from_file(file)
    }

    /// Validates a parsed committee file.
    pub fn from_file(file: CommitteeFile) -> Result<Self, CommitteeError> {
        check_origin(&file.origin)?;
        for (field, value) in [
            ("chain_id", &file.chain_id),
            ("build.toolchain", &file.build.toolchain),
            ("build.target", &file.build.target),
        ] {
            if value.is_empty() || value.chars().any(char::is_whitespace) {
                return Err(CommitteeError::BadField {
                    field: field.into(),
                });
            }
        }
        if file.members.is_empty() {
            return Err(CommitteeError::NoMembers);
        }
        let n = file.members.len();
        if file.threshold == 0 || file.threshold > n {
            return Err(CommitteeError::ThresholdOutOfRange {
                threshold: file.threshold,
                members: n,
            });
        }
        // Cheap duplicate checks on the text first, so a duplicate is named as such.
        for what in ["name", "peer id", "BLS public key"] {
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for m in &file.members {
                let value = match what {
                    "name" => m.name.as_str(),
                    "peer id" => m.peer_id.as_str(),
                    _ => m.bls_public_key.as_str(),
                };
                if let Some(first) = seen.insert(value, &m.name) {
                    return Err(CommitteeError::Duplicate {
                        what,
                        first: first.into(),
                        second: m.name.clone(),
                    });
                }
            }
        }
        let members: Vec<Member> = file
            .members
            .iter()
            .map(Member::from_entry)
            .collect::<Result<_, _>>()?;
        let pairs: Vec<_> = members
            .iter()
            .map(|m| (m.bls_public_key.clone(), m.bls_proof_of_possession.clone()))
            .collect();
        let keys = MemberKeys::from_keys_with_pops(&pairs).map_err(|e| match e {
            ThresholdError::BadProofOfPossession { index } => {
                CommitteeError::BadProofOfPossession {
                    member: members[index].name.clone(),
                }
            }
            ThresholdError::DuplicateKey { first, second } => CommitteeError::Duplicate {
                what: "BLS public key",
                first: members[first].name.clone(),
                second: members[second].name.clone(),
            },
            _ => CommitteeError::NoMembers,
        })?;
        let digest = committee_digest(&keys, file.threshold);
        let key_id = key_id(&file.origin, &digest);
        Ok(Self {
            origin: file.origin,
            chain_id: file.chain_id,
            threshold: file.threshold,
            build: file.build,
            members,
            keys,
            digest,
            key_id,
        })
    }

    /// The file shape, for writing.
    pub fn to_file(&self) -> CommitteeFile {
        CommitteeFile {
            origin: self.origin.clone(),
            chain_id: self.chain_id.clone(),
            threshold: self.threshold,
            build: self.build.clone(),
            members: self.members.iter().map(Member::to_entry).collect(),
        }
    }

    /// The TOML text of the committee file.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(&self.to_file()).expect("committee serializes to TOML");
        format!(
            "# Synchronicity committee file: the group's genesis and the light clients' trust root.\n{body}"
        )
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// Consensus chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
    /// The threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// Pinned toolchain and target.
    pub fn build(&self) -> &BuildEnvironment {
        &self.build
    }
    /// Members in committee order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
    /// Number of members `n`.
    pub fn len(&self) -> usize {
        self.members.len()
    }
    /// Always false: a committee has members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// PoP-verified BLS keys in committee order.
    pub fn keys(&self) -> &MemberKeys {
        &self.keys
    }
    /// `SHA-256(pk_1 || ... || pk_n || threshold as u32 big-endian)`.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// The signed-note key ID of the threshold signature line.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }
    /// The position of a peer in the committee.
    pub fn index_of_peer(&self, peer: &PeerId) -> Option<usize> {
        self.members.iter().position(|m| &m.peer_id == peer)
    }
    /// Byzantine members tolerated by consensus: ⌊(n-1)/3⌋.
    pub fn max_faulty(&self) -> usize {
        (self.len() - 1) / 3
    }
    /// Human-readable warnings about an accepted but risky committee.
    pub fn warnings(&self) -> Vec<String> {
        let quorum = default_threshold(self.len());
        let mut out = Vec::new();
        if self.threshold < quorum {
            out.push(format!(
                "threshold {} is below the BFT quorum {} (⌊2n/3⌋+1 for n = {}): {} colluding members could sign a verdict",
                self.threshold,
                quorum,
                self.len(),
                self.threshold
            ));
        }
        out
    }
    /// Verifies that at least `t` members signed `message`.
    pub fn verify_threshold(
        &self,
        message: &[u8],
        sig: &ThresholdSignature,
    ) -> Result<(), ThresholdError> {
        sig.verify(&self.keys, self.threshold, message)
    }
}

/// `SHA-256(pk_1 || ... || pk_n || threshold as u32 big-endian)` (DESIGN.md).
pub fn committee_digest(keys: &MemberKeys, threshold: usize) -> [u8; 32] {
    let mut data = Vec::with_capacity(48 * keys.len() + 4);
    for k in keys.iter() {
        data.extend_from_slice(&k.to_bytes());
    }
    let t = u32::try_from(threshold).expect("threshold <= n fits in u32");
    data.extend_from_slice(&t.to_be_bytes());
    sha256(&data)
}

/// `SHA-256(origin || 0x0A || 0xff || KEY_ID_DOMAIN || committee digest)[:4]` (DESIGN.md).
pub fn key_id(origin: &str, digest: &[u8; 32]) -> [u8; 4] {
    let mut data = Vec::new();
    data.extend_from_slice(origin.as_bytes());
    data.push(0x0a);
    data.push(0xff);
    data.extend_from_slice(KEY_ID_DOMAIN.as_bytes());
    data.extend_from_slice(digest);
    let h = sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

/// An origin is a signed-note key name and a checkpoint's first line: non-empty, no
/// whitespace or control characters, no `+`.
pub fn check_origin(origin: &str) -> Result<(), CommitteeError> {
    let bad = |reason| {
        Err(CommitteeError::BadOrigin {
            origin: origin.into(),
            reason,
        })
    };
    if origin.is_empty() {
        return bad("empty");
    }
    if origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    if origin.contains('+') {
        return bad("contains '+', which signed notes forbid in key names");
    }
    Ok(())
}
