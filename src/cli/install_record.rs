//! Which files `install` may write: the record of what it installed before
//! (`<root>/.synchronicity-installs.json`, as cargo keeps `.crates2.json`), and the names it
//! never writes.
//!
//! Rules, checked for every binary before anything is fetched or written:
//! - a name cargo or rustup owns ([`TOOLCHAIN_NAMES`]) is refused, even with `--force`;
//! - a name that is not a plain file name is refused;
//! - an existing file is replaced only if the record says this crate installed it AND its
//!   bytes are still the ones recorded (a file another tool wrote since is not ours), or
//!   with `--force`;
//! - a missing file may always be written.
//!
//! Durability, step by step (see [`InstallRecord::save`]):
//! 1. the record is written with each new binary's sha256 and, as `replacing`, the sha256 of
//!    the file it replaces;
//! 2. each binary is written (temp file, fsync, rename);
//! 3. the record is written again without `replacing`.
//!
//! A crash after 1 leaves each path with either its old bytes (`replacing`) or its new ones
//! (`sha256`): both count as ours, so the next `install` repairs it without `--force`. A
//! crash before 1 completes leaves the old record (the rename is atomic).
//!
//! BUG: two `install`s running at once may lose one's record update (no lock: `File::lock`
//! needs Rust 1.89, above our minimum); the lost binary is then refused as untracked until
//! `--force`, never overwritten silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Names cargo and rustup install into `CARGO_HOME/bin` (rustup's proxies and cargo's own
/// tools). Never written by `install`, even with `--force`.
pub(super) const TOOLCHAIN_NAMES: [&str; 16] = [
    "cargo",
    "cargo-clippy",
    "cargo-fmt",
    "cargo-miri",
    "clippy-driver",
    "rls",
    "rust-analyzer",
    "rust-gdb",
    "rust-gdbgui",
    "rust-lldb",
    "rustc",
    "rustdoc",
    "rustfmt",
    "rustup",
    "rustup-init",
    "rust-docs",
];

/// The record's first-line-equivalent format name.
const FORMAT: &str = "synchronicity/installs/v1";
/// Largest record read.
const MAX_RECORD: u64 = 4 << 20;

/// One installed binary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstalledBin {
    /// The crate it came from.
    #[serde(rename = "crate")]
    pub(super) krate: String,
    /// Its version.
    pub(super) version: String,
    /// sha256 (hex) of the bytes installed.
    pub(super) sha256: String,
    /// While an install runs: sha256 (hex) of the file it replaces (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) replacing: Option<String>,
}

/// What `install` wrote into one root, by binary file name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstallRecord {
    format: String,
    bins: BTreeMap<String, InstalledBin>,
}

/// The sha256 (hex) of the file at `path`, read in a stream (it may be large).
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// A binary about to be installed.
pub(super) struct Planned<'a> {
    /// File name in the bin directory.
    pub(super) name: &'a str,
    /// Its verified bytes' sha256.
    pub(super) sha256: [u8; 32],
}

impl InstallRecord {
    /// The record's path for install root `root` (the directory holding `bin/`).
    pub(super) fn path(root: &Path) -> PathBuf {
        root.join(".synchronicity-installs.json")
    }

    /// Reads the record (empty if there is none). A record that is not ours is an error
    /// naming the file: better no install than a guess about what is ours.
    pub(super) fn load(root: &Path) -> anyhow::Result<Self> {
        let path = Self::path(root);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    format: FORMAT.into(),
                    bins: BTreeMap::new(),
                });
            }
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        if meta.len() > MAX_RECORD {
            bail!("{}: larger than 4 MiB", path.display());
        }
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let record: Self = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not an install record: {e}", path.display()))?;
        if record.format != FORMAT {
            bail!(
                "{}: format {:?}, expected {FORMAT:?}",
                path.display(),
                record.format
            );
        }
        Ok(record)
    }

    /// Writes the record atomically (temp file, fsync, rename, directory fsync): a crash
    /// leaves the old record or the new one.
    pub(super) fn save(&self, root: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(root).with_context(|| root.display().to_string())?;
        let text = serde_json::to_string_pretty(self)?;
        crate::node_dir::write_atomic(&Self::path(root), text.as_bytes())?;
        Ok(())
    }

    /// Checks every planned binary against the rules of the module doc; the first refusal
    /// is one line naming the file. Returns, per binary, the sha256 (hex) of the file it
    /// replaces, if any.
    pub(super) fn check(
        &self,
        bin_dir: &Path,
        krate: &str,
        planned: &[Planned<'_>],
        force: bool,
    ) -> anyhow::Result<Vec<Option<String>>> {
        planned
            .iter()
            .map(|p| self.check_one(bin_dir, krate, p.name, force))
            .collect()
    }

    fn check_one(
        &self,
        bin_dir: &Path,
        krate: &str,
        name: &str,
        force: bool,
    ) -> anyhow::Result<Option<String>> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\0'])
            && !name.starts_with(".synchronicity");
        if !plain {
            bail!("refusing to install a binary named {name:?}: not a plain file name");
        }
        let path = bin_dir.join(name);
        if TOOLCHAIN_NAMES.contains(&name) {
            bail!(
                "refusing to install {}: `{name}` belongs to cargo/rustup (never replaced, even with --force); nothing written",
                path.display()
            );
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        let current = if meta.is_file() {
            Some(file_sha256(&path).with_context(|| path.display().to_string())?)
        } else {
            None
        };
        let ours = self.bins.get(name).filter(|b| {
            b.krate == krate
                && current.is_some()
                && (current.as_ref() == Some(&b.sha256) || current == b.replacing)
        });
        match (ours, force) {
            (Some(_), _) => Ok(current),
            (None, true) => Ok(current),
            (None, false) => {
                let why = match self.bins.get(name) {
                    Some(b) if b.krate != krate => {
                        format!("installed by synchronicity for {}@{}", b.krate, b.version)
                    }
                    Some(_) => "changed since synchronicity installed it".into(),
                    None => "not installed by synchronicity".into(),
                };
                bail!(
                    "refusing to overwrite {}: {why} (--force replaces it); nothing written",
                    path.display()
                )
            }
        }
    }

    /// Records `planned` as installed from `krate@version`, each replacing `replacing[i]`.
    pub(super) fn begin(
        &mut self,
        krate: &str,
        version: &str,
        planned: &[Planned<'_>],
        replacing: &[Option<String>],
    ) {
        self.format = FORMAT.into();
        for (p, old) in planned.iter().zip(replacing) {
            self.bins.insert(
                p.name.to_string(),
                InstalledBin {
                    krate: krate.into(),
                    version: version.into(),
                    sha256: hex::encode(p.sha256),
                    replacing: old.clone(),
                },
            );
        }
    }

    /// Forgets every `replacing` (step 3 of the module doc).
    pub(super) fn finish(&mut self) {
        for b in self.bins.values_mut() {
            b.replacing = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &'static str, bytes: &[u8]) -> Planned<'static> {
        Planned {
            name,
            sha256: crate::crypto::sha256(bytes),
        }
    }

    #[test]
    fn only_recorded_unchanged_files_are_replaced_and_toolchain_names_never() {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let mut rec = InstallRecord::load(root.path()).unwrap();
        // New files: fine.
        assert_eq!(
            rec.check(&bin, "tool", &[plan("tool", b"v1")], false)
                .unwrap(),
            [None]
        );
        // cargo and rustup's names: never, even forced.
        for name in ["cargo", "rustup", "rustc", "cargo-clippy", "rust-analyzer"] {
            let err = rec
                .check(&bin, "tool", &[plan(name, b"x")], true)
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("`{name}` belongs to cargo/rustup")),
                "{err}"
            );
        }
        for name in ["../x", "a/b", "..", ""] {
            assert!(
                rec.check(&bin, "tool", &[plan(name, b"x")], true).is_err(),
                "{name:?}"
            );
        }
        // An untracked file: refused, unless forced.
        std::fs::write(bin.join("tool"), b"the user's own").unwrap();
        let err = rec
            .check(&bin, "tool", &[plan("tool", b"v1")], false)
            .unwrap_err();
        assert!(
            err.to_string().contains("not installed by synchronicity"),
            "{err}"
        );
        assert!(
            rec.check(&bin, "tool", &[plan("tool", b"v1")], true)
                .is_ok()
        );
        // Installed by us, unchanged: replaced by an upgrade of the same crate, not by another.
        std::fs::write(bin.join("tool"), b"v1").unwrap();
        let old = hex::encode(crate::crypto::sha256(b"the user's own"));
        rec.begin("tool", "1.0.0", &[plan("tool", b"v1")], &[Some(old)]);
        rec.finish();
        rec.save(root.path()).unwrap();
        let rec = InstallRecord::load(root.path()).unwrap();
        assert!(
            rec.check(&bin, "tool", &[plan("tool", b"v2")], false)
                .is_ok()
        );
        let err = rec
            .check(&bin, "other", &[plan("tool", b"x")], false)
            .unwrap_err();
        assert!(err.to_string().contains("for tool@1.0.0"), "{err}");
        // Changed since (another tool wrote it): no longer ours.
        std::fs::write(bin.join("tool"), b"cargo install wrote this").unwrap();
        let err = rec
            .check(&bin, "tool", &[plan("tool", b"v2")], false)
            .unwrap_err();
        assert!(err.to_string().contains("changed since"), "{err}");
    }

    #[test]
    fn a_crash_between_record_and_binary_leaves_the_file_ours() {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("tool"), b"v1").unwrap();
        let mut rec = InstallRecord::default();
        rec.begin("tool", "1.0.0", &[plan("tool", b"v1")], &[None]);
        rec.finish();
        // Step 1 of an upgrade to v2, then a crash before the binary is renamed.
        let v1 = hex::encode(crate::crypto::sha256(b"v1"));
        rec.begin("tool", "2.0.0", &[plan("tool", b"v2")], &[Some(v1)]);
        rec.save(root.path()).unwrap();
        let rec = InstallRecord::load(root.path()).unwrap();
        assert!(
            rec.check(&bin, "tool", &[plan("tool", b"v2")], false)
                .is_ok()
        );
        // And after the rename, before step 3.
        std::fs::write(bin.join("tool"), b"v2").unwrap();
        assert!(
            rec.check(&bin, "tool", &[plan("tool", b"v2")], false)
                .is_ok()
        );
        // A damaged record: refused, naming the file.
        std::fs::write(InstallRecord::path(root.path()), b"{").unwrap();
        let err = InstallRecord::load(root.path()).unwrap_err();
        assert!(
            err.to_string().contains(".synchronicity-installs.json"),
            "{err}"
        );
    }
}
