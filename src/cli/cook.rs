//! `cargo synchronicity cook` (issue 28): the workspace's dependencies, pre-built and
//! attested by a threshold of builders, unpacked into its target directory so that the next
//! `cargo build --release` compiles only the workspace's own crates.
//!
//! 1. The recipe of the workspace is read as `synchronicity recipe` reads it (RUSTFLAGS from
//!    the environment).
//! 2. `_recipe@<id>` is looked up with a proven answer (the light client's checks: threshold
//!    cosignature, inclusion, the index's default variant; absence is proven too); the entry
//!    must be reproduced and be THIS recipe's (its request names the recipe id asked for).
//! 3. Every file of the attested manifest is fetched from any member and checked against
//!    its sha256 before it is written — into a staging directory beside the target
//!    directory, never into it.
//! 4. Every staged file gets one modification time (cargo compares a unit's outputs with its
//!    dependencies' by mtime; one instant makes none newer than another), then the staging
//!    directory's `release/` is renamed into place. Where the target directory already holds a
//!    `release/`, the verified files are renamed into it one by one (each whole; a crash
//!    mid-way leaves some of them moved, each a verified file, and the staging directory,
//!    which the next `cook` removes).
//! 5. Cargo reuses a dependency's units only when its sources sit at the path the builders
//!    compiled them at, under `CARGO_HOME=/opt/rustwide/cargo-home` (docs/cache.md). `cook`
//!    makes that path a symlink to the user's cargo home where it may, and prints the
//!    `export` lines the build must run with (stdout; everything else goes to stderr), so a
//!    CI job runs `eval "$(cargo synchronicity cook)"` and then `cargo build --release`.
//!
//! A miss (proven absent, or no reproduced entry) exits non-zero with what to do, or with
//! `--fallback` exits 0 having changed nothing, and the build compiles everything itself.
//! With `--order URL` a miss is first ordered at a member that accepts recipes
//! (`http/recipes.rs`), and `--wait SECS` waits for the group's verdict before cooking.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::stream::{self, StreamExt};
use synchronicity_light::{Client, LightError, VerifiedBuild};
use synchronicity_verify::recipe::Recipe;
use synchronicity_verify::request::RECIPE_CRATE;

use super::client::{runtime, start};
use super::fetch::{PeerArgs, fetch_artifact_from};
use super::recipe::WorkspaceArgs;
use crate::builder::CARGO_HOME_IN_SANDBOX;
use crate::recipe::recipe_of;

/// Arguments of `cook`.
#[derive(Debug, Args)]
pub struct CookArgs {
    /// The workspace and its build's feature flags (as the build will use them).
    #[command(flatten)]
    pub workspace: WorkspaceArgs,
    /// On a miss or any failure to get a verified bundle, say so and exit 0 with nothing
    /// changed: the build then compiles every dependency itself.
    #[arg(long)]
    pub fallback: bool,
    /// On a proven miss, ask the member whose HTTP server is at URL to order the recipe (a
    /// member whose operator set `[light] accept_recipes`), e.g. `https://b1.example.org`.
    #[arg(long, value_name = "URL")]
    pub order: Option<String>,
    /// After ordering, wait up to SECS for the group's verdict, then cook.
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "order")]
    pub wait: u64,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// Files fetched at once (file i from the i-th of the given members on: each member
/// rate-limits a client on its own, 100 requests at once, then 50/s).
const FETCHES_AT_ONCE: usize = 8;

/// `cook`.
pub(super) fn cook(args: CookArgs) -> anyhow::Result<()> {
    match cook_all(&args) {
        Ok(()) => Ok(()),
        Err(e) if args.fallback => {
            eprintln!("{e:#}");
            eprintln!("--fallback: the build compiles what it lacks itself");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn cook_all(args: &CookArgs) -> anyhow::Result<()> {
    let recipe = recipe_of(&args.workspace.options())?;
    eprintln!("recipe {}", hex::encode(recipe.id()));
    let target_dir = target_directory(args.workspace.manifest_path.as_deref())?;
    // Checked before anything is fetched (units the build could not reuse are no use),
    // made only once the bundle is in place (a failed cook leaves no link).
    let link = BuildersPath::check()?;
    let mut result = cook_into(args, &recipe, &target_dir);
    if let (Err(e), Some(url)) = (&result, &args.order)
        && e.downcast_ref::<Miss>().is_some()
    {
        eprintln!("{e:#}");
        let ordered = order(url, &recipe)?;
        eprintln!("ordered at {url}: request {ordered}");
        let until = Instant::now() + Duration::from_secs(args.wait);
        while Instant::now() < until {
            std::thread::sleep(
                Duration::from_secs(10).min(until.saturating_duration_since(Instant::now())),
            );
            result = cook_into(args, &recipe, &target_dir);
            match &result {
                Ok(_) => break,
                Err(e) if e.downcast_ref::<Miss>().is_some() => {
                    eprintln!("waiting for the group's verdict on request {ordered}");
                }
                // Another failure (a member unreachable for a while): asked again until the
                // wait is over, the last answer kept.
                Err(e) => eprintln!("{e:#}; asking again"),
            }
        }
    }
    let files = result?;
    link.make()?;
    eprintln!(
        "cooked: {files} verified dependency files in {}",
        target_dir.join("release").display()
    );
    print_exports(&recipe);
    Ok(())
}

/// Fetches, verifies and unpacks the bundle of `recipe`; the number of files unpacked. One
/// cook at a time per target directory (a lock file beside it): a second waits.
fn cook_into(args: &CookArgs, recipe: &Recipe, target_dir: &Path) -> anyhow::Result<usize> {
    let setup = args.peers.setup()?;
    let deadline = args.peers.deadline();
    let id = recipe.id();
    let _lock = lock_beside(target_dir, deadline.at)?;
    let staging = staging_dir(target_dir)?;
    runtime()?
        .block_on(async {
            let client = start(&setup).await?;
            let result = async {
                let v = verified_recipe(&client, &id).await?;
                let manifest = v.manifest();
                // File i asks the members from the i-th on: the files spread over them.
                let mut fetched = stream::iter(manifest.files().map(|(p, _)| p).enumerate())
                    .map(|(i, path)| {
                        let client = &client;
                        async move {
                            let bytes =
                                fetch_artifact_from(client, manifest, path, i, deadline).await?;
                            anyhow::Ok((path, bytes))
                        }
                    })
                    .buffer_unordered(FETCHES_AT_ONCE);
                let mut bytes_fetched = 0u64;
                while let Some(file) = fetched.next().await {
                    let (path, bytes) = file?;
                    bytes_fetched += bytes.len() as u64;
                    // File writes off the async loop (the other fetches go on meanwhile).
                    tokio::task::block_in_place(|| stage(&staging, path, &bytes))?;
                }
                eprintln!(
                    "fetched and verified {} files, {bytes_fetched} bytes (entry {} of the log)",
                    manifest.len(),
                    v.proof().record().index()
                );
                anyhow::Ok(manifest.len())
            }
            .await;
            client.shutdown().await;
            result
        })
        .and_then(|n| {
            unpack(&staging, target_dir)?;
            Ok(n)
        })
        .inspect_err(|_| {
            // Nothing of a failed cook stays: the target directory was never written.
            let _ = std::fs::remove_dir_all(&staging);
        })
}

/// An exclusive lock on `.<target name>.cook.lock` beside the target directory, held
/// while the returned file lives (released by the kernel if the process dies); waited for
/// until `until`.
fn lock_beside(target_dir: &Path, until: Instant) -> anyhow::Result<std::fs::File> {
    let (parent, name) = beside(target_dir)?;
    std::fs::create_dir_all(&parent).with_context(|| parent.display().to_string())?;
    let path = parent.join(format!(".{name}.cook.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("{}: another cook holds it (--timeout)", path.display())
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| path.display().to_string());
            }
        }
    }
}

/// The target directory's parent and name.
fn beside(target_dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let parent = target_dir
        .parent()
        .context("the target directory has no parent")?;
    let name = target_dir
        .file_name()
        .context("the target directory has no name")?
        .to_string_lossy()
        .into_owned();
    Ok((parent.to_path_buf(), name))
}

/// A proven miss: the group has no reproduced build of the recipe (yet).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Miss(String);

/// Asks the member at `url` to order `recipe` (`POST /recipe`); the request id it gives.
fn order(url: &str, recipe: &Recipe) -> anyhow::Result<String> {
    let endpoint = format!("{}/recipe", url.trim_end_matches('/'));
    let resp = attohttpc::post(&endpoint)
        .header("Content-Type", "application/cbor")
        .bytes(recipe.to_cbor())
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .with_context(|| format!("ordering the recipe at {endpoint}"))?;
    let status = resp.status();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(resp, 4096), &mut text)
        .with_context(|| format!("ordering the recipe at {endpoint}"))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if !status.is_success() {
        bail!("{endpoint} did not order the recipe: {status}: {line}");
    }
    if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{endpoint} answered {line:?}, not a request id");
    }
    Ok(line)
}

/// The reproduced entry of `_recipe@<id>` with its attested manifest, bound to `id`.
async fn verified_recipe(client: &Client, id: &[u8; 32]) -> anyhow::Result<VerifiedBuild> {
    let version = hex::encode(id);
    let v = client
        .reproduced(RECIPE_CRATE, &version)
        .await
        .map_err(|e| match e {
            LightError::Absent { .. } | LightError::NotReproduced { .. } => {
                anyhow::Error::new(Miss(format!(
                    "recipe {version}: {e}: the group has no reproduced build of it; a member orders it (`synchronicity submit --recipe PATH --node DIR`, or `cook --order URL` where a member accepts recipes)"
                )))
            }
            e => anyhow::anyhow!("recipe {version}: {e}"),
        })?;
    // The light client checked that the entry answers `_recipe@<id>`; the recipe id is the
    // request's `source_sha256` as well, checked again here where it matters.
    if v.proof().record().entry().request.recipe_id() != Some(*id) {
        bail!("recipe {version}: the proven entry is not this recipe's");
    }
    Ok(v)
}

/// The target directory cargo uses for the workspace (`CARGO_TARGET_DIR` and config
/// included), from `cargo metadata`.
fn target_directory(manifest_path: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
    cmd.args(["metadata", "--no-deps", "--format-version", "1"]);
    if let Some(p) = manifest_path {
        cmd.arg("--manifest-path").arg(p);
    }
    let out = cmd.output().context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata: no target_directory")
}

/// A fresh staging directory beside `target_dir` (same filesystem, so renames move).
/// Staging directories a crashed `cook` left are removed first (under the lock of
/// [`lock_beside`], so never a running cook's).
fn staging_dir(target_dir: &Path) -> anyhow::Result<PathBuf> {
    let (parent, name) = beside(target_dir)?;
    let prefix = format!(".{name}.cook-");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let dir = parent.join(format!("{prefix}{}", hex::encode(nonce)));
    std::fs::create_dir(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

/// Where a bundle's files may go: cargo's unit directories of the release profile.
const UNIT_PREFIXES: [&str; 3] = ["release/deps/", "release/build/", "release/.fingerprint/"];

/// Writes one verified file under `staging` at its manifest path (relative, no `.` or `..`
/// components: `Manifest::parse` checked), never over an existing one.
fn stage(staging: &Path, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    if !UNIT_PREFIXES.iter().any(|p| path.starts_with(p)) {
        bail!("the attested bundle lists {path}, outside target/release's unit directories");
    }
    let to = staging.join(path);
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&to)
        .with_context(|| to.display().to_string())?;
    f.write_all(bytes)
        .with_context(|| to.display().to_string())?;
    Ok(())
}

/// Gives every staged file one mtime, then moves `staging/release` into `target_dir`
/// (see the module doc), and removes `staging`.
fn unpack(staging: &Path, target_dir: &Path) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now();
    let mut files = Vec::new();
    walk_files(staging, &mut files)?;
    for f in &files {
        let file = std::fs::File::options()
            .write(true)
            .open(f)
            .with_context(|| f.display().to_string())?;
        file.set_modified(now)
            .with_context(|| f.display().to_string())?;
        file.sync_all().with_context(|| f.display().to_string())?;
    }
    std::fs::create_dir_all(target_dir).with_context(|| target_dir.display().to_string())?;
    let release = target_dir.join("release");
    let staged = staging.join("release");
    // Every staged directory durable before it is moved (a crash after the rename must not
    // find a directory whose entries were never written).
    let mut staged_dirs: Vec<PathBuf> = files
        .iter()
        .flat_map(|f| f.ancestors().skip(1).take_while(|d| d.starts_with(staging)))
        .map(Path::to_path_buf)
        .collect();
    staged_dirs.sort();
    staged_dirs.dedup();
    for dir in &staged_dirs {
        sync_dir(dir)?;
    }
    let mut moved_into = std::collections::BTreeSet::new();
    if !release.exists() {
        // One rename: the whole of release/ appears at once, or (crash before) none of it.
        std::fs::rename(&staged, &release).with_context(|| release.display().to_string())?;
        moved_into.insert(target_dir.to_path_buf());
    } else {
        for f in &files {
            let rel = f
                .strip_prefix(staging)
                .context("a staged file outside staging")?;
            let to = target_dir.join(rel);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
                // The directory and every one above it up to the target directory (some
                // may be new).
                moved_into.extend(
                    dir.ancestors()
                        .take_while(|d| d.starts_with(target_dir))
                        .map(Path::to_path_buf),
                );
            }
            std::fs::rename(f, &to).with_context(|| to.display().to_string())?;
        }
    }
    // The renames durable before cook says it is done.
    for dir in &moved_into {
        sync_dir(dir)?;
    }
    std::fs::remove_dir_all(staging).with_context(|| staging.display().to_string())?;
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| dir.display().to_string())
}

/// Every regular file below `dir` (the staging directory: written by `stage` only).
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            walk_files(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The builders' cargo-home path, [`CARGO_HOME_IN_SANDBOX`], as the user's build needs it:
/// the user's cargo home (`CARGO_HOME`, else `~/.cargo`) reachable there. Whoever can
/// replace that link chooses the cargo home (its config, its sources) the user's build
/// reads, so every directory above it and the link itself must belong to root or this user
/// and be writable by no one else.
enum BuildersPath {
    /// The path already leads to the user's cargo home.
    There,
    /// A symlink to `home` is to be made (and the directories above it, mode 0755).
    Make { home: PathBuf },
}

impl BuildersPath {
    /// Checks the path and what is above it; says what [`BuildersPath::make`] will do.
    /// Where this user may not make the link, says the one command that does.
    fn check() -> anyhow::Result<Self> {
        let builders = Path::new(CARGO_HOME_IN_SANDBOX);
        let home = match std::env::var_os("CARGO_HOME") {
            Some(h) => PathBuf::from(h),
            None => PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME")?)
                .join(".cargo"),
        };
        std::fs::create_dir_all(&home).with_context(|| home.display().to_string())?;
        let home = std::fs::canonicalize(&home).with_context(|| home.display().to_string())?;
        // Linux only, as the project: the owner of /proc/self is this process's user.
        let me = std::fs::metadata("/proc/self")
            .context("cannot tell this process's user (/proc/self)")?
            .uid();
        let parent = builders.parent().unwrap_or(Path::new("/"));
        let mut nearest = None;
        for dir in parent.ancestors() {
            let Ok(m) = std::fs::symlink_metadata(dir) else {
                continue;
            };
            nearest.get_or_insert((dir, m.uid()));
            if m.file_type().is_symlink()
                || (m.uid() != 0 && m.uid() != me)
                || m.mode() & 0o022 != 0
            {
                bail!(
                    "{} is a link, or belongs to another user, or others may write it: it cannot guard {CARGO_HOME_IN_SANDBOX}",
                    dir.display()
                );
            }
        }
        match std::fs::symlink_metadata(builders) {
            Ok(m) if m.uid() != 0 && m.uid() != me => bail!(
                "{CARGO_HOME_IN_SANDBOX} belongs to another user (uid {}): not trusted",
                m.uid()
            ),
            Ok(_) if std::fs::canonicalize(builders).is_ok_and(|p| p == home) => {
                return Ok(Self::There);
            }
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{CARGO_HOME_IN_SANDBOX} is a symlink to another directory, not to {}: `ln -sfn {} {CARGO_HOME_IN_SANDBOX}` makes cargo reuse the cooked units",
                home.display(),
                home.display()
            ),
            Ok(_) => bail!(
                "{CARGO_HOME_IN_SANDBOX} exists and is not your cargo home ({}); cargo reuses the cooked units only with the sources at that path (docs/cache.md)",
                home.display()
            ),
            Err(_) => {}
        }
        // The nearest existing directory is root's or ours, and no one else may write it:
        // only its owner can make the rest.
        if me != 0 && nearest.is_some_and(|(_, owner)| owner != me) {
            bail!(
                "cannot make {CARGO_HOME_IN_SANDBOX} as this user; run `sudo mkdir -p {} && sudo ln -s {} {CARGO_HOME_IN_SANDBOX}` once",
                parent.display(),
                home.display()
            );
        }
        Ok(Self::Make { home })
    }

    /// Makes the link [`BuildersPath::check`] planned.
    fn make(&self) -> anyhow::Result<()> {
        let Self::Make { home } = self else {
            return Ok(());
        };
        let builders = Path::new(CARGO_HOME_IN_SANDBOX);
        let parent = builders.parent().unwrap_or(Path::new("/"));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .and_then(|_| std::os::unix::fs::symlink(home, builders))
            .with_context(|| {
                format!(
                    "making {CARGO_HOME_IN_SANDBOX} a symlink to {}",
                    home.display()
                )
            })?;
        eprintln!("{CARGO_HOME_IN_SANDBOX} -> {}", home.display());
        Ok(())
    }
}

/// The environment the build must run with to match the recipe, as shell `export` lines.
fn print_exports(recipe: &Recipe) {
    println!("export CARGO_HOME={CARGO_HOME_IN_SANDBOX}");
    if !recipe.rustflags.is_empty() {
        // CARGO_ENCODED_RUSTFLAGS: one argument per 0x1f-separated field, as the recipe
        // holds them; single-quoted for the shell (the allowlist admits no quote).
        println!(
            "export CARGO_ENCODED_RUSTFLAGS='{}'",
            recipe.rustflags.join("\u{1f}")
        );
    }
}
