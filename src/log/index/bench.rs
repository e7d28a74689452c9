//! Hooks for `benches/log.rs` (doc-hidden, not an API): the index's own update and proof
//! at a chosen number of keys, without building a log of real entries first.

use redb::{Durability, ReadableDatabase};

use super::super::LogStore;
use super::super::merkle::HashIndex;
use super::super::store::{HASHES, VARIANTS};
use super::{StoreError, db_err, update};
use crate::verify::index::SmtProof;

/// `crate-{i}@1.0.0`: the spec of the bench's key `i`.
pub fn spec(i: u64) -> String {
    format!("crate-{i}@1.0.0")
}

/// Indexes `n` keys (entry `i` of spec `crate-{i}@1.0.0`, leaf hash derived from `i`) in
/// one transaction, with the roots at size `n` (no entries are written: the index reads
/// only the variants and leaf-hash tables).
pub fn fill(store: &LogStore, n: u64) -> Result<(), StoreError> {
    let txn = store.database().begin_write().map_err(db_err)?;
    let specs: Vec<String> = (0..n).map(spec).collect();
    write_keys(&txn, 0, &specs)?;
    let refs: Vec<(u64, &str)> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, s.as_str()))
        .collect();
    update(&txn, &refs, n)?;
    txn.commit().map_err(db_err)
}

fn write_keys(
    txn: &redb::WriteTransaction,
    first: u64,
    specs: &[String],
) -> Result<(), StoreError> {
    let mut variants = txn.open_multimap_table(VARIANTS).map_err(db_err)?;
    let mut hashes = txn.open_table(HASHES).map_err(db_err)?;
    for (k, s) in specs.iter().enumerate() {
        let i = first + k as u64;
        variants.insert(s.as_str(), i).map_err(db_err)?;
        hashes
            .insert(
                HashIndex { level: 0, index: i }.key(),
                crate::crypto::sha256(&i.to_be_bytes()),
            )
            .map_err(db_err)?;
    }
    Ok(())
}

/// One block's index update: `specs` new entries from index `first` on, indexed and the
/// roots recorded, then the transaction ABORTED (the store is unchanged, so the bench
/// repeats at the same size).
pub fn update_block(store: &LogStore, first: u64, specs: &[String]) -> Result<(), StoreError> {
    let mut txn = store.database().begin_write().map_err(db_err)?;
    txn.set_durability(Durability::None).map_err(db_err)?;
    write_keys(&txn, first, specs)?;
    let refs: Vec<(u64, &str)> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (first + i as u64, s.as_str()))
        .collect();
    update(&txn, &refs, first + specs.len() as u64)?;
    txn.abort().map_err(db_err)
}

/// The variants tree's proof for `spec` as stored now.
pub fn prove(store: &LogStore, spec: &str) -> Result<SmtProof, StoreError> {
    let txn = store.database().begin_read().map_err(db_err)?;
    let pages = txn.open_table(super::PAGES).map_err(db_err)?;
    super::view::prove(
        &super::Stored {
            tree: super::VARIANTS_TREE,
            pages: &pages,
        },
        &crate::verify::index::variants_key(spec),
    )
}
