//! `fetch` and `install`: a build's artifacts from the group, each checked against the
//! manifest a threshold of builders attested before it is written. What is checked, in
//! order: the proof (threshold cosignature, inclusion, the entry is `crate@version`'s
//! default variant, its attesters' signature), the verdict (reproduced), the manifest text
//! (its sha256 is the entry's digest), then every artifact (its sha256 is the manifest's).
//! A peer whose answer fails any check is a faulty peer: said, and the next one is asked.
//! Files are written atomically (temp file, fsync, rename): a crash leaves the old file or
//! the new one, never a half-written binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_net::Multiaddr;

use super::client::{Client, ClientSetup, describe, runtime};
use crate::build::{Registry, index_versions};
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

/// Arguments of `install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// CRATE or CRATE@VERSION (without a version: the newest non-yanked release in the
    /// crates.io index).
    pub spec: String,
    /// Only this binary [default: every binary of the crate].
    #[arg(long)]
    pub bin: Vec<String>,
    /// Install into DIR/bin [default: $CARGO_HOME/bin, else ~/.cargo/bin].
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// A verified, reproduced build and its manifest.
struct Verified {
    proof_text: String,
    record: VerifiedRecord,
    manifest: Manifest,
    manifest_text: String,
}

/// The proof of `name@version`'s default variant from the first peer whose answer verifies
/// and is reproduced; the verdict of the best answer otherwise.
async fn verified_build(
    client: &Client<'_>,
    setup: &ClientSetup,
    name: &str,
    version: &str,
) -> anyhow::Result<Verified> {
    let spec = format!("{name}@{version}");
    let expected = Expected::crate_version(name, version);
    let req = LightRequest::Proof { key: spec.clone() };
    let mut verdict_seen = None;
    for addr in &setup.peers {
        let answer = async {
            let text = match client.ask(addr, &req).await? {
                LightResponse::Proof(t) => t,
                other => bail!("{}", describe(&other)),
            };
            let record = verify_proof(&text, &setup.committee, &expected)?;
            record.check_attestation(&setup.committee)?;
            if !record.entry().request.is_default_variant() {
                bail!("faulty peer: answered with a non-default variant of {spec}");
            }
            Ok((text, record))
        }
        .await;
        match answer {
            Ok((text, record)) if record.entry().verdict == Verdict::Reproduced => {
                let digest = record.entry().digest.clone();
                let manifest_bytes = client.blob(&setup.peers, &digest).await?;
                let manifest_text = String::from_utf8(manifest_bytes)
                    .map_err(|_| anyhow::anyhow!("the attested manifest is not text"))?;
                let manifest = Manifest::parse(&manifest_text)?;
                return Ok(Verified {
                    proof_text: text,
                    record,
                    manifest,
                    manifest_text,
                });
            }
            Ok((_, record)) => {
                eprintln!(
                    "warning: {addr}: the verified entry's verdict is {:?}; asking the next peer",
                    record.entry().verdict
                );
                verdict_seen.get_or_insert(record.entry().verdict);
            }
            Err(e) => eprintln!("warning: {addr}: {e:#}; trying the next peer"),
        }
    }
    match verdict_seen {
        Some(v) => bail!("{spec}: the group's verdict is {v:?}, not Reproduced; nothing written"),
        None => bail!("{spec}: no peer gave a proof that verifies; nothing written"),
    }
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
async fn fetch_artifact(
    client: &Client<'_>,
    setup: &ClientSetup,
    path: &str,
    sha: &[u8; 32],
) -> anyhow::Result<Vec<u8>> {
    let name = file_name(path);
    let pb = progress_bar(name);
    let bytes = client
        .artifact(&setup.peers, sha, &mut |done, total| {
            pb.set_length(total);
            pb.set_position(done);
        })
        .await
        .with_context(|| format!("fetching {path}"))?;
    pb.finish_and_clear();
    Ok(bytes)
}

fn file_name(path: &str) -> &str {
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
                let bytes = fetch_artifact(&client, &setup, path, sha).await?;
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

/// The newest non-yanked, non-prerelease version of `name` in the crates.io index.
fn newest_version(name: &str) -> anyhow::Result<String> {
    let cache = std::env::temp_dir();
    let registry = Registry::crates_io(&cache);
    let body = match registry.poll_index(name, None)? {
        crate::build::IndexPoll::Changed { body, .. } => body,
        _ => bail!("{name} is not on crates.io"),
    };
    index_versions(&body)
        .into_iter()
        .filter(|(v, yanked)| !yanked && !v.contains('-'))
        .map(|(v, _)| v)
        .max_by_key(|v| version_key(v))
        .ok_or_else(|| anyhow::anyhow!("{name} has no non-yanked release"))
}

/// `major.minor.patch` as numbers (build metadata ignored), for ordering releases.
fn version_key(v: &str) -> Vec<u64> {
    v.split('+')
        .next()
        .unwrap_or(v)
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// The manifest's executables: `<target>/<profile>/<name>` without an extension.
fn binaries(manifest: &Manifest) -> Vec<(&str, &[u8; 32])> {
    manifest
        .files()
        .filter(|(p, _)| p.split('/').count() == 3 && !file_name(p).contains('.'))
        .collect()
}

fn install_dir(root: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(r) = root {
        return Ok(r.join("bin"));
    }
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(h).join("bin"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("no HOME: pass --root"))?;
    Ok(PathBuf::from(home).join(".cargo/bin"))
}

/// Writes an executable atomically: temp file in the same directory, fsync, mode 0755,
/// rename. A crash leaves the old binary or the new one.
fn write_executable(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let tmp = dir.join(format!(
        ".{}.synchronicity-tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("bin")
    ));
    let mut f = std::fs::File::create(&tmp).with_context(|| tmp.display().to_string())?;
    f.write_all(bytes)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `install`.
pub(super) fn install(args: InstallArgs) -> anyhow::Result<()> {
    let setup = ClientSetup::load(args.peers.trust.as_deref(), &args.peers.peer)?;
    let (name, version) = match args.spec.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => (n.to_string(), v.to_string()),
        Some(_) => bail!("{:?}: expected CRATE or CRATE@VERSION", args.spec),
        None => {
            let v = newest_version(&args.spec)?;
            (args.spec.clone(), v)
        }
    };
    let dir = install_dir(args.root.as_deref())?;
    runtime()?.block_on(async {
        let client = Client::start(&setup.committee).await?;
        let result = async {
            let v = verified_build(&client, &setup, &name, &version).await?;
            let bins: Vec<_> = binaries(&v.manifest)
                .into_iter()
                .filter(|(p, _)| args.bin.is_empty() || args.bin.iter().any(|b| b == file_name(p)))
                .collect();
            if bins.is_empty() {
                bail!(
                    "{name}@{version} has no binary{} in its attested manifest; nothing installed",
                    if args.bin.is_empty() { String::new() } else { format!(" named {:?}", args.bin) }
                );
            }
            // Every binary is fetched and checked before the first is installed.
            let mut fetched = Vec::new();
            for (path, sha) in bins {
                fetched.push((file_name(path).to_string(), fetch_artifact(&client, &setup, path, sha).await?));
            }
            let r = &v.record;
            let attesters: Vec<String> = r
                .attesters()
                .iter()
                .map(|&i| setup.committee.members()[i].name.clone())
                .collect();
            for (bin, bytes) in &fetched {
                let target = dir.join(bin);
                write_executable(&target, bytes)?;
                println!("installed {}", target.display());
            }
            println!(
                "{name}@{version}: reproduced by {} of {} builders ({}), log index {}, checkpoint size {}",
                attesters.len(),
                setup.committee.len(),
                attesters.join(", "),
                r.index(),
                r.checkpoint().checkpoint().size
            );
            Ok(())
        }
        .await;
        client.shutdown().await;
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_order_by_number_and_binaries_are_extensionless_top_files() {
        assert!(version_key("1.10.0") > version_key("1.9.3"));
        assert!(version_key("2.0.0+build.5") > version_key("1.99.99"));
        let mut m = Manifest::default();
        m.insert("x86_64-unknown-linux-gnu/release/hello", [1; 32]);
        m.insert("x86_64-unknown-linux-gnu/release/libhello.rlib", [2; 32]);
        let b: Vec<&str> = binaries(&m).into_iter().map(|(p, _)| p).collect();
        assert_eq!(b, ["x86_64-unknown-linux-gnu/release/hello"]);
    }
}
