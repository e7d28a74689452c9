//! `synchronicity verify`: the offline check of a proof file, bound to what the user asked
//! (`--crate` or `--request`), through `synchronicity-verify` alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;

use crate::verify::epoch::MAX_CHAIN_FILE_SIZE;
use crate::verify::tlog::MAX_PROOF_FILE_SIZE;
use crate::verify::{
    Committee, CommitteeChain, Expected, Manifest, VerifiedRecord, verify_proof,
    verify_proof_in_chain,
};

/// Arguments of `verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["krate", "request"])))]
pub struct VerifyArgs {
    /// The proof file (.tlog-proof).
    file: PathBuf,
    /// The committee file to trust (origin, members, threshold): the genesis, or with no
    /// --chain the committee of the epoch that cosigned the proof.
    #[arg(long)]
    trust: PathBuf,
    /// The committee chain from the genesis (--trust) to the epoch that cosigned the proof
    /// (`committee chain` writes it): every link is verified with the previous committee's
    /// keys, and a checkpoint of a retired committee beyond its handoff is refused.
    #[arg(long, value_name = "FILE")]
    chain: Option<PathBuf>,
    /// The crate the proof must be about, as CRATE@VERSION.
    #[arg(long = "crate", value_name = "CRATE@VERSION")]
    krate: Option<String>,
    /// The exact request the proof must be about (64 hex digits).
    #[arg(long, value_name = "ID")]
    request: Option<String>,
    /// Also require the .crate file's sha256 (hex, as a Cargo.lock `checksum`).
    #[arg(long, value_name = "HEX")]
    source_sha256: Option<String>,
    /// An artifact to check by sha256 AND path: `FILE` matches the one manifest path with
    /// that file name, `MANIFEST_PATH=FILE` that exact path. Needs --manifest. Repeatable.
    #[arg(long, value_name = "[MANIFEST_PATH=]FILE")]
    artifact: Vec<String>,
    /// The manifest text the entry pins by digest (written by `proof --with-inputs`).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The Cargo.lock the entry's request pins by sha256 (written by `proof --with-inputs`).
    #[arg(long, value_name = "FILE")]
    lockfile: Option<PathBuf>,
    /// A witness's verifier key (`name+id+key`, cosignature/v1); repeatable. With
    /// --witnesses-needed, the proof's checkpoint must carry that many of their cosignatures.
    #[arg(long, value_name = "VKEY")]
    pub witness: Vec<String>,
    /// How many of the --witness keys must have cosigned the checkpoint (tlog-policy's
    /// quorum) [default: none].
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub witnesses_needed: usize,
    /// Print every piece (signed messages, signer keys, aggregates, index, size, root, leaf
    /// hash, the decoded entry) as JSON so another implementation can re-check it.
    #[arg(long)]
    json: bool,
}

/// The witness policy: at least `needed` DISTINCT witnesses of `vkeys` cosigned `note`. A
/// witness is its (name, key id), as a note names its signer: the same key given twice, or
/// two keys under one name and id, count once, so `--witness A --witness A
/// --witnesses-needed 2` is never met by A alone.
pub(super) fn check_witnesses(note: &str, vkeys: &[String], needed: usize) -> anyhow::Result<()> {
    if needed == 0 {
        return Ok(());
    }
    let mut keys: Vec<crate::witness::WitnessKey> = Vec::new();
    for k in vkeys {
        let key = crate::witness::WitnessKey::parse(k).map_err(anyhow::Error::msg)?;
        if !keys
            .iter()
            .any(|seen| seen.name == key.name && seen.key_id == key.key_id)
        {
            keys.push(key);
        }
    }
    if needed > keys.len() {
        bail!(
            "--witnesses-needed {needed} but only {} distinct --witness keys given (a witness counts once by name and key id)",
            keys.len()
        );
    }
    let have = crate::witness::count_witnesses(note, &keys).map_err(anyhow::Error::msg)?;
    if have < needed {
        bail!(
            "the checkpoint carries {have} valid cosignature(s) of the given witnesses, {needed} needed"
        );
    }
    Ok(())
}

/// Parses `CRATE@VERSION` / a request id / a sha256 into what the proof must be about.
pub(super) fn expected(
    krate: Option<&str>,
    request: Option<&str>,
    source_sha256: Option<&str>,
) -> anyhow::Result<Expected> {
    let mut e = match (krate, request) {
        (Some(spec), _) => match spec.split_once('@') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() => Expected::crate_version(n, v),
            _ => bail!("--crate {spec:?}: expected CRATE@VERSION"),
        },
        (None, Some(id)) => Expected::request_id(hex32(id, "--request")?),
        (None, None) => {
            bail!("say what the proof must be about: --crate CRATE@VERSION or --request ID")
        }
    };
    if let Some(s) = source_sha256 {
        e = e.with_source_sha256(hex32(s, "--source-sha256")?);
    }
    Ok(e)
}

fn hex32(s: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| anyhow::anyhow!("{what} {s:?}: expected 64 hex digits"))?;
    Ok(out)
}

fn read_text(path: &Path, max: usize) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
    if meta.len() > max as u64 {
        bail!("{}: larger than {max} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| path.display().to_string())
}

/// Checks each `[MANIFEST_PATH=]FILE` against `manifest`; returns (file, manifest path).
fn check_artifacts(specs: &[String], manifest: &Manifest) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for spec in specs {
        let (path_in_manifest, file) = match spec.split_once('=') {
            Some((p, f)) if !p.is_empty() && !f.is_empty() => (Some(p), f),
            _ => (None, spec.as_str()),
        };
        let bytes = std::fs::read(file).with_context(|| file.to_string())?;
        let name = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let matched = manifest
            .check_artifact(path_in_manifest, name, &bytes)
            .with_context(|| file.to_string())?;
        out.push((file.to_string(), matched));
    }
    Ok(out)
}

/// The trust root and, with `chain`, the verified chain from it (each link checked with
/// the previous committee's keys). Errors name the file.
pub(super) fn load_chain(trust: &PathBuf, chain: Option<&Path>) -> anyhow::Result<CommitteeChain> {
    let genesis = super::load_trust_root(trust)?;
    let Some(path) = chain else {
        // One committee, of any epoch: the chain of that committee alone.
        return Ok(CommitteeChain::single(genesis));
    };
    let text = read_text(path, MAX_CHAIN_FILE_SIZE)?;
    CommitteeChain::verify(genesis, &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `verify`.
pub(super) fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let chain = load_chain(&args.trust, args.chain.as_deref())?;
    let expected = expected(
        args.krate.as_deref(),
        args.request.as_deref(),
        args.source_sha256.as_deref(),
    )?;
    if !args.artifact.is_empty() && args.manifest.is_none() {
        bail!(
            "--artifact needs the attested manifest text: pass --manifest FILE (`synchronicity proof --with-inputs` writes it)"
        );
    }
    let file = args.file.display().to_string();
    let text = read_text(&args.file, MAX_PROOF_FILE_SIZE)?;
    // The checkpoint's cosigners vouch for the attestation; the command re-checks the
    // attesters' own signature too (one more BLS check: well under a millisecond).
    let record = if args.chain.is_some() {
        verify_proof_in_chain(&text, &chain, &expected)
    } else {
        verify_proof(&text, chain.latest(), &expected)
    }
    .with_context(|| format!("{file}: rejected"))?;
    // Both epochs are in the chain: the record was verified against it.
    let cosigning = chain
        .committee(record.checkpoint_epoch())
        .context("the checkpoint's epoch is in the chain")?;
    let attesting = chain
        .committee(record.entry_epoch())
        .context("the entry's epoch is in the chain")?;
    record
        .check_attestation(attesting)
        .with_context(|| format!("{file}: rejected"))?;
    let committees = Committees {
        cosigning,
        attesting,
    };
    check_witnesses(
        record.checkpoint().note(),
        &args.witness,
        args.witnesses_needed,
    )
    .with_context(|| format!("{file}: rejected"))?;
    if let Some(p) = &args.lockfile {
        record
            .check_lockfile(&read_text(p, crate::request::MAX_LOCKFILE_SIZE)?)
            .with_context(|| p.display().to_string())?;
    }
    let build = record
        .clone()
        .require_reproduced()
        .with_context(|| format!("{file}: rejected"))?;
    let mut checked = Vec::new();
    let mut manifest_text = None;
    if let Some(p) = &args.manifest {
        let bound = crate::verify::manifest::manifest_bound(&record.entry().request);
        let t = read_text(p, bound)?;
        let manifest = build
            .manifest(&t)
            .with_context(|| p.display().to_string())?;
        checked = check_artifacts(&args.artifact, &manifest)?;
        manifest_text = Some(t);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(&record, &committees, manifest_text, &checked))?
        );
    } else {
        print_text(&record, &committees, &checked);
    }
    Ok(())
}

fn member_name(c: &Committee, i: usize) -> String {
    c.members().get(i).map_or("?".into(), |m| m.name.clone())
}

/// The committees a record names members of: the checkpoint's cosigners are `cosigning`'s,
/// the entry's attesters, dissenters and silent members `attesting`'s (the same committee
/// unless the group changed its committee between the two).
pub(super) struct Committees<'c> {
    cosigning: &'c Committee,
    attesting: &'c Committee,
}

/// What `verify` prints, one fact a line.
fn print_text(r: &VerifiedRecord, cs: &Committees<'_>, checked: &[(String, String)]) {
    let cp = r.checkpoint().checkpoint();
    let e = r.entry();
    let (k, c) = (cs.cosigning, cs.attesting);
    let cosigners: Vec<String> = r
        .checkpoint()
        .signature()
        .signers
        .iter()
        .map(|i| member_name(k, i))
        .collect();
    println!(
        "proof verified: entry {} of {} in {}",
        r.index(),
        cp.size,
        cp.origin
    );
    println!("  root       {}", B64.encode(cp.root));
    println!("  leaf hash  {}", hex::encode(r.leaf_hash()));
    println!(
        "  cosigned by {} of {} (threshold {}, epoch {}): {}",
        cosigners.len(),
        k.len(),
        k.threshold(),
        k.epoch(),
        cosigners.join(" ")
    );
    let variant = e.request.variant_label();
    println!(
        "  build      {}{} ({}, {}, {}): {:?} by {} of {}: {}",
        e.request.spec(),
        if variant.is_empty() {
            String::new()
        } else {
            format!(" [{variant}]")
        },
        e.request.toolchain,
        e.request.target,
        e.request.profile,
        e.verdict,
        r.attesters().len(),
        c.len(),
        r.attesters()
            .iter()
            .map(|&i| member_name(c, i))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if e.epoch != k.epoch() {
        println!("  attested   in epoch {}", e.epoch);
    }
    println!("  request    {}", hex::encode(e.request.id()));
    println!("  source     {}", hex::encode(&e.request.source_sha256));
    for d in &e.dissenters {
        println!(
            "  dissenter  {} got {}",
            member_name(c, d.member as usize),
            hex::encode(&d.digest)
        );
    }
    for m in &e.silent {
        println!("  silent     {}", member_name(c, *m as usize));
    }
    for (m, k) in &e.misbehaviour {
        println!("  misbehaved {} {k:?}", member_name(c, *m as usize));
    }
    println!("  manifest   {}", hex::encode(&e.digest));
    for (p, m) in checked {
        println!("  artifact   {p} matches {m}");
    }
}

fn json(
    r: &VerifiedRecord,
    cs: &Committees<'_>,
    manifest: Option<String>,
    checked: &[(String, String)],
) -> serde_json::Value {
    let (k, c) = (cs.cosigning, cs.attesting);
    let cp = r.checkpoint().checkpoint();
    let e = r.entry();
    let sig = r.checkpoint().signature();
    let signer_json: Vec<_> = sig
        .signers
        .iter()
        .map(|i| {
            let m = &k.members()[i];
            serde_json::json!({
                "index": i,
                "name": m.name,
                "bls_public_key": hex::encode(m.bls_public_key.to_bytes()),
            })
        })
        .collect();
    let build = serde_json::json!({
        "crate": e.request.krate,
        "version": e.request.version,
        "request_id": hex::encode(e.request.id()),
        "variant": e.request.variant_label(),
        "default_variant": e.request.is_default_variant_for(&c.build().target),
        "lockfile_shipped": e.request.lockfile_shipped,
        "attempt": e.request.attempt,
        "source_sha256": hex::encode(&e.request.source_sha256),
        "lockfile_sha256": hex::encode(&e.request.lockfile_sha256),
        "features": e.request.features,
        "toolchain": e.request.toolchain,
        "target": e.request.target,
        "profile": e.request.profile,
        "verdict": format!("{:?}", e.verdict),
        "manifest_digest": hex::encode(&e.digest),
        "manifest": manifest,
        "attestation_statement": e.statement(c.origin()),
        "attestation": hex::encode(&e.attestation),
        "attesters": r.attesters().iter().map(|&i| member_name(c, i)).collect::<Vec<_>>(),
        "dissenters": e.dissenters.iter().map(|d| serde_json::json!({"member": member_name(c, d.member as usize), "digest": hex::encode(&d.digest)})).collect::<Vec<_>>(),
        "silent": e.silent.iter().map(|&m| member_name(c, m as usize)).collect::<Vec<_>>(),
        "misbehaviour": e.misbehaviour.iter().map(|(m, k)| format!("{} {k:?}", member_name(c, *m as usize))).collect::<Vec<_>>(),
        "height": e.height,
    });
    let epochs = serde_json::json!({
        "checkpoint": k.epoch(),
        "entry": e.epoch,
    });
    serde_json::json!({
        "valid": true,
        "origin": cp.origin,
        "ciphersuite": String::from_utf8_lossy(crate::crypto::SIGNATURE_DST),
        "signed_message": cp.to_body(),
        "key_id": hex::encode(k.key_id()),
        "committee_digest": hex::encode(k.digest()),
        "epochs": epochs,
        "threshold": k.threshold(),
        "members": k.len(),
        "signer_bitmap": hex::encode(sig.signers.as_bytes()),
        "signers": signer_json,
        "aggregate_signature": hex::encode(sig.aggregate.to_bytes()),
        "index": r.index(),
        "size": cp.size,
        "root": hex::encode(cp.root),
        "leaf_hash": hex::encode(r.leaf_hash()),
        "inclusion_proof": r.inclusion_proof().iter().map(hex::encode).collect::<Vec<_>>(),
        "entry": B64.encode(r.entry_bytes()),
        "build": build,
        "artifacts": checked.iter().map(|(p, m)| serde_json::json!({"file": p, "manifest_path": m})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::SignedNote;
    use crate::witness::{WitnessKey, cosignature_line, cosignature_message};

    /// A note over `text` cosigned by each of `witnesses`, and their verifier keys.
    fn cosigned(text: &str, witnesses: &[&str]) -> (String, Vec<String>) {
        let mut note = SignedNote {
            text: text.into(),
            signatures: Vec::new(),
        };
        let mut vkeys = Vec::new();
        for name in witnesses {
            let id = crate::crypto::NodeIdentity::generate();
            let key = WitnessKey::new(name, id.public_key_bytes());
            let sig = id.sign(cosignature_message(text, 1700).as_bytes());
            note.signatures.push(cosignature_line(&key, 1700, &sig));
            vkeys.push(key.vkey());
        }
        (note.format(), vkeys)
    }

    #[test]
    fn a_witness_named_twice_counts_once() {
        let (note, keys) = cosigned("origin\n5\nroot\n", &["a.example", "b.example"]);
        let a = keys[0].clone();
        // A alone, named twice: one witness, so a policy of two is not met.
        let err = check_witnesses(&note, &[a.clone(), a.clone()], 2).unwrap_err();
        assert!(err.to_string().contains("only 1 distinct"), "{err}");
        assert!(check_witnesses(&note, &[a.clone(), a.clone()], 1).is_ok());
        // Two distinct witnesses that both cosigned meet it.
        assert!(check_witnesses(&note, &[a.clone(), keys[1].clone(), a], 2).is_ok());
        // Two given, one of them did not cosign: not met.
        let (_, other) = cosigned("origin\n5\nroot\n", &["c.example"]);
        let err = check_witnesses(&note, &[keys[0].clone(), other[0].clone()], 2).unwrap_err();
        assert!(err.to_string().contains("carries 1 valid"), "{err}");
    }
}
