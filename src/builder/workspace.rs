//! The offline build workspace shared by both backends, laid out so that both sandboxes see
//! the same files at the same fixed paths and nothing in it needs the network:
//!
//! ```text
//! <ws>/cargo-home/bin/{cargo,rustc,rustdoc}   copies of the rustup proxy binary
//! <ws>/cargo-home/config.toml                 [net] offline = true (sandbox and host prepare)
//! <ws>/cargo-home/registry/…                  dependencies fetched on the HOST from the lockfile
//! <ws>/rustup-home/settings.toml              auto_install = "disable" (read-only in the sandbox)
//! <ws>/rustup-home/toolchains/<ver>-<triple>  hard links to the host's toolchain
//! <ws>/cache/crates/<sha256>.crate            content-addressed `.crate` cache
//! <ws>/sources/<crate>-<version>-<sha8>/      pristine unpacked sources + the request's Cargo.lock
//! ```
//!
//! Everything here is written by the node and mounted read-only into the sandboxes; the
//! builds' writable directories live on each build's own disk (`limits.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;

const RUSTUP_SETTINGS: &str =
    "version = \"12\"\nauto_install = \"disable\"\nauto_self_update = \"disable\"\n\n[overrides]\n";
const CARGO_CONFIG: &str = "[net]\noffline = true\n";

/// A prepared workspace for one toolchain and target.
#[derive(Debug, Clone)]
pub struct BuildWorkspace {
    root: PathBuf,
    toolchain: String,
    host: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::Workspace(format!("{}: {e}", path.display()))
}

/// The host's rustup home and rustup binary.
fn host_rustup() -> Result<(PathBuf, PathBuf), BuildError> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let rustup = cargo_home.join("bin/rustup");
    if !rustup.is_file() {
        return Err(BuildError::Workspace(format!(
            "rustup not found at {}",
            rustup.display()
        )));
    }
    Ok((rustup_home, rustup))
}

/// Whether this host's rustup has toolchain `version` (e.g. `1.96.0`) for its own triple:
/// what a build of that toolchain needs (`BuildWorkspace::prepare` links it). For warnings
/// before a committee change that moves the toolchain.
pub fn toolchain_installed(version: &str) -> bool {
    let Ok((rustup_home, _)) = host_rustup() else {
        return false;
    };
    let name = format!("{version}-{}", env!("SYNCHRONICITY_HOST_TRIPLE"));
    rustup_home
        .join("toolchains")
        .join(name)
        .join("bin/rustc")
        .is_file()
}

impl BuildWorkspace {
    /// Lays out (or reuses) the workspace at `root` for `toolchain` (e.g. `1.95.0`), copying
    /// the host's toolchain by hard links. Idempotent.
    /// With `registry` (a sparse index URL), cargo reaches crates.io's packages there, by
    /// source replacement (so lockfiles keep naming crates.io).
    pub fn prepare(
        root: &Path,
        toolchain: &str,
        registry: Option<&str>,
    ) -> Result<Self, BuildError> {
        let root = std::path::absolute(root).map_err(io(root))?;
        // Host-side cargo (the dependency fetch) walks up from each unpacked source looking
        // for a workspace; one above the work directory would capture every crate built.
        if let Some(ws) = root
            .ancestors()
            .map(|a| a.join("Cargo.toml"))
            .find(|m| m.is_file())
        {
            return Err(BuildError::Workspace(format!(
                "work directory {} is inside the Cargo project of {}; choose one outside it",
                root.display(),
                ws.display()
            )));
        }
        let host = env!("SYNCHRONICITY_HOST_TRIPLE").to_string();
        let ws = Self {
            root,
            toolchain: toolchain.to_string(),
            host,
        };
        let (ch, rh) = (ws.cargo_home(), ws.rustup_home());
        fs::create_dir_all(ch.join("bin")).map_err(io(&ch))?;
        for d in ["toolchains", "update-hashes", "downloads", "tmp"] {
            fs::create_dir_all(rh.join(d)).map_err(io(&rh))?;
        }
        fs::write(rh.join("settings.toml"), RUSTUP_SETTINGS).map_err(io(&rh))?;
        let mut config = CARGO_CONFIG.to_string();
        if let Some(index) = registry {
            config.push_str(&format!(
                "\n[source.crates-io]\nreplace-with = \"synchronicity-registry\"\n\n[source.synchronicity-registry]\nregistry = \"sparse+{}/\"\n",
                index.trim_end_matches('/')
            ));
        }
        fs::write(ch.join("config.toml"), config).map_err(io(&ch))?;
        let (host_rustup_home, rustup_bin) = host_rustup()?;
        for proxy in ["cargo", "rustc", "rustdoc"] {
            let dst = ch.join("bin").join(proxy);
            if !dst.exists() {
                fs::copy(&rustup_bin, &dst).map_err(io(&dst))?;
            }
        }

        let dest = ws.toolchain_dir();
        if !dest.join("bin/rustc").is_file() {
            let src = host_rustup_home
                .join("toolchains")
                .join(ws.toolchain_name());
            let src = fs::canonicalize(&src).map_err(|_| {
                BuildError::Workspace(format!(
                    "toolchain {} is not installed on this host ({})",
                    ws.toolchain,
                    src.display()
                ))
            })?;
            // A clean environment, like host cargo and the sandbox: nothing of the
            // operator's (say an LD_PRELOAD) reaches the toolchain.
            let version = Command::new(src.join("bin/rustc"))
                .env_clear()
                .arg("--version")
                .output()
                .map_err(io(&src))?;
            let version = String::from_utf8_lossy(&version.stdout);
            if !version.starts_with(&format!("rustc {} ", ws.toolchain)) {
                return Err(BuildError::Workspace(format!(
                    "{} is {}, not {}",
                    src.display(),
                    version.trim(),
                    ws.toolchain
                )));
            }
            let _ = fs::remove_dir_all(&dest);
            let tmp = dest.with_extension("partial");
            let _ = fs::remove_dir_all(&tmp);
            // Hard links where the toolchain is on the same filesystem; a copy otherwise (a
            // container's image layer and its volume): the failed attempt's partial tree is
            // removed first, or `cp -a` would copy INTO it.
            let linked = Command::new("cp")
                .arg("-al")
                .arg(&src)
                .arg(&tmp)
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            let ok = linked || {
                let _ = fs::remove_dir_all(&tmp);
                Command::new("cp")
                    .arg("-a")
                    .arg(&src)
                    .arg(&tmp)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            };
            if !ok {
                return Err(BuildError::Workspace(format!(
                    "cannot copy {} to {}",
                    src.display(),
                    tmp.display()
                )));
            }
            fs::rename(&tmp, &dest).map_err(io(&dest))?;
        }
        Ok(ws)
    }

    /// The workspace root (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `<ws>/cargo-home`.
    pub fn cargo_home(&self) -> PathBuf {
        self.root.join("cargo-home")
    }
    /// `<ws>/rustup-home`.
    pub fn rustup_home(&self) -> PathBuf {
        self.root.join("rustup-home")
    }
    /// `<ws>/cache/crates`.
    pub fn crate_cache(&self) -> PathBuf {
        self.root.join("cache/crates")
    }
    /// `<ws>/disks`: the sparse images of running builds' disks.
    pub fn disks(&self) -> PathBuf {
        self.root.join("disks")
    }
    /// `<ws>/sources`.
    pub fn sources(&self) -> PathBuf {
        self.root.join("sources")
    }
    /// The toolchain version, e.g. `1.95.0`.
    pub fn toolchain(&self) -> &str {
        &self.toolchain
    }
    /// `<version>-<host triple>`, the directory name rustup resolves `+<version>` to.
    pub fn toolchain_name(&self) -> String {
        format!("{}-{}", self.toolchain, self.host)
    }
    fn toolchain_dir(&self) -> PathBuf {
        self.rustup_home()
            .join("toolchains")
            .join(self.toolchain_name())
    }

    /// Cargo on the HOST with the workspace's homes and a clean environment.
    pub fn host_cargo(&self) -> Command {
        let mut c = Command::new(self.cargo_home().join("bin/cargo"));
        c.env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    self.cargo_home().join("bin").display()
                ),
            )
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
            )
            .env("CARGO_HOME", self.cargo_home())
            .env("RUSTUP_HOME", self.rustup_home())
            .arg(format!("+{}", self.toolchain));
        c
    }

    /// Fetches exactly the lockfile's dependencies on the host (online; cargo checks every
    /// `.crate` against the lockfile's checksum), so the sandbox builds `--offline --locked`.
    /// All platforms' dependencies are fetched (rustwide's own prepare step runs
    /// `cargo fetch` without `--target`, offline, and needs them).
    pub fn fetch_dependencies(&self, source: &Path) -> Result<(), BuildError> {
        let out = self
            .host_cargo()
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(source.join("Cargo.toml"))
            // The workspace config says offline (for the sandbox); this one step is online.
            .env("CARGO_NET_OFFLINE", "false")
            .output()
            .map_err(|e| BuildError::Fetch(e.to_string()))?;
        if !out.status.success() {
            return Err(BuildError::Fetch(super::last_error_line(&out.stderr)));
        }
        // Cargo unpacks a `.crate` with the modes its tar header says: a file packed as
        // 0600 (fnv 1.0.7's `lib.rs`) would be unreadable to the build user (uid 65534).
        let src = self.cargo_home().join("registry").join("src");
        readable_by_all(&src).map_err(|e| BuildError::Fetch(format!("{}: {e}", src.display())))
    }
}

/// Adds read permission for everyone (and search, for directories) to every file and
/// directory under `dir` that lacks it; links are not followed, and only this host's own
/// unpacked registry is walked (nothing a build wrote).
pub(crate) fn readable_by_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode();
            let want = if meta.is_dir() {
                stack.push(path.clone());
                mode | 0o555
            } else if meta.is_file() {
                mode | 0o444
            } else {
                continue;
            };
            if want != mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod readable_tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_packed_private_become_readable_and_links_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let krate = t.path().join("fnv-1.0.7");
        std::fs::create_dir(&krate).unwrap();
        std::fs::write(krate.join("lib.rs"), "x").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = elsewhere.path().join("outside");
        std::fs::write(&outside, "secret").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&outside, krate.join("link")).unwrap();
        std::fs::set_permissions(krate.join("lib.rs"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::set_permissions(&krate, std::fs::Permissions::from_mode(0o700)).unwrap();
        super::readable_by_all(t.path()).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&krate), 0o755);
        assert_eq!(mode(&krate.join("lib.rs")), 0o644);
        assert_eq!(mode(&outside), 0o600, "a link was followed");
        super::readable_by_all(&t.path().join("missing")).unwrap();
    }
}
