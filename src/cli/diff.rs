//! `diff`: why a build was not reproduced. For a decided request, the artifacts of two
//! members that revealed different manifests are fetched, each file checked against THAT
//! member's revealed manifest, and compared with diffoscope (Debian), which writes a text
//! and an HTML report.
//!
//! Trust: the entry comes with a proof (threshold cosignature and inclusion, the request id
//! asked); a member's revealed digest is in that entry (the attesters share the entry's
//! digest, each dissenter has its own); the manifest text is fetched by that digest from any
//! member (members keep the dissenters' manifests with the entry) and hashes to it; every
//! artifact hashes to its line in that manifest. What reaches diffoscope is therefore what
//! each member's build produced, or the command stops.
//!
//! Hostile input: the files are a crate author's build output. Paths are the manifest's
//! (relative, no `.` or `..`: [`Manifest::parse`]), written under a new directory; the
//! number of files compared and their size are bounded; diffoscope runs confined
//! ([`confined_diffoscope`]: bubblewrap, no network, a fresh `/tmp`, home directories
//! hidden, as an unprivileged user when started as root, with a time limit), because
//! parsing a crafted file is how a diff tool is attacked.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_light::ProofQuery;

use super::client::{runtime, start};
use super::fetch::{PeerArgs, fetch_artifact};
use crate::verify::Manifest;
use crate::verify::entry::LogEntry;
use crate::verify::manifest::manifest_bound;

/// Most differing files fetched and compared (the rest are listed).
pub(super) const MAX_FILES: usize = 64;
/// Longest diffoscope run.
const DIFFOSCOPE_SECS: u64 = 600;
/// Largest report diffoscope writes (its own `--max-report-size`).
const MAX_REPORT: u64 = 16 << 20;
/// The unprivileged user diffoscope runs as when `diff` runs as root (nobody).
const NOBODY: u32 = 65534;

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The request id (hex) of a decided entry with dissenters.
    pub request: String,
    /// The two members to compare, by committee position [default: one of the largest
    /// group of equal digests, and one that revealed another manifest].
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub members: Option<Vec<u32>>,
    /// A new directory for the files and the reports; a node's web view links the report
    /// when it is `NODE_DIR/diffs/REQUEST_ID`.
    #[arg(long)]
    pub out: PathBuf,
    /// Most MiB of differing files fetched, both sides together.
    #[arg(long, default_value_t = 4096)]
    pub max_mib: u64,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// One member's side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Side {
    /// Committee position.
    pub(super) member: u32,
    /// The digest it revealed.
    pub(super) digest: [u8; 32],
}

/// Every member's revealed digest: the attesters share the entry's digest, each dissenter
/// has its own.
pub(super) fn revealed(entry: &LogEntry, attesters: &[usize]) -> Vec<Side> {
    let mut out: Vec<Side> = Vec::new();
    if let Ok(d) = <[u8; 32]>::try_from(entry.digest.as_slice()) {
        out.extend(attesters.iter().map(|&m| Side {
            member: m as u32,
            digest: d,
        }));
    }
    for d in &entry.dissenters {
        if let Ok(digest) = d.digest.as_slice().try_into() {
            out.push(Side {
                member: d.member,
                digest,
            });
        }
    }
    out.sort_by_key(|s| s.member);
    out
}

/// The two sides to compare: the members asked, or a member of the largest group of equal
/// digests and the first member with another digest. Failure digests are no manifests:
/// `is_manifest` tells them apart.
pub(super) fn choose_sides(
    sides: &[Side],
    asked: Option<(u32, u32)>,
    is_manifest: impl Fn(&[u8; 32]) -> bool,
) -> Result<(Side, Side), String> {
    let find = |m: u32| {
        sides
            .iter()
            .find(|s| s.member == m)
            .copied()
            .ok_or_else(|| format!("member {m} revealed no digest for this request"))
    };
    let (a, b) = match asked {
        Some((a, b)) => (find(a)?, find(b)?),
        None => {
            let manifests: Vec<Side> = sides
                .iter()
                .filter(|s| is_manifest(&s.digest))
                .copied()
                .collect();
            let count = |d: &[u8; 32]| manifests.iter().filter(|s| s.digest == *d).count();
            let a = *manifests
                .iter()
                .max_by_key(|s| (count(&s.digest), std::cmp::Reverse(s.member)))
                .ok_or("no member revealed a manifest (the builds failed): nothing to compare")?;
            let b = *manifests
                .iter()
                .find(|s| s.digest != a.digest)
                .ok_or("every member that revealed a manifest revealed the same one")?;
            (a, b)
        }
    };
    for s in [a, b] {
        if !is_manifest(&s.digest) {
            return Err(format!(
                "member {} revealed a build failure, not a manifest: read its build log",
                s.member
            ));
        }
    }
    if a.digest == b.digest {
        return Err(format!(
            "members {} and {} revealed the same manifest",
            a.member, b.member
        ));
    }
    Ok((a, b))
}

/// One path that differs: its sha256 on each side (`None`: not in that manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    /// The manifest path.
    pub(super) path: String,
    /// Side A's sha256.
    pub(super) a: Option<[u8; 32]>,
    /// Side B's sha256.
    pub(super) b: Option<[u8; 32]>,
}

/// The paths whose files differ between two manifests, in path order.
pub(super) fn changes(a: &Manifest, b: &Manifest) -> Vec<Change> {
    let mut paths: Vec<&str> = a.files().map(|(p, _)| p).collect();
    paths.extend(b.files().map(|(p, _)| p));
    paths.sort_unstable();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| {
            let (x, y) = (a.get(p).copied(), b.get(p).copied());
            (x != y).then(|| Change {
                path: p.to_string(),
                a: x,
                b: y,
            })
        })
        .collect()
}

fn short(h: Option<[u8; 32]>) -> String {
    h.map_or_else(|| "(absent)".into(), |h| hex::encode(&h[..8]))
}

/// `diff`.
pub(super) fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let id: [u8; 32] = hex::decode(&args.request)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a request id (64 hex digits)", args.request))?;
    let out = &args.out;
    if std::fs::symlink_metadata(out).is_ok() {
        bail!(
            "{}: exists; give a new directory (nothing written)",
            out.display()
        );
    }
    // Everything is fetched into a staging directory beside `out`, renamed to `out` once
    // complete: a failure leaves no half-filled `out` (a crash at worst the staging one).
    let name = out
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{}: not a directory name", out.display()))?
        .to_string_lossy()
        .to_string();
    check_tools()?;
    let staging = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    if let Some(parent) = staging.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    std::fs::create_dir(&staging).with_context(|| staging.display().to_string())?;
    // Fetched, compared and reported in the staging directory; renamed to `out` last, so a
    // failure at any step leaves no `out` that would refuse the next try.
    let result = fetch_into(&args, id, &staging).and_then(|(a, b)| {
        readable_tree(&staging)?;
        let differs =
            confined_diffoscope(&side_dir(&staging, a), &side_dir(&staging, b), &staging)?;
        std::fs::rename(&staging, out).with_context(|| out.display().to_string())?;
        Ok(differs)
    });
    let differs = match result {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    print!(
        "{}",
        std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default()
    );
    println!(
        "diffoscope: {} (report: {}, {})",
        if differs {
            "the files differ"
        } else {
            "no difference found"
        },
        out.join("diff.txt").display(),
        out.join("diff.html").display()
    );
    Ok(())
}

/// diffoscope and bubblewrap are installed (checked before anything is fetched).
fn check_tools() -> anyhow::Result<()> {
    if !Path::new("/usr/bin/diffoscope").is_file() {
        bail!("diffoscope is not installed (apt-get install diffoscope-minimal); nothing written");
    }
    if which("bwrap").is_none() {
        bail!("bubblewrap is not installed (apt-get install bubblewrap); nothing written");
    }
    Ok(())
}

/// Directories 0755 and files 0644 below `dir` (whatever the umask): the unprivileged
/// diffoscope must read the trees.
fn readable_tree(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .with_context(|| d.display().to_string())?;
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let e = e?;
            let kind = e.file_type()?;
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644))?;
            }
        }
    }
    Ok(())
}

/// Fetches the two sides' manifests and differing files into `out` (each file written as
/// it arrives, at most `--max-mib` in all) and writes `summary.txt`.
fn fetch_into(args: &DiffArgs, id: [u8; 32], out: &Path) -> anyhow::Result<(Side, Side)> {
    let setup = args.peers.setup()?;
    let deadline = args.peers.deadline();
    let asked = args.members.as_ref().map(|m| (m[0], m[1]));
    let max_bytes = args.max_mib.saturating_mul(1 << 20);
    let write = |path: &Path, bytes: &[u8]| -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        crate::node_dir::write_atomic(path, bytes)?;
        Ok(())
    };
    runtime()?.block_on(async {
        let client = start(&setup).await?;
        let result = async {
            let proof = client
                .proof(&ProofQuery::request(id))
                .await
                .with_context(|| format!("the entry of request {}", args.request))?;
            let record = proof.record();
            let entry = record.entry();
            let all = revealed(entry, record.attesters());
            // Fetch every distinct digest's text once; a digest no member serves as a
            // manifest is a failure (or lost): not comparable.
            let mut texts: Vec<([u8; 32], Manifest, String)> = Vec::new();
            for s in &all {
                if texts.iter().any(|(d, _, _)| *d == s.digest) {
                    continue;
                }
                if let Ok(bytes) = client.blob(&s.digest).await
                    && let Ok(text) = String::from_utf8(bytes)
                    && let Ok(m) = Manifest::parse_within(&text, manifest_bound(&entry.request))
                {
                    texts.push((s.digest, m, text));
                }
            }
            let (a, b) = choose_sides(&all, asked, |d| texts.iter().any(|(t, _, _)| t == d))
                .map_err(|e| anyhow::anyhow!("request {}: {e}", args.request))?;
            let manifest = |d: &[u8; 32]| {
                texts
                    .iter()
                    .find(|(t, _, _)| t == d)
                    .map(|(_, m, text)| (m.clone(), text.clone()))
                    .expect("chosen sides have manifests")
            };
            let (ma, ta) = manifest(&a.digest);
            let (mb, tb) = manifest(&b.digest);
            write(&side_dir(out, a).with_extension("manifest"), ta.as_bytes())?;
            write(&side_dir(out, b).with_extension("manifest"), tb.as_bytes())?;
            let changed = changes(&ma, &mb);
            let mut fetched = 0u64;
            for c in changed.iter().take(MAX_FILES) {
                for (side, m, sha) in [(a, &ma, c.a), (b, &mb, c.b)] {
                    if sha.is_some() {
                        let bytes = fetch_artifact(&client, m, &c.path, deadline).await?;
                        fetched += bytes.len() as u64;
                        if fetched > max_bytes {
                            bail!(
                                "the differing files are over --max-mib {} MiB; nothing written",
                                args.max_mib
                            );
                        }
                        write(&side_dir(out, side).join(&c.path), &bytes)?;
                    }
                }
            }
            let mut summary = format!(
                "request {}: {} ({:?})\nA: member {} manifest {}\nB: member {} manifest {}\n{} files differ:\n",
                args.request,
                entry.request.spec(),
                entry.verdict,
                a.member,
                hex::encode(a.digest),
                b.member,
                hex::encode(b.digest),
                changed.len()
            );
            for c in &changed {
                summary.push_str(&format!("  {}  A {}  B {}\n", c.path, short(c.a), short(c.b)));
            }
            if changed.len() > MAX_FILES {
                summary.push_str(&format!("(the first {MAX_FILES} are compared)\n"));
            }
            write(&out.join("summary.txt"), summary.as_bytes())?;
            anyhow::Ok((a, b))
        }
        .await;
        client.shutdown().await;
        result
    })
}

fn side_dir(out: &Path, s: Side) -> PathBuf {
    out.join(format!("member-{}", s.member))
}

/// Runs `diffoscope a b` confined (see the module doc), writing `out/diff.txt` and
/// `out/diff.html`. True if it found differences.
///
/// The sandbox sees the system's programs (`/usr` and the links into it, the few files
/// of `/etc` they read), the two trees read-only and an empty report directory: not the
/// host's other files, so not a node directory, its keys or its control socket. As root
/// it runs as nobody in a cgroup of [`DIFF_MEMORY`] and [`DIFF_PROCESSES`]; otherwise in
/// the caller's user namespace with no further ones, its address space limited.
pub(super) fn confined_diffoscope(a: &Path, b: &Path, out: &Path) -> anyhow::Result<bool> {
    for d in [a, b] {
        std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
    }
    let reports = out.join("reports");
    std::fs::create_dir(&reports).with_context(|| reports.display().to_string())?;
    let result = run_diffoscope(a, b, &reports).and_then(|(differs, stderr)| {
        // The reports leave the unprivileged user's directory for ours: opened without
        // following a link, checked on the open file, read with a bound.
        for name in ["diff.txt", "diff.html"] {
            let bytes = read_report(&reports.join(name))
                .with_context(|| format!("diffoscope's {name} ({stderr})"))?;
            crate::node_dir::write_atomic(&out.join(name), &bytes)?;
        }
        Ok(differs)
    });
    let _ = std::fs::remove_dir_all(&reports);
    result
}

/// Most memory and processes of a confined diffoscope run (as root: its cgroup).
const DIFF_MEMORY: u64 = 4 << 30;
const DIFF_PROCESSES: u32 = 512;

/// Whether the files differ, and the last line diffoscope (or the sandbox) printed.
fn run_diffoscope(a: &Path, b: &Path, reports: &Path) -> anyhow::Result<(bool, String)> {
    let root = nix_is_root();
    let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| p.display().to_string());
    let (a, b, reports_abs) = (abs(a)?, abs(b)?, abs(reports)?);
    let cgroup = if root {
        // The unprivileged user writes the reports, and reads nothing else of ours.
        std::os::unix::fs::chown(reports, Some(NOBODY), Some(NOBODY))
            .with_context(|| reports.display().to_string())?;
        Some(
            crate::builder::BuildCgroup::create(
                &format!("diff-{}", std::process::id()),
                DIFF_MEMORY,
                DIFF_PROCESSES,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        None
    };
    // In the cgroup (as root), as the sandbox backend's builds are.
    let mut c = crate::builder::BuildCgroup::command_in(cgroup.as_ref());
    // --foreground: in our process group, so an interrupt of `diff` reaches the sandbox
    // too; at the time limit the sandbox's supervisor is killed and its PID namespace
    // with it.
    c.args([
        "timeout",
        "--foreground",
        "-s",
        "KILL",
        &DIFFOSCOPE_SECS.to_string(),
    ]);
    if !root {
        c.args(["prlimit", &format!("--as={}", DIFF_MEMORY * 2), "--"]);
    }
    c.arg("bwrap");
    if !root {
        c.args(["--unshare-user", "--disable-userns"]);
    }
    c.args([
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/usr",
        "/usr",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]);
    // Merged /usr (Debian): /bin, /lib… are links into it; elsewhere, directories.
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(top) {
            Ok(to) => {
                c.arg("--symlink").arg(to).arg(top);
            }
            Err(_) if Path::new(top).is_dir() => {
                c.args(["--ro-bind", top, top]);
            }
            Err(_) => {}
        }
    }
    // A parent bubblewrap makes implicitly is 0700: the unprivileged user could not read
    // what is bound below it.
    c.args(["--perms", "0755", "--dir", "/etc"]);
    for etc in [
        "/etc/alternatives",
        "/etc/ld.so.cache",
        "/etc/magic",
        "/etc/magic.mime",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/localtime",
        "/etc/mime.types",
    ] {
        c.args(["--ro-bind-try", etc, etc]);
    }
    c.args([
        "--perms",
        "1777",
        "--size",
        &(2u64 << 30).to_string(),
        "--tmpfs",
        "/tmp",
    ]);
    // Under the fresh /tmp (mount points need a parent the unprivileged user may enter).
    c.args(["--perms", "0755", "--dir", "/tmp/diff"]);
    c.arg("--ro-bind").arg(&a).arg("/tmp/diff/a");
    c.arg("--ro-bind").arg(&b).arg("/tmp/diff/b");
    c.arg("--bind").arg(&reports_abs).arg("/tmp/diff/out");
    c.args([
        "--chdir",
        "/tmp/diff",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
    ]);
    c.args(["--setenv", "HOME", "/tmp", "--setenv", "LC_ALL", "C.UTF-8"]);
    if root {
        c.args([
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
            "--",
            "/usr/bin/setpriv",
        ])
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args([
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]);
    }
    c.args([
        "--",
        "/usr/bin/diffoscope",
        "--no-progress",
        "--output-empty",
        "--exclude-directory-metadata=yes",
        "--max-report-size",
        &MAX_REPORT.to_string(),
        "--text",
        "/tmp/diff/out/diff.txt",
        "--html",
        "/tmp/diff/out/diff.html",
        "a",
        "b",
    ]);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().context("cannot run bwrap")?;
    // Its stderr, read to the end, its last 64 KiB kept (it speaks about hostile files).
    let mut err: Vec<u8> = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let mut buf = [0u8; 8192];
        while let Ok(n) = e.read(&mut buf) {
            if n == 0 {
                break;
            }
            err.extend_from_slice(&buf[..n]);
            if err.len() > 64 * 1024 {
                err.drain(..err.len() - 64 * 1024);
            }
        }
    }
    let status = child.wait().context("waiting for diffoscope")?;
    drop(cgroup);
    let err = String::from_utf8_lossy(&err);
    let last: String = err
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    match status.code() {
        Some(0) => Ok((false, last)),
        // diffoscope's "differences found"; the sandbox's own failures are told apart by
        // the missing reports.
        Some(1) => Ok((true, last)),
        _ => bail!("diffoscope failed ({status}): {last}"),
    }
}

/// A report file written by the unprivileged run: a regular file (not a link: opened with
/// `O_NOFOLLOW`, checked on the open file) of at most twice [`MAX_REPORT`] bytes.
fn read_report(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let limit = MAX_REPORT * 2;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| path.display().to_string())?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > limit {
        bail!("not a regular file of at most {limit} bytes");
    }
    let mut bytes = Vec::new();
    f.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn nix_is_root() -> bool {
    // The effective user of this process, as the kernel reports it.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::entry::Dissent;

    fn side(member: u32, d: u8) -> Side {
        Side {
            member,
            digest: [d; 32],
        }
    }

    #[test]
    fn the_sides_are_a_majority_member_and_a_dissenter_with_a_manifest() {
        // Members 0 and 2 revealed manifest 1, member 1 manifest 2, member 3 a failure (9).
        let sides = [side(0, 1), side(1, 2), side(2, 1), side(3, 9)];
        let manifest = |d: &[u8; 32]| d[0] != 9;
        assert_eq!(
            choose_sides(&sides, None, manifest).unwrap(),
            (side(0, 1), side(1, 2))
        );
        assert_eq!(
            choose_sides(&sides, Some((1, 2)), manifest).unwrap(),
            (side(1, 2), side(2, 1))
        );
        assert!(
            choose_sides(&sides, Some((0, 3)), manifest)
                .unwrap_err()
                .contains("member 3 revealed a build failure")
        );
        assert!(
            choose_sides(&sides, Some((0, 2)), manifest)
                .unwrap_err()
                .contains("the same manifest")
        );
        assert!(
            choose_sides(&sides, Some((0, 7)), manifest)
                .unwrap_err()
                .contains("member 7 revealed no digest")
        );
        assert!(
            choose_sides(&[side(0, 1), side(1, 1)], None, manifest)
                .unwrap_err()
                .contains("the same one")
        );
        assert!(
            choose_sides(&[side(0, 9)], None, manifest)
                .unwrap_err()
                .contains("nothing to compare")
        );
    }

    #[test]
    fn revealed_digests_come_from_the_attesters_and_the_dissenters() {
        let mut entry = LogEntry {
            format: crate::verify::entry::ENTRY_FORMAT,
            request: crate::testing::request("nr", "0.1.0", "l").request,
            verdict: crate::verify::Verdict::Reproduced,
            digest: vec![1; 32],
            attestation: Vec::new(),
            dissenters: vec![Dissent {
                member: 3,
                digest: vec![2; 32],
            }],
            silent: Vec::new(),
            misbehaviour: Vec::new(),
            height: 1,
            epoch: 0,
        };
        assert_eq!(
            revealed(&entry, &[0, 2]),
            [side(0, 1), side(2, 1), side(3, 2)]
        );
        entry.digest = Vec::new();
        assert_eq!(revealed(&entry, &[]), [side(3, 2)]);
    }

    #[test]
    fn changes_list_the_differing_and_one_sided_paths() {
        let mut a = Manifest::default();
        a.insert("t/release/same", [1; 32]);
        a.insert("t/release/bin", [2; 32]);
        a.insert("t/release/only-a", [3; 32]);
        let mut b = Manifest::default();
        b.insert("t/release/same", [1; 32]);
        b.insert("t/release/bin", [4; 32]);
        b.insert("t/release/only-b", [5; 32]);
        let c = changes(&a, &b);
        let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["t/release/bin", "t/release/only-a", "t/release/only-b"]
        );
        assert_eq!((c[1].a, c[1].b), (Some([3; 32]), None));
        assert_eq!((c[2].a, c[2].b), (None, Some([5; 32])));
    }
}
