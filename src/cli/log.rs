//! `synchronicity log info|fsck` and `synchronicity verify` (offline proof verification).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;

use crate::log::{self, LogStore, ProofFile, STORE_FILE, SignedNote};

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

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The proof file (.tlog-proof).
    file: PathBuf,
    /// The committee file to trust (origin, members, threshold).
    #[arg(long)]
    trust: PathBuf,
    /// An artifact file to check against the attested manifest (by sha256 and file name);
    /// repeat for several.
    #[arg(long)]
    artifact: Vec<PathBuf>,
    /// Print every piece (signed message, signer keys, aggregate, index, size, root, leaf
    /// hash, the decoded entry) as JSON so another implementation can re-check it.
    #[arg(long)]
    json: bool,
}

/// Checks `path` against the manifest: its sha256 must be listed under its file name.
fn check_artifact(path: &Path, manifest: &crate::build::Manifest) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let sum = crate::crypto::sha256(&bytes);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let listed: Vec<&str> = manifest.files().map(|(p, _)| p).collect();
    match manifest
        .files()
        .find(|(p, _)| p.rsplit('/').next() == Some(name))
    {
        Some((p, h)) if *h == sum => Ok(p.to_string()),
        Some((p, h)) => bail!(
            "{}: sha256 {} differs from the attested {} for {p}",
            path.display(),
            hex::encode(sum),
            hex::encode(h)
        ),
        None => bail!(
            "{}: no file named {name} in the attested manifest (it lists {})",
            path.display(),
            listed.join(", ")
        ),
    }
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
    if args.json {
        let v = serde_json::json!({
            "size": size,
            "root": B64.encode(root),
            "root_hex": hex::encode(root),
            "applied_height": height,
            "latest_checkpoint": latest,
            "latest_checkpoint_size": latest_cp.as_ref().map(|c| c.size),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("size            {size}");
        println!("root            {}", B64.encode(root));
        println!(
            "applied height  {}",
            height.map_or("none".into(), |h| h.to_string())
        );
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
        "{}: consistent: {} entries, {} stored hashes, {} checkpoints{}, root {}",
        dir.display(),
        r.size,
        r.hashes,
        r.checkpoints,
        if committee.is_some() {
            " (signatures verified)"
        } else {
            ""
        },
        B64.encode(r.root)
    );
    Ok(())
}

pub(super) fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let committee = super::load_committee(&args.trust)?;
    let meta = std::fs::metadata(&args.file).with_context(|| args.file.display().to_string())?;
    if meta.len() > log::MAX_PROOF_FILE_SIZE as u64 {
        bail!(
            "{}: larger than the 4 MiB proof file limit",
            args.file.display()
        );
    }
    let text =
        std::fs::read_to_string(&args.file).with_context(|| args.file.display().to_string())?;
    let pf = ProofFile::parse(&text).with_context(|| args.file.display().to_string())?;
    let v = pf
        .verify(&committee)
        .with_context(|| format!("{}: rejected", args.file.display()))?;
    let cp = v.checkpoint.checkpoint();
    let signers: Vec<usize> = v.checkpoint.signature().signers.iter().collect();
    // The entry: a reproduced build, attested by at least t members, naming its manifest.
    let ve = crate::protocol::verify_entry(&v.entry, &committee)
        .with_context(|| format!("{}: rejected", args.file.display()))?;
    let mut checked = Vec::new();
    for a in &args.artifact {
        checked.push((a.clone(), check_artifact(a, &ve.manifest)?));
    }
    let e = &ve.entry;
    let member_name = |i: usize| {
        committee
            .members()
            .get(i)
            .map_or("?".to_string(), |m| m.name.clone())
    };
    if args.json {
        let signer_json: Vec<_> = signers
            .iter()
            .map(|&i| {
                let m = &committee.members()[i];
                serde_json::json!({
                    "index": i,
                    "name": m.name,
                    "bls_public_key": hex::encode(m.bls_public_key.to_bytes()),
                })
            })
            .collect();
        let out = serde_json::json!({
            "valid": true,
            "origin": cp.origin,
            "ciphersuite": String::from_utf8_lossy(crate::crypto::SIGNATURE_DST),
            "signed_message": v.checkpoint.checkpoint().to_body(),
            "key_id": hex::encode(committee.key_id()),
            "committee_digest": hex::encode(committee.digest()),
            "threshold": committee.threshold(),
            "members": committee.len(),
            "signer_bitmap": hex::encode(v.checkpoint.signature().signers.as_bytes()),
            "signers": signer_json,
            "aggregate_signature": hex::encode(v.checkpoint.signature().aggregate.to_bytes()),
            "index": v.index,
            "size": cp.size,
            "root": hex::encode(cp.root),
            "leaf_hash": hex::encode(v.leaf_hash),
            "inclusion_proof": v.proof.iter().map(hex::encode).collect::<Vec<_>>(),
            "entry": B64.encode(&v.entry),
            "build": {
                "crate": e.request.krate,
                "version": e.request.version,
                "request_id": hex::encode(e.request.id()),
                "source_sha256": hex::encode(&e.request.source_sha256),
                "toolchain": e.request.toolchain,
                "target": e.request.target,
                "profile": e.request.profile,
                "verdict": format!("{:?}", e.verdict),
                "manifest_digest": hex::encode(&e.digest),
                "manifest": e.manifest,
                "attesters": ve.signers.iter().map(|&i| member_name(i)).collect::<Vec<_>>(),
                "dissenters": e.dissenters.iter().map(|d| serde_json::json!({"member": member_name(d.member as usize), "digest": hex::encode(&d.digest)})).collect::<Vec<_>>(),
                "silent": e.silent.iter().map(|&m| member_name(m as usize)).collect::<Vec<_>>(),
                "misbehaviour": e.misbehaviour.iter().map(|(m, k)| format!("{} {k:?}", member_name(*m as usize))).collect::<Vec<_>>(),
                "height": e.height,
            },
            "artifacts": checked.iter().map(|(p, m)| serde_json::json!({"file": p.display().to_string(), "manifest_path": m})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let names: Vec<&str> = signers
            .iter()
            .map(|&i| committee.members()[i].name.as_str())
            .collect();
        println!(
            "proof verified: entry {} of {} in {}",
            v.index, cp.size, cp.origin
        );
        println!("  root       {}", B64.encode(cp.root));
        println!("  leaf hash  {}", hex::encode(v.leaf_hash));
        println!(
            "  cosigned by {} of {} (threshold {}): {}",
            signers.len(),
            committee.len(),
            committee.threshold(),
            names.join(" ")
        );
        println!(
            "  build      {}@{} ({}, {}, {}): {:?} by {} of {}: {}",
            e.request.krate,
            e.request.version,
            e.request.toolchain,
            e.request.target,
            e.request.profile,
            e.verdict,
            ve.signers.len(),
            committee.len(),
            ve.signers
                .iter()
                .map(|&i| member_name(i))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for d in &e.dissenters {
            println!(
                "  dissenter  {} got {}",
                member_name(d.member as usize),
                hex::encode(&d.digest)
            );
        }
        for m in &e.silent {
            println!("  silent     {}", member_name(*m as usize));
        }
        for (m, k) in &e.misbehaviour {
            println!("  misbehaved {} {k:?}", member_name(*m as usize));
        }
        println!("  manifest   {}", hex::encode(&e.digest));
        for (p, m) in &checked {
            println!("  artifact   {} matches {m}", p.display());
        }
    }
    Ok(())
}
