//! Build requests as the node handles them. The request itself (every pin, the lockfile by
//! sha256) is `synchronicity-verify`'s [`BuildRequest`]; a [`PinnedRequest`] carries the
//! lockfile TEXT beside it, which builders need and every member stores content-addressed
//! once the request is decided.

use serde::{Deserialize, Serialize};
pub use synchronicity_verify::request::{
    BuildRequest, MAX_FEATURES, MAX_REQUEST_SIZE, RECIPE_CRATE, REQUEST_FORMAT, RequestError,
};

use crate::crypto::sha256;
use synchronicity_verify::recipe::Recipe;

/// Largest lockfile accepted (a 1,000-package `Cargo.lock` is about 200 KiB).
pub const MAX_LOCKFILE_SIZE: usize = 1024 * 1024;
/// Largest recipe and lockfile together in one recipe request (the lockfile travels twice:
/// beside the request, as every request's, and inside the recipe), so that the request
/// message stays under the protocol's 2 MiB.
pub const MAX_RECIPE_REQUEST: usize = 1536 * 1024;

/// A request with the text of the lockfile it pins, and for a recipe request the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedRequest {
    /// The request (identity: its id).
    pub request: BuildRequest,
    /// The `Cargo.lock` text; its sha256 is `request.lockfile_sha256`.
    pub lockfile: String,
    /// For a recipe request ([`BuildRequest::is_recipe`]), the recipe's canonical CBOR
    /// (its id is the request's `source_sha256`); `None` for a crate. Absent from the
    /// encoding when `None`, so a crate's request encodes as before recipes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<serde_bytes::ByteBuf>,
}

impl PinnedRequest {
    /// Pins `lockfile` into `request` (sets its `lockfile_sha256`).
    pub fn new(mut request: BuildRequest, lockfile: String) -> Self {
        request.lockfile_sha256 = sha256(lockfile.as_bytes()).to_vec();
        Self {
            request,
            lockfile,
            recipe: None,
        }
    }

    /// The request for `recipe`'s dependencies on attempt `attempt`
    /// ([`BuildRequest::for_recipe`]), with its lockfile and the recipe beside it.
    pub fn for_recipe(recipe: &Recipe, attempt: u32) -> Self {
        let request = BuildRequest::for_recipe(
            recipe.id(),
            sha256(recipe.lockfile.as_bytes()),
            &recipe.toolchain,
            &recipe.target,
            attempt,
        );
        Self {
            request,
            lockfile: recipe.lockfile.clone(),
            recipe: Some(serde_bytes::ByteBuf::from(recipe.to_cbor())),
        }
    }

    /// The recipe of a recipe request, decoded and checked against the request: canonical,
    /// within its bounds, its id the request's, its lockfile, toolchain and target the
    /// request's, and with its lockfile at most [`MAX_RECIPE_REQUEST`] bytes together
    /// ([`PinnedRequest::validate`] runs the same checks). Structural only: see below.
    pub fn recipe(&self) -> Result<Option<Recipe>, RequestError> {
        let (true, Some(bytes)) = (self.request.is_recipe(), &self.recipe) else {
            return match (self.request.is_recipe(), &self.recipe) {
                (false, None) => Ok(None),
                _ => Err(RequestError::Invalid(
                    "recipe (a recipe request carries its recipe, and only a recipe request does)",
                )),
            };
        };
        if bytes.len() + self.lockfile.len() > MAX_RECIPE_REQUEST {
            return Err(RequestError::Invalid(
                "recipe (the recipe and its lockfile together are over 1.5 MiB)",
            ));
        }
        let recipe = Recipe::from_cbor(bytes)
            .map_err(|_| RequestError::Invalid("recipe (not a valid recipe within its bounds)"))?;
        if Some(recipe.id()) != self.request.recipe_id() {
            return Err(RequestError::Invalid(
                "recipe (not the recipe the request names)",
            ));
        }
        if recipe.lockfile != self.lockfile
            || recipe.toolchain != self.request.toolchain
            || recipe.target != self.request.target
        {
            return Err(RequestError::Invalid(
                "recipe (its lockfile, toolchain or target is not the request's)",
            ));
        }
        // What the manifests SAY (`Recipe::check_contents`) is no part of validity: it
        // parses TOML, whose reading may change between builds of this program, and every
        // member must agree on a block's validity whatever its build. Builders refuse such a
        // recipe as `invalid-request` (the same outcome on every member); who orders one
        // (`submit --recipe`, `POST /recipe`) checks it first.
        Ok(Some(recipe))
    }

    /// Checks the request's fields and that the lockfile is the one it pins.
    pub fn validate(&self) -> Result<(), RequestError> {
        self.request.validate()?;
        if self.lockfile.is_empty() || self.lockfile.len() > MAX_LOCKFILE_SIZE {
            return Err(RequestError::Invalid("lockfile (empty or over 1 MiB)"));
        }
        if sha256(self.lockfile.as_bytes())[..] != self.request.lockfile_sha256[..] {
            return Err(RequestError::Invalid(
                "lockfile (does not hash to lockfile_sha256)",
            ));
        }
        self.recipe().map(|_| ())
    }

    /// The request id.
    pub fn id(&self) -> [u8; 32] {
        self.request.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synchronicity_verify::recipe::{RECIPE_FORMAT, RecipeManifest, Stub, StubKind};

    fn recipe() -> Recipe {
        Recipe {
            format: RECIPE_FORMAT,
            toolchain: "1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "release".into(),
            rustflags: vec![],
            features: vec![],
            no_default_features: false,
            all_features: false,
            lockfile: "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n".into(),
            manifests: vec![RecipeManifest {
                path: "Cargo.toml".into(),
                toml: "[package]\nname = \"app\"\nversion = \"0.1.0\"\n".into(),
                stubs: vec![Stub {
                    path: "src/main.rs".into(),
                    kind: StubKind::Main,
                }],
            }],
        }
    }

    #[test]
    fn a_recipe_request_carries_exactly_its_recipe() {
        let r = recipe();
        let pinned = PinnedRequest::for_recipe(&r, 1);
        assert_eq!(pinned.validate(), Ok(()));
        assert_eq!(pinned.recipe(), Ok(Some(r.clone())));
        assert_eq!(pinned.request.recipe_id(), Some(r.id()));

        // Without its recipe, with another recipe, with another lockfile, or a crate's
        // request carrying a recipe: invalid.
        let mut none = pinned.clone();
        none.recipe = None;
        let mut other = r.clone();
        other.features = vec!["x".into()];
        let mut swapped = pinned.clone();
        swapped.recipe = Some(serde_bytes::ByteBuf::from(other.to_cbor()));
        let mut lock = r.clone();
        lock.lockfile.push('\n');
        let mut relocked = PinnedRequest::for_recipe(&lock, 1);
        relocked.recipe = pinned.recipe.clone();
        let mut git = r.clone();
        git.manifests[0]
            .toml
            .push_str("[dependencies]\nx = { git = \"https://e.invalid/x\" }\n");
        // What the manifests say is no part of validity (builders refuse it).
        assert_eq!(PinnedRequest::for_recipe(&git, 1).validate(), Ok(()));
        let mut krate = PinnedRequest::new(
            synchronicity_verify::request::BuildRequest {
                krate: "itoa".into(),
                version: "1.0.15".into(),
                ..pinned.request.clone()
            },
            "version = 4\n".into(),
        );
        krate.recipe = pinned.recipe.clone();
        for bad in [none, swapped, relocked, krate] {
            assert!(
                matches!(bad.validate(), Err(RequestError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
