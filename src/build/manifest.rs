//! The artifact manifest: `sha256sum`-format lines `<hex>  <relative path>\n`, sorted by
//! path (byte order), for the crate's OWN outputs; `manifest digest = SHA-256(text)`.
//!
//! Which files (see `docs/reproducibility.md`): the artifacts cargo reports for the root
//! package's lib and bin targets — the `.rlib` (the compiled library; its `.rmeta` is a
//! subset and is left out), a proc-macro's or cdylib's `.so`, a staticlib's `.a`, and
//! each binary. Paths are relative to the target directory, e.g.
//! `x86_64-unknown-linux-gnu/release/deps/libitoa-1a2b3c4d5e6f7a8b.rlib`. Dependencies'
//! artifacts, dep-info files (`.d`, which hold absolute paths) and cargo's bookkeeping
//! (`.fingerprint`, `.rustc_info.json`) are never hashed.

use std::collections::BTreeMap;

use crate::crypto::sha256;

/// Largest manifest text accepted.
pub const MAX_MANIFEST_SIZE: usize = 64 * 1024;

/// Why a manifest text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A line is not `<64 hex>  <path>`.
    #[error("manifest line {0} is malformed")]
    BadLine(usize),
    /// Paths out of order or repeated.
    #[error("manifest line {0} is out of order or repeated")]
    Order(usize),
    /// A path that is absolute, escapes the target directory or has odd characters.
    #[error("manifest line {0} has an invalid path")]
    BadPath(usize),
    /// Empty, too large, or not newline-terminated.
    #[error("manifest is empty, too large or not newline-terminated")]
    Shape,
}

/// Artifact paths and their SHA-256, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    files: BTreeMap<String, [u8; 32]>,
}

/// A relative, normalised path without whitespace or control characters.
fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && p.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '\\')
}

impl Manifest {
    /// Adds a file. Panics on an invalid path (a caller bug: paths come from the builder).
    pub fn insert(&mut self, path: &str, sha256: [u8; 32]) {
        assert!(valid_path(path), "invalid manifest path {path:?}");
        self.files.insert(path.to_string(), sha256);
    }

    /// Files in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8; 32])> {
        self.files.iter().map(|(p, h)| (p.as_str(), h))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file was recorded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The hash recorded for a path.
    pub fn get(&self, path: &str) -> Option<&[u8; 32]> {
        self.files.get(path)
    }

    /// The text: one `<hex>  <path>` line per file, sorted by path.
    pub fn to_text(&self) -> String {
        self.files
            .iter()
            .map(|(p, h)| format!("{}  {p}\n", hex::encode(h)))
            .collect()
    }

    /// `SHA-256(text)`.
    pub fn digest(&self) -> [u8; 32] {
        sha256(self.to_text().as_bytes())
    }

    /// Parses a manifest text strictly (the inverse of [`Manifest::to_text`]).
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        if text.is_empty() || text.len() > MAX_MANIFEST_SIZE || !text.ends_with('\n') {
            return Err(ManifestError::Shape);
        }
        let mut files = BTreeMap::new();
        let mut last: Option<&str> = None;
        for (i, line) in text[..text.len() - 1].split('\n').enumerate() {
            let n = i + 1;
            let (h, p) = line.split_once("  ").ok_or(ManifestError::BadLine(n))?;
            if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(ManifestError::BadLine(n));
            }
            if !valid_path(p) {
                return Err(ManifestError::BadPath(n));
            }
            if last.is_some_and(|l| l >= p) {
                return Err(ManifestError::Order(n));
            }
            last = Some(p);
            let mut hash = [0u8; 32];
            hex::decode_to_slice(h, &mut hash).map_err(|_| ManifestError::BadLine(n))?;
            files.insert(p.to_string(), hash);
        }
        Ok(Self { files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_sha256sum_format_sorted_and_roundtrips() {
        let mut m = Manifest::default();
        m.insert("x86_64-unknown-linux-gnu/release/hexyl", [2; 32]);
        m.insert(
            "x86_64-unknown-linux-gnu/release/deps/libhexyl-0a1b.rlib",
            [1; 32],
        );
        let text = m.to_text();
        assert_eq!(
            text,
            format!(
                "{}  x86_64-unknown-linux-gnu/release/deps/libhexyl-0a1b.rlib\n{}  x86_64-unknown-linux-gnu/release/hexyl\n",
                "01".repeat(32),
                "02".repeat(32)
            )
        );
        assert_eq!(Manifest::parse(&text).unwrap(), m);
        assert_eq!(m.digest(), sha256(text.as_bytes()));
    }

    #[test]
    fn strict_parse() {
        let h = "ab".repeat(32);
        for (bad, err) in [
            (String::new(), ManifestError::Shape),
            (format!("{h}  a"), ManifestError::Shape),
            (format!("{h} a\n"), ManifestError::BadLine(1)),
            (
                format!("{}  a\n", "AB".repeat(32)),
                ManifestError::BadLine(1),
            ),
            (format!("{h}  /etc/passwd\n"), ManifestError::BadPath(1)),
            (format!("{h}  a/../b\n"), ManifestError::BadPath(1)),
            (format!("{h}  b\n{h}  a\n"), ManifestError::Order(2)),
            (format!("{h}  a\n{h}  a\n"), ManifestError::Order(2)),
        ] {
            assert_eq!(Manifest::parse(&bad), Err(err), "{bad:?}");
        }
    }
}
