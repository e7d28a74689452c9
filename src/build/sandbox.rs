//! Backend `sandbox`: no Docker engine needed. bubblewrap over the SAME root filesystem the
//! Docker image was made from, with the same fixed paths and the same environment as
//! rustwide's `docker exec`, so the same request gives the same bytes:
//!
//! - `/` the image's root filesystem, read-only; tmpfs on `/opt`, `/root`, `/var/tmp`
//!   (Docker's root is a writable overlay; build scripts that write there work in both);
//!   `/tmp` and the target directory on the build's own size-limited disk;
//! - `/opt/rustwide/{cargo-home,rustup-home}` read-only, `/opt/rustwide/source` (the pristine
//!   source) read-only, an empty read-only `/opt/rustwide/workdir` as working directory,
//!   `/opt/rustwide/target` read-write;
//! - new network, PID, IPC, UTS and cgroup namespaces (no network at all), all capabilities
//!   dropped, a cleared environment, umask 022;
//! - memory and processes: a cgroup for the whole tree, entered before bubblewrap starts
//!   (`limits.rs`; the tmpfs pages above are charged to it too); disk: a loop-mounted ext4
//!   of the limit's size; time: the process tree is killed at the limit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::limits::{BuildCgroup, DiskLimit};
use super::workspace::BuildWorkspace;
use super::{BuildError, FailureClass, Job, RunOutput};

/// Where the pristine source is mounted in both backends.
pub const SOURCE_IN_SANDBOX: &str = "/opt/rustwide/source";
/// Default root filesystem made by `scripts/build-image.sh`.
pub const DEFAULT_ROOTFS: &str = "/var/lib/synchronicity/rootfs-bookworm-v2";

/// The environment `docker exec` gives rustwide's commands in an imported image (as root).
pub(crate) fn base_env() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("SOURCE_DIR", "/opt/rustwide/workdir"),
        ("CARGO_HOME", "/opt/rustwide/cargo-home"),
        ("RUSTUP_HOME", "/opt/rustwide/rustup-home"),
        ("CARGO_TARGET_DIR", "/opt/rustwide/target"),
    ]
}

pub(crate) struct SandboxBackend {
    rootfs: PathBuf,
    ws: BuildWorkspace,
    id: String,
}

impl SandboxBackend {
    pub(crate) fn new(ws: &BuildWorkspace, rootfs: &Path) -> Result<Self, BuildError> {
        if !rootfs.join(".synchronicity-complete").is_file() {
            return Err(BuildError::Backend(format!(
                "no sandbox root filesystem at {}; run scripts/build-image.sh",
                rootfs.display()
            )));
        }
        if Command::new("bwrap").arg("--version").output().is_err() {
            return Err(BuildError::Backend(
                "bubblewrap (bwrap) is not installed; run scripts/build-image.sh".into(),
            ));
        }
        BuildCgroup::check_available()?;
        let packages = std::fs::read(rootfs.join(".synchronicity-packages")).unwrap_or_default();
        let id = format!(
            "rootfs:sha256:{}",
            hex::encode(crate::crypto::sha256(&packages))
        );
        Ok(Self {
            rootfs: rootfs.to_path_buf(),
            ws: ws.clone(),
            id,
        })
    }

    /// Identifies the root filesystem by its package set.
    pub(crate) fn image_id(&self) -> &str {
        &self.id
    }

    pub(crate) fn run(&self, job: &Job) -> Result<RunOutput, BuildError> {
        let base = self.ws.root().join("sandbox-builds").join(&job.name);
        let disk = DiskLimit::mount(&base, &self.ws.disks(), job.limits.disk)?;
        let target = base.join("target");
        let tmp = base.join("tmp");
        let workdir = self.ws.root().join("sandbox-builds/empty-workdir");
        for d in [&target, &tmp, &workdir] {
            std::fs::create_dir_all(d)
                .map_err(|e| BuildError::Backend(format!("{}: {e}", d.display())))?;
        }
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .map_err(|e| BuildError::Backend(format!("{}: {e}", tmp.display())))?;
        // Named after this builder too (host name, process, work directory): builders that
        // share a cgroup hierarchy (members of a local testnet, containers that see the
        // host's hierarchy, where every node may be PID 1) build the same request at once,
        // each in its own group.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let me = format!(
            "{}\n{}\n{}",
            host.trim(),
            std::process::id(),
            self.ws.root().display()
        );
        let group = format!(
            "{}-{}",
            &hex::encode(crate::crypto::sha256(me.as_bytes()))[..8],
            job.name
        );
        let cgroup = BuildCgroup::create(&group, job.limits.memory, job.limits.processes)?;
        // The shell enters the cgroup(s), then becomes bubblewrap: no process of the build
        // ever runs outside the limits.
        let mut c = Command::new("/bin/sh");
        c.args([
            "-c",
            "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift; exec \"$@\"",
            "sh",
        ])
        .args(cgroup.procs_files())
        .args(["--", "bwrap"]);
        c.args([
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ])
        .args([
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "synchronicity",
        ])
        .arg("--ro-bind")
        .arg(&self.rootfs)
        .arg("/")
        .args(["--dev", "/dev", "--proc", "/proc"])
        .args(["--tmpfs", "/opt", "--tmpfs", "/root", "--tmpfs", "/var/tmp"])
        .arg("--bind")
        .arg(&tmp)
        .arg("/tmp")
        .arg("--ro-bind")
        .arg(self.ws.cargo_home())
        .arg("/opt/rustwide/cargo-home")
        .arg("--ro-bind")
        .arg(self.ws.rustup_home())
        .arg("/opt/rustwide/rustup-home")
        .arg("--ro-bind")
        .arg(&job.source)
        .arg(SOURCE_IN_SANDBOX)
        .arg("--ro-bind")
        .arg(&workdir)
        .arg("/opt/rustwide/workdir")
        .arg("--bind")
        .arg(&target)
        .arg("/opt/rustwide/target")
        .args(["--chdir", "/opt/rustwide/workdir", "--clearenv"]);
        for (k, v) in base_env() {
            c.args(["--setenv", k, v]);
        }
        for (k, v) in &job.env {
            c.arg("--setenv").arg(k).arg(v);
        }
        c.args([
            "/bin/sh",
            "-c",
            "umask 022 && exec \"$@\"",
            "sh",
            "/opt/rustwide/cargo-home/bin/cargo",
        ])
        .arg(format!("+{}", job.toolchain))
        .args(&job.cargo_args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| BuildError::Backend(format!("bwrap: {e}")))?;
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let out_t = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let err_t = std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let start = Instant::now();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child
                .try_wait()
                .map_err(|e| BuildError::Backend(e.to_string()))?
            {
                break s;
            }
            if start.elapsed() > job.limits.time {
                // bwrap dies, and with it the whole sandbox (--die-with-parent, PID namespace).
                let _ = child.kill();
                timed_out = true;
                break child
                    .wait()
                    .map_err(|e| BuildError::Backend(e.to_string()))?;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let lines = out_t.join().unwrap_or_default();
        let errs = err_t.join().unwrap_or_default();
        let (stdout, other): (Vec<String>, Vec<String>) =
            lines.into_iter().partition(|l| l.starts_with('{'));
        let mut log: String = other.iter().map(|l| format!("[stdout] {l}\n")).collect();
        log.extend(errs.iter().map(|l| format!("[stderr] {l}\n")));
        let exceeded = cgroup.exceeded();
        drop(cgroup);
        let disk_full = disk.full() || errs.iter().any(|l| l.contains("No space left on device"));
        let result = if timed_out {
            Err((
                FailureClass::Timeout,
                format!("killed after {:?}", job.limits.time),
            ))
        } else if status.success() {
            Ok(())
        } else if exceeded.oom_kills > 0 {
            Err((
                FailureClass::OutOfMemory,
                format!(
                    "{} process(es) killed at the memory limit of {} MiB",
                    exceeded.oom_kills,
                    job.limits.memory >> 20
                ),
            ))
        } else if exceeded.fork_refusals > 0 {
            Err((
                FailureClass::TooManyProcesses,
                format!(
                    "{} fork(s) refused at the limit of {} processes",
                    exceeded.fork_refusals, job.limits.processes
                ),
            ))
        } else if disk_full {
            Err((
                FailureClass::DiskLimit,
                format!("the build's disk of {} MiB is full", job.limits.disk >> 20),
            ))
        } else if status.code() == Some(101) {
            Err((
                FailureClass::CompileError,
                format!("cargo exited with {status}"),
            ))
        } else {
            Err((
                FailureClass::SandboxError,
                format!("sandbox exited with {status}"),
            ))
        };
        Ok(RunOutput {
            result,
            stdout,
            log,
            target_dir: Some(target),
            disk: Some(disk),
        })
    }
}
