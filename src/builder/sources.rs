//! Sources from crates.io: the sparse index (for the `cksum` and the yanked flag), the
//! `.crate` download (checked against that sha256), a content-addressed cache, and
//! unpacking with the request's `Cargo.lock`.
//!
//! HTTPS uses the system's TLS trust store (native-tls), as some networks present a CA only
//! the system store trusts.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::crypto::sha256;

/// The crates.io sparse index.
pub const CRATES_IO_INDEX: &str = "https://index.crates.io";
/// Where `.crate` files are served.
pub const CRATES_IO_DL: &str = "https://static.crates.io/crates";
/// Largest `.crate` accepted (crates.io's own limit is 10 MiB).
const MAX_CRATE_SIZE: u64 = 64 * 1024 * 1024;

/// Why a source could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The index has no such crate.
    #[error("crate {0} is not on crates.io")]
    UnknownCrate(String),
    /// The crate exists, the version does not.
    #[error("{0} has no version {1}")]
    UnknownVersion(String, String),
    /// The version was yanked.
    #[error("{0}@{1} is yanked")]
    Yanked(String, String),
    /// The download does not match the index checksum.
    #[error("{name}@{version}: checksum mismatch (index {expected}, download {actual})")]
    ChecksumMismatch {
        /// Crate.
        name: String,
        /// Version.
        version: String,
        /// From the index or the request.
        expected: String,
        /// Of the bytes received.
        actual: String,
    },
    /// The crate ships no Cargo.lock and the request carries none.
    #[error("{0} ships no Cargo.lock; pass --lockfile or let the submitter generate one")]
    NoLockfile(String),
    /// Network failure.
    #[error("{url}: {reason}")]
    Http {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// Malformed index or archive.
    #[error("{0}")]
    Malformed(String),
    /// Local I/O.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the index says about one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// SHA-256 of the `.crate`.
    pub cksum: [u8; 32],
    /// Yanked by its authors.
    pub yanked: bool,
}

/// The index path of a crate: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…` (lowercased).
pub fn index_path(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.len() {
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

/// Finds `version` in an index file (one JSON object per line).
pub fn parse_index(name: &str, version: &str, body: &str) -> Result<IndexEntry, SourceError> {
    #[derive(serde::Deserialize)]
    struct Line {
        vers: String,
        cksum: String,
        #[serde(default)]
        yanked: bool,
    }
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let l: Line = serde_json::from_str(line)
            .map_err(|e| SourceError::Malformed(format!("index of {name}: {e}")))?;
        if l.vers == version {
            let mut cksum = [0u8; 32];
            hex::decode_to_slice(&l.cksum, &mut cksum)
                .map_err(|_| SourceError::Malformed(format!("index of {name}: bad cksum")))?;
            return Ok(IndexEntry {
                cksum,
                yanked: l.yanked,
            });
        }
    }
    Err(SourceError::UnknownVersion(name.into(), version.into()))
}

/// The versions an index file lists, in file order (publication order), with their yanked
/// flag. Lines that do not parse are skipped (a registry may add fields or kinds of line).
pub fn index_versions(body: &str) -> Vec<(String, bool)> {
    #[derive(serde::Deserialize)]
    struct Line {
        vers: String,
        #[serde(default)]
        yanked: bool,
    }
    body.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| (l.vers, l.yanked))
        .collect()
}

/// The newest release among an index file's `(version, yanked)` lines: the highest
/// non-yanked, non-prerelease `major.minor.patch` (build metadata ignored), as `cargo
/// install` picks it.
pub fn newest_release(versions: &[(String, bool)]) -> Option<String> {
    let key = |v: &str| -> Vec<u64> {
        v.split('+')
            .next()
            .unwrap_or(v)
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    versions
        .iter()
        .filter(|(v, yanked)| !yanked && !v.contains('-'))
        .map(|(v, _)| v)
        .max_by_key(|v| key(v))
        .cloned()
}

/// The answer to a conditional index request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexPoll {
    /// `304 Not Modified`: the ETag still matches.
    NotModified,
    /// The crate is not in the index.
    Unknown,
    /// The file, and its new ETag (if the registry sent one).
    Changed {
        /// The index file.
        body: String,
        /// Its `ETag`.
        etag: Option<String>,
    },
}

fn http_error(url: &str, reason: String) -> SourceError {
    SourceError::Http {
        url: url.to_string(),
        reason,
    }
}

/// crates.io access with a content-addressed cache of `.crate` files under `cache_dir`.
#[derive(Debug, Clone)]
pub struct Registry {
    index: String,
    dl: String,
    cache_dir: PathBuf,
}

impl Registry {
    /// crates.io, caching in `cache_dir`.
    pub fn crates_io(cache_dir: &Path) -> Self {
        Self::with_urls(CRATES_IO_INDEX, CRATES_IO_DL, cache_dir)
    }

    /// Another sparse registry (a mirror, or a local server in tests): `index` serves
    /// `/<index path>`, `dl` serves `/<name>/<name>-<version>.crate`.
    pub fn with_urls(index: &str, dl: &str, cache_dir: &Path) -> Self {
        Self {
            index: index.trim_end_matches('/').into(),
            dl: dl.trim_end_matches('/').into(),
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    /// A GET of `url` (with `If-None-Match: etag` if given), our user agent and a 60 s
    /// timeout.
    fn send(url: &str, etag: Option<&str>) -> Result<attohttpc::Response, SourceError> {
        let mut req = attohttpc::get(url)
            .header(
                "User-Agent",
                concat!("synchronicity/", env!("CARGO_PKG_VERSION")),
            )
            .timeout(std::time::Duration::from_secs(60));
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        req.send().map_err(|e| http_error(url, e.to_string()))
    }

    /// The body of `resp`, at most [`MAX_CRATE_SIZE`] bytes.
    fn read_bounded(url: &str, resp: attohttpc::Response) -> Result<Vec<u8>, SourceError> {
        let mut body = Vec::new();
        resp.take(MAX_CRATE_SIZE + 1)
            .read_to_end(&mut body)
            .map_err(|e| http_error(url, e.to_string()))?;
        if body.len() as u64 > MAX_CRATE_SIZE {
            return Err(http_error(url, "response too large".into()));
        }
        Ok(body)
    }

    fn get(&self, url: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let resp = Self::send(url, None)?;
        if resp.status().as_u16() == 404 || resp.status().as_u16() == 403 {
            return Ok(None);
        }
        if !resp.is_success() {
            return Err(http_error(url, format!("HTTP {}", resp.status())));
        }
        Self::read_bounded(url, resp).map(Some)
    }

    /// Fetches `name`'s index file unless it still has `etag` (`If-None-Match`).
    pub fn poll_index(&self, name: &str, etag: Option<&str>) -> Result<IndexPoll, SourceError> {
        let url = format!("{}/{}", self.index, index_path(name));
        let resp = Self::send(&url, etag)?;
        match resp.status().as_u16() {
            304 => return Ok(IndexPoll::NotModified),
            404 | 403 | 410 => return Ok(IndexPoll::Unknown),
            _ if !resp.is_success() => {
                return Err(http_error(&url, format!("HTTP {}", resp.status())));
            }
            _ => {}
        }
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Self::read_bounded(&url, resp)?;
        Ok(IndexPoll::Changed {
            body: String::from_utf8_lossy(&body).into_owned(),
            etag,
        })
    }

    /// Looks `name@version` up in the sparse index.
    pub fn resolve(&self, name: &str, version: &str) -> Result<IndexEntry, SourceError> {
        let url = format!("{}/{}", self.index, index_path(name));
        let body = self
            .get(&url)?
            .ok_or_else(|| SourceError::UnknownCrate(name.into()))?;
        let entry = parse_index(name, version, &String::from_utf8_lossy(&body))?;
        if entry.yanked {
            return Err(SourceError::Yanked(name.into(), version.into()));
        }
        Ok(entry)
    }

    /// The cached `.crate` path for `sha256` (it may not exist yet).
    pub fn cached_path(&self, sha: &[u8; 32]) -> PathBuf {
        self.cache_dir.join(format!("{}.crate", hex::encode(sha)))
    }

    /// Downloads `name@version` unless cached, verifies it against `expected`, and returns
    /// the cached file. A cached file is re-verified (the cache is not trusted blindly).
    pub fn fetch(
        &self,
        name: &str,
        version: &str,
        expected: &[u8; 32],
    ) -> Result<PathBuf, SourceError> {
        let path = self.cached_path(expected);
        if let Ok(bytes) = fs::read(&path) {
            if &sha256(&bytes) == expected {
                return Ok(path);
            }
            let _ = fs::remove_file(&path);
        }
        let url = format!("{}/{name}/{name}-{version}.crate", self.dl);
        let bytes = self
            .get(&url)?
            .ok_or_else(|| SourceError::UnknownVersion(name.into(), version.into()))?;
        let actual = sha256(&bytes);
        if &actual != expected {
            return Err(SourceError::ChecksumMismatch {
                name: name.into(),
                version: version.into(),
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        fs::create_dir_all(&self.cache_dir).map_err(io(&self.cache_dir))?;
        // Write then rename: a crash never leaves a partial file under the final name.
        let tmp = path.with_extension(format!("part.{}", std::process::id()));
        fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }
}

/// Unpacks a `.crate` (a gzipped tar whose entries all live under `name-version/`) into
/// `dest` (which must not exist), refusing entries that escape it, links, and devices.
/// Returns the lockfile shipped in it, if any.
pub fn unpack_crate(
    file: &Path,
    name: &str,
    version: &str,
    dest: &Path,
) -> Result<Option<String>, SourceError> {
    let prefix = format!("{name}-{version}");
    let f = fs::File::open(file).map_err(io(file))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(false);
    fs::create_dir_all(dest).map_err(io(dest))?;
    let bad = |m: String| SourceError::Malformed(format!("{}: {m}", file.display()));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let rel = path
            .strip_prefix(&prefix)
            .map_err(|_| bad(format!("entry {} outside {prefix}/", path.display())))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(format!("entry {} escapes the crate", path.display())));
        }
        let kind = entry.header().entry_type();
        let out = dest.join(rel);
        if kind.is_dir() {
            fs::create_dir_all(&out).map_err(io(&out))?;
        } else if kind.is_file() {
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            // Mode: executable bits kept, everything else normalised (644/755).
            let exec = entry
                .header()
                .mode()
                .map(|m| m & 0o111 != 0)
                .unwrap_or(false);
            entry.unpack(&out).map_err(|e| bad(e.to_string()))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                &out,
                fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
            )
            .map_err(io(&out))?;
        } else {
            return Err(bad(format!(
                "entry {} is not a file or directory",
                path.display()
            )));
        }
    }
    let lock = dest.join("Cargo.lock");
    Ok(if lock.is_file() {
        Some(fs::read_to_string(&lock).map_err(io(&lock))?)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("abc"), "3/a/abc");
        assert_eq!(index_path("Serde_JSON"), "se/rd/serde_json");
    }

    #[test]
    fn index_lines() {
        let body = concat!(
            r#"{"name":"itoa","vers":"1.0.0","deps":[],"cksum":"0101010101010101010101010101010101010101010101010101010101010101","features":{},"yanked":true}"#,
            "\n",
            r#"{"name":"itoa","vers":"1.0.1","deps":[],"cksum":"0202020202020202020202020202020202020202020202020202020202020202","features":{},"yanked":false}"#,
            "\n"
        );
        assert_eq!(
            parse_index("itoa", "1.0.1", body).unwrap(),
            IndexEntry {
                cksum: [2; 32],
                yanked: false
            }
        );
        assert!(parse_index("itoa", "1.0.0", body).unwrap().yanked);
        assert!(matches!(
            parse_index("itoa", "9.9.9", body),
            Err(SourceError::UnknownVersion(..))
        ));
        assert!(parse_index("itoa", "1.0.1", "{not json").is_err());
    }
}
