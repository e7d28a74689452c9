//! BLS12-381 signatures with proofs of possession, threshold signatures by aggregation, and
//! batched verification (one multi-pairing for many signatures). Pure: no I/O.

mod batch;
mod bls;
#[cfg(test)]
mod tests;
mod threshold;

pub use batch::{BatchItem, verify_batch};
pub use bls::{
    BlsError, BlsPublicKey, BlsSecretKey, BlsSignature, POP_DST, PUBLIC_KEY_LEN, SECRET_KEY_LEN,
    SIGNATURE_DST, SIGNATURE_LEN, UncheckedSignature,
};
pub use threshold::{
    MemberKeys, PartialSignature, SignerBitmap, ThresholdAggregator, ThresholdError,
    ThresholdSignature,
};

pub use crate::sha256;
