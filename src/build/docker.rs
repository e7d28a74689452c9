//! Backend `docker`: rustwide 0.28 with a LOCAL image (no registry is reachable), fully
//! offline. One container per build: `--network none`, memory and CPU limits, the pristine
//! source mounted read-only at `/opt/rustwide/source`, the target dir purged before each
//! build. rustwide's own prepare step runs on its copy in `/opt/rustwide/workdir` (offline,
//! harmless); we build from the pristine copy so both backends compile identical files.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use rustwide::cmd::{CommandError, MountKind, ProcessLinesActions, SandboxBuilder, SandboxImage};
use rustwide::logging::{self, LogStorage};
use rustwide::{Crate, Toolchain, Workspace, WorkspaceBuilder};

use super::sandbox::SOURCE_IN_SANDBOX;
use super::workspace::BuildWorkspace;
use super::{BuildError, FailureClass, Job, RunOutput};

/// Docker image tag made by `scripts/build-image.sh`.
pub const DEFAULT_IMAGE: &str = "synchronicity-sandbox:bookworm-v2";

/// True when a Docker engine answers.
pub fn engine_available() -> bool {
    std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The image id (`sha256:…`) of `tag`.
pub fn image_id(tag: &str) -> Result<String, BuildError> {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .map_err(|e| BuildError::Backend(format!("docker: {e}")))?;
    if !out.status.success() {
        return Err(BuildError::Backend(format!(
            "image {tag} not found; run scripts/build-image.sh"
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) struct DockerBackend {
    workspace: Workspace,
    image_id: String,
}

static LOGGING: Once = Once::new();

impl DockerBackend {
    pub(crate) fn new(ws: &BuildWorkspace, tag: &str) -> Result<Self, BuildError> {
        LOGGING.call_once(|| {
            if !logging::is_initialized() {
                logging::init();
            }
        });
        let image_id = image_id(tag)?;
        let image =
            SandboxImage::local(&image_id).map_err(|e| BuildError::Backend(e.to_string()))?;
        let workspace = WorkspaceBuilder::new(
            ws.root(),
            concat!("synchronicity/", env!("CARGO_PKG_VERSION")),
        )
        .sandbox_image(image)
        .command_timeout(Some(Duration::from_secs(3600)))
        .init()
        .map_err(|e| BuildError::Backend(format!("rustwide workspace: {e:#}")))?;
        Ok(Self {
            workspace,
            image_id,
        })
    }

    pub(crate) fn image_id(&self) -> &str {
        &self.image_id
    }

    pub(crate) fn run(&self, job: &Job) -> Result<RunOutput, BuildError> {
        let toolchain = Toolchain::dist(&job.toolchain);
        let krate = Crate::local(&job.source);
        let mut dir = self.workspace.build_dir(&job.name);
        // A fresh target dir: no stale artifacts, no cached `rustc -vV` from another build.
        dir.purge()
            .map_err(|e| BuildError::Backend(format!("purge: {e:#}")))?;
        let sandbox = SandboxBuilder::new()
            .mount(
                &job.source,
                Path::new(SOURCE_IN_SANDBOX),
                MountKind::ReadOnly,
            )
            .memory_limit(Some(job.limits.memory as usize))
            .enable_networking(false);
        let storage = LogStorage::new(log::LevelFilter::Info);
        let mut result: Option<Result<(), (FailureClass, String)>> = None;
        let mut stdout = Vec::new();
        let mut target = None;
        let run = logging::capture(&storage, || {
            dir.build(&toolchain, &krate, sandbox).run(|build| {
                target = Some(build.host_target_dir());
                let mut cmd = build
                    .cargo()
                    .args(&job.cargo_args)
                    .timeout(Some(job.limits.time));
                for (k, v) in &job.env {
                    cmd = cmd.env(k, v);
                }
                let r = cmd
                    .process_lines(&mut |line: &str, a: &mut ProcessLinesActions| {
                        if line.starts_with('{') {
                            stdout.push(line.to_string());
                            a.remove_line();
                        }
                    })
                    .run();
                result = Some(r.map_err(|e| classify(&e)));
                Ok(())
            })
        });
        let log = storage.to_string();
        let result = match (run, result) {
            (_, Some(r)) => r,
            (Err(e), None) => Err((FailureClass::SandboxError, format!("{e:#}"))),
            (Ok(_), None) => Err((FailureClass::SandboxError, "the build did not run".into())),
        };
        Ok(RunOutput {
            result,
            stdout,
            log,
            target_dir: target,
        })
    }
}

fn classify(e: &CommandError) -> (FailureClass, String) {
    let class = match e {
        CommandError::ExecutionFailed { status, .. } if status.code() == Some(101) => {
            FailureClass::CompileError
        }
        CommandError::SandboxOOM => FailureClass::OutOfMemory,
        CommandError::Timeout(_)
        | CommandError::NoOutputFor(_)
        | CommandError::KillAfterTimeoutFailed(_) => FailureClass::Timeout,
        _ => FailureClass::SandboxError,
    };
    (
        class,
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}
