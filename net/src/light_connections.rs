//! Non-member ("light") connections and their limits. Pure: time is passed in, and the
//! swarm task closes what the decisions name.
//!
//! Bounds, so that many connections from one place cannot lock out another user:
//! - at most `max_total` non-member connections ([`crate::NetConfig::with_max_light_clients`]);
//! - at most `max_per_address` from one [`AddressBucket`] (an IPv4 address, an IPv6 /64:
//!   throwaway keys are free, addresses are not);
//! - when the total is reached, a newcomer from a bucket holding fewer connections than the
//!   largest bucket evicts that bucket's least recently active connection (so whoever holds
//!   the most yields first; a newcomer is refused only when every bucket holds as few);
//! - a connection with no light-client request for `idle` is closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// Where a connection comes from, as per-address limits count it (the node's HTTP and
/// witness servers use it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressBucket {
    /// One IPv4 address (also for IPv4-mapped IPv6 addresses).
    V4(Ipv4Addr),
    /// One IPv6 /64 (its first 64 bits): one subscriber's usual allocation.
    V6(u64),
    /// No IP address in the multiaddress (all such connections share one bucket).
    Other,
}

impl AddressBucket {
    /// The bucket of `ip`.
    pub fn of_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }

    /// The bucket of the first IP address in `addr`.
    pub fn of(addr: &Multiaddr) -> Self {
        addr.iter()
            .find_map(|p| match p {
                Protocol::Ip4(ip) => Some(Self::of_ip(IpAddr::V4(ip))),
                Protocol::Ip6(ip) => Some(Self::of_ip(IpAddr::V6(ip))),
                _ => None,
            })
            .unwrap_or(Self::Other)
    }
}

/// What to do with a new non-member connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Keep it.
    Admitted,
    /// Keep it, and close this other connection (already forgotten here).
    AdmittedEvicting(ConnectionId),
    /// Close it: its address holds `max_per_address` connections.
    RefusedAddressFull,
    /// Close it: the total is reached and no bucket holds more than its own.
    RefusedFull,
}

#[derive(Debug)]
struct Conn {
    peer: PeerId,
    bucket: AddressBucket,
    last_active: Instant,
}

/// The non-member connections open now.
#[derive(Debug)]
pub(crate) struct LightConnections {
    max_total: usize,
    max_per_address: usize,
    idle: Duration,
    conns: HashMap<ConnectionId, Conn>,
    per_bucket: HashMap<AddressBucket, usize>,
}

impl LightConnections {
    pub(crate) fn new(max_total: usize, max_per_address: usize, idle: Duration) -> Self {
        Self {
            max_total,
            max_per_address,
            idle,
            conns: HashMap::new(),
            per_bucket: HashMap::new(),
        }
    }

    /// Connections held now.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    fn held(&self, bucket: AddressBucket) -> usize {
        self.per_bucket.get(&bucket).copied().unwrap_or(0)
    }

    /// Decides about a new connection `conn` of `peer` from `bucket` at `now` (admitted
    /// ones are tracked from here on).
    pub(crate) fn admit(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        bucket: AddressBucket,
        now: Instant,
    ) -> Admission {
        let mine = self.held(bucket);
        if mine >= self.max_per_address {
            return Admission::RefusedAddressFull;
        }
        let mut admission = Admission::Admitted;
        if self.conns.len() >= self.max_total {
            // The largest bucket (ties: the smaller bucket value, for determinism).
            let largest = self
                .per_bucket
                .iter()
                .map(|(b, n)| (*n, std::cmp::Reverse(*b)))
                .max()
                .map(|(n, std::cmp::Reverse(b))| (b, n));
            let Some((victim_bucket, n)) = largest.filter(|(_, n)| *n > mine + 1) else {
                return Admission::RefusedFull;
            };
            debug_assert!(n > 0);
            let victim = self
                .conns
                .iter()
                .filter(|(_, c)| c.bucket == victim_bucket)
                .min_by_key(|(id, c)| (c.last_active, **id))
                .map(|(id, _)| *id)
                .expect("a bucket with connections has one");
            self.remove(victim);
            admission = Admission::AdmittedEvicting(victim);
        }
        self.conns.insert(
            conn,
            Conn {
                peer,
                bucket,
                last_active: now,
            },
        );
        *self.per_bucket.entry(bucket).or_default() += 1;
        admission
    }

    /// `conn` made a light-client request at `now`.
    pub(crate) fn touch(&mut self, conn: ConnectionId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_active = now;
        }
    }

    /// Forgets `conn` (closed); its peer if it was tracked.
    pub(crate) fn remove(&mut self, conn: ConnectionId) -> Option<PeerId> {
        let c = self.conns.remove(&conn)?;
        if let Some(n) = self.per_bucket.get_mut(&c.bucket) {
            *n -= 1;
            if *n == 0 {
                self.per_bucket.remove(&c.bucket);
            }
        }
        Some(c.peer)
    }

    /// Forgets and returns the connections idle for `idle` or longer at `now` (to close).
    pub(crate) fn take_idle(&mut self, now: Instant) -> Vec<(PeerId, ConnectionId)> {
        let idle: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_active) >= self.idle)
            .map(|(id, _)| *id)
            .collect();
        idle.into_iter()
            .filter_map(|id| self.remove(id).map(|p| (p, id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(s: &str) -> AddressBucket {
        AddressBucket::of(&s.parse().unwrap())
    }

    #[test]
    fn buckets_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(bucket("/ip4/10.0.0.1/tcp/1"), bucket("/ip4/10.0.0.1/tcp/2"));
        assert_ne!(bucket("/ip4/10.0.0.1/tcp/1"), bucket("/ip4/10.0.0.2/tcp/1"));
        assert_eq!(
            bucket("/ip6/2001:db8:1:2::1/tcp/1"),
            bucket("/ip6/2001:db8:1:2:ffff:ffff:ffff:ffff/tcp/1")
        );
        assert_ne!(
            bucket("/ip6/2001:db8:1:2::1/tcp/1"),
            bucket("/ip6/2001:db8:1:3::1/tcp/1")
        );
        assert_eq!(
            bucket("/ip6/::ffff:10.0.0.1/tcp/1"),
            bucket("/ip4/10.0.0.1/tcp/9")
        );
        assert_eq!(bucket("/memory/1"), AddressBucket::Other);
    }

    /// One address is held to its share; at the total, the largest bucket's least recently
    /// active connection yields to a newcomer from a smaller bucket; when every bucket holds
    /// as few, the newcomer is refused; idle connections are taken.
    #[test]
    fn one_address_cannot_lock_out_another() {
        let t0 = Instant::now();
        let mut l = LightConnections::new(4, 3, Duration::from_secs(60));
        let (a, b, c) = (
            bucket("/ip4/1.1.1.1"),
            bucket("/ip6/2001:db8::1"),
            bucket("/ip4/3.3.3.3"),
        );
        let ids: Vec<ConnectionId> = (0..10).map(ConnectionId::new_unchecked).collect();
        let p = PeerId::random();
        for (k, id) in ids[..3].iter().enumerate() {
            let at = t0 + Duration::from_secs(k as u64);
            assert_eq!(l.admit(*id, p, a, at), Admission::Admitted);
        }
        assert_eq!(l.admit(ids[3], p, a, t0), Admission::RefusedAddressFull);
        assert_eq!(l.admit(ids[4], p, b, t0), Admission::Admitted);
        assert_eq!(l.len(), 4);
        // Full: `a` holds 3 > 1 + 1: its least recently active (ids[0]) yields, unless
        // touched since (then ids[1]).
        l.touch(ids[0], t0 + Duration::from_secs(10));
        assert_eq!(
            l.admit(ids[5], p, c, t0),
            Admission::AdmittedEvicting(ids[1])
        );
        assert!(!l.conns.contains_key(&ids[1]));
        assert_eq!(l.len(), 4);
        // Now a: 2, b: 1, c: 1; a newcomer from b (would hold 2) cannot evict a (2).
        assert_eq!(l.admit(ids[6], p, b, t0), Admission::RefusedFull);
        // Idle: all but the one touched at t0 + 10 s.
        let idle = l.take_idle(t0 + Duration::from_secs(65));
        assert_eq!(idle.len(), 3);
        assert_eq!(l.len(), 1);
        assert_eq!(l.conns[&ids[0]].bucket, a);
        assert_eq!(l.remove(ids[0]), Some(p));
        assert!(l.per_bucket.is_empty());
    }
}
