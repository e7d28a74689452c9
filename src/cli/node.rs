//! `synchronicity node`: the member daemon; `submit` and `status` talk to it over its
//! control socket.
//!
//! `DIR/node.toml` (optional) holds only this node's local matters; every key has a
//! default. The group's rules (commit and reveal windows, grace, block limits) live in the
//! committee file's `[protocol]` section: a rule found here is an error naming that file.
//!
//! ```toml
//! idle_interval_ms = 5000     # how often an idle node re-checks for work
//! [builder]
//! backend = "auto"            # auto | docker | sandbox | swarm
//! work_dir = "DIR/work"
//! memory_mib = 4096          # memory of a build's whole process tree
//! processes = 4096            # processes and threads of a build at once
//! disk_mib = 16384            # disk for a build's target directory and /tmp
//! timeout_secs = 1800
//! output_mib = 8              # stdout + stderr of a build; past it the build is killed
//! artifacts_mib = 4096        # artifacts copied out of one build, per file and in all
//! max_parallel = 1            # builds at once, whatever members order (the rest queue)
//! jobs = 2                    # cargo jobs per build [default: the CPUs / max_parallel]
//! registry_index = "https://index.crates.io"   # a mirror's sparse index [default: crates.io]
//! registry_dl = "https://static.crates.io/crates"  # its downloads: <dl>/<name>/<name>-<version>.crate
//! [artifacts]
//! max_mib = 4096              # the artifact store (DIR/artifacts) served to anyone
//! [[witnesses]]               # tlog-witnesses each cosigned checkpoint is submitted to
//! url = "http://127.0.0.1:7400"
//! vkey = "witness.example+1a2b3c4d+BK…"   # cosignature/v1 verifier key
//! [follow]                    # order every new release of these crates (node/follow.rs)
//! crates = ["itoa", "ryu"]
//! file = "follow.txt"         # more names, one a line (# comments), relative to DIR
//! interval_secs = 300         # each crate's index file is polled this often
//! list = "backlog.txt"        # build these once each (node/backlog.rs): CRATE or
//!                             # CRATE@VERSION [--features a,b] [--no-default-features]
//!                             # [--all-features], one a line, relative to DIR
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use crate::builder::{Backend, Builder, BuilderConfig, toolchain_installed};
use crate::node::control::{self, ControlAnswer, ControlRequest};
use crate::node::{self, BuildService, NodeConfig, SandboxBuildService};

/// Arguments of `node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node directory (keys from `keygen`; the log, WAL and control socket go here).
    #[arg(long)]
    pub dir: PathBuf,
    /// Committee file.
    #[arg(long)]
    pub committee: PathBuf,
    /// Listen address [default: this member's addresses in the committee file].
    #[arg(long)]
    pub listen: Vec<synchronicity_net::Multiaddr>,
    /// Extra address to dial at start.
    #[arg(long)]
    pub bootstrap: Vec<synchronicity_net::Multiaddr>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9100).
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve the log read-only over HTTP on this address: C2SP tlog-tiles, /checkpoint,
    /// /lookup/CRATE@VERSION, blobs, and the web view at / (e.g. 0.0.0.0:8080).
    #[arg(long)]
    pub http: Option<std::net::SocketAddr>,
    /// Also write the log's read API as static files into DIR (C2SP tlog-tiles: checkpoint,
    /// hash tiles, entry bundles), brought up to date at start and after every cosigned
    /// checkpoint, for any web server or CDN to serve (docs/operations.md).
    #[arg(long, value_name = "DIR")]
    pub tiles_dir: Option<PathBuf>,
    /// Join a running group: when this node is not a member of the epoch its log is in,
    /// follow the log as a non-voter (fetched from the members, every height's certificate
    /// verified) until the epoch that adds it, then vote. Start it with the genesis file.
    #[arg(long)]
    pub join: bool,
}

/// Keeps `dir` (`--tiles-dir`) up to the latest cosigned checkpoint: a pass on a blocking
/// thread every 500 ms, each writing only what grew (`log::TilesDir`). A pass that fails
/// (the disk) is logged and tried again: the files are a publication of the log, never
/// the node's state, and a reader of a stale directory verifies what it reads.
fn spawn_tiles_dir(
    dir: &std::path::Path,
    shared: std::sync::Arc<crate::node::Shared>,
) -> anyhow::Result<()> {
    let mut tiles =
        crate::log::TilesDir::new(dir).with_context(|| format!("--tiles-dir {}", dir.display()))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut failing = false;
        loop {
            tick.tick().await;
            let s = shared.clone();
            let pass = tokio::task::spawn_blocking(move || {
                let r = tiles.bring_up(&s.store);
                (tiles, r)
            })
            .await;
            let Ok((t, r)) = pass else { break };
            tiles = t;
            match r {
                Ok(Some(size)) => {
                    failing = false;
                    tracing::debug!(size, "tiles directory brought up");
                }
                Ok(None) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!("--tiles-dir: {e} (trying again)");
                }
                Err(_) => {}
            }
        }
    });
    Ok(())
}

/// `DIR/node.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    idle_interval_ms: Option<u64>,
    #[serde(default)]
    builder: BuilderSection,
    follow: Option<FollowSection>,
    #[serde(default)]
    artifacts: ArtifactsSection,
    #[serde(default)]
    witnesses: Vec<WitnessSection>,
    #[serde(default)]
    light: LightSection,
}

/// `[light]`: what this member offers users beyond answers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LightSection {
    /// Accept `POST /recipe` on the HTTP server (`--http`): a user's missed recipe ordered.
    #[serde(default)]
    accept_recipes: bool,
    /// Most recipe orders an hour, whoever asks (one client address gets a third)
    /// [default: 6].
    recipe_orders_per_hour: Option<u32>,
}

impl LightSection {
    /// The order rate when recipe orders are accepted (`None` otherwise).
    fn recipe_orders(&self) -> anyhow::Result<Option<u32>> {
        if !self.accept_recipes {
            return Ok(None);
        }
        match self.recipe_orders_per_hour.unwrap_or(6) {
            n @ 1..=3600 => Ok(Some(n)),
            n => bail!("node.toml: light.recipe_orders_per_hour = {n} is out of range 1..=3600"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessSection {
    url: String,
    vkey: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactsSection {
    max_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowSection {
    #[serde(default)]
    crates: Vec<String>,
    file: Option<PathBuf>,
    interval_secs: Option<u64>,
    /// A backlog: releases built once each (node/backlog.rs), relative to DIR.
    list: Option<PathBuf>,
}

/// The followed crate names: inline and from the file, deduplicated, each checked.
fn followed_crates(dir: &Path, f: &FollowSection) -> anyhow::Result<Vec<String>> {
    let mut names = f.crates.clone();
    if let Some(file) = &f.file {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("node.toml: follow.file {}: {e}", path.display()))?;
        names.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    if let Some(bad) = names.iter().find(|n| {
        n.is_empty()
            || n.len() > 64
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        bail!("node.toml: follow: {bad:?} is not a crate name");
    }
    if names.len() > node::follow::MAX_FOLLOWED {
        bail!(
            "node.toml: follow names {} crates, more than {}",
            names.len(),
            node::follow::MAX_FOLLOWED
        );
    }
    Ok(names)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuilderSection {
    backend: Option<String>,
    work_dir: Option<PathBuf>,
    memory_mib: Option<u64>,
    processes: Option<u32>,
    disk_mib: Option<u64>,
    timeout_secs: Option<u64>,
    output_mib: Option<u64>,
    artifacts_mib: Option<u64>,
    max_parallel: Option<usize>,
    jobs: Option<u32>,
    registry_index: Option<String>,
    registry_dl: Option<String>,
    swarm_workers: Option<bool>,
}

/// Keys that are group rules now (`[protocol]` in the committee file).
const MOVED_TO_COMMITTEE: &[&str] = &[
    "commit_window_secs",
    "reveal_window_secs",
    "commit_grace_secs",
    "max_block_bytes",
    "max_block_messages",
    "max_clock_drift_ms",
    "max_attempts",
    "attempt_spacing_secs",
    "max_open_requests_per_member",
    "protocol",
];

fn read_node_file(dir: &Path, committee_file: &Path) -> anyhow::Result<NodeFile> {
    let path = dir.join("node.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{}: {}", path.display(), e.message().replace('\n', " "))
            })?;
            if let Some(key) = MOVED_TO_COMMITTEE.iter().find(|k| table.contains_key(**k)) {
                bail!(
                    "{}: {key} is a group rule: set it in the committee file's [protocol] section ({}), which every member applies alike",
                    path.display(),
                    committee_file.display()
                );
            }
            toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{}: {}", path.display(), e.message().replace('\n', " "))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeFile::default()),
        Err(e) => bail!("{}: {e}", path.display()),
    }
}

fn max_parallel(b: &BuilderSection) -> anyhow::Result<usize> {
    match b.max_parallel {
        None => Ok(1),
        Some(n @ 1..=64) => Ok(n),
        Some(n) => bail!("node.toml: builder.max_parallel = {n} is out of range 1..=64"),
    }
}

/// What a test member changes in `node` (the fault suite's, `examples/testnet_member.rs`,
/// answers its load requests itself and may be Byzantine through the node's seams). Each
/// method's default changes nothing; `synchronicity node` changes nothing.
pub trait NodeWrapper {
    /// The builder the node uses, given the real one of `node.toml`.
    fn builder(&mut self, real: Arc<dyn BuildService>) -> Arc<dyn BuildService> {
        real
    }
    /// The node's configuration, just before it starts (e.g. its outgoing seams,
    /// [`NodeConfig::outgoing_frames`] and [`NodeConfig::outgoing_messages`]).
    fn configure(&mut self, config: &mut NodeConfig) {
        let _ = config;
    }
    /// Called once the node runs, inside its runtime: a task spawned here runs beside the
    /// node until the process exits.
    fn started(&mut self, node: &node::NodeHandle) {
        let _ = node;
    }
}

/// The product: nothing changed.
struct Unchanged;

impl NodeWrapper for Unchanged {}

/// `node` with the real sandboxed builder.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    run_wrapping(args, &mut Unchanged)
}

/// `node` with the real builder of `node.toml`, changed by `wrapper` (see [`NodeWrapper`]).
pub fn run_wrapping(args: NodeArgs, wrapper: &mut dyn NodeWrapper) -> anyhow::Result<()> {
    let file = read_node_file(&args.dir, &args.committee)?;
    // The builder builds with the toolchain and target of the epoch the log is in (the
    // genesis moved along the log's changes), not the genesis file's.
    let committee = current_committee(&args.dir, super::load_committee(&args.committee)?)?;
    let b = &file.builder;
    let mut cfg = BuilderConfig::new(
        &b.work_dir.clone().unwrap_or_else(|| args.dir.join("work")),
        &committee.build().toolchain,
    );
    cfg.backend = match b.backend.as_deref().unwrap_or("auto") {
        "auto" => Backend::Auto,
        "docker" => Backend::Docker,
        "sandbox" => Backend::Sandbox,
        "swarm" => Backend::Swarm,
        other => {
            bail!("node.toml: builder.backend {other:?} is not auto, docker, sandbox or swarm")
        }
    };
    cfg.swarm_workers = b.swarm_workers.unwrap_or(false);
    if cfg.swarm_workers && cfg.backend != Backend::Swarm {
        bail!("node.toml: builder.swarm_workers needs backend = \"swarm\"");
    }
    if let Some(m) = b.memory_mib {
        cfg.limits.memory = m
            .checked_mul(1024 * 1024)
            .ok_or_else(|| anyhow::anyhow!("node.toml: builder.memory_mib {m} is too large"))?;
    }
    match b.processes {
        Some(p @ 16..=1_000_000) => cfg.limits.processes = p,
        Some(p) => bail!("node.toml: builder.processes = {p} is out of range 16..=1000000"),
        None => {}
    }
    if let Some(m) = b.disk_mib {
        if !(64..=1 << 24).contains(&m) {
            bail!("node.toml: builder.disk_mib = {m} is out of range 64..=16777216");
        }
        cfg.limits.disk = m << 20;
    }
    if let Some(t) = b.timeout_secs {
        cfg.limits.time = Duration::from_secs(t);
    }
    if let Some(m) = b.output_mib {
        if !(1..=4096).contains(&m) {
            bail!("node.toml: builder.output_mib = {m} is out of range 1..=4096");
        }
        cfg.limits.output = m << 20;
    }
    if let Some(m) = b.artifacts_mib {
        if !(1..=1 << 20).contains(&m) {
            bail!("node.toml: builder.artifacts_mib = {m} is out of range 1..=1048576");
        }
        cfg.limits.artifacts = m << 20;
    }
    let parallel = max_parallel(b)?;
    cfg.limits.jobs = match b.jobs {
        Some(0) => bail!("node.toml: builder.jobs must be at least 1"),
        Some(j) => j,
        None => (cfg.limits.jobs / parallel as u32).max(1),
    };
    cfg.registry = match (&b.registry_index, &b.registry_dl) {
        (None, None) => None,
        (Some(index), Some(dl)) => Some((index.clone(), dl.clone())),
        _ => bail!("node.toml: builder.registry_index and builder.registry_dl go together"),
    };
    let builder = Builder::new(&cfg).context("cannot set up the builder")?;
    let follow = follow_config(&args.dir, &file, builder.registry().clone())?;
    let store = open_artifacts(&args.dir, &file)?;
    let target = committee.build().target.clone();
    let logs = node::build_logs::BuildLogs::open(&args.dir.join("build-logs"))
        .with_context(|| format!("cannot open {}", args.dir.join("build-logs").display()))?;
    let service = wrapper.builder(Arc::new(
        SandboxBuildService::new(builder, &target)
            .with_store(store.clone())
            .with_logs(logs),
    ));
    run_full(args, service, follow, Some(store), wrapper)
}

/// The committee of the epoch the node's log is in: `genesis` moved along the change entries
/// the store holds (each verified again with the previous committee's keys; node::start
/// does the same). The store is opened and closed again (redb allows one opener at a time).
fn current_committee(
    dir: &Path,
    genesis: crate::committee::Committee,
) -> anyhow::Result<crate::committee::Committee> {
    let log = dir.join("log");
    if !log.join(crate::log::STORE_FILE).exists() {
        return Ok(genesis);
    }
    let store = crate::log::LogStore::open_existing(&log)
        .with_context(|| format!("cannot open the log store in {}", log.display()))?;
    let mut epochs = crate::log::stored_epochs(&genesis, &store)?;
    Ok(epochs.pop().map_or(genesis, |e| e.committee))
}

/// What node.toml's `[follow]` section asks: crates to follow, a backlog to work through.
#[derive(Default)]
struct Following {
    follow: Option<node::follow::FollowConfig>,
    backlog: Option<node::backlog::BacklogConfig>,
}

/// node.toml's `[follow]` section, polling `registry`.
fn follow_config(
    dir: &Path,
    file: &NodeFile,
    registry: crate::builder::Registry,
) -> anyhow::Result<Following> {
    let Some(f) = &file.follow else {
        return Ok(Following::default());
    };
    let follow = node::follow::FollowConfig {
        crates: followed_crates(dir, f)?,
        interval: Duration::from_secs(match f.interval_secs {
            None => 300,
            Some(s @ 1..=86_400) => s,
            Some(s) => bail!("node.toml: follow.interval_secs = {s} is out of range 1..=86400"),
        }),
        registry: registry.clone(),
        state_file: dir.join("follow.json"),
    };
    let backlog = match &f.list {
        None => None,
        Some(list) => {
            let path = dir.join(list);
            let text = crate::node_dir::read_bounded_text(&path, 16 << 20)
                .map_err(|e| anyhow::anyhow!("node.toml: follow.list {}: {e}", path.display()))?;
            let items = node::backlog::parse_backlog(&text)
                .map_err(|e| anyhow::anyhow!("node.toml: follow.list {}: {e}", path.display()))?;
            Some(node::backlog::BacklogConfig {
                items,
                registry,
                takeover: follow.takeover(),
                state_file: dir.join("backlog.json"),
            })
        }
    };
    Ok(Following {
        follow: (!follow.crates.is_empty()).then_some(follow),
        backlog,
    })
}

/// The artifact store `DIR/artifacts`, bounded by node.toml's `[artifacts] max_mib`.
fn open_artifacts(
    dir: &Path,
    file: &NodeFile,
) -> anyhow::Result<Arc<node::artifacts::ArtifactStore>> {
    let max_mib = file.artifacts.max_mib.unwrap_or(4096);
    if !(1..=1 << 24).contains(&max_mib) {
        bail!("node.toml: artifacts.max_mib = {max_mib} is out of range 1..=16777216");
    }
    Ok(Arc::new(
        node::artifacts::ArtifactStore::open(&dir.join("artifacts"), max_mib << 20)
            .with_context(|| format!("cannot open {}", dir.join("artifacts").display()))?,
    ))
}

/// `node` with any builder (tests run it with one that returns chosen manifests), serving
/// the artifact store `DIR/artifacts` (tests put files there) and following node.toml's
/// `[follow]` crates in `[builder]`'s registry (crates.io by default).
pub fn run_with(args: NodeArgs, service: Arc<dyn BuildService>) -> anyhow::Result<()> {
    let file = read_node_file(&args.dir, &args.committee)?;
    let store = open_artifacts(&args.dir, &file)?;
    let cache = args.dir.join("work/crates");
    let registry = match (&file.builder.registry_index, &file.builder.registry_dl) {
        (Some(index), Some(dl)) => crate::builder::Registry::with_urls(index, dl, &cache),
        (None, None) => crate::builder::Registry::crates_io(&cache),
        _ => bail!("node.toml: builder.registry_index and builder.registry_dl go together"),
    };
    let follow = follow_config(&args.dir, &file, registry)?;
    run_full(args, service, follow, Some(store), &mut Unchanged)
}

fn run_full(
    args: NodeArgs,
    service: Arc<dyn BuildService>,
    follow: Following,
    artifacts: Option<Arc<node::artifacts::ArtifactStore>>,
    wrapper: &mut dyn NodeWrapper,
) -> anyhow::Result<()> {
    init_logging();
    let file = read_node_file(&args.dir, &args.committee)?;
    let recipe_orders = file.light.recipe_orders()?;
    if recipe_orders.is_some() && args.http.is_none() {
        bail!("node.toml: light.accept_recipes takes orders on the HTTP server; start with --http");
    }
    let committee = super::load_committee(&args.committee)?;
    let mut config = NodeConfig::new(&args.dir, committee);
    config.listen = args.listen;
    config.bootstrap = args.bootstrap;
    config.join = args.join;
    if let Some(ms) = file.idle_interval_ms {
        config.idle_interval = Duration::from_millis(ms);
    }
    config.max_parallel_builds = max_parallel(&file.builder)?;
    config.follow = follow.follow;
    config.backlog = follow.backlog;
    config.artifacts = artifacts;
    config.witnesses = file
        .witnesses
        .iter()
        .map(|w| {
            Ok(crate::node::witness_submit::WitnessEndpoint {
                url: w.url.clone(),
                key: crate::witness::WitnessKey::parse(&w.vkey)
                    .map_err(|e| anyhow::anyhow!("node.toml: witnesses: {e}"))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    wrapper.configure(&mut config);
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let result = rt.block_on(async move {
        let mut handle = node::start(config, service.clone()).await?;
        wrapper.started(&handle);
        handle
            .serve_control(&args.dir, service)
            .context("cannot open the control socket")?;
        if let Some(addr) = args.metrics {
            super::metrics::serve(addr, &handle).await?;
        }
        if let Some(addr) = args.http {
            let local = crate::http::serve(addr, &handle, recipe_orders).await?;
            tracing::info!(%local, "serving the log over HTTP");
        }
        if let Some(dir) = &args.tiles_dir {
            spawn_tiles_dir(dir, handle.shared().clone())?;
        }
        tracing::info!(
            peer = %handle.net().local_peer_id(),
            height = handle.applied_height(),
            "node started"
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            reason = handle.halted() => {
                let Some((epoch, handoff)) = handle.next_epoch() else {
                    // Fail-stop: no graceful teardown (it could wait on the very disk that
                    // failed); everything decided is durable, and a restart resumes from it.
                    bail!("halted: {reason}");
                };
                // The epoch ended: the block and the change entry are durable. Cosign the
                // handoff checkpoint with this committee (the loop still runs), then start
                // again as a member of the next one.
                // A follower (a joining node) has nothing to cosign: on to the next epoch.
                let voter = handle.shared().is_voter();
                if voter {
                    tracing::info!(epoch, handoff, "the committee changed; cosigning the handoff checkpoint");
                } else {
                    tracing::info!(epoch, handoff, "the committee changed; following on");
                }
                let start = tokio::time::Instant::now();
                let mut told = start;
                let mut asked = start;
                while voter && !handle.has_checkpoint_at(handoff) && start.elapsed() < HANDOFF_WAIT {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => { handle.shutdown().await; return Ok(Restart::No); }
                        _ = term.recv() => { handle.shutdown().await; return Ok(Restart::No); }
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    // Not cosigned here within a few seconds: the others may have cosigned it
                    // and moved on (this node applied the block from sync). Ask them for it.
                    if asked.elapsed() >= HANDOFF_ASK && handle.fetch_handoff(epoch - 1, handoff).await {
                        tracing::info!(handoff, "fetched the handoff checkpoint from a member");
                    }
                    if asked.elapsed() >= HANDOFF_ASK {
                        asked = tokio::time::Instant::now();
                    }
                    if told.elapsed() >= Duration::from_secs(30) {
                        told = tokio::time::Instant::now();
                        tracing::warn!(handoff, "still waiting for the handoff checkpoint's cosignatures");
                    }
                }
                if voter && !handle.has_checkpoint_at(handoff) {
                    tracing::warn!(handoff, "the handoff checkpoint was not cosigned in time; going on");
                }
                let member = handle.member_of_next_epoch();
                handle.shutdown().await;
                if !member && voter {
                    // Not an error: the group removed this member. A service manager should
                    // not start it again.
                    eprintln!("this node is not a member of the committee of epoch {epoch}: it was removed; stopping");
                    return Ok(Restart::No);
                }
                return Ok(Restart::NextEpoch(epoch));
            }
        }
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(Restart::No)
    });
    // Builds run on blocking threads: do not wait for them to finish.
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Restart::NextEpoch(epoch) = result? {
        return restart_into(epoch);
    }
    Ok(())
}

/// The warning for a proposed toolchain this host lacks (one line).
fn missing_toolchain(version: &str) -> String {
    format!(
        "  warning: toolchain {version} is not installed here (`rustup toolchain install {version}`): from the change on this member cannot build, and commits nothing"
    )
}

/// Longest wait, once an epoch ended, for the handoff checkpoint to be cosigned before the
/// node restarts into the next epoch anyway. Every member waits for it (gossip republishes
/// the partials), so it is assembled while `t` old members are up; the new epoch never
/// signs that size.
const HANDOFF_WAIT: Duration = Duration::from_secs(300);

/// How long a node waits for the handoff checkpoint to be cosigned where it is before it
/// asks the members for it (and again each time this passes).
const HANDOFF_ASK: Duration = Duration::from_secs(3);

/// What the node's runtime ended with.
enum Restart {
    /// Stopped (a signal).
    No,
    /// The committee changed: start again in this epoch.
    NextEpoch(u64),
}

/// Replaces this process with a fresh one with the same arguments: every part of the node
/// starts again for the next epoch's committee, which it reads from the log. The same
/// process id (a container's PID 1 stays). Files and sockets are close-on-exec, so the
/// store's lock and the listening ports are free for the new image.
fn restart_into(epoch: u64) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    // The running image, even if its file was replaced on disk since.
    let exe = std::path::PathBuf::from("/proc/self/exe");
    tracing::info!(epoch, "restarting into the next epoch");
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(anyhow::anyhow!("cannot restart into epoch {epoch}: {err}"))
}

/// Without `RUST_LOG`: our events at info; Malachite's per-vote info lines only as warnings;
/// gossipsub's and request-response's per-message warnings (a full send queue, a message
/// validated after it left the cache, an inbound stream over the limit) only as errors:
/// a flooding member would otherwise write one line per message it sends into every
/// member's log. What they report is counted in the metrics (`synchronicity_net_*`).
const DEFAULT_LOG: &str = "info,arc_malachitebft_core_consensus=warn,libp2p=warn,\
libp2p_gossipsub=error,libp2p_request_response=error";

pub(super) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Arguments of `submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The crate, as NAME@VERSION.
    #[arg(required_unless_present = "recipe", conflicts_with = "recipe")]
    spec: Option<String>,
    /// Order the dependencies of a recipe instead: PATH is a workspace (its directory or
    /// its Cargo.toml; its recipe is read as `synchronicity recipe` reads it, RUSTFLAGS
    /// from the environment) or a recipe file (`recipe --out`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["lockfile", "features", "no_default_features", "all_features"])]
    recipe: Option<PathBuf>,
    /// Cargo.lock to build with.
    #[arg(long)]
    lockfile: Option<PathBuf>,
    /// Features to enable, comma-separated (each must be one the crate declares).
    #[arg(long, value_delimiter = ',', conflicts_with = "all_features")]
    features: Vec<String>,
    /// Build without the crate's default features.
    #[arg(long)]
    no_default_features: bool,
    /// Enable every feature the crate declares (resolved when the request is pinned: the
    /// request lists them).
    #[arg(long)]
    all_features: bool,
    /// The member's node directory (its control socket).
    #[arg(long)]
    node: PathBuf,
}

/// `submit`.
pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.recipe {
        let recipe = super::recipe::read_recipe(path)?;
        eprintln!("recipe {}", hex::encode(recipe.id()));
        let req = ControlRequest::SubmitRecipe {
            recipe: hex::encode(recipe.to_cbor()),
        };
        return match control_call(&args.node, &req)? {
            ControlAnswer::Submitted { id } => {
                println!("{id}");
                Ok(())
            }
            other => bail!("unexpected answer: {other:?}"),
        };
    }
    let spec = args.spec.as_deref().unwrap_or_default();
    let (krate, version) = super::build::parse_spec(spec)?;
    let lockfile = match &args.lockfile {
        Some(p) => {
            Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let req = ControlRequest::Submit {
        krate,
        version,
        lockfile,
        variant: crate::builder::Variant {
            features: args.features.clone(),
            no_default_features: args.no_default_features,
            all_features: args.all_features,
        },
    };
    match control_call(&args.node, &req)? {
        ControlAnswer::Submitted { id } => {
            println!("{id}");
            Ok(())
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// Arguments of `committee approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The next epoch's committee file (`committee propose` writes it).
    file: PathBuf,
    /// The member's node directory.
    #[arg(long)]
    node: PathBuf,
}

/// `committee approve`: this member's approval of the next committee, signed and published
/// by its node.
pub fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let meta = std::fs::metadata(&args.file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if meta.len() > crate::protocol::MAX_PROPOSAL_SIZE as u64 {
        bail!(
            "{}: larger than {} bytes",
            args.file.display(),
            crate::protocol::MAX_PROPOSAL_SIZE
        );
    }
    let committee = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if let Ok(next) = toml::from_str::<crate::committee::CommitteeFile>(&committee)
        && !toolchain_installed(&next.build.toolchain)
    {
        eprintln!("{}", missing_toolchain(&next.build.toolchain).trim_start());
    }
    let req = ControlRequest::Approve { committee };
    match control_call(&args.node, &req)? {
        ControlAnswer::Approved { epoch } => {
            eprintln!(
                "approval of epoch {epoch} published; `synchronicity status --node {}` shows who approved so far",
                args.node.display()
            );
            Ok(())
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A request: CRATE@VERSION or a request id.
    key: Option<String>,
    /// The member's node directory.
    #[arg(long)]
    node: PathBuf,
    /// Keep printing until the request is decided.
    #[arg(long)]
    watch: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `status`.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    // With --watch a line is printed when the request's state changes (not every poll).
    let mut last = String::new();
    loop {
        let req = ControlRequest::Status {
            key: args.key.clone(),
        };
        let ControlAnswer::Status(s) = control_call(&args.node, &req)? else {
            bail!("unexpected answer");
        };
        let mut out = String::new();
        use std::fmt::Write as _;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
        } else {
            let last = match s.last_block_ms {
                0 => "-".to_string(),
                t => format!("{}s ago", crate::node::now_ms().saturating_sub(t) / 1000),
            };
            let member = if s.following {
                "joining (a non-voter until the epoch that adds it)".to_string()
            } else {
                format!("member {}", s.member)
            };
            writeln!(
                out,
                "epoch {}  {member}  height {} (last block {last})  log size {}  cosigned {}  peers {}  root {}",
                s.epoch,
                s.applied_height,
                s.log_size,
                s.checkpoint_size.map_or("-".into(), |c| c.to_string()),
                s.connected_members,
                &s.root[..16]
            )?;
            if let Some(why) = &s.halted {
                writeln!(out, "  HALTED: {why}")?;
            }
            for c in &s.changes {
                writeln!(
                    out,
                    "  committee change {}: approved by {:?}{}",
                    &c.file[..16],
                    c.approved,
                    if c.scheduled {
                        "  SCHEDULED: requests wait until the open rounds are decided"
                    } else {
                        ""
                    }
                )?;
                if !c.toolchain.is_empty() && !toolchain_installed(&c.toolchain) {
                    writeln!(out, "{}", missing_toolchain(&c.toolchain))?;
                }
            }
            if let Some(b) = &s.backlog {
                writeln!(
                    out,
                    "  backlog: {} of {} decided ({} reproduced, {} not reproduced, {} failed), {} ordered, {} waiting, {} unbuildable",
                    b.decided(),
                    b.total,
                    b.reproduced,
                    b.not_reproduced,
                    b.failed,
                    b.ordered,
                    b.waiting,
                    b.unbuildable
                )?;
                for (line, why) in &b.errors {
                    writeln!(out, "    {line}: {why}")?;
                }
            }
            let q = &s.builds;
            if !q.running.is_empty() || !q.queued.is_empty() {
                writeln!(
                    out,
                    "  builds: {} running (max {}), {} queued",
                    q.running.len(),
                    q.max_parallel,
                    q.queued.len()
                )?;
                for (id, phase, ms) in &q.running {
                    writeln!(
                        out,
                        "    {}  {phase}  {:.0} s",
                        &id[..16],
                        *ms as f64 / 1000.0
                    )?;
                }
            }
            for (id, why) in &q.local_failures {
                writeln!(
                    out,
                    "  could not build {} here (nothing committed): {why}",
                    &id[..16]
                )?;
            }
            for r in &s.open {
                writeln!(
                    out,
                    "  {}  {} phase  committed {:?}  revealed {:?}",
                    r.name, r.phase, r.committed, r.revealed
                )?;
            }
            if let Some(e) = &s.entry {
                writeln!(
                    out,
                    "  entry {}: {:?}  dissenters {}  silent {:?}  cosigned {}",
                    e.index,
                    e.entry.verdict,
                    e.entry.dissenters.len(),
                    e.entry.silent,
                    e.cosigned
                )?;
            }
            // Every decided variant (features, lockfile, attempt...), the one `proof`
            // returns for `crate@version` marked with `*`.
            if s.variants.len() > 1 || (s.variants.len() == 1 && s.entry.is_none()) {
                writeln!(out, "  variants: {}", s.variants.len())?;
                for v in &s.variants {
                    let chosen = s.entry.as_ref().is_some_and(|e| e.index == v.index);
                    let r = &v.entry.request;
                    writeln!(
                        out,
                        "  {} entry {}: {:?}  {}  request {}  cosigned {}",
                        if chosen { '*' } else { ' ' },
                        v.index,
                        v.entry.verdict,
                        match r.variant_label() {
                            l if l.is_empty() => "default".to_string(),
                            l => l,
                        },
                        &hex::encode(r.id())[..16],
                        v.cosigned
                    )?;
                }
            }
        }
        // Heights move on while idle: compare without the first (node-wide) line.
        let request_part = out.split_once('\n').map_or("", |(_, r)| r).to_string();
        if !args.watch || request_part != last || args.json {
            print!("{out}");
        }
        last = request_part;
        let done = args.key.is_none() || s.entry.as_ref().is_some_and(|e| e.cosigned);
        if !args.watch || done {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn control_call(dir: &Path, req: &ControlRequest) -> anyhow::Result<ControlAnswer> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(control::request(dir, req))
        .map_err(|e| anyhow::anyhow!(e))
}
