//! Per-client limits of the HTTP server, by client address as [`AddressBucket`] counts it
//! (an IPv4 address, an IPv6 /64: one subscriber's usual allocation). Pure: time is passed
//! in.
//!
//! - [`RateTable`]: a token bucket per client, at most [`MAX_CLIENTS`] of them. A new client
//!   at a full table first drops the buckets that have refilled (a full bucket is the same
//!   as none: dropping it forgets nothing), then, if every bucket is still in use, the one
//!   least recently used. So a full table never refuses anyone: many addresses can at
//!   worst reset one another's buckets, not lock others out.
//! - [`ConnectionCounts`]: open connections per client, at most [`MAX_PER_ADDRESS`], so one
//!   address cannot hold all of the server's connections.

use std::collections::HashMap;
use std::time::Instant;

use synchronicity_net::AddressBucket;

/// Most clients tracked by the rate table.
pub const MAX_CLIENTS: usize = 4096;
/// Most open connections from one client address (of the server's
/// [`super::MAX_CONNECTIONS`]).
pub const MAX_PER_ADDRESS: usize = 16;

/// Token buckets per client (bounded; see the module doc).
#[derive(Debug)]
pub(crate) struct RateTable {
    burst: f64,
    per_second: f64,
    max_clients: usize,
    buckets: HashMap<AddressBucket, (f64, Instant)>,
}

impl RateTable {
    /// `burst` requests at once per client, refilled at `per_second`, for at most
    /// `max_clients` clients.
    pub(crate) fn new(burst: f64, per_second: f64, max_clients: usize) -> Self {
        Self {
            burst,
            per_second,
            max_clients,
            buckets: HashMap::new(),
        }
    }

    /// Clients tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }

    fn tokens_at(&self, (tokens, at): (f64, Instant), now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_second).min(self.burst)
    }

    /// Takes one token for `client` at `now`; false when its bucket is empty.
    pub(crate) fn allow(&mut self, client: AddressBucket, now: Instant) -> bool {
        if self.buckets.len() >= self.max_clients && !self.buckets.contains_key(&client) {
            let (burst, per_second) = (self.burst, self.per_second);
            self.buckets.retain(|_, (tokens, at)| {
                let refilled = (*tokens
                    + now.saturating_duration_since(*at).as_secs_f64() * per_second)
                    .min(burst);
                refilled < burst
            });
            if self.buckets.len() >= self.max_clients
                && let Some(oldest) = self
                    .buckets
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| *k)
            {
                self.buckets.remove(&oldest);
            }
        }
        let entry = self.buckets.get(&client).copied();
        let tokens = entry.map_or(self.burst, |e| self.tokens_at(e, now));
        let allowed = tokens >= 1.0;
        let left = if allowed { tokens - 1.0 } else { tokens };
        self.buckets.insert(client, (left, now));
        allowed
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    open: HashMap<AddressBucket, usize>,
}

impl ConnectionCounts {
    /// Counts a new connection from `client`; false (nothing counted) when it already
    /// holds `max`.
    pub(crate) fn open(&mut self, client: AddressBucket, max: usize) -> bool {
        let n = self.open.entry(client).or_default();
        if *n >= max {
            if *n == 0 {
                self.open.remove(&client);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `client` closed.
    pub(crate) fn close(&mut self, client: AddressBucket) {
        if let Some(n) = self.open.get_mut(&client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;

    fn client(s: &str) -> AddressBucket {
        AddressBucket::of_ip(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn a_client_gets_its_burst_then_the_refill() {
        let mut t = RateTable::new(200.0, 50.0, MAX_CLIENTS);
        let ip = client("127.0.0.1");
        let t0 = Instant::now();
        assert_eq!((0..1000).filter(|_| t.allow(ip, t0)).count(), 200);
        assert!(t.allow(ip, t0 + Duration::from_secs(1)));
    }

    /// One IPv6 /64 is one client, however many addresses it uses.
    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let mut t = RateTable::new(3.0, 1.0, MAX_CLIENTS);
        let t0 = Instant::now();
        let allowed = (0..10)
            .filter(|k| t.allow(client(&format!("2001:db8:1:2::{k:x}")), t0))
            .count();
        assert_eq!(allowed, 3);
        assert_eq!(t.len(), 1);
        assert!(t.allow(client("2001:db8:1:3::1"), t0));
    }

    /// A full table of clients that were all just seen (none refilled yet) still admits a
    /// new client, evicting the least recently seen; refilled buckets go first.
    #[test]
    fn a_full_table_evicts_instead_of_refusing() {
        let mut t = RateTable::new(2.0, 1.0, 4);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for k in 0..4u64 {
            let c = client(&format!("10.0.0.{k}"));
            assert!(t.allow(c, at(k)));
            assert!(t.allow(c, at(k))); // empty now: none refills within the test
        }
        assert!(t.allow(client("10.0.0.9"), at(10)));
        assert_eq!(t.len(), 4);
        // 10.0.0.0 (least recently seen) was evicted: it starts afresh.
        assert!(t.allow(client("10.0.0.0"), at(11)));
        // Refilled buckets are dropped before any in use: 10.0.0.9 has one token left,
        // 10.0.0.0 one; after 5 s all are full, so all are dropped for a newcomer.
        assert!(t.allow(client("10.0.0.8"), at(6000)));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn connections_are_capped_per_address() {
        let mut c = ConnectionCounts::default();
        let a = client("192.0.2.1");
        assert!((0..3).all(|_| c.open(a, 3)));
        assert!(!c.open(a, 3));
        assert!(c.open(client("192.0.2.2"), 3));
        c.close(a);
        assert!(c.open(a, 3));
    }
}
