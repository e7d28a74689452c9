//! `log fsck`: recompute everything from the entries and compare with what is stored.
//! Reports the FIRST inconsistency; a clean run proves the store invariants of
//! [`super::store`].

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::Checkpoint;
use super::merkle::{self, Hash, HashReader};
use super::store::{CHECKPOINTS, ENTRIES, HASHES, LogStore, META, TableHashes};
use super::{CosignedCheckpoint, SignedNote};
use crate::committee::Committee;
use crate::protocol::LogEntry;
use crate::verify::index::{IndexBuilder, IndexRoots};

/// What a clean fsck checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// Records.
    pub size: u64,
    /// Stored hashes recomputed.
    pub hashes: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Root at `size`.
    pub root: Hash,
    /// Last applied consensus height.
    pub applied_height: Option<u64>,
    /// The index roots at `size`, recomputed from the entries and equal to the stored
    /// ones (`None`: the index has no roots at `size`, as a log written before the index
    /// until its next append).
    pub index: Option<IndexRoots>,
}

/// The first inconsistency found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsckError {
    /// The store could not be read.
    #[error("cannot read the store: {0}")]
    Read(String),
    /// An entry is missing or out of place.
    #[error("entry {index}: {reason}")]
    Entry {
        /// Record index.
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A stored hash differs from its recomputation or is missing.
    #[error("stored hash (level {level}, index {index}): {reason}")]
    Hash {
        /// Level.
        level: u8,
        /// Index.
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// More hashes are stored than a tree of this size has.
    #[error("{found} stored hashes, a tree of {size} records has {expected}")]
    HashCount {
        /// Size.
        size: u64,
        /// Expected count.
        expected: u64,
        /// Stored count.
        found: u64,
    },
    /// The log's committee changes do not verify from the genesis.
    #[error("committee changes: {0}")]
    Epochs(String),
    /// The index's roots at the log size are not the entries'.
    #[error("index roots at size {size}: {reason}")]
    Index {
        /// The log size.
        size: u64,
        /// What is wrong.
        reason: String,
    },
    /// A stored checkpoint is inconsistent with the tree.
    #[error("checkpoint at size {size}: {reason}")]
    Checkpoint {
        /// The key it is stored under.
        size: u64,
        /// What is wrong.
        reason: String,
    },
}

fn read<E: std::fmt::Display>(e: E) -> FsckError {
    FsckError::Read(e.to_string())
}

/// Checks every entry, hash and checkpoint; with `committee` (the genesis), also every
/// committee change the log records (with the previous committee's keys) and every
/// checkpoint's threshold signature, by the committee of its epoch within that epoch's sizes.
pub fn fsck(store: &LogStore, committee: Option<&Committee>) -> Result<FsckReport, FsckError> {
    let epochs = committee
        .map(|g| super::stored_epochs(g, store))
        .transpose()
        .map_err(|e| FsckError::Epochs(e.to_string()))?;
    let txn = store.database().begin_read().map_err(read)?;
    let meta = txn.open_table(META).map_err(read)?;
    let size = meta
        .get("size")
        .map_err(read)?
        .map(|v| v.value())
        .unwrap_or(0);
    let applied_height = meta.get("applied_height").map_err(read)?.map(|v| v.value());
    let entries = txn.open_table(ENTRIES).map_err(read)?;
    let hashes = txn.open_table(HASHES).map_err(read)?;
    let stored = TableHashes(&hashes);

    // Stream the entries in order, keeping the right edge of the tree (roots of the
    // complete subtrees so far, lowest level last) to recompute every stored hash.
    let mut edge: Vec<Hash> = Vec::new();
    let mut expected_hashes = 0u64;
    // And the index, by its definition (every entry that decodes, under its spec).
    let mut index = IndexBuilder::default();
    let mut next = 0u64;
    for item in entries.iter().map_err(read)? {
        let (k, v) = item.map_err(read)?;
        let n = k.value();
        if n != next {
            let index = next.min(n);
            return Err(FsckError::Entry {
                index,
                reason: if n > next { "missing" } else { "out of order" },
            });
        }
        if n >= size {
            return Err(FsckError::Entry {
                index: n,
                reason: "beyond the recorded size",
            });
        }
        let reads = merkle::append_reads(n);
        let siblings: Vec<Hash> = edge
            .split_off(edge.len() - reads.len())
            .into_iter()
            .rev()
            .collect();
        let leaf = merkle::leaf_hash(v.value());
        if let Ok(entry) = LogEntry::decode(v.value()) {
            index
                .push(n, &entry.request.spec(), leaf)
                .map_err(|e| FsckError::Index {
                    size,
                    reason: format!("entry {n}: {e}"),
                })?;
        }
        let computed = merkle::hashes_to_store(n, leaf, &siblings);
        for (idx, h) in &computed {
            match stored.read_hashes(&[*idx]) {
                Ok(got) if got[0] == *h => {}
                Ok(_) => {
                    return Err(FsckError::Hash {
                        level: idx.level,
                        index: idx.index,
                        reason: "differs from its recomputation",
                    });
                }
                Err(_) => {
                    return Err(FsckError::Hash {
                        level: idx.level,
                        index: idx.index,
                        reason: "missing",
                    });
                }
            }
        }
        expected_hashes += computed.len() as u64;
        edge.push(computed.last().expect("at least the leaf").1);
        next += 1;
    }
    if next != size {
        return Err(FsckError::Entry {
            index: next,
            reason: "missing (the recorded size is larger)",
        });
    }
    let found = hashes.len().map_err(read)?;
    if found != expected_hashes {
        return Err(FsckError::HashCount {
            size,
            expected: expected_hashes,
            found,
        });
    }
    // Stored hashes are now known good, so tree hashes computed from them are too.
    let root = merkle::tree_hash(size, &stored).map_err(read)?;
    let index_err = |reason: String| FsckError::Index { size, reason };
    let index = match super::index::roots_at(&txn, size).map_err(read)? {
        Some(stored) => {
            let ours = index.roots().map_err(|e| index_err(e.to_string()))?;
            if ours != stored {
                return Err(index_err(
                    "the stored roots are not the entries' (recomputed from every entry)".into(),
                ));
            }
            Some(ours)
        }
        None => None,
    };

    let cps = txn.open_table(CHECKPOINTS).map_err(read)?;
    let mut checkpoints = 0;
    for item in cps.iter().map_err(read)? {
        let (k, v) = item.map_err(read)?;
        let key = k.value();
        let bad = |reason: String| FsckError::Checkpoint { size: key, reason };
        let note = v.value();
        let parsed = SignedNote::parse(note).map_err(|e| bad(e.to_string()))?;
        let cp = Checkpoint::parse(&parsed.text).map_err(|e| bad(e.to_string()))?;
        if cp.size != key {
            return Err(bad(format!("stored under size {key} but says {}", cp.size)));
        }
        if cp.size > size {
            return Err(bad(format!("beyond the log size {size}")));
        }
        let at = merkle::tree_hash(cp.size, &stored).map_err(|e| bad(e.to_string()))?;
        if at != cp.root {
            return Err(bad("root differs from the tree's".into()));
        }
        // Its index line is the index's roots at its size (none for a size before the
        // index existed).
        let want: Vec<String> = super::index::roots_at(&txn, cp.size)
            .map_err(|e| bad(e.to_string()))?
            .map(|r| r.extension_line())
            .into_iter()
            .collect();
        if cp.extensions != want {
            return Err(bad(
                "its extension lines are not the index's roots at its size".into(),
            ));
        }
        if let Some(epochs) = &epochs {
            // The committee whose key the note names, inside its epoch's sizes.
            let e = epochs
                .iter()
                .find(|e| {
                    parsed
                        .signatures
                        .iter()
                        .any(|s| s.name == e.committee.origin() && s.key_id == e.committee.key_id())
                })
                .ok_or_else(|| bad("signed by no committee of the log's epochs".into()))?;
            if cp.size < e.start || e.end.is_some_and(|end| cp.size > end) {
                return Err(bad(format!(
                    "signed by epoch {}, whose sizes are {}..={}",
                    e.committee.epoch(),
                    e.start,
                    e.end.map_or("".into(), |x| x.to_string())
                )));
            }
            CosignedCheckpoint::verify(note, &e.committee).map_err(|e| bad(e.to_string()))?;
        }
        checkpoints += 1;
    }
    Ok(FsckReport {
        size,
        hashes: expected_hashes,
        checkpoints,
        root,
        applied_height,
        index,
    })
}
