//! Wire format of consensus messages on the direct streams (CBOR, bounded), signatures
//! included. Decoding checks shapes only; signatures are checked by the core
//! (`VerifySignature`) before any state changes.

use arc_malachitebft_core_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, VoteType,
};
use arc_malachitebft_signing_ed25519::Signature;
use serde::{Deserialize, Serialize};

use super::context::{Address, Ctx, Height, Proposal, Value, ValueId, Vote};
use crate::codec::{self, CodecError};

/// Largest consensus message (a proposal carries its block).
pub const MAX_WIRE_SIZE: usize = 4 * 1024 * 1024;

/// A signed vote.
pub type SignedVote = SignedMessage<Ctx, Vote>;
/// A signed proposal.
pub type SignedProposal = SignedMessage<Ctx, Proposal>;

/// A consensus message as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A proposal with its value.
    Proposal(SignedProposal),
    /// A prevote or precommit.
    Vote(SignedVote),
    /// 2f+1 prevotes for a value in a round (sent with a re-proposal, for liveness).
    Polka(PolkaCertificate<Ctx>),
    /// 2f+1 precommits (or f+1 votes of a higher round) that let a lagging member skip
    /// ahead to the certificate's round.
    RoundCertificate(RoundCertificate<Ctx>),
}

/// One signature of a certificate: (address, signature), plus the vote kind and value for
/// round certificates.
#[derive(Serialize, Deserialize)]
struct EncodedSignature {
    precommit: bool,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    #[serde(with = "serde_bytes")]
    address: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
enum Encoded {
    Proposal {
        height: u64,
        round: i64,
        pol_round: i64,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        #[serde(with = "serde_bytes")]
        address: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    Vote {
        precommit: bool,
        height: u64,
        round: i64,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        #[serde(with = "serde_bytes")]
        address: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    Polka {
        height: u64,
        round: i64,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        signatures: Vec<EncodedSignature>,
    },
    RoundCertificate {
        height: u64,
        round: i64,
        precommit: bool,
        signatures: Vec<EncodedSignature>,
    },
}

/// Most signatures a certificate may carry (far above any committee size).
const MAX_CERT_SIGNATURES: usize = 1024;

/// Why bytes are not a consensus message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not CBOR of the expected shape, or too large.
    #[error("consensus message: {0}")]
    Codec(#[from] CodecError),
    /// A field has the wrong length or range.
    #[error("consensus message: invalid {0}")]
    Field(&'static str),
}

fn round_to_i64(r: Round) -> i64 {
    r.as_i64()
}

fn round_from_i64(r: i64) -> Result<Round, WireError> {
    match r {
        -1 => Ok(Round::Nil),
        0..=0xffff_ffff => Ok(Round::new(r as u32)),
        _ => Err(WireError::Field("round")),
    }
}

fn arr32(v: &[u8], what: &'static str) -> Result<[u8; 32], WireError> {
    v.try_into().map_err(|_| WireError::Field(what))
}

fn value_bytes(v: &NilOrVal<ValueId>) -> Vec<u8> {
    match v {
        NilOrVal::Nil => Vec::new(),
        NilOrVal::Val(id) => id.0.to_vec(),
    }
}

fn value_from(v: &[u8]) -> Result<NilOrVal<ValueId>, WireError> {
    Ok(if v.is_empty() {
        NilOrVal::Nil
    } else {
        NilOrVal::Val(ValueId(arr32(v, "value id")?))
    })
}

fn vote_type(precommit: bool) -> VoteType {
    if precommit {
        VoteType::Precommit
    } else {
        VoteType::Prevote
    }
}

/// A round that is not nil (messages are always for a defined round).
fn defined_round(r: i64) -> Result<Round, WireError> {
    match round_from_i64(r)? {
        Round::Nil => Err(WireError::Field("round")),
        r => Ok(r),
    }
}

fn sig(v: &[u8]) -> Result<Signature, WireError> {
    let b: [u8; 64] = v.try_into().map_err(|_| WireError::Field("signature"))?;
    Ok(Signature::from_bytes(b))
}

impl Wire {
    /// The height the message is for.
    pub fn height(&self) -> Height {
        match self {
            Wire::Proposal(p) => p.height,
            Wire::Vote(v) => v.height,
            Wire::Polka(c) => c.height,
            Wire::RoundCertificate(c) => c.height,
        }
    }

    /// CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        let e = match self {
            Wire::Proposal(p) => Encoded::Proposal {
                height: p.height.0,
                round: round_to_i64(p.round),
                pol_round: round_to_i64(p.pol_round),
                value: p.value.bytes().to_vec(),
                address: p.address.0.to_vec(),
                signature: p.signature.to_bytes().to_vec(),
            },
            Wire::Vote(v) => Encoded::Vote {
                precommit: v.typ == VoteType::Precommit,
                height: v.height.0,
                round: round_to_i64(v.round),
                value: value_bytes(&v.value),
                address: v.address.0.to_vec(),
                signature: v.signature.to_bytes().to_vec(),
            },
            Wire::Polka(c) => Encoded::Polka {
                height: c.height.0,
                round: round_to_i64(c.round),
                value: c.value_id.0.to_vec(),
                signatures: c
                    .polka_signatures
                    .iter()
                    .map(|s| EncodedSignature {
                        precommit: false,
                        value: Vec::new(),
                        address: s.address.0.to_vec(),
                        signature: s.signature.to_bytes().to_vec(),
                    })
                    .collect(),
            },
            Wire::RoundCertificate(c) => Encoded::RoundCertificate {
                height: c.height.0,
                round: round_to_i64(c.round),
                precommit: c.cert_type == RoundCertificateType::Precommit,
                signatures: c
                    .round_signatures
                    .iter()
                    .map(|s| EncodedSignature {
                        precommit: s.vote_type == VoteType::Precommit,
                        value: value_bytes(&s.value_id),
                        address: s.address.0.to_vec(),
                        signature: s.signature.to_bytes().to_vec(),
                    })
                    .collect(),
            },
        };
        codec::to_vec(&e)
    }

    /// Decodes bounded, shape-checked bytes (signatures NOT yet verified).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        Ok(match codec::from_slice::<Encoded>(bytes, MAX_WIRE_SIZE)? {
            Encoded::Proposal {
                height,
                round,
                pol_round,
                value,
                address,
                signature,
            } => {
                let p = Proposal {
                    height: Height(height),
                    round: defined_round(round)?,
                    value: Value::new(value),
                    pol_round: round_from_i64(pol_round)?,
                    address: Address(arr32(&address, "address")?),
                };
                Wire::Proposal(SignedMessage::new(p, sig(&signature)?))
            }
            Encoded::Vote {
                precommit,
                height,
                round,
                value,
                address,
                signature,
            } => {
                let value = value_from(&value)?;
                let v = Vote {
                    typ: vote_type(precommit),
                    height: Height(height),
                    round: defined_round(round)?,
                    value,
                    address: Address(arr32(&address, "address")?),
                };
                Wire::Vote(SignedMessage::new(v, sig(&signature)?))
            }
            Encoded::Polka {
                height,
                round,
                value,
                signatures,
            } => {
                if signatures.len() > MAX_CERT_SIGNATURES {
                    return Err(WireError::Field("signature count"));
                }
                Wire::Polka(PolkaCertificate {
                    height: Height(height),
                    round: defined_round(round)?,
                    value_id: ValueId(arr32(&value, "value id")?),
                    polka_signatures: signatures
                        .iter()
                        .map(|s| {
                            Ok(PolkaSignature::new(
                                Address(arr32(&s.address, "address")?),
                                sig(&s.signature)?,
                            ))
                        })
                        .collect::<Result<_, WireError>>()?,
                })
            }
            Encoded::RoundCertificate {
                height,
                round,
                precommit,
                signatures,
            } => {
                if signatures.len() > MAX_CERT_SIGNATURES {
                    return Err(WireError::Field("signature count"));
                }
                Wire::RoundCertificate(RoundCertificate {
                    height: Height(height),
                    round: defined_round(round)?,
                    cert_type: if precommit {
                        RoundCertificateType::Precommit
                    } else {
                        RoundCertificateType::Skip
                    },
                    round_signatures: signatures
                        .iter()
                        .map(|s| {
                            Ok(RoundSignature {
                                vote_type: vote_type(s.precommit),
                                value_id: value_from(&s.value)?,
                                address: Address(arr32(&s.address, "address")?),
                                signature: sig(&s.signature)?,
                            })
                        })
                        .collect::<Result<_, WireError>>()?,
                })
            }
        })
    }
}
