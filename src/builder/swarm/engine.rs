//! A Docker engine's API, for what the CLI cannot do: create an exec and learn its id
//! before it starts, and read an exec's record (its exit code). The manager's engine is
//! the one the CLI itself uses (its current context, a unix socket), resolved once when the
//! backend starts and probed there, so a wrong socket fails the node's start, not every
//! build. A worker's engine is the endpoint its swarm node's `synchronicity.engine` label
//! names (`tcp://ADDR:PORT` on a private network, or `unix:///PATH`, e.g. an SSH tunnel's
//! socket): the operator's label, never a worker's word.

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// Where an engine's API is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

/// A Docker engine's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Engine {
    endpoint: Endpoint,
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
        if !host.starts_with("unix://") {
            return Err(backend(format!(
                "the Docker engine is {host}; the swarm backend needs the manager's unix socket (it reads build exits from the engine's API)"
            )));
        }
        let engine = Self::at(host)?;
        engine.ping()?;
        Ok(engine)
    }

    /// The engine at `endpoint` (`unix:///PATH` or `tcp://HOST:PORT`), not yet asked
    /// anything.
    pub(super) fn at(endpoint: &str) -> Result<Self, BuildError> {
        let endpoint = if let Some(path) = endpoint.strip_prefix("unix:///") {
            Endpoint::Unix(PathBuf::from(format!("/{path}")))
        } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
            let ok = !addr.is_empty()
                && addr.len() <= 255
                && addr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                && addr
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if !ok {
                return Err(backend(format!(
                    "engine endpoint {endpoint:?}: not tcp://HOST:PORT"
                )));
            }
            Endpoint::Tcp(addr.to_string())
        } else {
            return Err(backend(format!(
                "engine endpoint {endpoint:?}: neither unix:///PATH nor tcp://HOST:PORT"
            )));
        };
        Ok(Self { endpoint })
    }

    /// The endpoint as the CLI's `--host` takes it.
    pub(super) fn host(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(a) => format!("tcp://{a}"),
        }
    }

    /// Whether the engine answers `/_ping` with 200 (else why not).
    pub(super) fn ping(&self) -> Result<(), BuildError> {
        match self.call("GET", "/_ping", None)? {
            (200, _) => Ok(()),
            (code, body) => Err(backend(format!(
                "{}/_ping answered {code}: {}",
                self.host(),
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
        let err = |e: std::io::Error| backend(format!("{}: {e}", self.host()));
        let mut s: Box<dyn ReadWrite> = match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).map_err(err)?;
                s.set_read_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
                s.set_write_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
                Box::new(s)
            }
            Endpoint::Tcp(addr) => {
                use std::net::ToSocketAddrs;
                let to = addr
                    .to_socket_addrs()
                    .map_err(err)?
                    .next()
                    .ok_or_else(|| backend(format!("{addr}: no address")))?;
                let s = TcpStream::connect_timeout(&to, CALL_TIMEOUT).map_err(err)?;
                s.set_read_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
                s.set_write_timeout(Some(CALL_TIMEOUT)).map_err(err)?;
                Box::new(s)
            }
        };
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
        match &body {
            Some(b) => request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => request.push_str("\r\n"),
        }
        s.write_all(request.as_bytes()).map_err(err)?;
        // The whole answer within CALL_TIMEOUT (a per-read timeout alone lets an engine
        // that sends a byte now and then hold the call for days).
        let deadline = std::time::Instant::now() + CALL_TIMEOUT;
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(backend(format!(
                    "{}: no whole answer in {CALL_TIMEOUT:?}",
                    self.host()
                )));
            }
            s.set_read_timeout(Some(left)).map_err(err)?;
            let n = s.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            if answer.len() + n > MAX_ANSWER as usize {
                return Err(backend(format!(
                    "{}: an answer over {MAX_ANSWER} bytes",
                    self.host()
                )));
            }
            answer.extend_from_slice(&buf[..n]);
        }
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

/// A connection to an engine, whichever transport.
trait ReadWrite: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}
impl ReadWrite for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
}
impl ReadWrite for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_paths_or_tcp_host_ports() {
        assert_eq!(
            Engine::at("tcp://172.17.0.3:2375").unwrap().host(),
            "tcp://172.17.0.3:2375"
        );
        assert_eq!(
            Engine::at("unix:///run/w1.sock").unwrap().host(),
            "unix:///run/w1.sock"
        );
        for bad in [
            "tcp://",
            "tcp://host",
            "tcp://host:99999",
            "tcp://a b:1",
            "http://h:1",
            "unix://rel",
            "ssh://h",
        ] {
            assert!(Engine::at(bad).is_err(), "{bad}");
        }
    }
}
