//! A workspace read into its [`Recipe`] (issue 28): the format and its bounds are
//! `synchronicity_verify::recipe`; this is the reading, on the user's machine.
//!
//! 1. `cargo metadata --no-deps` (no resolution, no network): the workspace root, its
//!    members' manifests and their targets.
//! 2. Each manifest (the root's and every member's), read bounded and checked before cargo
//!    resolves anything: a `git` dependency, or a `path` dependency outside the workspace
//!    or outside its members, is refused with its name — a recipe builds crates.io
//!    packages only, and the group never sees the user's other directories.
//! 3. `cargo metadata --locked` (resolution; the index may be fetched): a `Cargo.lock` that
//!    does not match the manifests is refused, and every package must come from crates.io
//!    or be a member.
//! 4. The recipe: each manifest's TOML parsed and written again with its keys sorted (so
//!    formatting and comments do not change the id), a stub per target (a library root
//!    empty, every other target `fn main() {}`), the lockfile as it is, the toolchain and
//!    host target of the `rustc` on `PATH` unless given, and RUSTFLAGS from the
//!    environment (`CARGO_ENCODED_RUSTFLAGS`, else `RUSTFLAGS`; flags in `.cargo/config.toml`
//!    are not read: give them in the environment).

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::verify::recipe::{
    MAX_RECIPE_SIZE, RECIPE_FORMAT, Recipe, RecipeManifest, Stub, StubKind, valid_recipe_path,
};

/// Largest `Cargo.toml` read, in bytes.
const MAX_MANIFEST: u64 = 256 << 10;

/// What the user asks a recipe for.
#[derive(Debug, Clone, Default)]
pub struct RecipeOptions {
    /// The workspace's (or a member's) `Cargo.toml`; `None`: cargo's own search from the
    /// current directory.
    pub manifest_path: Option<PathBuf>,
    /// The toolchain version; `None`: the `rustc` on `PATH`.
    pub toolchain: Option<String>,
    /// The target triple; `None`: the host's.
    pub target: Option<String>,
    /// `--features`.
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--all-features`.
    pub all_features: bool,
    /// The RUSTFLAGS; `None`: from the environment.
    pub rustflags: Option<Vec<String>>,
}

/// Why a workspace has no recipe: one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum RecipeRefused {
    /// The workspace (or the recipe) is not buildable as a recipe: the same answer on
    /// every machine.
    #[error("{0}")]
    Refused(String),
    /// cargo or rustc could not run or answer here (the network, a missing tool): this
    /// machine's failure, not the recipe's.
    #[error("{0}")]
    Cargo(String),
}

fn refused<T>(msg: impl Into<String>) -> Result<T, RecipeRefused> {
    Err(RecipeRefused::Refused(msg.into()))
}

/// The recipe of the workspace `opts` names, read with the `cargo` on `PATH` (or `$CARGO`).
pub fn recipe_of(opts: &RecipeOptions) -> Result<Recipe, RecipeRefused> {
    recipe_of_with(opts, &|| {
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    })
}

/// [`recipe_of`] with the cargo `cargo` makes (a builder's own, with its homes).
pub fn recipe_of_with(
    opts: &RecipeOptions,
    cargo: &dyn Fn() -> Command,
) -> Result<Recipe, RecipeRefused> {
    let meta = cargo_metadata(cargo, opts, &["--no-deps"])?;
    let root = PathBuf::from(meta["workspace_root"].as_str().unwrap_or_default());
    if !root.is_absolute() {
        return refused("cargo metadata gave no workspace root");
    }
    let members = meta["packages"].as_array().cloned().unwrap_or_default();
    let mut manifests: Vec<(String, PathBuf, Vec<Stub>)> = Vec::new();
    for p in &members {
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let name = p["name"].as_str().unwrap_or("?");
        let path = relative(&root, &manifest).ok_or_else(|| {
            RecipeRefused::Refused(format!("member {name}: manifest outside the workspace"))
        })?;
        let mut stubs = Vec::new();
        for t in p["targets"].as_array().into_iter().flatten() {
            let src = PathBuf::from(t["src_path"].as_str().unwrap_or_default());
            let stub = relative(&root, &src).ok_or_else(|| {
                RecipeRefused::Refused(format!(
                    "member {name}: target {} is outside the workspace or not a plain path ({})",
                    t["name"].as_str().unwrap_or("?"),
                    src.display()
                ))
            })?;
            let kinds = t["kind"].as_array().cloned().unwrap_or_default();
            let main = kinds.iter().any(|k| {
                matches!(
                    k.as_str(),
                    Some("bin" | "example" | "test" | "bench" | "custom-build")
                )
            });
            stubs.push(Stub {
                path: stub,
                kind: if main { StubKind::Main } else { StubKind::Lib },
            });
        }
        // One file serving two targets (a lib and a bin) needs `main`: Main sorts first.
        stubs.sort_by(|a, b| {
            a.path
                .cmp(&b.path)
                .then((a.kind == StubKind::Lib).cmp(&(b.kind == StubKind::Lib)))
        });
        stubs.dedup_by(|a, b| a.path == b.path);
        manifests.push((path, manifest, stubs));
    }
    if !manifests.iter().any(|(p, _, _)| p == "Cargo.toml") {
        // A virtual manifest: the root's own, without stubs.
        manifests.push(("Cargo.toml".into(), root.join("Cargo.toml"), Vec::new()));
    }
    let member_dirs: Vec<PathBuf> = manifests
        .iter()
        .filter_map(|(_, m, _)| m.parent().map(Path::to_path_buf))
        .collect();
    let mut recipe_manifests = Vec::new();
    for (path, file, stubs) in manifests {
        let toml = read_manifest(&file)?;
        check_dependencies(&path, &toml, &root, &member_dirs)?;
        recipe_manifests.push(RecipeManifest {
            path,
            toml: toml::to_string(&sorted(&toml))
                .map_err(|e| RecipeRefused::Refused(e.to_string()))?,
            stubs,
        });
    }
    recipe_manifests.sort_by(|a, b| a.path.cmp(&b.path));

    let lock_path = root.join("Cargo.lock");
    let lockfile =
        crate::node_dir::read_bounded_text(&lock_path, MAX_RECIPE_SIZE as u64).map_err(|e| {
            RecipeRefused::Refused(format!(
                "{}: {e} (a recipe needs the workspace's lockfile: cargo generate-lockfile)",
                lock_path.display()
            ))
        })?;
    // What the manifests and the lockfile say, checked as a builder checks it, before
    // cargo resolves anything (which may reach the network).
    let mut features = opts.features.clone();
    features.sort();
    features.dedup();
    let (toolchain, host) = match (&opts.toolchain, &opts.target) {
        (Some(t), Some(h)) => (t.clone(), h.clone()),
        _ => rustc_version(&root)?,
    };
    let recipe = Recipe {
        format: RECIPE_FORMAT,
        toolchain: opts.toolchain.clone().unwrap_or(toolchain),
        target: opts.target.clone().unwrap_or(host),
        profile: "release".into(),
        rustflags: opts.rustflags.clone().unwrap_or_else(rustflags_from_env),
        features,
        no_default_features: opts.no_default_features,
        all_features: opts.all_features,
        lockfile,
        manifests: recipe_manifests,
    };
    let size = recipe.to_cbor().len();
    if size > MAX_RECIPE_SIZE {
        return refused(format!(
            "the recipe is {size} bytes, more than {MAX_RECIPE_SIZE} (manifests and lockfile together)"
        ));
    }
    recipe
        .validate()
        .map_err(|e| RecipeRefused::Refused(e.to_string()))?;
    recipe
        .check_contents()
        .map_err(|e| RecipeRefused::Refused(e.to_string()))?;
    let resolved = cargo_metadata(cargo, opts, &["--locked"])?;
    check_sources(&resolved)?;
    Ok(recipe)
}

/// `path` relative to `root`, as a recipe path; `None` if outside it or not expressible.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let p = parts?.join("/");
    valid_recipe_path(&p).then_some(p)
}

fn read_manifest(path: &Path) -> Result<toml::Table, RecipeRefused> {
    let text = crate::node_dir::read_bounded_text(path, MAX_MANIFEST)
        .map_err(|e| RecipeRefused::Refused(format!("{}: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| {
        RecipeRefused::Refused(format!(
            "{}: {}",
            path.display(),
            first_line(&e.to_string())
        ))
    })
}

/// The same TOML with every table's keys in sorted order (whatever order the map keeps).
fn sorted(t: &toml::Table) -> toml::Table {
    let mut keys: Vec<&String> = t.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), sorted_value(&t[k])))
        .collect()
}

fn sorted_value(v: &toml::Value) -> toml::Value {
    match v {
        toml::Value::Table(t) => toml::Value::Table(sorted(t)),
        toml::Value::Array(a) => toml::Value::Array(a.iter().map(sorted_value).collect()),
        other => other.clone(),
    }
}

/// Every dependency table of a manifest: `[dependencies]` and its dev and build kinds, the
/// same under `[target.'…']`, `[workspace.dependencies]` and every `[patch.…]`; with its
/// name for messages.
fn dependency_tables(toml: &toml::Table) -> Vec<(String, &toml::Table)> {
    const KINDS: [&str; 4] = [
        "dependencies",
        "dev-dependencies",
        "dev_dependencies",
        "build-dependencies",
    ];
    fn kinds<'a>(t: &'a toml::Table, prefix: &str) -> Vec<(String, &'a toml::Table)> {
        KINDS
            .iter()
            .filter_map(|k| t.get(*k)?.as_table().map(|d| (format!("{prefix}{k}"), d)))
            .collect()
    }
    let mut out = Vec::new();
    out.extend(kinds(toml, ""));
    if let Some(targets) = toml.get("target").and_then(|t| t.as_table()) {
        for (cfg, t) in targets {
            if let Some(t) = t.as_table() {
                out.extend(kinds(t, &format!("target.{cfg}.")));
            }
        }
    }
    if let Some(ws) = toml.get("workspace").and_then(|t| t.as_table())
        && let Some(d) = ws.get("dependencies").and_then(|d| d.as_table())
    {
        out.push(("workspace.dependencies".into(), d));
    }
    if let Some(patch) = toml.get("patch").and_then(|t| t.as_table()) {
        for (source, t) in patch {
            if let Some(t) = t.as_table() {
                out.push((format!("patch.{source}"), t));
            }
        }
    }
    out
}

/// Refuses `git` dependencies and `path` dependencies that are not members.
fn check_dependencies(
    manifest: &str,
    toml: &toml::Table,
    root: &Path,
    members: &[PathBuf],
) -> Result<(), RecipeRefused> {
    let dir = root.join(manifest);
    let dir = dir.parent().unwrap_or(root);
    for (table, deps) in dependency_tables(toml) {
        for (name, spec) in deps {
            let Some(spec) = spec.as_table() else {
                continue;
            };
            if spec.contains_key("git") {
                return refused(format!(
                    "{manifest}: [{table}] {name} is a git dependency; a recipe builds crates.io packages only"
                ));
            }
            if let Some(path) = spec.get("path").and_then(|p| p.as_str()) {
                let target = normalize(&dir.join(path));
                if !target.starts_with(root) {
                    return refused(format!(
                        "{manifest}: [{table}] {name} is a path dependency outside the workspace ({path})"
                    ));
                }
                if !members.contains(&target) {
                    return refused(format!(
                        "{manifest}: [{table}] {name} is a path dependency that is not a workspace member ({path})"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `p` with `.` and `..` resolved lexically (no file system access: nothing is followed).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every package of the resolved graph comes from crates.io or is a member.
fn check_sources(meta: &serde_json::Value) -> Result<(), RecipeRefused> {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let id = p["id"].as_str().unwrap_or_default();
        let name = p["name"].as_str().unwrap_or("?");
        match p["source"].as_str() {
            None if members.contains(&id) => {}
            None => {
                return refused(format!(
                    "{name} is a path package outside the workspace's members"
                ));
            }
            Some("registry+https://github.com/rust-lang/crates.io-index") => {}
            Some(s) if s.starts_with("git+") => {
                return refused(format!(
                    "{name} comes from git ({s}); a recipe builds crates.io packages only"
                ));
            }
            Some(s) => {
                return refused(format!(
                    "{name} comes from {s}; a recipe builds crates.io packages only"
                ));
            }
        }
    }
    Ok(())
}

fn cargo_metadata(
    cargo: &dyn Fn() -> Command,
    opts: &RecipeOptions,
    extra: &[&str],
) -> Result<serde_json::Value, RecipeRefused> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1"]).args(extra);
    if let Some(m) = &opts.manifest_path {
        cmd.arg("--manifest-path").arg(m);
        // cargo reads `.cargo/config.toml` and `rust-toolchain.toml` from where it runs.
        if let Some(dir) = m.parent().filter(|d| d.is_dir()) {
            cmd.current_dir(dir);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| RecipeRefused::Cargo(format!("cargo metadata: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("--locked was passed") {
            return refused(
                "Cargo.lock does not match the workspace's manifests (cargo would change it): update it and commit it first",
            );
        }
        return Err(RecipeRefused::Cargo(format!(
            "cargo metadata: {}",
            last_error(&err)
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| RecipeRefused::Cargo(format!("cargo metadata: {e}")))
}

/// The version and host triple of the `rustc` on `PATH`, in the workspace (where its
/// `rust-toolchain.toml` applies).
fn rustc_version(root: &Path) -> Result<(String, String), RecipeRefused> {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-vV")
        .current_dir(root)
        .output()
        .map_err(|e| RecipeRefused::Cargo(format!("rustc -vV: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    match (field("release:"), field("host:")) {
        (Some(v), Some(h)) if out.status.success() => Ok((v, h)),
        _ => Err(RecipeRefused::Cargo(
            "rustc -vV: no release or host line".into(),
        )),
    }
}

/// RUSTFLAGS as cargo reads them from the environment.
fn rustflags_from_env() -> Vec<String> {
    if let Ok(enc) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        return enc
            .split('\x1f')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect();
    }
    std::env::var("RUSTFLAGS")
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn last_error(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}
