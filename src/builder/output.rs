//! A build's process, watched: its output read up to a cap, its time bounded, in both
//! backends alike.
//!
//! The build writes its stdout and stderr through pipes the host reads. Anything in the
//! sandbox can write there (a build script opens `/proc/<cargo>/fd/1`), as much and as long
//! as it likes, so the host counts every byte of both streams together: past
//! [`Limits::output`](super::Limits) the build is killed and fails with `output-limit`, and
//! nothing past the cap is kept. Lines are split with a bounded buffer (a line longer than
//! [`MAX_LINE`] is cut), so one endless line costs no more than many short ones. Cargo's
//! JSON messages (stdout lines that start with `{`) are kept apart from the log text; they
//! are only hints (see `artifacts.rs`).

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use super::limits::{DiskLimit, Exceeded};
use super::{BuildError, FailureClass, Job, RunOutput};

/// Longest line kept, in bytes; the rest of a longer line is counted but dropped.
pub(crate) const MAX_LINE: usize = 64 << 10;
/// How long the readers may take to see their pipes close once the build has exited (a
/// process that escaped the kill could hold them open; it is not waited for).
const DRAIN: Duration = Duration::from_secs(5);
/// How often the watcher looks at the process, the clock and the byte count.
const TICK: Duration = Duration::from_millis(50);

/// One of the build's output pipes.
type Pipe = Box<dyn Read + Send>;

/// What the build wrote, cut at the cap.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// Cargo's JSON messages from stdout.
    pub(crate) json: Vec<String>,
    /// Every other line, `[stdout] ` or `[stderr] ` first.
    pub(crate) log: String,
    /// The build said `No space left on device`.
    pub(crate) saw_enospc: bool,
}

/// How a watched build ended.
#[derive(Debug)]
pub(crate) struct Watched {
    /// The exit status of the process (after a kill, the kill's).
    pub(crate) status: ExitStatus,
    /// Killed at the time limit.
    pub(crate) timed_out: bool,
    /// Killed at the output cap.
    pub(crate) output_over: bool,
    /// What it wrote, up to the cap.
    pub(crate) captured: Captured,
    /// Its disk was seen full where it ran (a swarm worker's memory filesystems: not the
    /// disk its results were copied onto).
    pub(crate) disk_seen_full: bool,
}

impl Watched {
    /// What a backend hands back once every process of the build is gone: the result by
    /// [`Watched::classify`] (a full disk counts as seen on the disk or in the output), the
    /// output, and the build's target directory on its mounted disk.
    pub(crate) fn into_run_output(
        self,
        exceeded: Exceeded,
        disk: DiskLimit,
        target: PathBuf,
        job: &Job,
    ) -> RunOutput {
        let disk_full = disk.full() || self.captured.saw_enospc || self.disk_seen_full;
        let result = self.classify(exceeded, disk_full, job);
        RunOutput {
            result,
            json: self.captured.json,
            log: self.captured.log,
            target_dir: Some(target),
            disk: Some(disk),
        }
    }

    /// The build's result, by what the watcher and the cgroups counted (never by what the
    /// build printed, but for `No space left on device` next to a full disk): the output
    /// cap, the time limit, success, then the memory, process and disk limits, a compile
    /// error (cargo's 101), else a sandbox error.
    pub(crate) fn classify(
        &self,
        exceeded: Exceeded,
        disk_full: bool,
        job: &Job,
    ) -> Result<(), (FailureClass, String)> {
        let status = self.status;
        let l = &job.limits;
        if self.output_over {
            Err((
                FailureClass::OutputLimit,
                format!("killed past {} MiB of output", l.output.div_ceil(1 << 20)),
            ))
        } else if self.timed_out {
            Err((FailureClass::Timeout, format!("killed after {:?}", l.time)))
        } else if status.success() {
            Ok(())
        } else if exceeded.oom_kills > 0 {
            Err((
                FailureClass::OutOfMemory,
                format!(
                    "{} process(es) killed at the memory limit of {} MiB",
                    exceeded.oom_kills,
                    l.memory >> 20
                ),
            ))
        } else if exceeded.fork_refusals > 0 {
            Err((
                FailureClass::TooManyProcesses,
                format!(
                    "{} fork(s) refused at the limit of {} processes",
                    exceeded.fork_refusals, l.processes
                ),
            ))
        } else if disk_full {
            Err((
                FailureClass::DiskLimit,
                format!("the build's disk of {} MiB is full", l.disk >> 20),
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
        }
    }
}

/// One stream's reader: splits lines with a bounded buffer and counts into the shared total.
struct Reader {
    tag: &'static str,
    json: bool,
    total: Arc<AtomicU64>,
    cap: u64,
    over: Arc<AtomicBool>,
    line: Vec<u8>,
    cut: bool,
    /// Bytes kept so far, with a per-line overhead: at most `cap` (many tiny lines cost
    /// their bookkeeping too).
    kept: u64,
    out: Captured,
}

/// What one kept line costs beyond its bytes.
const LINE_OVERHEAD: u64 = 32;

impl Reader {
    /// A reader of one stream tagged `tag`, counting into the shared `total` up to `cap`.
    fn new(
        tag: &'static str,
        json: bool,
        total: &Arc<AtomicU64>,
        cap: u64,
        over: &Arc<AtomicBool>,
    ) -> Self {
        Self {
            tag,
            json,
            total: total.clone(),
            cap,
            over: over.clone(),
            line: Vec::new(),
            cut: false,
            kept: 0,
            out: Captured::default(),
        }
    }

    fn run(mut self, mut pipe: impl Read) -> Captured {
        let mut buf = [0u8; 16 << 10];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let before = self.total.fetch_add(n as u64, Ordering::Relaxed);
            if before.saturating_add(n as u64) > self.cap {
                self.over.store(true, Ordering::Relaxed);
                // Keep reading (and dropping) until the kill closes the pipe, so the writer
                // never blocks the kill; nothing more is kept.
                continue;
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    self.end_line();
                } else if self.line.len() < MAX_LINE {
                    self.line.push(b);
                } else {
                    self.cut = true;
                }
            }
        }
        if !self.line.is_empty() {
            self.end_line();
        }
        self.out
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let cut = std::mem::take(&mut self.cut);
        if line.contains("No space left on device") {
            self.out.saw_enospc = true;
        }
        self.kept += line.len() as u64 + self.tag.len() as u64 + LINE_OVERHEAD;
        if self.kept > self.cap {
            return;
        }
        if self.json && line.starts_with('{') {
            // A cut JSON line cannot parse; it is dropped.
            if !cut {
                self.out.json.push(line);
            }
            return;
        }
        self.out.log.push_str(self.tag);
        self.out.log.push_str(&line);
        if cut {
            self.out.log.push_str(" [line cut]");
        }
        self.out.log.push('\n');
    }
}

/// Watches `child` (its stdout and stderr piped) until it exits: kills it with `kill` past
/// `time` or past `cap` bytes of output (both streams together), and returns what it wrote.
/// `kill` must end the WHOLE build (every process, not only `child`): the sandbox's PID
/// namespace, the container.
pub(crate) fn watch(
    child: &mut Child,
    cap: u64,
    time: Duration,
    kill: &dyn Fn(),
) -> Result<Watched, BuildError> {
    let total = Arc::new(AtomicU64::new(0));
    let over = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(bool, Captured)>();
    let streams: [(Option<Pipe>, &'static str, bool); 2] = [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            "[stdout] ",
            true,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            "[stderr] ",
            false,
        ),
    ];
    let mut readers = 0;
    for (pipe, tag, json) in streams {
        let Some(pipe) = pipe else { continue };
        let reader = Reader::new(tag, json, &total, cap, &over);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((json, reader.run(pipe)));
        });
        readers += 1;
    }
    drop(tx);
    let start = Instant::now();
    let (mut timed_out, mut output_over) = (false, false);
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| BuildError::Backend(e.to_string()))?
        {
            break s;
        }
        if !timed_out && !output_over {
            if over.load(Ordering::Relaxed) {
                output_over = true;
                kill();
            } else if start.elapsed() > time {
                timed_out = true;
                kill();
            }
        }
        std::thread::sleep(TICK);
    };
    output_over |= over.load(Ordering::Relaxed);
    let mut parts: Vec<(bool, Captured)> = Vec::new();
    let drain_until = Instant::now() + DRAIN;
    while parts.len() < readers {
        let left = drain_until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(p) => parts.push(p),
            Err(_) => {
                tracing::warn!("a build's output pipe stayed open after it exited");
                break;
            }
        }
    }
    // stdout first, then stderr, as the log has always been laid out.
    parts.sort_by_key(|(json, _)| !json);
    let mut captured = Captured::default();
    for (_, p) in parts {
        captured.json.extend(p.json);
        captured.log.push_str(&p.log);
        captured.saw_enospc |= p.saw_enospc;
    }
    Ok(Watched {
        status,
        timed_out,
        output_over,
        captured,
        disk_seen_full: false,
    })
}

/// What a build detached from the host (a swarm job's `docker exec -d`) wrote to the files
/// `stdout` and `stderr` on its own disk, read as [`watch`] reads pipes: at most `cap` bytes
/// of both together (the rest is neither read nor kept); true when there was more. The files
/// are the build's: a link or anything but a regular file there reads as empty.
pub(crate) fn read_detached(stdout: &Path, stderr: &Path, cap: u64) -> (Captured, bool) {
    let total = Arc::new(AtomicU64::new(0));
    let over = Arc::new(AtomicBool::new(false));
    let mut captured = Captured::default();
    for (path, tag, json) in [(stdout, "[stdout] ", true), (stderr, "[stderr] ", false)] {
        let reader = Reader::new(tag, json, &total, cap, &over);
        let Some(file) = open_regular(path) else {
            continue;
        };
        let part = reader.run(file.take(cap.saturating_add(1)));
        captured.json.extend(part.json);
        captured.log.push_str(&part.log);
        captured.saw_enospc |= part.saw_enospc;
    }
    (captured, over.load(Ordering::Relaxed))
}

/// `path` opened for reading if it is a regular file (never through a symlink).
pub(crate) fn open_regular(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sh(script: &str) -> Child {
        Command::new("/bin/sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn lines_are_split_into_messages_and_log() {
        let mut c = sh("echo '{\"reason\":\"x\"}'; echo plain; echo oops >&2; printf tail");
        let w = watch(&mut c, 1 << 20, Duration::from_secs(30), &|| {}).unwrap();
        assert!(w.status.success() && !w.output_over && !w.timed_out);
        assert_eq!(w.captured.json, ["{\"reason\":\"x\"}"]);
        assert_eq!(
            w.captured.log,
            "[stdout] plain\n[stdout] tail\n[stderr] oops\n"
        );
    }

    #[test]
    fn output_past_the_cap_kills_the_build_and_is_not_kept() {
        // An endless stream with no newline, then an endless one with newlines.
        for script in ["exec cat /dev/zero", "exec yes"] {
            let mut c = sh(script);
            let pid = c.id();
            let kill = move || {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            };
            let w = watch(&mut c, 1 << 20, Duration::from_secs(60), &kill).unwrap();
            assert!(w.output_over && !w.timed_out, "{script}");
            assert!(!w.status.success());
            assert!(
                w.captured.log.len() <= 1 << 20,
                "{script}: {} bytes kept",
                w.captured.log.len()
            );
        }
    }

    #[test]
    fn time_past_the_limit_kills_the_build() {
        let mut c = sh("exec sleep 30");
        let pid = c.id();
        let kill = move || {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        };
        let w = watch(&mut c, 1 << 20, Duration::from_millis(300), &kill).unwrap();
        assert!(w.timed_out && !w.output_over && !w.status.success());
    }
}
