//! Backend `sandbox`: no Docker engine needed. bubblewrap over the SAME root filesystem the
//! Docker image was made from, with the same fixed paths, user and environment as the
//! Docker backend, so the same request gives the same bytes:
//!
//! - `/` the image's root filesystem, read-only; tmpfs on `/opt` (root's), `/root` (`$HOME`)
//!   and `/var/tmp` (both 1777); `/tmp` and the target directory on the build's own
//!   size-limited disk (mounted `nodev,nosuid`, the only other writable places);
//! - `/opt/rustwide/{cargo-home,rustup-home}` read-only, `/opt/rustwide/source` (the pristine
//!   source) read-only, an empty read-only `/opt/rustwide/workdir` as working directory,
//!   `/opt/rustwide/target` read-write;
//! - new network, PID, IPC, UTS and cgroup namespaces (no network at all); bubblewrap sets
//!   the mounts up as root, then `setpriv` makes every build process the unprivileged
//!   [`BUILD_UID`] with `no_new_privs` and no capability (no user namespace: the host sees
//!   that uid too); a cleared environment, umask 022;
//! - memory and processes: a cgroup for the whole tree, entered before bubblewrap starts
//!   (`limits.rs`; the tmpfs pages above are charged to it too); disk: a loop-mounted ext4
//!   of the limit's size; time and output: watched by `output.rs`, the sandbox killed at
//!   either limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::limits::{BuildCgroup, DiskLimit};
use super::output::watch;
use super::workspace::BuildWorkspace;
use super::{BuildError, Job, RunOutput};

/// Where the pristine source is mounted in both backends.
pub const SOURCE_IN_SANDBOX: &str = "/opt/rustwide/source";
/// Default root filesystem made by `scripts/build-image.sh`.
pub const DEFAULT_ROOTFS: &str = "/var/lib/synchronicity/rootfs-bookworm-v2";

/// The unprivileged host user and group every build process runs as, in both backends (no
/// user namespace: the host sees this id, and the node's files, mode 0600 and owned by the
/// node's user, are closed to it by any path).
pub const BUILD_UID: u32 = 65534;

/// cargo inside both sandboxes (the rustup proxy of the workspace's cargo home).
pub(crate) const CARGO_IN_SANDBOX: &str = "/opt/rustwide/cargo-home/bin/cargo";

/// The shell every build runs under, in both backends: umask 022, the command, then every
/// process of the build user that is left is killed (a daemon that holds the output pipe
/// would otherwise keep `docker exec`, and cargo's own wait, open until the time limit);
/// the command's exit status is the shell's.
pub(crate) const BUILD_SHELL: [&str; 4] = [
    "/bin/sh",
    "-c",
    "umask 022; \"$@\"; code=$?; kill -9 -1 2>/dev/null; exit $code",
    "sh",
];

/// `setpriv` (util-linux, in the image) from root to [`BUILD_UID`]: no supplementary
/// groups, empty inheritable and bounding sets, `no_new_privs` (no setuid or
/// file-capability binary gives anything back); with the change of user the permitted and
/// effective sets are empty too.
pub(crate) fn drop_to_build_user() -> Vec<String> {
    vec![
        "/usr/bin/setpriv".into(),
        format!("--reuid={BUILD_UID}"),
        format!("--regid={BUILD_UID}"),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

/// The environment every build process gets (what `docker exec` gave rustwide's commands
/// in an imported image, kept so that earlier builds still reproduce).
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
        let (target, tmp) = disk.build_dirs()?;
        let workdir = self.ws.root().join("sandbox-builds/empty-workdir");
        std::fs::create_dir_all(&workdir)
            .map_err(|e| BuildError::Backend(format!("{}: {e}", workdir.display())))?;
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
        let mut c = BuildCgroup::command_in(Some(&cgroup));
        c.arg("bwrap");
        c.args([
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ])
        // bubblewrap sets the mounts up as root; the capabilities left (to change the user
        // and empty the bounding set) are used by `setpriv` below before any build process
        // starts, and are gone with the change of user.
        .args([
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
            "--hostname",
            "synchronicity",
        ])
        .arg("--ro-bind")
        .arg(&self.rootfs)
        .arg("/")
        .args(["--dev", "/dev", "--proc", "/proc"])
        .args([
            "--tmpfs",
            "/opt",
            "--perms",
            "0755",
            "--dir",
            "/opt/rustwide",
        ])
        .args(["--perms", "1777", "--tmpfs", "/root"])
        .args(["--perms", "1777", "--tmpfs", "/var/tmp"])
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
        c.args(drop_to_build_user())
            .args(BUILD_SHELL)
            .arg(CARGO_IN_SANDBOX)
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
        // Killing bubblewrap kills the sandbox's PID 1 (--die-with-parent), and with it
        // every process in the PID namespace; the cgroup's kill below takes any straggler.
        let pid = child.id();
        let kill = move || {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        };
        let watched = watch(&mut child, job.limits.output, job.limits.time, &kill)?;
        let exceeded = cgroup.exceeded();
        drop(cgroup);
        Ok(watched.into_run_output(exceeded, disk, target, job))
    }
}
