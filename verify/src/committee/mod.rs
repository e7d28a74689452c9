//! The committee: the group's genesis and every light client's trust root.
//!
//! [`Committee::from_toml`] parses the committee file and accepts it only if every member's
//! peer id embeds an Ed25519 key, every BLS key decodes and its proof of possession verifies
//! (all of them in ONE batched multi-pairing), no name, peer id or BLS key repeats, every
//! address looks like a multiaddress, the origin is a valid note key name, and the threshold
//! is in `1..=n`. A threshold below the BFT quorum ⌊2n/3⌋+1 is accepted with a warning.
//! Pure: the caller does the file I/O (and may remember, by the file's sha256, that a file
//! was fully checked: [`Committee::from_toml_checked_before`]).
//!
//! Addresses are checked for shape only here (a relying party never dials them); the node
//! parses them as multiaddresses.

mod file;
mod peer_id;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use file::{BuildEnvironment, CommitteeFile, MemberEntry, ProtocolRules};
pub use peer_id::{ed25519_key_of_peer_id, peer_id_of_ed25519};

use crate::crypto::{
    BlsError, BlsPublicKey, BlsSignature, MemberKeys, SIGNATURE_LEN, ThresholdError,
    ThresholdSignature, sha256,
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
    /// A `[protocol]` rule is out of range.
    #[error("{0}")]
    BadRule(String),
    /// `epoch` and `previous` disagree: the genesis (epoch 0) names no previous committee,
    /// every later epoch names one (64 hex digits).
    #[error("{0}")]
    BadEpoch(&'static str),
    /// A member's address is not a multiaddress.
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
    /// libp2p peer id (base58).
    pub peer_id: String,
    /// The Ed25519 key embedded in the peer id (the consensus validator key).
    pub ed25519_public_key: [u8; 32],
    /// BLS public key (PoP verified).
    pub bls_public_key: BlsPublicKey,
    /// Its proof of possession (compressed; verified when the committee was checked).
    pub bls_proof_of_possession: [u8; SIGNATURE_LEN],
    /// Listen addresses (multiaddresses, as written).
    pub addrs: Vec<String>,
}

impl Member {
    /// Validates one public member entry on its own (keys decode, PoP verifies).
    pub fn from_entry(entry: &MemberEntry) -> Result<Self, CommitteeError> {
        let (member, pop) = Self::decode(entry, false)?;
        let pop = pop.expect("decoded when not prechecked");
        member
            .bls_public_key
            .verify_proof_of_possession(&pop)
            .map_err(|_| CommitteeError::BadProofOfPossession {
                member: entry.name.clone(),
            })?;
        Ok(member)
    }

    /// Decodes an entry without verifying its PoP. With `prechecked` (the exact file was
    /// fully checked before) the BLS key's subgroup check and the PoP's decoding are skipped.
    fn decode(
        entry: &MemberEntry,
        prechecked: bool,
    ) -> Result<(Self, Option<BlsSignature>), CommitteeError> {
        let member = || entry.name.clone();
        if entry.name.is_empty() || entry.name.chars().any(char::is_whitespace) {
            return Err(CommitteeError::BadField {
                field: format!("member name {:?}", entry.name),
            });
        }
        let ed25519_public_key =
            ed25519_key_of_peer_id(&entry.peer_id).ok_or_else(|| CommitteeError::BadPeerId {
                member: member(),
                peer_id: entry.peer_id.clone(),
            })?;
        let bls_public_key = hex::decode(&entry.bls_public_key)
            .map_err(|_| BlsError::BadEncoding { what: "public key" })
            .and_then(|b| {
                if prechecked {
                    BlsPublicKey::from_prechecked_bytes(&b)
                } else {
                    BlsPublicKey::from_bytes(&b)
                }
            })
            .map_err(|source| CommitteeError::BadBls {
                member: member(),
                what: "BLS public key",
                source,
            })?;
        let bad_pop = |source| CommitteeError::BadBls {
            member: member(),
            what: "proof of possession",
            source,
        };
        let pop_bytes: [u8; SIGNATURE_LEN] = hex::decode(&entry.bls_proof_of_possession)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad_pop(BlsError::BadEncoding { what: "signature" }))?;
        let pop = if prechecked {
            None
        } else {
            Some(BlsSignature::from_bytes(&pop_bytes).map_err(bad_pop)?)
        };
        for a in &entry.addrs {
            if !a.starts_with('/') || a.len() > 256 || a.chars().any(char::is_whitespace) {
                return Err(CommitteeError::BadAddr {
                    member: member(),
                    addr: a.clone(),
                });
            }
        }
        let m = Self {
            name: entry.name.clone(),
            peer_id: entry.peer_id.clone(),
            ed25519_public_key,
            bls_public_key,
            bls_proof_of_possession: pop_bytes,
            addrs: entry.addrs.clone(),
        };
        Ok((m, pop))
    }

    /// The public entry as written in TOML.
    pub fn to_entry(&self) -> MemberEntry {
        MemberEntry {
            name: self.name.clone(),
            peer_id: self.peer_id.clone(),
            bls_public_key: hex::encode(self.bls_public_key.to_bytes()),
            bls_proof_of_possession: hex::encode(self.bls_proof_of_possession),
            addrs: self.addrs.clone(),
        }
    }
}

/// A validated committee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committee {
    origin: String,
    epoch: u64,
    previous: Option<[u8; 32]>,
    chain_id: String,
    threshold: usize,
    build: BuildEnvironment,
    protocol: ProtocolRules,
    members: Vec<Member>,
    keys: MemberKeys,
    digest: [u8; 32],
    key_id: [u8; 4],
    signing_domain: String,
}

/// The default threshold for `n` members: the BFT quorum ⌊2n/3⌋+1.
pub fn default_threshold(n: usize) -> usize {
    2 * n / 3 + 1
}

impl Committee {
    /// Parses and validates a committee file's text: every check in the module doc.
    pub fn from_toml(text: &str) -> Result<Self, CommitteeError> {
        Self::from_file(parse_file(text)?)
    }

    /// Like [`Committee::from_toml`] for a text whose EXACT bytes passed it before (the
    /// caller remembers that by the text's sha256, e.g. in the user's cache directory):
    /// the proofs of possession and the keys' subgroup checks, which cost a pairing and a
    /// scalar multiplication per member, are not repeated. Every other check is.
    pub fn from_toml_checked_before(text: &str) -> Result<Self, CommitteeError> {
        Self::validate(parse_file(text)?, true)
    }

    /// Validates a parsed committee file.
    pub fn from_file(file: CommitteeFile) -> Result<Self, CommitteeError> {
        Self::validate(file, false)
    }

    fn validate(file: CommitteeFile, prechecked: bool) -> Result<Self, CommitteeError> {
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
        file.protocol.check().map_err(CommitteeError::BadRule)?;
        let previous = match (file.epoch, &file.previous) {
            (0, None) => None,
            (0, Some(_)) => {
                return Err(CommitteeError::BadEpoch(
                    "the genesis (epoch 0) names no previous committee",
                ));
            }
            (_, None) => {
                return Err(CommitteeError::BadEpoch(
                    "a committee after the genesis must name the previous committee's digest",
                ));
            }
            (_, Some(hex_digest)) => Some(parse_digest(hex_digest).ok_or(
                CommitteeError::BadEpoch("previous is not a 64-digit lowercase hex digest"),
            )?),
        };
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
        let decoded: Vec<(Member, Option<BlsSignature>)> = file
            .members
            .iter()
            .map(|m| Member::decode(m, prechecked))
            .collect::<Result<_, _>>()?;
        let name = |i: usize| decoded[i].0.name.clone();
        let keys = if prechecked {
            MemberKeys::from_previously_checked(
                decoded
                    .iter()
                    .map(|(m, _)| m.bls_public_key.clone())
                    .collect(),
            )
        } else {
            let pairs: Vec<_> = decoded
                .iter()
                .map(|(m, pop)| {
                    let pop = pop.clone().expect("decoded when not prechecked");
                    (m.bls_public_key.clone(), pop)
                })
                .collect();
            MemberKeys::from_keys_with_pops(&pairs)
        }
        .map_err(|e| match e {
            ThresholdError::BadProofOfPossession { index } => {
                CommitteeError::BadProofOfPossession {
                    member: name(index),
                }
            }
            ThresholdError::DuplicateKey { first, second } => CommitteeError::Duplicate {
                what: "BLS public key",
                first: name(first),
                second: name(second),
            },
            _ => CommitteeError::NoMembers,
        })?;
        let members: Vec<Member> = decoded.into_iter().map(|(m, _)| m).collect();
        let digest = committee_digest(
            &keys,
            file.threshold,
            &rule_book(&file.chain_id, &file.build, &file.protocol),
            file.epoch,
            previous.as_ref(),
        );
        let key_id = key_id(&file.origin, &digest);
        let signing_domain = format!("{}/{}", file.chain_id, hex::encode(digest));
        Ok(Self {
            origin: file.origin,
            epoch: file.epoch,
            previous,
            chain_id: file.chain_id,
            threshold: file.threshold,
            build: file.build,
            protocol: file.protocol,
            members,
            keys,
            digest,
            key_id,
            signing_domain,
        })
    }

    /// The file shape, for writing.
    pub fn to_file(&self) -> CommitteeFile {
        CommitteeFile {
            origin: self.origin.clone(),
            epoch: self.epoch,
            previous: self.previous.map(hex::encode),
            chain_id: self.chain_id.clone(),
            threshold: self.threshold,
            build: self.build.clone(),
            protocol: self.protocol,
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
    /// The committee's epoch (0: the genesis).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The previous epoch's committee digest (`None` for the genesis).
    pub fn previous(&self) -> Option<[u8; 32]> {
        self.previous
    }
    /// Consensus chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
    /// What members' Ed25519 signatures (protocol messages, consensus votes) are bound to:
    /// `<chain id>/<hex committee digest>`. A member running another rule book (another
    /// `[protocol]` value, another key) signs for another domain, so the group refuses its
    /// messages instead of diverging from it.
    pub fn signing_domain(&self) -> &str {
        &self.signing_domain
    }
    /// The threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// Pinned toolchain and target.
    pub fn build(&self) -> &BuildEnvironment {
        &self.build
    }
    /// The protocol's rules (`[protocol]`).
    pub fn protocol(&self) -> &ProtocolRules {
        &self.protocol
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
    /// `SHA-256(pk_1 || ... || pk_n || threshold as u32 big-endian || rule book)`.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// The signed-note key ID of the threshold signature line.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }
    /// The position of a member by its base58 peer id.
    pub fn index_of_peer_id(&self, peer_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.peer_id == peer_id)
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

fn parse_file(text: &str) -> Result<CommitteeFile, CommitteeError> {
    toml::from_str(text).map_err(|e| CommitteeError::Syntax(e.message().replace('\n', " ")))
}

/// `SHA-256(pk_1 || ... || pk_n || threshold as u32 big-endian || rule book)` for the
/// genesis, and the same with `epoch as u64 big-endian || previous digest` appended for every
/// later epoch (docs/formats.md): the genesis digest is what it was before epochs, and two
/// epochs never share a digest (nor a key ID, nor a signing domain), even with the same keys
/// and rules. `rules` is [`rule_book`]'s encoding.
pub fn committee_digest(
    keys: &MemberKeys,
    threshold: usize,
    rules: &[u8],
    epoch: u64,
    previous: Option<&[u8; 32]>,
) -> [u8; 32] {
    let mut data = Vec::with_capacity(48 * keys.len() + 4 + rules.len() + 40);
    for k in keys.iter() {
        data.extend_from_slice(&k.to_bytes());
    }
    let t = u32::try_from(threshold).expect("threshold <= n fits in u32");
    data.extend_from_slice(&t.to_be_bytes());
    data.extend_from_slice(rules);
    if let Some(previous) = previous {
        data.extend_from_slice(&epoch.to_be_bytes());
        data.extend_from_slice(previous);
    }
    sha256(&data)
}

/// A 32-byte digest written as 64 lowercase hex digits.
pub fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

/// The rule book as the digest covers it: `synchronicity/rules/v2\n`, then the chain id,
/// toolchain and target as `u16 big-endian length || UTF-8`, then every `[protocol]` value
/// as `u64 big-endian` in [`ProtocolRules::fields`] order, then, if any
/// [`ProtocolRules::extensions`] value is set (non-zero), their count as `u16 big-endian`
/// and each as `u16 big-endian position || u64 big-endian` (position in that list: the
/// encoding stays unambiguous as rules are added, and a committee that sets none keeps its
/// v2 digest).
pub fn rule_book(chain_id: &str, build: &BuildEnvironment, rules: &ProtocolRules) -> Vec<u8> {
    // v2: v1 plus max_open_requests_per_member.
    let mut out = b"synchronicity/rules/v2\n".to_vec();
    for s in [chain_id, &build.toolchain, &build.target] {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
    }
    for (_, v) in rules.fields() {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let set: Vec<(u16, u64)> = rules
        .extensions()
        .iter()
        .enumerate()
        .filter(|(_, (_, v))| *v != 0)
        .map(|(position, (_, v))| (position as u16, *v))
        .collect();
    if !set.is_empty() {
        // The count first: the digest's data goes on after the rule book (a later epoch's
        // number and previous digest), and the count says where the rules end.
        out.extend_from_slice(&(set.len() as u16).to_be_bytes());
        for (position, v) in set {
            out.extend_from_slice(&position.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out
}

/// `SHA-256(origin || 0x0A || 0xff || KEY_ID_DOMAIN || committee digest)[:4]` (docs/formats.md).
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
