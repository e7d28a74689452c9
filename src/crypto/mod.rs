//! Cryptographic primitives: the node identity (Ed25519), BLS12-381 signatures with proofs
//! of possession, and threshold signatures by aggregation. Pure: no I/O.

mod bls;
mod identity;
#[cfg(test)]
mod tests;
mod threshold;

pub use bls::{
    BlsError, BlsPublicKey, BlsSecretKey, BlsSignature, POP_DST, PUBLIC_KEY_LEN, SECRET_KEY_LEN,
    SIGNATURE_DST, SIGNATURE_LEN,
};
pub use identity::{IDENTITY_SECRET_LEN, IdentityError, NodeIdentity, ed25519_key_of};
pub use threshold::{
    MemberKeys, PartialSignature, SignerBitmap, ThresholdAggregator, ThresholdError,
    ThresholdSignature,
};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
