//! The light client's connection to the members, shared by `proof`, `checkpoint`, `fetch`,
//! `install` and `audit`, and the user's client config. Every answer is checked by the
//! caller; a peer whose answer fails is a faulty peer (said, and the next peer is asked).
//!
//! Client config (`$XDG_CONFIG_HOME/synchronicity/client.toml`, default
//! `~/.config/synchronicity/client.toml`), so a user types `synchronicity install ripgrep`:
//!
//! ```toml
//! trust = "/etc/synchronicity/committee.toml"   # the committee file to trust
//! peers = ["/dns4/b1.example.org/tcp/7000/p2p/12D3Koo…"]   # tried in order
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use synchronicity_net::{Multiaddr, NetConfig, NetworkHandle, PeerId, RequestKind};

use crate::committee::Committee;
use crate::node::wire::{LightRequest, LightResponse, MAX_LIGHT_RESPONSE, decode, encode};

/// The peer id of `addr`: its `/p2p/` part, or the committee member listening there.
pub(super) fn peer_of(addr: &Multiaddr, committee: &Committee) -> anyhow::Result<PeerId> {
    use synchronicity_net::multiaddr::Protocol;
    if let Some(Protocol::P2p(p)) = addr.iter().last() {
        return Ok(p);
    }
    committee
        .members()
        .iter()
        .find(|m| m.addrs.contains(addr))
        .map(|m| m.peer_id)
        .ok_or_else(|| anyhow::anyhow!("{addr}: no /p2p/ peer id and no member listens there"))
}

/// One light-client connection to the members.
pub(super) struct Client<'c> {
    net: NetworkHandle,
    committee: &'c Committee,
}

impl<'c> Client<'c> {
    pub(super) async fn start(committee: &'c Committee) -> anyhow::Result<Self> {
        let members = crate::node::member_addrs(committee);
        let key = crate::crypto::NodeIdentity::generate();
        let (net, _events) = synchronicity_net::start(
            NetConfig::new(key.keypair(), members).with_request_timeout(Duration::from_secs(10)),
        )
        .await?;
        Ok(Self { net, committee })
    }

    /// One request to the member at `addr`.
    pub(super) async fn ask(
        &self,
        addr: &Multiaddr,
        req: &LightRequest,
    ) -> anyhow::Result<LightResponse> {
        let peer = peer_of(addr, self.committee)?;
        self.net.dial(addr.clone()).await?;
        let bytes = self
            .net
            .request(peer, RequestKind::Light, encode(req))
            .await?;
        Ok(decode(&bytes, MAX_LIGHT_RESPONSE)?)
    }

    /// A text with this sha256 from the first member that has it.
    pub(super) async fn blob(&self, peers: &[Multiaddr], sha256: &[u8]) -> anyhow::Result<Vec<u8>> {
        let req = LightRequest::Blob {
            sha256: sha256.to_vec(),
        };
        for addr in peers {
            match self.ask(addr, &req).await {
                Ok(LightResponse::Blob(b)) if crate::crypto::sha256(&b)[..] == *sha256 => {
                    return Ok(b.into_vec());
                }
                Ok(LightResponse::Blob(_)) => {
                    eprintln!("warning: {addr}: faulty peer: sent a text with another sha256")
                }
                Ok(other) => eprintln!("warning: {addr}: {}", describe(&other)),
                Err(e) => eprintln!("warning: {addr}: {e:#}"),
            }
        }
        bail!("no peer has the text with sha256 {}", hex::encode(sha256))
    }

    /// The artifact with this sha256 (its size comes with the first chunk, at most
    /// [`crate::node::artifacts::MAX_ARTIFACT`]), fetched in chunks from one peer at a time.
    /// A download that changes peers STARTS OVER: bytes from a peer that failed, sent a
    /// chunk that does not fit, or whose file does not hash to `sha256` are never combined
    /// with another peer's (a faulty peer's prefix cannot spoil an honest peer's download).
    /// Each peer gets at most two turns; everything ends at `deadline`. `progress(done,
    /// total)` is called after each chunk.
    pub(super) async fn artifact(
        &self,
        peers: &[Multiaddr],
        sha256: &[u8; 32],
        deadline: super::fetch::Deadline,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<Vec<u8>> {
        let mut last_error = String::from("no peers");
        for addr in peers.iter().chain(peers.iter()) {
            let turn =
                tokio::time::timeout_at(deadline.at, self.artifact_from(addr, sha256, progress))
                    .await;
            match turn {
                Ok(Ok(data)) => return Ok(data),
                Ok(Err((why, done))) => {
                    last_error = format!("{addr}: {why}");
                    if done == 0 {
                        eprintln!("warning: {last_error}; trying the next peer");
                    } else {
                        eprintln!(
                            "warning: {last_error}; starting over at the next peer (its {done} bytes are dropped)"
                        );
                    }
                }
                Err(_) => bail!(
                    "no peer served the artifact {} within {} s (--timeout; last: {last_error})",
                    hex::encode(sha256),
                    deadline.secs
                ),
            }
        }
        bail!(
            "no peer served the artifact {} ({last_error})",
            hex::encode(sha256)
        )
    }

    /// The whole artifact from `addr` alone, from offset 0; or why not and how many bytes
    /// it had sent.
    async fn artifact_from(
        &self,
        addr: &Multiaddr,
        sha256: &[u8; 32],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<u8>, (String, usize)> {
        use sha2::Digest;
        let mut data: Vec<u8> = Vec::new();
        let mut total: Option<u64> = None;
        loop {
            let req = LightRequest::Artifact {
                sha256: sha256.to_vec(),
                offset: data.len() as u64,
            };
            let answer = self.ask(addr, &req).await;
            let (t, chunk) = match answer {
                Ok(LightResponse::Chunk {
                    total: t,
                    offset,
                    data: chunk,
                }) if offset == data.len() as u64
                    && t <= crate::node::artifacts::MAX_ARTIFACT
                    && total.is_none_or(|known| known == t)
                    && (offset + chunk.len() as u64) <= t
                    && (!chunk.is_empty() || offset == t) =>
                {
                    (t, chunk)
                }
                Ok(LightResponse::Chunk { .. }) => {
                    return Err(("faulty peer: a chunk that does not fit".into(), data.len()));
                }
                Ok(other) => return Err((describe(&other), data.len())),
                Err(e) => return Err((format!("{e:#}"), data.len())),
            };
            total = Some(t);
            data.extend_from_slice(&chunk);
            progress(data.len() as u64, t);
            if data.len() as u64 == t {
                if sha2::Sha256::digest(&data)[..] == sha256[..] {
                    return Ok(data);
                }
                return Err((
                    format!(
                        "faulty peer: the artifact's bytes do not hash to {}",
                        hex::encode(sha256)
                    ),
                    data.len(),
                ));
            }
        }
    }

    pub(super) async fn shutdown(self) {
        self.net.shutdown().await;
    }
}

/// A one-line description of an unexpected answer.
pub(super) fn describe(r: &LightResponse) -> String {
    match r {
        LightResponse::NotFound(e) => e.clone(),
        LightResponse::Proof(_) => "unexpected answer: a proof".into(),
        LightResponse::Checkpoint { .. } => "unexpected answer: a checkpoint".into(),
        LightResponse::Consistency(_) => "unexpected answer: a consistency proof".into(),
        LightResponse::Blob(_) => "unexpected answer: a blob".into(),
        LightResponse::Chunk { .. } => "unexpected answer: an artifact chunk".into(),
        LightResponse::Proofs(_) => "unexpected answer: a batch of proofs".into(),
    }
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `client.toml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    trust: Option<PathBuf>,
    #[serde(default)]
    peers: Vec<String>,
}

/// The trust root and peers: flags first, else the client config.
#[derive(Debug)]
pub(super) struct ClientSetup {
    pub(super) committee: Committee,
    pub(super) peers: Vec<Multiaddr>,
}

fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("synchronicity/client.toml"))
}

impl ClientSetup {
    /// From `--trust` / `--peer` (each overrides the config's), else the config file.
    pub(super) fn load(trust: Option<&Path>, peers: &[Multiaddr]) -> anyhow::Result<Self> {
        let path = config_path();
        let file: ClientFile = match &path {
            Some(p) if p.is_file() => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{}: {}", p.display(), e.message().replace('\n', " "))
                })?
            }
            _ => ClientFile::default(),
        };
        let shown = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/synchronicity/client.toml".into());
        let trust = match (trust, &file.trust) {
            (Some(t), _) => t.to_path_buf(),
            (None, Some(t)) => t.clone(),
            (None, None) => {
                bail!("no committee file to trust: pass --trust FILE or set trust in {shown}")
            }
        };
        let committee = super::load_committee(&trust)?;
        let peers = if peers.is_empty() {
            file.peers
                .iter()
                .map(|p| {
                    p.parse::<Multiaddr>()
                        .map_err(|e| anyhow::anyhow!("{shown}: peer {p:?}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            peers.to_vec()
        };
        if peers.is_empty() {
            bail!("no member to ask: pass --peer ADDR or set peers in {shown}");
        }
        Ok(Self { committee, peers })
    }
}
