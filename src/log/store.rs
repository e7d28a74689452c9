//! The durable log on redb: entries, stored hashes, cosigned checkpoints, the tree size
//! and the last applied consensus height, in one database file `DIR/log.redb`.
//!
//! Durability: every append batch is ONE redb write transaction committed with
//! `Durability::Immediate` — redb writes the new pages, fsyncs, then flips the commit slot
//! and fsyncs again. A crash before `commit` returns leaves the previous committed state (no
//! entry of the batch, old size, old height); after it returns, the whole batch is on disk.
//! Nothing half-written is ever visible, because readers only see committed transactions.
//!
//! Invariants after every commit (checked by [`super::fsck`]):
//! `size` entries with keys `0..size`; exactly the stored hashes of a tree of `size`
//! records, each equal to its recomputation; every checkpoint's root equals the tree hash
//! at its size, and its size is at most `size`.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};

use super::CosignedCheckpoint;
use super::ProofFile;
use super::merkle::{self, Hash, HashIndex, HashReader, MerkleError};
use crate::verify::index::IndexRoots;

pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const HASHES: TableDefinition<u64, [u8; 32]> = TableDefinition::new("hashes");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const CHECKPOINTS: TableDefinition<u64, &str> = TableDefinition::new("checkpoints");
/// The consensus record of each applied height (the decided block and its commit
/// certificate, opaque here), served to members that catch up.
pub(crate) const DECIDED: TableDefinition<u64, &[u8]> = TableDefinition::new("decided");
/// Request id (hex) → entry index. A request is decided once, so each key is written once.
pub(crate) const KEYS: TableDefinition<&str, u64> = TableDefinition::new("keys");
/// `crate@version` → the indexes of every variant's entry (features, lockfile, attempt...).
pub(crate) const VARIANTS: MultimapTableDefinition<&str, u64> =
    MultimapTableDefinition::new("variants");
/// Content-addressed texts that entries pin by sha256 (lockfiles, manifests).
pub(crate) const BLOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// The protocol's open rounds as of the applied height (request id → CBOR row), written in
/// the same transaction as each height so a restart loads them instead of replaying.
pub(crate) const ROUNDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("open_rounds");
/// Epoch → the index of the committee-change entry that began it (epochs after the genesis),
/// written in the same transaction as the height whose block ended the previous epoch.
pub(crate) const EPOCHS: TableDefinition<u64, u64> = TableDefinition::new("epochs");
pub(crate) const SIZE: &str = "size";
const APPLIED_HEIGHT: &str = "applied_height";
const APPLIED_TIME: &str = "applied_time_ms";

/// The database file inside a store directory.
pub const STORE_FILE: &str = "log.redb";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (a running node?) holds the store.
    #[error("{0}: the log store is in use by another process")]
    InUse(PathBuf),
    /// No store at the path.
    #[error("{0}: no log store here")]
    Missing(PathBuf),
    /// redb or I/O failure.
    #[error("log store: {0}")]
    Db(String),
    /// A proof or tree hash could not be computed.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// A record index beyond the log.
    #[error("no entry {index} in a log of size {size}")]
    NoEntry {
        /// Asked.
        index: u64,
        /// Log size.
        size: u64,
    },
    /// A checkpoint that does not describe this log.
    #[error("checkpoint for size {size} does not match this log: {reason}")]
    CheckpointMismatch {
        /// Checkpoint size.
        size: u64,
        /// Why.
        reason: &'static str,
    },
    /// The batch would grow the tree beyond [`merkle::MAX_TREE_SIZE`].
    #[error("the log is full")]
    Full,
}

fn db_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Reads stored hashes from any redb table view (read or write transaction).
pub(crate) struct TableHashes<'t, T>(pub(crate) &'t T);

impl<T: ReadableTable<u64, [u8; 32]>> HashReader for TableHashes<'_, T> {
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|i| match self.0.get(i.key()) {
                Ok(Some(v)) => Ok(v.value()),
                Ok(None) => Err(MerkleError::Storage(format!("missing hash {i:?}"))),
                Err(e) => Err(MerkleError::Storage(e.to_string())),
            })
            .collect()
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Index of the batch's first entry.
    pub first_index: u64,
    /// Tree size after the batch.
    pub size: u64,
    /// False when the height had already been applied: nothing was written.
    pub applied: bool,
}

/// An entry to append with what indexes it: its request id, its `crate@version`, and the
/// texts it pins by sha256 (stored content-addressed, so a light client can fetch them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The entry's CBOR bytes (the leaf).
    pub bytes: Vec<u8>,
    /// Its request id.
    pub request_id: [u8; 32],
    /// `crate@version`.
    pub spec: String,
    /// Texts the entry pins by sha256 (lockfile, manifest).
    pub blobs: Vec<Vec<u8>>,
}

/// An open round's stored row: request id and CBOR.
pub type RoundRow = ([u8; 32], Vec<u8>);

/// A decided consensus height as the store records it with its entries.
#[derive(Debug, Clone, Copy)]
pub struct Height<'a> {
    /// The height.
    pub height: u64,
    /// Its block time (ms).
    pub time_ms: u64,
    /// The consensus record (block and certificate, opaque here); empty: none kept.
    pub record: &'a [u8],
    /// Open-round rows it changed: the new row, or `None` for a round it closed.
    pub rounds: &'a [([u8; 32], Option<Vec<u8>>)],
    /// The committee change its block ended the epoch with: the new epoch and the change
    /// entry, appended after the height's other entries.
    pub change: Option<(u64, &'a [u8])>,
}

impl Height<'static> {
    /// A height with no consensus record and no open rounds (tools and tests).
    pub fn bare(height: u64, time_ms: u64) -> Self {
        Self {
            height,
            time_ms,
            record: &[],
            rounds: &[],
            change: None,
        }
    }
}

/// The durable log.
#[derive(Debug)]
pub struct LogStore {
    db: Database,
    dir: PathBuf,
}

impl LogStore {
    /// Opens the store in `dir`, creating the directory and an empty log if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let db = Database::create(dir.join(STORE_FILE)).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(dir.to_path_buf()),
            e => db_err(e),
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            // Create the tables so read transactions always find them.
            txn.open_table(ENTRIES).map_err(db_err)?;
            txn.open_table(HASHES).map_err(db_err)?;
            txn.open_table(META).map_err(db_err)?;
            txn.open_table(CHECKPOINTS).map_err(db_err)?;
            txn.open_table(DECIDED).map_err(db_err)?;
            txn.open_table(KEYS).map_err(db_err)?;
            txn.open_multimap_table(VARIANTS).map_err(db_err)?;
            txn.open_table(BLOBS).map_err(db_err)?;
            txn.open_table(ROUNDS).map_err(db_err)?;
            txn.open_table(EPOCHS).map_err(db_err)?;
            txn.open_table(super::index::PAGES).map_err(db_err)?;
            txn.open_table(super::index::ROOTS).map_err(db_err)?;
            txn.open_table(super::index::INDEXED).map_err(db_err)?;
            txn.open_multimap_table(super::index::VERSIONS)
                .map_err(db_err)?;
        }
        // A log written before the index gets it now, in this transaction (a crash before
        // the commit leaves none, and the next open builds it again).
        let size = txn
            .open_table(META)
            .map_err(db_err)?
            .get(SIZE)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        super::index::build_missing(&txn, size)?;
        super::index::upgrade_layout(&txn, size)?;
        txn.commit().map_err(db_err)?;
        Ok(Self {
            db,
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing store (for operator commands that must not create one).
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        if !dir.join(STORE_FILE).is_file() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        Self::open(dir)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|v| v.value()))
    }

    /// Number of records.
    pub fn size(&self) -> Result<u64, StoreError> {
        Ok(self.meta(SIZE)?.unwrap_or(0))
    }

    /// The last consensus height applied, if any.
    pub fn applied_height(&self) -> Result<Option<u64>, StoreError> {
        self.meta(APPLIED_HEIGHT)
    }

    /// Appends `entries` and records `height` as applied, in ONE durable transaction.
    /// Idempotent per height: if `height` is at or below the applied height, nothing is
    /// written and `applied` is false. `entries` may be empty (a height that logged nothing).
    pub fn append(&self, entries: &[Vec<u8>], height: Option<u64>) -> Result<Appended, StoreError> {
        let bytes: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let height = height.map(|h| Height::bare(h, 0));
        self.append_inner(&bytes, &[], height)
    }

    /// Applies a decided consensus height in ONE durable transaction: appends `entries`,
    /// indexes each by request id and `crate@version`, stores the texts they pin, stores
    /// the height's record (the block and its certificate), writes the open-round rows it
    /// changed, and records the height (and its block time) as applied. Idempotent per
    /// height like [`LogStore::append`]. After a crash anywhere before the commit, the
    /// previous height's entries, rows and record are what a restart finds, and consensus
    /// decides (or fetches) this height again.
    pub fn append_decided(
        &self,
        entries: &[NewEntry],
        height: Height<'_>,
    ) -> Result<Appended, StoreError> {
        let bytes: Vec<&[u8]> = entries.iter().map(|e| e.bytes.as_slice()).collect();
        self.append_inner(&bytes, entries, Some(height))
    }

    /// The applied height's block time and the open rounds stored with it (what
    /// [`Height::rounds`] left), to restore the protocol state.
    pub fn open_rounds(&self) -> Result<(u64, Vec<RoundRow>), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let time = meta
            .get(APPLIED_TIME)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        let t = txn.open_table(ROUNDS).map_err(db_err)?;
        let mut rows = Vec::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            rows.push((k.value(), v.value().to_vec()));
        }
        Ok((time, rows))
    }

    /// The consensus record stored for `height`, if applied.
    pub fn decided_record(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(DECIDED).map_err(db_err)?;
        Ok(t.get(height).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// The index of the entry of request `id`.
    pub fn lookup_request(&self, id: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(KEYS).map_err(db_err)?;
        Ok(t.get(hex::encode(id).as_str())
            .map_err(db_err)?
            .map(|v| v.value()))
    }

    /// The indexes of every entry for `crate@version` (every variant and attempt), ascending.
    pub fn variants(&self, spec: &str) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let mut out = Vec::new();
        for v in t.get(spec).map_err(db_err)? {
            out.push(v.map_err(db_err)?.value());
        }
        Ok(out)
    }

    /// Every epoch after the genesis with the index of the change entry that began it, in
    /// epoch order.
    pub fn epochs(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = match txn.open_table(EPOCHS) {
            Ok(t) => t,
            // A store written before epochs, read without being opened for writing.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            out.push((k.value(), v.value()));
        }
        Ok(out)
    }

    /// A stored text by its sha256.
    pub fn blob(&self, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(BLOBS).map_err(db_err)?;
        Ok(t.get(sha256).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    fn append_inner(
        &self,
        entries: &[&[u8]],
        index: &[NewEntry],
        height: Option<Height<'_>>,
    ) -> Result<Appended, StoreError> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::Immediate).map_err(db_err)?;
        let first_index;
        let size;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            first_index = meta
                .get(SIZE)
                .map_err(db_err)?
                .map(|v| v.value())
                .unwrap_or(0);
            let applied = meta.get(APPLIED_HEIGHT).map_err(db_err)?.map(|v| v.value());
            if let (Some(h), Some(done)) = (&height, applied)
                && h.height <= done
            {
                // Dropping the transaction aborts it: nothing changes.
                return Ok(Appended {
                    first_index,
                    size: first_index,
                    applied: false,
                });
            }
            let change = height.as_ref().and_then(|h| h.change);
            let mut entries: Vec<&[u8]> = entries.to_vec();
            if let Some((epoch, bytes)) = change {
                // The change entry is the height's last: the handoff checkpoint ends with it.
                txn.open_table(EPOCHS)
                    .map_err(db_err)?
                    .insert(epoch, first_index + entries.len() as u64)
                    .map_err(db_err)?;
                entries.push(bytes);
            }
            size = first_index + entries.len() as u64;
            if size > merkle::MAX_TREE_SIZE {
                return Err(StoreError::Full);
            }
            let mut entry_table = txn.open_table(ENTRIES).map_err(db_err)?;
            let mut hashes = txn.open_table(HASHES).map_err(db_err)?;
            for (i, entry) in entries.iter().enumerate() {
                let n = first_index + i as u64;
                entry_table.insert(n, *entry).map_err(db_err)?;
                // The write transaction sees its own inserts, so siblings appended earlier
                // in this batch are found.
                let siblings = TableHashes(&hashes).read_hashes(&merkle::append_reads(n))?;
                for (idx, h) in merkle::hashes_to_store(n, merkle::leaf_hash(entry), &siblings) {
                    hashes.insert(idx.key(), h).map_err(db_err)?;
                }
            }
            let mut key_table = txn.open_table(KEYS).map_err(db_err)?;
            let mut variants = txn.open_multimap_table(VARIANTS).map_err(db_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            for (i, e) in index.iter().enumerate() {
                let n = first_index + i as u64;
                key_table
                    .insert(hex::encode(e.request_id).as_str(), n)
                    .map_err(db_err)?;
                variants.insert(e.spec.as_str(), n).map_err(db_err)?;
                for b in &e.blobs {
                    blobs
                        .insert(crate::crypto::sha256(b), b.as_slice())
                        .map_err(db_err)?;
                }
            }
            meta.insert(SIZE, size).map_err(db_err)?;
            if let Some(h) = height {
                meta.insert(APPLIED_HEIGHT, h.height).map_err(db_err)?;
                meta.insert(APPLIED_TIME, h.time_ms).map_err(db_err)?;
                if !h.record.is_empty() {
                    txn.open_table(DECIDED)
                        .map_err(db_err)?
                        .insert(h.height, h.record)
                        .map_err(db_err)?;
                }
                let mut rounds = txn.open_table(ROUNDS).map_err(db_err)?;
                for (id, row) in h.rounds {
                    match row {
                        Some(bytes) => rounds.insert(id, bytes.as_slice()).map_err(db_err)?,
                        None => rounds.remove(id).map_err(db_err)?,
                    };
                }
            }
        }
        // The index of the entries just written, and its roots at the new size.
        let specs: Vec<(u64, &str)> = index
            .iter()
            .enumerate()
            .map(|(i, e)| (first_index + i as u64, e.spec.as_str()))
            .collect();
        super::index::update(&txn, &specs, size)?;
        // Durable once this returns; a crash before leaves the previous state (see module doc).
        txn.commit().map_err(db_err)?;
        Ok(Appended {
            first_index,
            size,
            applied: true,
        })
    }

    /// Record `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ENTRIES).map_err(db_err)?;
        match t.get(index).map_err(db_err)? {
            Some(v) => Ok(v.value().to_vec()),
            None => Err(StoreError::NoEntry {
                index,
                size: self.size()?,
            }),
        }
    }

    fn with_hashes<T>(
        &self,
        f: impl FnOnce(u64, &dyn HashReader) -> Result<T, MerkleError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let size = txn
            .open_table(META)
            .map_err(db_err)?
            .get(SIZE)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        let t = txn.open_table(HASHES).map_err(db_err)?;
        Ok(f(size, &TableHashes(&t))?)
    }

    /// The root of the first `size` records (`size` ≤ the log size).
    pub fn tree_hash(&self, size: u64) -> Result<Hash, StoreError> {
        self.with_hashes(|have, r| {
            if size > have {
                return Err(MerkleError::SizeOutOfRange {
                    old: size,
                    new: have,
                });
            }
            merkle::tree_hash(size, r)
        })
    }

    /// The `width` hashes of the tlog tile at `level`, `index` (32 bytes each), if the log
    /// holds them (`None`: not that many complete subtrees yet).
    pub fn tile_hashes(
        &self,
        level: u8,
        index: u64,
        width: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_hashes(|size, r| {
            match super::tiles::width_in_tree(level, index, size) {
                Some(have) if have >= width => {}
                _ => return Ok(None),
            }
            let indexes: Vec<HashIndex> = (0..width)
                .map(|k| HashIndex {
                    level: 8 * level,
                    index: index * super::tiles::TILE_WIDTH + k,
                })
                .collect();
            Ok(Some(r.read_hashes(&indexes)?.concat()))
        })
    }

    /// Records `start .. start + count` (all of them must exist).
    pub fn entries(&self, start: u64, count: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(ENTRIES).map_err(db_err)?;
        let mut out = Vec::new();
        for r in t.range(start..start + count).map_err(db_err)? {
            out.push(r.map_err(db_err)?.1.value().to_vec());
        }
        if out.len() as u64 != count {
            return Err(StoreError::NoEntry {
                index: start + out.len() as u64,
                size: self.size()?,
            });
        }
        Ok(out)
    }

    /// The current size and root, read in one transaction.
    pub fn head(&self) -> Result<(u64, Hash), StoreError> {
        self.with_hashes(|size, r| Ok((size, merkle::tree_hash(size, r)?)))
    }

    /// Inclusion proof of `index` in the tree of `size` (≤ the log size).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.with_hashes(|have, r| {
            if size > have {
                return Err(MerkleError::IndexOutOfRange { index, size });
            }
            merkle::prove_inclusion(index, size, r)
        })
    }

    /// Consistency proof from `old` to `new` (≤ the log size).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        self.with_hashes(|have, r| {
            if new > have {
                return Err(MerkleError::SizeOutOfRange { old, new });
            }
            merkle::prove_consistency(old, new, r)
        })
    }

    /// The index roots recorded at `size` (`None`: no append ended there, or it predates
    /// the index).
    pub fn index_roots(&self, size: u64) -> Result<Option<IndexRoots>, StoreError> {
        super::index::roots_at(&self.db.begin_read().map_err(db_err)?, size)
    }

    /// The checkpoint body of `origin`'s log at `size` with `root`: with the index line
    /// when the index has roots at that size (every size an append ended at).
    pub fn checkpoint_body(
        &self,
        origin: &str,
        size: u64,
        root: Hash,
    ) -> Result<super::Checkpoint, StoreError> {
        let mut cp = super::Checkpoint::new(origin, size, root);
        if let Some(r) = self.index_roots(size)? {
            cp.extensions.push(r.extension_line());
        }
        Ok(cp)
    }

    /// The index as of log size `size` (a size with recorded roots, within
    /// [`super::index::MAX_LAG`] entries of the log's), for answers under the checkpoint
    /// of that size.
    pub fn index_snapshot(&self, size: u64) -> Result<super::IndexSnapshot, StoreError> {
        super::index::snapshot(&self.db, size)
    }

    /// Stores a verified cosigned checkpoint after checking that it describes this log (its
    /// size is not beyond the log, its root is the tree hash at that size, and its
    /// extension lines are exactly the index line of that size, if the index has one). One
    /// durable transaction.
    pub fn put_checkpoint(&self, cp: &CosignedCheckpoint) -> Result<(), StoreError> {
        let c = cp.checkpoint();
        let size = self.size()?;
        if c.size > size {
            return Err(StoreError::CheckpointMismatch {
                size: c.size,
                reason: "beyond the log's size",
            });
        }
        if self.tree_hash(c.size)? != c.root {
            return Err(StoreError::CheckpointMismatch {
                size: c.size,
                reason: "root differs from the log's",
            });
        }
        let want: Vec<String> = self
            .index_roots(c.size)?
            .map(|r| r.extension_line())
            .into_iter()
            .collect();
        if c.extensions != want {
            return Err(StoreError::CheckpointMismatch {
                size: c.size,
                reason: "index roots differ from the log's",
            });
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(CHECKPOINTS)
            .map_err(db_err)?
            .insert(c.size, cp.note())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Adds signature lines (witness cosignatures) to the stored checkpoint of `size`,
    /// replacing a line of the same key. One durable transaction; the note must still be
    /// a signed note afterwards.
    pub fn add_note_lines(
        &self,
        size: u64,
        lines: &[super::NoteSignature],
    ) -> Result<(), StoreError> {
        let bad = |reason| StoreError::CheckpointMismatch { size, reason };
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
            let note = t
                .get(size)
                .map_err(db_err)?
                .map(|v| v.value().to_string())
                .ok_or(bad("no checkpoint of that size"))?;
            let mut parsed =
                super::SignedNote::parse(&note).map_err(|_| bad("stored note does not parse"))?;
            for l in lines {
                parsed
                    .signatures
                    .retain(|s| !(s.name == l.name && s.key_id == l.key_id));
                parsed.signatures.push(l.clone());
            }
            let text = parsed.format();
            super::SignedNote::parse(&text).map_err(|_| bad("too many signature lines"))?;
            t.insert(size, text.as_str()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// The cosigned checkpoint with the largest size, as its note text.
    pub fn latest_checkpoint(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
        Ok(t.last()
            .map_err(db_err)?
            .map(|(_, v)| v.value().to_string()))
    }

    /// True when a cosigned checkpoint of exactly `size` is stored (a read error counts as
    /// none: the caller then cosigns or waits again).
    pub fn has_checkpoint_at(&self, size: u64) -> bool {
        self.checkpoint_at(size).ok().flatten().is_some()
    }

    /// The cosigned checkpoint stored for exactly `size`.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(CHECKPOINTS).map_err(db_err)?;
        Ok(t.get(size).map_err(db_err)?.map(|v| v.value().to_string()))
    }

    /// A proof file for record `index` under the stored checkpoint `note` (of the verified
    /// checkpoint `cp`).
    pub fn proof_file(&self, index: u64, cp: &CosignedCheckpoint) -> Result<ProofFile, StoreError> {
        let size = cp.checkpoint().size;
        Ok(ProofFile {
            extra: Some(self.entry(index)?),
            index,
            proof: self.inclusion_proof(index, size)?,
            checkpoint: cp.compact_note(),
        })
    }

    /// Number of stored hashes (for fsck and tests).
    pub fn stored_hash_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        txn.open_table(HASHES)
            .map_err(db_err)?
            .len()
            .map_err(db_err)
    }
}
