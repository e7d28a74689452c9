//! The HTTP server over real TCP on loopback, with clients from many source addresses (all
//! of 127/8 is loopback): a full rate table does not lock a new address out, and one
//! address cannot take every connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{MAX_CLIENTS, MAX_PER_ADDRESS, serve_shared};
use crate::log::LogStore;
use crate::node::Shared;
use crate::testing::TestCommittee;

async fn server() -> (SocketAddr, Arc<Shared>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tc = TestCommittee::new(4, 41);
    let store = LogStore::open(dir.path()).unwrap();
    let shared = Arc::new(Shared::restore(tc.committee.clone(), 0, store).unwrap().0);
    let addr = serve_shared("127.0.0.1:0".parse().unwrap(), shared.clone())
        .await
        .unwrap();
    (addr, shared, dir)
}

/// A TCP connection to `to` from `from`.
async fn connect(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from.into(), 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// The status of one `GET /style.css` on `s` (0 if the connection closed first).
async fn get(mut s: TcpStream) -> u16 {
    let req = b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if s.write_all(req).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The `k`-th address of 127.1.0.0/16.
fn address(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (k >> 8) as u8, k as u8)
}

/// [`MAX_CLIENTS`] addresses fill the rate table (each with one request, all within a few
/// seconds); the next new address is answered 200, not 429, and nobody was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rate_table_still_serves_a_new_address() {
    let (addr, shared, _dir) = server().await;
    for k in 0..MAX_CLIENTS {
        assert_eq!(
            get(connect(address(k), addr).await).await,
            200,
            "client {k}"
        );
    }
    assert_eq!(
        get(connect(Ipv4Addr::new(127, 0, 0, 2), addr).await).await,
        200
    );
    assert_eq!(shared.counters.http_rate_limited.load(Ordering::Relaxed), 0);
    assert_eq!(
        shared
            .counters
            .http_connections_refused
            .load(Ordering::Relaxed),
        0
    );
}

/// One address opens [`MAX_PER_ADDRESS`] connections and keeps them idle; its next one is
/// answered 503 in one line and closed, counted; another address is still served, and so
/// is the first once one of its connections closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let (addr, shared, _dir) = server().await;
    let greedy = Ipv4Addr::new(127, 0, 0, 1);
    let mut held = Vec::new();
    for _ in 0..MAX_PER_ADDRESS {
        held.push(connect(greedy, addr).await);
    }
    let mut refused = connect(greedy, addr).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), refused.read_to_end(&mut out))
        .await
        .expect("the refused connection is closed at once")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(
        text.ends_with("too many connections from your address\n"),
        "{text}"
    );
    assert_eq!(
        shared
            .counters
            .http_connections_refused
            .load(Ordering::Relaxed),
        1
    );

    assert_eq!(
        get(connect(Ipv4Addr::new(127, 0, 0, 2), addr).await).await,
        200
    );
    // One of the held connections is used and closes: the address has room again.
    assert_eq!(get(held.pop().unwrap()).await, 200);
    let mut status = 0;
    for _ in 0..100 {
        status = get(connect(greedy, addr).await).await;
        if status == 200 {
            break;
        }
        // The server counts the close when its connection task ends, just after the
        // answer: retry for a bounded time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}
