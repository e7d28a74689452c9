//! `audit`'s proof cache, refreshed by age: `--max-age`, writing a cached proof, and
//! moving a stale one forward to a fresh one only along the same log (see `audit`'s module
//! doc).

use anyhow::bail;
use synchronicity_light::{Advance, Client, LightError};

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

/// Writes `text` to the proof cache at `path`: a temporary file renamed over it, so a
/// concurrent audit never reads half a proof. Not synced (one fsync per proof was most of a
/// cold audit's CPU): the cache is not trusted, every cached proof is verified and checked
/// again before use, so after a crash a file left empty or cut is dropped with a warning and
/// fetched again. A failure only costs time.
pub(super) fn keep_cached(path: Option<&std::path::Path>, text: &str) {
    let Some(path) = path else { return };
    let _ = path.parent().map(std::fs::create_dir_all);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The refreshed answer for `spec`, if its checkpoint moves the cached one's forward in the
/// same log (`Client::advance`: not smaller, and the same root at the same size or a
/// consistency proof from a member). A smaller one keeps the cached answer (a stale peer);
/// a contradiction is a SPLIT VIEW error.
pub(super) async fn refresh(
    client: &Client,
    spec: &str,
    cached: VerifiedRecord,
    fresh: VerifiedRecord,
) -> anyhow::Result<VerifiedRecord> {
    match client
        .advance(cached.checkpoint(), fresh.checkpoint())
        .await
    {
        Ok(Advance::Older) => {
            eprintln!(
                "warning: {spec}: the fresh proof's checkpoint (size {}) is older than the cached one's (size {}); keeping the cached proof",
                fresh.checkpoint().checkpoint().size,
                cached.checkpoint().checkpoint().size
            );
            Ok(cached)
        }
        Ok(Advance::Same | Advance::Forward) => Ok(fresh),
        Err(LightError::SplitView(split)) => {
            bail!("SPLIT VIEW: {spec}: {} (cached and fresh proof)", split.why)
        }
        Err(e) => Err(e.into()),
    }
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
