//! `fetch` (and the checks `install` shares): a build's artifacts from the group, each checked against the
//! manifest a threshold of builders attested before it is written. What is checked, in
//! order: the proof (threshold cosignature, inclusion, the entry is `crate@version`'s
//! default variant, its attesters' signature), the verdict (reproduced), the manifest text
//! (its sha256 is the entry's digest), then every artifact (its sha256 is the manifest's).
//! A peer whose answer fails any check is a faulty peer: said, and the next one is asked.
//! Files are written atomically (temp file, fsync, rename): a crash leaves the old file or
//! the new one, never a half-written binary.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_net::Multiaddr;

use super::client::{Client, ClientSetup, describe, runtime};
use super::default_variant::{self, Lockfile};
use crate::node::wire::{LightRequest, LightResponse};
use crate::protocol::Verdict;
use crate::verify::{Expected, Manifest, VerifiedRecord, verify_proof};

/// Where to find the group (flags override the client config).
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// A member's address with its peer id; several are tried in order [default: the
    /// client config's peers].
    #[arg(long)]
    pub peer: Vec<Multiaddr>,
    /// The committee file to trust [default: the client config's].
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Give up downloading artifacts after SECS in all (every peer, every retry).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
}

impl PeerArgs {
    /// When the downloads of this command give up (`--timeout` from now).
    pub(super) fn deadline(&self) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + std::time::Duration::from_secs(self.timeout),
            secs: self.timeout,
        }
    }
}

/// The overall deadline of a command's downloads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// The instant.
    pub(super) at: tokio::time::Instant,
    /// `--timeout`, for messages.
    pub(super) secs: u64,
}

/// Arguments of `fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// CRATE@VERSION.
    pub spec: String,
    /// Directory to write the proof, the manifest and the artifacts into.
    #[arg(long)]
    pub out: PathBuf,
    /// Only the artifacts with this file name (repeatable) [default: every one].
    #[arg(long)]
    pub artifact: Vec<String>,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// A verified, reproduced build and its manifest.
pub(super) struct Verified {
    pub(super) proof_text: String,
    pub(super) record: VerifiedRecord,
    pub(super) manifest: Manifest,
    pub(super) manifest_text: String,
}

/// The proof of `name@version`'s default variant (see [`super::default_variant`]) from the
/// first peer whose answer verifies and is reproduced, preferring one built with the
/// shipped lockfile (the other peers are asked before one with a generated lockfile is
/// kept, and then a note says so); the verdict of the best answer otherwise.
pub(super) async fn verified_build(
    client: &Client<'_>,
    setup: &ClientSetup,
    name: &str,
    version: &str,
) -> anyhow::Result<Verified> {
    let spec = format!("{name}@{version}");
    let expected = Expected::crate_version(name, version);
    let req = LightRequest::Proof { key: spec.clone() };
    let mut verdict_seen = None;
    let mut generated: Option<(String, VerifiedRecord)> = None;
    for addr in &setup.peers {
        let answer = async {
            let text = match client.ask(addr, &req).await? {
                LightResponse::Proof(t) => t,
                other => bail!("{}", describe(&other)),
            };
            let record = verify_proof(&text, &setup.committee, &expected)?;
            record.check_attestation(&setup.committee)?;
            let lockfile = default_variant::check(&record.entry().request, &setup.committee)
                .map_err(anyhow::Error::msg)?;
            Ok((text, record, lockfile))
        }
        .await;
        match answer {
            Ok((text, record, Lockfile::Shipped))
                if record.entry().verdict == Verdict::Reproduced =>
            {
                return with_manifest(client, setup, text, record).await;
            }
            Ok((text, record, Lockfile::Generated))
                if record.entry().verdict == Verdict::Reproduced =>
            {
                generated.get_or_insert((text, record));
            }
            Ok((_, record, _)) => {
                eprintln!(
                    "warning: {addr}: the verified entry's verdict is {:?}; asking the next peer",
                    record.entry().verdict
                );
                verdict_seen.get_or_insert(record.entry().verdict);
            }
            Err(e) => eprintln!("warning: {addr}: {e:#}; trying the next peer"),
        }
    }
    if let Some((text, record)) = generated {
        eprintln!("{}", default_variant::generated_note(&spec));
        return with_manifest(client, setup, text, record).await;
    }
    match verdict_seen {
        Some(v) => bail!("{spec}: the group's verdict is {v:?}, not Reproduced; nothing written"),
        None => bail!("{spec}: no peer gave a proof that verifies; nothing written"),
    }
}

/// A verified reproduced record with its attested manifest (fetched by sha256).
async fn with_manifest(
    client: &Client<'_>,
    setup: &ClientSetup,
    proof_text: String,
    record: VerifiedRecord,
) -> anyhow::Result<Verified> {
    let digest = record.entry().digest.clone();
    let manifest_bytes = client.blob(&setup.peers, &digest).await?;
    let manifest_text = String::from_utf8(manifest_bytes)
        .map_err(|_| anyhow::anyhow!("the attested manifest is not text"))?;
    let manifest = Manifest::parse(&manifest_text)?;
    Ok(Verified {
        proof_text,
        record,
        manifest,
        manifest_text,
    })
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(name: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:24} {bytes:>10}/{total_bytes:10} {bar:30}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(name.to_string());
    pb
}

/// Fetches the artifact at manifest path `path`, checked against its sha256.
pub(super) async fn fetch_artifact(
    client: &Client<'_>,
    setup: &ClientSetup,
    path: &str,
    sha: &[u8; 32],
    deadline: Deadline,
) -> anyhow::Result<Vec<u8>> {
    let name = file_name(path);
    let pb = progress_bar(name);
    let bytes = client
        .artifact(&setup.peers, sha, deadline, &mut |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        })
        .await
        .with_context(|| format!("fetching {path}"))?;
    pb.finish_and_clear();
    Ok(bytes)
}

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn split_spec(spec: &str) -> anyhow::Result<(&str, &str)> {
    match spec.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n, v)),
        _ => bail!("{spec:?}: expected CRATE@VERSION"),
    }
}

/// `fetch`.
pub(super) fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    let setup = ClientSetup::load(args.peers.trust.as_deref(), &args.peers.peer)?;
    let (name, version) = split_spec(&args.spec)?;
    let deadline = args.peers.deadline();
    runtime()?.block_on(async {
        let client = Client::start(&setup.committee).await?;
        let result = async {
            let v = verified_build(&client, &setup, name, version).await?;
            let wanted: Vec<(&str, &[u8; 32])> = v
                .manifest
                .files()
                .filter(|(p, _)| {
                    args.artifact.is_empty() || args.artifact.iter().any(|a| a == file_name(p))
                })
                .collect();
            if wanted.is_empty() {
                bail!(
                    "the manifest of {} has no artifact named {:?}",
                    args.spec,
                    args.artifact
                );
            }
            let mut files = Vec::new();
            for (path, sha) in wanted {
                let bytes = fetch_artifact(&client, &setup, path, sha, deadline).await?;
                files.push((args.out.join(file_name(path)), bytes));
            }
            let stem = format!("{name}-{version}");
            files.push((
                args.out.join(format!("{stem}.manifest")),
                v.manifest_text.into_bytes(),
            ));
            // The proof last: a crash leaves at worst artifacts without a proof.
            files.push((
                args.out.join(format!("{stem}.tlog-proof")),
                v.proof_text.into_bytes(),
            ));
            std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
            for (path, bytes) in &files {
                crate::node_dir::write_atomic(path, bytes)?;
                println!("{}", path.display());
            }
            Ok(())
        }
        .await;
        client.shutdown().await;
        result
    })
}
