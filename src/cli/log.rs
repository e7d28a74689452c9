//! `synchronicity log info|fsck`: inspect or check a (stopped) node's log store.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;

use crate::log::{self, LogStore, STORE_FILE, SignedNote};

/// Arguments of `log info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Log store directory (holding log.redb), or a node directory with a `log/` store.
    #[arg(long)]
    store: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `log fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Log store directory (holding log.redb), or a node directory with a `log/` store.
    #[arg(long)]
    store: PathBuf,
    /// Also verify every stored checkpoint's threshold signature against this committee.
    #[arg(long)]
    trust: Option<PathBuf>,
}

/// `DIR/log.redb`, else `DIR/log/log.redb`.
fn store_dir(p: &Path) -> PathBuf {
    if !p.join(STORE_FILE).exists() && p.join("log").join(STORE_FILE).exists() {
        return p.join("log");
    }
    p.to_path_buf()
}

pub(super) fn info(args: InfoArgs) -> anyhow::Result<()> {
    let store = LogStore::open_existing(&store_dir(&args.store))?;
    let (size, root) = store.head()?;
    let height = store.applied_height()?;
    let latest = store.latest_checkpoint()?;
    let latest_cp = latest
        .as_deref()
        .map(|n| {
            SignedNote::parse(n)
                .map_err(anyhow::Error::from)
                .and_then(|s| Ok(log::Checkpoint::parse(&s.text)?))
        })
        .transpose()
        .context("stored checkpoint")?;
    let index = store.index_roots(size)?;
    if args.json {
        let v = serde_json::json!({
            "size": size,
            "root": B64.encode(root),
            "root_hex": hex::encode(root),
            "applied_height": height,
            "latest_checkpoint": latest,
            "latest_checkpoint_size": latest_cp.as_ref().map(|c| c.size),
            "index_roots": index.map(|r| serde_json::json!({
                "variants": B64.encode(r.variants),
                "crates": B64.encode(r.crates),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("size            {size}");
        println!("root            {}", B64.encode(root));
        println!(
            "applied height  {}",
            height.map_or("none".into(), |h| h.to_string())
        );
        match index {
            Some(r) => println!("index           {}", r.extension_line()),
            None => println!("index           none at this size"),
        }
        match latest {
            Some(note) => print!("latest cosigned checkpoint:\n{note}"),
            None => println!("latest cosigned checkpoint: none"),
        }
    }
    Ok(())
}

pub(super) fn fsck(args: FsckArgs) -> anyhow::Result<()> {
    let committee = args.trust.as_ref().map(super::load_committee).transpose()?;
    let dir = store_dir(&args.store);
    let store = LogStore::open_existing(&dir)?;
    let r = log::fsck(&store, committee.as_ref())
        .with_context(|| format!("{}: inconsistent", dir.display()))?;
    println!(
        "{}: consistent: {} entries, {} stored hashes, {} checkpoints{}, root {}, {}",
        dir.display(),
        r.size,
        r.hashes,
        r.checkpoints,
        if committee.is_some() {
            " (signatures verified)"
        } else {
            ""
        },
        B64.encode(r.root),
        match r.index {
            Some(roots) => format!("index recomputed: {}", roots.extension_line()),
            None => "no index roots at this size yet".into(),
        }
    );
    Ok(())
}
