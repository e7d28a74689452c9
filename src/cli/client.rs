//! How `proof`, `checkpoint`, `fetch`, `install` and `audit` reach the members: a
//! `synchronicity_light::Client` (which verifies every answer and skips faulty peers, said
//! on stderr) over the trust root and peers from the flags or the user's client config.
//!
//! Client config (`$XDG_CONFIG_HOME/synchronicity/client.toml`, default
//! `~/.config/synchronicity/client.toml`), so a user types `synchronicity install ripgrep`:
//!
//! ```toml
//! trust = "/etc/synchronicity/committee.toml"   # the committee file to trust
//! peers = ["/dns4/b1.example.org/tcp/7000/p2p/12D3Koo…"]   # tried in order
//! ```

use std::path::{Path, PathBuf};

use anyhow::bail;
use synchronicity_light::{Client, ClientConfig, Notice};
use synchronicity_net::Multiaddr;

use crate::committee::Committee;

/// Starts a light client trusting `setup`'s committee and asking its peers in order; what
/// it notices (a faulty peer skipped, a download restarted) goes to stderr, one line each.
pub(super) async fn start(setup: &ClientSetup) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(setup.committee.trust_root().clone(), setup.peers.clone())
        .with_notices(print_notice);
    if let Some(chain) = &setup.chain {
        config = config.with_chain(chain.clone());
    }
    Ok(Client::start(config).await?)
}

/// `warning: …` or `note: …` on stderr.
fn print_notice(n: &Notice) {
    let level = if n.is_warning() { "warning" } else { "note" };
    eprintln!("{level}: {n}");
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
    chain: Option<PathBuf>,
    #[serde(default)]
    peers: Vec<String>,
}

/// The trust root and peers: flags first, else the client config.
#[derive(Debug)]
pub(super) struct ClientSetup {
    pub(super) committee: Committee,
    /// The committee chain from `committee` (the genesis), when one is given.
    pub(super) chain: Option<crate::verify::CommitteeChain>,
    pub(super) peers: Vec<Multiaddr>,
}

/// The committee chain in `path`, verified from `genesis` (one line naming the file if not).
pub(super) fn read_chain(
    genesis: &Committee,
    path: &Path,
) -> anyhow::Result<crate::verify::CommitteeChain> {
    let max = crate::verify::epoch::MAX_CHAIN_FILE_SIZE as u64;
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if meta.len() > max {
        bail!("{}: larger than {max} bytes", path.display());
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    crate::verify::CommitteeChain::verify(genesis.trust_root().clone(), &text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("synchronicity/client.toml"))
}

impl ClientSetup {
    /// From `--trust` / `--chain` / `--peer` (each overrides the config's), else the config
    /// file.
    pub(super) fn load(
        trust: Option<&Path>,
        chain: Option<&Path>,
        peers: &[Multiaddr],
    ) -> anyhow::Result<Self> {
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
        let chain = match (chain, &file.chain) {
            (Some(c), _) => Some(read_chain(&committee, c)?),
            // The config's chain only with the config's trust root.
            (None, Some(c)) if file.trust.as_deref() == Some(trust.as_path()) => {
                Some(read_chain(&committee, c)?)
            }
            _ => None,
        };
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
        Ok(Self {
            committee,
            chain,
            peers,
        })
    }
}
