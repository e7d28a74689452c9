//! The Docker engine's API on its unix socket, for what the CLI cannot do: create an exec
//! and learn its id before it starts, and read an exec's record (its exit code). The socket
//! is the one the CLI itself uses (its current context), resolved once when the backend
//! starts and probed there, so a wrong socket fails the node's start, not every build.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::super::BuildError;
use super::super::docker::docker;

/// The most of an answer read (an exec's record is a few hundred bytes).
const MAX_ANSWER: u64 = 1 << 20;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn backend(msg: String) -> BuildError {
    BuildError::Backend(format!("swarm: {msg}"))
}

/// The engine the CLI talks to.
#[derive(Debug, Clone)]
pub(super) struct Engine {
    socket: PathBuf,
}

impl Engine {
    /// The CLI's current engine (`docker context inspect`), which must be a unix socket
    /// that answers `/_ping`.
    pub(super) fn resolve() -> Result<Self, BuildError> {
        let host = docker(&[
            "context",
            "inspect",
            "--format",
            "{{.Endpoints.docker.Host}}",
        ])?;
        let host = host.trim();
        let socket = host.strip_prefix("unix://").map(PathBuf::from).ok_or_else(|| {
            backend(format!(
                "the Docker engine is {host}; the swarm backend needs the manager's unix socket (it reads build exits from the engine's API)"
            ))
        })?;
        let engine = Self { socket };
        match engine.call("GET", "/_ping", None)? {
            (200, _) => Ok(engine),
            (code, body) => Err(backend(format!(
                "{host}/_ping answered {code}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }

    /// `GET path`: the status code and the body.
    pub(super) fn get(&self, path: &str) -> Result<(u16, Vec<u8>), BuildError> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body: the status code and the body.
    pub(super) fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, Vec<u8>), BuildError> {
        self.call("POST", path, Some(body.to_string()))
    }

    /// One HTTP/1.0 call (the answer ends when the engine closes the connection).
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Vec<u8>), BuildError> {
        let err = |e: std::io::Error| backend(format!("{}: {e}", self.socket.display()));
        let mut s = UnixStream::connect(&self.socket).map_err(err)?;
        s.set_read_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
        s.set_write_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
        match &body {
            Some(b) => request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => request.push_str("\r\n"),
        }
        s.write_all(request.as_bytes()).map_err(err)?;
        let mut answer = Vec::new();
        s.take(MAX_ANSWER).read_to_end(&mut answer).map_err(err)?;
        let end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| backend("the engine's answer has no header end".into()))?;
        let head = String::from_utf8_lossy(&answer[..end]);
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| backend(format!("the engine answered {head:?}")))?;
        Ok((code, answer[end + 4..].to_vec()))
    }
}
