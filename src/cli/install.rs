//! `install`: a crate's binaries, only if a threshold of builders reproduced them (the
//! checks of [`super::fetch`]), written only where [`InstallRecord`] allows: never a name
//! cargo or rustup owns, and an existing file only if `install` wrote it before (unless
//! `--force`). Every refusal happens before the first byte is fetched or written.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::client::{runtime, start};
use super::fetch::{PeerArgs, fetch_artifact, file_name, verified_build};
use super::install_record::{InstallRecord, Planned};
use crate::builder::{Registry, index_versions};
use crate::verify::Manifest;

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
    /// Replace existing files `install` did not write (never cargo's or rustup's own).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// The newest non-yanked, non-prerelease version of `name` in the crates.io index.
fn newest_version(name: &str) -> anyhow::Result<String> {
    let cache = std::env::temp_dir();
    let registry = Registry::crates_io(&cache);
    let body = match registry.poll_index(name, None)? {
        crate::builder::IndexPoll::Changed { body, .. } => body,
        _ => bail!("{name} is not on crates.io"),
    };
    crate::builder::newest_release(&index_versions(&body))
        .ok_or_else(|| anyhow::anyhow!("{name} has no non-yanked release"))
}

/// The manifest's executables: `<target>/<profile>/<name>` without an extension.
fn binaries(manifest: &Manifest) -> Vec<(&str, &[u8; 32])> {
    manifest
        .files()
        .filter(|(p, _)| p.split('/').count() == 3 && !file_name(p).contains('.'))
        .collect()
}

/// The install root (the directory holding `bin/` and the install record).
fn install_root(root: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(r) = root {
        return Ok(r.to_path_buf());
    }
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("no HOME: pass --root"))?;
    Ok(PathBuf::from(home).join(".cargo"))
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
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| tmp.display().to_string())?;
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
    let setup = args.peers.setup()?;
    let (name, version) = match args.spec.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => (n.to_string(), v.to_string()),
        Some(_) => bail!("{:?}: expected CRATE or CRATE@VERSION", args.spec),
        None => {
            let v = newest_version(&args.spec)?;
            (args.spec.clone(), v)
        }
    };
    let root = install_root(args.root.as_deref())?;
    let bin_dir = root.join("bin");
    let mut record = InstallRecord::load(&root)?;
    let deadline = args.peers.deadline();
    runtime()?.block_on(async {
        let client = start(&setup).await?;
        let result = async {
            let v = verified_build(&client, &name, &version).await?;
            let bins: Vec<_> = binaries(v.manifest())
                .into_iter()
                .filter(|(p, _)| args.bin.is_empty() || args.bin.iter().any(|b| b == file_name(p)))
                .collect();
            if bins.is_empty() {
                bail!(
                    "{name}@{version} has no binary{} in its attested manifest; nothing installed",
                    if args.bin.is_empty() { String::new() } else { format!(" named {:?}", args.bin) }
                );
            }
            // Every target is checked before the first byte is fetched or written.
            let planned: Vec<Planned<'_>> = bins
                .iter()
                .map(|(p, sha)| Planned { name: file_name(p), sha256: **sha })
                .collect();
            let replacing = record.check(&bin_dir, &name, &planned, args.force)?;
            // Every binary is fetched and checked before the first is installed.
            let mut fetched = Vec::new();
            for (path, _) in &bins {
                fetched.push((file_name(path), fetch_artifact(&client, v.manifest(), path, deadline).await?));
            }
            // Steps 1-3 of `install_record`'s durability order.
            record.begin(&name, &version, &planned, &replacing);
            record.save(&root)?;
            for (bin, bytes) in &fetched {
                let target = bin_dir.join(bin);
                write_executable(&target, bytes)?;
                println!("installed {}", target.display());
            }
            record.finish();
            record.save(&root)?;
            let r = v.proof().record();
            let attesters: Vec<String> = r
                .attesters()
                .iter()
                .map(|&i| setup.committee.members()[i].name.clone())
                .collect();
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
        let v = |l: &[(&str, bool)]| {
            let l: Vec<(String, bool)> = l.iter().map(|(s, y)| (s.to_string(), *y)).collect();
            crate::builder::newest_release(&l)
        };
        assert_eq!(v(&[("1.10.0", false), ("1.9.3", false)]).unwrap(), "1.10.0");
        assert_eq!(
            v(&[("2.0.0+build.5", false), ("1.99.99", false)]).unwrap(),
            "2.0.0+build.5"
        );
        assert_eq!(
            v(&[("1.0.0", false), ("2.0.0", true), ("3.0.0-rc.1", false)]).unwrap(),
            "1.0.0"
        );
        assert_eq!(v(&[("2.0.0", true)]), None);
        let mut m = Manifest::default();
        m.insert("x86_64-unknown-linux-gnu/release/hello", [1; 32]);
        m.insert("x86_64-unknown-linux-gnu/release/libhello.rlib", [2; 32]);
        let b: Vec<&str> = binaries(&m).into_iter().map(|(p, _)| p).collect();
        assert_eq!(b, ["x86_64-unknown-linux-gnu/release/hello"]);
    }
}
