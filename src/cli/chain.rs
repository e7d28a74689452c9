//! `synchronicity committee chain`: the committee chain from the genesis to the group's
//! latest epoch, fetched from members and verified link by link with the previous
//! committee's keys only (`synchronicity_verify::CommitteeChain`). With an existing `--out`,
//! the chain held there is verified first and only EXTENDED: a member that serves a link
//! which does not follow it (a fork signed by a retired committee's keys, say) is faulty,
//! named, and the next is asked. The file is replaced atomically.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use multiaddr::Multiaddr;
use synchronicity_light::{LightRequest, LightResponse};

use super::client::{ClientSetup, runtime, start};
use crate::verify::CommitteeChain;
use crate::verify::epoch::{ChainLink, MAX_CHAIN_FILE_SIZE};

/// Arguments of `committee chain`.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// A member to ask (repeatable; in order) [default: the client config's peers].
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// The genesis committee file [default: the client config's trust].
    #[arg(long)]
    trust: Option<PathBuf>,
    /// The chain file to write; if it exists, the chain it holds is only extended.
    #[arg(long)]
    out: PathBuf,
    /// Also write the latest epoch's committee file here (verified through the chain): the
    /// `--from` of the next `committee propose`.
    #[arg(long, value_name = "FILE")]
    current: Option<PathBuf>,
}

/// Most answers asked of one member (each carries as many links as fit).
const MAX_ROUNDS: usize = 1000;

pub(super) fn chain(args: ChainArgs) -> anyhow::Result<()> {
    let setup = ClientSetup::load(args.trust.as_deref(), None, &args.peer)?;
    let genesis = setup.committee.trust_root().clone();
    let mut chain = if args.out.exists() {
        let meta = std::fs::metadata(&args.out).with_context(|| args.out.display().to_string())?;
        if meta.len() > MAX_CHAIN_FILE_SIZE as u64 {
            bail!(
                "{}: larger than {MAX_CHAIN_FILE_SIZE} bytes",
                args.out.display()
            );
        }
        let text =
            std::fs::read_to_string(&args.out).with_context(|| args.out.display().to_string())?;
        CommitteeChain::verify(genesis, &text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?
    } else {
        CommitteeChain::from_genesis(genesis)?
    };
    let held = chain.latest().epoch();
    let peers = setup.peers.clone();
    let faults = runtime()?.block_on(async {
        let client = start(&setup).await?;
        let mut faults = Vec::new();
        for peer in &peers {
            match extend(&client, peer, &mut chain).await {
                Ok(()) => {}
                Err(why) => faults.push(format!("{peer}: {why}")),
            }
        }
        client.shutdown().await;
        anyhow::Ok(faults)
    })?;
    for f in &faults {
        eprintln!("warning: faulty or unreachable member {f}");
    }
    if faults.len() == peers.len() {
        bail!("no member answered with a chain that verifies");
    }
    crate::node_dir::write_atomic(&args.out, chain.to_toml().as_bytes())?;
    let latest = chain.latest();
    if let Some(path) = &args.current {
        crate::node_dir::write_atomic(path, latest.to_toml().as_bytes())?;
    }
    eprintln!(
        "{}: epochs 0..={} ({} new), latest committee {} members, threshold {}, key id {}",
        args.out.display(),
        latest.epoch(),
        latest.epoch() - held,
        latest.len(),
        latest.threshold(),
        hex::encode(latest.key_id())
    );
    Ok(())
}

/// Asks `peer` for the links after `chain`'s latest epoch until it has none newer, each
/// verified as it is added. A link that does not verify ends the member's turn (the links
/// before it stay: each was verified with the keys of the one before).
async fn extend(
    client: &synchronicity_light::Client,
    peer: &Multiaddr,
    chain: &mut CommitteeChain,
) -> Result<(), String> {
    for _ in 0..MAX_ROUNDS {
        let after = chain.latest().epoch();
        let answer = client
            .ask(peer, &LightRequest::Chain { after })
            .await
            .map_err(|e| e.to_string())?;
        let (latest, links) = match answer {
            LightResponse::Chain { latest, links } => (latest, links),
            LightResponse::NotFound(why) => return Err(why),
            other => return Err(format!("answered with {}", other.kind())),
        };
        if links.is_empty() {
            return if latest <= after {
                Ok(())
            } else {
                Err(format!(
                    "says epoch {latest} but gave no link after {after}"
                ))
            };
        }
        for (epoch, proof) in links {
            chain
                .push(ChainLink { epoch, proof })
                .map_err(|e| e.to_string())?;
        }
        if chain.latest().epoch() >= latest {
            return Ok(());
        }
    }
    Err("too many answers".into())
}
