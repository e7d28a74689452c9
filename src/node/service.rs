//! The node's builder, behind a trait so the consensus tests can use a builder that
//! returns chosen manifests while the product path uses the real sandboxed builder.

use crate::builder::{Builder, Outcome, Phase, Variant};
use crate::request::{BuildRequest, PinnedRequest};

/// Pins and builds requests for a node. Called from blocking threads.
pub trait BuildService: Send + Sync + 'static {
    /// Pins every input of `name@version` into a request (see [`Builder::pin`]).
    fn pin(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
    ) -> Result<PinnedRequest, String>;
    /// Pins `name@version` with the feature flags of `variant` (see
    /// [`Builder::pin_variant`]). A builder that pins only default variants refuses others.
    fn pin_variant(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
        variant: &Variant,
    ) -> Result<PinnedRequest, String> {
        if *variant == Variant::default() {
            self.pin(name, version, lockfile)
        } else {
            Err("this builder pins only default variants".into())
        }
    }
    /// Builds a request, reporting each phase it enters. `Err` means the builder itself
    /// could not run (no outcome to commit to); a failed build is an `Ok(Outcome::Failure)`.
    fn build(&self, request: &PinnedRequest, progress: &dyn Fn(Phase)) -> Result<Outcome, String>;
    /// The artifact files of the last successful build of `request` (path in the manifest,
    /// host path), for operators who want the files a proof speaks about.
    fn artifacts(&self, request: &BuildRequest) -> Vec<(String, std::path::PathBuf)> {
        let _ = request;
        Vec::new()
    }
}

/// Artifact paths of one build: (path in the manifest, host path).
type Artifacts = Vec<(String, std::path::PathBuf)>;

/// The real builder (docker or bubblewrap sandbox).
pub struct SandboxBuildService {
    builder: Builder,
    target: String,
    /// Where successful builds' artifacts go, to be served.
    store: Option<std::sync::Arc<super::artifacts::ArtifactStore>>,
    /// Where every build's log goes, to be served.
    logs: Option<super::build_logs::BuildLogs>,
    /// The artifacts of the last few builds, by request id.
    last: std::sync::Mutex<Vec<([u8; 32], Artifacts)>>,
}

impl SandboxBuildService {
    /// Wraps a builder; requests are pinned for `target`.
    pub fn new(builder: Builder, target: &str) -> Self {
        Self {
            builder,
            target: target.to_string(),
            store: None,
            logs: None,
            last: Default::default(),
        }
    }

    /// The same, keeping the end of every build's log in `logs`.
    pub fn with_logs(mut self, logs: super::build_logs::BuildLogs) -> Self {
        self.logs = Some(logs);
        self
    }

    /// The same, keeping every successful build's artifacts in `store`.
    pub fn with_store(mut self, store: std::sync::Arc<super::artifacts::ArtifactStore>) -> Self {
        self.store = Some(store);
        self
    }
}

impl BuildService for SandboxBuildService {
    fn pin(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
    ) -> Result<PinnedRequest, String> {
        self.builder
            .pin(name, version, lockfile, &self.target)
            .map_err(|e| e.to_string())
    }

    fn pin_variant(
        &self,
        name: &str,
        version: &str,
        lockfile: Option<String>,
        variant: &Variant,
    ) -> Result<PinnedRequest, String> {
        self.builder
            .pin_variant(name, version, lockfile, &self.target, variant)
            .map_err(|e| e.to_string())
    }

    fn build(&self, pinned: &PinnedRequest, progress: &dyn Fn(Phase)) -> Result<Outcome, String> {
        let request = &pinned.request;
        let report = self
            .builder
            .build(pinned, progress)
            .map_err(|e| e.to_string())?;
        if let (Some(store), Outcome::Success(_)) = (&self.store, &report.outcome) {
            for (rel, path) in &report.artifacts {
                // Best effort: a store that cannot keep a file serves fewer; the outcome
                // (what is committed) does not depend on it.
                if let Err(e) = store.put_file(path) {
                    tracing::warn!(artifact = %rel, error = %e, "cannot keep an artifact");
                }
            }
        }
        if let Some(logs) = &self.logs
            && let Err(e) = logs.keep(&request.id(), &report.log_path)
        {
            // Best effort, like the artifacts: the outcome does not depend on it.
            tracing::warn!(error = %e, "cannot keep the build log");
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|(id, _)| *id != request.id());
        last.push((request.id(), report.artifacts.clone()));
        if last.len() > 16 {
            last.remove(0);
        }
        Ok(report.outcome)
    }

    fn artifacts(&self, request: &BuildRequest) -> Vec<(String, std::path::PathBuf)> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.iter()
            .find(|(id, _)| *id == request.id())
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }
}
