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
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_light::ProofQuery;

use super::client::{ClientSetup, runtime, start};
use super::fetch::{PeerArgs, fetch_artifact};
use crate::verify::Manifest;
use crate::verify::entry::LogEntry;

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
    /// A new (or empty) directory for the files and the reports; a node's web view links
    /// the report when it is `NODE_DIR/diffs/REQUEST_ID`.
    #[arg(long)]
    pub out: PathBuf,
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
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| out.display().to_string())?
            .next()
            .is_some()
    {
        bail!(
            "{}: exists and is not empty; nothing written",
            out.display()
        );
    }
    let setup = ClientSetup::load(
        args.peers.trust.as_deref(),
        args.peers.chain.as_deref(),
        &args.peers.peer,
    )?;
    let deadline = args.peers.deadline();
    let asked = args.members.as_ref().map(|m| (m[0], m[1]));
    let (sides, files) = runtime()?.block_on(async {
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
                    && let Ok(m) = Manifest::parse(&text)
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
            let changed = changes(&ma, &mb);
            let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
                (side_dir(out, a).with_extension("manifest"), ta.into_bytes()),
                (side_dir(out, b).with_extension("manifest"), tb.into_bytes()),
            ];
            for c in changed.iter().take(MAX_FILES) {
                for (side, m, sha) in [(a, &ma, c.a), (b, &mb, c.b)] {
                    if sha.is_some() {
                        let bytes = fetch_artifact(&client, m, &c.path, deadline).await?;
                        files.push((side_dir(out, side).join(&c.path), bytes));
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
            files.push((out.join("summary.txt"), summary.into_bytes()));
            anyhow::Ok(((a, b), files))
        }
        .await;
        client.shutdown().await;
        result
    })?;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    for (path, bytes) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        crate::node_dir::write_atomic(path, bytes)?;
    }
    print!(
        "{}",
        std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default()
    );
    let (a, b) = sides;
    let differs = confined_diffoscope(&side_dir(out, a), &side_dir(out, b), out)?;
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

fn side_dir(out: &Path, s: Side) -> PathBuf {
    out.join(format!("member-{}", s.member))
}

/// Runs `diffoscope a b` confined (see the module doc), writing `out/diff.txt` and
/// `out/diff.html`. True if it found differences.
pub(super) fn confined_diffoscope(a: &Path, b: &Path, out: &Path) -> anyhow::Result<bool> {
    which("diffoscope").ok_or_else(|| {
        anyhow::anyhow!("diffoscope is not installed (apt-get install diffoscope-minimal)")
    })?;
    which("bwrap").ok_or_else(|| {
        anyhow::anyhow!("bubblewrap is not installed (apt-get install bubblewrap)")
    })?;
    for d in [a, b] {
        std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
    }
    let reports = out.join("reports");
    std::fs::create_dir_all(&reports).with_context(|| reports.display().to_string())?;
    let root = nix_is_root();
    if root {
        // The unprivileged user writes the reports, and reads nothing else of ours.
        std::os::unix::fs::chown(&reports, Some(NOBODY), Some(NOBODY))
            .with_context(|| reports.display().to_string())?;
    }
    let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| p.display().to_string());
    let (a, b, reports_abs) = (abs(a)?, abs(b)?, abs(&reports)?);
    let mut c = Command::new("timeout");
    c.args(["-s", "KILL", &DIFFOSCOPE_SECS.to_string(), "bwrap"]);
    if !root {
        c.arg("--unshare-user");
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
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/root",
        "--tmpfs",
        "/home",
        "--tmpfs",
        "/run",
    ]);
    // Under the fresh /tmp: the host's root stays read-only, and mount points need a
    // writable parent (one the unprivileged user may enter).
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
        "diffoscope",
        "--no-progress",
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
    let output = c.output().context("cannot run bwrap")?;
    let code = output.status.code();
    if !matches!(code, Some(0) | Some(1)) {
        let err = String::from_utf8_lossy(&output.stderr);
        let last = err
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect::<String>();
        bail!("diffoscope failed ({:?}): {last}", output.status);
    }
    // The reports leave the unprivileged user's directory for ours (bounded copies: the
    // files were written by a process that parsed hostile input).
    for name in ["diff.txt", "diff.html"] {
        let from = reports.join(name);
        let meta = std::fs::symlink_metadata(&from)
            .with_context(|| format!("diffoscope wrote no {name}"))?;
        if !meta.is_file() || meta.len() > MAX_REPORT * 2 {
            bail!(
                "diffoscope's {name} is not a regular file of at most {} bytes",
                MAX_REPORT * 2
            );
        }
        let bytes = std::fs::read(&from).with_context(|| from.display().to_string())?;
        crate::node_dir::write_atomic(&out.join(name), &bytes)?;
    }
    let _ = std::fs::remove_dir_all(&reports);
    Ok(code == Some(1))
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
