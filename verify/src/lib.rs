//! Offline verification of Synchronicity proofs: everything a relying party needs to check
//! that a threshold of a committee's builders reproduced a crate, and nothing else — no
//! network, no storage, no async runtime. The node, its log and its protocol use these same
//! types, so each format has one definition.
//!
//! - [`tlog`]: C2SP tlog-checkpoint, signed-note (with the committee's threshold BLS line) and
//!   tlog-proof parsing; RFC 6962 inclusion and consistency proofs (pure math over
//!   [`tlog::HashReader`], as Go's `sumdb/tlog`).
//! - [`committee`]: the committee file (the trust root) and its threshold check.
//! - [`crypto`]: BLS12-381 (`min_pk`, the IETF POP ciphersuite) and threshold signatures by
//!   aggregation, with batched verification.
//! - [`request`], [`manifest`], [`entry`]: the build request with every pin, the artifact
//!   manifest, and the log entry with its attestation statement and failure classes.
//! - [`epoch`]: committee changes (the change statement and entry) and the committee chain
//!   a client ratchets along from the genesis.
//! - [`index`]: the verifiable index's sparse Merkle tree (proofs of presence and absence).
//! - [`round`]: the phase a request's round is in.
//! - [`recipe`]: what a workspace's dependencies are built from (the cache's request).
//! - [`proof`]: the whole check of a proof file, bound to what the user asked
//!   ([`Expected`]: crate, version, optionally the `.crate`'s sha256 or the request id).
//!
//! # Dependencies
//!
//! Hashing, BLS (`blst`, with `getrandom` for batch weights and key generation), CBOR, TOML
//! and base64 only. It must NEVER depend on another workspace crate, a network stack, an
//! async runtime, storage or the file system (the caller reads the files): a relying party
//! embeds it, and so does every other crate here.
//!
//! # Example
//!
//! Verify that `itoa@1.0.15` was reproduced, and that a file is the attested library:
//!
//! ```no_run
//! use synchronicity_verify::{Committee, Expected, Manifest, verify_proof};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let committee = Committee::from_toml(&std::fs::read_to_string("committee.toml")?)?;
//! let proof = std::fs::read_to_string("itoa-1.0.15.tlog-proof")?;
//! let build = verify_proof(&proof, &committee, &Expected::crate_version("itoa", "1.0.15"))?
//!     .require_reproduced()?;
//! println!("{} reproduced by {} of {} members", build.spec(), build.attesters().len(), committee.len());
//!
//! // The manifest text is pinned by the entry's digest (`proof --with-inputs` fetches it).
//! let manifest: Manifest = build.manifest(&std::fs::read_to_string("itoa-1.0.15.manifest")?)?;
//! let rlib = std::fs::read("libitoa.rlib")?;
//! let path = manifest.check_artifact(None, "libitoa.rlib", &rlib)?;
//! println!("libitoa.rlib is {path} as attested");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
pub mod committee;
pub mod crypto;
pub mod entry;
pub mod epoch;
pub mod index;
pub mod manifest;
pub mod proof;
pub mod recipe;
pub mod request;
pub mod round;
#[cfg(any(test, feature = "testkit"))]
pub mod test_chain;
#[cfg(any(test, feature = "testkit"))]
pub mod test_committee;
pub mod tlog;

pub use committee::{Committee, CommitteeError};
pub use entry::{FailureClass, LogEntry, Verdict};
pub use epoch::{ChainError, ChangeEntry, CommitteeChain};
pub use manifest::{ArtifactError, Manifest};
pub use proof::{
    BatchVerifier, Expected, ReproducedBuild, VerifiedRecord, VerifyError, verify_proof,
    verify_proof_in_chain,
};
pub use request::BuildRequest;
pub use round::Phase;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
