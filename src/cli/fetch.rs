//! `fetch` (and the steps `install` shares): a build's artifacts from the group, each checked
//! against the manifest a threshold of builders attested before it is written. The checks
//! are `synchronicity_light::Client`'s, in order: the proof (threshold cosignature,
//! inclusion, the entry is `crate@version`'s default variant, its attesters' signature), the
//! verdict (reproduced), the manifest text (its sha256 is the entry's digest), then every
//! artifact (its sha256 is the manifest's). A peer whose answer fails any check is a faulty
//! peer: said, and the next one is asked. Files are written atomically (temp file, fsync,
//! rename): a crash leaves the old file or the new one, never a half-written binary.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_light::{Client, LightError, VerifiedBuild};
use synchronicity_net::Multiaddr;

use super::client::{ClientSetup, runtime, start};
use crate::verify::Manifest;

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
    /// The committee chain from that genesis (`committee chain` writes it) [default: the
    /// client config's `chain`]: proofs cosigned in any epoch it holds are accepted.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Give up downloading artifacts after SECS in all (every peer, every retry).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
}

impl PeerArgs {
    /// The trust root, chain and peers these flags name (or the client config's).
    pub(super) fn setup(&self) -> anyhow::Result<ClientSetup> {
        ClientSetup::load(self.trust.as_deref(), self.chain.as_deref(), &self.peer)
    }

    /// When the downloads of this command give up (`--timeout` from now).
    pub(super) fn deadline(&self) -> Deadline {
        Deadline {
            at: std::time::Instant::now() + std::time::Duration::from_secs(self.timeout),
            secs: self.timeout,
        }
    }
}

/// The overall deadline of a command's downloads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// The instant.
    pub(super) at: std::time::Instant,
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

/// The reproduced build of `name@version`'s default variant with its attested manifest
/// (see `synchronicity_light::Client::reproduced`); "nothing written" otherwise.
pub(super) async fn verified_build(
    client: &Client,
    name: &str,
    version: &str,
) -> anyhow::Result<VerifiedBuild> {
    client.reproduced(name, version).await.map_err(|e| match e {
        LightError::NotReproduced { .. } => anyhow::anyhow!("{e}; nothing written"),
        LightError::NoVerifiedAnswer(_) => {
            anyhow::anyhow!("{name}@{version}: {e}; nothing written")
        }
        e => e.into(),
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

/// Fetches the artifact at manifest path `path`, its bytes checked against the manifest.
pub(super) async fn fetch_artifact(
    client: &Client,
    manifest: &Manifest,
    path: &str,
    deadline: Deadline,
) -> anyhow::Result<Vec<u8>> {
    fetch_artifact_from(client, manifest, path, 0, deadline).await
}

/// [`fetch_artifact`], asking the client's peers from the `first`-th on.
pub(super) async fn fetch_artifact_from(
    client: &Client,
    manifest: &Manifest,
    path: &str,
    first: usize,
    deadline: Deadline,
) -> anyhow::Result<Vec<u8>> {
    let pb = progress_bar(file_name(path));
    let bytes = client
        .artifact_starting_at(manifest, path, first, deadline.at, &mut |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        })
        .await
        .map_err(|e| match e {
            LightError::ArtifactDeadline { sha256, last } => anyhow::anyhow!(
                "no peer served the artifact {sha256} within {} s (--timeout; last: {last})",
                deadline.secs
            ),
            e => e.into(),
        })
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
    let setup = args.peers.setup()?;
    let (name, version) = split_spec(&args.spec)?;
    let deadline = args.peers.deadline();
    runtime()?.block_on(async {
        let client = start(&setup).await?;
        let result = async {
            let v = verified_build(&client, name, version).await?;
            let wanted: Vec<&str> = v
                .manifest()
                .files()
                .map(|(p, _)| p)
                .filter(|p| {
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
            for path in wanted {
                let bytes = fetch_artifact(&client, v.manifest(), path, deadline).await?;
                files.push((args.out.join(file_name(path)), bytes));
            }
            let stem = format!("{name}-{version}");
            files.push((
                args.out.join(format!("{stem}.manifest")),
                v.manifest_text().as_bytes().to_vec(),
            ));
            // The proof last: a crash leaves at worst artifacts without a proof.
            files.push((
                args.out.join(format!("{stem}.tlog-proof")),
                v.proof().text().as_bytes().to_vec(),
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
