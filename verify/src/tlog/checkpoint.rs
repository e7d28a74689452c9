//! C2SP tlog-checkpoint bodies: `<origin>\n<size>\n<base64 root>\n` then optional
//! extension lines.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::FormatError;
use super::merkle::Hash;

/// A checkpoint body (not yet trusted: see [`super::CosignedCheckpoint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// RFC 6962 root of the first `size` records.
    pub root: Hash,
    /// Extension lines (non-empty, opaque). We write none.
    pub extensions: Vec<String>,
}

/// Parses an ASCII decimal with no sign and no leading zeroes (unless it is `0`).
pub(crate) fn parse_decimal(s: &str, what: &'static str) -> Result<u64, FormatError> {
    let bad = || FormatError::BadNumber {
        what,
        value: s.chars().take(40).collect(),
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// Decodes a standard-base64 SHA-256 hash (exactly 32 bytes, canonical padding).
pub(crate) fn parse_hash(s: &str, what: &'static str) -> Result<Hash, FormatError> {
    let bytes = B64.decode(s).map_err(|_| FormatError::BadHash { what })?;
    let hash: Hash = bytes
        .try_into()
        .map_err(|_| FormatError::BadHash { what })?;
    // Reject non-canonical encodings so a checkpoint has one text form.
    if B64.encode(hash) != s {
        return Err(FormatError::BadHash { what });
    }
    Ok(hash)
}

impl Checkpoint {
    /// The checkpoint for a tree with no extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Self {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The body text, ending in a newline: the bytes that are signed.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a body: at least three lines, each ending in `\n`, none empty.
    pub fn parse(body: &str) -> Result<Self, FormatError> {
        let Some(text) = body.strip_suffix('\n') else {
            return Err(FormatError::Checkpoint("does not end in a newline"));
        };
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() < 3 {
            return Err(FormatError::Checkpoint("fewer than three lines"));
        }
        if lines.iter().any(|l| l.is_empty()) {
            return Err(FormatError::Checkpoint("empty line"));
        }
        if lines[0]
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return Err(FormatError::Checkpoint(
                "origin contains whitespace, control characters or '+'",
            ));
        }
        Ok(Self {
            origin: lines[0].to_string(),
            size: parse_decimal(lines[1], "tree size")?,
            root: parse_hash(lines[2], "root hash")?,
            extensions: lines[3..].iter().map(|s| s.to_string()).collect(),
        })
    }
}
