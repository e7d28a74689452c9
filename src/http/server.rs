//! The accept loop of every HTTP server the node's binary runs (`node --http`, the log;
//! `synchronicity witness`): one place for the bounds a client on the internet meets.
//!
//! Decision: the two servers had a copy each, and the copies had drifted. The log's counted
//! what it refused, answered a client over its per-address limit with a one-line `503`,
//! capped a connection's read buffer at 16 KiB and rate-limited every request per client
//! address; the witness's did none of these (it rate-limited only its signature checks).
//! The stricter copy won, for both: each of these bounds what one client can make a server
//! hold or do, and a witness is as exposed as the log. What differs between servers is only
//! the numbers, in [`Bounds`].
//!
//! Per connection, in this order:
//! 1. over [`Bounds::max_connections`] open connections: closed at once (never queued),
//!    counted ([`Refusal::Connection`]);
//! 2. over [`Bounds::max_per_address`] from its client address (an IPv4 address or an
//!    IPv6 /64, [`AddressBucket`]): answered `503` in one line and closed, counted;
//! 3. served with HTTP/1.1: headers read within [`HEADER_TIMEOUT`], a read buffer of at most
//!    [`MAX_BUF_SIZE`] (a longer head is refused; bodies stream through it), the whole
//!    connection ended after [`CONNECTION_LIFETIME`];
//! 4. each request first takes a token of its client address's bucket
//!    ([`Bounds::rate_burst`], refilled at [`Bounds::rate_per_second`]; the table holds at
//!    most [`MAX_CLIENTS`] addresses, `limits.rs`); with none left it is answered `429` in
//!    one line, counted ([`Refusal::RateLimited`]), and the handler never sees it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use synchronicity_net::AddressBucket;
use tokio::net::TcpListener;

use super::limits::{ConnectionCounts, MAX_CLIENTS, RateTable};

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may live, whatever it does.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// A connection's largest read buffer (a request head must fit in it).
pub(crate) const MAX_BUF_SIZE: usize = 16 * 1024;

/// What a connection over [`Bounds::max_per_address`] reads before it is closed.
const TOO_MANY_FROM_ADDRESS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\n\r\ntoo many connections from your address\n";

/// One server's numbers (see the module doc for what each bounds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most open connections.
    pub(crate) max_connections: usize,
    /// Most open connections from one client address.
    pub(crate) max_per_address: usize,
    /// Requests one client address may make at once.
    pub(crate) rate_burst: f64,
    /// Requests per second one client address gets back.
    pub(crate) rate_per_second: f64,
}

/// Why a client was turned away before its request reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A connection closed at once: the server or its client address was full.
    Connection,
    /// A request answered `429`: its client address had no token left.
    RateLimited,
}

/// Serves `listener` until the process ends: every connection under the bounds, every
/// admitted request to `handle` with its client address. `refused` hears of each refusal
/// (the owner counts them).
pub(crate) fn spawn<H, F>(
    listener: TcpListener,
    bounds: Bounds,
    refused: impl Fn(Refusal) + Send + Sync + 'static,
    handle: H,
) where
    H: Fn(Request<Incoming>, AddressBucket) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(bounds.max_connections));
    let per_address = Arc::new(Mutex::new(ConnectionCounts::default()));
    let limiter = Arc::new(Mutex::new(RateTable::new(
        bounds.rate_burst,
        bounds.rate_per_second,
        MAX_CLIENTS,
    )));
    let (refused, handle) = (Arc::new(refused), Arc::new(handle));
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let client = AddressBucket::of_ip(peer.ip());
            // Over the connection limit: closed at once (never queued).
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                refused(Refusal::Connection);
                drop(stream);
                continue;
            };
            let admitted = per_address
                .lock()
                .map(|mut c| c.open(client, bounds.max_per_address))
                .unwrap_or(false);
            if !admitted {
                refused(Refusal::Connection);
                tracing::debug!(%peer, "HTTP connection refused: too many from its address");
                // One line of why, if the socket takes it now; never waited for.
                let _ = stream.try_write(TOO_MANY_FROM_ADDRESS);
                continue;
            }
            let (limiter, per_address, refused, handle) = (
                limiter.clone(),
                per_address.clone(),
                refused.clone(),
                handle.clone(),
            );
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let allowed = limiter
                        .lock()
                        .map(|mut l| l.allow(client, Instant::now()))
                        .unwrap_or(false);
                    let (refused, handle) = (refused.clone(), handle.clone());
                    async move {
                        if !allowed {
                            refused(Refusal::RateLimited);
                            return Ok::<_, Infallible>(too_many_requests(&req));
                        }
                        Ok(handle(req, client).await)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_BUF_SIZE)
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                if let Ok(mut c) = per_address.lock() {
                    c.close(client);
                }
                drop(permit);
            });
        }
    });
}

/// `429` in one line of text (no body for `HEAD`).
fn too_many_requests(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let body: &[u8] = b"rate limit exceeded\n";
    let sent = if req.method() == Method::HEAD {
        &[][..]
    } else {
        body
    };
    Response::builder()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Cache-Control", "no-cache")
        .header("Content-Length", body.len())
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(Bytes::from_static(sent)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
pub(crate) mod tests;
