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
//!
//! The stripped manifest must stay one cargo accepts. Cargo checks every name a feature
//! or a target's `required-features` gives against the declared dependencies, so an entry
//! that names a dependency declared ONLY as a dev-dependency (`dep:x`, `x/f`, `x?/f`, or a
//! bare `x` that is not also a feature) goes with it; a name that is also a normal or build
//! dependency (anywhere, under any `[target.*]`) stays. Such an entry can only ever have
//! taken effect in test builds: with the dev-dependencies declared, a feature enabling
//! `bumpalo/allocator_api` does nothing for a lib or bin build, which cannot link
//! `bumpalo`. A manifest cargo accepted before stripping without such entries is stripped
//! exactly as before (hashbrown@0.17.2: `nightly = ["foldhash?/nightly",
//! "bumpalo/allocator_api"]` with `bumpalo` a dev-dependency).

use std::collections::BTreeSet;

/// The manifest tables that declare dev-dependencies.
const DEV_TABLES: [&str; 2] = ["dev-dependencies", "dev_dependencies"];

/// The manifest tables that declare dependencies a lib or bin build uses.
const KEPT_TABLES: [&str; 3] = ["dependencies", "build-dependencies", "build_dependencies"];

/// The target tables whose `required-features` cargo checks against the dependencies.
const TARGET_ARRAYS: [&str; 5] = ["lib", "bin", "example", "test", "bench"];

/// `Cargo.toml` without its dev-dependency tables, or `None` when it has none (then the
/// shipped file is used unchanged). `Err` when the manifest is not TOML.
pub fn strip_dev_dependencies(manifest: &str) -> Result<Option<String>, String> {
    let mut table: toml::Table = toml::from_str(manifest)
        .map_err(|e| format!("Cargo.toml: {}", e.message().replace('\n', " ")))?;
    let mut stripped = BTreeSet::new();
    let mut kept = BTreeSet::new();
    let mut changed = false;
    changed |= take_dev_tables(&mut table, &mut stripped, &mut kept);
    if let Some(toml::Value::Table(targets)) = table.get_mut("target") {
        for (_, spec) in targets.iter_mut() {
            if let toml::Value::Table(spec) = spec {
                changed |= take_dev_tables(spec, &mut stripped, &mut kept);
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let gone: BTreeSet<String> = stripped.difference(&kept).cloned().collect();
    if !gone.is_empty() {
        drop_feature_entries(&mut table, &gone);
    }
    toml::to_string(&table)
        .map(Some)
        .map_err(|e| format!("Cargo.toml: {e}"))
}

/// Removes `spec`'s dev-dependency tables, adding their names to `stripped` and the names
/// of its normal and build dependencies to `kept`. True when a table was removed.
fn take_dev_tables(
    spec: &mut toml::Table,
    stripped: &mut BTreeSet<String>,
    kept: &mut BTreeSet<String>,
) -> bool {
    for key in KEPT_TABLES {
        if let Some(toml::Value::Table(deps)) = spec.get(key) {
            kept.extend(deps.keys().cloned());
        }
    }
    let mut changed = false;
    for key in DEV_TABLES {
        if let Some(removed) = spec.remove(key) {
            changed = true;
            if let toml::Value::Table(deps) = removed {
                stripped.extend(deps.keys().cloned());
            }
        }
    }
    changed
}

/// The dependency a feature entry names, if it names one: `dep:x`, `x/f` and `x?/f` name
/// `x`; a bare `x` names `x` unless `x` is a feature of the package.
fn named_dependency<'a>(entry: &'a str, features: &toml::Table) -> Option<&'a str> {
    if let Some(name) = entry.strip_prefix("dep:") {
        return Some(name);
    }
    if let Some((name, _)) = entry.split_once('/') {
        return Some(name.strip_suffix('?').unwrap_or(name));
    }
    (!features.contains_key(entry)).then_some(entry)
}

/// Removes the entries of `[features]` and of the targets' `required-features` that name a
/// dependency in `gone` (declared only as a dev-dependency, now stripped).
fn drop_feature_entries(table: &mut toml::Table, gone: &BTreeSet<String>) {
    let features = match table.get("features") {
        Some(toml::Value::Table(f)) => f.clone(),
        _ => toml::Table::new(),
    };
    let keep = |v: &toml::Value| match v.as_str() {
        Some(entry) => named_dependency(entry, &features).is_none_or(|d| !gone.contains(d)),
        None => true,
    };
    if let Some(toml::Value::Table(features)) = table.get_mut("features") {
        for (_, entries) in features.iter_mut() {
            if let toml::Value::Array(entries) = entries {
                entries.retain(keep);
            }
        }
    }
    for key in TARGET_ARRAYS {
        let targets: Vec<&mut toml::Table> = match table.get_mut(key) {
            Some(toml::Value::Table(t)) => vec![t],
            Some(toml::Value::Array(a)) => a.iter_mut().filter_map(|t| t.as_table_mut()).collect(),
            _ => Vec::new(),
        };
        for target in targets {
            for name in ["required-features", "required_features"] {
                if let Some(toml::Value::Array(entries)) = target.get_mut(name) {
                    entries.retain(keep);
                }
            }
        }
    }
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

    fn features_of(out: &str) -> toml::Table {
        let t: toml::Table = toml::from_str(out).unwrap();
        t["features"].as_table().unwrap().clone()
    }

    fn list(v: &toml::Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect()
    }

    #[test]
    fn feature_entries_naming_a_stripped_dependency_go_with_it_in_every_form() {
        // hashbrown@0.17.2's shape, plus each other form cargo checks.
        let m = r#"
[package]
name = "a"
version = "1.0.0"

[dependencies]
foldhash = { version = "0.2", optional = true }

[target.'cfg(unix)'.build-dependencies]
cc = "1"

[dev-dependencies]
bumpalo = "3"
rayon = "1"
cc = "1"
serde_test = { version = "1", package = "serde_test" }

[target.'cfg(windows)'.dev-dependencies]
winonly = "1"

[features]
default = ["foldhash"]
nightly = ["foldhash?/nightly", "bumpalo/allocator_api"]
par = ["dep:rayon", "rayon?/web_spin_lock"]
build = ["cc/parallel"]
serde_test = []
tests = ["serde_test", "winonly/x", "nightly"]

[[test]]
name = "t"
required-features = ["bumpalo/allocator_api", "nightly"]

[[bin]]
name = "b"
required-features = ["dep:winonly", "foldhash"]
"#;
        let out = strip_dev_dependencies(m).unwrap().unwrap();
        let f = features_of(&out);
        assert_eq!(list(&f["default"]), ["foldhash"]);
        assert_eq!(list(&f["nightly"]), ["foldhash?/nightly"]);
        assert!(list(&f["par"]).is_empty());
        // cc is also a build dependency (under a target): its entry stays.
        assert_eq!(list(&f["build"]), ["cc/parallel"]);
        // "serde_test" is a feature of the package too: a bare name then means the feature.
        assert_eq!(list(&f["tests"]), ["serde_test", "nightly"]);
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(
            list(&t["test"].as_array().unwrap()[0]["required-features"]),
            ["nightly"]
        );
        assert_eq!(
            list(&t["bin"].as_array().unwrap()[0]["required-features"]),
            ["foldhash"]
        );
        assert_eq!(strip_dev_dependencies(&out).unwrap(), None);
    }

    #[test]
    fn a_manifest_whose_features_name_no_dev_dependency_is_stripped_as_before() {
        let m = "[package]\nname = \"a\"\nversion = \"1.0.0\"\n\n[dependencies]\nb = \"1\"\n\n[dev-dependencies]\nc = \"1\"\n\n[features]\nx = [\"b/y\", \"dep:b\"]\n";
        let out = strip_dev_dependencies(m).unwrap().unwrap();
        let f = features_of(&out);
        assert_eq!(list(&f["x"]), ["b/y", "dep:b"]);
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
