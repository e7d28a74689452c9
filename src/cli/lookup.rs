//! `lookup CRATE@VERSION`: every entry the log holds for it — every variant and attempt,
//! each with its request id, settings, lockfile, attempt and verdict — proven complete by
//! the index of a cosigned checkpoint, or `no entry (proven absent at size N)`. The default
//! variant is marked: the client picks it from the proven list with the rule every member
//! uses (`synchronicity_verify::index::default`), and its proof file is fetched and
//! verified (`--out` writes it).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use synchronicity_light::ProvenLookup;

use super::client::{runtime, start};
use super::fetch::PeerArgs;
use crate::node_dir::write_atomic;
use crate::verify::BatchVerifier;

/// Arguments of `lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// CRATE@VERSION, or a recipe id (`synchronicity recipe` prints it).
    pub spec: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the default variant's verified proof file here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// One entry as printed.
#[derive(Debug, serde::Serialize)]
struct Variant {
    index: u64,
    request_id: String,
    variant: String,
    features: Vec<String>,
    target: String,
    lockfile: &'static str,
    attempt: u32,
    verdict: String,
    default: bool,
}

/// The whole answer as printed.
#[derive(Debug, serde::Serialize)]
struct Answer {
    spec: String,
    /// The size of the cosigned checkpoint whose index proves the answer.
    checkpoint_size: u64,
    proven: bool,
    /// The default variant's entry index.
    default: Option<u64>,
    variants: Vec<Variant>,
}

fn answer(found: &ProvenLookup) -> Answer {
    let default = found.default.as_ref().map(|p| p.record().index());
    Answer {
        spec: found.spec.clone(),
        checkpoint_size: found.checkpoint_size,
        proven: true,
        default,
        variants: found
            .entries
            .iter()
            .map(|e| {
                let r = &e.entry.request;
                Variant {
                    index: e.index,
                    request_id: hex::encode(r.id()),
                    variant: r.variant_label(),
                    features: r.features.clone(),
                    target: r.target.clone(),
                    lockfile: if r.lockfile_shipped {
                        "shipped"
                    } else {
                        "generated"
                    },
                    attempt: r.attempt,
                    verdict: format!("{:?}", e.entry.verdict),
                    default: Some(e.index) == default,
                }
            })
            .collect(),
    }
}

/// `lookup`.
pub(super) fn lookup(mut args: LookupArgs) -> anyhow::Result<()> {
    if let Some(crate::log::LookupKey::Request(id)) = crate::log::LookupKey::parse(&args.spec) {
        // A recipe id: its entries are `_recipe@<id>`'s.
        args.spec = synchronicity_verify::request::recipe_spec(&id);
    }
    if crate::log::LookupKey::parse(&args.spec).is_none() || !args.spec.contains('@') {
        bail!("{:?} is not CRATE@VERSION or a recipe id", args.spec);
    }
    let setup = args.peers.setup()?;
    let mut verifier = match &setup.chain {
        Some(chain) => BatchVerifier::in_chain(chain),
        None => BatchVerifier::new(setup.committee.trust_root()),
    };
    let found = runtime()?.block_on(async {
        let client = start(&setup).await?;
        let mut held = 0;
        let found = client
            .lookups(&mut verifier, std::slice::from_ref(&args.spec), &mut held)
            .await
            .pop()
            .flatten();
        client.shutdown().await;
        anyhow::Ok(found)
    })?;
    let Some(found) = found else {
        bail!(
            "{}: no peer gave an answer that proves itself (see the warnings above)",
            args.spec
        );
    };
    if let (Some(out), Some(p)) = (&args.out, &found.default) {
        write_atomic(out, p.text().as_bytes())?;
        eprintln!("{}", out.display());
    }
    let a = answer(&found);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(());
    }
    if a.variants.is_empty() {
        println!(
            "{}: no entry (proven absent at size {})",
            a.spec, a.checkpoint_size
        );
        return Ok(());
    }
    println!(
        "{}: {} entr{} (proven complete at size {})",
        a.spec,
        a.variants.len(),
        if a.variants.len() == 1 { "y" } else { "ies" },
        a.checkpoint_size
    );
    println!(
        "{:>9} {:<64} {:<9} {:>7} {:<14} {:<7} variant",
        "index", "request id", "lockfile", "attempt", "verdict", "default"
    );
    for v in &a.variants {
        println!(
            "{:>9} {:<64} {:<9} {:>7} {:<14} {:<7} {}",
            v.index,
            v.request_id,
            v.lockfile,
            v.attempt,
            v.verdict,
            if v.default { "yes" } else { "" },
            if v.variant.is_empty() {
                "default settings"
            } else {
                &v.variant
            }
        );
    }
    if a.default.is_none() {
        println!("no entry is the default variant: ask `proof` by request id");
    }
    Ok(())
}
