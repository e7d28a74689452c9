//! The index's trees as stored: what a reader sees of one tree ([`TreeView`]), the subtree
//! hashes and proofs computed from it, and the tree as it was at an earlier log size
//! ([`AtSize`], for answers under the latest cosigned checkpoint while the log moved on).
//!
//! A view answers for every internal node — a subtree holding at least two leaves — under
//! (depth, prefix), and for the leaves under a prefix (the stored trees: `pages.rs`). A
//! subtree with one leaf or none has no node: its hash is its leaf's, or EMPTY.

use crate::verify::index::smt::{EMPTY, Hash, SmtProof, bit, leaf_hash, node_hash};

use super::super::StoreError;

/// `key` with its bits from `depth` on cleared: the prefix naming the subtree at `depth`
/// on `key`'s path.
pub(crate) fn prefix(key: &Hash, depth: usize) -> Hash {
    let mut p = [0u8; 32];
    let full = depth / 8;
    p[..full].copy_from_slice(&key[..full]);
    if !depth.is_multiple_of(8) {
        p[full] = key[full] & !(0xffu8 >> (depth % 8));
    }
    p
}

/// The last key under `(depth, prefix)`: the prefix with every bit from `depth` on set.
pub(crate) fn last_under(prefix: &Hash, depth: usize) -> Hash {
    let mut p = *prefix;
    let full = depth / 8;
    if full < 32 {
        if !depth.is_multiple_of(8) {
            p[full] |= 0xffu8 >> (depth % 8);
            p[full + 1..].fill(0xff);
        } else {
            p[full..].fill(0xff);
        }
    }
    p
}

/// The prefix of the child at `depth + 1` on side `one` of `(depth, prefix)`.
pub(crate) fn child(prefix: &Hash, depth: usize, one: bool) -> Hash {
    let mut p = *prefix;
    if one {
        p[depth / 8] |= 0x80 >> (depth % 8);
    }
    p
}

/// What a reader sees of one tree.
pub(crate) trait TreeView {
    /// The stored hash of the node at `(depth, prefix)` (`None`: not stored, or not usable
    /// as stored).
    fn node(&self, depth: usize, prefix: &Hash) -> Result<Option<Hash>, StoreError>;
    /// Up to `limit` leaves under `(depth, prefix)`, in key order.
    fn leaves(
        &self,
        depth: usize,
        prefix: &Hash,
        limit: usize,
    ) -> Result<Vec<(Hash, Hash)>, StoreError>;
}

/// The hash of the subtree at `(depth, prefix)`.
pub(crate) fn subtree<V: TreeView + ?Sized>(
    view: &V,
    depth: usize,
    prefix: &Hash,
) -> Result<Hash, StoreError> {
    if let Some(h) = view.node(depth, prefix)? {
        return Ok(h);
    }
    Ok(match view.leaves(depth, prefix, 2)?.as_slice() {
        [] => EMPTY,
        [(k, v)] => leaf_hash(k, v),
        _ => node_hash(
            &subtree(view, depth + 1, &child(prefix, depth, false))?,
            &subtree(view, depth + 1, &child(prefix, depth, true))?,
        ),
    })
}

/// The proof for `key` (the same as `smt::prove` over the view's leaves).
pub(crate) fn prove<V: TreeView + ?Sized>(view: &V, key: &Hash) -> Result<SmtProof, StoreError> {
    let mut siblings = Vec::new();
    // Up to depth 256: two keys that differ only in bit 255 part there.
    for depth in 0..=256 {
        let p = prefix(key, depth);
        let leaves = view.leaves(depth, &p, 2)?;
        if leaves.len() <= 1 {
            return Ok(SmtProof {
                siblings,
                leaf: leaves.first().copied(),
            });
        }
        let other = child(&p, depth, !bit(key, depth));
        siblings.push(subtree(view, depth + 1, &other)?);
    }
    Err(StoreError::Db("index: two leaves with one key".into()))
}

/// A tree as it was at an earlier log size: the stored tree with the keys that changed
/// since then set back (`Some(value)`: its value then; `None`: absent then). Nodes above a
/// changed key are recomputed, the rest read as stored, so a proof costs O(changes × depth).
pub(crate) struct AtSize<'v, V: ?Sized> {
    pub(crate) base: &'v V,
    pub(crate) then: &'v std::collections::BTreeMap<Hash, Option<Hash>>,
}

impl<V: TreeView + ?Sized> AtSize<'_, V> {
    fn changed_under(&self, depth: usize, prefix: &Hash) -> usize {
        self.then.range(*prefix..=last_under(prefix, depth)).count()
    }
}

impl<V: TreeView + ?Sized> TreeView for AtSize<'_, V> {
    fn node(&self, depth: usize, prefix: &Hash) -> Result<Option<Hash>, StoreError> {
        if self.changed_under(depth, prefix) > 0 {
            return Ok(None);
        }
        self.base.node(depth, prefix)
    }

    fn leaves(
        &self,
        depth: usize,
        prefix: &Hash,
        limit: usize,
    ) -> Result<Vec<(Hash, Hash)>, StoreError> {
        // Enough stored leaves that `limit` remain after the changed ones are set back.
        let extra = self.changed_under(depth, prefix);
        let mut out: Vec<(Hash, Hash)> = self
            .base
            .leaves(depth, prefix, limit + extra)?
            .into_iter()
            .filter_map(|(k, v)| match self.then.get(&k) {
                None => Some((k, v)),
                Some(then) => then.map(|v| (k, v)),
            })
            .collect();
        out.truncate(limit);
        Ok(out)
    }
}

/// A tree held in memory (sorted pairs): the reference the stored trees are tested
/// against, and a view for tools that load a tree whole.
#[cfg(test)]
pub(crate) struct Pairs<'p>(pub(crate) &'p [(Hash, Hash)]);

#[cfg(test)]
impl TreeView for Pairs<'_> {
    fn node(&self, _: usize, _: &Hash) -> Result<Option<Hash>, StoreError> {
        Ok(None)
    }

    fn leaves(
        &self,
        depth: usize,
        prefix: &Hash,
        limit: usize,
    ) -> Result<Vec<(Hash, Hash)>, StoreError> {
        let last = last_under(prefix, depth);
        let start = self.0.partition_point(|(k, _)| k < prefix);
        Ok(self.0[start..]
            .iter()
            .take_while(|(k, _)| *k <= last)
            .take(limit)
            .copied()
            .collect())
    }
}
