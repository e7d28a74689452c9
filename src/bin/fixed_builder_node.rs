//! `synchronicity node` with a builder that returns chosen manifests instead of building:
//! the consensus tests run it as separate processes (real libp2p, real consensus, real redb
//! stores) to kill and restart members, and the benches' members. NOT a product binary:
//! `required-features = ["testkit"]` keeps it out of every build that does not ask for the
//! test kit (the crate's dev-dependency on itself asks for it in test builds).
//!
//! `SYNC_TEST_OVERRIDES="crate=variant,..."` makes this member's manifest for `crate`
//! differ; `SYNC_TEST_BUILD_MS` sets the simulated build time; `SYNC_TEST_BINS="crate=a+b"`
//! adds binaries `a` and `b` to that crate's manifest.

#![forbid(unsafe_code)]

use std::sync::Arc;

use clap::Parser;
use synchronicity::cli::node::{NodeArgs, run_with};
use synchronicity::testing::FixedBuilder;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let overrides = std::env::var("SYNC_TEST_OVERRIDES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let delay = std::env::var("SYNC_TEST_BUILD_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // `SYNC_TEST_BINS="crate=bin1+bin2,..."`: binaries in that crate's manifest.
    let bins = std::env::var("SYNC_TEST_BINS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.split('+').map(str::to_string).collect()))
        .collect();
    let builder = FixedBuilder {
        overrides,
        bins,
        delay: std::time::Duration::from_millis(delay),
    };
    match run_with(args.node, Arc::new(builder)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
