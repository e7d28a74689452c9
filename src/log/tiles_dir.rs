//! `node --tiles-dir DIR`: the log's read API as plain files, so any web server, object
//! store or CDN serves it (C2SP tlog-tiles layout, as `node --http` serves it):
//!
//! ```text
//! DIR/checkpoint                    the latest cosigned checkpoint note (all its lines)
//! DIR/tile/<L>/<N>[.p/<W>]          hash tiles, every level
//! DIR/tile/entries/<N>[.p/<W>]      entry bundles
//! ```
//!
//! [`TilesDir::bring_up`] writes what the latest stored checkpoint covers and the previous
//! pass did not: the tiles that grew (a full tile once, never again; a partial one under its
//! width), then the checkpoint LAST, so a reader that fetches the checkpoint finds every
//! tile it names. Each file is written to a temporary name in its directory, fsynced and
//! renamed: after a crash a file is whole or absent, and the next pass (from size 0 at
//! start: full tiles present are kept, checked by size) writes what is missing. When a tile
//! becomes full its partial versions are removed after the new checkpoint is in place (a
//! reader holding an older checkpoint then asks again). Nothing here reads the network: the files are built from the redb store.
//!
//! The index needs no files of its own: it is a function of the entries, which a mirror
//! (`synchronicity mirror`) downloads and indexes again, checking the roots the checkpoint
//! signs.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::store::{LogStore, StoreError};
use super::tiles::{TILE_WIDTH, entry_bundle, format_index, width_in_tree};

/// Why the directory could not be brought up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TilesDirError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry over 65,535 bytes cannot go into a bundle.
    #[error("entry bundle {0}: an entry is over 65,535 bytes")]
    EntryTooLarge(u64),
}

/// The tiles directory and the size its files cover.
#[derive(Debug)]
pub struct TilesDir {
    dir: PathBuf,
    /// The checkpoint size written last (0: nothing yet).
    written: u64,
    /// The note written last (witnesses' cosignatures are added to a stored note later).
    note: String,
    /// Partial versions of tiles written full in this pass, removed after the checkpoint.
    stale: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TilesDirError + '_ {
    move |source| TilesDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` at `path` atomically (temp file in the same directory, fsync, rename).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TilesDirError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tile");
    let tmp = parent.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl TilesDir {
    /// The directory (created if missing); its files are checked on the first pass.
    pub fn new(dir: &Path) -> Result<Self, TilesDirError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            written: 0,
            note: String::new(),
            stale: Vec::new(),
        })
    }

    /// The size the files cover.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Brings the files up to the store's latest cosigned checkpoint; its size (`None`:
    /// nothing new). The same size with a new note (a witness cosigned it) rewrites only
    /// the checkpoint file.
    pub fn bring_up(&mut self, store: &LogStore) -> Result<Option<u64>, TilesDirError> {
        let Some(note) = store.latest_checkpoint()? else {
            return Ok(None);
        };
        let size = super::SignedNote::parse(&note)
            .ok()
            .and_then(|n| super::Checkpoint::parse(&n.text).ok())
            .map(|c| c.size)
            .ok_or_else(|| StoreError::Db("the stored checkpoint does not parse".into()))?;
        if size < self.written || note == self.note {
            return Ok(None);
        }
        for level in 0..=super::tiles::MAX_TILE_LEVEL {
            let span = 1u64 << (8 * u32::from(level));
            if size / span == 0 {
                break;
            }
            let first = (self.written / span) / TILE_WIDTH;
            let mut index = first;
            while let Some(width) = width_in_tree(level, index, size) {
                self.put_tile(store, &format!("{level}"), index, width, |s| {
                    s.tile_hashes(level, index, width)
                        .map(|t| {
                            t.ok_or_else(|| StoreError::Db(format!("no tile {level}/{index}")))
                        })
                        .and_then(|r| r)
                })?;
                index += 1;
            }
            // Entry bundles follow level 0's tiles.
            if level == 0 {
                let mut index = first;
                while let Some(width) = width_in_tree(0, index, size) {
                    self.put_tile(store, "entries", index, width, |s| {
                        let entries = s.entries(index * TILE_WIDTH, width)?;
                        entry_bundle(&entries).ok_or_else(|| {
                            StoreError::Db(format!("bundle {index}: entry too large"))
                        })
                    })?;
                    index += 1;
                }
            }
        }
        // The checkpoint last: every tile it names is in place.
        write_file(&self.dir.join("checkpoint"), note.as_bytes())?;
        // Partial tiles replaced by full ones go only now: until the new checkpoint was in
        // place, the old one named them.
        for partials in std::mem::take(&mut self.stale) {
            if partials.is_dir() {
                std::fs::remove_dir_all(&partials).map_err(io(&partials))?;
            }
        }
        self.written = size;
        self.note = note;
        Ok(Some(size))
    }

    /// Writes tile `kind/N` of `width` unless a whole one is there; a full tile replaces
    /// its partial versions.
    fn put_tile(
        &mut self,
        store: &LogStore,
        kind: &str,
        index: u64,
        width: u64,
        bytes: impl FnOnce(&LogStore) -> Result<Vec<u8>, StoreError>,
    ) -> Result<(), TilesDirError> {
        let base = self.dir.join("tile").join(kind).join(format_index(index));
        let path = if width == TILE_WIDTH {
            base.clone()
        } else {
            PathBuf::from(format!("{}.p", base.display())).join(width.to_string())
        };
        let bytes = bytes(store)?;
        // A file already there with the right length is one a previous pass wrote whole
        // (written by rename); hash tiles have a fixed length, bundles are compared whole.
        if std::fs::read(&path).is_ok_and(|have| have == bytes) {
            return Ok(());
        }
        write_file(&path, &bytes)?;
        if width == TILE_WIDTH {
            self.stale
                .push(PathBuf::from(format!("{}.p", base.display())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tiles::{TilePath, parse_tile_path};

    /// Every file under `dir/tile`, as (path, bytes).
    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.join("tile")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(dir.join("tile"))
                        .unwrap()
                        .display()
                        .to_string();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    /// The files are the store's tiles and bundles at the checkpoint's size, the checkpoint
    /// is the stored note, a pass with nothing new writes nothing, and a tile that became
    /// full replaces its partial versions.
    #[test]
    fn the_directory_holds_the_tiles_of_the_latest_checkpoint() {
        let tc = crate::testing::TestCommittee::new(4, 33);
        let tmp = tempfile::tempdir().unwrap();
        let store = LogStore::open(&tmp.path().join("log")).unwrap();
        let out = tmp.path().join("tiles");
        let mut tiles = TilesDir::new(&out).unwrap();
        assert_eq!(tiles.bring_up(&store).unwrap(), None, "no checkpoint yet");
        let entry = |i: u64| format!("entry {i}").into_bytes();
        let mut size = 0;
        for (height, n) in [(1u64, 300u64), (2, 3), (3, 250)] {
            let batch: Vec<_> = (size..size + n).map(entry).collect();
            size = store.append(&batch, Some(height)).unwrap().size;
            store.put_checkpoint(&tc.cosign_log(&store, size)).unwrap();
            assert_eq!(tiles.bring_up(&store).unwrap(), Some(size));
            assert_eq!(tiles.bring_up(&store).unwrap(), None, "nothing new");
            assert_eq!(
                std::fs::read_to_string(out.join("checkpoint")).unwrap(),
                store.latest_checkpoint().unwrap().unwrap()
            );
            for (path, bytes) in files(&out) {
                let tile = parse_tile_path(&path).unwrap_or_else(|| panic!("{path}"));
                let want = match tile {
                    TilePath::Hashes { level, index, .. } => store
                        .tile_hashes(level, index, tile.width())
                        .unwrap()
                        .unwrap(),
                    TilePath::Entries { index, .. } => {
                        entry_bundle(&store.entries(index * 256, tile.width()).unwrap()).unwrap()
                    }
                };
                assert_eq!(bytes, want, "{path} at size {size}");
                // Only the latest partial of each tile, and none beside a full one.
                if let Some(w) = path.strip_suffix(&format!("/{}", tile.width()))
                    && w.ends_with(".p")
                {
                    assert!(
                        !out.join("tile").join(w.trim_end_matches(".p")).exists(),
                        "{path}"
                    );
                }
            }
        }
        // At 553 entries: bundles 000, 001 full, 002.p/41; level-0 tiles the same; level 1:
        // 001.p/2 is there (two full level-0 tiles).
        let names: Vec<String> = files(&out).into_iter().map(|(p, _)| p).collect();
        for want in [
            "entries/000",
            "entries/001",
            "entries/002.p/41",
            "0/000",
            "0/001",
            "0/002.p/41",
            "1/000.p/2",
        ] {
            assert!(names.contains(&want.to_string()), "{want} in {names:?}");
        }
        assert!(
            !names.iter().any(|p| p.starts_with("entries/001.p/")),
            "{names:?}"
        );
    }
}
