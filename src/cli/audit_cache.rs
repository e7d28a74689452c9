//! `audit`'s proof cache, refreshed by age: `--max-age`, writing a cached proof, and
//! moving a stale one forward to a fresh one only along the same log (see `audit`'s module
//! doc).

use anyhow::bail;

use super::client::{Client, ClientSetup};
use crate::log::merkle;
use crate::node::wire::{LightRequest, LightResponse};
use crate::verify::VerifiedRecord;

/// `--max-age`: a number of seconds, minutes, hours or days.
pub(super) fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (90s, 30m, 12h, 7d)"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: the unit is one of s, m, h, d")),
    };
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: too long"))
}

/// Writes `text` to the proof cache at `path` (atomically; a failure only costs time).
pub(super) fn keep_cached(path: Option<&std::path::Path>, text: &str) {
    if let Some(path) = path {
        let _ = path.parent().map(std::fs::create_dir_all);
        let _ = crate::node_dir::write_atomic(path, text.as_bytes());
    }
}

/// The refreshed answer for `spec`, if its checkpoint moves the cached one's forward in the
/// same log: not smaller, and consistent (the same root at the same size, or a consistency
/// proof from a member). A smaller one keeps the cached answer (a stale peer); a
/// contradiction is a SPLIT VIEW error.
pub(super) async fn refresh(
    client: &Client<'_>,
    setup: &ClientSetup,
    spec: &str,
    cached: VerifiedRecord,
    fresh: VerifiedRecord,
) -> anyhow::Result<VerifiedRecord> {
    let (o, n) = (
        cached.checkpoint().checkpoint(),
        fresh.checkpoint().checkpoint(),
    );
    if n.size < o.size {
        eprintln!(
            "warning: {spec}: the fresh proof's checkpoint (size {}) is older than the cached one's (size {}); keeping the cached proof",
            n.size, o.size
        );
        return Ok(cached);
    }
    if n.size == o.size {
        if n.root != o.root {
            bail!(
                "SPLIT VIEW: {spec}: two cosigned checkpoints of size {} with different roots (cached and fresh proof)",
                n.size
            );
        }
        return Ok(fresh);
    }
    let req = LightRequest::Consistency {
        old: o.size,
        new: n.size,
    };
    for addr in &setup.peers {
        if let Ok(LightResponse::Consistency(p)) = client.ask(addr, &req).await {
            let hashes: Option<Vec<merkle::Hash>> =
                p.iter().map(|h| h.as_slice().try_into().ok()).collect();
            if let Some(h) = hashes
                && merkle::verify_consistency(o.size, n.size, &o.root, &n.root, &h).is_ok()
            {
                return Ok(fresh);
            }
        }
        eprintln!(
            "warning: {addr}: no consistency proof from size {} to {} that verifies",
            o.size, n.size
        );
    }
    bail!(
        "SPLIT VIEW: {spec}: no member proves the fresh proof's checkpoint (size {}) consistent with the cached one's (size {})",
        n.size,
        o.size
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_unit() {
        assert_eq!(parse_age("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(std::time::Duration::from_secs(1800)));
        assert_eq!(parse_age("1d"), Ok(std::time::Duration::from_secs(86400)));
        for bad in ["", "d", "1w", "-1h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }
}
