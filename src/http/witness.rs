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
//! Cheap checks first: a POST is refused before any pairing when its body or note is
//! malformed (400), its checkpoint names another origin or carries no line of the
//! committee's key id (403), its `old` is not the size held (409) or its size is older
//! (400). Only then does it take a token of its client address's rate
//! ([`VERIFY_BURST`], [`VERIFY_PER_SECOND`] per IPv4 address or IPv6 /64; over it: 429)
//! and the threshold signature is verified (one pairing, counted in
//! [`Witness::verifications`]). Each refusal is one line of text, and writes nothing.
//!
//! Committee changes: the witness is started with the genesis file and holds the committee
//! chain in `DIR/chain.toml` (`synchronicity committee chain --trust GENESIS --out
//! DIR/chain.toml`, run by its operator on a timer). A checkpoint is verified with the
//! committee of the epoch its key id names, inside that epoch's sizes (a retired committee
//! cannot sign beyond its handoff). Before each checkpoint is judged the witness reads the
//! chain file again if it changed (its modification time; its links are verified again only
//! if its text changed, each with the previous committee's keys, and only an extension of the
//! chain held is taken); so it accepts a new committee's key only after verifying the change
//! from the chain it holds, and a handoff its chain holds ends the old committee at once.
//!
//! Bounds: bodies of at most 64 KiB, one checkpoint stored at a time, and the accept loop the
//! log's HTTP server has too (`http/server.rs`): [`MAX_CONNECTIONS`] connections and
//! [`MAX_CONNECTIONS_PER_ADDRESS`] from one address (more are closed at once, the latter with
//! a one-line `503`), headers within 10 s, a connection at most 60 s, and
//! [`REQUEST_BURST`] requests at once per address refilled at [`REQUESTS_PER_SECOND`] (over
//! it: 429, before the cheap checks). Refusals are counted
//! ([`Witness::connections_refused`], [`Witness::requests_limited`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};

use synchronicity_net::AddressBucket;

use crate::crypto::NodeIdentity;
use crate::http::limits::{MAX_CLIENTS, RateTable};
use crate::http::server::{self, Bounds, Refusal};
use crate::log::{Checkpoint, CosignedCheckpoint, SignedNote, merkle};
use crate::verify::Committee;
use crate::verify::CommitteeChain;
use crate::verify::epoch::MAX_CHAIN_FILE_SIZE;
use crate::witness::{
    AddCheckpoint, MAX_ADD_CHECKPOINT, WitnessKey, cosignature_line, cosignature_message,
};

/// Signature verifications one client address may ask for at once.
pub const VERIFY_BURST: f64 = 32.0;
/// Signature verifications per second per client address, refilled.
pub const VERIFY_PER_SECOND: f64 = 8.0;
/// Most open connections.
pub const MAX_CONNECTIONS: usize = 64;
/// Most open connections from one client address (of [`MAX_CONNECTIONS`]).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
/// Requests (of any kind) one client address may make at once.
pub const REQUEST_BURST: f64 = 200.0;
/// Requests per second per client address, refilled.
pub const REQUESTS_PER_SECOND: f64 = 50.0;

/// The committee chain the witness holds, and the chain file's modification time when it
/// was read.
struct HeldChain {
    chain: CommitteeChain,
    read: Option<SystemTime>,
    /// SHA-256 of the file's text when it was last verified (a rewrite of the same chain,
    /// as `committee chain --out` does on every run, is not verified again).
    digest: Option<[u8; 32]>,
}

/// The witness's state.
pub struct Witness {
    /// The log's genesis committee (its origin is every epoch's).
    committee: Committee,
    chain: Mutex<HeldChain>,
    identity: NodeIdentity,
    key: WitnessKey,
    dir: PathBuf,
    latest: Mutex<Option<CosignedCheckpoint>>,
    limiter: Mutex<RateTable>,
    verifications: AtomicU64,
    refused_early: AtomicU64,
    rate_limited: AtomicU64,
    connections_refused: AtomicU64,
    requests_limited: AtomicU64,
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

/// Reads `dir/chain.toml` into `held` if it changed since it was read (absent: the genesis
/// alone). The chain held is only EXTENDED: a file whose links do not verify from the
/// genesis, or that drops or forks an epoch held, is refused (returned) and changes nothing.
fn read_chain(dir: &Path, held: &mut HeldChain) -> Option<String> {
    let path = dir.join("chain.toml");
    let modified = match std::fs::metadata(&path) {
        Ok(m) if m.len() > MAX_CHAIN_FILE_SIZE as u64 => {
            return Some(format!(
                "{}: larger than {MAX_CHAIN_FILE_SIZE} bytes",
                path.display()
            ));
        }
        Ok(m) => m.modified().ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    if modified.is_some() && modified == held.read {
        return None;
    }
    held.read = modified;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
    if held.digest == Some(digest) {
        return None;
    }
    held.digest = Some(digest);
    let chain = match CommitteeChain::verify(held.chain.genesis().clone(), &text) {
        Ok(c) => c,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    let old = held.chain.epochs();
    let extends = chain.epochs().len() >= old.len()
        && old.iter().zip(chain.epochs()).all(|(a, b)| {
            a.committee().digest() == b.committee().digest() && a.start() == b.start()
        });
    if !extends {
        return Some(format!(
            "{}: does not extend the chain this witness holds (epochs 0..={})",
            path.display(),
            held.chain.latest().epoch()
        ));
    }
    if chain.latest().epoch() > held.chain.latest().epoch() {
        tracing::info!(
            epoch = chain.latest().epoch(),
            "the committee chain moved on: the new committee's checkpoints are accepted"
        );
    }
    held.chain = chain;
    None
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
        let mut held = HeldChain {
            chain: CommitteeChain::from_genesis(committee.clone())?,
            read: None,
            digest: None,
        };
        if let Some(err) = read_chain(dir, &mut held) {
            anyhow::bail!("{err}");
        }
        let state = dir.join("checkpoint");
        let latest = match std::fs::read_to_string(&state) {
            Ok(note) => Some(
                held.chain
                    .verify_checkpoint(&note)
                    .map(|(cp, _)| cp)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", state.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("{}: {e}", state.display()),
        };
        Ok(Self {
            committee,
            chain: Mutex::new(held),
            identity,
            key,
            dir: dir.to_path_buf(),
            latest: Mutex::new(latest),
            limiter: Mutex::new(RateTable::new(VERIFY_BURST, VERIFY_PER_SECOND, MAX_CLIENTS)),
            verifications: AtomicU64::new(0),
            refused_early: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            requests_limited: AtomicU64::new(0),
        })
    }

    /// The verifier key.
    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Threshold signatures verified so far (each one pairing).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Requests refused by the cheap checks, before any pairing.
    pub fn refused_early(&self) -> u64 {
        self.refused_early.load(Ordering::Relaxed)
    }

    /// Requests refused for their address's verification rate.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Connections closed at once: the server or their client address was full.
    pub fn connections_refused(&self) -> u64 {
        self.connections_refused.load(Ordering::Relaxed)
    }

    /// Requests answered 429 for their address's request rate (before any check).
    pub fn requests_limited(&self) -> u64 {
        self.requests_limited.load(Ordering::Relaxed)
    }

    /// The checks that cost no pairing: the note's shape, the checkpoint's origin, one
    /// line of the committee's key id, and the sizes against the held checkpoint.
    fn cheap_checks(&self, req: &AddCheckpoint) -> Result<(), (StatusCode, &'static str, String)> {
        let text = "text/plain; charset=utf-8";
        let note = SignedNote::parse(&req.note).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                text,
                format!("not a signed note: {e}"),
            )
        })?;
        let cp = Checkpoint::parse(&note.text).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                text,
                format!("not a checkpoint: {e}"),
            )
        })?;
        let origin = self.committee.origin();
        if cp.origin != origin {
            return Err((
                StatusCode::FORBIDDEN,
                text,
                format!(
                    "not this log's checkpoint: origin {:?}, not {origin:?}",
                    cp.origin
                ),
            ));
        }
        // The chain file first, if it changed (a metadata read; the file is verified again
        // only when its text changed): a handoff the operator's chain already holds must end
        // the old committee's authority before that committee's next checkpoint is judged.
        // Then one line of the key id of a committee of the chain held.
        let mut chain = self.chain.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(err) = read_chain(&self.dir, &mut chain) {
            tracing::warn!("{err}");
        }
        let lines = |chain: &CommitteeChain| {
            chain
                .epochs()
                .iter()
                .map(|e| {
                    let key_id = e.committee().key_id();
                    note.signatures
                        .iter()
                        .filter(|s| s.name == origin && s.key_id == key_id)
                        .count()
                })
                .max()
                .unwrap_or(0)
        };
        let n = lines(&chain.chain);
        if n != 1 {
            return Err((
                StatusCode::FORBIDDEN,
                text,
                format!(
                    "not this log's checkpoint: {n} signature lines of a committee key id of epochs 0..={}, not one (a newer epoch? the witness's chain.toml is behind)",
                    chain.chain.latest().epoch()
                ),
            ));
        }
        drop(chain);
        let held = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.checkpoint().size);
        if req.old != held {
            return Err((
                StatusCode::CONFLICT,
                "text/x.tlog.size",
                format!("{held}\n"),
            ));
        }
        if cp.size < held {
            return Err((
                StatusCode::BAD_REQUEST,
                text,
                "older than the checkpoint held".into(),
            ));
        }
        Ok(())
    }

    /// Answers one `add-checkpoint` body from `client` at `now`: (status, content type,
    /// body). Cheap checks, then the client's rate, then the pairing (see the module doc).
    pub fn add_checkpoint(
        &self,
        body: &str,
        client: AddressBucket,
        now: Instant,
    ) -> (StatusCode, &'static str, String) {
        let text = "text/plain; charset=utf-8";
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => {
                self.refused_early.fetch_add(1, Ordering::Relaxed);
                return (StatusCode::BAD_REQUEST, text, e);
            }
        };
        if let Err(refusal) = self.cheap_checks(&req) {
            self.refused_early.fetch_add(1, Ordering::Relaxed);
            return refusal;
        }
        let allowed = self
            .limiter
            .lock()
            .map(|mut l| l.allow(client, now))
            .unwrap_or(false);
        if !allowed {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                text,
                "too many checkpoints to verify from your address".into(),
            );
        }
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self
            .chain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .chain
            .verify_checkpoint(&req.note);
        let cp: CosignedCheckpoint = match verified {
            Ok((c, _epoch)) => c,
            Err(e) => {
                return (
                    StatusCode::FORBIDDEN,
                    text,
                    format!("not this log's checkpoint: {e}"),
                );
            }
        };
        // The held checkpoint may have moved since the cheap checks: checked again under
        // the lock, which is held until the new one is stored.
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
    let bounds = Bounds {
        max_connections: MAX_CONNECTIONS,
        max_per_address: MAX_CONNECTIONS_PER_ADDRESS,
        rate_burst: REQUEST_BURST,
        rate_per_second: REQUESTS_PER_SECOND,
    };
    let counted = witness.clone();
    server::spawn(
        listener,
        bounds,
        move |why| {
            let counter = match why {
                Refusal::Connection => &counted.connections_refused,
                Refusal::RateLimited => &counted.requests_limited,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        },
        move |req, client| handle(req, witness.clone(), client),
    );
    Ok(local)
}

async fn handle(
    req: Request<Incoming>,
    w: Arc<Witness>,
    client: AddressBucket,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ct: &str, body: String| {
        Response::builder()
            .status(status)
            .header("Content-Type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    if req.method() != Method::POST || req.uri().path() != "/add-checkpoint" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "POST /add-checkpoint\n".into(),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_ADD_CHECKPOINT)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body over 64 KiB\n".into(),
            );
        }
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "body is not UTF-8\n".into(),
        );
    };
    let (status, ct, body) =
        tokio::task::spawn_blocking(move || w.add_checkpoint(&text, client, Instant::now()))
            .await
            .unwrap_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "failed\n".into(),
            ));
    reply(status, ct, body)
}

#[cfg(test)]
mod tests;
