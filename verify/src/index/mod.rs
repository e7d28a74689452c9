//! The log's verifiable index (issue 26, under way): a sparse Merkle tree keyed by the
//! SHA-256 of what is looked up, whose root a checkpoint will carry, so that an answer —
//! including "no entry" — comes with a proof. This version has the tree and its proofs
//! ([`smt`]); the values, the checkpoint extension and the answers come next.

pub mod smt;

pub use smt::{SmtError, SmtProof, SmtProofError};
