//! A recipe: what the dependencies of a Cargo workspace are built from (issue 28), in the
//! spirit of cargo-chef's — the workspace's manifests (every member's `Cargo.toml`, its
//! sources replaced by stubs), its `Cargo.lock`, and the settings the dependencies are
//! compiled with (toolchain, target, profile, features, RUSTFLAGS). Two workspaces whose
//! dependencies compile to the same bytes have the same recipe, whatever their own code,
//! their directory or their manifests' formatting (the manifests are normalized).
//!
//! - **Canonical**: CBOR of [`Recipe`] (fields in declaration order, manifests and stubs
//!   sorted by path, no maps): the recipe id is the SHA-256 of [`RECIPE_ID_DOMAIN`] and
//!   those bytes (so no recipe id is ever a request id).
//! - **Bounded**: at most [`MAX_RECIPE_SIZE`] bytes encoded (checked before decoding),
//!   [`MAX_MANIFESTS`] manifests, [`MAX_STUBS`] stubs in all.
//! - **Paths** ([`Recipe::validate`]) are relative to the workspace root, `/`-separated,
//!   components of `A-Z a-z 0-9 . _ + -` (no leading `.`, at most 255 bytes), never below a
//!   top-level `target`; the manifests, the stubs (`.rs` files) and `Cargo.lock` are all
//!   distinct, ignoring case, and none is a directory of another: a member builder writes
//!   each as a new file below its own fresh directory, on any file system.
//! - **Contents** ([`Recipe::check_contents`]): a recipe names crates.io packages and its
//!   own members only — no git, alternative-registry or outside-path dependency, no
//!   `[patch]` or `[replace]`, a root `[workspace]` whose members are its own manifests,
//!   a lockfile of crates.io and member packages — and RUSTFLAGS from an allowlist. A
//!   builder runs this before its first cargo command on a recipe from a submitter.

mod contents;

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
/// What a recipe id hashes before the recipe's bytes.
pub const RECIPE_ID_DOMAIN: &[u8] = b"synchronicity/recipe/v1\0";
/// The `source` of a crates.io package in a lockfile.
pub const CRATES_IO_SOURCE: &str = "registry+https://github.com/rust-lang/crates.io-index";
/// The `-C` options a recipe's RUSTFLAGS may set (`target-cpu` not `native`: the builders'
/// CPU is not the user's).
pub const ALLOWED_CODEGEN: [&str; 14] = [
    "opt-level",
    "debuginfo",
    "codegen-units",
    "target-cpu",
    "target-feature",
    "panic",
    "lto",
    "strip",
    "overflow-checks",
    "debug-assertions",
    "force-frame-pointers",
    "relocation-model",
    "embed-bitcode",
    "symbol-mangling-version",
];

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
    /// What the manifests or the lockfile say is not buildable as a recipe.
    #[error("{0}")]
    Refused(String),
}

/// A path as a recipe carries it (see the module doc).
pub fn valid_recipe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PATH
        && p.split('/').next() != Some("target")
        && p.split('/').all(|c| {
            !c.is_empty()
                && c.len() <= 255
                && !c.starts_with('.')
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        })
}

/// A toolchain as a recipe names it: `X.Y.Z` (a stable release; a channel name would name
/// other compilers over time).
fn valid_toolchain(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the RUSTFLAGS `flags` are all allowed: `-C KEY=VALUE` (or `-CKEY=VALUE`) for
/// the keys of [`ALLOWED_CODEGEN`], `--cfg NAME`, and lint levels (`-D`, `-W`, `-A`,
/// `-F` with a lint name). The first refused one, if any.
pub fn refused_rustflag(flags: &[String]) -> Option<&str> {
    let lint = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b))
    };
    let codegen = |v: &str| {
        let (k, val) = v.split_once('=').unwrap_or((v, ""));
        ALLOWED_CODEGEN.contains(&k)
            && !(k == "target-cpu" && val == "native")
            && val
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+-,.".contains(&b))
    };
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        let ok = match f.as_str() {
            "-C" | "--codegen" => it.next().is_some_and(|v| codegen(v)),
            "--cfg" => it.next().is_some_and(|v| lint(v)),
            "-D" | "-W" | "-A" | "-F" => it.next().is_some_and(|v| lint(v)),
            f => {
                if let Some(v) = f.strip_prefix("-C") {
                    codegen(v)
                } else if let Some(v) = f.strip_prefix("--cfg=") {
                    lint(v)
                } else if let Some(v) = ["-D", "-W", "-A", "-F"]
                    .iter()
                    .find_map(|p| f.strip_prefix(p))
                {
                    lint(v)
                } else {
                    false
                }
            }
        };
        if !ok {
            return Some(f);
        }
    }
    None
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
        if !valid_toolchain(&self.toolchain) {
            return invalid(format!("toolchain {:?} (a release: X.Y.Z)", self.toolchain));
        }
        if !simple(&self.target, 128) || self.target.contains('.') {
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
        if let Some(f) = refused_rustflag(&self.rustflags) {
            return invalid(format!(
                "RUSTFLAGS argument {f:?} (a recipe takes -C options that change no path or link step, --cfg and lint levels)"
            ));
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
            if let Some(s) = m
                .stubs
                .iter()
                .find(|s| !valid_recipe_path(&s.path) || !s.path.ends_with(".rs"))
            {
                return invalid(format!("stub path {:?}", s.path));
            }
        }
        // Every file distinct (ignoring case), and none a directory of another.
        let mut files: Vec<String> = self
            .manifests
            .iter()
            .map(|m| m.path.to_ascii_lowercase())
            .chain(self.stubs().map(|s| s.path.to_ascii_lowercase()))
            .chain(["cargo.lock".to_string()])
            .collect();
        files.sort();
        for w in files.windows(2) {
            if w[0] == w[1] {
                return invalid(format!("path {:?} given twice", w[1]));
            }
        }
        // Every directory a path names must not be a file: each ancestor looked up among
        // the files (sorted neighbours miss `a.rs`, `a.rs.rs`, `a.rs/b.rs`).
        let set: std::collections::HashSet<&str> = files.iter().map(String::as_str).collect();
        for f in &files {
            for (i, _) in f.match_indices('/') {
                if set.contains(&f[..i]) {
                    return invalid(format!("path {f:?} is below the file {:?}", &f[..i]));
                }
            }
        }
        Ok(())
    }

    /// Checks what the manifests and the lockfile say (see the module doc); the first
    /// problem, in one line naming it.
    pub fn check_contents(&self) -> Result<(), RecipeError> {
        contents::check(self)
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

    /// The recipe id: SHA-256 of [`RECIPE_ID_DOMAIN`] and [`Recipe::to_cbor`].
    pub fn id(&self) -> [u8; 32] {
        let mut bytes = RECIPE_ID_DOMAIN.to_vec();
        bytes.extend(self.to_cbor());
        sha256(&bytes)
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

    #[test]
    fn colliding_paths_are_refused_whatever_the_order() {
        let mut r = recipe();
        r.manifests[1].stubs.push(Stub {
            path: "App/src/main.rs".into(),
            kind: StubKind::Main,
        });
        r.manifests[1].stubs.sort_by(|a, b| a.path.cmp(&b.path));
        assert!(r.validate().is_err(), "a path twice, ignoring case");
        let mut r = recipe();
        r.manifests[1].stubs[0].path = "app/Cargo.toml/x.rs".into();
        assert!(r.validate().is_err(), "a file as a directory");
        for bad in [
            "Cargo.lock",
            "app/src/main.txt",
            "target/x.rs",
            ".cargo/x.rs",
            "app/src/ma in.rs",
        ] {
            let mut r = recipe();
            r.manifests[1].stubs[0].path = bad.into();
            assert!(r.validate().is_err(), "{bad}");
        }
        let mut r = recipe();
        r.toolchain = "stable".into();
        assert!(r.validate().is_err(), "a channel is no toolchain");
        let mut r = recipe();
        r.target = "evil.json".into();
        assert!(r.validate().is_err(), "a custom target file");
    }

    #[test]
    fn rustflags_come_from_an_allowlist() {
        let ok = |f: &[&str]| {
            refused_rustflag(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>()).is_none()
        };
        assert!(ok(&[
            "-Copt-level=3",
            "-C",
            "debuginfo=0",
            "-Dwarnings",
            "--cfg",
            "tokio_unstable"
        ]));
        assert!(ok(&["-C", "target-cpu=x86-64-v3", "-W", "clippy::all"]));
        for bad in [
            &["-C", "target-cpu=native"][..],
            &["-Clinker=/tmp/x"],
            &["-C", "link-arg=-Wl,--wrap"],
            &["@/etc/args"],
            &["-L", "/usr/lib"],
            &["--extern", "x=/tmp/x.rlib"],
            &["-C"],
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn contents_name_crates_io_and_members_only() {
        recipe().check_contents().unwrap();
        let refused = |toml: &str, lock: &str, needle: &str| {
            let mut r = recipe();
            r.manifests[1].toml = format!("[package]\nname = \"app\"\n{toml}");
            r.lockfile = lock.into();
            let e = r.check_contents().unwrap_err().to_string();
            assert!(e.contains(needle), "{needle:?} in {e}");
        };
        let lock = "version = 4\n";
        refused(
            "[dependencies]\nx = { git = \"file:///srv/repo\" }\n",
            lock,
            "x has `git`",
        );
        refused(
            "[build_dependencies]\nx = { version = \"1\", registry-index = \"sparse+http://169.254.169.254/\" }\n",
            lock,
            "x has `registry-index`",
        );
        refused(
            "[target.'cfg(unix)'.dependencies]\nx = { path = \"../../etc\" }\n",
            lock,
            "not a member",
        );
        refused(
            "[dependencies]\nx = { path = \"/home\" }\n",
            lock,
            "not a member",
        );
        refused("[patch.crates-io]\nx = { path = \"x\" }\n", lock, "[patch]");
        refused(
            "[lib]\npath = \"../../etc/passwd\"\n",
            lock,
            "not one of the recipe's stub files",
        );
        refused(
            "",
            "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"git+https://e.invalid/x#abc\"\n",
            "x comes from git+",
        );
        refused(
            "",
            "[[package]]\nname = \"stranger\"\nversion = \"1.0.0\"\n",
            "stranger is a path package that is not a member",
        );
        // A lone package needs no [workspace]; a root with members does.
        let mut lone = recipe();
        lone.manifests.truncate(1);
        lone.manifests[0].toml = "[package]\nname = \"root\"\n".into();
        assert_eq!(lone.check_contents(), Ok(()));
        let mut r = recipe();
        r.manifests[0].toml = "[package]\nname = \"root\"\n".into();
        assert!(
            r.check_contents()
                .unwrap_err()
                .to_string()
                .contains("no [workspace]")
        );
        let mut r = recipe();
        r.manifests[0].toml = "[workspace]\nmembers = [\"/home/*\"]\n".into();
        assert!(r.check_contents().is_err(), "members outside the root");
        // A member path dependency and a crates.io lockfile entry are fine.
        let mut r = recipe();
        r.manifests[1].toml = "[package]\nname = \"app\"\n[dependencies]\napp2 = { path = \"../app\" }\nitoa = \"1\"\n".into();
        r.lockfile = format!(
            "[[package]]\nname = \"itoa\"\nversion = \"1.0.15\"\nsource = \"{CRATES_IO_SOURCE}\"\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n"
        );
        r.check_contents().unwrap();
    }

    #[test]
    fn a_recipe_id_is_never_a_request_id() {
        let r = recipe();
        assert_ne!(r.id(), sha256(&r.to_cbor()));
    }
}
