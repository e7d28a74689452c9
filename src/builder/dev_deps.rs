//! What a build of a crate's lib and bins does not need: its dev-dependencies.
//!
//! `cargo build` resolves dev-dependencies of the package it builds although it never
//! compiles them, so a dev-dependency missing from the index (yanked, a version the index
//! never had) fails the whole build; `cargo install` avoids them. We do the same, in two
//! deterministic steps:
//!
//! 1. **Manifest** (every builder, pure): [`strip_dev_dependencies`] removes the
//!    `[dev-dependencies]` tables (top level and under `[target.*]`, either spelling) from
//!    the unpacked `Cargo.toml`. A manifest without them is left byte for byte as shipped.
//! 2. **Lockfile** (once, by the submitter, recorded in the request): the lockfile is
//!    re-resolved by cargo against the stripped manifest, keeping every locked version and
//!    dropping the packages only dev-dependencies needed. The result IS the request's
//!    lockfile (its sha256 is in the request), so every member builds the same inputs.
//!
//! Request format 3 means "built with dev-dependencies stripped" (`docs/formats.md`).

/// The manifest tables that declare dev-dependencies.
const DEV_TABLES: [&str; 2] = ["dev-dependencies", "dev_dependencies"];

/// `Cargo.toml` without its dev-dependency tables, or `None` when it has none (then the
/// shipped file is used unchanged). `Err` when the manifest is not TOML.
pub fn strip_dev_dependencies(manifest: &str) -> Result<Option<String>, String> {
    let mut table: toml::Table = toml::from_str(manifest)
        .map_err(|e| format!("Cargo.toml: {}", e.message().replace('\n', " ")))?;
    let mut changed = false;
    for key in DEV_TABLES {
        changed |= table.remove(key).is_some();
    }
    if let Some(toml::Value::Table(targets)) = table.get_mut("target") {
        for (_, spec) in targets.iter_mut() {
            if let toml::Value::Table(spec) = spec {
                for key in DEV_TABLES {
                    changed |= spec.remove(key).is_some();
                }
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    toml::to_string(&table)
        .map(Some)
        .map_err(|e| format!("Cargo.toml: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_dependencies_go_everything_else_stays() {
        let m = "[package]\nname = \"a\"\nversion = \"1.0.0\"\n\n[dependencies.b]\nversion = \"1\"\n\n[dev-dependencies.trybuild]\nversion = \"1.0.125\"\n\n[target.'cfg(unix)'.dev-dependencies]\nc = \"1\"\n\n[target.'cfg(unix)'.dependencies]\nd = \"1\"\n";
        let out = strip_dev_dependencies(m).unwrap().unwrap();
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert!(t.get("dev-dependencies").is_none());
        assert!(t["dependencies"].get("b").is_some());
        let unix = &t["target"]["cfg(unix)"];
        assert!(unix.get("dev-dependencies").is_none());
        assert!(unix["dependencies"].get("d").is_some());
        // Deterministic: stripping the stripped text changes nothing more.
        assert_eq!(strip_dev_dependencies(&out).unwrap(), None);
    }

    #[test]
    fn a_manifest_without_dev_dependencies_is_untouched_and_bad_toml_is_an_error() {
        assert_eq!(
            strip_dev_dependencies("[package]\nname = \"a\"\n").unwrap(),
            None
        );
        assert!(
            strip_dev_dependencies("[package\n")
                .unwrap_err()
                .starts_with("Cargo.toml:")
        );
    }
}
