//! What the index commits to, and how a checkpoint carries it (docs/formats.md, "The
//! index").
//!
//! ```text
//! variants key    = SHA-256("crate@version")
//! variants value  = SHA-256("synchronicity/index/variants/v1\n" ‖ (u64be index ‖ leaf hash)*)
//!                   every entry of crate@version (every variant and attempt), in log order;
//!                   leaf hash = the entry's RFC 6962 leaf hash
//! crates key      = SHA-256("crate")
//! crates value    = SHA-256("synchronicity/index/versions/v1\n" ‖ (version ‖ "\n")*)
//!                   every version of the crate the log holds an entry for, in byte order
//! extension line  = "synchronicity-index/v1 " base64(variants root) " " base64(crates root)
//! ```
//!
//! A key that the log holds no entry for is absent from its tree (never a leaf with an
//! empty list), so "no entry" is a proof of absence.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::smt::{self, Hash, SmtError};
use crate::sha256;
use crate::tlog::Checkpoint;

/// The checkpoint extension line's first word.
pub const EXTENSION_TAG: &str = "synchronicity-index/v1";

const VARIANTS_DOMAIN: &[u8] = b"synchronicity/index/variants/v1\n";
const VERSIONS_DOMAIN: &[u8] = b"synchronicity/index/versions/v1\n";

/// The roots of the two index trees at one log size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexRoots {
    /// `crate@version` → its entries.
    pub variants: Hash,
    /// `crate` → its logged versions.
    pub crates: Hash,
}

/// Why a checkpoint's index line or an index value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The checkpoint carries no index line (a log written before the index, or a body
    /// that dropped it).
    #[error("the checkpoint of size {0} carries no index roots")]
    NoIndex(u64),
    /// Two index lines.
    #[error("the checkpoint carries the index line twice")]
    Doubled,
    /// An index line that does not parse.
    #[error("malformed index line: {0}")]
    Malformed(&'static str),
    /// Entry indexes not strictly ascending.
    #[error("the entry indexes are not in log order")]
    OutOfOrder,
    /// Versions not strictly ascending in byte order, or one that cannot be in the list.
    #[error("the version list is not sorted, or holds an empty or multi-line version")]
    BadVersions,
}

impl IndexRoots {
    /// The checkpoint extension line (no newline).
    pub fn extension_line(&self) -> String {
        format!(
            "{EXTENSION_TAG} {} {}",
            B64.encode(self.variants),
            B64.encode(self.crates)
        )
    }

    /// The roots a checkpoint carries. Other extension lines are ignored (C2SP: opaque);
    /// an index line that is malformed, or a second one, is refused.
    pub fn of_checkpoint(cp: &Checkpoint) -> Result<Self, IndexError> {
        let mut found = None;
        for line in &cp.extensions {
            let Some(rest) = line.strip_prefix(EXTENSION_TAG) else {
                continue;
            };
            if found.is_some() {
                return Err(IndexError::Doubled);
            }
            found = Some(Self::parse_fields(rest)?);
        }
        found.ok_or(IndexError::NoIndex(cp.size))
    }

    fn parse_fields(rest: &str) -> Result<Self, IndexError> {
        let Some(rest) = rest.strip_prefix(' ') else {
            return Err(IndexError::Malformed("no space after the tag"));
        };
        let mut fields = rest.split(' ');
        let (Some(v), Some(c), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(IndexError::Malformed("not two roots"));
        };
        let hash = |s: &str| -> Result<Hash, IndexError> {
            let bytes = B64
                .decode(s)
                .map_err(|_| IndexError::Malformed("a root is not base64"))?;
            let h: Hash = bytes
                .try_into()
                .map_err(|_| IndexError::Malformed("a root is not 32 bytes"))?;
            if B64.encode(h) != s {
                return Err(IndexError::Malformed("a root is not canonical base64"));
            }
            Ok(h)
        };
        Ok(Self {
            variants: hash(v)?,
            crates: hash(c)?,
        })
    }
}

/// The variants tree's key of `crate@version`.
pub fn variants_key(spec: &str) -> Hash {
    sha256(spec.as_bytes())
}

/// The crates tree's key of a crate name.
pub fn crate_key(name: &str) -> Hash {
    sha256(name.as_bytes())
}

/// The variants value of `entries` (`(entry index, leaf hash)`), which must be in log
/// order (strictly ascending indexes).
pub fn variants_value(entries: &[(u64, Hash)]) -> Result<Hash, IndexError> {
    if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(IndexError::OutOfOrder);
    }
    let mut b = Vec::with_capacity(VARIANTS_DOMAIN.len() + 40 * entries.len());
    b.extend_from_slice(VARIANTS_DOMAIN);
    for (i, h) in entries {
        b.extend_from_slice(&i.to_be_bytes());
        b.extend_from_slice(h);
    }
    Ok(sha256(&b))
}

/// The crates value of `versions`, which must be in byte order, each once, none empty or
/// holding a newline.
pub fn versions_value(versions: &[String]) -> Result<Hash, IndexError> {
    if versions.windows(2).any(|w| w[0] >= w[1])
        || versions.iter().any(|v| v.is_empty() || v.contains('\n'))
    {
        return Err(IndexError::BadVersions);
    }
    let mut b = VERSIONS_DOMAIN.to_vec();
    for v in versions {
        b.extend_from_slice(v.as_bytes());
        b.push(b'\n');
    }
    Ok(sha256(&b))
}

/// The index of a log computed in one pass over its entries, in log order: the
/// definition above, for whoever holds the whole log (a mirror, `log fsck`). Holds every
/// key's list in memory (about 40 bytes per entry).
#[derive(Debug, Default)]
pub struct IndexBuilder {
    /// `crate@version` → `(entry index, leaf hash)` in log order.
    variants: BTreeMap<String, Vec<(u64, Hash)>>,
}

/// Why a log has no index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Entries not pushed in log order.
    #[error("entry {0} pushed after a later one")]
    OutOfOrder(u64),
    /// A spec that is not `crate@version` (or one whose version cannot be listed).
    #[error("{0:?} is not crate@version")]
    BadSpec(String),
    /// A value or tree that cannot be computed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The tree refused its keys.
    #[error(transparent)]
    Tree(#[from] SmtError),
}

impl IndexBuilder {
    /// Adds entry `index` of `spec` (`crate@version`), whose RFC 6962 leaf hash is `leaf`.
    pub fn push(&mut self, index: u64, spec: &str, leaf: Hash) -> Result<(), BuildError> {
        match spec.split_once('@') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() && !v.contains('\n') => {}
            _ => return Err(BuildError::BadSpec(spec.to_string())),
        }
        let list = self.variants.entry(spec.to_string()).or_default();
        if list.last().is_some_and(|(i, _)| *i >= index) {
            return Err(BuildError::OutOfOrder(index));
        }
        list.push((index, leaf));
        Ok(())
    }

    /// Every entry of `spec` pushed so far, in log order.
    pub fn entries(&self, spec: &str) -> &[(u64, Hash)] {
        self.variants.get(spec).map_or(&[], Vec::as_slice)
    }

    /// The roots of the entries pushed so far.
    pub fn roots(&self) -> Result<IndexRoots, BuildError> {
        let mut variants = Vec::with_capacity(self.variants.len());
        let mut crates: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (spec, list) in &self.variants {
            variants.push((variants_key(spec), variants_value(list)?));
            // Checked at `push`.
            let (name, version) = spec.split_once('@').unwrap_or((spec, ""));
            crates.entry(name).or_default().push(version.to_string());
        }
        let mut names = Vec::with_capacity(crates.len());
        for (name, versions) in crates {
            // The map's order is the spec's ("a@1" < "a@1.0"), which is the versions'.
            names.push((crate_key(name), versions_value(&versions)?));
        }
        variants.sort();
        names.sort();
        Ok(IndexRoots {
            variants: smt::root(&variants)?,
            crates: smt::root(&names)?,
        })
    }
}
