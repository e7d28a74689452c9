//! The light client: `proof` fetches a proof file from any member and verifies it before
//! writing it; `checkpoint` fetches the latest cosigned checkpoint and proves it consistent
//! with the one remembered in a state file (a failed proof is a split view: loud, non-zero).
//! Members are reached over `/synchronicity/proof/1` (open to non-members, rate limited).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_net::{Multiaddr, NetConfig, NetworkHandle, PeerId, RequestKind};

use crate::committee::Committee;
use crate::log::{ConsistencyProof, CosignedCheckpoint, ProofFile, merkle};
use crate::node::wire::{LightRequest, LightResponse, decode, encode};
use crate::node_dir::write_atomic;

/// Arguments of `proof`.
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// CRATE@VERSION (or a request id in hex).
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
}

/// The peer id of `addr`: its `/p2p/` part, or the committee member listening there.
fn peer_of(addr: &Multiaddr, committee: &Committee) -> anyhow::Result<PeerId> {
    use synchronicity_net::multiaddr::Protocol;
    if let Some(Protocol::P2p(p)) = addr.iter().last() {
        return Ok(p);
    }
    committee
        .members()
        .iter()
        .find(|m| m.addrs.contains(addr))
        .map(|m| m.peer_id)
        .ok_or_else(|| anyhow::anyhow!("{addr}: no /p2p/ peer id and no member listens there"))
}

async fn client(committee: &Committee) -> anyhow::Result<NetworkHandle> {
    let members = crate::node::member_addrs(committee);
    let key = crate::crypto::NodeIdentity::generate();
    let (net, _events) = synchronicity_net::start(
        NetConfig::new(key.keypair(), members).with_request_timeout(Duration::from_secs(10)),
    )
    .await?;
    Ok(net)
}

/// Asks each peer in turn; returns the first answer that `accept` takes.
async fn ask<T>(
    committee: &Committee,
    peers: &[Multiaddr],
    req: &LightRequest,
    accept: impl Fn(LightResponse) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let net = client(committee).await?;
    let mut errors = Vec::new();
    for addr in peers {
        let result = async {
            let peer = peer_of(addr, committee)?;
            net.dial(addr.clone()).await?;
            let bytes = net
                .request(peer, RequestKind::Light, encode(req))
                .await
                .with_context(|| addr.to_string())?;
            let resp: LightResponse =
                decode(&bytes, 16 * 1024 * 1024).with_context(|| addr.to_string())?;
            accept(resp).with_context(|| addr.to_string())
        }
        .await;
        match result {
            Ok(v) => {
                net.shutdown().await;
                return Ok(v);
            }
            Err(e) => {
                eprintln!("warning: {e:#}; trying the next peer");
                errors.push(format!("{e:#}"));
            }
        }
    }
    net.shutdown().await;
    bail!("no peer gave a valid answer ({})", errors.join("; "))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `proof`.
pub(super) fn proof(args: ProofArgs) -> anyhow::Result<()> {
    let committee = super::load_committee(&args.trust)?;
    let (key, out) = match args.spec.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => (
            args.spec.clone(),
            args.out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{n}-{v}.tlog-proof"))),
        ),
        _ => (
            args.spec.clone(),
            args.out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.tlog-proof", args.spec))),
        ),
    };
    let req = LightRequest::Proof { key: key.clone() };
    let text = runtime()?.block_on(ask(&committee, &args.peer, &req, |resp| {
        let text = match resp {
            LightResponse::Proof(t) => t,
            LightResponse::NotFound(e) => bail!("{e}"),
            other => bail!("unexpected answer {other:?}"),
        };
        // Verified before anything is written.
        let pf = ProofFile::parse(&text)?;
        let v = pf.verify(&committee)?;
        let e = crate::protocol::decode_entry(&v.entry)?;
        let names = [
            format!("{}@{}", e.request.krate, e.request.version),
            hex::encode(e.request.id()),
        ];
        if !names.contains(&key) {
            bail!("the proof is for {}, not {key}", names[0]);
        }
        Ok(text)
    }))?;
    write_atomic(&out, text.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}

/// `checkpoint`.
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
    let old_size = old.as_ref().map(|c| c.checkpoint().size);
    let req = LightRequest::Checkpoint { old_size };
    let (new, proof) = runtime()?.block_on(ask(&committee, &args.peer, &req, |resp| {
        let (note, proof) = match resp {
            LightResponse::Checkpoint { note, proof } => (note, proof),
            LightResponse::NotFound(e) => bail!("{e}"),
            other => bail!("unexpected answer {other:?}"),
        };
        let cp = CosignedCheckpoint::verify(&note, &committee).context("checkpoint rejected")?;
        let proof: Vec<merkle::Hash> = proof
            .iter()
            .map(|h| {
                h.as_slice()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("proof hash is not 32 bytes"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((cp, proof))
    }))?;
    let c = new.checkpoint();
    if let Some(old) = &old {
        let o = old.checkpoint();
        // Both checkpoints carry ≥ t cosignatures; if they do not describe one append-only
        // log, the committee signed two histories.
        if let Err(e) = merkle::verify_consistency(o.size, c.size, &o.root, &c.root, &proof) {
            bail!(
                "SPLIT VIEW: the cosigned checkpoint of size {} is not consistent with the remembered one of size {} ({e}); keep both notes as evidence: {} and the answer below\n{}",
                c.size,
                o.size,
                args.state
                    .as_deref()
                    .map_or(Path::new("-"), |p| p)
                    .display(),
                new.note()
            );
        }
        print!(
            "{}",
            ConsistencyProof {
                old: o.size,
                proof,
                checkpoint: new.note().to_string(),
            }
            .format()
        );
    } else {
        print!("{}", new.note());
    }
    if let Some(p) = &args.state {
        write_atomic(p, new.note().as_bytes())?;
    }
    Ok(())
}
