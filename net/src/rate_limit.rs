//! Token buckets for the light-client protocol, per key (the node keys them by peer; the
//! peers of one address are bounded by the light-connection limits). Pure: time is passed
//! in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// `burst` requests at once, refilled at `per_second`, per key `K`.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    burst: f64,
    per_second: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `peer` at `now`; false when the bucket is empty.
    pub(crate) fn allow(&mut self, peer: K, now: Instant) -> bool {
        let (tokens, last) = self.buckets.entry(peer).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets peers idle for longer than `idle` (bounded memory under many clients).
    pub(crate) fn prune(&mut self, now: Instant, idle: Duration) {
        self.buckets
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    #[test]
    fn burst_then_refill() {
        let mut rl = RateLimiter::new(3, 2);
        let p = PeerId::random();
        let t0 = Instant::now();
        assert!((0..3).all(|_| rl.allow(p, t0)));
        assert!(!rl.allow(p, t0));
        // Another peer has its own bucket.
        assert!(rl.allow(PeerId::random(), t0));
        // Half a second refills one token at 2/s.
        assert!(rl.allow(p, t0 + Duration::from_millis(500)));
        assert!(!rl.allow(p, t0 + Duration::from_millis(500)));
        rl.prune(t0 + Duration::from_secs(100), Duration::from_secs(60));
        assert!(rl.buckets.is_empty());
    }
}
