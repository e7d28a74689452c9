//! The shared accept loop over real TCP on loopback, with a handler that echoes the size of
//! what it was sent: the per-address connection limit answers `503` in one line, the request
//! rate answers `429` before the handler, both are reported, and a body larger than the read
//! buffer still streams through (the witness takes bodies of up to 64 KiB).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Bounds, MAX_BUF_SIZE, Refusal, spawn};

/// A server under `bounds` whose handler answers `200` with the length of the body it read;
/// with the refusals it reported and the requests its handler saw.
async fn server(bounds: Bounds) -> (SocketAddr, Arc<Mutex<Vec<Refusal>>>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(AtomicU64::new(0));
    let (r, h) = (refusals.clone(), handled.clone());
    spawn(
        listener,
        bounds,
        move |why| r.lock().unwrap().push(why),
        move |req, _client| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                let n = req
                    .into_body()
                    .collect()
                    .await
                    .map_or(0, |b| b.to_bytes().len());
                Response::new(Full::new(Bytes::from(format!("{n}\n"))))
            }
        },
    );
    (addr, refusals, handled)
}

/// Sends `req` on `s` and reads until the server closes (within 20 s): (status, body).
/// Status 0: no status line came back. (The witness's tests use it too.)
pub(crate) async fn exchange(mut s: TcpStream, req: &[u8]) -> (u16, String) {
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn post(body_len: usize) -> Vec<u8> {
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes();
    req.resize(req.len() + body_len, b'x');
    req
}

const BOUNDS: Bounds = Bounds {
    max_connections: 64,
    max_per_address: 2,
    rate_burst: 3.0,
    rate_per_second: 0.001,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_its_connections_then_503_and_its_burst_then_429() {
    let (addr, refusals, handled) = server(BOUNDS).await;
    // Two idle connections fill the address's share: the third reads one line and closes.
    let held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let (status, body) = exchange(TcpStream::connect(addr).await.unwrap(), b"").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "too many connections from your address\n")
    );
    assert_eq!(*refusals.lock().unwrap(), [Refusal::Connection]);
    drop(held);

    // Three requests of the burst reach the handler (a body four times the read buffer
    // streams through); the fourth is answered 429 without it.
    let mut seen = Vec::new();
    for len in [0, 4 * MAX_BUF_SIZE, 10, 10] {
        let mut answer = (0, String::new());
        // The server counts the held connections' close when their tasks end: retry a 503.
        for _ in 0..100 {
            answer = exchange(TcpStream::connect(addr).await.unwrap(), &post(len)).await;
            if answer.0 != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen.push(answer);
    }
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "{seen:?}");
    assert_eq!(seen[1].1, format!("{}\n", 4 * MAX_BUF_SIZE));
    assert_eq!(seen[3].1, "rate limit exceeded\n");
    assert_eq!(handled.load(Ordering::Relaxed), 3);
    assert_eq!(
        refusals
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == Refusal::RateLimited)
            .count(),
        1
    );
}

/// A request head longer than the read buffer is refused without reaching the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_the_read_buffer_is_refused() {
    let (addr, _refusals, handled) = server(BOUNDS).await;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(2 * MAX_BUF_SIZE)
    );
    let (status, _) = exchange(TcpStream::connect(addr).await.unwrap(), req.as_bytes()).await;
    assert_ne!(status, 200);
    assert_eq!(handled.load(Ordering::Relaxed), 0);
}
