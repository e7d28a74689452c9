//! `synchronicity witness --listen ADDR --dir DIR --log committee.toml`: a minimal
//! tlog-witness for one log (the committee's). `POST /add-checkpoint`:
//!
//! - 400: a malformed body; 403: the checkpoint is not the committee's (its threshold
//!   signature does not verify); 409 (`text/x.tlog.size`, the witness's size): `old` is not
//!   the size the witness holds; 400: a checkpoint older than the one held; 422: the
//!   consistency proof from the held checkpoint does not verify (a split view attempt: the
//!   witness never cosigns it); 200: the cosignature/v1 line.
//! - State: the latest cosigned checkpoint it accepted, `DIR/checkpoint` (temp file, fsync,
//!   rename BEFORE the cosignature is returned: after a crash it holds the last checkpoint
//!   it may have cosigned, so it can never cosign an inconsistent one).
//! - Key: `DIR/witness.key` (Ed25519 seed, 0600, made at first start); its verifier key is
//!   printed at start and written to `DIR/witness.vkey`.
//!
//! Bounds: bodies of at most 64 KiB, 64 connections, one request processed at a time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::{AddCheckpoint, MAX_ADD_CHECKPOINT, WitnessKey, cosignature_line, cosignature_message};
use crate::committee::Committee;
use crate::crypto::NodeIdentity;
use crate::log::{CosignedCheckpoint, merkle};

/// The witness's state.
pub struct Witness {
    committee: Committee,
    identity: NodeIdentity,
    key: WitnessKey,
    dir: PathBuf,
    latest: Mutex<Option<CosignedCheckpoint>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.key.name)
            .finish()
    }
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(d) = path.parent()
        && let Ok(d) = std::fs::File::open(d)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Witness {
    /// Opens (or creates) the witness in `dir` for `committee`'s log, named `name`.
    pub fn open(dir: &Path, committee: Committee, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        let key_file = dir.join("witness.key");
        let identity = match std::fs::read(&key_file) {
            Ok(b) => {
                let seed: [u8; 32] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{}: not a 32-byte key", key_file.display()))?;
                NodeIdentity::from_secret_bytes(&seed)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = NodeIdentity::generate();
                write_atomic(&key_file, &id.secret_bytes(), 0o600)
                    .with_context(|| key_file.display().to_string())?;
                id
            }
            Err(e) => anyhow::bail!("{}: {e}", key_file.display()),
        };
        let key = WitnessKey::new(name, identity.public_key_bytes());
        write_atomic(
            &dir.join("witness.vkey"),
            format!("{}\n", key.vkey()).as_bytes(),
            0o644,
        )?;
        let state = dir.join("checkpoint");
        let latest = match std::fs::read_to_string(&state) {
            Ok(note) => Some(
                CosignedCheckpoint::verify(&note, &committee)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", state.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("{}: {e}", state.display()),
        };
        Ok(Self {
            committee,
            identity,
            key,
            dir: dir.to_path_buf(),
            latest: Mutex::new(latest),
        })
    }

    /// The verifier key.
    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Answers one `add-checkpoint` body: (status, content type, body).
    pub fn add_checkpoint(&self, body: &str) -> (StatusCode, &'static str, String) {
        let text = "text/plain; charset=utf-8";
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, text, e),
        };
        let cp = match CosignedCheckpoint::verify(&req.note, &self.committee) {
            Ok(c) => c,
            Err(e) => {
                return (
                    StatusCode::FORBIDDEN,
                    text,
                    format!("not this log's checkpoint: {e}"),
                );
            }
        };
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let (held_size, held_root) = latest
            .as_ref()
            .map(|c| (c.checkpoint().size, c.checkpoint().root))
            .unwrap_or((0, merkle::EMPTY_ROOT));
        if req.old != held_size {
            return (
                StatusCode::CONFLICT,
                "text/x.tlog.size",
                format!("{held_size}\n"),
            );
        }
        let new = cp.checkpoint();
        if new.size < held_size {
            return (
                StatusCode::BAD_REQUEST,
                text,
                "older than the checkpoint held".into(),
            );
        }
        let consistent = if held_size == 0 {
            req.proof.is_empty()
        } else {
            merkle::verify_consistency(held_size, new.size, &held_root, &new.root, &req.proof)
                .is_ok()
        };
        if !consistent {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                text,
                format!(
                    "not consistent with the checkpoint of size {held_size} this witness cosigned"
                ),
            );
        }
        // Durable before the cosignature leaves.
        if let Err(e) = write_atomic(&self.dir.join("checkpoint"), cp.note().as_bytes(), 0o644) {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                text,
                format!("cannot store the checkpoint: {e}"),
            );
        }
        let body_text = new.to_body();
        *latest = Some(cp);
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sig = self
            .identity
            .sign(cosignature_message(&body_text, time).as_bytes());
        (
            StatusCode::OK,
            text,
            cosignature_line(&self.key, time, &sig).to_line(),
        )
    }
}

/// Serves `witness` on `addr` until the process ends; returns the bound address.
pub async fn serve(addr: SocketAddr, witness: Arc<Witness>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let w = witness.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, w.clone()));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
                drop(permit);
            });
        }
    });
    Ok(local)
}

async fn handle(
    req: Request<Incoming>,
    w: Arc<Witness>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, ct: &str, body: String| {
        Response::builder()
            .status(status)
            .header("Content-Type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    if req.method() != Method::POST || req.uri().path() != "/add-checkpoint" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "POST /add-checkpoint\n".into(),
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_ADD_CHECKPOINT)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body over 64 KiB\n".into(),
            ));
        }
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "body is not UTF-8\n".into(),
        ));
    };
    let (status, ct, body) = tokio::task::spawn_blocking(move || w.add_checkpoint(&text))
        .await
        .unwrap_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "failed\n".into(),
        ));
    Ok(reply(status, ct, body))
}
