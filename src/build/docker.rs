//! Backend `docker`: rustwide 0.28 with a LOCAL image (no registry is reachable), fully
//! offline. One container per build: `--network none`, a memory limit for the container
//! (`--memory`), a process limit (`docker update --pids-limit` on the idle container rustwide
//! starts, before the build's first process), the pristine source mounted read-only at
//! `/opt/rustwide/source`, and the build directory (target and the container's `/tmp`) on
//! the build's own size-limited disk, fresh for each build. rustwide's own prepare step runs on its copy in `/opt/rustwide/workdir` (offline,
//! harmless); we build from the pristine copy so both backends compile identical files.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use rustwide::cmd::{CommandError, MountKind, ProcessLinesActions, SandboxBuilder, SandboxImage};
use rustwide::logging::{self, LogStorage};
use rustwide::{Crate, Toolchain, Workspace, WorkspaceBuilder};

use super::limits::{DiskLimit, Exceeded};
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
    root: std::path::PathBuf,
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
            root: ws.root().to_path_buf(),
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
        // rustwide's build directory (its `source` copy and `target`) on the build's disk.
        let build_dir = self.root.join("builds").join(&job.name);
        let disk = DiskLimit::mount(&build_dir, &self.root.join("disks"), job.limits.disk)?;
        let tmp = build_dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .and_then(|()| {
                std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            })
            .map_err(|e| BuildError::Backend(format!("{}: {e}", tmp.display())))?;
        let sandbox = SandboxBuilder::new()
            .mount(
                &job.source,
                Path::new(SOURCE_IN_SANDBOX),
                MountKind::ReadOnly,
            )
            .mount(&tmp, Path::new("/tmp"), MountKind::ReadWrite)
            .memory_limit(Some(job.limits.memory as usize))
            .enable_networking(false);
        let storage = LogStorage::new(log::LevelFilter::Info);
        let mut result: Option<Result<(), (FailureClass, String)>> = None;
        let mut stdout = Vec::new();
        let mut target = None;
        let mut container: Option<String> = None;
        let mut enospc = false;
        let run = logging::capture(&storage, || {
            dir.build(&toolchain, &krate, sandbox).run(|build| {
                target = Some(build.host_target_dir());
                // The container idles (`sleep infinity`) until the first `docker exec`; its
                // hostname is its id. The limit is in place before any build process runs.
                let id = build
                    .cmd("cat")
                    .args(["/etc/hostname"])
                    .run_capture()?
                    .stdout_lines()
                    .first()
                    .cloned()
                    .unwrap_or_default();
                limit_processes(&id, job.limits.processes)?;
                container = Some(id);
                let mut cmd = build
                    .cargo()
                    .args(&job.cargo_args)
                    .timeout(Some(job.limits.time));
                for (k, v) in &job.env {
                    cmd = cmd.env(k, v);
                }
                let r = cmd
                    .process_lines(&mut |line: &str, a: &mut ProcessLinesActions| {
                        // The build may free what it wrote; the error it met stays.
                        enospc |= line.contains("No space left on device");
                        if line.starts_with('{') {
                            stdout.push(line.to_string());
                            a.remove_line();
                        }
                    })
                    .run();
                let exceeded = Exceeded {
                    oom_kills: 0,
                    fork_refusals: container.as_deref().map(fork_refusals).unwrap_or(0),
                };
                let full = enospc || disk.full();
                result = Some(r.map_err(|e| classify(&e, exceeded, full, &job.limits)));
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
            disk: Some(disk),
        })
    }
}

/// `docker update --pids-limit` on the (idle) container `id`.
fn limit_processes(id: &str, processes: u32) -> anyhow::Result<()> {
    let out = std::process::Command::new("docker")
        .args(["update", "--pids-limit", &processes.to_string(), id])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "docker update --pids-limit: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `fork`s the container's pids cgroup refused, read on the host (the container may be too
/// full of processes to run anything more).
fn fork_refusals(id: &str) -> u64 {
    let pid = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.State.Pid}}", id])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let file = match controllers {
            c if c.split(',').any(|c| c == "pids") => {
                format!("/sys/fs/cgroup/pids{path}/pids.events")
            }
            "" => format!("/sys/fs/cgroup{path}/pids.events"),
            _ => continue,
        };
        if let Ok(text) = std::fs::read_to_string(&file) {
            return text
                .lines()
                .find_map(|l| l.strip_prefix("max ").and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0);
        }
    }
    0
}

fn classify(
    e: &CommandError,
    exceeded: Exceeded,
    disk_full: bool,
    limits: &super::Limits,
) -> (FailureClass, String) {
    let class = match e {
        CommandError::SandboxOOM => FailureClass::OutOfMemory,
        _ if exceeded.fork_refusals > 0 => {
            return (
                FailureClass::TooManyProcesses,
                format!(
                    "{} fork(s) refused at the limit of {} processes",
                    exceeded.fork_refusals, limits.processes
                ),
            );
        }
        _ if disk_full => {
            return (
                FailureClass::DiskLimit,
                format!("the build's disk of {} MiB is full", limits.disk >> 20),
            );
        }
        CommandError::ExecutionFailed { status, .. } if status.code() == Some(101) => {
            FailureClass::CompileError
        }
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
