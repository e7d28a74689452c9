//! Non-member connections over real TCP on loopback, from several source addresses (all of
//! 127/8 is loopback): many idle connections from one address do not lock out another
//! user, a full table yields the largest holder's connection, idle ones are closed.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::light_client::{ClientState, spawn_light_client};
use common::*;
use synchronicity_net::{NetConfig, Response};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const USER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A one-member group whose member serves light requests (`pong:<request>`).
async fn member(
    tune: impl FnOnce(NetConfig) -> NetConfig,
) -> (TestNode, synchronicity_net::Multiaddr) {
    let ks = keys(1);
    let m = spawn(
        tune(config(&ks[0], members(&ks), vec![], 4096)),
        ks[0].clone(),
    )
    .await;
    let addr = listen_addr(&m).await;
    (m, addr)
}

fn sum(clients: &[Arc<ClientState>], f: impl Fn(&ClientState) -> usize) -> usize {
    clients.iter().map(|c| f(c)).sum()
}

async fn answered(user: &ClientState, what: &str) {
    eventually(20, what, || user.answer.lock().unwrap().is_some()).await;
    let answer = user.answer.lock().unwrap().take().unwrap();
    assert_eq!(answer, Ok(Response::Ok(b"pong:proof?".to_vec())), "{what}");
}

/// 70 idle connections, each with a fresh key, from 127.0.0.1 (more than the 64 non-member
/// connections in total that used to lock everyone out): the member keeps 8 (the
/// per-address default) and closes the other 62 at once, counted; a user from 127.0.0.2
/// is then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_do_not_lock_out_another() {
    let (m, addr) = member(|c| c).await;
    let metrics = m.handle.metrics();
    let ended = |c: &ClientState| c.closed.load(Ordering::SeqCst) + c.failed.load(Ordering::SeqCst);
    let held =
        |c: &ClientState| c.established.load(Ordering::SeqCst) - c.closed.load(Ordering::SeqCst);
    // In waves of 10, each settled before the next (70 handshakes at once would also meet
    // the swarm's limit of 64 pending incoming connections, which is not what this tests).
    let mut attackers = Vec::new();
    for wave in 1..=7 {
        for _ in 0..10 {
            attackers.push(spawn_light_client(ATTACKER, addr.clone(), None));
        }
        eventually(30, &format!("wave {wave} settled"), || {
            sum(&attackers, ended) + sum(&attackers, held) == 10 * wave
        })
        .await;
    }
    // The member kept 8 and closed the other 62 at once, counted; each refused client saw
    // its connection end (closed, or failed before it was established on its side).
    eventually(10, "62 of 70 refused, 8 held", || {
        metrics.light_connections_refused_address.get() == 62
            && sum(&attackers, ended) == 62
            && sum(&attackers, held) == 8
    })
    .await;
    assert_eq!(metrics.light_connections.get(), 8);
    assert_eq!(metrics.connections_refused.get(), 0);

    let user = spawn_light_client(USER, addr.clone(), Some(b"proof?".to_vec()));
    answered(&user, "an answer for the user from another address").await;
    assert_eq!(metrics.light_connections.get(), 9);
    // The attacker's 8 are still open: nothing of theirs was closed for the user.
    assert_eq!(sum(&attackers, ended), 62);
    assert_eq!(sum(&attackers, held), 8);
}

/// With room for 4 non-member connections, 3 per address: 127.0.0.1 holds 3 and
/// 127.0.0.3 one; a user from 127.0.0.2 evicts one of 127.0.0.1's (the largest holder)
/// and is served; a fourth from 127.0.0.3 then finds no larger holder and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_yields_the_largest_holders_connection() {
    let (m, addr) = member(|c| c.with_max_light_clients(4).with_max_light_per_address(3)).await;
    let metrics = m.handle.metrics();
    let mut holders: Vec<_> = (0..3)
        .map(|_| spawn_light_client(ATTACKER, addr.clone(), None))
        .collect();
    holders.push(spawn_light_client(
        Ipv4Addr::new(127, 0, 0, 3),
        addr.clone(),
        None,
    ));
    eventually(20, "4 connections held", || {
        metrics.light_connections.get() == 4
    })
    .await;

    let user = spawn_light_client(USER, addr.clone(), Some(b"proof?".to_vec()));
    answered(&user, "an answer for the user at a full table").await;
    assert_eq!(metrics.light_connections_evicted.get(), 1);
    eventually(10, "the evicted connection closed at its client", || {
        sum(&holders[..3], |c| c.closed.load(Ordering::SeqCst)) == 1
    })
    .await;
    assert_eq!(holders[3].closed.load(Ordering::SeqCst), 0);

    // Now 127.0.0.1: 2, 127.0.0.2: 1, 127.0.0.3: 1; a second from .3 would hold 2, as
    // many as the largest: refused, nothing evicted.
    let late = spawn_light_client(Ipv4Addr::new(127, 0, 0, 3), addr.clone(), None);
    eventually(20, "the late one refused", || {
        metrics.connections_refused.get() == 1 && late.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(metrics.light_connections_evicted.get(), 1);
    assert_eq!(metrics.light_connections.get(), 4);
}

/// A non-member connection with no light request for the idle timeout (1 s here) is
/// closed by the member, counted; one that asked is served first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_non_member_connections_are_closed() {
    let (m, addr) = member(|c| c.with_light_idle_timeout(Duration::from_secs(1))).await;
    let metrics = m.handle.metrics();
    let idle = spawn_light_client(USER, addr.clone(), None);
    let asking = spawn_light_client(USER, addr.clone(), Some(b"proof?".to_vec()));
    answered(&asking, "an answer before the idle timeout").await;
    eventually(20, "both closed when idle", || {
        metrics.light_connections_idle_closed.get() == 2
            && idle.closed.load(Ordering::SeqCst) == 1
            && asking.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(metrics.light_connections.get(), 0);
}

/// With open sync (a node that lets joining nodes follow its log), a non-member's sync
/// requests are answered, from the same per-peer bucket as its light requests: a burst of
/// three, shared between the two protocols, then refused as rate limited and counted.
/// Without it (the default), a non-member's sync request is refused as not a member (the
/// group test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sync_answers_non_members_on_the_light_clients_budget() {
    use synchronicity_net::{NetError, Refusal, RequestKind};
    let ks = keys(1);
    let m = spawn(
        config(&ks[0], members(&ks), vec![], 4096)
            .with_open_sync(true)
            .with_light_rate(3, 0),
        ks[0].clone(),
    )
    .await;
    let addr = listen_addr(&m).await;
    let outsider_key = keys(1).remove(0);
    let outsider = spawn(
        config(&outsider_key, members(&ks), vec![addr], 4096),
        outsider_key.clone(),
    )
    .await;
    let id = m.handle.local_peer_id();
    let mut first = None;
    for _ in 0..50 {
        if let Ok(a) = outsider
            .handle
            .request(id, RequestKind::Sync, b"h1".to_vec())
            .await
        {
            first = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first.expect("a sync answer"), b"pong:h1");
    let light = outsider
        .handle
        .request(id, RequestKind::Light, b"p".to_vec())
        .await;
    assert_eq!(light.unwrap(), b"pong:p");
    let second = outsider
        .handle
        .request(id, RequestKind::Sync, b"h2".to_vec())
        .await;
    assert_eq!(second.unwrap(), b"pong:h2");
    let fourth = outsider
        .handle
        .request(id, RequestKind::Sync, b"h3".to_vec())
        .await;
    assert_eq!(fourth, Err(NetError::Refused(Refusal::RateLimited)));
    assert!(m.handle.metrics().requests_rate_limited.get() >= 1);
    assert_eq!(m.handle.metrics().requests_not_member.get(), 0);
}
