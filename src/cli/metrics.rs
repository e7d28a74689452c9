//! The node's Prometheus endpoint: a minimal HTTP/1.1 responder on the given address that
//! answers every GET with the text exposition (the network's libp2p and synchronicity
//! metrics, plus the node's own gauges).

use std::fmt::Write as _;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::node::NodeHandle;

/// Starts serving metrics for `node` on `addr`.
pub(super) async fn serve(addr: std::net::SocketAddr, node: &NodeHandle) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let shared = node.shared().clone();
    let net = node.net().clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            // The request itself does not matter: every path gets the metrics.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
            // The network's registry ends the exposition with `# EOF`: ours go before it.
            let mut body = net.metrics_text();
            if let Some(stripped) = body.strip_suffix("# EOF\n") {
                body.truncate(stripped.len());
            }
            let (height, open, last_time_ms) = {
                let view = shared.view();
                (
                    view.height,
                    view.state.open_count(),
                    view.state.last_time_ms(),
                )
            };
            let size = shared.store.size().unwrap_or(0);
            let q = shared.build_status();
            let cosigned = shared
                .latest_cosigned()
                .ok()
                .flatten()
                .map_or(0, |c| c.checkpoint().size);
            let c = &shared.counters;
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            for (name, help, v) in [
                (
                    "synchronicity_connected_members",
                    "Members connected now.",
                    net.connected_members().len() as u64,
                ),
                (
                    "synchronicity_verdicts_reproduced_total",
                    "Entries logged as reproduced.",
                    load(&c.reproduced),
                ),
                (
                    "synchronicity_verdicts_failed_total",
                    "Entries logged as failed (t members agree on a failure).",
                    load(&c.failed),
                ),
                (
                    "synchronicity_verdicts_not_reproduced_total",
                    "Entries logged as not reproduced.",
                    load(&c.not_reproduced),
                ),
                (
                    "synchronicity_builds_total",
                    "Builds this member ran.",
                    load(&c.builds),
                ),
                (
                    "synchronicity_build_seconds_total",
                    "Wall time of those builds.",
                    load(&c.build_ms) / 1000,
                ),
                (
                    "synchronicity_applied_height",
                    "Last applied consensus height.",
                    height,
                ),
                ("synchronicity_log_size", "Entries in the log.", size),
                (
                    "synchronicity_cosigned_size",
                    "Size of the latest cosigned checkpoint.",
                    cosigned,
                ),
                (
                    "synchronicity_open_rounds",
                    "Requests ordered and not yet decided.",
                    open as u64,
                ),
                (
                    "synchronicity_local_build_failures_total",
                    "Builds that could not run here (registry, sandbox): nothing committed.",
                    load(&c.local_failures),
                ),
                (
                    "synchronicity_frames_dropped_total",
                    "Consensus frames dropped: the consensus actor's queue was full.",
                    load(&c.frames_dropped),
                ),
                (
                    "synchronicity_follow_polls_total",
                    "Index polls of followed crates.",
                    load(&c.follow_polls),
                ),
                (
                    "synchronicity_follow_not_modified_total",
                    "Index polls answered 304 Not Modified (ETag unchanged).",
                    load(&c.follow_not_modified),
                ),
                (
                    "synchronicity_follow_submitted_total",
                    "Followed releases this node ordered.",
                    load(&c.follow_submitted),
                ),
                (
                    "synchronicity_follow_errors_total",
                    "Failed polls or orders of followed releases.",
                    load(&c.follow_errors),
                ),
                (
                    "synchronicity_gossip_invalid_total",
                    "Gossiped protocol messages rejected as invalid (not relayed).",
                    load(&c.gossip_invalid),
                ),
                (
                    "synchronicity_mempool_refused_over_budget_total",
                    "Gossiped messages refused: their author holds the mempool's per-member bounds.",
                    load(&c.mempool_refused_over_budget),
                ),
                (
                    "synchronicity_http_connections_refused_total",
                    "HTTP connections closed at once (all, or one address's, connections taken).",
                    load(&c.http_connections_refused),
                ),
                (
                    "synchronicity_http_rate_limited_total",
                    "HTTP requests answered 429.",
                    load(&c.http_rate_limited),
                ),
                (
                    "synchronicity_builds_running",
                    "Builds running now.",
                    q.running.len() as u64,
                ),
                (
                    "synchronicity_builds_queued",
                    "Builds waiting for a slot.",
                    q.queued.len() as u64,
                ),
                (
                    "synchronicity_builds_peak_running",
                    "The most builds that ran at once since start.",
                    q.peak_running as u64,
                ),
                (
                    "synchronicity_halted",
                    "1 when the node cannot go on (it exits; see its last log line).",
                    u64::from(shared.halted().is_some()),
                ),
                (
                    "synchronicity_envelope_checks_total",
                    "Message signatures verified (each distinct message once).",
                    load(&shared.envelopes.verified),
                ),
                (
                    "synchronicity_last_block_time_seconds",
                    "Block time of the last applied height (liveness while idle).",
                    last_time_ms / 1000,
                ),
            ] {
                let _ = write!(
                    body,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
                );
            }
            // This member's failed builds by class (a crate that attacks the sandbox shows
            // as forbidden-output, output-limit or invalid-request).
            let name = "synchronicity_build_failures";
            let _ = write!(
                body,
                "# HELP {name} This member's failed builds, by class.\n# TYPE {name} counter\n"
            );
            for (i, class) in synchronicity_verify::entry::FAILURE_CLASSES
                .iter()
                .enumerate()
            {
                let v = load(&c.build_failures[i]);
                let _ = writeln!(body, "{name}_total{{class=\"{class}\"}} {v}");
            }
            // Build durations, cumulative buckets (OpenMetrics histogram).
            let name = "synchronicity_build_duration_seconds";
            let _ = write!(
                body,
                "# HELP {name} Wall time of this member's builds.\n# TYPE {name} histogram\n"
            );
            let mut total = 0;
            for (i, le) in crate::node::queue::BUILD_SECONDS_BUCKETS.iter().enumerate() {
                total += load(&c.build_seconds[i]);
                let _ = writeln!(body, "{name}_bucket{{le=\"{le}\"}} {total}");
            }
            total += load(&c.build_seconds[6]);
            let _ = writeln!(body, "{name}_bucket{{le=\"+Inf\"}} {total}");
            let _ = writeln!(body, "{name}_count {total}");
            let _ = writeln!(body, "{name}_sum {}", load(&c.build_ms) as f64 / 1000.0);
            body.push_str("# EOF\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    Ok(())
}
