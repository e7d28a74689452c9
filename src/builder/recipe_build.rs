//! Building a recipe's dependencies (issue 28; docs/cache.md): the workspace skeleton the
//! recipe describes is written below the builder's sources, built in the sandbox like any
//! crate (`cargo build --release --workspace --locked --offline`, the recipe's features and
//! RUSTFLAGS, for the host: no `--target`, as a CI job's `cargo build --release`), and its
//! dependency units are taken from the build's disk by [`unit_files`] and
//! `artifacts::collect_within`.
//!
//! A recipe comes from whoever submitted it: its paths are checked by
//! `Recipe::validate`, every file is created new below a fresh directory, and the builder
//! reads the skeleton back into a recipe with its own cargo (`crate::recipe`) and requires
//! the same id — so every check a client's reader makes (no git dependency, no path
//! dependency outside the members, a matching lockfile, crates.io only) holds here too,
//! whoever sent it, before cargo fetches anything.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use synchronicity_verify::recipe::Recipe;

use super::BuildError;
use super::artifacts::{CollectError, NameBounds, RefusedArtifact};
use super::sandbox::SOURCE_IN_SANDBOX;
use synchronicity_verify::manifest::MAX_RECIPE_MANIFEST_SIZE;

/// What one recipe build may give: names up to 16 components deep (`release/build/<unit>/
/// out/…`), 20,000 files, a manifest of [`MAX_RECIPE_MANIFEST_SIZE`] (what a round accepts
/// in a reveal and a light client fetches as one text).
pub(crate) const RECIPE_NAMES: NameBounds = NameBounds {
    components: 16,
    names: 20_000,
    manifest: MAX_RECIPE_MANIFEST_SIZE,
};

/// The directories of `target/release` that hold units.
const UNIT_DIRS: [&str; 3] = ["deps", "build", ".fingerprint"];

/// Writes the skeleton of `recipe` into `dir` (removed first): every manifest, every stub
/// and `Cargo.lock`, each a new file (a path given twice is refused).
pub(crate) fn write_skeleton(recipe: &Recipe, dir: &Path) -> Result<(), BuildError> {
    use std::io::Write;
    recipe
        .validate()
        .map_err(|e| BuildError::Request(e.to_string()))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| BuildError::Workspace(e.to_string()))?;
    let files = recipe
        .manifests
        .iter()
        .map(|m| (m.path.as_str(), m.toml.as_str()))
        .chain(recipe.stubs().map(|s| (s.path.as_str(), s.kind.text())))
        .chain([("Cargo.lock", recipe.lockfile.as_str())]);
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    for (path, text) in files {
        let file = dir.join(path);
        let io = |e: std::io::Error| BuildError::Workspace(format!("recipe path {path}: {e}"));
        if let Some(parent) = file.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&file)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(io)?;
    }
    Ok(())
}

/// `cargo build` arguments for a recipe.
pub(crate) fn recipe_cargo_args(recipe: &Recipe, jobs: u32) -> Vec<String> {
    let mut a: Vec<String> = [
        "build",
        "--locked",
        "--offline",
        "--release",
        "--workspace",
        "--message-format=json-render-diagnostics",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend([
        "--manifest-path".into(),
        format!("{SOURCE_IN_SANDBOX}/Cargo.toml"),
        "-j".into(),
        jobs.to_string(),
    ]);
    if !recipe.features.is_empty() {
        a.extend(["--features".into(), recipe.features.join(",")]);
    }
    if recipe.no_default_features {
        a.push("--no-default-features".into());
    }
    if recipe.all_features {
        a.push("--all-features".into());
    }
    a
}

/// The recipe's RUSTFLAGS as cargo reads them (`CARGO_ENCODED_RUSTFLAGS`), if any.
pub(crate) fn recipe_env(recipe: &Recipe) -> Vec<(String, String)> {
    if recipe.rustflags.is_empty() {
        Vec::new()
    } else {
        vec![(
            "CARGO_ENCODED_RUSTFLAGS".into(),
            recipe.rustflags.join("\x1f"),
        )]
    }
}

/// The names the workspace's own units carry (package and target names, with `-` and
/// `_`): their files are not part of a recipe's output.
#[derive(Debug, Default)]
pub(crate) struct MemberNames(BTreeSet<String>);

impl MemberNames {
    /// From `cargo metadata --no-deps` of the skeleton.
    pub(crate) fn from_metadata(meta: &serde_json::Value) -> Self {
        let mut names = BTreeSet::new();
        for p in meta["packages"].as_array().into_iter().flatten() {
            let package = p["name"].as_str().into_iter();
            let targets = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str());
            for n in package.chain(targets) {
                names.insert(n.to_string());
                names.insert(n.replace('-', "_"));
            }
        }
        Self(names)
    }

    /// Whether the entry `name` of `deps`, `build` or `.fingerprint` is a member's unit:
    /// `NAME-<16 hex>[.…]`, and in `deps` also `libNAME-<16 hex>.…`.
    fn owns(&self, name: &str, in_deps: bool) -> bool {
        [Some(name), name.strip_prefix("lib").filter(|_| in_deps)]
            .into_iter()
            .flatten()
            .any(|n| self.0.iter().any(|m| unit_of(n, m)))
    }
}

/// Whether `entry` is `member-<16 hex>`, alone or with an extension.
fn unit_of(entry: &str, member: &str) -> bool {
    entry
        .strip_prefix(member)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|r| {
            r.len() >= 16
                && r.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
                && (r.len() == 16 || r.as_bytes()[16] == b'.')
        })
}

/// Every dependency unit's file under `target/release` (`deps`, `build`, `.fingerprint`),
/// as names relative to `target`: the members' units and the dep-info files cargo writes
/// beside them (`deps/*.d`, `build/<unit>/*.d`; cargo reads dep-info only right after rustc
/// writes it) left out. Walked with `lstat` on the build's disk, never following a link:
/// `release` itself, and everything below, must be real directories and regular files on
/// that disk; a link, FIFO, device or socket, a name that is no plain manifest path, or
/// more entries than the bounds of [`RECIPE_NAMES`] (counted as they are met, whatever
/// order the directory gives them) is refused alike by every member. An I/O error is the
/// host's.
pub(crate) fn unit_files(
    target: &Path,
    members: &MemberNames,
) -> Result<Vec<String>, CollectError> {
    let host = |what: &str, e: std::io::Error| CollectError::Host(format!("{what}: {e}"));
    let disk = std::fs::symlink_metadata(target)
        .map_err(|e| host("target", e))?
        .dev();
    let release = target.join("release");
    match std::fs::symlink_metadata(&release) {
        Ok(m) if m.is_dir() && m.dev() == disk => {}
        Ok(_) => return Err(RefusedArtifact::BadDirectory("release".into()).into()),
        Err(e) => return Err(host("release", e)),
    }
    // Entries met (files, directories, skipped ones): one bound for all, checked on each.
    let most = RECIPE_NAMES.names * 4;
    let mut seen = 0usize;
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for top in UNIT_DIRS {
        match std::fs::symlink_metadata(release.join(top)) {
            Ok(m) if m.is_dir() && m.dev() == disk => stack.push(format!("release/{top}")),
            Ok(_) => return Err(RefusedArtifact::BadDirectory(format!("release/{top}")).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(host(top, e)),
        }
    }
    while let Some(dir) = stack.pop() {
        let depth = dir.split('/').count();
        let in_deps = dir == "release/deps";
        let in_unit_of_build = depth == 3 && dir.starts_with("release/build/");
        let entries = std::fs::read_dir(target.join(&dir)).map_err(|e| host(&dir, e))?;
        for entry in entries {
            seen += 1;
            if seen > most {
                return Err(RefusedArtifact::TooMany.into());
            }
            let entry = entry.map_err(|e| host(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(RefusedArtifact::BadName(format!("{dir}/…")).into());
            };
            let rel = format!("{dir}/{name}");
            if !super::artifacts::valid_relative_path_within(&rel, RECIPE_NAMES.components) {
                return Err(RefusedArtifact::BadName(rel).into());
            }
            if depth == 2 && members.owns(&name, in_deps) {
                continue;
            }
            let meta = std::fs::symlink_metadata(target.join(&rel)).map_err(|e| host(&rel, e))?;
            if meta.dev() != disk {
                return Err(RefusedArtifact::OtherDisk(rel).into());
            }
            if meta.is_dir() {
                stack.push(rel);
            } else if !meta.is_file() {
                return Err(RefusedArtifact::NotRegular(rel).into());
            } else if !((in_deps || in_unit_of_build) && name.ends_with(".d")) {
                out.push(rel);
                if out.len() > RECIPE_NAMES.names {
                    return Err(RefusedArtifact::TooMany.into());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> MemberNames {
        MemberNames::from_metadata(&serde_json::json!({"packages": [
            {"name": "app", "targets": [{"name": "app"}, {"name": "build-script-build"}]},
            {"name": "my-util", "targets": [{"name": "my-util"}]},
        ]}))
    }

    #[test]
    fn member_units_are_told_from_dependencies_with_similar_names() {
        let m = members();
        for own in [
            "app-0123456789abcdef",
            "app-0123456789abcdef.d",
            "libmy_util-0123456789abcdef.rlib",
            "my-util-0123456789abcdef",
        ] {
            assert!(m.owns(own, true), "{own}");
        }
        // `lib` is a prefix of file names in `deps` only: `.fingerprint/libapp-…` is a
        // dependency called libapp.
        assert!(!m.owns("libapp-0123456789abcdef", false));
        for dep in [
            "app-utils-0123456789abcdef",
            "libapp_utils-0123456789abcdef.rlib",
            "libitoa-0123456789abcdef.rlib",
            "app-0123456789abcde",
            "application-0123456789abcdef",
        ] {
            assert!(!m.owns(dep, true), "{dep}");
        }
    }

    #[test]
    fn links_and_fifos_in_the_tree_are_refused_and_dep_info_left_out() {
        let t = tempfile::tempdir().unwrap();
        let fp = t.path().join("release/.fingerprint/itoa-0123456789abcdef");
        std::fs::create_dir_all(&fp).unwrap();
        std::fs::write(fp.join("lib-itoa"), "x").unwrap();
        let deps = t.path().join("release/deps");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::write(deps.join("libitoa-0123456789abcdef.rlib"), "x").unwrap();
        std::fs::write(deps.join("itoa-0123456789abcdef.d"), "x").unwrap();
        std::fs::write(deps.join("app-0123456789abcdef"), "x").unwrap();
        assert_eq!(
            unit_files(t.path(), &members()).unwrap(),
            [
                "release/.fingerprint/itoa-0123456789abcdef/lib-itoa",
                "release/deps/libitoa-0123456789abcdef.rlib",
            ]
        );
        std::os::unix::fs::symlink("/etc/passwd", deps.join("libx-0123456789abcdef.rlib")).unwrap();
        assert!(matches!(
            unit_files(t.path(), &members()),
            Err(CollectError::Refused(RefusedArtifact::NotRegular(_)))
        ));
        // `release` itself a link: refused, not followed.
        std::fs::remove_file(deps.join("libx-0123456789abcdef.rlib")).unwrap();
        std::fs::rename(t.path().join("release"), t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("release")).unwrap();
        assert!(matches!(
            unit_files(t.path(), &members()),
            Err(CollectError::Refused(RefusedArtifact::BadDirectory(_)))
        ));
    }
}
