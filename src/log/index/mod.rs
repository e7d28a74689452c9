//! The verifiable index as the store keeps it (issue 26; the trees and their formats are
//! `synchronicity_verify::index`): two sparse Merkle trees over the log — `crate@version` →
//! every entry of it, `crate` → its logged versions — updated in the SAME redb transaction
//! as the entries they index, with their roots recorded at every size an append ends at,
//! so the roots a member cosigns are a function of its log alone.
//!
//! Crash safety: nothing here commits; [`update`] writes into the append's transaction, so
//! after a crash the index is exactly as of the last committed height, like the entries.
//!
//! Answers: [`IndexSnapshot`] reads one transaction, and answers at any size the log had
//! within [`MAX_LAG`] entries of it (the latest cosigned checkpoint lags the log by a
//! height or two): the keys whose values changed since that size are set back in memory
//! ([`view::AtSize`]).

#[doc(hidden)]
pub mod bench;
mod pages;
mod view;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use redb::{
    MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle, WriteTransaction,
};

use super::StoreError;
use super::merkle::HashIndex;
use super::store::{ENTRIES, HASHES, META, VARIANTS};
use crate::verify::index::smt::{Hash, SmtProof};
use crate::verify::index::{IndexRoots, crate_key, variants_key, variants_value, versions_value};
pub(crate) use pages::PAGES;
use pages::{Stored, set_leaves};
use view::AtSize;

/// Log size → (variants root, crates root), at every size an append ended at.
pub(crate) const ROOTS: TableDefinition<u64, ([u8; 32], [u8; 32])> =
    TableDefinition::new("index_roots");
/// Entry index → the `crate@version` it was indexed under (what changed at each size, to
/// set the trees back for an answer at an earlier size).
pub(crate) const INDEXED: TableDefinition<u64, &str> = TableDefinition::new("index_entries");
/// Crate name → every version the log holds an entry of (the crates tree's values).
pub(crate) const VERSIONS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("index_versions");

/// The variants tree (`crate@version` → entries).
const VARIANTS_TREE: u8 = 0;
/// The crates tree (`crate` → versions).
const CRATES_TREE: u8 = 1;

/// How far (in entries) an answer's size may lag the log: the keys changed since are set
/// back in memory, each costing a few reads.
pub const MAX_LAG: u64 = 4096;

fn db_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(format!("index: {e}"))
}

/// Indexes the entries of `specs` (`crate@version`s whose entries the append just wrote
/// into the VARIANTS and HASHES tables of `txn`) and records the roots at `size`. Called by
/// the append, inside its transaction, after its own tables are closed.
pub(crate) fn update(
    txn: &WriteTransaction,
    specs: &[(u64, &str)],
    size: u64,
) -> Result<(), StoreError> {
    let now = index_entries(txn, specs)?;
    txn.open_table(ROOTS)
        .map_err(db_err)?
        .insert(size, (now.variants, now.crates))
        .map_err(db_err)?;
    Ok(())
}

/// The root of `tree` as stored.
fn stored_root(txn: &WriteTransaction, tree: u8) -> Result<Hash, StoreError> {
    let pages = txn.open_table(PAGES).map_err(db_err)?;
    view::subtree(
        &Stored {
            tree,
            pages: &pages,
        },
        0,
        &[0; 32],
    )
}

/// Indexes the entries of `specs` (see [`update`]); the trees' new roots.
fn index_entries(txn: &WriteTransaction, specs: &[(u64, &str)]) -> Result<IndexRoots, StoreError> {
    {
        let mut indexed = txn.open_table(INDEXED).map_err(db_err)?;
        for (i, spec) in specs {
            indexed.insert(*i, *spec).map_err(db_err)?;
        }
    }
    let specs: BTreeSet<&str> = specs.iter().map(|(_, s)| *s).collect();
    let mut changed_specs = Vec::new();
    let mut changed_names = Vec::new();
    if !specs.is_empty() {
        let hashes = txn.open_table(HASHES).map_err(db_err)?;
        let variants = txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let mut versions = txn.open_multimap_table(VERSIONS).map_err(db_err)?;
        let mut changed_crates = BTreeSet::new();
        for spec in &specs {
            let list = variant_list(&variants, &hashes, spec, u64::MAX)?;
            let value = variants_value(&list).map_err(db_err)?;
            changed_specs.push((variants_key(spec), value));
            let (name, version) = split_spec(spec)?;
            if !versions.insert(name, version).map_err(db_err)? {
                changed_crates.insert(name);
            }
        }
        for name in changed_crates {
            let list = version_list(&versions, name)?;
            let value = versions_value(&list).map_err(db_err)?;
            changed_names.push((crate_key(name), value));
        }
    }
    changed_specs.sort();
    changed_names.sort();
    // A tree whose keys did not change keeps its root (read from its stored nodes).
    Ok(IndexRoots {
        variants: if changed_specs.is_empty() {
            stored_root(txn, VARIANTS_TREE)?
        } else {
            set_leaves(txn, VARIANTS_TREE, &changed_specs)?
        },
        crates: if changed_names.is_empty() {
            stored_root(txn, CRATES_TREE)?
        } else {
            set_leaves(txn, CRATES_TREE, &changed_names)?
        },
    })
}

fn split_spec(spec: &str) -> Result<(&str, &str), StoreError> {
    spec.split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty() && !v.contains('\n'))
        .ok_or_else(|| db_err(format!("{spec:?} is not crate@version")))
}

/// `spec`'s entries below `size`: (index, leaf hash), in log order.
fn variant_list<V, H>(
    variants: &V,
    hashes: &H,
    spec: &str,
    size: u64,
) -> Result<Vec<(u64, Hash)>, StoreError>
where
    V: ReadableMultimapTable<&'static str, u64>,
    H: ReadableTable<u64, [u8; 32]>,
{
    let mut out = Vec::new();
    for i in variants.get(spec).map_err(db_err)? {
        let i = i.map_err(db_err)?.value();
        if i >= size {
            break;
        }
        let h = hashes
            .get(HashIndex { level: 0, index: i }.key())
            .map_err(db_err)?
            .ok_or_else(|| db_err(format!("no leaf hash for entry {i}")))?
            .value();
        out.push((i, h));
    }
    Ok(out)
}

/// Every version of `name` the index holds, in byte order.
fn version_list<V>(versions: &V, name: &str) -> Result<Vec<String>, StoreError>
where
    V: ReadableMultimapTable<&'static str, &'static str>,
{
    let mut out = Vec::new();
    for v in versions.get(name).map_err(db_err)? {
        out.push(v.map_err(db_err)?.value().to_string());
    }
    Ok(out)
}

/// The roots recorded at `size` (`None`: no append ended there, or the size predates the
/// index).
pub(crate) fn roots_at(txn: &ReadTransaction, size: u64) -> Result<Option<IndexRoots>, StoreError> {
    let t = match txn.open_table(ROOTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(db_err(e)),
    };
    Ok(t.get(size).map_err(db_err)?.map(|v| {
        let (variants, crates) = v.value();
        IndexRoots { variants, crates }
    }))
}

/// META key: the log size the index began at (a log written before the index has
/// checkpoints without the index line up to it).
const INDEX_FROM: &str = "index_from";

/// Builds the index of a log written before it (once, at open): every key of VARIANTS, the
/// versions and every node, but NO roots at the current size: the checkpoints stored up to
/// it carry no index line, and the next append records the first roots (lookups work from
/// the checkpoint after it). In the caller's transaction (a crash before its commit leaves
/// no index, and the next open builds it again).
pub(crate) fn build_missing(txn: &WriteTransaction, size: u64) -> Result<bool, StoreError> {
    let has_roots = !txn
        .open_table(ROOTS)
        .map_err(db_err)?
        .is_empty()
        .map_err(db_err)?;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        if meta.get(INDEX_FROM).map_err(db_err)?.is_some() {
            return Ok(false);
        }
        meta.insert(INDEX_FROM, if has_roots { 0 } else { size })
            .map_err(db_err)?;
    }
    if has_roots || size == 0 {
        return Ok(false);
    }
    let rows: Vec<(u64, String)> = {
        let variants = txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in variants.iter().map_err(db_err)? {
            let (spec, indexes) = row.map_err(db_err)?;
            for i in indexes {
                out.push((i.map_err(db_err)?.value(), spec.value().to_string()));
            }
        }
        out
    };
    let refs: Vec<(u64, &str)> = rows.iter().map(|(i, s)| (*i, s.as_str())).collect();
    index_entries(txn, &refs)?;
    Ok(true)
}

/// The tables of the index's first layout (one row per node and a leaves table; never
/// released, but stores of it exist where that version ran).
const FIRST_LAYOUT: [&str; 2] = ["index_nodes", "index_leaves"];

/// Moves a store whose index the first layout kept to pages: the same trees, so the roots
/// recorded at every size stay; the old tables go. In the open's transaction (a crash
/// before its commit leaves the old layout, and the next open moves it again). The rebuilt
/// roots must be the ones recorded at `size` (if an append ended there), else the store is
/// refused.
pub(crate) fn upgrade_layout(txn: &WriteTransaction, size: u64) -> Result<bool, StoreError> {
    let old: Vec<_> = txn
        .list_tables()
        .map_err(db_err)?
        .filter(|t| FIRST_LAYOUT.contains(&t.name()))
        .collect();
    if old.is_empty() {
        return Ok(false);
    }
    for t in old {
        txn.delete_table(t).map_err(db_err)?;
    }
    txn.delete_table(PAGES).map_err(db_err)?;
    let (mut specs, mut names) = (Vec::new(), Vec::new());
    {
        let variants = txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let hashes = txn.open_table(HASHES).map_err(db_err)?;
        for row in variants.iter().map_err(db_err)? {
            let spec = row.map_err(db_err)?.0.value().to_string();
            let list = variant_list(&variants, &hashes, &spec, u64::MAX)?;
            specs.push((variants_key(&spec), variants_value(&list).map_err(db_err)?));
        }
        let versions = txn.open_multimap_table(VERSIONS).map_err(db_err)?;
        for row in versions.iter().map_err(db_err)? {
            let name = row.map_err(db_err)?.0.value().to_string();
            let list = version_list(&versions, &name)?;
            names.push((crate_key(&name), versions_value(&list).map_err(db_err)?));
        }
    }
    specs.sort();
    names.sort();
    let rebuilt = IndexRoots {
        variants: set_leaves(txn, VARIANTS_TREE, &specs)?,
        crates: set_leaves(txn, CRATES_TREE, &names)?,
    };
    let recorded = txn
        .open_table(ROOTS)
        .map_err(db_err)?
        .get(size)
        .map_err(db_err)?
        .map(|v| v.value());
    if recorded.is_some_and(|(v, c)| (v, c) != (rebuilt.variants, rebuilt.crates)) {
        return Err(StoreError::Db(format!(
            "index: the trees rebuilt from the entries are not the roots recorded at size {size}"
        )));
    }
    Ok(true)
}

/// One read transaction's view of the index, answering at `size`.
pub struct IndexSnapshot {
    txn: ReadTransaction,
    size: u64,
    roots: IndexRoots,
    /// Per tree, the keys whose values changed after `size` and their values at `size`.
    then: [BTreeMap<Hash, Option<Hash>>; 2],
}

/// What the log holds for a `crate@version` at a snapshot's size.
#[derive(Debug, Clone)]
pub struct VariantsAt {
    /// `(index, entry bytes)` in log order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The variants tree's proof for the key.
    pub proof: SmtProof,
}

impl IndexSnapshot {
    /// The index as of log size `size` (one with recorded roots, at most [`MAX_LAG`]
    /// entries behind the log), read in `txn`.
    pub(crate) fn open(txn: ReadTransaction, size: u64) -> Result<Self, StoreError> {
        let roots = roots_at(&txn, size)?
            .ok_or_else(|| StoreError::Db(format!("the index has no roots at size {size}")))?;
        let log_size = txn
            .open_table(META)
            .map_err(db_err)?
            .get(super::store::SIZE)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        if log_size.saturating_sub(size) > MAX_LAG {
            return Err(StoreError::Db(format!(
                "the log is more than {MAX_LAG} entries beyond the checkpoint of size {size}"
            )));
        }
        let mut snap = Self {
            txn,
            size,
            roots,
            then: Default::default(),
        };
        if log_size > size {
            snap.set_back(log_size)?;
        }
        Ok(snap)
    }

    /// Finds the keys that entries `size..log_size` changed, with their values at `size`.
    fn set_back(&mut self, log_size: u64) -> Result<(), StoreError> {
        let indexed = self.txn.open_table(INDEXED).map_err(db_err)?;
        let variants = self.txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let hashes = self.txn.open_table(HASHES).map_err(db_err)?;
        let versions = self.txn.open_multimap_table(VERSIONS).map_err(db_err)?;
        let mut specs = BTreeSet::new();
        for row in indexed.range(self.size..log_size).map_err(db_err)? {
            specs.insert(row.map_err(db_err)?.1.value().to_string());
        }
        let mut names = BTreeSet::new();
        for spec in &specs {
            let list = variant_list(&variants, &hashes, spec, self.size)?;
            let value = (!list.is_empty())
                .then(|| variants_value(&list))
                .transpose()
                .map_err(db_err)?;
            self.then[0].insert(variants_key(spec), value);
            names.insert(split_spec(spec)?.0.to_string());
        }
        for name in names {
            let list = self.versions_at(&versions, &variants, &name)?;
            let value = (!list.is_empty())
                .then(|| versions_value(&list))
                .transpose()
                .map_err(db_err)?;
            self.then[1].insert(crate_key(&name), value);
        }
        Ok(())
    }

    fn versions_at<V, W>(
        &self,
        versions: &V,
        variants: &W,
        name: &str,
    ) -> Result<Vec<String>, StoreError>
    where
        V: ReadableMultimapTable<&'static str, &'static str>,
        W: ReadableMultimapTable<&'static str, u64>,
    {
        let mut out = Vec::new();
        for v in version_list(versions, name)? {
            let first = variants
                .get(format!("{name}@{v}").as_str())
                .map_err(db_err)?
                .next()
                .transpose()
                .map_err(db_err)?
                .map(|i| i.value());
            if first.is_some_and(|i| i < self.size) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The size answered at.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots at that size.
    pub fn roots(&self) -> IndexRoots {
        self.roots
    }

    fn prove(&self, tree: u8, key: &Hash) -> Result<SmtProof, StoreError> {
        let pages = self.txn.open_table(PAGES).map_err(db_err)?;
        let base = Stored {
            tree,
            pages: &pages,
        };
        let then = &self.then[tree as usize];
        if then.is_empty() {
            view::prove(&base, key)
        } else {
            view::prove(&AtSize { base: &base, then }, key)
        }
    }

    /// Every entry of `spec` (`crate@version`) at this size, with the proof.
    pub fn variants(&self, spec: &str) -> Result<VariantsAt, StoreError> {
        let variants = self.txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let entries = self.txn.open_table(ENTRIES).map_err(db_err)?;
        let mut out = Vec::new();
        for i in variants.get(spec).map_err(db_err)? {
            let i = i.map_err(db_err)?.value();
            if i >= self.size {
                break;
            }
            let bytes = entries
                .get(i)
                .map_err(db_err)?
                .ok_or_else(|| db_err(format!("no entry {i}")))?
                .value()
                .to_vec();
            out.push((i, bytes));
        }
        Ok(VariantsAt {
            entries: out,
            proof: self.prove(VARIANTS_TREE, &variants_key(spec))?,
        })
    }

    /// Every logged version of crate `name` at this size, with the proof.
    pub fn versions(&self, name: &str) -> Result<(Vec<String>, SmtProof), StoreError> {
        let versions = self.txn.open_multimap_table(VERSIONS).map_err(db_err)?;
        let variants = self.txn.open_multimap_table(VARIANTS).map_err(db_err)?;
        let list = self.versions_at(&versions, &variants, name)?;
        Ok((list, self.prove(CRATES_TREE, &crate_key(name))?))
    }
}

impl From<VariantsAt> for crate::verify::index::VariantsAnswer {
    /// The answer as it travels (the light protocol's `Lookups`).
    fn from(at: VariantsAt) -> Self {
        Self {
            entries: at
                .entries
                .into_iter()
                .map(|(i, b)| (i, serde_bytes::ByteBuf::from(b)))
                .collect(),
            proof: (&at.proof).into(),
        }
    }
}

/// Opens a read transaction on `db` for [`IndexSnapshot::open`].
pub(crate) fn snapshot(db: &redb::Database, size: u64) -> Result<IndexSnapshot, StoreError> {
    IndexSnapshot::open(db.begin_read().map_err(db_err)?, size)
}
