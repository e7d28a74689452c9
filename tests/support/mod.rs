//! What the integration tests share (each test file declares `mod support;`): the
//! binaries cargo built for them, groups of member processes or in-process members, the
//! `[protocol]` rules they run under, a crates.io-like registry and plain HTTP on loopback,
//! peers the test plays itself, and the checks every CLI test makes of an output.
//!
//! No test runs cargo: the product binary is `CARGO_BIN_EXE_synchronicity` ([`cli::bin`]),
//! the test node `CARGO_BIN_EXE_fixed_builder_node` ([`cluster::test_node_binary`]).

// Each test file uses a part of this module.
#![allow(dead_code)]

pub(crate) mod builder;
pub(crate) mod cli;
pub(crate) mod cluster;
pub(crate) mod http;
pub(crate) mod in_process;
pub(crate) mod peers;
pub(crate) mod procs;
pub(crate) mod registry;
pub(crate) mod rules;

#[allow(unused_imports)] // Each test file uses a part.
pub(crate) use cluster::{Cluster, longest_stall};
