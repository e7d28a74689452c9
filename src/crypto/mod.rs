//! Cryptographic primitives: the node identity (Ed25519, the libp2p peer id and consensus
//! key) here; BLS12-381 signatures, proofs of possession and threshold signatures come from
//! `synchronicity-verify` (re-exported), so every format has one definition.

mod identity;
#[cfg(test)]
mod tests;

pub use identity::{IDENTITY_SECRET_LEN, IdentityError, NodeIdentity, ed25519_key_of};
pub use synchronicity_verify::crypto::*;
