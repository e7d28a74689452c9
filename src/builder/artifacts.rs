//! Artifacts taken from the build's own disk, never from what the build says.
//!
//! A build script can write anything into cargo's stdout (`/proc/<cargo>/fd/1` is open to
//! it) and plant anything in the target directory: a link to a host file, a FIFO, a sparse
//! file of a terabyte. So cargo's JSON messages only say WHICH names to look for
//! ([`names_from_messages`]), and every name is checked before any I/O
//! ([`valid_relative_path_within`]); then [`collect`] walks to each file with `lstat` (no link is
//! ever followed, every directory on the way must be a real directory on the build's disk),
//! opens it with `O_NOFOLLOW`, checks the OPEN file (a regular file, on the build's disk,
//! under the size cap) and streams it into the host copy while hashing it, reading at most
//! the cap. The build's processes are gone when this runs (the sandbox's PID namespace or
//! the container is torn down first), so nothing moves under the walk; `O_NOFOLLOW` and the
//! check of the open file hold even if something did.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use synchronicity_verify::manifest::MAX_MANIFEST_SIZE;

/// Most path components in an artifact's name (`<triple>/release/deps/<file>`).
const MAX_COMPONENTS: usize = 4;
/// Longest artifact name, in bytes.
const MAX_NAME: usize = 1024;
/// Largest artifact, in bytes (the artifact store's bound, `node::artifacts::MAX_ARTIFACT`).
pub const MAX_FILE: u64 = 1 << 30;
/// Most artifact names taken from one build's messages.
pub(crate) const MAX_ARTIFACTS: usize = 1024;

/// The cargo package id prefix of the crate being built (a path package).
pub(crate) const ROOT_PACKAGE_PREFIX: &str = "path+file:///opt/rustwide/source";
/// The target directory inside both sandboxes.
pub(crate) const TARGET_IN_SANDBOX: &str = "/opt/rustwide/target/";

/// Why the build's output cannot be taken: the build planted something the host refuses to
/// read. Every member sees the same sandbox, so every member refuses alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedArtifact {
    /// A name that is not a plain relative path below the target directory.
    #[error("artifact name {0:?} is not a plain relative path")]
    BadName(String),
    /// A link, FIFO, device, socket or directory where a file should be.
    #[error("artifact {0} is not a regular file")]
    NotRegular(String),
    /// A directory on the way is a link or not a directory.
    #[error("artifact {0}: a directory on its path is a link or not a directory")]
    BadDirectory(String),
    /// On another filesystem than the build's own disk (a bind mount, a hard link cannot be).
    #[error("artifact {0} is not on the build's disk")]
    OtherDisk(String),
    /// Over the size cap for one file or for all of them.
    #[error("artifact {name} is over the cap of {cap} bytes")]
    TooLarge {
        /// The artifact.
        name: String,
        /// The cap it broke.
        cap: u64,
    },
    /// More artifact names than [`MAX_ARTIFACTS`], or names whose manifest would be over
    /// [`MAX_MANIFEST_SIZE`].
    #[error("more artifacts, or a longer manifest, than one build may give")]
    TooMany,
    /// Not readable by everyone: the host could read it only by its own privileges, which
    /// differ between members; refused alike everywhere.
    #[error("artifact {0} is not readable by everyone")]
    NotReadable(String),
}

/// Why collecting failed: the build's fault ([`RefusedArtifact`]) or the host's (an I/O
/// error reading the disk or writing the copy).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    #[error(transparent)]
    Refused(#[from] RefusedArtifact),
    #[error("{0}")]
    Host(String),
}

/// True if `name` is a plain relative path: 1 to [`MAX_COMPONENTS`] normal components, no
/// `.`, `..`, root or empty component, at most [`MAX_NAME`] bytes, and a valid manifest path
/// (no whitespace, control character or backslash). Checked before any I/O on the name.
#[cfg(test)]
pub(crate) fn valid_relative_path(name: &str) -> bool {
    valid_relative_path_within(name, MAX_COMPONENTS)
}

/// [`valid_relative_path`] with up to `components` components.
pub(crate) fn valid_relative_path_within(name: &str, components: usize) -> bool {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name.contains("//")
        || !synchronicity_verify::manifest::is_valid_path(name)
    {
        return false;
    }
    let path = Path::new(name);
    let mut n = 0;
    for c in path.components() {
        match c {
            Component::Normal(_) => n += 1,
            _ => return false,
        }
    }
    // `components` folds `a/./b` and a trailing `/`; refuse those spellings too.
    (1..=components).contains(&n) && !name.ends_with('/') && !name.split('/').any(|s| s == ".")
}

/// The names cargo's messages give for the root package's lib and bin targets, relative to
/// the target directory (build-script executables, `.rmeta` and `.d` files left out; see
/// [`Manifest`](synchronicity_verify::manifest::Manifest)). These are HINTS written by a
/// process the build controls: each is checked by [`collect`] before it is read. Names that
/// are not below the target directory are kept as they are, so [`collect`] refuses them.
pub fn names_from_messages(json_lines: &[String]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Target {
        kind: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Msg {
        reason: String,
        #[serde(default)]
        package_id: String,
        target: Option<Target>,
        #[serde(default)]
        filenames: Vec<String>,
    }
    let mut out = Vec::new();
    for line in json_lines {
        let Ok(m) = serde_json::from_str::<Msg>(line) else {
            continue;
        };
        if m.reason != "compiler-artifact" || !m.package_id.starts_with(ROOT_PACKAGE_PREFIX) {
            continue;
        }
        if m.target
            .as_ref()
            .is_some_and(|t| t.kind.iter().any(|k| k == "custom-build"))
        {
            continue;
        }
        for f in m.filenames {
            if f.ends_with(".rmeta") || f.ends_with(".d") {
                continue;
            }
            out.push(f.strip_prefix(TARGET_IN_SANDBOX).unwrap_or(&f).to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Caps on what is copied out of one build.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Bytes of one artifact.
    pub(crate) per_file: u64,
    /// Bytes of all artifacts together.
    pub(crate) total: u64,
}

/// One artifact taken: its name, SHA-256 and host copy.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) name: String,
    pub(crate) sha256: [u8; 32],
    pub(crate) copy: PathBuf,
}

/// Takes `names` from `target` (the build's target directory, on the build's own disk) into
/// copies below `dest`, by the rules of this module. All or nothing: on an error, `dest` is
/// removed. Crash safety: `dest` is the per-request copy directory, removed first; a crash
/// mid-way leaves a partial one that the next build of the request replaces, and nothing
/// reads it before the build's outcome names it.
pub(crate) fn collect(
    target: &Path,
    names: &[String],
    dest: &Path,
    caps: Caps,
) -> Result<Vec<Taken>, CollectError> {
    collect_within(target, names, dest, caps, &ARTIFACT_NAMES)
}

/// How many names, how deep and how long a manifest one collection may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameBounds {
    /// Components per name.
    pub(crate) components: usize,
    /// Names.
    pub(crate) names: usize,
    /// Bytes of the manifest listing them.
    pub(crate) manifest: usize,
}

/// A crate's artifacts: [`MAX_COMPONENTS`], [`MAX_ARTIFACTS`], [`MAX_MANIFEST_SIZE`].
pub(crate) const ARTIFACT_NAMES: NameBounds = NameBounds {
    components: MAX_COMPONENTS,
    names: MAX_ARTIFACTS,
    manifest: MAX_MANIFEST_SIZE,
};

/// [`collect`] within `bounds`.
pub(crate) fn collect_within(
    target: &Path,
    names: &[String],
    dest: &Path,
    caps: Caps,
    bounds: &NameBounds,
) -> Result<Vec<Taken>, CollectError> {
    let _ = std::fs::remove_dir_all(dest);
    let r = collect_into(target, names, dest, caps, bounds);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    r
}

fn collect_into(
    target: &Path,
    names: &[String],
    dest: &Path,
    caps: Caps,
    bounds: &NameBounds,
) -> Result<Vec<Taken>, CollectError> {
    // A manifest line is `<64 hex>  <name>\n`.
    let manifest: usize = names.iter().map(|n| 64 + 2 + n.len() + 1).sum();
    if names.len() > bounds.names || manifest > bounds.manifest {
        return Err(RefusedArtifact::TooMany.into());
    }
    for name in names {
        if !valid_relative_path_within(name, bounds.components) {
            return Err(RefusedArtifact::BadName(name.clone()).into());
        }
    }
    let root = std::fs::symlink_metadata(target)
        .map_err(|e| CollectError::Host(format!("{}: {e}", target.display())))?;
    if !root.is_dir() {
        return Err(CollectError::Host(format!(
            "{} is not a directory",
            target.display()
        )));
    }
    let disk = root.dev();
    let mut total = 0u64;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let file = open_on_disk(target, name, disk)?;
        let copy = dest.join(name);
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CollectError::Host(format!("{}: {e}", dir.display())))?;
        }
        let cap = caps.per_file.min(caps.total - total.min(caps.total));
        let (sha256, len) = copy_capped(file, &copy, cap).map_err(|e| match e {
            CopyError::OverCap => RefusedArtifact::TooLarge {
                name: name.clone(),
                cap: if cap == caps.per_file {
                    caps.per_file
                } else {
                    caps.total
                },
            }
            .into(),
            CopyError::Io(e) => CollectError::Host(format!("{}: {e}", copy.display())),
        })?;
        total += len;
        out.push(Taken {
            name: name.clone(),
            sha256,
            copy,
        });
    }
    Ok(out)
}

/// Opens `target/name` without following any link: every directory on the way checked with
/// `lstat` (a real directory on `disk`), the file opened `O_NOFOLLOW`, and the OPEN file
/// checked (regular, on `disk`).
fn open_on_disk(target: &Path, name: &str, disk: u64) -> Result<File, CollectError> {
    let parts: Vec<&str> = name.split('/').collect();
    let mut at = target.to_path_buf();
    for dir in &parts[..parts.len() - 1] {
        at.push(dir);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() && m.dev() == disk => {}
            Ok(m) if m.is_dir() => return Err(RefusedArtifact::OtherDisk(name.into()).into()),
            Ok(_) => return Err(RefusedArtifact::BadDirectory(name.into()).into()),
            Err(_) => return Err(RefusedArtifact::NotRegular(name.into()).into()),
        }
    }
    at.push(parts[parts.len() - 1]);
    // Refuse by `lstat` first: opening a FIFO, even O_NONBLOCK, is an effect on it.
    match std::fs::symlink_metadata(&at) {
        Ok(m) if m.file_type().is_file() && m.mode() & 0o004 == 0 => {
            return Err(RefusedArtifact::NotReadable(name.into()).into());
        }
        Ok(m) if m.file_type().is_file() => {}
        _ => return Err(RefusedArtifact::NotRegular(name.into()).into()),
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&at)
    {
        Ok(f) => f,
        // A link where the regular file was: the build's doing.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(RefusedArtifact::NotRegular(name.into()).into());
        }
        // Anything else (no file handles left, ...) is the host's, not the build's.
        Err(e) => return Err(CollectError::Host(format!("{}: {e}", at.display()))),
    };
    let m = file
        .metadata()
        .map_err(|e| CollectError::Host(format!("{}: {e}", at.display())))?;
    if !m.file_type().is_file() {
        return Err(RefusedArtifact::NotRegular(name.into()).into());
    }
    if m.dev() != disk {
        return Err(RefusedArtifact::OtherDisk(name.into()).into());
    }
    Ok(file)
}

enum CopyError {
    OverCap,
    Io(std::io::Error),
}

/// Streams `file` into a new file at `copy` (mode 0644 whatever the source's mode: no
/// setuid bit leaves the sandbox), hashing it; refuses past `cap` bytes (a sparse file's
/// size says nothing: the read stops at the cap). Returns the SHA-256 and the length.
fn copy_capped(file: File, copy: &Path, cap: u64) -> Result<([u8; 32], u64), CopyError> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(copy)
        .map_err(CopyError::Io)?;
    let mut reader = file.take(cap.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Io(e)),
        };
        len += n as u64;
        if len > cap {
            return Err(CopyError::OverCap);
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Io)?;
    }
    out.sync_all().map_err(CopyError::Io)?;
    Ok((hasher.finalize().into(), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const CAPS: Caps = Caps {
        per_file: 1 << 20,
        total: 3 << 19,
    };

    #[test]
    fn names_are_plain_relative_paths() {
        for ok in [
            "libx.rlib",
            "x86_64-unknown-linux-gnu/release/libx.rlib",
            "a/b",
        ] {
            assert!(valid_relative_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/shadow",
            "../x",
            "a/../../x",
            "a/./b",
            "./a",
            "a/",
            "a//b",
            "a\0b",
            "a/b/c/d/e",
            "lib a.rlib",
            "a\\b",
            "a\tb",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(!valid_relative_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn messages_give_names_and_forged_ones_are_kept_for_refusal() {
        let line = |pkg: &str, kind: &str, f: &str| {
            format!(
                r#"{{"reason":"compiler-artifact","package_id":"{pkg}","target":{{"kind":["{kind}"]}},"filenames":["{f}"]}}"#
            )
        };
        let lines = vec![
            line(
                "path+file:///opt/rustwide/source#x@0.1.0",
                "lib",
                "/opt/rustwide/target/t/release/libx.rlib",
            ),
            line(
                "path+file:///opt/rustwide/source#x@0.1.0",
                "lib",
                "/opt/rustwide/target/t/release/deps/libx-1.rmeta",
            ),
            line(
                "path+file:///opt/rustwide/source#x@0.1.0",
                "custom-build",
                "/opt/rustwide/target/release/build/x-1/build-script-build",
            ),
            line(
                "registry+https://github.com/rust-lang/crates.io-index#y@1.0.0",
                "lib",
                "/opt/rustwide/target/t/release/deps/liby-1.rlib",
            ),
            line(
                "path+file:///opt/rustwide/source#x@0.1.0",
                "lib",
                "/etc/shadow",
            ),
            "not json".into(),
        ];
        let names = names_from_messages(&lines);
        assert_eq!(names, ["/etc/shadow", "t/release/libx.rlib"]);
        assert!(!valid_relative_path(&names[0]));
    }

    fn disk() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::create_dir_all(target.join("t/release")).unwrap();
        let dest = d.path().join("copies");
        (d, target, dest)
    }

    fn refused(target: &Path, name: &str, dest: &Path) -> RefusedArtifact {
        match collect(target, &[name.to_string()], dest, CAPS) {
            Err(CollectError::Refused(r)) => r,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn regular_files_are_copied_with_their_hash_and_no_setuid_bit() {
        let (_d, target, dest) = disk();
        let f = target.join("t/release/libx.rlib");
        std::fs::write(&f, b"rlib bytes").unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
        let taken = collect(&target, &["t/release/libx.rlib".into()], &dest, CAPS).unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].sha256, crate::crypto::sha256(b"rlib bytes"));
        assert_eq!(std::fs::read(&taken[0].copy).unwrap(), b"rlib bytes");
        let mode = std::fs::metadata(&taken[0].copy).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o644);
    }

    #[test]
    fn links_fifos_and_bad_directories_are_refused_before_any_read() {
        let (d, target, dest) = disk();
        let canary = d.path().join("canary");
        std::fs::write(&canary, b"HOST SECRET").unwrap();
        symlink(&canary, target.join("t/release/abs.rlib")).unwrap();
        symlink("../../../canary", target.join("t/release/rel.rlib")).unwrap();
        symlink("/dev/zero", target.join("t/release/zero.rlib")).unwrap();
        let fifo = target.join("t/release/fifo.rlib");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for name in [
            "t/release/abs.rlib",
            "t/release/rel.rlib",
            "t/release/zero.rlib",
            "t/release/fifo.rlib",
            "t/release/missing.rlib",
        ] {
            assert_eq!(
                refused(&target, name, &dest),
                RefusedArtifact::NotRegular(name.into())
            );
        }
        // A directory on the way that is a link (to the host directory holding the canary).
        symlink(d.path(), target.join("t/up")).unwrap();
        assert_eq!(
            refused(&target, "t/up/canary", &dest),
            RefusedArtifact::BadDirectory("t/up/canary".into())
        );
        assert_eq!(
            refused(&target, "t/release/../../../canary", &dest),
            RefusedArtifact::BadName("t/release/../../../canary".into())
        );
        assert!(!dest.exists(), "nothing written for a refused build");
        // Readable only by its owner: refused on every member, whatever the host may read.
        let private = target.join("t/release/private.rlib");
        std::fs::write(&private, b"x").unwrap();
        std::fs::set_permissions(
            &private,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(
            refused(&target, "t/release/private.rlib", &dest),
            RefusedArtifact::NotReadable("t/release/private.rlib".into())
        );
        // More names than a manifest may hold.
        let many: Vec<String> = (0..700).map(|i| format!("t/release/{i:0>90}")).collect();
        assert!(matches!(
            collect(&target, &many, &dest, CAPS),
            Err(CollectError::Refused(RefusedArtifact::TooMany))
        ));
    }

    #[test]
    fn sizes_are_capped_per_file_and_in_total_whatever_the_file_says() {
        let (_d, target, dest) = disk();
        // Sparse: a terabyte by its size, nothing on disk.
        let f = std::fs::File::create(target.join("t/release/huge")).unwrap();
        f.set_len(1 << 40).unwrap();
        assert!(matches!(
            refused(&target, "t/release/huge", &dest),
            RefusedArtifact::TooLarge { cap, .. } if cap == CAPS.per_file
        ));
        // Two files under the per-file cap, together over the total.
        for n in ["a", "b"] {
            std::fs::write(target.join("t/release").join(n), vec![7u8; 1 << 20]).unwrap();
        }
        let r = collect(
            &target,
            &["t/release/a".into(), "t/release/b".into()],
            &dest,
            CAPS,
        );
        assert!(
            matches!(r, Err(CollectError::Refused(RefusedArtifact::TooLarge { cap, .. })) if cap == CAPS.total),
            "{r:?}"
        );
        assert!(!dest.exists());
    }
}
