//! Plain HTTP/1.1 on loopback for tests: a server that answers each request from a function
//! (the registry, a sparse index), and a client that sends one request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// A request as the server's function sees it.
pub(crate) struct Request {
    /// The request target, e.g. `/index/3/f/foo`.
    pub(crate) path: String,
    /// Header names (lowercase) and values (trimmed).
    pub(crate) headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: the status line's rest (`"200 OK"`), extra header lines (each ending in
/// `\r\n`), the body.
pub(crate) struct Response {
    pub(crate) status: &'static str,
    pub(crate) headers: String,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// `200 OK` with `body`.
    pub(crate) fn ok(body: Vec<u8>) -> Self {
        Self {
            status: "200 OK",
            headers: String::new(),
            body,
        }
    }

    /// `404 Not Found`, no body.
    pub(crate) fn not_found() -> Self {
        Self {
            status: "404 Not Found",
            headers: String::new(),
            body: Vec::new(),
        }
    }
}

/// Serves on a new loopback port (see [`serve_on`]); returns `http://127.0.0.1:PORT`.
pub(crate) fn serve(answer: impl Fn(&Request) -> Response + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    serve_on(listener, answer);
    base
}

/// Serves on `listener` until the process ends, one thread a connection, one request a
/// connection (`Connection: close`).
pub(crate) fn serve_on(
    listener: TcpListener,
    answer: impl Fn(&Request) -> Response + Send + Sync + 'static,
) {
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let r = answer(&Request { path, headers });
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                    r.status,
                    r.body.len(),
                    r.headers
                );
                let _ = s.write_all(&r.body);
            });
        }
    });
}

/// One HTTP/1.1 request to `addr` (`host:port`); returns (status, body). Status 0: no
/// status line came back.
pub(crate) fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
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
