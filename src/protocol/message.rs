//! Protocol messages and their Ed25519 envelopes. Every message a member gossips is signed
//! by its node identity over `"synchronicity/message/v1\n" || chain id || "\n" || CBOR(body)`;
//! the chain id keeps two groups' messages apart. A value (block) is a list of these.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::committee::Committee;
use crate::request::PinnedRequest;
use synchronicity_verify::entry::FailureClass;

/// Domain prefix of message signatures.
pub const MESSAGE_DOMAIN: &[u8] = b"synchronicity/message/v1\n";
/// Largest encoded signed message.
pub const MAX_MESSAGE_SIZE: usize = 2 * 1024 * 1024;

/// What a builder revealed: a manifest (success) or a failure class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevealedOutcome {
    /// The manifest text; its SHA-256 is the digest.
    Manifest(String),
    /// The failure class (serialised as its name, e.g. `"timeout"`: a reveal naming no
    /// known class does not decode).
    Failure(FailureClass),
}

/// The body of a protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A member asks the group to build this (the lockfile text travels with it).
    Request(PinnedRequest),
    /// A member commits to its result.
    Commit {
        /// Request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// The commitment.
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
    },
    /// A member reveals its result.
    Reveal {
        /// Request id.
        #[serde(with = "serde_bytes")]
        request_id: Vec<u8>,
        /// The outcome.
        outcome: RevealedOutcome,
        /// The commitment's salt.
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
        /// BLS signature over the attestation statement.
        #[serde(with = "serde_bytes")]
        attestation: Vec<u8>,
    },
    /// A member approves the next epoch's committee file (docs/formats.md, "Epochs").
    Approve {
        /// The next committee file, verbatim.
        committee: String,
        /// The member's BLS signature over the approval statement.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
}

/// A body signed by member `signer` (committee position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The body.
    pub body: Body,
    /// Committee position of the author.
    pub signer: u32,
    /// Ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not decodable.
    #[error("message: {0}")]
    Codec(#[from] CodecError),
    /// The signer is not a member.
    #[error("signer {0} is not a committee member")]
    NotMember(u32),
    /// The Ed25519 signature does not verify.
    #[error("bad signature from member {0}")]
    BadSignature(u32),
}

fn signing_bytes(chain_id: &str, body: &Body) -> Vec<u8> {
    let mut m = MESSAGE_DOMAIN.to_vec();
    m.extend_from_slice(chain_id.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(&codec::to_vec(body));
    m
}

impl SignedMessage {
    /// Signs `body` as member `signer` with `identity`.
    pub fn sign(
        body: Body,
        signer: u32,
        identity: &crate::crypto::NodeIdentity,
        chain_id: &str,
    ) -> Self {
        let signature = identity.sign(&signing_bytes(chain_id, &body)).to_vec();
        Self {
            body,
            signer,
            signature,
        }
    }

    /// Checks membership and the signature (BEFORE any state changes).
    pub fn verify(&self, committee: &Committee) -> Result<(), MessageError> {
        let member = committee
            .members()
            .get(self.signer as usize)
            .ok_or(MessageError::NotMember(self.signer))?;
        if !member.ed25519.verify(
            &signing_bytes(committee.signing_domain(), &self.body),
            &self.signature,
        ) {
            return Err(MessageError::BadSignature(self.signer));
        }
        Ok(())
    }

    /// CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// Decodes (bounded) without verifying.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, MessageError> {
        Ok(codec::from_slice(bytes, MAX_MESSAGE_SIZE)?)
    }
}
