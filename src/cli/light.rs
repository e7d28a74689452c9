//! `proof` and `checkpoint`: printing and files around `synchronicity_light::Client`, which
//! asks the members in order and returns only verified values. `proof` writes a proof file
//! that passed the full offline verification (as `verify`) against what was asked;
//! `checkpoint` prints the latest cosigned checkpoint proven consistent with the one
//! remembered in a state file, and on a split view (evidence only) writes both notes to an
//! evidence file. Members are reached over `/synchronicity/proof/2` (open to non-members,
//! rate limited).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use synchronicity_light::{CheckpointUpdate, LightError, ProofQuery, SplitView};
use synchronicity_net::Multiaddr;

use super::client::{ClientSetup, runtime, start};
use crate::log::{ConsistencyProof, CosignedCheckpoint};
use crate::node_dir::write_atomic;
use crate::protocol::Verdict;

/// Arguments of `proof`.
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// CRATE@VERSION (its default variant: default features, lib and bins, the committee's
    /// target, the lockfile shipped in the .crate where it ships one) or a request id.
    #[arg(required_unless_present = "refresh")]
    spec: Option<String>,
    /// Re-prove the entry of this (verified) proof file under the latest checkpoint: the
    /// same entry at the same index, cosigned by the current committee (with --chain, an
    /// old epoch's proof moves to the current one). Written over it unless --out.
    #[arg(long, value_name = "OLD", conflicts_with_all = ["spec", "with_inputs", "source_sha256"])]
    refresh: Option<PathBuf>,
    /// A member's address with its peer id (/ip4/…/tcp/…/p2p/…); several are tried in order.
    #[arg(long, required = true)]
    peer: Vec<Multiaddr>,
    /// The committee file to trust.
    #[arg(long)]
    trust: PathBuf,
    /// The committee chain from that genesis (`committee chain` writes it): a proof
    /// cosigned in any epoch it holds is accepted.
    #[arg(long, value_name = "FILE")]
    chain: Option<PathBuf>,
    /// Where to write the verified proof [default: CRATE-VERSION.tlog-proof].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also require the .crate file's sha256 (hex).
    #[arg(long, value_name = "HEX")]
    source_sha256: Option<String>,
    /// Also fetch the lockfile and the manifest the entry pins, check their sha256 and write
    /// them beside the proof (`X.Cargo.lock`, `X.manifest` for `X.tlog-proof`).
    #[arg(long)]
    with_inputs: bool,
    /// Write the proof even when the verdict is not reproduced (for forensics; the exit
    /// status is still 0 only for a verified proof).
    #[arg(long)]
    allow_unreproduced: bool,
}

/// Arguments of `checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// A member's address with its peer id; several are tried in order.
    #[arg(long, required = true)]
    peer: Vec<Multiaddr>,
    /// The committee file to trust.
    #[arg(long)]
    trust: PathBuf,
    /// The committee chain from that genesis: a checkpoint of any epoch it holds is
    /// accepted, each within its epoch's sizes.
    #[arg(long, value_name = "FILE")]
    chain: Option<PathBuf>,
    /// Remembers the last verified checkpoint; the next one must be consistent with it.
    #[arg(long)]
    state: Option<PathBuf>,
    /// A witness's verifier key (cosignature/v1); repeatable.
    #[arg(long, value_name = "VKEY")]
    witness: Vec<String>,
    /// How many of the --witness keys must have cosigned the checkpoint [default: none].
    #[arg(long, value_name = "K", default_value_t = 0)]
    witnesses_needed: usize,
}

/// Where `proof` writes the proof and, with `--with-inputs`, the texts beside it.
fn output_paths(spec: &str, out: Option<PathBuf>) -> (PathBuf, PathBuf, PathBuf) {
    let proof =
        out.unwrap_or_else(|| PathBuf::from(format!("{}.tlog-proof", spec.replace('@', "-"))));
    let name = proof
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("proof");
    let stem = name.strip_suffix(".tlog-proof").unwrap_or(name).to_string();
    let beside = |ext: &str| proof.with_file_name(format!("{stem}.{ext}"));
    (proof.clone(), beside("Cargo.lock"), beside("manifest"))
}

/// What `proof SPEC` asks for: `CRATE@VERSION`'s default variant or a request id.
fn query(spec: &str, source_sha256: Option<&str>) -> anyhow::Result<ProofQuery> {
    let hex32 = |s: &str| {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok().map(|()| out)
    };
    let q = match spec.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => ProofQuery::default_variant(n, v),
        _ => ProofQuery::request(hex32(spec).ok_or_else(|| {
            anyhow::anyhow!("{spec:?}: neither CRATE@VERSION nor a 64-hex-digit request id")
        })?),
    };
    Ok(match source_sha256 {
        Some(s) => q.with_source_sha256(
            hex32(s)
                .ok_or_else(|| anyhow::anyhow!("--source-sha256 {s:?}: expected 64 hex digits"))?,
        ),
        None => q,
    })
}

/// `proof`: the client asks each peer in turn for a proof that passes the full offline
/// check (a faulty peer is said, and the next is asked) and prefers a reproduced one.
/// Another verdict is written only with `--allow-unreproduced` (the exit status is
/// non-zero without it).
pub(super) fn proof(args: ProofArgs) -> anyhow::Result<()> {
    let committee = super::load_committee(&args.trust)?;
    let chain = args
        .chain
        .as_deref()
        .map(|c| super::client::read_chain(&committee, c))
        .transpose()?;
    let setup = ClientSetup {
        committee,
        chain,
        peers: args.peer.clone(),
    };
    if let Some(old) = &args.refresh {
        return refresh(old, args.out.as_deref(), &setup);
    }
    let spec = args.spec.clone().unwrap_or_default();
    let query = query(&spec, args.source_sha256.as_deref())?;
    let (out, lock_out, manifest_out) = output_paths(&spec, args.out.clone());
    let (mut files, record) = runtime()?.block_on(async {
        let client = start(&setup).await?;
        let result = async {
            let proof = client.proof(&query).await?;
            let verdict = proof.verdict();
            if verdict != Verdict::Reproduced && !args.allow_unreproduced {
                anyhow::bail!(
                    "{}: the group's verdict is {verdict:?}, not Reproduced; nothing written (--allow-unreproduced writes it)",
                    proof.record().spec()
                );
            }
            let (text, record) = proof.into_parts();
            let mut files = vec![(out.clone(), text.into_bytes())];
            if args.with_inputs {
                let lock = client.blob(&record.entry().request.lockfile_sha256).await?;
                files.push((lock_out.clone(), lock));
                if verdict == Verdict::Reproduced {
                    let m = client.blob(&record.entry().digest).await?;
                    files.push((manifest_out.clone(), m));
                }
            }
            Ok((files, record))
        }
        .await;
        client.shutdown().await;
        result
    })?;
    // Each file atomically (temp, fsync, rename); the proof last, so a crash leaves at
    // worst inputs without a proof, never a proof whose inputs are half written.
    files.rotate_left(1);
    for (path, bytes) in &files {
        write_atomic(path, bytes)?;
        println!("{}", path.display());
    }
    if record.entry().verdict != Verdict::Reproduced {
        eprintln!(
            "warning: {}: verdict {:?} (written because of --allow-unreproduced)",
            record.spec(),
            record.entry().verdict
        );
    }
    Ok(())
}

/// `proof --refresh OLD`: OLD verified offline (with the chain, if given), then the same
/// entry's proof under the latest checkpoint from the members, which must be the same leaf
/// at the same index under a checkpoint at least as large; written atomically.
fn refresh(old: &Path, out: Option<&Path>, setup: &ClientSetup) -> anyhow::Result<()> {
    use crate::verify::tlog::{MAX_PROOF_FILE_SIZE, ProofFile};
    use crate::verify::{CommitteeChain, Expected, LogEntry, verify_proof_in_chain};
    let meta = std::fs::metadata(old).with_context(|| old.display().to_string())?;
    if meta.len() > MAX_PROOF_FILE_SIZE as u64 {
        anyhow::bail!("{}: larger than {MAX_PROOF_FILE_SIZE} bytes", old.display());
    }
    let text = std::fs::read_to_string(old).with_context(|| old.display().to_string())?;
    let id = ProofFile::parse(&text)
        .ok()
        .and_then(|pf| pf.extra)
        .and_then(|e| LogEntry::decode(&e).ok())
        .map(|e| e.request.id())
        .ok_or_else(|| anyhow::anyhow!("{}: not a proof of a build entry", old.display()))?;
    let single;
    let chain = match &setup.chain {
        Some(c) => c,
        None => {
            single = CommitteeChain::single(setup.committee.trust_root().clone());
            &single
        }
    };
    let before = verify_proof_in_chain(&text, chain, &Expected::request_id(id))
        .with_context(|| format!("{}: rejected", old.display()))?;
    let fresh = runtime()?.block_on(async {
        let client = start(setup).await?;
        let result = client.proof(&ProofQuery::request(id)).await;
        client.shutdown().await;
        anyhow::Ok(result?)
    })?;
    let after = fresh.record();
    let (old_size, new_size) = (
        before.checkpoint().checkpoint().size,
        after.checkpoint().checkpoint().size,
    );
    if after.index() != before.index() || after.leaf_hash() != before.leaf_hash() {
        anyhow::bail!(
            "the members' proof of request {} is for entry {}, not entry {} of {}: another history",
            hex::encode(id),
            after.index(),
            before.index(),
            old.display()
        );
    }
    if new_size < old_size {
        anyhow::bail!(
            "the members' checkpoint ({new_size}) is older than the proof's ({old_size})"
        );
    }
    let (old_epoch, new_epoch) = (before.checkpoint_epoch(), after.checkpoint_epoch());
    let path = out.unwrap_or(old);
    write_atomic(path, fresh.text().as_bytes())?;
    eprintln!(
        "{}: entry {} re-proven under the checkpoint of size {new_size} (epoch {new_epoch}; was {old_size}, epoch {old_epoch})",
        path.display(),
        before.index()
    );
    Ok(())
}

/// Writes both notes of a split view to an evidence file beside `state` and returns the
/// error to report.
fn split_view(state: &Path, split: &SplitView) -> anyhow::Error {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = state.with_file_name(format!(
        "{}.split-view.{secs}",
        state
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("checkpoint")
    ));
    let by = split
        .served_by
        .as_ref()
        .map_or_else(|| "an unknown member".to_string(), Multiaddr::to_string);
    let text = format!(
        "synchronicity/split-view-evidence/v1\n{}\n\n# remembered checkpoint\n{}\n# checkpoint served by {by}\n{}",
        split.why,
        split.held.note(),
        split.served.note()
    );
    match write_atomic(&path, text.as_bytes()) {
        Ok(()) => anyhow::anyhow!(
            "SPLIT VIEW: {}; both cosigned checkpoints are in {}",
            split.why,
            path.display()
        ),
        Err(e) => anyhow::anyhow!(
            "SPLIT VIEW: {}; writing the evidence to {} failed: {e}",
            split.why,
            path.display()
        ),
    }
}

/// `checkpoint`: the client's latest cosigned checkpoint that meets the witness policy and
/// is proven consistent with the remembered one (a wrong, empty or stale answer is a faulty
/// peer, said). SPLIT VIEW (exit 1, evidence written) only on evidence: two validly cosigned
/// checkpoints of one size with different roots, or a validly cosigned checkpoint that no
/// reachable member can prove consistent with the remembered one.
pub(super) fn checkpoint(args: CheckpointArgs) -> anyhow::Result<()> {
    let committee = super::load_committee(&args.trust)?;
    let chain = match &args.chain {
        Some(c) => super::client::read_chain(&committee, c)?,
        None => crate::verify::CommitteeChain::single(committee.trust_root().clone()),
    };
    let old = match &args.state {
        Some(p) if p.exists() => {
            let note =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Some(
                chain
                    .verify_checkpoint(&note)
                    .map(|(cp, _)| cp)
                    .with_context(|| format!("{}: remembered checkpoint", p.display()))?,
            )
        }
        _ => None,
    };
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from("checkpoint"));
    let witnesses = |cp: &CosignedCheckpoint| {
        super::verify::check_witnesses(cp.note(), &args.witness, args.witnesses_needed)
            .map_err(|e| format!("{e:#}"))
    };
    let setup = ClientSetup {
        committee,
        chain: args.chain.is_some().then_some(chain),
        peers: args.peer.clone(),
    };
    let outcome = runtime()?.block_on(async {
        let client = start(&setup).await?;
        let result = client.checkpoint(old.as_ref(), &witnesses).await;
        client.shutdown().await;
        anyhow::Ok(result)
    })?;
    let CheckpointUpdate {
        checkpoint: new,
        proof,
    } = match outcome {
        Ok(u) => u,
        Err(LightError::SplitView(split)) => return Err(split_view(&state, &split)),
        Err(e) => return Err(e.into()),
    };
    match &old {
        Some(o) => print!(
            "{}",
            ConsistencyProof {
                old: o.checkpoint().size,
                proof,
                checkpoint: new.note().to_string(),
            }
            .format()
        ),
        None => print!("{}", new.note()),
    }
    if let Some(p) = &args.state {
        write_atomic(p, new.note().as_bytes())?;
    }
    Ok(())
}
