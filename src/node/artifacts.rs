//! The member's artifact store: the files of its successful builds, content-addressed by
//! sha256 (`DIR/artifacts/<hex>`), served to anyone in chunks on the light protocol. A
//! client checks every file against the manifest the group attested, so the store is not
//! trusted: it only has to be available.
//!
//! Bounds: the total size is at most `max_bytes` (node.toml `[artifacts] max_mib`); putting a
//! file evicts the least recently stored ones until it fits; one file is at most
//! [`MAX_ARTIFACT`]. A chunk is at most [`MAX_CHUNK`] bytes.
//!
//! Crash safety: a file is written to `<hex>.tmp`, fsynced and renamed; a crash leaves at
//! worst a `.tmp` file, removed when the store opens.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::crypto::sha256;

/// Largest chunk of one answer, and largest artifact stored (the light protocol's bounds).
pub use synchronicity_light::{MAX_ARTIFACT, MAX_CHUNK};

/// A size-bounded, content-addressed file store.
#[derive(Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
    max_bytes: u64,
    /// Serialises puts (eviction reads the directory).
    lock: Mutex<()>,
}

impl ArtifactStore {
    /// Opens (creates) the store in `dir`, holding at most `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for e in std::fs::read_dir(dir)?.flatten() {
            if e.path().extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            lock: Mutex::new(()),
        })
    }

    fn path(&self, sha: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(sha))
    }

    /// Stores `bytes` under their sha256 (a no-op if present); evicts the oldest files
    /// until the store fits its bound. Returns the sha256.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<[u8; 32]> {
        let sha = sha256(bytes);
        if bytes.len() as u64 > MAX_ARTIFACT.min(self.max_bytes) {
            return Err(std::io::Error::other(format!(
                "artifact of {} bytes is over the store's bound",
                bytes.len()
            )));
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path(&sha);
        if path.is_file() {
            return Ok(sha);
        }
        self.evict(self.max_bytes - bytes.len() as u64)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(sha)
    }

    /// Stores the file at `path` (a builder's copy of an artifact, at most [`MAX_ARTIFACT`]
    /// bytes by the builder's cap) without reading it into memory: hashed, then copied to a
    /// temporary file, synced and renamed (a crash leaves a `.tmp` that the next `put` of
    /// the same bytes replaces). Returns the sha256.
    pub fn put_file(&self, path: &std::path::Path) -> std::io::Result<[u8; 32]> {
        use sha2::Digest;
        let len = std::fs::metadata(path)?.len();
        if len > MAX_ARTIFACT.min(self.max_bytes) {
            return Err(std::io::Error::other(format!(
                "artifact of {len} bytes is over the store's bound"
            )));
        }
        let mut hasher = sha2::Sha256::new();
        std::io::copy(
            &mut std::fs::File::open(path)?.take(len),
            &mut HashWriter(&mut hasher),
        )?;
        let sha: [u8; 32] = hasher.finalize().into();
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let dest = self.path(&sha);
        if dest.is_file() {
            return Ok(sha);
        }
        self.evict(self.max_bytes - len)?;
        let tmp = dest.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        std::io::copy(&mut std::fs::File::open(path)?.take(len), &mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        Ok(sha)
    }

    /// Removes the least recently stored files until at most `keep` bytes remain.
    fn evict(&self, keep: u64) -> std::io::Result<()> {
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)?
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let modified = m.modified().ok()?;
                m.is_file().then(|| (modified, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= keep {
                break;
            }
            std::fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }

    /// Up to `max` (at most [`MAX_CHUNK`]) bytes of the file `sha` from `offset`, and its
    /// total size; `None` if the store does not have it.
    pub fn chunk(
        &self,
        sha: &[u8; 32],
        offset: u64,
        max: usize,
    ) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        let mut f = match std::fs::File::open(self.path(sha)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let total = f.metadata()?.len();
        let offset = offset.min(total);
        f.seek(SeekFrom::Start(offset))?;
        let want = (total - offset).min(max.min(MAX_CHUNK) as u64) as usize;
        let mut buf = vec![0u8; want];
        f.read_exact(&mut buf)?;
        Ok(Some((total, buf)))
    }
}

/// Feeds written bytes to a hasher.
struct HashWriter<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_file_and_the_bound_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path(), 3 * MAX_CHUNK as u64).unwrap();
        let big: Vec<u8> = (0..(2 * MAX_CHUNK + 10)).map(|i| i as u8).collect();
        let sha = store.put(&big).unwrap();
        let mut got = Vec::new();
        while got.len() < big.len() {
            let (total, part) = store
                .chunk(&sha, got.len() as u64, usize::MAX)
                .unwrap()
                .unwrap();
            assert_eq!(total, big.len() as u64);
            assert!(part.len() <= MAX_CHUNK && !part.is_empty());
            got.extend(part);
        }
        assert_eq!(got, big);
        // Past the end: an empty chunk, not an error.
        let (_, tail) = store.chunk(&sha, 1 << 40, 10).unwrap().unwrap();
        assert!(tail.is_empty());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let other = store.put(&vec![7u8; 2 * MAX_CHUNK]).unwrap();
        assert!(
            store.chunk(&sha, 0, 1).unwrap().is_none(),
            "the oldest went"
        );
        assert!(store.chunk(&other, 0, 1).unwrap().is_some());
        assert!(
            store.put(&vec![1u8; 4 * MAX_CHUNK]).is_err(),
            "over the bound"
        );
    }
}
