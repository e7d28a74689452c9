//! One rule book for the whole group, as separate member processes (the real node with a
//! builder that returns chosen manifests):
//! - a `node.toml` that still sets a group rule is refused at start with one line naming
//!   the committee file;
//! - a member started with a committee file that differs only in a window signs for
//!   another domain: the group decides without it (one member "down" from the start, so
//!   the request is decided a grace after the t-th commitment, well inside the window) and
//!   that member decides nothing on its own;
//! - fail-stop: a member whose node directory (a small tmpfs, mounted by the test: it runs
//!   as root) fills up exits non-zero with one line; with space again and restarted, it
//!   catches up and every root matches.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Cluster;
use support::rules::windows;
use synchronicity::committee::ProtocolRules;
use synchronicity::protocol::Verdict;

/// A 60 s commit window, so that ending early (3 s least grace) is plainly visible.
fn rules() -> ProtocolRules {
    windows(60, 3, 10)
}
const NODE_TOML: &str = "idle_interval_ms = 1000\n";

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rule_book_member_rules_cannot_diverge() {
    let mut c = Cluster::new(71, 4, rules(), NODE_TOML);
    // A window in node.toml: refused at start, one line, naming the committee file.
    std::fs::write(c.dir(3).join("node.toml"), "commit_window_secs = 1\n").unwrap();
    let o = Command::new(&c.binary)
        .arg("--dir")
        .arg(c.dir(3))
        .arg("--committee")
        .arg(&c.committee_file)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("commit_window_secs")
            && err.contains("[protocol]")
            && err.contains(&c.committee_file.display().to_string()),
        "{err}"
    );

    // Member 3 runs the same members under a 1-second commit window: another digest.
    std::fs::write(c.dir(3).join("node.toml"), NODE_TOML).unwrap();
    let mut file = c.tc.committee.to_file();
    file.protocol.commit_window_secs = 1;
    file.protocol.commit_grace_secs = 1;
    let other = synchronicity::committee::Committee::from_file(file).unwrap();
    assert_ne!(other.key_id(), c.tc.committee.key_id());
    let other_file = c.root.path().join("committee-fast.toml");
    std::fs::write(&other_file, other.to_toml()).unwrap();
    c.committee_override[3] = Some(other_file);
    for i in 0..4 {
        c.start(i);
    }
    let asked = Instant::now();
    c.submit(0, "ruled", "1.0.0").await;
    let st = c.decided_on(&[0, 1, 2], "ruled@1.0.0", 60).await;
    let took = asked.elapsed();
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert!(e.silent.is_empty() && e.misbehaviour.is_empty(), "{e:?}");
    println!(
        "one member out from the start: decided in {took:?} (builds 50 ms, least grace 3 s, commit window 60 s)"
    );
    assert!(
        took < Duration::from_secs(20),
        "decided a grace after the t-th commitment, not at the 60 s window: {took:?}"
    );
    // The member with its own rules applied nothing and logged nothing: no private history.
    let s3 = c.status(3, None).await.expect("member 3 answers");
    assert_eq!((s3.applied_height, s3.log_size), (0, 0), "{s3:?}");
    let head = c.converge(&[0, 1, 2], 30).await;
    assert_eq!(head.log_size, 1);
    for i in 0..4 {
        c.stop(i);
    }
    for i in 0..3 {
        c.fsck(i);
    }
}

/// Unmounts on drop (also when the test fails).
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a `size` tmpfs at `dir`, keeping what `dir` held.
fn tmpfs_over(dir: &Path, size: &str) -> Mount {
    let keep = dir.with_extension("keep");
    std::fs::rename(dir, &keep).unwrap();
    std::fs::create_dir(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(
        ok,
        "mount tmpfs on {} (the tests run as root)",
        dir.display()
    );
    let m = Mount(dir.to_path_buf());
    for e in std::fs::read_dir(&keep).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    m
}

/// Fills the file system of `dir` (a filler file written until ENOSPC).
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fills_stops_then_catches_up() {
    let mut c = Cluster::new(72, 4, rules(), NODE_TOML);
    let _mount = tmpfs_over(&c.dir(3), "16m");
    for i in 0..4 {
        c.start(i);
    }
    c.submit(0, "before", "1.0.0").await;
    c.decided_on(&[0, 1, 2, 3], "before@1.0.0", 60).await;
    let filler = fill(&c.dir(3));
    let filled = Instant::now();
    c.submit(0, "during", "1.0.0").await;
    // Its next durable write fails (the WAL, a round file or the store): it exits.
    let status = c
        .wait_exit(3, Duration::from_secs(60))
        .expect("member 3 exits once a write fails");
    let exited_at = utc_seconds_of_day(std::time::SystemTime::now());
    let stopped = filled.elapsed();
    assert!(!status.success());
    let log = std::fs::read_to_string(c.dir(3).join("node.log")).unwrap_or_default();
    let last = last_line(log.as_bytes());
    assert!(last.starts_with("error: halted: "), "last line: {last}");
    println!("member 3 filled; exited {stopped:?} later: {last}");
    // The halting line and the exit are close: the node does not linger after a failure.
    // The failing write is logged when it happens ("...; stopping" or "halting: ..."),
    // with the log's UTC timestamp: the process exited within 5 s of it.
    let failed_at = log
        .lines()
        .find(|l| l.contains("halting:") || l.contains("; stopping"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(log_seconds_of_day)
        .unwrap_or_else(|| panic!("the node logged its failing write:\n{log}"));
    let lag = exited_at - failed_at;
    println!("failing write → exit: {lag:.2} s");
    assert!(
        (0.0..=5.0).contains(&lag),
        "exit {lag:.2} s after the failing write"
    );
    // The others go on without it.
    c.decided_on(&[0, 1, 2], "during@1.0.0", 60).await;
    // Space again: it restarts, catches up, and every root matches.
    std::fs::remove_file(filler).unwrap();
    c.start(3);
    c.submit(1, "after", "1.0.0").await;
    c.decided_on(&[0, 1, 2, 3], "after@1.0.0", 90).await;
    let head = c.converge(&[0, 1, 2, 3], 60).await;
    assert_eq!(head.log_size, 3);
    for i in 0..4 {
        c.stop(i);
        c.fsck(i);
    }
}

/// Seconds since 00:00 UTC of a time.
fn utc_seconds_of_day(t: std::time::SystemTime) -> f64 {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// Seconds since 00:00 UTC of a tracing timestamp `2026-12-01T09:45:12.123456Z`.
fn log_seconds_of_day(ts: &str) -> Option<f64> {
    let time = ts.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}
