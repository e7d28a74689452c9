//! The member's build logs (`DIR/build-logs/<request id>.log`), served over HTTP
//! (`/build-log/<id>`) so that anyone can read why a build failed or what it printed when it
//! was not reproduced.
//!
//! The text is a crate's build output: hostile. It is kept as bytes (served as
//! `text/plain` with `nosniff`), only its last [`MAX_LOG`] bytes, and at most [`MAX_LOGS`]
//! files (the oldest go first).
//!
//! Crash safety: a log is written atomically (`node_dir::write_atomic`: temp file, fsync,
//! rename, directory fsync); a crash leaves at worst a temp file, removed when the store
//! opens.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most bytes kept of one log (its end: where a build says why it stopped).
pub const MAX_LOG: u64 = 256 * 1024;
/// Most logs kept.
pub const MAX_LOGS: usize = 2000;

/// The directory of kept build logs.
#[derive(Debug)]
pub struct BuildLogs {
    dir: PathBuf,
}

impl BuildLogs {
    /// Opens (creates) the store in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for e in std::fs::read_dir(dir)?.flatten() {
            if e.file_name().to_string_lossy().contains(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Keeps the end of the log at `log` as request `id`'s, then drops the oldest logs
    /// over [`MAX_LOGS`].
    pub fn keep(&self, id: &[u8; 32], log: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(log)?;
        if !meta.is_file() {
            return Err(std::io::Error::other("the build log is not a regular file"));
        }
        let mut f = std::fs::File::open(log)?;
        let start = meta.len().saturating_sub(MAX_LOG);
        f.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        f.take(MAX_LOG).read_to_end(&mut bytes)?;
        let mut kept = Vec::with_capacity(bytes.len() + 64);
        if start > 0 {
            kept.extend_from_slice(format!("[the first {start} bytes are not kept]\n").as_bytes());
        }
        kept.extend_from_slice(&bytes);
        crate::node_dir::write_atomic(&path_of(&self.dir, id), &kept)
            .map_err(std::io::Error::other)?;
        self.prune()
    }

    fn prune(&self) -> std::io::Result<()> {
        let mut logs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.dir)?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if logs.len() <= MAX_LOGS {
            return Ok(());
        }
        logs.sort();
        for (_, p) in &logs[..logs.len() - MAX_LOGS] {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }
}

fn path_of(dir: &Path, id: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.log", hex::encode(id)))
}

/// Request `id`'s kept log in the node directory `node_dir`, if there is one (at most
/// [`MAX_LOG`] bytes and a note).
pub fn read(node_dir: &Path, id: &[u8; 32]) -> Option<Vec<u8>> {
    let path = path_of(&node_dir.join("build-logs"), id);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .ok()?
        .take(MAX_LOG + 1024)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_log_is_kept_and_the_oldest_logs_go() {
        let dir = tempfile::tempdir().unwrap();
        let logs = BuildLogs::open(&dir.path().join("build-logs")).unwrap();
        let src = dir.path().join("build.log");
        let mut text = "x".repeat(MAX_LOG as usize);
        text.push_str("error: the end\n");
        std::fs::write(&src, &text).unwrap();
        logs.keep(&[1; 32], &src).unwrap();
        let kept = String::from_utf8(read(dir.path(), &[1; 32]).unwrap()).unwrap();
        assert!(
            kept.starts_with("[the first 15 bytes are not kept]\n"),
            "{}",
            &kept[..40]
        );
        assert!(kept.ends_with("error: the end\n"));
        assert_eq!(read(dir.path(), &[2; 32]), None);
        // A link is not followed.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.log")).unwrap();
        assert!(logs.keep(&[3; 32], &dir.path().join("link.log")).is_err());
        std::os::unix::fs::symlink(
            "/etc/passwd",
            dir.path()
                .join("build-logs")
                .join(format!("{}.log", hex::encode([4; 32]))),
        )
        .unwrap();
        assert_eq!(read(dir.path(), &[4; 32]), None);
    }
}
