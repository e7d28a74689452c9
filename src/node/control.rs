//! The operator's control socket: `DIR/control.sock`, a Unix socket (mode 0600, so only
//! the node's user can submit), one JSON request per line, one JSON answer per line.
//!
//! ```text
//! → {"Submit":{"krate":"itoa","version":"1.0.15","lockfile":null}}
//! ← {"Ok":{"Submitted":{"id":"<hex>"}}}
//! → {"Status":{"key":"itoa@1.0.15"}}        (key optional: crate@version or request id)
//! ← {"Ok":{"Status":{...}}}
//! ← {"Error":"one line"}
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::builder_driver::SubmitError;
use super::service::BuildService;
use super::shared::LatestCheckpointError;
use super::{NodeHandle, run};
use crate::log::{LookupKey, StoreError};
use crate::protocol::{EntryError, LogEntry, Phase};
use synchronicity_verify::request::recipe_spec;

/// File name of the socket inside the node directory.
pub const CONTROL_SOCKET: &str = "control.sock";
/// Longest request line.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// A control request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Pin and order a crate.
    Submit {
        /// Crate name.
        krate: String,
        /// Exact version.
        version: String,
        /// A lockfile to use instead of the shipped or generated one.
        lockfile: Option<String>,
        /// Feature flags (absent: the default variant).
        #[serde(default)]
        variant: crate::builder::Variant,
    },
    /// Order the dependencies of a recipe (issue 28).
    SubmitRecipe {
        /// The recipe's canonical CBOR, in hex.
        recipe: String,
    },
    /// Approve the next epoch's committee file (its whole text).
    Approve {
        /// The committee file.
        committee: String,
    },
    /// The node's state, and the round or entry for `key` if given.
    Status {
        /// `crate@version` or a request id in hex.
        key: Option<String>,
    },
}

/// Why a control request failed: at the node (sent back as one line), or on the way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The builder could not pin the crate.
    #[error("{0}")]
    Pin(String),
    /// The pinning task did not finish.
    #[error(transparent)]
    PinTask(#[from] tokio::task::JoinError),
    /// The node did not order the request.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The log store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The latest checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] LatestCheckpointError),
    /// A stored entry does not decode.
    #[error("entry {index}: {source}")]
    Entry {
        /// Its log index.
        index: u64,
        /// Why.
        source: EntryError,
    },
    /// The socket could not be reached.
    #[error("{}: {source} (is the node running?)", .path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A line is not the JSON of a request or an answer.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The node closed the connection without an answer.
    #[error("the node closed the control connection")]
    Closed,
    /// The node answered with an error (its one line).
    #[error("{0}")]
    Node(String),
}

/// A control answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlResponse {
    /// Success.
    Ok(ControlAnswer),
    /// Failure, one line.
    Error(String),
}

/// What succeeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlAnswer {
    /// The request was ordered (or already was).
    Submitted {
        /// Request id, hex.
        id: String,
    },
    /// Our approval is published.
    Approved {
        /// The epoch the approved committee begins.
        epoch: u64,
    },
    /// The node's state.
    Status(Box<NodeStatus>),
}

/// A snapshot of the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The committee's epoch (0: the genesis).
    #[serde(default)]
    pub epoch: u64,
    /// Committee changes under way: each proposal's text hash (hex) with the members that
    /// approved it, and whether it is scheduled (requests then wait until the epoch ends).
    #[serde(default)]
    pub changes: Vec<PendingChange>,
    /// Our committee position (meaningless while `following`).
    pub member: u32,
    /// This node is not a member of the epoch: it follows the log as a non-voter until the
    /// epoch that adds it (`node --join`).
    #[serde(default)]
    pub following: bool,
    /// Last applied height.
    pub applied_height: u64,
    /// Block time of the last applied height (ms since the epoch; 0 before the first). An
    /// idle group decides no heights: peers and this show it is alive and when it last moved.
    #[serde(default)]
    pub last_block_ms: u64,
    /// Why the node halted, if it did (it is about to exit).
    #[serde(default)]
    pub halted: Option<String>,
    /// The build queue: waiting and running builds, the most that ran at once.
    #[serde(default)]
    pub builds: super::queue::QueueStatus,
    /// Log size.
    pub log_size: u64,
    /// Log root (hex).
    pub root: String,
    /// Size of the latest cosigned checkpoint.
    pub checkpoint_size: Option<u64>,
    /// Members connected now.
    pub connected_members: usize,
    /// Open rounds: (request id hex, crate@version, phase, committed, revealed).
    pub open: Vec<OpenRound>,
    /// The entry that answers the asked key (for `crate@version`: the default variant's,
    /// as `proof` would return it), once decided.
    pub entry: Option<EntryStatus>,
    /// Every decided variant of the asked `crate@version` (or the one asked request).
    #[serde(default)]
    pub variants: Vec<EntryStatus>,
    /// How far the backlog (`[follow] list`) has come, if the node has one.
    #[serde(default)]
    pub backlog: Option<super::backlog::BacklogProgress>,
}

/// A committee change under way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingChange {
    /// SHA-256 of the proposed committee file, hex.
    pub file: String,
    /// Members that approved it.
    pub approved: Vec<u32>,
    /// The change is scheduled: the epoch ends once no round is open.
    pub scheduled: bool,
    /// The toolchain the proposed committee builds with (`status` warns when this host's
    /// rustup lacks it).
    #[serde(default)]
    pub toolchain: String,
}

/// An open round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenRound {
    /// Request id, hex.
    pub id: String,
    /// `crate@version`.
    pub name: String,
    /// The phase it is in (`commit` or `reveal`).
    pub phase: Phase,
    /// Members whose commitment is ordered.
    pub committed: Vec<u32>,
    /// Members whose reveal is ordered.
    pub revealed: Vec<u32>,
}

/// A decided entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryStatus {
    /// Log index.
    pub index: u64,
    /// The entry.
    pub entry: LogEntry,
    /// Whether a cosigned checkpoint covers it yet.
    pub cosigned: bool,
}

/// Serves the control socket of `node` until the task is dropped.
pub(crate) fn serve(
    node: &NodeHandle,
    dir: &Path,
    service: Arc<dyn BuildService>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = dir.join(CONTROL_SOCKET);
    // A socket left by a killed node: nothing listens on it any more.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let ctx = Arc::new(Ctx {
        shared: node.shared.clone(),
        net: node.net.clone(),
        commands: node.commands.clone(),
        service,
    });
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream, ctx.clone()));
        }
    }))
}

struct Ctx {
    shared: Arc<super::Shared>,
    net: synchronicity_net::NetworkHandle,
    commands: tokio::sync::mpsc::Sender<run::Command>,
    service: Arc<dyn BuildService>,
}

async fn connection(stream: UnixStream, ctx: Arc<Ctx>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r.take(MAX_LINE as u64)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let resp = match serde_json::from_str::<ControlRequest>(&line) {
            Ok(req) => match answer(&ctx, req).await {
                Ok(a) => ControlResponse::Ok(a),
                Err(e) => ControlResponse::Error(e.to_string()),
            },
            Err(e) => ControlResponse::Error(format!("bad control request: {e}")),
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_default();
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

use tokio::io::AsyncReadExt as _;

async fn answer(ctx: &Ctx, req: ControlRequest) -> Result<ControlAnswer, ControlError> {
    match req {
        ControlRequest::Submit {
            krate,
            version,
            lockfile,
            variant,
        } => {
            if krate == crate::request::RECIPE_CRATE {
                return Err(ControlError::Pin(format!(
                    "{krate} names recipe requests: `submit --recipe PATH` orders one"
                )));
            }
            let service = ctx.service.clone();
            let request = tokio::task::spawn_blocking(move || {
                service.pin_variant(&krate, &version, lockfile, &variant)
            })
            .await?
            .map_err(ControlError::Pin)?;
            let id = run::submit(&ctx.commands, request).await?;
            Ok(ControlAnswer::Submitted {
                id: hex::encode(id),
            })
        }
        ControlRequest::SubmitRecipe { recipe } => {
            let pinned = pinned_recipe(&recipe).map_err(ControlError::Pin)?;
            // What the committee's rules would refuse is said here, not left to be
            // dropped silently by every member's gossip check.
            crate::protocol::check_request(&pinned, &ctx.shared.committee)
                .map_err(|e| ControlError::Pin(e.to_string()))?;
            let id = run::submit(&ctx.commands, pinned).await?;
            Ok(ControlAnswer::Submitted {
                id: hex::encode(id),
            })
        }
        ControlRequest::Approve { committee } => {
            let epoch = run::approve(&ctx.commands, committee)
                .await
                .map_err(ControlError::Node)?;
            Ok(ControlAnswer::Approved { epoch })
        }
        ControlRequest::Status { key } => Ok(ControlAnswer::Status(Box::new(status(ctx, key)?))),
    }
}

/// The first attempt's request for the recipe whose canonical CBOR is `hex_cbor`; the
/// node counts the attempt up past failed decided ones.
fn pinned_recipe(hex_cbor: &str) -> Result<crate::request::PinnedRequest, String> {
    let bytes = hex::decode(hex_cbor).map_err(|_| "the recipe is not hex".to_string())?;
    let recipe =
        synchronicity_verify::recipe::Recipe::from_cbor(&bytes).map_err(|e| e.to_string())?;
    recipe.check_contents().map_err(|e| e.to_string())?;
    Ok(crate::request::PinnedRequest::for_recipe(&recipe, 1))
}

fn status(ctx: &Ctx, key: Option<String>) -> Result<NodeStatus, ControlError> {
    let s = &ctx.shared;
    let (applied_height, open, last_block_ms, changes) = {
        let view = s.view();
        let scheduled = view.state.change().scheduled().map(|(f, _)| f);
        let changes = view
            .state
            .change()
            .approvals()
            .into_iter()
            .map(|(file, approved)| PendingChange {
                file: hex::encode(file),
                approved,
                scheduled: scheduled == Some(file),
                toolchain: view
                    .state
                    .change()
                    .proposal_text(&file)
                    .and_then(|t| toml::from_str::<crate::committee::CommitteeFile>(t).ok())
                    .map(|f| f.build.toolchain)
                    .unwrap_or_default(),
            })
            .collect::<Vec<_>>();
        let open = view
            .state
            .open_requests()
            .filter_map(|(id, _)| {
                view.state
                    .round_status(id, &s.committee)
                    .map(|st| (*id, st))
            })
            .filter(|(id, st)| match &key {
                None => true,
                Some(k) => {
                    *k == hex::encode(id)
                        || *k == format!("{}@{}", st.request.krate, st.request.version)
                }
            })
            .map(|(id, st)| OpenRound {
                id: hex::encode(id),
                name: format!("{}@{}", st.request.krate, st.request.version),
                phase: st.phase,
                committed: st.committed,
                revealed: st.revealed,
            })
            .collect();
        (view.height, open, view.state.last_time_ms(), changes)
    };
    let (log_size, root) = s.store.head()?;
    let checkpoint_size = s.latest_cosigned()?.map(|c| c.checkpoint().size);
    let cosigned = |index: u64| checkpoint_size.is_some_and(|c| c > index);
    // A 64-hex key that names no request but a logged recipe is that recipe's id
    // (`status RECIPE_ID`).
    let lookup = match key.as_deref().and_then(LookupKey::parse) {
        Some(LookupKey::Request(id))
            if s.store.lookup_request(&id)?.is_none()
                && !s.view().state.is_open(&id)
                && !s.store.variant_entries(&recipe_spec(&id))?.is_empty() =>
        {
            Some(LookupKey::Crate(recipe_spec(&id)))
        }
        k => k,
    };
    let variants: Vec<EntryStatus> = match &lookup {
        Some(LookupKey::Crate(spec)) => s
            .store
            .variant_entries(spec)?
            .into_iter()
            .map(|(index, entry)| EntryStatus {
                index,
                entry,
                cosigned: cosigned(index),
            })
            .collect(),
        Some(LookupKey::Request(id)) => match s.store.lookup_request(id)? {
            Some(index) => {
                let bytes = s.store.entry(index)?;
                let entry = LogEntry::decode(&bytes)
                    .map_err(|source| ControlError::Entry { index, source })?;
                vec![EntryStatus {
                    index,
                    entry,
                    cosigned: cosigned(index),
                }]
            }
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let chosen = match &lookup {
        Some(k) => s
            .store
            .resolve_for(k, Some(&s.committee.build().target))?
            .ok(),
        None => None,
    };
    let entry = chosen.and_then(|i| variants.iter().find(|v| v.index == i).cloned());
    Ok(NodeStatus {
        epoch: s.committee.epoch(),
        changes,
        member: s.me,
        following: !s.is_voter(),
        applied_height,
        last_block_ms,
        halted: s.halted(),
        builds: s.build_status(),
        log_size,
        root: hex::encode(root),
        checkpoint_size,
        connected_members: ctx.net.connected_members().len(),
        open,
        entry,
        variants,
        backlog: s.backlog_progress(),
    })
}

/// Sends one request to the node at `dir` and returns its answer.
pub async fn request(dir: &Path, req: &ControlRequest) -> Result<ControlAnswer, ControlError> {
    let path = dir.join(CONTROL_SOCKET);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::Connect {
            path: path.clone(),
            source,
        })?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(r.take(MAX_LINE as u64)).lines();
    let answer = lines.next_line().await?.ok_or(ControlError::Closed)?;
    match serde_json::from_str::<ControlResponse>(&answer)? {
        ControlResponse::Ok(a) => Ok(a),
        ControlResponse::Error(e) => Err(ControlError::Node(e)),
    }
}
