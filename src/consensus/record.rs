//! A decided height as it is stored and served to members that catch up: the block bytes
//! and the commit certificate (2f+1 precommit signatures over its id). Decoding checks
//! shapes only; [`super::Core::verify_decided`] checks the certificate.

use arc_malachitebft_core_types::{CommitCertificate, CommitSignature, Round, Value as _};
use arc_malachitebft_signing_ed25519::Signature;
use serde::{Deserialize, Serialize};

use super::context::{Address, Ctx, Height, Value, ValueId};
use super::wire::MAX_WIRE_SIZE;
use crate::codec::{self, CodecError};

/// Most signatures a certificate may carry.
const MAX_SIGNATURES: usize = 1024;

/// A decided height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedRecord {
    /// The block.
    pub value: Value,
    /// Its commit certificate.
    pub certificate: CommitCertificate<Ctx>,
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    height: u64,
    round: u32,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    signatures: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
}

/// Why bytes are not a decided record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not CBOR of the expected shape, or too large.
    #[error("decided record: {0}")]
    Codec(#[from] CodecError),
    /// A field has the wrong length or range.
    #[error("decided record: invalid {0}")]
    Field(&'static str),
}

impl DecidedRecord {
    /// The height.
    pub fn height(&self) -> Height {
        self.certificate.height
    }

    /// CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::to_vec(&Encoded {
            height: self.certificate.height.0,
            round: self.certificate.round.as_u32().unwrap_or(0),
            value: self.value.bytes().to_vec(),
            signatures: self
                .certificate
                .commit_signatures
                .iter()
                .map(|s| {
                    (
                        serde_bytes::ByteBuf::from(s.address.0.to_vec()),
                        serde_bytes::ByteBuf::from(s.signature.to_bytes().to_vec()),
                    )
                })
                .collect(),
        })
    }

    /// Decodes bounded bytes; the certificate names the block (its id is recomputed).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let e: Encoded = codec::from_slice(bytes, MAX_WIRE_SIZE + 128 * 1024)?;
        if e.signatures.len() > MAX_SIGNATURES {
            return Err(RecordError::Field("signature count"));
        }
        let value = Value::new(e.value);
        let commit_signatures = e
            .signatures
            .iter()
            .map(|(a, s)| {
                let a: [u8; 32] = a
                    .as_slice()
                    .try_into()
                    .map_err(|_| RecordError::Field("address"))?;
                let s: [u8; 64] = s
                    .as_slice()
                    .try_into()
                    .map_err(|_| RecordError::Field("signature"))?;
                Ok(CommitSignature {
                    address: Address(a),
                    signature: Signature::from_bytes(s),
                })
            })
            .collect::<Result<_, RecordError>>()?;
        let value_id: ValueId = value.id();
        Ok(Self {
            certificate: CommitCertificate {
                height: Height(e.height),
                round: Round::new(e.round),
                value_id,
                commit_signatures,
            },
            value,
        })
    }
}
