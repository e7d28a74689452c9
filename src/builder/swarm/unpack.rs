//! A worker's results, unpacked on the host: a tar stream that came out of a task on
//! another engine, as hostile as the build that wrote it (and as the worker that sent it).
//!
//! - Only what a build directory holds is made: directories, regular files, hard links to a
//!   file this stream made, and symbolic links (made as links, never followed: the artifact
//!   walker refuses them by `lstat`, as on the host's own disk). FIFOs, devices and
//!   anything else are skipped and counted.
//! - Every entry lands under `dest` through directories this stream made: a path whose
//!   parent is not one (a link, a file, nothing) is refused, so no entry can write through
//!   a link. Names are relative, of normal components only, at most 4 KiB.
//! - Files are created `O_EXCL | O_NOFOLLOW` (an entry repeated is refused), their modes
//!   kept to `0o777` (no set-id bits): a file the build made unreadable stays unreadable,
//!   and the artifact walker says so as it would on the host.
//! - Bounded: at most `max_bytes` of file data (a file past it is skipped, its data never
//!   read: a sparse file of a terabyte in a gigabyte's disk stays a header) and
//!   [`MAX_ENTRIES`] entries (past them the stream is refused).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The most entries one stream may hold.
pub(super) const MAX_ENTRIES: usize = 1_000_000;
/// The longest entry name, in bytes.
const MAX_NAME: usize = 4096;

/// What was unpacked.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Unpacked {
    pub(super) files: usize,
    pub(super) bytes: u64,
    /// Entries not made (FIFOs, devices, ...).
    pub(super) skipped: usize,
}

/// Why a stream was not unpacked.
#[derive(Debug)]
pub(super) enum Unpack {
    /// `dest`'s filesystem is full (bytes or inodes).
    NoSpace,
    /// The stream is not one a build directory gives, in one line.
    Refused(String),
}

impl From<String> for Unpack {
    fn from(e: String) -> Self {
        Self::Refused(e)
    }
}

/// An I/O error at `rel`: a full filesystem, or a refusal.
fn io_error(rel: &Path, e: std::io::Error) -> Unpack {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => Unpack::NoSpace,
        _ => Unpack::Refused(format!("results: {}: {e}", rel.display())),
    }
}

/// Unpacks the tar stream `from` into the existing directory `dest`.
pub(super) fn unpack(from: impl Read, dest: &Path, max_bytes: u64) -> Result<Unpacked, Unpack> {
    let mut archive = tar::Archive::new(from);
    let mut dirs: HashSet<PathBuf> = HashSet::from([PathBuf::new()]);
    let mut files: HashSet<PathBuf> = HashSet::new();
    let mut done = Unpacked::default();
    let entries = archive.entries().map_err(|e| format!("results: {e}"))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(format!("results: more than {MAX_ENTRIES} entries").into());
        }
        let mut entry = entry.map_err(|e| format!("results: {e}"))?;
        let raw = entry.path_bytes().into_owned();
        let rel = relative(&raw)?;
        if rel.as_os_str().is_empty() {
            continue; // `./` itself
        }
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if !dirs.contains(&parent) {
            return Err(format!(
                "results: {} is not under a directory of the stream",
                rel.display()
            )
            .into());
        }
        let out = dest.join(&rel);
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        if kind.is_dir() {
            if dirs.contains(&rel) {
                continue;
            }
            std::fs::create_dir(&out).map_err(|e| io_error(&rel, e))?;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(|e| io_error(&rel, e))?;
            dirs.insert(rel);
        } else if kind.is_file() || kind == tar::EntryType::GNUSparse {
            // A sparse file's size is its whole length (the stream holds its data only).
            let size = entry.size();
            if size > max_bytes.saturating_sub(done.bytes) {
                // Not made, and its data not read: an artifact missing here is refused as
                // the host's walker refuses one over its cap (`forbidden-output`), and a
                // file no artifact names matters to nobody, as on the host's own disk.
                done.skipped += 1;
                continue;
            }
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&out)
                .map_err(|e| io_error(&rel, e))?;
            let copied = std::io::copy(&mut (&mut entry).take(size), &mut f)
                .map_err(|e| io_error(&rel, e))?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_error(&rel, e))?;
            done.bytes += copied;
            done.files += 1;
            files.insert(rel);
        } else if kind == tar::EntryType::Link {
            let to = entry
                .link_name_bytes()
                .ok_or_else(|| format!("results: {}: a hard link to nothing", rel.display()))?;
            let to = relative(&to)?;
            if !files.contains(&to) {
                return Err(format!(
                    "results: {} links to {}, not a file of the stream",
                    rel.display(),
                    to.display()
                )
                .into());
            }
            std::fs::hard_link(dest.join(&to), &out).map_err(|e| io_error(&rel, e))?;
            done.files += 1;
            files.insert(rel);
        } else if kind == tar::EntryType::Symlink {
            let to = entry
                .link_name_bytes()
                .ok_or_else(|| format!("results: {}: a link to nothing", rel.display()))?;
            let to = std::ffi::OsStr::from_bytes(&to);
            std::os::unix::fs::symlink(to, &out).map_err(|e| io_error(&rel, e))?;
        } else {
            done.skipped += 1;
        }
    }
    Ok(done)
}

/// A tar name as a relative path of normal components (`./` prefixes dropped).
fn relative(raw: &[u8]) -> Result<PathBuf, String> {
    if raw.len() > MAX_NAME {
        return Err(format!("results: a name of {} bytes", raw.len()));
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            _ => return Err(format!("results: entry {:?} leaves its directory", path)),
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h
    }

    /// A stream of (name, kind, link or contents); names written as they are (the tar
    /// crate's own builder refuses `..` and absolute names, a hostile stream need not).
    fn stream(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let linked = matches!(*kind, tar::EntryType::Symlink | tar::EntryType::Link);
            let body = if *kind == tar::EntryType::Regular {
                data.as_bytes()
            } else {
                &[]
            };
            let mut h = header(*kind, body.len() as u64, 0o644);
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            if linked {
                h.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
            }
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Fifo, Link as H, Regular as F, Symlink as L};

    #[test]
    fn a_build_tree_is_made_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let s = stream(&[
            ("./", D, ""),
            ("./release/", D, ""),
            ("./release/deps/", D, ""),
            ("./release/deps/libx-1.rlib", F, "rlib"),
            ("./release/libx.rlib", H, "release/deps/libx-1.rlib"),
            ("./release/up", L, "../../etc"),
            ("./release/fifo", Fifo, ""),
        ]);
        let done = unpack(&s[..], d.path(), 100).unwrap();
        assert_eq!(
            done,
            Unpacked {
                files: 2,
                bytes: 4,
                skipped: 1
            }
        );
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap();
        assert_eq!(read("release/libx.rlib"), "rlib");
        let up = std::fs::symlink_metadata(d.path().join("release/up")).unwrap();
        assert!(up.file_type().is_symlink());
        assert!(!d.path().join("release/fifo").exists());
    }

    #[test]
    fn nothing_is_written_through_a_link_or_outside() {
        let outside = tempfile::tempdir().unwrap();
        let at = outside.path().display().to_string();
        for (why, entries) in [
            (
                "through a link",
                vec![("l", L, at.as_str()), ("l/x", F, "x")],
            ),
            ("parent", vec![("../x", F, "x")]),
            ("absolute", vec![("/tmp/x", F, "x")]),
            ("no parent made", vec![("a/x", F, "x")]),
            ("under a file", vec![("a", F, "a"), ("a/x", F, "x")]),
            ("twice", vec![("a", F, "a"), ("a", F, "b")]),
            (
                "a file over a link",
                vec![("a", L, at.as_str()), ("a", F, "b")],
            ),
            ("hard link out", vec![("a", H, "/etc/passwd")]),
            ("hard link to a dir", vec![("d/", D, ""), ("a", H, "d")]),
        ] {
            let d = tempfile::tempdir().unwrap();
            let s = stream(&entries);
            assert!(unpack(&s[..], d.path(), 100).is_err(), "{why}");
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_past_the_bound_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let s = stream(&[("a", F, "12345"), ("b", F, "6789012"), ("c", F, "xy")]);
        let done = unpack(&s[..], d.path(), 9).unwrap();
        assert_eq!((done.files, done.bytes, done.skipped), (2, 7, 1));
        assert!(!d.path().join("b").exists());
        let d = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&s[..], d.path(), 14).unwrap().bytes, 14);
    }
}
