//! The reproducible builder: crates.io sources built in sandboxes, hashed into a manifest.
//!
//! Phases: **resolve** (sparse index: cksum, yanked), **fetch** (the `.crate`, checked
//! against the cksum, and every dependency of the request's `Cargo.lock` on the host, checked
//! by cargo against the lockfile), **prepare** (pristine unpack + the request's lockfile),
//! **build** (`cargo build --locked --offline` in a sandbox with no network, a read-only
//! source and fixed paths), **hash** (the [`Manifest`] of the crate's own artifacts).
//!
//! Two backends, one result: [`Backend::Docker`] (rustwide, a local image) and
//! [`Backend::Sandbox`] (bubblewrap over the same root filesystem). `auto` picks Docker when
//! an engine answers. What makes the bytes equal is in `docs/reproducibility.md`.

mod artifacts;
mod dev_deps;
mod docker;
mod limits;
pub(crate) use limits::BuildCgroup;
mod output;
mod recipe_build;
mod sandbox;
mod sources;
mod swarm;
mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use artifacts::{MAX_FILE as MAX_ARTIFACT_FILE, RefusedArtifact, names_from_messages};
pub use dev_deps::strip_dev_dependencies;
pub use docker::{DEFAULT_IMAGE, engine_available, image_id};
pub use sandbox::{BUILD_UID, DEFAULT_ROOTFS, SOURCE_IN_SANDBOX};
pub use sources::{
    CRATES_IO_DL, CRATES_IO_INDEX, IndexEntry, IndexPoll, Registry, SourceError, index_path,
    index_versions, newest_release, parse_index, unpack_crate,
};
pub use swarm::swarm_manager;
pub use synchronicity_verify::manifest::{MAX_MANIFEST_SIZE, Manifest, ManifestError};
pub use workspace::{BuildWorkspace, toolchain_installed};

use crate::request::{BuildRequest, PinnedRequest, REQUEST_FORMAT};
use synchronicity_verify::recipe::Recipe;

/// `CARGO_HOME` inside every sandbox: the registry sources' path, which cargo hashes into a
/// dependency's fingerprint, so a user's build reuses cooked units only with its cargo home
/// reachable here (`cook`, docs/cache.md).
pub const CARGO_HOME_IN_SANDBOX: &str = "/opt/rustwide/cargo-home";

/// A fixed `SOURCE_DATE_EPOCH` (1980-01-01): tools that embed a time embed this one.
pub const SOURCE_DATE_EPOCH: &str = "315532800";

/// The build settings a submitter asks for beyond the default variant: cargo's feature
/// flags (issue 27). The request carries the result as an explicit, sorted feature list
/// and `no_default_features`; `all_features` is resolved at pin time into every feature the
/// crate declares (cargo's own list, optional dependencies' implicit features included),
/// so the request format needs no field for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    /// Features to enable (`--features a,b`).
    #[serde(default)]
    pub features: Vec<String>,
    /// `--no-default-features`.
    #[serde(default)]
    pub no_default_features: bool,
    /// `--all-features`: every feature the crate declares.
    #[serde(default)]
    pub all_features: bool,
}

/// Why a build could not even be attempted (a failed COMPILE is an [`Outcome`], not this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Resolving or downloading sources.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The workspace could not be laid out.
    #[error("build workspace: {0}")]
    Workspace(String),
    /// Dependencies could not be fetched.
    #[error("fetching dependencies: {0}")]
    Fetch(String),
    /// The backend is unavailable or misconfigured.
    #[error("backend: {0}")]
    Backend(String),
    /// The request is not for this builder (toolchain) or invalid.
    #[error("request: {0}")]
    Request(String),
}

/// Which sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Docker when an engine answers, else the sandbox.
    Auto,
    /// A Docker container per build.
    Docker,
    /// bubblewrap, no Docker engine needed.
    Sandbox,
    /// A Docker Swarm job per build, on this engine's swarm (`swarm.rs`).
    Swarm,
}

/// Why a build failed: defined once, in `synchronicity_verify`, beside the failure digest
/// a log entry names.
pub use synchronicity_verify::entry::FailureClass;

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Artifacts and their manifest.
    Success(Manifest),
    /// No artifacts.
    Failure {
        /// Class.
        class: FailureClass,
        /// One line.
        reason: String,
    },
}

impl Outcome {
    /// The digest committed to: the manifest digest, or for a failure
    /// `SHA-256("synchronicity/build-failure/v1\n<class>\n")`, so failures of one class agree.
    pub fn digest(&self) -> [u8; 32] {
        match self {
            Outcome::Success(m) => m.digest(),
            Outcome::Failure { class, .. } => class.digest(),
        }
    }
}

/// Resource limits of one build, each for its WHOLE process tree (see `limits.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of memory.
    pub memory: u64,
    /// Processes and threads at once.
    pub processes: u32,
    /// Bytes of disk for the target directory and `/tmp`.
    pub disk: u64,
    /// Wall time.
    pub time: Duration,
    /// `cargo -j` (does not change the output: codegen units come from the profile).
    pub jobs: u32,
    /// Bytes of stdout and stderr together; past it the build is killed (`output-limit`).
    pub output: u64,
    /// Bytes of artifacts copied out of the build in all (each file at most
    /// [`MAX_ARTIFACT_FILE`] too).
    pub artifacts: u64,
}

impl Default for Limits {
    /// 4 GiB, 4,096 processes, 16 GiB of disk, 30 minutes, the machine's parallelism, 8 MiB
    /// of output, 4 GiB of artifacts.
    fn default() -> Self {
        Self {
            memory: 4 << 30,
            processes: 4096,
            disk: 16 << 30,
            time: Duration::from_secs(30 * 60),
            output: 8 << 20,
            artifacts: 4 << 30,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(2),
        }
    }
}

/// The steps of one build, for progress display (not a round's phase: that is
/// [`synchronicity_verify::Phase`]). Serialised as its name ([`Phase::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Looking the crate up in the index.
    Resolve,
    /// Downloading the crate and its dependencies.
    Fetch,
    /// Unpacking, writing the lockfile.
    Prepare,
    /// Compiling in the sandbox.
    Build,
    /// Hashing artifacts.
    Hash,
}

impl Phase {
    /// Its name: `resolve`, `fetch`, `prepare`, `build` or `hash`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Fetch => "fetch",
            Self::Prepare => "prepare",
            Self::Build => "build",
            Self::Hash => "hash",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Time spent per phase.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Durations {
    /// Seconds resolving.
    pub resolve: f64,
    /// Seconds fetching.
    pub fetch: f64,
    /// Seconds preparing.
    pub prepare: f64,
    /// Seconds building.
    pub build: f64,
    /// Seconds hashing.
    pub hash: f64,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The request.
    pub request: BuildRequest,
    /// Result.
    pub outcome: Outcome,
    /// `docker`, `swarm` or `sandbox`.
    pub backend: &'static str,
    /// Docker image id, or the root filesystem's package-set id.
    pub image_id: String,
    /// Per phase.
    pub durations: Durations,
    /// The build log, kept.
    pub log_path: PathBuf,
    /// Host paths of the artifacts: copies in `<work dir>/artifacts/<request id>/` (the
    /// build's own disk is gone when the build ends).
    pub artifacts: Vec<(String, PathBuf)>,
}

/// A request's job name, `crate-version-<16 hex digits of its id>`: its source directory's
/// name, and what a swarm job is labelled with (a restarted node finds its job by it).
fn job_name(req: &BuildRequest) -> String {
    format!(
        "{}-{}-{}",
        req.krate,
        req.version,
        &hex::encode(req.id())[..16]
    )
}

/// A finished build of a recipe's dependencies.
#[derive(Debug, Clone)]
pub struct RecipeReport {
    /// The recipe's id.
    pub recipe_id: [u8; 32],
    /// Result: the manifest of every dependency unit's file, or the failure.
    pub outcome: Outcome,
    /// The build log, kept.
    pub log_path: PathBuf,
    /// Host copies of the units' files (`<work dir>/artifacts/recipe-<id>/`), by name.
    pub units: Vec<(String, PathBuf)>,
}

pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) toolchain: String,
    pub(crate) source: PathBuf,
    pub(crate) cargo_args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) limits: Limits,
}

pub(crate) struct RunOutput {
    pub(crate) result: Result<(), (FailureClass, String)>,
    /// Cargo's JSON messages: hints only (`artifacts.rs`).
    pub(crate) json: Vec<String>,
    pub(crate) log: String,
    pub(crate) target_dir: Option<PathBuf>,
    /// The build's disk, mounted until the artifacts are hashed and copied out.
    pub(crate) disk: Option<limits::DiskLimit>,
}

enum Sandboxes {
    Docker(docker::DockerBackend),
    Swarm(swarm::SwarmBackend),
    Sandbox(sandbox::SandboxBackend),
}

/// Builds requests for one toolchain in one work directory.
pub struct Builder {
    ws: BuildWorkspace,
    registry: Registry,
    sandbox: Sandboxes,
    limits: Limits,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("root", &self.ws.root())
            .field("backend", &self.backend_name())
            .finish()
    }
}

/// Configuration of a [`Builder`].
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// Work directory (workspace, caches, logs).
    pub work_dir: PathBuf,
    /// Toolchain version, e.g. `1.95.0`.
    pub toolchain: String,
    /// Which sandbox.
    pub backend: Backend,
    /// Docker image tag.
    pub image: String,
    /// Root filesystem of the sandbox backend.
    pub rootfs: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// Another registry than crates.io (a mirror; tests use one on loopback): its sparse
    /// index URL and its download base (`<dl>/<name>/<name>-<version>.crate`). Host-side
    /// cargo uses it by source replacement, so lockfiles still name crates.io.
    pub registry: Option<(String, String)>,
    /// Backend `swarm`: build on the swarm's worker nodes labelled
    /// `synchronicity.worker=true` (their engines at their `synchronicity.engine` label),
    /// not on this node.
    pub swarm_workers: bool,
}

impl BuilderConfig {
    /// Defaults: backend auto, the image and root filesystem of `scripts/build-image.sh`.
    pub fn new(work_dir: &Path, toolchain: &str) -> Self {
        Self {
            work_dir: work_dir.to_path_buf(),
            toolchain: toolchain.into(),
            backend: Backend::Auto,
            image: DEFAULT_IMAGE.into(),
            rootfs: PathBuf::from(DEFAULT_ROOTFS),
            limits: Limits::default(),
            registry: None,
            swarm_workers: false,
        }
    }
}

impl Builder {
    /// Lays out the workspace and picks the backend.
    pub fn new(cfg: &BuilderConfig) -> Result<Self, BuildError> {
        let ws = BuildWorkspace::prepare(
            &cfg.work_dir,
            &cfg.toolchain,
            cfg.registry.as_ref().map(|(index, _)| index.as_str()),
        )?;
        let registry = match &cfg.registry {
            Some((index, dl)) => Registry::with_urls(index, dl, &ws.crate_cache()),
            None => Registry::crates_io(&ws.crate_cache()),
        };
        let backend = match cfg.backend {
            Backend::Auto if engine_available() => Backend::Docker,
            Backend::Auto => Backend::Sandbox,
            b => b,
        };
        let sandbox = match backend {
            Backend::Docker => docker::DockerBackend::new(&ws, &cfg.image).map(Sandboxes::Docker),
            Backend::Swarm => {
                swarm::SwarmBackend::new(&ws, &cfg.image, cfg.swarm_workers).map(Sandboxes::Swarm)
            }
            _ => sandbox::SandboxBackend::new(&ws, &cfg.rootfs).map(Sandboxes::Sandbox),
        };
        // A crashed build may have left its disk mounted; a swarm job that still runs keeps
        // its disk (the backend re-attaches to it).
        let keep = match &sandbox {
            Ok(Sandboxes::Swarm(b)) => b.kept_disks(),
            _ => Vec::new(),
        };
        limits::sweep_stale(ws.root(), &ws.disks(), &keep);
        let sandbox = sandbox?;
        Ok(Self {
            ws,
            registry,
            sandbox,
            limits: cfg.limits,
        })
    }

    /// `docker`, `swarm` or `sandbox`.
    pub fn backend_name(&self) -> &'static str {
        match self.sandbox {
            Sandboxes::Docker(_) => "docker",
            Sandboxes::Swarm(_) => "swarm",
            Sandboxes::Sandbox(_) => "sandbox",
        }
    }

    /// The image id in use.
    pub fn image_id(&self) -> String {
        match &self.sandbox {
            Sandboxes::Docker(d) => d.image_id().to_string(),
            Sandboxes::Swarm(d) => d.image_id().to_string(),
            Sandboxes::Sandbox(s) => s.image_id().to_string(),
        }
    }

    /// The registry sources come from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The workspace.
    pub fn workspace(&self) -> &BuildWorkspace {
        &self.ws
    }

    /// Pins every input of `name@version`: resolves it, fetches it, and takes its shipped
    /// `Cargo.lock`, or `lockfile` if given, or generates one ONCE (online, on the host) —
    /// which is why the lockfile travels in the request.
    pub fn pin(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
        target: &str,
    ) -> Result<PinnedRequest, BuildError> {
        self.pin_variant(name, version, lockfile, target, &Variant::default())
    }

    /// [`Builder::pin`] with the feature flags of `variant`: features the crate does not
    /// declare are refused here, with their names, not at build time.
    pub fn pin_variant(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
        target: &str,
        variant: &Variant,
    ) -> Result<PinnedRequest, BuildError> {
        let entry = self.registry.resolve(name, version)?;
        let file = self.registry.fetch(name, version, &entry.cksum)?;
        let dir = self.ws.sources().join(format!("pin-{name}-{version}"));
        let _ = std::fs::remove_dir_all(&dir);
        let shipped = unpack_crate(&file, name, version, &dir)?;
        let stripped = strip_manifest(&dir)?;
        let (lockfile, lockfile_shipped) = match (lockfile, shipped) {
            (Some(l), shipped) => {
                let same = shipped.as_deref() == Some(l.as_str());
                (l, same)
            }
            (None, Some(s)) => (s, true),
            (None, None) => (self.generate_lockfile(&dir)?, false),
        };
        // The packages only dev-dependencies needed leave the lockfile (cargo keeps every
        // other locked version); the result is what the request pins.
        let lockfile = if stripped {
            self.prune_lockfile(&dir, &lockfile)?
        } else {
            lockfile
        };
        let features = if variant.features.is_empty() && !variant.all_features {
            Vec::new()
        } else {
            let declared = self.declared_features(&dir)?;
            let mut features = if variant.all_features {
                declared.clone()
            } else {
                variant.features.clone()
            };
            features.sort();
            features.dedup();
            if let Some(f) = features.iter().find(|f| !declared.contains(f)) {
                return Err(BuildError::Request(format!(
                    "{name}@{version} declares no feature {f:?}"
                )));
            }
            if features.len() > crate::request::MAX_FEATURES {
                return Err(BuildError::Request(format!(
                    "{} features for {name}@{version}, more than a request may list ({})",
                    features.len(),
                    crate::request::MAX_FEATURES
                )));
            }
            features
        };
        let _ = std::fs::remove_dir_all(&dir);
        let request = BuildRequest {
            format: REQUEST_FORMAT,
            krate: name.into(),
            version: version.into(),
            source_sha256: entry.cksum.to_vec(),
            lockfile_sha256: Vec::new(),
            lockfile_shipped,
            toolchain: self.ws.toolchain().into(),
            target: target.into(),
            profile: "release".into(),
            features,
            no_default_features: variant.no_default_features,
            lib: true,
            bins: true,
            attempt: 1,
        };
        let pinned = PinnedRequest::new(request, lockfile);
        pinned
            .validate()
            .map_err(|e| BuildError::Request(format!("{name}@{version}: {e}")))?;
        Ok(pinned)
    }

    /// Every feature the (stripped) crate in `dir` declares, by cargo's own reading
    /// (`cargo metadata --no-deps`: explicit features and optional dependencies' implicit
    /// ones), without `default`.
    fn declared_features(&self, dir: &Path) -> Result<Vec<String>, BuildError> {
        let out = self
            .ws
            .host_cargo()
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_NET_OFFLINE", "false")
            .output()
            .map_err(|e| BuildError::Fetch(e.to_string()))?;
        if !out.status.success() {
            return Err(BuildError::Fetch(format!(
                "reading the crate's features: {}",
                last_error_line(&out.stderr)
            )));
        }
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| BuildError::Fetch(format!("cargo metadata: {e}")))?;
        let mut features: Vec<String> = meta["packages"][0]["features"]
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "default").cloned().collect())
            .unwrap_or_default();
        features.sort();
        Ok(features)
    }

    /// Re-resolves `lockfile` against the (stripped) manifest in `dir`, online, on the host.
    fn prune_lockfile(&self, dir: &Path, lockfile: &str) -> Result<String, BuildError> {
        std::fs::write(dir.join("Cargo.lock"), lockfile)
            .map_err(|e| BuildError::Workspace(e.to_string()))?;
        let out = self
            .ws
            .host_cargo()
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_NET_OFFLINE", "false")
            .output()
            .map_err(|e| BuildError::Fetch(e.to_string()))?;
        if !out.status.success() {
            return Err(BuildError::Fetch(format!(
                "pruning the lockfile of dev-dependencies: {}",
                last_error_line(&out.stderr)
            )));
        }
        std::fs::read_to_string(dir.join("Cargo.lock"))
            .map_err(|e| BuildError::Fetch(e.to_string()))
    }

    fn generate_lockfile(&self, dir: &Path) -> Result<String, BuildError> {
        let out = self
            .ws
            .host_cargo()
            .args(["generate-lockfile", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_NET_OFFLINE", "false")
            .output()
            .map_err(|e| BuildError::Fetch(e.to_string()))?;
        if !out.status.success() {
            return Err(BuildError::Fetch(format!(
                "generate-lockfile: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::read_to_string(dir.join("Cargo.lock"))
            .map_err(|e| BuildError::Fetch(e.to_string()))
    }

    /// Builds a pinned request.
    pub fn build(
        &self,
        pinned: &PinnedRequest,
        progress: &dyn Fn(Phase),
    ) -> Result<BuildReport, BuildError> {
        let req = &pinned.request;
        pinned
            .validate()
            .map_err(|e| BuildError::Request(e.to_string()))?;
        if req.toolchain != self.ws.toolchain() {
            return Err(BuildError::Request(format!(
                "toolchain {} but this builder has {}",
                req.toolchain,
                self.ws.toolchain()
            )));
        }
        let recipe = pinned
            .recipe()
            .map_err(|e| BuildError::Request(e.to_string()))?;
        if let Some(recipe) = recipe {
            let t = Instant::now();
            let r = self.build_recipe(&recipe, progress)?;
            return Ok(BuildReport {
                request: req.clone(),
                outcome: r.outcome,
                backend: self.backend_name(),
                image_id: self.image_id(),
                durations: Durations {
                    build: t.elapsed().as_secs_f64(),
                    ..Durations::default()
                },
                log_path: r.log_path,
                artifacts: r.units,
            });
        }
        let mut d = Durations::default();
        let source = self.ws.sources().join(job_name(req));
        if let Sandboxes::Swarm(b) = &self.sandbox
            && b.has_kept(&job_name(req))
        {
            // A swarm job a predecessor started for this request still runs, reading this
            // source: it is neither fetched nor unpacked again (`swarm.rs`).
            return self.build_dir(req.clone(), &source, d, progress);
        }
        let t = Instant::now();
        progress(Phase::Fetch);
        let sha: [u8; 32] = req
            .source_sha256
            .as_slice()
            .try_into()
            .expect("validated length");
        let file = self.registry.fetch(&req.krate, &req.version, &sha)?;
        d.fetch = t.elapsed().as_secs_f64();

        let t = Instant::now();
        progress(Phase::Prepare);
        let _ = std::fs::remove_dir_all(&source);
        let shipped = unpack_crate(&file, &req.krate, &req.version, &source)?;
        let stripped = strip_manifest(&source)?;
        // A request that says its lockfile is the one the `.crate` ships must carry exactly
        // that one (pruned of dev-dependencies as `pin` does): the default variant of a
        // release is the crate's own, not the first submitter's choice.
        if req.lockfile_shipped {
            let lie = match shipped {
                None => Some("the request says the .crate ships a lockfile, and it ships none"),
                Some(s) => {
                    let s = if stripped {
                        self.prune_lockfile(&source, &s)?
                    } else {
                        s
                    };
                    (s != pinned.lockfile).then_some(
                        "the request says its lockfile is the one the .crate ships, and it is not",
                    )
                }
            };
            if let Some(reason) = lie {
                d.prepare = t.elapsed().as_secs_f64();
                return self.refused(req.clone(), FailureClass::InvalidRequest, reason, d);
            }
        }
        std::fs::write(source.join("Cargo.lock"), &pinned.lockfile)
            .map_err(|e| BuildError::Workspace(e.to_string()))?;
        d.prepare = t.elapsed().as_secs_f64();

        let t = Instant::now();
        progress(Phase::Fetch);
        self.ws.fetch_dependencies(&source)?;
        d.fetch += t.elapsed().as_secs_f64();
        self.build_dir(req.clone(), &source, d, progress)
    }

    /// Builds the dependencies of `recipe` in the sandbox (`recipe_build.rs`): the skeleton
    /// written and read back into the same recipe with this builder's cargo (so every check
    /// of a client's reader holds, whoever submitted it), its dependencies fetched on the
    /// host, the workspace built, and every dependency unit's file taken from the build's
    /// disk into the manifest.
    pub fn build_recipe(
        &self,
        recipe: &Recipe,
        progress: &dyn Fn(Phase),
    ) -> Result<RecipeReport, BuildError> {
        recipe
            .validate()
            .map_err(|e| BuildError::Request(e.to_string()))?;
        if recipe.toolchain != self.ws.toolchain() {
            return Err(BuildError::Request(format!(
                "toolchain {} but this builder has {}",
                recipe.toolchain,
                self.ws.toolchain()
            )));
        }
        let host = env!("SYNCHRONICITY_HOST_TRIPLE");
        if recipe.target != host {
            return Err(BuildError::Request(format!(
                "target {}: recipes are built for the builders' host, {host}",
                recipe.target
            )));
        }
        let id = recipe.id();
        // The whole id: a job's name keys its source, its disk and a swarm re-attach.
        let name = format!("recipe-{}", hex::encode(id));
        let log_path = self
            .ws
            .root()
            .join("logs")
            .join(format!("recipe-{}.log", hex::encode(id)));
        std::fs::create_dir_all(self.ws.root().join("logs"))
            .map_err(|e| BuildError::Workspace(e.to_string()))?;
        progress(Phase::Prepare);
        // What the manifests and the lockfile say, before any file is written or any cargo
        // runs on them: a submitter may have skipped every check of the client's reader.
        if let Err(e) = recipe.check_contents() {
            std::fs::write(&log_path, format!("[refused] invalid-request: {e}\n"))
                .map_err(|e| BuildError::Workspace(e.to_string()))?;
            return Ok(RecipeReport {
                recipe_id: id,
                outcome: Outcome::Failure {
                    class: FailureClass::InvalidRequest,
                    reason: e.to_string(),
                },
                log_path,
                units: Vec::new(),
            });
        }
        let source = self.ws.sources().join(&name);
        recipe_build::write_skeleton(recipe, &source)?;
        let online = || {
            let mut c = self.ws.host_cargo();
            c.env("CARGO_NET_OFFLINE", "false");
            c
        };
        let opts = crate::recipe::RecipeOptions {
            manifest_path: Some(source.join("Cargo.toml")),
            toolchain: Some(recipe.toolchain.clone()),
            target: Some(recipe.target.clone()),
            features: recipe.features.clone(),
            no_default_features: recipe.no_default_features,
            all_features: recipe.all_features,
            rustflags: Some(recipe.rustflags.clone()),
        };
        let refused = |reason: String| -> Result<RecipeReport, BuildError> {
            std::fs::write(&log_path, format!("[refused] invalid-request: {reason}\n"))
                .map_err(|e| BuildError::Workspace(e.to_string()))?;
            Ok(RecipeReport {
                recipe_id: id,
                outcome: Outcome::Failure {
                    class: FailureClass::InvalidRequest,
                    reason,
                },
                log_path: log_path.clone(),
                units: Vec::new(),
            })
        };
        match crate::recipe::recipe_of_with(&opts, &online) {
            Ok(again) if again.id() == id => {}
            Ok(_) => return refused("the recipe's skeleton reads back as another recipe".into()),
            Err(crate::recipe::RecipeRefused::Refused(e)) => return refused(e),
            // This machine could not run cargo (the network, the index): nothing is
            // committed, as for a crate whose fetch fails.
            Err(crate::recipe::RecipeRefused::Cargo(e)) => return Err(BuildError::Fetch(e)),
        }
        let meta = online()
            .current_dir(&source)
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(source.join("Cargo.toml"))
            .output()
            .map_err(|e| BuildError::Fetch(e.to_string()))?;
        let meta: serde_json::Value = serde_json::from_slice(&meta.stdout)
            .map_err(|e| BuildError::Fetch(format!("cargo metadata: {e}")))?;
        let members = recipe_build::MemberNames::from_metadata(&meta);
        progress(Phase::Fetch);
        self.ws.fetch_dependencies(&source)?;

        progress(Phase::Build);
        let mut env = build_env();
        env.extend(recipe_build::recipe_env(recipe));
        let job = Job {
            name,
            toolchain: recipe.toolchain.clone(),
            source: std::path::absolute(&source)
                .map_err(|e| BuildError::Workspace(e.to_string()))?,
            cargo_args: recipe_build::recipe_cargo_args(recipe, self.limits.jobs),
            env,
            limits: self.limits,
        };
        let run = match &self.sandbox {
            Sandboxes::Docker(b) => b.run(&job)?,
            Sandboxes::Swarm(b) => b.run(&job)?,
            Sandboxes::Sandbox(b) => b.run(&job)?,
        };
        std::fs::write(&log_path, &run.log).map_err(|e| BuildError::Workspace(e.to_string()))?;

        progress(Phase::Hash);
        let kept = self
            .ws
            .root()
            .join("artifacts")
            .join(format!("recipe-{}", hex::encode(id)));
        let mut units = Vec::new();
        let outcome = match (run.result, run.target_dir) {
            (Ok(()), Some(target)) => {
                let caps = artifacts::Caps {
                    per_file: self.limits.artifacts.min(artifacts::MAX_FILE),
                    total: self.limits.artifacts,
                };
                let taken = recipe_build::unit_files(&target, &members).and_then(|names| {
                    artifacts::collect_within(
                        &target,
                        &names,
                        &kept,
                        caps,
                        &recipe_build::RECIPE_NAMES,
                    )
                });
                outcome_of(taken, "no dependency units", "taking units", &mut units)?
            }
            (Ok(()), None) => Outcome::Failure {
                class: FailureClass::SandboxError,
                reason: "no target dir".into(),
            },
            (Err((class, reason)), _) => Outcome::Failure { class, reason },
        };
        drop(run.disk);
        Ok(RecipeReport {
            recipe_id: id,
            outcome,
            log_path,
            units,
        })
    }

    /// The report of a request refused before any build: its reason is the whole log.
    fn refused(
        &self,
        req: BuildRequest,
        class: FailureClass,
        reason: &str,
        d: Durations,
    ) -> Result<BuildReport, BuildError> {
        let log_path = self.log_path(&req)?;
        std::fs::write(&log_path, format!("[refused] {class}: {reason}\n"))
            .map_err(|e| BuildError::Workspace(e.to_string()))?;
        Ok(BuildReport {
            request: req,
            outcome: Outcome::Failure {
                class,
                reason: reason.into(),
            },
            backend: self.backend_name(),
            image_id: self.image_id(),
            durations: d,
            log_path,
            artifacts: Vec::new(),
        })
    }

    /// `<work>/logs/<request id>.log` (the directory made).
    fn log_path(&self, req: &BuildRequest) -> Result<PathBuf, BuildError> {
        let logs = self.ws.root().join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| BuildError::Workspace(e.to_string()))?;
        Ok(logs.join(format!("{}.log", hex::encode(req.id()))))
    }

    /// Builds an unpacked source directory that already holds the request's lockfile (used by
    /// tests for crates that are not on crates.io; the request's sha256 is not checked).
    #[doc(hidden)]
    pub fn build_dir(
        &self,
        req: BuildRequest,
        source: &Path,
        mut d: Durations,
        progress: &dyn Fn(Phase),
    ) -> Result<BuildReport, BuildError> {
        let t = Instant::now();
        progress(Phase::Build);
        // Host-side directories are per request (every pin): variants of one crate@version
        // build side by side. Paths inside the sandbox stay fixed.
        let job = Job {
            name: job_name(&req),
            toolchain: req.toolchain.clone(),
            source: std::path::absolute(source)
                .map_err(|e| BuildError::Workspace(e.to_string()))?,
            cargo_args: cargo_args(&req, self.limits.jobs),
            env: build_env(),
            limits: self.limits,
        };
        let run = match &self.sandbox {
            Sandboxes::Docker(b) => b.run(&job)?,
            Sandboxes::Swarm(b) => b.run(&job)?,
            Sandboxes::Sandbox(b) => b.run(&job)?,
        };
        d.build = t.elapsed().as_secs_f64();
        // The log is what the watcher kept: at most the output cap.
        let log_path = self.log_path(&req)?;
        std::fs::write(&log_path, &run.log).map_err(|e| BuildError::Workspace(e.to_string()))?;

        let t = Instant::now();
        progress(Phase::Hash);
        let mut artifacts = Vec::new();
        let kept = self.ws.root().join("artifacts").join(hex::encode(req.id()));
        let outcome = match (run.result, run.target_dir) {
            (Ok(()), Some(target)) => {
                // Copied out of the build's disk before it is unmounted, by the rules of
                // `artifacts.rs`: the messages name files, the disk decides.
                let names = names_from_messages(&run.json);
                let caps = artifacts::Caps {
                    per_file: self.limits.artifacts.min(artifacts::MAX_FILE),
                    total: self.limits.artifacts,
                };
                let taken = artifacts::collect(&target, &names, &kept, caps);
                outcome_of(
                    taken,
                    "no lib or bin artifacts",
                    "taking artifacts",
                    &mut artifacts,
                )?
            }
            (Ok(()), None) => Outcome::Failure {
                class: FailureClass::SandboxError,
                reason: "no target dir".into(),
            },
            (Err((class, reason)), _) => Outcome::Failure { class, reason },
        };
        drop(run.disk);
        d.hash = t.elapsed().as_secs_f64();
        Ok(BuildReport {
            request: req,
            outcome,
            backend: self.backend_name(),
            image_id: self.image_id(),
            durations: d,
            log_path,
            artifacts,
        })
    }
}

/// The outcome of a build whose files were taken from its disk (`taken`), each also
/// recorded in `copies`: their manifest; `compile-error` (`empty`) when there are none;
/// `forbidden-output` when the build planted what the host refuses to read. A host error
/// (`what`) is the host's: nothing is committed.
fn outcome_of(
    taken: Result<Vec<artifacts::Taken>, artifacts::CollectError>,
    empty: &str,
    what: &str,
    copies: &mut Vec<(String, PathBuf)>,
) -> Result<Outcome, BuildError> {
    match taken {
        Ok(taken) => {
            let mut m = Manifest::default();
            for t in taken {
                m.insert(&t.name, t.sha256);
                copies.push((t.name, t.copy));
            }
            Ok(if m.is_empty() {
                Outcome::Failure {
                    class: FailureClass::CompileError,
                    reason: empty.into(),
                }
            } else {
                Outcome::Success(m)
            })
        }
        Err(artifacts::CollectError::Refused(r)) => Ok(Outcome::Failure {
            class: FailureClass::ForbiddenOutput,
            reason: r.to_string(),
        }),
        Err(artifacts::CollectError::Host(e)) => Err(BuildError::Workspace(format!("{what}: {e}"))),
    }
}

/// Strips the dev-dependencies from `dir/Cargo.toml` (see `dev_deps.rs`); true if it had any.
fn strip_manifest(dir: &Path) -> Result<bool, BuildError> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| BuildError::Workspace(e.to_string()))?;
    match strip_dev_dependencies(&text).map_err(BuildError::Request)? {
        Some(stripped) => {
            std::fs::write(&path, stripped).map_err(|e| BuildError::Workspace(e.to_string()))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The last line of cargo's stderr that says `error`, else its last line.
pub(crate) fn last_error_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    err.lines()
        .rev()
        .find(|l| l.contains("error"))
        .or_else(|| err.lines().next_back())
        .unwrap_or("cargo failed")
        .trim()
        .to_string()
}

/// `cargo build` arguments for a request, identical in both backends.
fn cargo_args(req: &BuildRequest, jobs: u32) -> Vec<String> {
    let mut a: Vec<String> = [
        "build",
        "--locked",
        "--offline",
        "--message-format=json-render-diagnostics",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if req.profile == "release" {
        a.push("--release".into());
    } else {
        a.extend(["--profile".into(), req.profile.clone()]);
    }
    a.extend([
        "--target".into(),
        req.target.clone(),
        "--manifest-path".into(),
        format!("{SOURCE_IN_SANDBOX}/Cargo.toml"),
    ]);
    a.extend(["-j".into(), jobs.to_string()]);
    if !req.features.is_empty() {
        a.extend(["--features".into(), req.features.join(",")]);
    }
    if req.no_default_features {
        a.push("--no-default-features".into());
    }
    match (req.lib, req.bins) {
        (true, false) => a.push("--lib".into()),
        (false, true) => a.push("--bins".into()),
        _ => {}
    }
    a
}

/// Extra environment, identical in both backends (on top of rustwide's fixed variables).
fn build_env() -> Vec<(String, String)> {
    [
        ("CARGO_INCREMENTAL", "0"),
        ("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH),
        ("HOSTNAME", "synchronicity"),
        ("TZ", "UTC"),
        ("LC_ALL", "C"),
        ("CARGO_TERM_COLOR", "never"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
