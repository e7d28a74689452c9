//! The light client: `proof` fetches a proof file from any member and runs the full offline
//! verification (as `verify`) before writing it; `checkpoint` fetches the latest cosigned
//! checkpoint and proves it consistent with the one remembered in a state file. A peer's
//! bad answer is a faulty peer (said, next peer); a split view is reported only on
//! evidence. Members are reached over `/synchronicity/proof/2` (open to non-members, rate
//! limited).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_net::Multiaddr;

use super::client::{Client, describe, runtime};
use super::default_variant::{self, Lockfile};
use crate::log::{ConsistencyProof, CosignedCheckpoint, merkle};
use crate::node::wire::{LightRequest, LightResponse};
use crate::node_dir::write_atomic;
use crate::protocol::Verdict;
use crate::verify::{VerifiedRecord, verify_proof};

/// Arguments of `proof`.
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// CRATE@VERSION (its default variant: default features, lib and bins, the committee's
    /// target, the lockfile shipped in the .crate where it ships one) or a request id.
    spec: String,
    /// A member's address with its peer id (/ip4/…/tcp/…/p2p/…); several are tried in order.
    #[arg(long, required = true)]
    peer: Vec<Multiaddr>,
    /// The committee file to trust.
    #[arg(long)]
    trust: PathBuf,
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

/// `proof`: asks each peer in turn for a proof that passes the full offline check against
/// what was asked; a peer whose answer fails is a faulty peer (said, and the next is asked).
/// A verified proof with another verdict than reproduced is kept while later peers are
/// asked (one of them may have the reproduced attempt); without `--allow-unreproduced`
/// nothing is written for it and the exit status is non-zero.
pub(super) fn proof(args: ProofArgs) -> anyhow::Result<()> {
    let committee = super::load_committee(&args.trust)?;
    let by_crate = args.spec.contains('@');
    let expected = if by_crate {
        super::verify::expected(Some(&args.spec), None, args.source_sha256.as_deref())?
    } else {
        super::verify::expected(None, Some(&args.spec), args.source_sha256.as_deref())?
    };
    let (out, lock_out, manifest_out) = output_paths(&args.spec, args.out.clone());
    let req = LightRequest::Proof {
        key: args.spec.clone(),
    };
    runtime()?.block_on(async {
        let client = Client::start(&committee).await?;
        let mut unreproduced: Option<(String, VerifiedRecord)> = None;
        let mut chosen: Option<(String, VerifiedRecord)> = None;
        let mut generated: Option<(String, VerifiedRecord)> = None;
        for addr in &args.peer {
            let answer = async {
                let text = match client.ask(addr, &req).await? {
                    LightResponse::Proof(t) => t,
                    other => bail!("{}", describe(&other)),
                };
                let record = verify_proof(&text, &committee, &expected)?;
                record.check_attestation(&committee)?;
                let lockfile = if by_crate {
                    default_variant::check(&record.entry().request, &committee)
                        .map_err(anyhow::Error::msg)?
                } else {
                    Lockfile::Shipped // a request id names its own variant
                };
                Ok((text, record, lockfile))
            }
            .await;
            match answer {
                Ok((text, record, Lockfile::Shipped))
                    if record.entry().verdict == Verdict::Reproduced =>
                {
                    chosen = Some((text, record));
                    break;
                }
                // Kept while the other peers are asked for one with the shipped lockfile.
                Ok((text, record, Lockfile::Generated))
                    if record.entry().verdict == Verdict::Reproduced =>
                {
                    generated.get_or_insert((text, record));
                }
                Ok((text, record, _)) => {
                    eprintln!(
                        "warning: {addr}: the verified entry's verdict is {:?}; asking the next peer",
                        record.entry().verdict
                    );
                    unreproduced.get_or_insert((text, record));
                }
                Err(e) => eprintln!("warning: {addr}: {e:#}; trying the next peer"),
            }
        }
        if chosen.is_none()
            && let Some(g) = generated
        {
            eprintln!("{}", default_variant::generated_note(&args.spec));
            chosen = Some(g);
        }
        let result = match (chosen, unreproduced) {
            (Some(c), _) => Ok(c),
            (None, Some(u)) if args.allow_unreproduced => Ok(u),
            (None, Some((_, r))) => Err(anyhow::anyhow!(
                "{}: the group's verdict is {:?}, not Reproduced; nothing written (--allow-unreproduced writes it)",
                r.spec(),
                r.entry().verdict
            )),
            (None, None) => Err(anyhow::anyhow!("no peer gave a proof that verifies")),
        };
        let (text, record) = match result {
            Ok(v) => v,
            Err(e) => {
                client.shutdown().await;
                return Err(e);
            }
        };
        let mut files = vec![(out.clone(), text.into_bytes())];
        if args.with_inputs {
            let lock = client.blob(&args.peer, &record.entry().request.lockfile_sha256).await?;
            files.push((lock_out.clone(), lock));
            if record.entry().verdict == Verdict::Reproduced {
                let m = client.blob(&args.peer, &record.entry().digest).await?;
                files.push((manifest_out.clone(), m));
            }
        }
        client.shutdown().await;
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
    })
}

/// A checkpoint answer from one peer, verified.
struct Seen {
    addr: Multiaddr,
    checkpoint: CosignedCheckpoint,
}

/// Writes both notes of a split view to an evidence file and returns the error to report.
fn split_view(state: &Path, a: &CosignedCheckpoint, b: &Seen, why: &str) -> anyhow::Error {
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
    let text = format!(
        "synchronicity/split-view-evidence/v1\n{why}\n\n# remembered checkpoint\n{}\n# checkpoint served by {}\n{}",
        a.note(),
        b.addr,
        b.checkpoint.note()
    );
    match write_atomic(&path, text.as_bytes()) {
        Ok(()) => anyhow::anyhow!(
            "SPLIT VIEW: {why}; both cosigned checkpoints are in {}",
            path.display()
        ),
        Err(e) => anyhow::anyhow!(
            "SPLIT VIEW: {why}; writing the evidence to {} failed: {e}",
            path.display()
        ),
    }
}

fn hashes(proof: Vec<serde_bytes::ByteBuf>) -> anyhow::Result<Vec<merkle::Hash>> {
    proof
        .iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("faulty peer: a proof hash is not 32 bytes"))
        })
        .collect()
}

/// `checkpoint`. A wrong, empty or stale answer is a FAULTY PEER (said, next peer asked).
/// SPLIT VIEW (exit 1, evidence written) only on evidence: two validly cosigned checkpoints
/// of one size with different roots, or a validly cosigned checkpoint that no reachable
/// member can prove consistent with the remembered one.
pub(super) fn checkpoint(args: CheckpointArgs) -> anyhow::Result<()> {
    let committee = super::load_committee(&args.trust)?;
    let old = match &args.state {
        Some(p) if p.exists() => {
            let note =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Some(
                CosignedCheckpoint::verify(&note, &committee)
                    .with_context(|| format!("{}: remembered checkpoint", p.display()))?,
            )
        }
        _ => None,
    };
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from("checkpoint"));
    let old_size = old.as_ref().map(|c| c.checkpoint().size);
    let req = LightRequest::Checkpoint { old_size };
    let outcome: anyhow::Result<(CosignedCheckpoint, Vec<merkle::Hash>)> = runtime()?.block_on(async {
        let client = Client::start(&committee).await?;
        let result = async {
            // Validly cosigned checkpoints whose consistency proof failed: the peer may be
            // faulty, or the committee may have signed two histories. Resolved below.
            let mut unproven: Vec<Seen> = Vec::new();
            let mut accepted = None;
            for addr in &args.peer {
                let answer = async {
                    let (note, proof) = match client.ask(addr, &req).await? {
                        LightResponse::Checkpoint { note, proof } => (note, proof),
                        other => bail!("{}", describe(&other)),
                    };
                    let cp = CosignedCheckpoint::verify(&note, &committee)
                        .context("faulty peer: its checkpoint does not verify")?;
                    super::verify::check_witnesses(&note, &args.witness, args.witnesses_needed)
                        .context("the checkpoint does not meet the witness policy")?;
                    Ok((cp, hashes(proof)?))
                }
                .await;
                let (cp, proof) = match answer {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("warning: {addr}: {e:#}; trying the next peer");
                        continue;
                    }
                };
                let seen = Seen { addr: addr.clone(), checkpoint: cp };
                let Some(old) = &old else {
                    accepted = Some((seen.checkpoint, proof));
                    break;
                };
                let (o, c) = (old.checkpoint(), seen.checkpoint.checkpoint());
                if c.size == o.size && c.root != o.root {
                    return Err(split_view(&state, old, &seen, &format!("two cosigned checkpoints of size {} with different roots", c.size)));
                }
                if c.size < o.size {
                    eprintln!("warning: {addr}: faulty peer: its checkpoint (size {}) is older than the remembered one (size {}); trying the next peer", c.size, o.size);
                    continue;
                }
                match merkle::verify_consistency(o.size, c.size, &o.root, &c.root, &proof) {
                    Ok(()) => {
                        accepted = Some((seen.checkpoint, proof));
                        break;
                    }
                    Err(e) => {
                        eprintln!("warning: {addr}: faulty peer: its consistency proof from size {} to {} does not verify ({e}); trying the next peer", o.size, c.size);
                        unproven.push(seen);
                    }
                }
            }
            // A cosigned checkpoint nobody proved consistent: ask every member for a proof
            // to exactly that size before calling it a split view.
            if let Some(old) = &old {
                let o = old.checkpoint();
                for seen in &unproven {
                    let c = seen.checkpoint.checkpoint();
                    if let Some((a, _)) = &accepted
                        && a.checkpoint().size == c.size
                        && a.checkpoint().root != c.root
                    {
                        return Err(split_view(&state, a, seen, &format!("two cosigned checkpoints of size {} with different roots", c.size)));
                    }
                    let mut proven = false;
                    for addr in &args.peer {
                        let r = client.ask(addr, &LightRequest::Consistency { old: o.size, new: c.size }).await;
                        if let Ok(LightResponse::Consistency(p)) = r
                            && let Ok(p) = hashes(p)
                            && merkle::verify_consistency(o.size, c.size, &o.root, &c.root, &p).is_ok()
                        {
                            proven = true;
                            break;
                        }
                    }
                    if !proven {
                        return Err(split_view(&state, old, seen, &format!("no reachable member proves the cosigned checkpoint of size {} consistent with the remembered one of size {}", c.size, o.size)));
                    }
                    eprintln!("note: {}: its checkpoint of size {} is consistent after all (another member proved it); only its proof was wrong", seen.addr, c.size);
                }
            }
            accepted.ok_or_else(|| anyhow::anyhow!("no peer gave a checkpoint that verifies"))
        }
        .await;
        client.shutdown().await;
        result
    });
    let (new, proof) = outcome?;
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
