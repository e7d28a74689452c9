//! What a test reads of processes: peak memory, and a bounded wait for a condition.

use std::time::Duration;

/// The peak resident memory (`VmHWM`) of process `pid`, in KiB; 0 if it cannot be read.
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// [`peak_rss_kib`] in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> u64 {
    peak_rss_kib(pid) / 1024
}

/// Polls `f` every 100 ms until it holds, or panics after `secs` with `what`.
pub(crate) async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
