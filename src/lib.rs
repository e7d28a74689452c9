//! Synchronicity: a distributed build system that gives cryptographic proofs of
//! reproducibility.
//!
//! A permissioned group of builders rebuilds crates from crates.io in sandboxes, agrees by
//! BFT consensus whether a threshold of them got byte-identical artifacts, appends the
//! evidence to an append-only Merkle log, and hands anyone a small static proof that
//! verifies offline. See `DESIGN.md` and `docs/` for the whole picture.
//!
//! Layers (one-way imports): [`crypto`], [`committee`] and [`codec`] are pure leaves;
//! [`node_dir`] is the thin file shell for a node's keys; [`cli`] is the command line.

#![forbid(unsafe_code)]

pub mod build;
pub mod cli;
pub mod codec;
pub mod committee;
pub mod consensus;
pub mod crypto;
pub mod log;
pub mod node;
pub mod node_dir;
pub mod protocol;
pub mod request;
#[doc(hidden)]
pub mod testing;
