//! Limits for a build's WHOLE process tree, and a disk limit for its target and tmp.
//!
//! - **Memory and process count** (sandbox backend): one cgroup per build. cgroup v1 (this
//!   machine kind): `memory/<node's own memory cgroup>/synchronicity/<job>` with
//!   `memory.limit_in_bytes`, `pids/synchronicity/<job>` with `pids.max`; cgroup v2 (where the
//!   host mounts it at `/sys/fs/cgroup` with the memory and pids controllers):
//!   `/sys/fs/cgroup/synchronicity/<job>` with `memory.max` and `pids.max`. The build's first
//!   process enters the cgroup before it `exec`s bubblewrap, so every descendant is inside.
//!   Over the limit: the kernel OOM-kills inside the group (counted in `memory.oom_control`'s
//!   `oom_kill`, v2 `memory.events`) or refuses `fork` (counted in `pids.events`' `max`);
//!   the counters, not log text, classify the failure. The Docker backend gets the same from
//!   the engine (`--memory`, `docker update --pids-limit` before the build starts).
//! - **Disk**: a sparse file of the limit's size, formatted ext4 and loop-mounted as the
//!   build's directory; the target directory and `/tmp` live on it. Pages written there are
//!   ordinary page cache (reclaimable), so filling the disk is `ENOSPC`, not an OOM.
//!
//! Crash recovery: a node that dies mid-build leaves a mount and a cgroup named after the
//! job; [`DiskLimit::mount`] and [`BuildCgroup::create`] first clear a stale one of their own
//! name, and [`sweep_stale`] unmounts every leftover when the builder starts.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const GROUP: &str = "synchronicity";

fn backend(what: &str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Backend(format!("{what}: {e}"))
}

/// Which cgroup hierarchy the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    /// Separate `memory` and `pids` hierarchies.
    V1,
    /// One unified hierarchy with both controllers.
    V2,
}

fn hierarchy() -> Option<Hierarchy> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("memory/memory.limit_in_bytes").is_file() && root.join("pids").is_dir() {
        return Some(Hierarchy::V1);
    }
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    (has("memory") && has("pids")).then_some(Hierarchy::V2)
}

/// The node's own cgroup directory in the v1 hierarchy of `controller` (the hierarchy's
/// root when not found), so a build's group nests under whatever limit the operator (or a
/// container engine) gave the node.
fn own_v1_path(controller: &str) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            parts.next();
            parts.next().zip(parts.next())
        })
        .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, p)| p.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let root = Path::new(CGROUP_ROOT).join(controller);
    let mounted = root.join(&own);
    if own.is_empty() || !mounted.is_dir() {
        root
    } else {
        mounted
    }
}

/// What a build's cgroup counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Exceeded {
    /// Processes the kernel OOM-killed inside the group.
    pub(crate) oom_kills: u64,
    /// `fork`s refused at the process limit.
    pub(crate) fork_refusals: u64,
}

/// One build's cgroup(s). Dropping it kills what is left inside and removes it.
#[derive(Debug)]
pub(crate) struct BuildCgroup {
    hierarchy: Hierarchy,
    /// v1: the memory and pids directories; v2: the one directory.
    dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), BuildError> {
    std::fs::write(path, value).map_err(|e| backend(&path.display().to_string(), e))
}

/// `key value` lines (`memory.events`, `pids.events`, `memory.oom_control`).
pub(crate) fn counter(path: &Path, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Kills every process in the group directory `dir` and removes it (ignores a missing one).
fn kill_and_remove(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    // v2 has `cgroup.kill`; v1 needs the processes killed one by one (until none is left:
    // a fork bomb can fork between the read and the kill, but not past `pids.max`).
    if write(&dir.join("cgroup.kill"), "1").is_err() {
        for _ in 0..100 {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<&str> = procs.split_whitespace().collect();
            if pids.is_empty() {
                break;
            }
            let _ = Command::new("kill").arg("-9").args(&pids).output();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!(dir = %dir.display(), "cannot remove a build cgroup");
}

impl BuildCgroup {
    /// Checks that this host lets the node create build cgroups (at builder start-up, so a
    /// misconfigured host is one clear error, not a failure per build).
    pub(crate) fn check_available() -> Result<(), BuildError> {
        // Named per process and call: builders started at once (tests, a local testnet on
        // one host) must not remove each other's probe.
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = Self::create(&format!("probe-{}-{n}", std::process::id()), 1 << 30, 64)?;
        drop(probe);
        Ok(())
    }

    /// Creates (replacing a stale one) the group `job` with `memory` bytes and `processes`
    /// tasks (threads count) for the whole tree.
    pub(crate) fn create(job: &str, memory: u64, processes: u32) -> Result<Self, BuildError> {
        let hierarchy = hierarchy().ok_or_else(|| {
            BuildError::Backend(
                "no cgroup memory and pids controllers under /sys/fs/cgroup: the sandbox backend cannot limit a build's process tree".into(),
            )
        })?;
        let dirs = match hierarchy {
            Hierarchy::V1 => vec![
                own_v1_path("memory").join(GROUP).join(job),
                own_v1_path("pids").join(GROUP).join(job),
            ],
            Hierarchy::V2 => vec![Path::new(CGROUP_ROOT).join(GROUP).join(job)],
        };
        for d in &dirs {
            kill_and_remove(d);
            if hierarchy == Hierarchy::V2 {
                let parent = d.parent().expect("joined");
                std::fs::create_dir_all(parent).map_err(|e| backend("cgroup", e))?;
                // Controllers must be enabled for the children of the parent.
                let _ = std::fs::write(
                    Path::new(CGROUP_ROOT).join("cgroup.subtree_control"),
                    "+memory +pids",
                );
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +pids");
            }
            std::fs::create_dir_all(d).map_err(|e| {
                backend(
                    &format!(
                        "cannot create the build cgroup {} (run as root)",
                        d.display()
                    ),
                    e,
                )
            })?;
        }
        let group = Self { hierarchy, dirs };
        match hierarchy {
            Hierarchy::V1 => {
                write(
                    &group.dirs[0].join("memory.limit_in_bytes"),
                    &memory.to_string(),
                )?;
                // No swap on top of the limit where the kernel accounts swap.
                let _ = std::fs::write(
                    group.dirs[0].join("memory.memsw.limit_in_bytes"),
                    memory.to_string(),
                );
                write(&group.dirs[1].join("pids.max"), &processes.to_string())?;
            }
            Hierarchy::V2 => {
                write(&group.dirs[0].join("memory.max"), &memory.to_string())?;
                let _ = std::fs::write(group.dirs[0].join("memory.swap.max"), "0");
                write(&group.dirs[0].join("pids.max"), &processes.to_string())?;
            }
        }
        Ok(group)
    }

    /// A command that enters `group` (when given), then becomes the program its caller adds
    /// as arguments: a shell writes its own pid into every `cgroup.procs` file and `exec`s
    /// the rest, so no process of it ever runs outside the limits. A write that fails
    /// ends it with status 125 before anything runs.
    pub(crate) fn command_in(group: Option<&Self>) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args([
            "-c",
            "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift; exec \"$@\"",
            "sh",
        ]);
        if let Some(g) = group {
            c.args(g.procs_files());
        }
        c.arg("--");
        c
    }

    /// The files a process writes its pid to, to enter the group (all of them).
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// What the group counted so far.
    pub(crate) fn exceeded(&self) -> Exceeded {
        match self.hierarchy {
            Hierarchy::V1 => Exceeded {
                oom_kills: counter(&self.dirs[0].join("memory.oom_control"), "oom_kill"),
                fork_refusals: counter(&self.dirs[1].join("pids.events"), "max"),
            },
            Hierarchy::V2 => Exceeded {
                oom_kills: counter(&self.dirs[0].join("memory.events"), "oom_kill"),
                fork_refusals: counter(&self.dirs[0].join("pids.events"), "max"),
            },
        }
    }
}

impl Drop for BuildCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            kill_and_remove(d);
        }
    }
}

/// A loop-mounted ext4 file of a fixed size. Unmounted and deleted on drop.
#[derive(Debug)]
pub(crate) struct DiskLimit {
    image: PathBuf,
    mount_point: PathBuf,
}

fn is_mounted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    text.lines()
        .any(|l| l.split_whitespace().nth(4) == Some(p.as_ref()))
}

fn unmount(path: &Path) {
    if is_mounted(path) {
        // Lazy: a process still holding a file there (it is being killed) does not keep the
        // mount busy; the loop device is released when the last reference goes.
        let _ = Command::new("umount").arg("-l").arg(path).output();
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), BuildError> {
    let out = cmd.output().map_err(|e| backend(what, e))?;
    if !out.status.success() {
        return Err(backend(
            what,
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " "),
        ));
    }
    Ok(())
}

impl DiskLimit {
    /// Mounts a fresh filesystem of `bytes` at `mount_point` (created; a stale mount or
    /// image there from a crashed build is removed first), its image in `image_dir`. The
    /// image file is sparse: it takes the space the build writes, at most `bytes`.
    pub(crate) fn mount(
        mount_point: &Path,
        image_dir: &Path,
        bytes: u64,
    ) -> Result<Self, BuildError> {
        let name = mount_point
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let image = image_dir.join(format!("{name}.disk"));
        std::fs::create_dir_all(image_dir).map_err(|e| backend("disk limit", e))?;
        unmount(mount_point);
        let _ = std::fs::remove_dir_all(mount_point);
        let _ = std::fs::remove_file(&image);
        std::fs::create_dir_all(mount_point).map_err(|e| backend("disk limit", e))?;
        let file = std::fs::File::create(&image).map_err(|e| backend("disk limit", e))?;
        file.set_len(bytes).map_err(|e| backend("disk limit", e))?;
        drop(file);
        run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-O", "^has_journal"])
                .args(["-E", "lazy_itable_init=1,nodiscard"])
                .arg(&image),
            "mkfs.ext4 (the build's disk limit)",
        )?;
        let limit = Self {
            image,
            mount_point: mount_point.to_path_buf(),
        };
        run(
            Command::new("mount")
                .args(["-o", "loop,nodev,nosuid"])
                .arg(&limit.image)
                .arg(mount_point),
            "mounting the build's disk (loop devices, run as root)",
        )?;
        let _ = std::fs::remove_dir(mount_point.join("lost+found"));
        Ok(limit)
    }

    /// The disk a predecessor of this builder mounted at `mount_point` (image in
    /// `image_dir`) for a build that still runs (a swarm job re-attached after a restart);
    /// `None` if nothing is mounted there. Nothing on it is touched.
    pub(crate) fn adopt(mount_point: &Path, image_dir: &Path) -> Option<Self> {
        let name = mount_point.file_name()?.to_string_lossy().into_owned();
        is_mounted(mount_point).then(|| Self {
            image: image_dir.join(format!("{name}.disk")),
            mount_point: mount_point.to_path_buf(),
        })
    }

    /// Where the disk is mounted on the host.
    pub(crate) fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// Makes the build's two writable directories on this disk: `target` (owned by
    /// [`BUILD_UID`](super::sandbox::BUILD_UID), 0755) and `tmp` (root's, 1777). Returns
    /// their host paths.
    pub(crate) fn build_dirs(&self) -> Result<(PathBuf, PathBuf), BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let uid = super::sandbox::BUILD_UID;
        let target = self.mount_point.join("target");
        let tmp = self.mount_point.join("tmp");
        let io = |p: &Path, e: std::io::Error| backend(&p.display().to_string(), e);
        std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
        std::os::unix::fs::chown(&target, Some(uid), Some(uid)).map_err(|e| io(&target, e))?;
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| io(&tmp, e))?;
        Ok((target, tmp))
    }

    /// True when the filesystem has (almost) no free space left: the build hit the limit.
    pub(crate) fn full(&self) -> bool {
        let out = Command::new("stat")
            .args(["-f", "--format=%a %S"])
            .arg(&self.mount_point)
            .output();
        let Ok(out) = out else { return false };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (free, block) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        free.saturating_mul(block) < 4 << 20
    }
}

impl Drop for DiskLimit {
    fn drop(&mut self) {
        unmount(&self.mount_point);
        let _ = std::fs::remove_dir_all(&self.mount_point);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Removes what crashed builds left in the work directory `root`: every mount below it
/// (deepest first) and every disk image in `image_dir`, but the disks mounted at `keep`
/// (builds that still run, which a backend re-attaches to) and their images. Called when a
/// builder starts, before anything else uses the work directory.
pub(crate) fn sweep_stale(root: &Path, image_dir: &Path, keep: &[PathBuf]) {
    let prefix = format!("{}/", root.display());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let kept = |p: &str| keep.iter().any(|k| Path::new(p).starts_with(k));
    let mut points: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix) && !kept(p))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).output();
    }
    let images: Vec<PathBuf> = keep
        .iter()
        .filter_map(|k| k.file_name())
        .map(|n| image_dir.join(format!("{}.disk", n.to_string_lossy())))
        .collect();
    match std::fs::read_dir(image_dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if !images.contains(&e.path()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(image_dir);
        }
    }
}
