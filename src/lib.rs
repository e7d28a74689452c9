//! Synchronicity: a distributed build system that gives cryptographic proofs of
//! reproducibility.
//!
//! A permissioned group of builders rebuilds crates from crates.io in sandboxes, agrees by
//! BFT consensus whether a threshold of them got byte-identical artifacts, appends the
//! evidence to an append-only Merkle log, and hands anyone a small static proof that
//! verifies offline. See the README and `docs/` for the whole picture.
//!
//! Layers (one-way imports): the formats and their verification live in the
//! `synchronicity-verify` crate (re-exported here as [`verify`], and through [`codec`],
//! [`crypto`], [`committee`], [`request`] and [`log`] where the node extends them);
//! [`protocol`] and the Merkle math are pure; [`node`], [`consensus`], [`builder`] and the log
//! store are I/O shells; [`node_dir`] holds a node's keys; [`cli`] is the command line.
//! `scripts/check-layers.sh` checks the order (no circle, no upward import).
//!
//! # Dependencies
//!
//! The member's crate: it may depend on every workspace crate below it (`synchronicity-verify`,
//! `synchronicity-net`, `synchronicity-light` for the light protocol's types). Nothing in the
//! workspace may depend on it, and its product code must never depend on its own test kit
//! ([`testing`], feature `testkit`) or on a Byzantine behaviour: those live in tests and in
//! `examples/testnet_member`.

#![forbid(unsafe_code)]

pub mod builder;
pub mod cli;
pub mod clock;
pub mod committee;
pub mod consensus;
pub mod crypto;
pub mod http;
pub mod log;
pub mod node;
pub mod node_dir;
pub mod protocol;
pub mod recipe;
pub mod request;
#[cfg(any(test, feature = "testkit"))]
pub mod testing;
pub mod witness;

pub use synchronicity_verify as verify;
pub use synchronicity_verify::codec;
