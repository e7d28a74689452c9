//! A recipe: what the dependencies of a Cargo workspace are built from (issue 28), in the
//! spirit of cargo-chef's — the workspace's manifests (every member's `Cargo.toml`, its
//! sources replaced by stubs), its `Cargo.lock`, and the settings the dependencies are
//! compiled with (toolchain, target, profile, features, RUSTFLAGS). Two workspaces whose
//! dependencies compile to the same bytes have the same recipe, whatever their own code,
//! their directory or their manifests' formatting (the manifests are normalized).
//!
//! - **Canonical**: CBOR of [`Recipe`] (fields in declaration order, manifests and stubs
//!   sorted by path, no maps): the recipe id is the SHA-256 of those bytes, as a request's.
//! - **Bounded**: at most [`MAX_RECIPE_SIZE`] bytes encoded, [`MAX_MANIFESTS`] manifests,
//!   [`MAX_STUBS`] stubs in all; checked before anything is decoded.
//! - **Paths** are relative to the workspace root, `/`-separated, without `.`, `..` or
//!   empty components: a member builder writes each below its own fixed directory.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::crypto::sha256;

/// The recipe format this crate reads and writes.
pub const RECIPE_FORMAT: u32 = 1;
/// Largest encoded recipe, in bytes (a large workspace's lockfile is a few hundred KiB).
pub const MAX_RECIPE_SIZE: usize = 1 << 20;
/// Most manifests in a recipe (the root's and one per member).
pub const MAX_MANIFESTS: usize = 256;
/// Most stub files in a recipe, all manifests together.
pub const MAX_STUBS: usize = 4096;
/// Longest path in a recipe, in bytes.
pub const MAX_PATH: usize = 256;
/// Most RUSTFLAGS and most features in a recipe (each).
pub const MAX_FLAGS: usize = 64;

/// The dependencies of a workspace, as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    /// [`RECIPE_FORMAT`].
    pub format: u32,
    /// Rust toolchain, e.g. `1.95.0`.
    pub toolchain: String,
    /// Target triple.
    pub target: String,
    /// Cargo profile (`release`).
    pub profile: String,
    /// The RUSTFLAGS the dependencies are compiled with, one argument each (as
    /// `CARGO_ENCODED_RUSTFLAGS` splits them).
    pub rustflags: Vec<String>,
    /// `--features` of the workspace build, sorted, deduplicated.
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--all-features`.
    pub all_features: bool,
    /// The exact `Cargo.lock` text.
    pub lockfile: String,
    /// The root manifest and every member's, sorted by path.
    pub manifests: Vec<RecipeManifest>,
}

/// One `Cargo.toml` of the workspace, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeManifest {
    /// Its path, e.g. `Cargo.toml` or `crates/cli/Cargo.toml`.
    pub path: String,
    /// Its TOML, parsed and written again (keys sorted, no comments).
    pub toml: String,
    /// The stub source files its targets need, sorted by path.
    pub stubs: Vec<Stub>,
}

/// A source file replaced by a stub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stub {
    /// Its path.
    pub path: String,
    /// What it stubs.
    pub kind: StubKind,
}

/// What a stub file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StubKind {
    /// A library root: empty.
    Lib,
    /// A binary, example, test, bench or build script: `fn main() {}`.
    Main,
}

impl StubKind {
    /// The stub file's text.
    pub fn text(self) -> &'static str {
        match self {
            Self::Lib => "",
            Self::Main => "fn main() {}\n",
        }
    }
}

/// Why a recipe was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// Not a CBOR recipe, or too large.
    #[error("recipe: {0}")]
    Codec(#[from] CodecError),
    /// A format this crate does not read.
    #[error("recipe format {0} (this build reads format {RECIPE_FORMAT})")]
    Format(u32),
    /// Over one of the bounds.
    #[error("recipe: {0}")]
    TooLarge(String),
    /// A field is malformed.
    #[error("recipe: {0}")]
    Invalid(String),
}

/// A path as a recipe carries it (see the module doc).
pub fn valid_recipe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PATH
        && !p.starts_with('/')
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']))
}

fn simple(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

impl Recipe {
    /// Checks the bounds, the paths and the canonical order (see the module doc).
    pub fn validate(&self) -> Result<(), RecipeError> {
        if self.format != RECIPE_FORMAT {
            return Err(RecipeError::Format(self.format));
        }
        let invalid = |what: String| Err(RecipeError::Invalid(what));
        if !simple(&self.toolchain, 64) {
            return invalid(format!("toolchain {:?}", self.toolchain));
        }
        if !simple(&self.target, 128) {
            return invalid(format!("target {:?}", self.target));
        }
        if self.profile != "release" {
            return invalid(format!(
                "profile {:?} (only release is cached)",
                self.profile
            ));
        }
        if self.rustflags.len() > MAX_FLAGS || self.features.len() > MAX_FLAGS {
            return Err(RecipeError::TooLarge(format!(
                "more than {MAX_FLAGS} RUSTFLAGS or features"
            )));
        }
        if let Some(f) = self
            .rustflags
            .iter()
            .find(|f| f.is_empty() || f.len() > 1024)
        {
            return invalid(format!("RUSTFLAGS argument {f:?}"));
        }
        if !self.features.windows(2).all(|w| w[0] < w[1]) {
            return invalid("features not sorted and unique".into());
        }
        if let Some(f) = self.features.iter().find(|f| {
            !(!f.is_empty()
                && f.len() <= 128
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-+./".contains(&b)))
        }) {
            return invalid(format!("feature {f:?}"));
        }
        if self.manifests.is_empty() || self.manifests.len() > MAX_MANIFESTS {
            return Err(RecipeError::TooLarge(format!(
                "{} manifests (1 to {MAX_MANIFESTS})",
                self.manifests.len()
            )));
        }
        if !self.manifests.windows(2).all(|w| w[0].path < w[1].path) {
            return invalid("manifests not sorted by path and unique".into());
        }
        if !self.manifests.iter().any(|m| m.path == "Cargo.toml") {
            return invalid("no root Cargo.toml".into());
        }
        let stubs: usize = self.manifests.iter().map(|m| m.stubs.len()).sum();
        if stubs > MAX_STUBS {
            return Err(RecipeError::TooLarge(format!(
                "{stubs} stubs, more than {MAX_STUBS}"
            )));
        }
        for m in &self.manifests {
            if !valid_recipe_path(&m.path)
                || !(m.path == "Cargo.toml" || m.path.ends_with("/Cargo.toml"))
            {
                return invalid(format!("manifest path {:?}", m.path));
            }
            if !m.stubs.windows(2).all(|w| w[0].path < w[1].path) {
                return invalid(format!("{}: stubs not sorted by path and unique", m.path));
            }
            if let Some(s) = m.stubs.iter().find(|s| !valid_recipe_path(&s.path)) {
                return invalid(format!("stub path {:?}", s.path));
            }
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// Decodes and validates a recipe (at most [`MAX_RECIPE_SIZE`] bytes), canonical only.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, RecipeError> {
        let r: Self = codec::from_slice(bytes, MAX_RECIPE_SIZE)?;
        r.validate()?;
        if r.to_cbor() != bytes {
            return Err(RecipeError::Invalid("not the canonical encoding".into()));
        }
        Ok(r)
    }

    /// The recipe id: SHA-256 of [`Recipe::to_cbor`].
    pub fn id(&self) -> [u8; 32] {
        sha256(&self.to_cbor())
    }

    /// Every stub path with its kind, all manifests together.
    pub fn stubs(&self) -> impl Iterator<Item = &Stub> {
        self.manifests.iter().flat_map(|m| m.stubs.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            format: RECIPE_FORMAT,
            toolchain: "1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "release".into(),
            rustflags: vec!["-Cdebuginfo=0".into()],
            features: vec![],
            no_default_features: false,
            all_features: false,
            lockfile: "version = 4\n".into(),
            manifests: vec![
                RecipeManifest {
                    path: "Cargo.toml".into(),
                    toml: "[workspace]\nmembers = [\"app\"]\n".into(),
                    stubs: vec![],
                },
                RecipeManifest {
                    path: "app/Cargo.toml".into(),
                    toml: "[package]\nname = \"app\"\n".into(),
                    stubs: vec![Stub {
                        path: "app/src/main.rs".into(),
                        kind: StubKind::Main,
                    }],
                },
            ],
        }
    }

    #[test]
    fn a_recipe_round_trips_and_its_id_covers_every_field() {
        let r = recipe();
        r.validate().unwrap();
        let bytes = r.to_cbor();
        assert_eq!(Recipe::from_cbor(&bytes).unwrap(), r);
        let mut other = r.clone();
        other.rustflags.clear();
        assert_ne!(other.id(), r.id());
        let mut other = r.clone();
        other.lockfile.push('\n');
        assert_ne!(other.id(), r.id());
    }

    #[test]
    fn paths_that_leave_the_workspace_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x/Cargo.toml",
            "a/../../Cargo.toml",
            "a//Cargo.toml",
            "./Cargo.toml",
            "",
        ] {
            assert!(!valid_recipe_path(bad), "{bad}");
            let mut r = recipe();
            r.manifests[1].stubs[0].path = bad.into();
            assert!(
                matches!(r.validate(), Err(RecipeError::Invalid(_))),
                "{bad}"
            );
        }
        let mut r = recipe();
        r.manifests[1].path = "app/main.rs".into();
        assert!(r.validate().is_err(), "a manifest is a Cargo.toml");
    }

    #[test]
    fn oversized_unsorted_and_non_canonical_recipes_are_refused() {
        let mut r = recipe();
        r.lockfile = "x".repeat(MAX_RECIPE_SIZE);
        assert!(matches!(
            Recipe::from_cbor(&r.to_cbor()),
            Err(RecipeError::Codec(CodecError::TooLarge { .. }))
        ));
        let mut r = recipe();
        r.manifests.swap(0, 1);
        assert!(r.validate().is_err());
        let mut r = recipe();
        r.features = vec!["b".into(), "a".into()];
        assert!(r.validate().is_err());
        let mut r = recipe();
        r.profile = "dev".into();
        assert!(r.validate().is_err());
        let mut bytes = recipe().to_cbor();
        bytes.push(0);
        assert!(Recipe::from_cbor(&bytes).is_err());
    }
}
