//! A sparse Merkle tree over 256-bit keys with shortcut leaves: the verifiable index's tree
//! (issue 26; docs/decisions.md, "The index's tree"). Pure functions, no storage: the tree of
//! a set of `(key, value digest)` pairs is a deterministic function of the set, so every
//! member computes the same root.
//!
//! ```text
//! leaf(k, v)  = SHA-256(0x00 ‖ k ‖ v)           k: the 32-byte key, v: a 32-byte value digest
//! node(l, r)  = SHA-256(0x01 ‖ l ‖ r)
//! EMPTY       = 32 zero bytes                   an empty subtree, at any depth
//! tree(d, S)  = EMPTY                           if S is empty
//!             = leaf(k, v)                      if S = {(k, v)} (the shortcut: a lone leaf
//!                                               sits as high as its subtree)
//!             = node(tree(d+1, S0), tree(d+1, S1))  else, S0/S1: keys whose bit d is 0/1
//! root(S)     = tree(0, S)                      bit 0 is the most significant bit of k[0]
//! ```
//!
//! A proof for key `k` is the siblings along `k`'s path from the root down to the depth where
//! `k`'s side holds at most one leaf, and what is there: nothing (`k` is absent), `k`'s own
//! leaf (present, with its value), or another key's leaf sharing `k`'s path so far (absent).
//! Leaves and nodes are domain-separated, so a proof cannot stop above or go below where the
//! tree really holds the leaf; the all-zero EMPTY is no SHA-256 output anyone can find.
//! Proof size is the depth: about log2(n) + a few siblings for n keys.

use crate::sha256;

/// A 32-byte key (the SHA-256 of what is indexed) or hash.
pub type Hash = [u8; 32];

/// The hash of an empty subtree.
pub const EMPTY: Hash = [0; 32];

/// Most siblings in a proof (two distinct keys part by bit 255 at the latest).
pub const MAX_DEPTH: usize = 256;

/// `SHA-256(0x00 ‖ key ‖ value)`.
pub fn leaf_hash(key: &Hash, value: &Hash) -> Hash {
    let mut b = [0u8; 65];
    b[1..33].copy_from_slice(key);
    b[33..].copy_from_slice(value);
    sha256(&b)
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut b = [0u8; 65];
    b[0] = 1;
    b[1..33].copy_from_slice(left);
    b[33..].copy_from_slice(right);
    sha256(&b)
}

/// Bit `depth` of `key` (0: the most significant bit of `key[0]`).
pub fn bit(key: &Hash, depth: usize) -> bool {
    key[depth / 8] & (0x80 >> (depth % 8)) != 0
}

/// Why a set of pairs has no tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtError {
    /// The same key twice.
    #[error("key {0} appears twice")]
    DuplicateKey(String),
    /// The pairs are not sorted by key.
    #[error("keys are not sorted")]
    NotSorted,
}

/// The root of the pairs `sorted` (sorted by key, each key once).
pub fn root(sorted: &[(Hash, Hash)]) -> Result<Hash, SmtError> {
    check_sorted(sorted)?;
    Ok(subtree(0, sorted))
}

fn check_sorted(pairs: &[(Hash, Hash)]) -> Result<(), SmtError> {
    for w in pairs.windows(2) {
        match w[0].0.cmp(&w[1].0) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Err(SmtError::DuplicateKey(hex::encode(w[0].0))),
            std::cmp::Ordering::Greater => return Err(SmtError::NotSorted),
        }
    }
    Ok(())
}

/// `tree(depth, pairs)`: the pairs share their first `depth` bits and are sorted, so the keys
/// whose bit `depth` is 0 come first.
fn subtree(depth: usize, pairs: &[(Hash, Hash)]) -> Hash {
    match pairs {
        [] => EMPTY,
        [(k, v)] => leaf_hash(k, v),
        _ => {
            let split = pairs.partition_point(|(k, _)| !bit(k, depth));
            node_hash(
                &subtree(depth + 1, &pairs[..split]),
                &subtree(depth + 1, &pairs[split..]),
            )
        }
    }
}

/// A proof of what the tree holds for one key (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtProof {
    /// The siblings along the key's path, from the root's children down.
    pub siblings: Vec<Hash>,
    /// The leaf where the path ends (`None`: an empty subtree).
    pub leaf: Option<(Hash, Hash)>,
}

/// The proof for `key` in the tree of `sorted` (sorted, each key once).
pub fn prove(sorted: &[(Hash, Hash)], key: &Hash) -> Result<SmtProof, SmtError> {
    check_sorted(sorted)?;
    let mut siblings = Vec::new();
    let mut pairs = sorted;
    let mut depth = 0;
    while pairs.len() > 1 {
        let split = pairs.partition_point(|(k, _)| !bit(k, depth));
        let (left, right) = pairs.split_at(split);
        let (mine, other) = if bit(key, depth) {
            (right, left)
        } else {
            (left, right)
        };
        siblings.push(subtree(depth + 1, other));
        pairs = mine;
        depth += 1;
    }
    Ok(SmtProof {
        siblings,
        leaf: pairs.first().copied(),
    })
}

/// Why a proof does not show what it was asked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtProofError {
    /// More siblings than a path has.
    #[error("proof of {0} siblings, more than {MAX_DEPTH}")]
    TooDeep(usize),
    /// The leaf the proof ends at does not answer for this key as claimed.
    #[error("the proof's leaf does not answer for this key")]
    WrongLeaf,
    /// The proof does not lead to the root.
    #[error("the proof does not lead to the root")]
    WrongRoot,
}

impl SmtProof {
    /// Checks that the tree with `root` holds `value` for `key` (`None`: holds nothing).
    pub fn verify(
        &self,
        root: &Hash,
        key: &Hash,
        value: Option<&Hash>,
    ) -> Result<(), SmtProofError> {
        let depth = self.siblings.len();
        if depth > MAX_DEPTH {
            return Err(SmtProofError::TooDeep(depth));
        }
        let answers = match (&self.leaf, value) {
            // Present: the path ends at this key's own leaf with this value.
            (Some((k, v)), Some(want)) => k == key && v == want,
            // Absent: an empty subtree, or another key's lone leaf on this key's path.
            (None, None) => true,
            (Some((k, _)), None) => k != key && (0..depth).all(|d| bit(k, d) == bit(key, d)),
            (None, Some(_)) => false,
        };
        if !answers {
            return Err(SmtProofError::WrongLeaf);
        }
        let mut h = self.leaf.map_or(EMPTY, |(k, v)| leaf_hash(&k, &v));
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            h = if bit(key, d) {
                node_hash(sibling, &h)
            } else {
                node_hash(&h, sibling)
            };
        }
        if &h == root {
            Ok(())
        } else {
            Err(SmtProofError::WrongRoot)
        }
    }
}

#[cfg(test)]
mod tests;
