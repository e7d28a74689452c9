//! The pinned inputs of one build: a [`BuildRequest`], its canonical CBOR encoding and its
//! request id. Pure. Used by the builder (what to build), the protocol (what is ordered,
//! committed to and logged) and relying parties (what a proof is about).
//!
//! `request id = SHA-256(canonical CBOR of the request)`. Canonical means: fields in
//! declaration order (serde), features sorted and deduplicated, and decoding accepts only
//! bytes that re-encode to themselves, so one request has exactly one id.
//!
//! Every pin is part of the identity: crate, version, the `.crate`'s sha256, the lockfile's
//! sha256 (the text travels beside the request and is stored content-addressed), toolchain,
//! target, profile, features, targets and the attempt number. Two requests that differ in
//! any of them are two VARIANTS of `crate@version`, each with its own entry.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::sha256;

/// Format version carried inside every request. Format 3: builders strip the crate's
/// dev-dependencies from its manifest, and the lockfile is the one resolved without them.
pub const REQUEST_FORMAT: u32 = 3;
/// Largest encoded request (a few hundred bytes in practice; features dominate).
pub const MAX_REQUEST_SIZE: usize = 16 * 1024;
/// Most features a request may enable.
pub const MAX_FEATURES: usize = 64;
/// The crate name of a request for a recipe's dependencies (issue 28). crates.io names
/// start with a letter, so no crate on crates.io has it. Such a request's `version` is the
/// recipe id in lowercase hex and its `source_sha256` the recipe id: `_recipe@<id>` is the
/// recipe's `crate@version` in the log and its index, and the recipe (every setting it is
/// built with) travels beside the request. See [`BuildRequest::for_recipe`].
pub const RECIPE_CRATE: &str = "_recipe";

/// Everything that determines the bytes a build produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// [`REQUEST_FORMAT`].
    pub format: u32,
    /// Crate name on crates.io.
    #[serde(rename = "crate")]
    pub krate: String,
    /// Exact version.
    pub version: String,
    /// SHA-256 of the `.crate` file (the index's `cksum`).
    #[serde(with = "serde_bytes")]
    pub source_sha256: Vec<u8>,
    /// SHA-256 of the exact `Cargo.lock` text to build with.
    #[serde(with = "serde_bytes")]
    pub lockfile_sha256: Vec<u8>,
    /// True when the lockfile is the one shipped in the `.crate`; false when the submitter
    /// generated it once and it travels in the request.
    pub lockfile_shipped: bool,
    /// Rust toolchain, e.g. `1.95.0`.
    pub toolchain: String,
    /// Target triple.
    pub target: String,
    /// Cargo profile (`release`).
    pub profile: String,
    /// Enabled features, sorted, deduplicated.
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// Build the library target (if any).
    pub lib: bool,
    /// Build the binary targets (if any).
    pub bins: bool,
    /// 1 for the first attempt; a re-attempt of the same inputs counts up.
    pub attempt: u32,
}

/// Why request bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not a CBOR request.
    #[error("build request: {0}")]
    Codec(#[from] CodecError),
    /// Decodes, but is not in canonical form.
    #[error("build request is not in canonical form")]
    NotCanonical,
    /// An unknown format version.
    #[error("build request format {0} is not supported")]
    Format(u32),
    /// A field is out of its domain.
    #[error("build request: invalid {0}")]
    Invalid(&'static str),
}

/// `_recipe@<id>`: the `crate@version` under which the log and its index hold the entries
/// of the recipe with id `recipe_id` ([`RECIPE_CRATE`]).
pub fn recipe_spec(recipe_id: &[u8; 32]) -> String {
    format!("{RECIPE_CRATE}@{}", hex::encode(recipe_id))
}

/// A crate name as crates.io allows it: 1 to 64 ASCII letters, digits, `-` and `_`.
pub fn valid_crate_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A version as a request carries it: 1 to 64 ASCII letters, digits, `.`, `-` and `+`.
pub fn valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
}

impl BuildRequest {
    /// Sorts and deduplicates features (call after building a request by hand).
    pub fn canonicalize(mut self) -> Self {
        self.features.sort();
        self.features.dedup();
        self
    }

    /// The request for the dependencies of the recipe with id `recipe_id`, whose lockfile
    /// has sha256 `lockfile_sha256`, on attempt `attempt`. Every setting the build depends
    /// on (toolchain, target, features, RUSTFLAGS, the manifests) is in the recipe, which
    /// the id covers; the request repeats the toolchain and target (the committee's rules
    /// compare them) and leaves its own feature fields empty, so the request is always the
    /// default variant of `_recipe@<id>` ([`RECIPE_CRATE`]).
    pub fn for_recipe(
        recipe_id: [u8; 32],
        lockfile_sha256: [u8; 32],
        toolchain: &str,
        target: &str,
        attempt: u32,
    ) -> Self {
        Self {
            format: REQUEST_FORMAT,
            krate: RECIPE_CRATE.into(),
            version: hex::encode(recipe_id),
            source_sha256: recipe_id.to_vec(),
            lockfile_sha256: lockfile_sha256.to_vec(),
            lockfile_shipped: false,
            toolchain: toolchain.into(),
            target: target.into(),
            profile: "release".into(),
            features: Vec::new(),
            no_default_features: false,
            lib: true,
            bins: true,
            attempt,
        }
    }

    /// True for a request for a recipe's dependencies ([`RECIPE_CRATE`]).
    pub fn is_recipe(&self) -> bool {
        self.krate == RECIPE_CRATE
    }

    /// The recipe id of a recipe request ([`BuildRequest::for_recipe`]).
    pub fn recipe_id(&self) -> Option<[u8; 32]> {
        if !self.is_recipe() {
            return None;
        }
        self.source_sha256.as_slice().try_into().ok()
    }

    /// Checks every field's domain.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.format != REQUEST_FORMAT {
            return Err(RequestError::Format(self.format));
        }
        if self.is_recipe() {
            let id_ok =
                self.source_sha256.len() == 32 && self.version == hex::encode(&self.source_sha256);
            if !id_ok
                || self.lockfile_shipped
                || self.profile != "release"
                || !self.features.is_empty()
                || self.no_default_features
                || !(self.lib && self.bins)
            {
                return Err(RequestError::Invalid(
                    "recipe request (its version must be its recipe id, and its settings those of for_recipe)",
                ));
            }
        }
        if !valid_crate_name(&self.krate) {
            return Err(RequestError::Invalid("crate name"));
        }
        if !valid_version(&self.version) {
            return Err(RequestError::Invalid("version"));
        }
        if self.source_sha256.len() != 32 {
            return Err(RequestError::Invalid("source sha256"));
        }
        if self.lockfile_sha256.len() != 32 {
            return Err(RequestError::Invalid("lockfile sha256"));
        }
        if self.attempt == 0 {
            return Err(RequestError::Invalid("attempt (counts from 1)"));
        }
        let word =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        if !word(&self.toolchain) || !word(&self.target) || !word(&self.profile) {
            return Err(RequestError::Invalid("toolchain, target or profile"));
        }
        let feature_ok = |f: &String| {
            !f.is_empty()
                && f.len() <= 128
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_/+.".contains(&b))
        };
        if self.features.len() > MAX_FEATURES
            || !self.features.iter().all(feature_ok)
            || !self.features.windows(2).all(|w| w[0] < w[1])
        {
            return Err(RequestError::Invalid("features"));
        }
        if !self.lib && !self.bins {
            return Err(RequestError::Invalid("targets (neither lib nor bins)"));
        }
        Ok(())
    }

    /// The canonical CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// Decodes and validates; rejects non-canonical encodings.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, RequestError> {
        let r: Self = codec::from_slice(bytes, MAX_REQUEST_SIZE)?;
        r.validate()?;
        if r.to_cbor() != bytes {
            return Err(RequestError::NotCanonical);
        }
        Ok(r)
    }

    /// `SHA-256(canonical CBOR)`.
    pub fn id(&self) -> [u8; 32] {
        sha256(&self.to_cbor())
    }

    /// `crate@version`.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.krate, self.version)
    }

    /// The build SETTINGS a user means by plain `crate@version`: default features only, the
    /// lib and the bins, the release profile (any attempt, any target). Which lockfile and
    /// target are the default is not a property of one request: see
    /// [`BuildRequest::is_default_variant_for`].
    pub fn is_default_variant(&self) -> bool {
        self.features.is_empty()
            && !self.no_default_features
            && self.lib
            && self.bins
            && self.profile == "release"
    }

    /// The default variant's settings on a committee that builds for `target`:
    /// [`BuildRequest::is_default_variant`] and that target. Of such requests, the default
    /// variant is the one with the crate's SHIPPED lockfile (`lockfile_shipped`) where the
    /// crate ships one; for a crate that ships none, the first reproduced one with a
    /// generated lockfile. One entry cannot show that a crate ships no lockfile: a client
    /// given an entry with `lockfile_shipped == false` must say so (the member's lookup
    /// prefers shipped ones).
    pub fn is_default_variant_for(&self, target: &str) -> bool {
        self.is_default_variant() && self.target == target
    }

    /// A short description of what sets this variant apart, e.g.
    /// `features=serde,std lockfile=generated attempt=2` (empty for the default variant with
    /// a shipped lockfile on its first attempt).
    pub fn variant_label(&self) -> String {
        let mut parts = Vec::new();
        if !self.features.is_empty() {
            parts.push(format!("features={}", self.features.join(",")));
        }
        if self.no_default_features {
            parts.push("no-default-features".into());
        }
        match (self.lib, self.bins) {
            (true, true) => {}
            (true, false) => parts.push("lib only".into()),
            _ => parts.push("bins only".into()),
        }
        if self.profile != "release" {
            parts.push(format!("profile={}", self.profile));
        }
        if !self.lockfile_shipped {
            parts.push("lockfile=generated".into());
        }
        if self.attempt != 1 {
            parts.push(format!("attempt={}", self.attempt));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> BuildRequest {
        BuildRequest {
            format: REQUEST_FORMAT,
            krate: "itoa".into(),
            version: "1.0.15".into(),
            source_sha256: vec![7; 32],
            lockfile_sha256: crate::sha256(b"version = 4\n").to_vec(),
            lockfile_shipped: false,
            toolchain: "1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "release".into(),
            features: vec!["std".into(), "alloc".into(), "std".into()],
            no_default_features: false,
            lib: true,
            bins: true,
            attempt: 1,
        }
        .canonicalize()
    }

    #[test]
    fn id_is_stable_and_changes_with_every_input() {
        let r = sample();
        let id = r.id();
        let back = BuildRequest::from_cbor(&r.to_cbor()).unwrap();
        assert_eq!(back.id(), id);
        let mut variants = Vec::new();
        let mut v = r.clone();
        v.version = "1.0.14".into();
        variants.push(v);
        let mut v = r.clone();
        v.lockfile_sha256[0] ^= 1;
        variants.push(v);
        let mut v = r.clone();
        v.attempt = 2;
        variants.push(v);
        let mut v = r.clone();
        v.toolchain = "1.94.0".into();
        variants.push(v);
        let mut v = r.clone();
        v.features.pop();
        variants.push(v);
        let mut v = r.clone();
        v.bins = false;
        variants.push(v);
        for v in variants {
            assert_ne!(v.id(), id);
        }
    }

    #[test]
    fn a_recipe_request_is_named_by_its_recipe_id_and_nothing_else() {
        let id = [9u8; 32];
        let r = BuildRequest::for_recipe(id, [1; 32], "1.95.0", "x86_64-unknown-linux-gnu", 1);
        assert!(r.is_recipe());
        assert_eq!(r.recipe_id(), Some(id));
        assert_eq!(r.spec(), recipe_spec(&id));
        assert!(r.is_default_variant_for("x86_64-unknown-linux-gnu"));
        assert_eq!(BuildRequest::from_cbor(&r.to_cbor()), Ok(r.clone()));
        assert_eq!(sample().recipe_id(), None);
        let mut other_version = r.clone();
        other_version.version = hex::encode([8u8; 32]);
        let mut features = r.clone();
        features.features = vec!["std".into()];
        let mut shipped = r.clone();
        shipped.lockfile_shipped = true;
        for bad in [other_version, features, shipped] {
            assert!(matches!(
                BuildRequest::from_cbor(&bad.to_cbor()),
                Err(RequestError::Invalid(_))
            ));
        }
    }

    #[test]
    fn rejects_non_canonical_invalid_and_oversized() {
        let mut unsorted = sample();
        unsorted.features = vec!["std".into(), "alloc".into()];
        assert_eq!(
            BuildRequest::from_cbor(&unsorted.to_cbor()),
            Err(RequestError::Invalid("features"))
        );
        let mut bad = sample();
        bad.krate = "../etc".into();
        assert!(BuildRequest::from_cbor(&bad.to_cbor()).is_err());
        let mut bad = sample();
        bad.source_sha256 = vec![1; 31];
        assert!(BuildRequest::from_cbor(&bad.to_cbor()).is_err());
        let mut bad = sample();
        bad.format = 1;
        assert_eq!(
            BuildRequest::from_cbor(&bad.to_cbor()),
            Err(RequestError::Format(1))
        );
        let mut bad = sample();
        bad.attempt = 0;
        assert!(BuildRequest::from_cbor(&bad.to_cbor()).is_err());
        // The same request with its map keys in another order: same meaning, other bytes.
        let value: ciborium::value::Value =
            ciborium::de::from_reader(&sample().to_cbor()[..]).unwrap();
        let mut map = value.into_map().unwrap();
        map.reverse();
        let mut reordered = Vec::new();
        ciborium::ser::into_writer(&ciborium::value::Value::Map(map), &mut reordered).unwrap();
        assert_eq!(
            BuildRequest::from_cbor(&reordered),
            Err(RequestError::NotCanonical)
        );
        let mut trailing = sample().to_cbor();
        trailing.push(0);
        assert!(BuildRequest::from_cbor(&trailing).is_err());
        let mut big = sample();
        big.krate = "x".repeat(MAX_REQUEST_SIZE);
        assert!(matches!(
            BuildRequest::from_cbor(&big.to_cbor()),
            Err(RequestError::Codec(_))
        ));
    }
}
