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

use crate::sha256;

/// Largest manifest text accepted for a crate's own artifacts.
pub const MAX_MANIFEST_SIZE: usize = 64 * 1024;
/// Largest manifest text accepted for a recipe's dependency units (issue 28: a mid-size
/// application's dependencies are several hundred files; a light client's blob bound).
pub const MAX_RECIPE_MANIFEST_SIZE: usize = 1024 * 1024;

/// The manifest bound of `request`'s kind: [`MAX_RECIPE_MANIFEST_SIZE`] for a recipe
/// request, [`MAX_MANIFEST_SIZE`] otherwise.
pub fn manifest_bound(request: &crate::request::BuildRequest) -> usize {
    if request.is_recipe() {
        MAX_RECIPE_MANIFEST_SIZE
    } else {
        MAX_MANIFEST_SIZE
    }
}

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

/// Why an artifact file is not the one the manifest attests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The manifest has no file at the given path (or with the given file name).
    #[error("no {wanted} in the attested manifest (it lists {listed})")]
    NotListed {
        /// The path or file name asked for.
        wanted: String,
        /// The manifest's paths, comma-separated.
        listed: String,
    },
    /// The file's sha256 is listed, but under another path: it is another artifact.
    #[error("its sha256 is attested for {listed_as}, not for {wanted}")]
    OtherName {
        /// The path or file name asked for.
        wanted: String,
        /// The path the hash is listed under.
        listed_as: String,
    },
    /// Several manifest paths end in this file name.
    #[error("several attested files are named {name} ({paths}); give MANIFEST_PATH=FILE")]
    Ambiguous {
        /// The file name.
        name: String,
        /// The candidate paths.
        paths: String,
    },
    /// The path matches, the bytes do not.
    #[error("sha256 {found} differs from the attested {attested} for {path}")]
    Mismatch {
        /// The manifest path.
        path: String,
        /// The file's sha256, hex.
        found: String,
        /// The attested sha256, hex.
        attested: String,
    },
}

/// Artifact paths and their SHA-256, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    files: BTreeMap<String, [u8; 32]>,
}

/// True if `p` may be a manifest path: relative, normalised, without whitespace, control
/// characters or backslashes.
pub fn is_valid_path(p: &str) -> bool {
    valid_path(p)
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

    /// Checks an artifact file's bytes against the manifest by sha256 AND path: at exactly
    /// `manifest_path` when given, else at the one path whose last component is
    /// `file_name`. Returns the manifest path it matched. A file whose hash is attested
    /// under another path is refused: it is another artifact, whatever its name.
    pub fn check_artifact(
        &self,
        manifest_path: Option<&str>,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<String, ArtifactError> {
        let found = sha256(bytes);
        let listed = || self.files.keys().cloned().collect::<Vec<_>>().join(", ");
        let (wanted, candidates): (String, Vec<&String>) = match manifest_path {
            Some(p) => (
                p.to_string(),
                self.files.keys().filter(|k| *k == p).collect(),
            ),
            None => (
                format!("file named {file_name}"),
                self.files
                    .keys()
                    .filter(|k| k.rsplit('/').next() == Some(file_name))
                    .collect(),
            ),
        };
        match candidates.as_slice() {
            [path] => {
                let attested = self.files[*path];
                if attested == found {
                    Ok((*path).clone())
                } else {
                    Err(ArtifactError::Mismatch {
                        path: (*path).clone(),
                        found: hex::encode(found),
                        attested: hex::encode(attested),
                    })
                }
            }
            [] => match self.files.iter().find(|(_, h)| **h == found) {
                Some((other, _)) => Err(ArtifactError::OtherName {
                    wanted,
                    listed_as: other.clone(),
                }),
                None => Err(ArtifactError::NotListed {
                    wanted,
                    listed: listed(),
                }),
            },
            many => Err(ArtifactError::Ambiguous {
                name: file_name.to_string(),
                paths: many
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// `SHA-256(text)`.
    pub fn digest(&self) -> [u8; 32] {
        sha256(self.to_text().as_bytes())
    }

    /// Parses a manifest text strictly (the inverse of [`Manifest::to_text`]), at most
    /// [`MAX_MANIFEST_SIZE`].
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        Self::parse_within(text, MAX_MANIFEST_SIZE)
    }

    /// [`Manifest::parse`] with the bound `max` (see [`manifest_bound`]).
    pub fn parse_within(text: &str, max: usize) -> Result<Self, ManifestError> {
        if text.is_empty() || text.len() > max || !text.ends_with('\n') {
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
    fn artifacts_match_by_hash_and_path() {
        let mut m = Manifest::default();
        m.insert("t/release/libitoa.rlib", sha256(b"lib"));
        m.insert("t/release/itoa", sha256(b"bin"));
        m.insert("t/release/deps/itoa", sha256(b"other"));
        assert_eq!(
            m.check_artifact(None, "libitoa.rlib", b"lib").unwrap(),
            "t/release/libitoa.rlib"
        );
        assert!(matches!(
            m.check_artifact(None, "libitoa.rlib", b"bin"),
            Err(ArtifactError::Mismatch { .. })
        ));
        // The right bytes under another name are refused, naming where they are attested.
        assert_eq!(
            m.check_artifact(None, "libevil.rlib", b"lib"),
            Err(ArtifactError::OtherName {
                wanted: "file named libevil.rlib".into(),
                listed_as: "t/release/libitoa.rlib".into()
            })
        );
        assert!(matches!(
            m.check_artifact(None, "x", b"nothing"),
            Err(ArtifactError::NotListed { .. })
        ));
        // Two paths end in `itoa`: the exact path decides.
        assert!(matches!(
            m.check_artifact(None, "itoa", b"bin"),
            Err(ArtifactError::Ambiguous { .. })
        ));
        assert_eq!(
            m.check_artifact(Some("t/release/itoa"), "whatever", b"bin")
                .unwrap(),
            "t/release/itoa"
        );
        assert!(matches!(
            m.check_artifact(Some("t/release/deps/itoa"), "itoa", b"bin"),
            Err(ArtifactError::Mismatch { .. })
        ));
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
