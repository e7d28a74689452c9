//! How the index's trees are stored: in pages of four levels (radix 16). A page at depth
//! `d` (a multiple of 4) on prefix `p` holds what each of the 16 subtrees at depth `d + 4`
//! under it is — nothing, one leaf (its key and value, stored here), or a node (its hash;
//! the page below holds the rest) — and the 15 nodes inside the page are recomputed from
//! those when read. A page is stored at the root of a tree that holds anything, and
//! wherever else a subtree holds at least two leaves (keys are never removed, so once
//! stored, a page stays). Each leaf is in exactly one page: the lowest on its path.
//!
//! Why pages: one block of 50 new keys at 10^6 keys touches about 20 nodes per key, each a
//! redb read and write; in pages it touches about 5 rows per key (the top pages once per
//! block), and the leaves need no table of their own (issue 26's goal: ≤ 5 ms per block;
//! `cargo bench --bench index`).
//!
//! The tree these pages store is `synchronicity_verify::index::smt`'s, unchanged: a
//! subtree of one leaf is that leaf's hash (the shortcut), of none EMPTY, of more
//! `node(left, right)`.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::super::StoreError;
use super::db_err;
use super::view::{self, TreeView};
use crate::verify::index::smt::{EMPTY, Hash, bit, leaf_hash, node_hash};

/// (tree, depth, prefix) → the page of the subtree there (see [`Page`]).
pub(crate) const PAGES: TableDefinition<(u8, u8, [u8; 32]), &[u8]> =
    TableDefinition::new("index_pages");

/// Levels per page.
const LEVELS: usize = 4;
/// Subtrees under a page.
const FANOUT: usize = 1 << LEVELS;

/// What a subtree holds, as its page stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Nothing,
    /// One leaf: its key and value digest.
    Leaf(Hash, Hash),
    /// Two leaves or more: the node's hash (the page at the child's depth holds them).
    Node(Hash),
}

/// A subtree as computed inside a page: how many leaves (0, 1, 2 = "two or more") and
/// its hash.
type Sub = (u8, Hash);

impl Child {
    fn sub(&self) -> Sub {
        match self {
            Self::Nothing => (0, EMPTY),
            Self::Leaf(k, v) => (1, leaf_hash(k, v)),
            Self::Node(h) => (2, *h),
        }
    }
}

/// The subtree whose children are `left` and `right` (the shortcut: one leaf rises).
fn join(left: Sub, right: Sub) -> Sub {
    match (left.0, right.0) {
        (0, 0) => (0, EMPTY),
        (1, 0) => left,
        (0, 1) => right,
        _ => (2, node_hash(&left.1, &right.1)),
    }
}

/// The 16 subtrees four levels below a page's top.
///
/// Encoding: a 32-bit big-endian word, two bits per subtree (subtree 0 in the top bits:
/// 0 nothing, 1 one leaf, 2 a node), then for each subtree in order: a leaf's key and
/// value (64 bytes), a node's hash (32 bytes), nothing for an empty one. Nothing else is
/// valid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Page {
    subs: [Child; FANOUT],
}

impl Page {
    fn empty() -> Self {
        Self {
            subs: [Child::Nothing; FANOUT],
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut word = 0u32;
        let mut body = Vec::new();
        for (i, sub) in self.subs.iter().enumerate() {
            let tag = match sub {
                Child::Nothing => 0,
                Child::Leaf(k, v) => {
                    body.extend_from_slice(k);
                    body.extend_from_slice(v);
                    1
                }
                Child::Node(h) => {
                    body.extend_from_slice(h);
                    2
                }
            };
            word |= tag << (30 - 2 * i);
        }
        [word.to_be_bytes().as_slice(), &body].concat()
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Db("index: a malformed page".into());
        let (word, mut rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
        let word = u32::from_be_bytes(*word);
        let mut take = || -> Result<Hash, StoreError> {
            let (h, tail) = rest.split_first_chunk::<32>().ok_or_else(bad)?;
            rest = tail;
            Ok(*h)
        };
        let mut page = Self::empty();
        for (i, sub) in page.subs.iter_mut().enumerate() {
            *sub = match (word >> (30 - 2 * i)) & 3 {
                0 => Child::Nothing,
                1 => Child::Leaf(take()?, take()?),
                2 => Child::Node(take()?),
                _ => return Err(bad()),
            };
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(page)
    }

    /// The subtree `levels` (0..=4) below the page's top at position `at` among the
    /// `2^levels` there.
    fn sub(&self, levels: usize, at: usize) -> Sub {
        if levels == LEVELS {
            return self.subs[at].sub();
        }
        join(
            self.sub(levels + 1, 2 * at),
            self.sub(levels + 1, 2 * at + 1),
        )
    }

    /// The page's own subtree.
    fn top(&self) -> Sub {
        self.sub(0, 0)
    }
}

/// Bits `from..from + n` of `key` as a number (n ≤ 8, within the 256 bits).
fn bits(key: &Hash, from: usize, n: usize) -> usize {
    let mut v = 0;
    for d in from..from + n {
        v = (v << 1) | usize::from(bit(key, d));
    }
    v
}

/// The prefix of subtree `i` (0..16) four levels below `(depth, prefix)`.
fn sub_prefix(prefix: &Hash, depth: usize, i: usize) -> Hash {
    let mut p = *prefix;
    for l in 0..LEVELS {
        if (i >> (LEVELS - 1 - l)) & 1 == 1 {
            p = view::child(&p, depth + l, true);
        }
    }
    p
}

/// One tree's pages in a redb table (a read or a write transaction's).
pub(crate) struct Stored<'t, P> {
    pub(crate) tree: u8,
    pub(crate) pages: &'t P,
}

impl<P> Stored<'_, P>
where
    P: ReadableTable<(u8, u8, [u8; 32]), &'static [u8]>,
{
    fn page(&self, depth: usize, prefix: &Hash) -> Result<Option<Page>, StoreError> {
        // Pages sit at depths 0..=252 (the key has 256 bits): none deeper can exist, and
        // the depth must fit the row's key.
        if depth >= 256 {
            return Err(StoreError::Db(format!("index: no page at depth {depth}")));
        }
        match self
            .pages
            .get((self.tree, depth as u8, *prefix))
            .map_err(db_err)?
        {
            Some(v) => Page::decode(v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The page below a node child (it must exist).
    fn page_below(&self, depth: usize, prefix: &Hash) -> Result<Page, StoreError> {
        self.page(depth, prefix)?
            .ok_or_else(|| StoreError::Db(format!("index: a node at depth {depth} has no page")))
    }

    /// Appends to `out` the leaves of subtrees `range` of `page` (at `(depth, prefix)`), in
    /// key order, until `out` holds `limit`.
    fn collect(
        &self,
        page: &Page,
        depth: usize,
        prefix: &Hash,
        range: std::ops::Range<usize>,
        limit: usize,
        out: &mut Vec<(Hash, Hash)>,
    ) -> Result<(), StoreError> {
        for i in range {
            if out.len() >= limit {
                break;
            }
            match page.subs[i] {
                Child::Nothing => {}
                Child::Leaf(k, v) => out.push((k, v)),
                Child::Node(_) => {
                    let p = sub_prefix(prefix, depth, i);
                    let below = self.page_below(depth + LEVELS, &p)?;
                    self.collect(&below, depth + LEVELS, &p, 0..FANOUT, limit, out)?;
                }
            }
        }
        Ok(())
    }
}

impl<P> TreeView for Stored<'_, P>
where
    P: ReadableTable<(u8, u8, [u8; 32]), &'static [u8]>,
{
    fn node(&self, depth: usize, prefix: &Hash) -> Result<Option<Hash>, StoreError> {
        if depth >= 256 {
            // A subtree of one key at most.
            return Ok(None);
        }
        let top = depth - depth % LEVELS;
        let Some(page) = self.page(top, &view::prefix(prefix, top))? else {
            return Ok(None);
        };
        let levels = depth - top;
        let (n, h) = page.sub(levels, bits(prefix, top, levels));
        Ok((n == 2).then_some(h))
    }

    /// Walks the pages down `prefix`'s path from the root to the one `depth` falls in.
    fn leaves(
        &self,
        depth: usize,
        prefix: &Hash,
        limit: usize,
    ) -> Result<Vec<(Hash, Hash)>, StoreError> {
        let mut out = Vec::new();
        let Some(mut page) = self.page(0, &[0; 32])? else {
            return Ok(out);
        };
        let mut top = 0;
        loop {
            if depth < top + LEVELS {
                let levels = depth - top;
                let first = bits(prefix, top, levels) << (LEVELS - levels);
                let range = first..first + (1 << (LEVELS - levels));
                let p = view::prefix(prefix, top);
                self.collect(&page, top, &p, range, limit, &mut out)?;
                return Ok(out);
            }
            match page.subs[bits(prefix, top, LEVELS)] {
                Child::Nothing => return Ok(out),
                Child::Leaf(k, v) => {
                    if view::prefix(&k, depth) == *prefix && limit > 0 {
                        out.push((k, v));
                    }
                    return Ok(out);
                }
                Child::Node(_) => {
                    top += LEVELS;
                    page = self.page_below(top, &view::prefix(prefix, top))?;
                }
            }
        }
    }
}

/// Sets `changed` (sorted, distinct keys, their new values) in `tree` and rewrites the
/// pages above them; the new root. Writes into `txn` only (the caller commits).
pub(crate) fn set_leaves(
    txn: &WriteTransaction,
    tree: u8,
    changed: &[(Hash, Hash)],
) -> Result<Hash, StoreError> {
    let mut pages = txn.open_table(PAGES).map_err(db_err)?;
    let mut w = Writer {
        tree,
        pages: &mut pages,
    };
    // The root page is there as soon as the tree holds anything.
    let root = w.read(0, &[0; 32])?.unwrap_or_else(Page::empty);
    Ok(w.update(0, &[0; 32], root, changed)?.1)
}

/// The pages of one tree, being rewritten in a write transaction.
struct Writer<'t, 'txn> {
    tree: u8,
    pages: &'t mut redb::Table<'txn, (u8, u8, [u8; 32]), &'static [u8]>,
}

impl Writer<'_, '_> {
    fn read(&self, depth: usize, prefix: &Hash) -> Result<Option<Page>, StoreError> {
        Stored {
            tree: self.tree,
            pages: &*self.pages,
        }
        .page(depth, prefix)
    }

    /// `page`, at `(depth, prefix)`, after `changed` (sorted, under it) changed: stored,
    /// with its subtree.
    fn update(
        &mut self,
        depth: usize,
        prefix: &Hash,
        mut page: Page,
        changed: &[(Hash, Hash)],
    ) -> Result<Sub, StoreError> {
        for (i, group) in by_sub(changed, depth) {
            let p = sub_prefix(prefix, depth, i);
            page.subs[i] = match page.subs[i] {
                Child::Node(_) => {
                    let below = self.read(depth + LEVELS, &p)?.ok_or_else(|| {
                        StoreError::Db(format!(
                            "index: a node at depth {} has no page",
                            depth + LEVELS
                        ))
                    })?;
                    Child::Node(self.update(depth + LEVELS, &p, below, group)?.1)
                }
                Child::Leaf(k, v) => {
                    // The leaf there stays unless one of the changed keys is its own.
                    let mut leaves = group.to_vec();
                    if let Err(at) = leaves.binary_search_by(|(x, _)| x.cmp(&k)) {
                        leaves.insert(at, (k, v));
                    }
                    self.build(depth + LEVELS, &p, &leaves)?
                }
                Child::Nothing => self.build(depth + LEVELS, &p, group)?,
            };
        }
        self.put(depth, prefix, &page)?;
        Ok(page.top())
    }

    /// The subtree at `(depth, prefix)` that holds exactly `leaves` (sorted), storing a
    /// page wherever it holds two leaves or more.
    fn build(
        &mut self,
        depth: usize,
        prefix: &Hash,
        leaves: &[(Hash, Hash)],
    ) -> Result<Child, StoreError> {
        match leaves {
            [] => return Ok(Child::Nothing),
            [(k, v)] => return Ok(Child::Leaf(*k, *v)),
            _ if depth >= 256 => {
                return Err(StoreError::Db("index: two leaves with one key".into()));
            }
            _ => {}
        }
        let mut page = Page::empty();
        for (i, group) in by_sub(leaves, depth) {
            let p = sub_prefix(prefix, depth, i);
            page.subs[i] = self.build(depth + LEVELS, &p, group)?;
        }
        self.put(depth, prefix, &page)?;
        Ok(Child::Node(page.top().1))
    }

    fn put(&mut self, depth: usize, prefix: &Hash, page: &Page) -> Result<(), StoreError> {
        self.pages
            .insert((self.tree, depth as u8, *prefix), page.encode().as_slice())
            .map_err(db_err)?;
        Ok(())
    }
}

/// `pairs` (sorted by key) grouped by the subtree four levels below `depth` they fall in.
fn by_sub(pairs: &[(Hash, Hash)], depth: usize) -> impl Iterator<Item = (usize, &[(Hash, Hash)])> {
    let mut rest = pairs;
    std::iter::from_fn(move || {
        let (k, _) = rest.first()?;
        let i = bits(k, depth, LEVELS);
        let n = rest.partition_point(|(k, _)| bits(k, depth, LEVELS) == i);
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some((i, group))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    #[test]
    fn a_page_encodes_and_decodes_and_refuses_what_is_not_one() {
        let mut page = Page::empty();
        page.subs[0] = Child::Leaf([1; 32], [3; 32]);
        page.subs[15] = Child::Node([2; 32]);
        let bytes = page.encode();
        assert_eq!(bytes.len(), 4 + 64 + 32);
        assert_eq!(Page::decode(&bytes).unwrap(), page);
        // A hash too few or too many, or a subtree marked 3.
        assert!(Page::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Page::decode(&[bytes.as_slice(), &[0; 32]].concat()).is_err());
        let mut three = bytes.clone();
        three[0] |= 0xc0;
        assert!(Page::decode(&three).is_err());
        assert!(Page::decode(&[]).is_err());
    }

    #[test]
    fn a_page_computes_the_tree_with_the_shortcut() {
        use crate::verify::index::smt;
        // Keys placed so that several share a subtree and some stand alone.
        let mut pairs: Vec<(Hash, Hash)> = (0u8..9)
            .map(|i| {
                let mut k = [0u8; 32];
                k[0] = [0x00, 0x01, 0x10, 0x11, 0x80, 0xf0, 0xf1, 0xf2, 0x4f][i as usize];
                k[31] = i;
                (k, [i; 32])
            })
            .collect();
        pairs.sort();
        let mut page = Page::empty();
        for i in 0..FANOUT {
            let under: Vec<_> = pairs
                .iter()
                .copied()
                .filter(|(k, _)| bits(k, 0, 4) == i)
                .collect();
            page.subs[i] = match under.as_slice() {
                [] => Child::Nothing,
                [(k, v)] => Child::Leaf(*k, *v),
                _ => {
                    let p = sub_prefix(&[0; 32], 0, i);
                    let h = view::subtree(&view::Pairs(&under), 4, &p).unwrap();
                    Child::Node(h)
                }
            };
        }
        assert_eq!(page.top(), (2, smt::root(&pairs).unwrap()));
    }

    #[test]
    fn pages_written_batch_by_batch_give_the_definitions_root() {
        use crate::verify::index::smt;
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("pages.redb")).unwrap();
        let mut all = std::collections::BTreeMap::new();
        // Batches of 1 to 300 keys, some of them new values for keys already there.
        let mut n = 0u32;
        for (batch, size) in [1usize, 1, 2, 7, 50, 300, 3, 120, 1, 64].iter().enumerate() {
            let mut changed = std::collections::BTreeMap::new();
            for j in 0..*size {
                let key = if j % 5 == 4 && n > 0 {
                    // An existing key (deterministically chosen), a new value.
                    crate::crypto::sha256(&((n * 7 + j as u32) % n).to_be_bytes())
                } else {
                    n += 1;
                    crate::crypto::sha256(&(n - 1).to_be_bytes())
                };
                changed.insert(key, crate::crypto::sha256(&[batch as u8, j as u8]));
            }
            let changed: Vec<(Hash, Hash)> = changed.into_iter().collect();
            all.extend(changed.iter().copied());
            let txn = db.begin_write().unwrap();
            let root = set_leaves(&txn, 3, &changed).unwrap();
            txn.commit().unwrap();
            let pairs: Vec<(Hash, Hash)> = all.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(root, smt::root(&pairs).unwrap(), "after batch {batch}");
            // The pages answer proofs (leaves listed by walking them) as the definition
            // does, for keys present and absent.
            let txn = db.begin_read().unwrap();
            let pages = txn.open_table(PAGES).unwrap();
            let stored = Stored {
                tree: 3,
                pages: &pages,
            };
            for i in (0..n + 20).step_by(7) {
                let key = crate::crypto::sha256(&i.to_be_bytes());
                assert_eq!(
                    view::prove(&stored, &key).unwrap(),
                    smt::prove(&pairs, &key).unwrap(),
                    "key {i} after batch {batch}"
                );
            }
        }
    }

    #[test]
    fn keys_that_part_at_the_last_bit_prove_like_the_definition() {
        use crate::verify::index::smt;
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("pages.redb")).unwrap();
        let mut one = [0u8; 32];
        one[31] = 1;
        let pairs = vec![([0u8; 32], [5; 32]), (one, [6; 32])];
        let txn = db.begin_write().unwrap();
        let root = set_leaves(&txn, 0, &pairs).unwrap();
        txn.commit().unwrap();
        assert_eq!(root, smt::root(&pairs).unwrap());
        let txn = db.begin_read().unwrap();
        let pages = txn.open_table(PAGES).unwrap();
        let stored = Stored {
            tree: 0,
            pages: &pages,
        };
        let mut two = [0u8; 32];
        two[31] = 2;
        for key in [[0u8; 32], one, two] {
            let proof = view::prove(&stored, &key).unwrap();
            assert_eq!(proof, smt::prove(&pairs, &key).unwrap());
        }
    }
}
