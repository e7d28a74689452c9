//! The log's verifiable index (issue 26): two sparse Merkle trees whose roots every
//! cosigned checkpoint carries in an extension line, so that a lookup answer, including
//! "no entry", comes with a proof (docs/formats.md, "The index"):
//!
//! - [`smt`]: the tree and its proofs of presence and absence;
//! - [`roots`]: the keys, the values they commit to, and the checkpoint line;
//! - [`answer`]: lookup answers as they travel and their verification;
//! - [`default`]: the rule that picks `crate@version`'s default variant from all of its
//!   entries (clients and members run the same function).

pub mod answer;
pub mod default;
pub mod roots;
pub mod smt;

pub use answer::{AnswerError, ProvenEntry, VariantsAnswer, VersionsAnswer, WireProof};
pub use default::default_variant;
pub use roots::{
    BuildError, EXTENSION_TAG, IndexBuilder, IndexError, IndexRoots, crate_key, variants_key,
    variants_value, versions_value,
};
pub use smt::{SmtError, SmtProof, SmtProofError};

#[cfg(test)]
mod tests;
