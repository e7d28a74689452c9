//! Synchronicity's light client: how anyone (a CLI, cargo-binstall, a CI action) asks a
//! member of the group for proofs, checkpoints, artifacts and audit batches, and gets back
//! only VERIFIED values. A tool that fetches proofs depends on this crate, never on the node.
//!
//! - [`protocol`]: the light protocol, `/synchronicity/proof/2` ([`LIGHT_PROTOCOL`]): its
//!   request and answer messages ([`LightRequest`], [`LightResponse`], CBOR) and their size
//!   bounds. Members serve these types; nothing else defines them.
//! - [`Client`]: asks the members it is given, in order, and checks every answer with
//!   `synchronicity-verify` before returning it ([`check`] holds those checks, pure):
//!   - [`Client::proof`]: a proof file that verifies offline against the trusted committee
//!     and is about what was asked ([`ProofQuery`]; for `crate@version`, its default
//!     variant, see [`default_variant`]);
//!   - [`Client::checkpoint`] / [`Client::advance`]: the latest cosigned checkpoint,
//!     proven consistent with the one held before; a [`SplitView`] only on evidence;
//!   - [`Client::reproduced`] and [`Client::artifact`]: a reproduced build's attested
//!     manifest, and artifacts whose bytes hash to the manifest's sha256 (size bounded by
//!     [`MAX_ARTIFACT`]);
//!   - [`Client::batch`]: proofs for many crates (an audit), each distinct checkpoint's
//!     signature checked once.
//!
//!   A member whose answer fails a check is a faulty (or unreachable) member: the client
//!   says so ([`Notice`]) and asks the next one.
//!
//! # Dependencies
//!
//! `synchronicity-net` (the libp2p transport) and `synchronicity-verify` (the formats and
//! their verification), plus small generic crates. It must NEVER depend on the node crate
//! or on what only a member needs: storage (redb), the builder (rustwide), the HTTP server
//! (hyper), the consensus engine (malachite). `cargo tree -p synchronicity-light -e normal`
//! shows none of them.
//!
//! # Example
//!
//! Fetch and verify a proof that `itoa@1.0.15` was reproduced (see
//! `examples/fetch_proof.rs`):
//!
//! ```no_run
//! use synchronicity_light::verify::{Committee, Verdict};
//! use synchronicity_light::{Client, ClientConfig, ProofQuery};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let committee = Committee::from_toml(&std::fs::read_to_string("committee.toml")?)?;
//! let peer = "/ip4/127.0.0.1/tcp/7000/p2p/12D3KooW...".parse()?;
//! let client = Client::start(ClientConfig::new(committee, vec![peer])).await?;
//! let proof = client.proof(&ProofQuery::default_variant("itoa", "1.0.15")).await?;
//! assert_eq!(proof.verdict(), Verdict::Reproduced);
//! std::fs::write("itoa-1.0.15.tlog-proof", proof.text())?;
//! client.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod answers;
pub mod check;
mod client;
mod config;
pub mod default_variant;
mod error;
pub mod protocol;

pub use answers::{Advance, BatchAnswer, CheckpointUpdate, ProvenLookup, VerifiedBuild};
pub use check::{CheckedProof, ProofQuery};
pub use client::{Client, LOOKUP_BATCH_BYTES};
pub use config::ClientConfig;
pub use default_variant::Lockfile;
pub use error::{LightError, Notice, PeerError, SplitView};
pub use protocol::{
    LIGHT_PROTOCOL, LightRequest, LightResponse, LookupAnswer, MAX_ARTIFACT, MAX_BLOB, MAX_CHUNK,
    MAX_LIGHT_REQUEST, MAX_LIGHT_RESPONSE, MAX_PROOF_BATCH, MAX_SPEC,
};
/// Members' addresses (`/ip4/…/tcp/…/p2p/…`).
pub use synchronicity_net::Multiaddr;
/// The verifier crate: the committee (trust root), proofs, manifests, verdicts.
pub use synchronicity_verify as verify;
