//! The stored index against the definition (`smt::root` over every key's value, computed
//! from scratch at each size), its proofs at the log's size and at earlier sizes, and the
//! index built for a log written before it.

use std::collections::BTreeMap;

use super::*;
use crate::log::{Height, LogStore, NewEntry};
use crate::protocol::{LogEntry, Verdict};
use crate::testing::request;
use crate::verify::index::smt;
use crate::verify::tlog::merkle;

fn entry(name: &str, version: &str, attempt: u32) -> LogEntry {
    let mut r = request(name, version, "lock").request;
    // Attempts count from 1.
    r.attempt = attempt + 1;
    LogEntry {
        format: crate::protocol::ENTRY_FORMAT,
        request: r,
        verdict: Verdict::Reproduced,
        // The shape `LogEntry::decode` requires (a mirror and `log fsck` index only what
        // decodes; committee changes do not).
        digest: vec![1; 32],
        attestation: vec![2; 96],
        dissenters: vec![],
        silent: vec![],
        misbehaviour: vec![],
        height: 1,
        epoch: 0,
    }
}

fn new_entry(e: &LogEntry) -> NewEntry {
    NewEntry {
        bytes: e.to_cbor(),
        request_id: e.request.id(),
        spec: e.request.spec(),
        blobs: vec![],
    }
}

/// The roots by definition: every entry below `size` of `log` (in order).
fn reference(log: &[LogEntry], size: u64) -> IndexRoots {
    let mut variants: BTreeMap<String, Vec<(u64, Hash)>> = BTreeMap::new();
    let mut crates: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (i, e) in log.iter().enumerate().take(size as usize) {
        variants
            .entry(e.request.spec())
            .or_default()
            .push((i as u64, merkle::leaf_hash(&e.to_cbor())));
        crates
            .entry(e.request.krate.clone())
            .or_default()
            .insert(e.request.version.clone());
    }
    let mut v: Vec<(Hash, Hash)> = variants
        .iter()
        .map(|(s, l)| (variants_key(s), variants_value(l).unwrap()))
        .collect();
    v.sort();
    let mut c: Vec<(Hash, Hash)> = crates
        .iter()
        .map(|(n, vs)| {
            let vs: Vec<String> = vs.iter().cloned().collect();
            (crate_key(n), versions_value(&vs).unwrap())
        })
        .collect();
    c.sort();
    IndexRoots {
        variants: smt::root(&v).unwrap(),
        crates: smt::root(&c).unwrap(),
    }
}

/// A log of `n` entries over a few crates and versions (so keys repeat), in batches.
fn build(store: &LogStore, n: usize, batch: usize) -> (Vec<LogEntry>, Vec<u64>) {
    let mut log = Vec::new();
    let mut sizes = Vec::new();
    let mut height = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
        let entries: Vec<LogEntry> = chunk
            .iter()
            .map(|&i| entry(&format!("c{}", i % 13), &format!("1.{}.0", i % 7), i as u32))
            .collect();
        height += 1;
        let new: Vec<NewEntry> = entries.iter().map(new_entry).collect();
        let a = store
            .append_decided(&new, Height::bare(height, height))
            .unwrap();
        log.extend(entries);
        sizes.push(a.size);
    }
    (log, sizes)
}

#[test]
fn the_stored_roots_are_the_definitions_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.index_roots(0).unwrap(), None);
    let (log, sizes) = build(&store, 300, 17);
    for size in sizes {
        assert_eq!(
            store.index_roots(size).unwrap(),
            Some(reference(&log, size)),
            "size {size}"
        );
    }
    // A size inside a batch has no roots (no checkpoint is ever made there).
    assert_eq!(store.index_roots(5).unwrap(), None);
}

#[test]
fn answers_prove_every_entry_and_absence_now_and_at_earlier_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let (log, sizes) = build(&store, 200, 9);
    let log_size = *sizes.last().unwrap();
    // The latest size and earlier ones within MAX_LAG: keys that changed since are set back.
    for &size in sizes.iter().rev().take(8) {
        let snap = store.index_snapshot(size).unwrap();
        let roots = reference(&log, size);
        assert_eq!(snap.roots(), roots);
        for name in (0..13).map(|i| format!("c{i}")).chain(["nobody".into()]) {
            for v in (0..7).map(|i| format!("1.{i}.0")) {
                let spec = format!("{name}@{v}");
                let got = snap.variants(&spec).unwrap();
                let want: Vec<(u64, Vec<u8>)> = log
                    .iter()
                    .enumerate()
                    .take(size as usize)
                    .filter(|(_, e)| e.request.spec() == spec)
                    .map(|(i, e)| (i as u64, e.to_cbor()))
                    .collect();
                assert_eq!(got.entries, want, "{spec} at {size}");
                let value = (!want.is_empty()).then(|| {
                    let l: Vec<_> = want
                        .iter()
                        .map(|(i, b)| (*i, merkle::leaf_hash(b)))
                        .collect();
                    variants_value(&l).unwrap()
                });
                got.proof
                    .verify(&roots.variants, &variants_key(&spec), value.as_ref())
                    .unwrap_or_else(|e| panic!("{spec} at {size} of {log_size}: {e}"));
                // Absence does not verify for a key that is present, nor presence for one
                // that is absent.
                let flipped = match value {
                    Some(_) => None,
                    None => Some([7; 32]),
                };
                assert!(
                    got.proof
                        .verify(&roots.variants, &variants_key(&spec), flipped.as_ref())
                        .is_err()
                );
            }
            let (versions, proof) = snap.versions(&name).unwrap();
            let mut want: Vec<String> = log
                .iter()
                .take(size as usize)
                .filter(|e| e.request.krate == name)
                .map(|e| e.request.version.clone())
                .collect();
            want.sort();
            want.dedup();
            assert_eq!(versions, want);
            let value = (!want.is_empty()).then(|| versions_value(&want).unwrap());
            proof
                .verify(&roots.crates, &crate_key(&name), value.as_ref())
                .unwrap();
        }
    }
}

#[test]
fn a_log_written_before_the_index_gets_it_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sizes) = {
        let store = LogStore::open(dir.path()).unwrap();
        build(&store, 120, 11)
    };
    let size = *sizes.last().unwrap();
    // Drop the index, as a store of an earlier version has none.
    {
        let db = redb::Database::open(dir.path().join(crate::log::STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(PAGES).unwrap();
        txn.delete_table(ROOTS).unwrap();
        txn.delete_table(INDEXED).unwrap();
        txn.delete_multimap_table(VERSIONS).unwrap();
        txn.open_table(crate::log::store::META)
            .unwrap()
            .remove("index_from")
            .unwrap();
        txn.commit().unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    // No roots at the sizes before: their checkpoints carry no index line (and one made
    // at the current size without it is still accepted).
    assert_eq!(store.index_roots(size).unwrap(), None);
    assert_eq!(store.index_roots(sizes[0]).unwrap(), None);
    let tc = crate::testing::TestCommittee::new(4, 12);
    store
        .put_checkpoint(&tc.cosign(size, store.tree_hash(size).unwrap()))
        .unwrap();
    // The next append records roots over the whole log, as if indexed from the start.
    let more = [entry("late", "0.1.0", 1), entry("c1", "1.1.0", 99)];
    let new: Vec<NewEntry> = more.iter().map(new_entry).collect();
    let grown = store
        .append_decided(&new, Height::bare(1000, 1000))
        .unwrap()
        .size;
    let all: Vec<LogEntry> = log.iter().chain(more.iter()).cloned().collect();
    assert_eq!(
        store.index_roots(grown).unwrap(),
        Some(reference(&all, grown))
    );
    drop(store);
    // Opened again: nothing is built twice.
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        store.index_roots(grown).unwrap(),
        Some(reference(&all, grown))
    );
}

/// The view's proofs are `smt::prove`'s, and a tree set back to an earlier set of pairs
/// ([`view::AtSize`]: keys added since removed, values changed since restored) proves
/// exactly what the earlier tree proves.
#[test]
fn views_and_set_back_trees_prove_what_the_definition_proves() {
    use view::{AtSize, Pairs};
    let key = |i: u32| crate::crypto::sha256(format!("k{i}").as_bytes());
    let val = |i: u32, round: u32| crate::crypto::sha256(format!("v{i}/{round}").as_bytes());
    let mut old: Vec<(Hash, Hash)> = (0..300).map(|i| (key(i), val(i, 0))).collect();
    old.sort();
    // Later: 40 new keys, 25 changed values.
    let mut new: Vec<(Hash, Hash)> = (0..340)
        .map(|i| (key(i), val(i, u32::from(i % 12 == 0 && i < 300))))
        .collect();
    new.sort();
    let mut then = BTreeMap::new();
    for (k, v) in &new {
        match old.binary_search_by(|(o, _)| o.cmp(k)) {
            Ok(j) if old[j].1 != *v => {
                then.insert(*k, Some(old[j].1));
            }
            Ok(_) => {}
            Err(_) => {
                then.insert(*k, None);
            }
        }
    }
    let newer = Pairs(&new);
    let set_back = AtSize {
        base: &newer,
        then: &then,
    };
    for i in 0..360 {
        let k = key(i);
        assert_eq!(
            view::prove(&Pairs(&new), &k).unwrap(),
            smt::prove(&new, &k).unwrap()
        );
        assert_eq!(
            view::prove(&set_back, &k).unwrap(),
            smt::prove(&old, &k).unwrap(),
            "{i}"
        );
    }
    assert_eq!(
        view::subtree(&set_back, 0, &[0; 32]).unwrap(),
        smt::root(&old).unwrap()
    );
}

#[test]
fn fsck_recomputes_the_index_and_names_roots_that_are_not_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let (log, sizes) = build(&store, 60, 9);
    let size = *sizes.last().unwrap();
    // The builder the mirror and fsck use gives the same roots as this file's reference.
    let report = crate::log::fsck(&store, None).unwrap();
    assert_eq!(report.index, Some(reference(&log, size)));
    // Recorded roots that are not the entries' (a variants root changed) are named.
    {
        let txn = store.database().begin_write().unwrap();
        txn.open_table(ROOTS)
            .unwrap()
            .insert(size, ([7; 32], reference(&log, size).crates))
            .unwrap();
        txn.commit().unwrap();
    }
    let err = crate::log::fsck(&store, None).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("index roots at size {size}:")),
        "{err}"
    );
}

#[test]
fn a_store_of_the_first_layout_moves_to_pages_with_its_roots() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sizes) = {
        let store = LogStore::open(dir.path()).unwrap();
        build(&store, 80, 13)
    };
    let size = *sizes.last().unwrap();
    // The first layout: its tables, no pages.
    {
        let db = redb::Database::open(dir.path().join(crate::log::STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(PAGES).unwrap();
        let old: TableDefinition<(u8, u8, [u8; 32]), [u8; 32]> =
            TableDefinition::new("index_nodes");
        txn.open_table(old)
            .unwrap()
            .insert((0, 0, [0; 32]), [9; 32])
            .unwrap();
        txn.commit().unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        store.index_roots(size).unwrap(),
        Some(reference(&log, size))
    );
    {
        let txn = store.database().begin_read().unwrap();
        assert!(
            !txn.list_tables()
                .unwrap()
                .any(|t| t.name() == "index_nodes"),
            "the old table is gone"
        );
    }
    // Every key proves against the recorded roots, and the next append agrees with the
    // definition.
    let snap = store.index_snapshot(size).unwrap();
    for e in &log {
        let at = snap.variants(&e.request.spec()).unwrap();
        assert!(!at.entries.is_empty());
    }
    let more = entry("fresh", "1.0.0", 0);
    let height = sizes.len() as u64 + 1;
    store
        .append_decided(&[new_entry(&more)], Height::bare(height, height))
        .unwrap();
    let mut log = log;
    log.push(more);
    assert_eq!(
        store.index_roots(size + 1).unwrap(),
        Some(reference(&log, size + 1))
    );
}
