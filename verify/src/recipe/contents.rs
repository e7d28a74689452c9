//! What a recipe's manifests and lockfile may say: crates.io packages and the recipe's own
//! members, nothing that makes cargo reach another source, another directory or an
//! unstable feature (see `recipe`'s module doc). Pure: the TOML is parsed, nothing is read.

use super::{CRATES_IO_SOURCE, Recipe, RecipeError};

fn refused<T>(msg: String) -> Result<T, RecipeError> {
    Err(RecipeError::Refused(msg))
}

/// The dependency tables of every kind and spelling.
const DEPENDENCY_KINDS: [&str; 5] = [
    "dependencies",
    "dev-dependencies",
    "dev_dependencies",
    "build-dependencies",
    "build_dependencies",
];

/// The dependency tables of `t`, named with `prefix`.
fn kinds<'a>(t: &'a toml::Table, prefix: &str) -> Vec<(String, &'a toml::Table)> {
    DEPENDENCY_KINDS
        .iter()
        .filter_map(|k| Some((format!("{prefix}{k}"), t.get(*k)?.as_table()?)))
        .collect()
}

/// `base` joined with the relative `path` and normalized lexically; `None` if it is
/// absolute or leaves the workspace root.
fn join(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

pub(super) fn check(r: &Recipe) -> Result<(), RecipeError> {
    // A member's directory: "" for the root manifest, "app" for `app/Cargo.toml`.
    let dir_of = |path: &str| {
        path.strip_suffix("Cargo.toml")
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    };
    let member_dirs: Vec<String> = r.manifests.iter().map(|m| dir_of(&m.path)).collect();
    let stubs: Vec<&str> = r.stubs().map(|s| s.path.as_str()).collect();
    let mut member_names = Vec::new();
    for m in &r.manifests {
        let at = &m.path;
        let t: toml::Table = m
            .toml
            .parse()
            .map_err(|_| RecipeError::Refused(format!("{at}: not TOML")))?;
        let dir = dir_of(at);
        for key in ["cargo-features", "patch", "replace"] {
            if t.contains_key(key) {
                return refused(format!(
                    "{at}: [{key}] is not built in a recipe (crates.io packages and the workspace's members only)"
                ));
            }
        }
        match (at.as_str(), t.get("workspace")) {
            ("Cargo.toml", Some(ws)) => check_workspace(ws)?,
            // A lone package is its own workspace (cargo's search finds no other root in
            // the builders' fixed source directory); members need a [workspace].
            ("Cargo.toml", None) if r.manifests.len() == 1 && t.contains_key("package") => {}
            ("Cargo.toml", None) => {
                return refused(
                    "the root Cargo.toml has no [workspace] (and it is not a lone package)".into(),
                );
            }
            (_, Some(_)) => return refused(format!("{at}: a nested [workspace]")),
            (_, None) => {}
        }
        if let Some(p) = t.get("package").and_then(|p| p.as_table()) {
            if p.contains_key("workspace") {
                return refused(format!("{at}: package.workspace is not built in a recipe"));
            }
            if let Some(name) = p.get("name").and_then(|n| n.as_str()) {
                member_names.push(name.to_string());
            }
            if let Some(build) = p.get("build").and_then(|b| b.as_str()) {
                check_target_path(at, &dir, build, &stubs)?;
            }
        }
        for kind in ["lib", "bin", "example", "test", "bench"] {
            let targets: Vec<&toml::Table> = match t.get(kind) {
                Some(toml::Value::Table(one)) => vec![one],
                Some(toml::Value::Array(many)) => {
                    many.iter().filter_map(|v| v.as_table()).collect()
                }
                _ => Vec::new(),
            };
            for target in targets {
                if let Some(path) = target.get("path").and_then(|p| p.as_str()) {
                    check_target_path(at, &dir, path, &stubs)?;
                }
            }
        }
        let mut tables: Vec<(String, &toml::Table)> = Vec::new();
        tables.extend(kinds(&t, ""));
        if let Some(targets) = t.get("target").and_then(|t| t.as_table()) {
            for (cfg, v) in targets {
                if let Some(v) = v.as_table() {
                    tables.extend(kinds(v, &format!("target.{cfg}.")));
                }
            }
        }
        if let Some(d) = t
            .get("workspace")
            .and_then(|w| w.get("dependencies"))
            .and_then(|d| d.as_table())
        {
            tables.push(("workspace.dependencies".into(), d));
        }
        for (table, deps) in tables {
            for (name, spec) in deps {
                let Some(spec) = spec.as_table() else {
                    continue;
                };
                for key in ["git", "registry", "registry-index"] {
                    if spec.contains_key(key) {
                        return refused(format!(
                            "{at}: [{table}] {name} has `{key}`; a recipe builds crates.io packages only"
                        ));
                    }
                }
                if let Some(path) = spec.get("path").and_then(|p| p.as_str()) {
                    match join(&dir, path) {
                        Some(p) if member_dirs.contains(&p) => {}
                        _ => {
                            return refused(format!(
                                "{at}: [{table}] {name} is a path dependency that is not a member ({path})"
                            ));
                        }
                    }
                }
            }
        }
    }
    let lock: toml::Table = r
        .lockfile
        .parse()
        .map_err(|_| RecipeError::Refused("Cargo.lock: not TOML".into()))?;
    for p in lock
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        match p.get("source").and_then(|s| s.as_str()) {
            Some(CRATES_IO_SOURCE) => {}
            None if member_names.iter().any(|m| m == name) => {}
            None => {
                return refused(format!(
                    "Cargo.lock: {name} is a path package that is not a member"
                ));
            }
            Some(s) => {
                return refused(format!(
                    "Cargo.lock: {name} comes from {s}; a recipe builds crates.io packages only"
                ));
            }
        }
    }
    Ok(())
}

/// `[workspace]` members, exclusions and default members are relative paths (globs
/// allowed) inside the root.
fn check_workspace(ws: &toml::Value) -> Result<(), RecipeError> {
    for key in ["members", "exclude", "default-members"] {
        for v in ws.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
            let ok = v
                .as_str()
                .is_some_and(|p| join("", p).is_some_and(|j| !j.is_empty()) && !p.contains(".."));
            if !ok {
                return refused(format!(
                    "Cargo.toml: workspace.{key} entry {v} is not a relative path inside the workspace"
                ));
            }
        }
    }
    Ok(())
}

/// A target's `path` (or `build`) must be one of the recipe's stubs.
fn check_target_path(at: &str, dir: &str, path: &str, stubs: &[&str]) -> Result<(), RecipeError> {
    match join(dir, path) {
        Some(p) if stubs.contains(&p.as_str()) => Ok(()),
        _ => refused(format!(
            "{at}: target path {path} is not one of the recipe's stub files"
        )),
    }
}
