//! `node --http ADDR`: the log, read-only, over HTTP/1.1 (hyper), for standard tooling and
//! browsers. Everything served is derived from committed data; clients verify it.
//!
//! | path | what | caching |
//! |---|---|---|
//! | `/checkpoint` | the latest cosigned checkpoint note (committee line, members' Ed25519 lines, witness cosignatures) | `no-cache` |
//! | `/tile/<L>/<N>[.p/<W>]` | C2SP tlog-tiles hash tile | full: `immutable`, a year |
//! | `/tile/entries/<N>[.p/<W>]` | entry bundle (u16 length-prefixed entries) | same |
//! | `/lookup/<crate@version or request id>` | the tlog-proof file (as sumdb's `/lookup`) | `no-cache` |
//! | `/blob/<sha256 hex>` | a lockfile or manifest an entry pins | `immutable` |
//! | `/`, `/search?q=…` | the web view (`web.rs`) | `no-cache` |
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections and [`MAX_PER_ADDRESS`] from one client
//! address (an IPv4 address or an IPv6 /64; more are answered `503` in one line and closed
//! at once, counted), headers read within 10 s, a connection lives at most 60 s, GET and
//! HEAD only, paths of at most 512 bytes, [`RATE_PER_SECOND`] requests per second per
//! client address (burst [`RATE_BURST`]; over it: 429, counted). The rate table holds at
//! most [`MAX_CLIENTS`] addresses and evicts refilled, then least recently seen, entries
//! when full: it never answers 429 to a client for others' sake (`limits.rs`). The accept
//! loop that holds these bounds is the witness's too (`server.rs`). Store reads run on
//! blocking threads: the node's event loop never waits on an HTTP client.

pub(crate) mod limits;
mod recipes;
pub(crate) mod server;
#[cfg(test)]
mod tests;
mod web;
pub mod witness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};

use crate::log::LookupKey;
use crate::log::tiles::{TilePath, entry_bundle, parse_tile_path, width_in_tree};
pub use limits::{MAX_CLIENTS, MAX_PER_ADDRESS};
use server::{Bounds, Refusal};

use crate::node::NodeHandle;
use crate::node::Shared;

/// Most open connections.
pub const MAX_CONNECTIONS: usize = 256;
/// Requests per second per client address.
pub const RATE_PER_SECOND: f64 = 50.0;
/// Burst per client address.
pub const RATE_BURST: f64 = 200.0;
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An answer: status, content type, cache policy, body.
pub(crate) struct Answer {
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn ok(content_type: &'static str, cache: &'static str, body: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type,
            cache,
            body,
        }
    }

    fn text(status: StatusCode, msg: impl Into<String>) -> Self {
        let mut body = msg.into().into_bytes();
        body.push(b'\n');
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            cache: "no-cache",
            body,
        }
    }

    fn into_response(self, head: bool) -> Response<Full<Bytes>> {
        let len = self.body.len();
        let body = if head { Vec::new() } else { self.body };
        Response::builder()
            .status(self.status)
            .header("Content-Type", self.content_type)
            .header("Cache-Control", self.cache)
            .header("Content-Length", len)
            .header("X-Content-Type-Options", "nosniff")
            // No page runs a script, and a served diff report (diffoscope's HTML of a crate
            // author's files) must not either.
            .header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

/// Starts serving `node`'s log on `addr`; with `recipe_orders_per_hour`, also `POST
/// /recipe` (`recipes.rs`: a miss's recipe ordered, at most that many an hour in all, a
/// third of it from one client address).
pub async fn serve(
    addr: SocketAddr,
    node: &NodeHandle,
    recipe_orders_per_hour: Option<u32>,
) -> anyhow::Result<SocketAddr> {
    let orders = recipe_orders_per_hour.map(|per_hour| {
        Arc::new(recipes::RecipeOrders::new(
            node.commands(),
            node.shared().committee.clone(),
            per_hour,
        ))
    });
    serve_with(addr, node.shared().clone(), orders).await
}

/// Serves `shared`'s log on `addr` (what [`serve`] does without recipe orders; tests call it
/// without a network).
#[cfg(test)]
pub(crate) async fn serve_shared(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> anyhow::Result<SocketAddr> {
    serve_with(addr, shared, None).await
}

async fn serve_with(
    addr: SocketAddr,
    shared: Arc<Shared>,
    orders: Option<Arc<recipes::RecipeOrders>>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let bounds = Bounds {
        max_connections: MAX_CONNECTIONS,
        max_per_address: MAX_PER_ADDRESS,
        rate_burst: RATE_BURST,
        rate_per_second: RATE_PER_SECOND,
    };
    let counted = shared.clone();
    server::spawn(
        listener,
        bounds,
        move |why| {
            let counter = match why {
                Refusal::Connection => &counted.counters.http_connections_refused,
                Refusal::RateLimited => &counted.counters.http_rate_limited,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        },
        move |req, client| handle(req, client, shared.clone(), orders.clone()),
    );
    Ok(local)
}

async fn handle(
    req: Request<Incoming>,
    client: synchronicity_net::AddressBucket,
    shared: Arc<Shared>,
    orders: Option<Arc<recipes::RecipeOrders>>,
) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() == Method::POST && req.uri().path() == "/recipe" {
        return match orders {
            Some(o) => o.order(req.into_body(), client).await,
            None => Answer::text(
                StatusCode::FORBIDDEN,
                "this member does not accept recipe orders ([light] accept_recipes)",
            ),
        }
        .into_response(false);
    }
    if req.method() != Method::GET && !head {
        return Answer::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or HEAD only (POST /recipe)",
        )
        .into_response(head);
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let answer = tokio::task::spawn_blocking(move || route(&shared, &path, &query))
        .await
        .unwrap_or_else(|_| Answer::text(StatusCode::INTERNAL_SERVER_ERROR, "the answer failed"));
    answer.into_response(head)
}

/// The answer to GET `path` (pure over the store; every error is a 4xx or a 5xx, never a
/// panic).
pub(crate) fn route(shared: &Shared, path: &str, query: &str) -> Answer {
    if path.len() > 512 || query.len() > 512 {
        return Answer::text(StatusCode::URI_TOO_LONG, "path or query over 512 bytes");
    }
    let store = &shared.store;
    let internal =
        |e: crate::log::StoreError| Answer::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    match path {
        "/" => return web::index(shared),
        "/search" => return web::search(shared, query),
        "/style.css" => {
            return Answer::ok(
                "text/css",
                "public, max-age=3600",
                web::STYLE.as_bytes().to_vec(),
            );
        }
        "/checkpoint" => {
            return match store.latest_checkpoint() {
                Ok(Some(note)) => {
                    Answer::ok("text/plain; charset=utf-8", "no-cache", note.into_bytes())
                }
                Ok(None) => Answer::text(StatusCode::NOT_FOUND, "no cosigned checkpoint yet"),
                Err(e) => internal(e),
            };
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/tile/") {
        let Some(tile) = parse_tile_path(rest) else {
            return Answer::text(StatusCode::NOT_FOUND, format!("{path}: not a tile path"));
        };
        let cache = if tile.is_full() {
            IMMUTABLE
        } else {
            "no-cache"
        };
        return match tile {
            TilePath::Hashes { level, index, .. } => {
                match store.tile_hashes(level, index, tile.width()) {
                    Ok(Some(b)) => Answer::ok("application/octet-stream", cache, b),
                    Ok(None) => {
                        Answer::text(StatusCode::NOT_FOUND, format!("{path}: beyond the log"))
                    }
                    Err(e) => internal(e),
                }
            }
            TilePath::Entries { index, .. } => {
                let size = match store.size() {
                    Ok(s) => s,
                    Err(e) => return internal(e),
                };
                match width_in_tree(0, index, size) {
                    Some(have) if have >= tile.width() => {}
                    _ => {
                        return Answer::text(
                            StatusCode::NOT_FOUND,
                            format!("{path}: beyond the log"),
                        );
                    }
                }
                match store.entries(index * 256, tile.width()) {
                    Ok(entries) => match entry_bundle(&entries) {
                        Some(b) => Answer::ok("application/octet-stream", cache, b),
                        None => Answer::text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "an entry is over 65,535 bytes",
                        ),
                    },
                    Err(e) => internal(e),
                }
            }
        };
    }
    if let Some(key) = path.strip_prefix("/lookup/") {
        let Some(lookup) = LookupKey::parse(key) else {
            return Answer::text(
                StatusCode::BAD_REQUEST,
                format!("{key:?} is neither CRATE@VERSION nor a request id"),
            );
        };
        // The default variant for the committee's target, as the light protocol answers.
        let index = match store.resolve_for(&lookup, Some(&shared.committee.build().target)) {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => return Answer::text(StatusCode::NOT_FOUND, e),
            Err(e) => return internal(e),
        };
        let note = match store.latest_checkpoint() {
            Ok(Some(n)) => n,
            Ok(None) => return Answer::text(StatusCode::NOT_FOUND, "no cosigned checkpoint yet"),
            Err(e) => return internal(e),
        };
        let cp = match shared.verify_checkpoint(&note) {
            Ok(c) => c,
            Err(e) => return Answer::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        if cp.checkpoint().size <= index {
            return Answer::text(
                StatusCode::NOT_FOUND,
                format!("the entry for {key} is not yet under a cosigned checkpoint"),
            );
        }
        return match store.proof_file(index, &cp) {
            Ok(f) => Answer::ok(
                "text/plain; charset=utf-8",
                "no-cache",
                f.format().into_bytes(),
            ),
            Err(e) => internal(e),
        };
    }
    if let Some(hex_sha) = path.strip_prefix("/blob/") {
        let mut sha = [0u8; 32];
        if hex::decode_to_slice(hex_sha, &mut sha).is_err() {
            return Answer::text(StatusCode::BAD_REQUEST, "a blob is named by 64 hex digits");
        }
        return match store.blob(&sha) {
            Ok(Some(b)) => Answer::ok("text/plain; charset=utf-8", IMMUTABLE, b),
            Ok(None) => Answer::text(
                StatusCode::NOT_FOUND,
                format!("no text with sha256 {hex_sha}"),
            ),
            Err(e) => internal(e),
        };
    }
    if let Some(hex_id) = path.strip_prefix("/build-log/") {
        let Some(id) = request_id(hex_id) else {
            return Answer::text(
                StatusCode::BAD_REQUEST,
                "a request is named by 64 hex digits",
            );
        };
        return match shared
            .node_dir
            .as_deref()
            .and_then(|d| crate::node::build_logs::read(d, &id))
        {
            Some(b) => Answer::ok("text/plain; charset=utf-8", "no-cache", b),
            None => Answer::text(
                StatusCode::NOT_FOUND,
                format!("this member keeps no build log of request {hex_id}"),
            ),
        };
    }
    if let Some(name) = path.strip_prefix("/diff/") {
        let (hex_id, file, content_type) = match name.strip_suffix(".txt") {
            Some(h) => (h, "diff.txt", "text/plain; charset=utf-8"),
            None => (name, "diff.html", "text/html; charset=utf-8"),
        };
        let Some(id) = request_id(hex_id) else {
            return Answer::text(
                StatusCode::BAD_REQUEST,
                "a request is named by 64 hex digits",
            );
        };
        return match shared
            .node_dir
            .as_deref()
            .and_then(|d| diff_report(d, &id, file))
        {
            Some(b) => Answer::ok(content_type, "no-cache", b),
            None => Answer::text(
                StatusCode::NOT_FOUND,
                format!(
                    "no diff report of request {hex_id} here (synchronicity diff {hex_id} --out NODE_DIR/diffs/{hex_id})"
                ),
            ),
        };
    }
    Answer::text(StatusCode::NOT_FOUND, format!("{path}: not found"))
}

fn request_id(hex_id: &str) -> Option<[u8; 32]> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(id)
}

/// Largest diff report served.
const MAX_REPORT: u64 = 40 << 20;

/// `NODE_DIR/diffs/<id>/<file>` (written by `synchronicity diff`), if it is a regular
/// file of at most [`MAX_REPORT`] bytes.
pub(crate) fn diff_report(
    node_dir: &std::path::Path,
    id: &[u8; 32],
    file: &str,
) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let path = node_dir.join("diffs").join(hex::encode(id)).join(file);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_REPORT {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .ok()?
        .take(MAX_REPORT)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}
