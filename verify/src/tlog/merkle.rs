//! RFC 6962 Merkle tree math as pure functions over one narrow storage trait, in the manner
//! of Go's `sumdb/tlog`.
//!
//! A log of `n` records stores, for every complete subtree, its root: the hash at
//! [`HashIndex`] `(level, index)` covers leaves `[index·2^level, (index+1)·2^level)`. Level 0
//! holds the leaf hashes. Appending a record stores exactly `1 + (trailing ones of n)` new
//! hashes, so about 2 per record on average and `≤ 1 + log₂ n` for any one.
//!
//! Every hash of an RFC 6962 tree over `[a, b)` with `a` a multiple of the largest power of
//! two `≥ b − a` (which is every range the RFC's recursions produce) is the right fold of at
//! most `log₂(b − a) + 1` stored hashes, so tree hashes and proofs cost O(log n) reads, and
//! helpers come in pairs: first compute which indexes are needed, then ONE batched read, then
//! the hash.
//!
//! Bounds: tree sizes are below [`MAX_TREE_SIZE`] (2^58), so a stored index packs into a
//! `u64` key with the level in the top 6 bits.
//!
//! Bad input and bad proofs return errors; broken internal index math panics.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Trees hold fewer than 2^58 records (so `(level, index)` packs into a `u64`).
pub const MAX_TREE_SIZE: u64 = 1 << 58;

/// The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `SHA-256(0x00 || data)`: the hash of a record.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The position of a stored hash: the root of leaves `[index·2^level, (index+1)·2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashIndex {
    /// Height of the subtree (0 = leaf).
    pub level: u8,
    /// Position among the subtrees of that level.
    pub index: u64,
}

impl HashIndex {
    /// Packs into a `u64` storage key: level in the top 6 bits, index below. Sorted keys
    /// group a level together.
    pub fn key(self) -> u64 {
        debug_assert!(self.level < 64 && self.index < MAX_TREE_SIZE);
        (u64::from(self.level) << 58) | self.index
    }

    /// The inverse of [`HashIndex::key`].
    pub fn from_key(key: u64) -> Self {
        Self {
            level: (key >> 58) as u8,
            index: key & (MAX_TREE_SIZE - 1),
        }
    }
}

/// Storage of the stored hashes.
pub trait HashReader {
    /// Returns the hashes at `indexes`, in the same order and the same count, or an error
    /// (never a shorter list). Callers pass indexes in ascending key order when they can.
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, MerkleError>;
}

/// Why a proof could not be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The record index is not below the tree size.
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// Record index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The old size exceeds the new size, or a size exceeds what is stored.
    #[error("tree size {old} cannot be compared with tree size {new}")]
    SizeOutOfRange {
        /// The smaller (or claimed smaller) size.
        old: u64,
        /// The larger size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for its sizes and index.
    #[error("proof has {found} hashes, expected {expected}")]
    ProofLength {
        /// Hashes required.
        expected: usize,
        /// Hashes given.
        found: usize,
    },
    /// The recomputed root differs from the claimed one.
    #[error("proof does not lead to the claimed root")]
    RootMismatch,
    /// The storage failed or broke its contract.
    #[error("storage: {0}")]
    Storage(String),
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The stored subtrees covering `[a, b)`, left to right. Precondition: `a` is a multiple of
/// every power of two `≤ b − a` that the greedy walk uses (true for every RFC 6962 range).
pub fn range_subtrees(mut a: u64, b: u64) -> Vec<HashIndex> {
    let mut out = Vec::new();
    while a < b {
        let mut level = if a == 0 { 63 } else { a.trailing_zeros() };
        while (1u64 << level.min(63)) > b - a {
            level -= 1;
        }
        out.push(HashIndex {
            level: level as u8,
            index: a >> level,
        });
        a += 1 << level;
    }
    out
}

/// The hash of a range from the stored hashes of [`range_subtrees`]: the right fold
/// `H(s1, H(s2, … H(s_{k−1}, s_k)))`.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    let (last, rest) = hashes.split_last().expect("a non-empty range has subtrees");
    rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc))
}

fn read_exact<R: HashReader + ?Sized>(r: &R, idx: &[HashIndex]) -> Result<Vec<Hash>, MerkleError> {
    let got = r.read_hashes(idx)?;
    if got.len() != idx.len() {
        return Err(MerkleError::Storage(format!(
            "asked {} hashes, got {}",
            idx.len(),
            got.len()
        )));
    }
    Ok(got)
}

/// Which stored hashes [`hashes_to_store`] reads when record `n` is appended.
pub fn append_reads(n: u64) -> Vec<HashIndex> {
    let mut out = Vec::new();
    let mut level = 1;
    while (n + 1).is_multiple_of(1 << level) {
        let k = ((n + 1) >> level) - 1;
        out.push(HashIndex {
            level: level - 1,
            index: 2 * k,
        });
        level += 1;
    }
    out
}

/// The hashes to store when record `n` (0-based, so the tree grows to `n + 1`) with hash
/// `leaf` is appended: its leaf hash and each subtree it completes. `siblings` are the
/// hashes at [`append_reads`]`(n)`.
pub fn hashes_to_store(n: u64, leaf: Hash, siblings: &[Hash]) -> Vec<(HashIndex, Hash)> {
    let reads = append_reads(n);
    assert_eq!(reads.len(), siblings.len(), "append_reads contract");
    let mut out = vec![(HashIndex { level: 0, index: n }, leaf)];
    let mut h = leaf;
    for (i, left) in reads.iter().zip(siblings) {
        h = node_hash(left, &h);
        out.push((
            HashIndex {
                level: i.level + 1,
                index: i.index / 2,
            },
            h,
        ));
    }
    out
}

/// The root of the tree of the first `size` records.
pub fn tree_hash<R: HashReader + ?Sized>(size: u64, r: &R) -> Result<Hash, MerkleError> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    let idx = range_subtrees(0, size);
    Ok(fold_range(&read_exact(r, &idx)?))
}

/// RFC 6962 PATH(m, D[lo:hi]) as ranges, from the leaf's sibling up to the root's child.
fn inclusion_ranges(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split_point(hi - lo);
    if m < lo + k {
        inclusion_ranges(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(m, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// RFC 6962 SUBPROOF(m, D[lo:hi], b) as ranges.
fn consistency_ranges(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    if lo + m == hi {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(hi - lo);
    if m <= k {
        consistency_ranges(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// Hashes of several ranges with ONE batched read.
fn range_hashes<R: HashReader + ?Sized>(
    ranges: &[(u64, u64)],
    r: &R,
) -> Result<Vec<Hash>, MerkleError> {
    let per: Vec<Vec<HashIndex>> = ranges.iter().map(|&(a, b)| range_subtrees(a, b)).collect();
    let all: Vec<HashIndex> = per.iter().flatten().copied().collect();
    let hashes = read_exact(r, &all)?;
    let mut at = 0;
    Ok(per
        .iter()
        .map(|p| {
            let h = fold_range(&hashes[at..at + p.len()]);
            at += p.len();
            h
        })
        .collect())
}

/// The inclusion proof of record `index` in the tree of size `size` (at most ⌈log₂ size⌉ hashes).
pub fn prove_inclusion<R: HashReader + ?Sized>(
    index: u64,
    size: u64,
    r: &R,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size || size > MAX_TREE_SIZE {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    range_hashes(&ranges, r)
}

/// The consistency proof from the tree of size `old` to the tree of size `new`. Empty when
/// `old` is 0 or equals `new`.
pub fn prove_consistency<R: HashReader + ?Sized>(
    old: u64,
    new: u64,
    r: &R,
) -> Result<Vec<Hash>, MerkleError> {
    if old > new || new > MAX_TREE_SIZE {
        return Err(MerkleError::SizeOutOfRange { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    consistency_ranges(old, 0, new, true, &mut ranges);
    range_hashes(&ranges, r)
}

/// Checks that `leaf` is record `index` of the tree of `size` with root `root` (RFC 9162
/// §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size || size > MAX_TREE_SIZE {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::ProofLength {
            expected,
            found: proof.len(),
        });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    debug_assert_eq!(s, 0, "proof length was checked");
    if &r == root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// The length of an inclusion proof for (`index`, `size`).
pub fn inclusion_len(index: u64, size: u64) -> usize {
    let mut v = Vec::new();
    inclusion_ranges(index, 0, size, &mut v);
    v.len()
}

/// Checks that the tree of size `old` with root `old_root` is a prefix of the tree of size
/// `new` with root `new_root` (RFC 9162 §2.1.4.2). From the empty tree, only an empty proof
/// and the empty root are accepted.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old > new || new > MAX_TREE_SIZE {
        return Err(MerkleError::SizeOutOfRange { old, new });
    }
    if old == 0 || old == new {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength {
                expected: 0,
                found: proof.len(),
            });
        }
        let ok = if old == 0 {
            old_root == &EMPTY_ROOT
        } else {
            old_root == new_root
        };
        return if ok {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let mut ranges = Vec::new();
    consistency_ranges(old, 0, new, true, &mut ranges);
    if proof.len() != ranges.len() {
        return Err(MerkleError::ProofLength {
            expected: ranges.len(),
            found: proof.len(),
        });
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(MerkleError::RootMismatch);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 && &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}
