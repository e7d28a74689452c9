//! The fault suite's tool (`testnet/faults.sh`), NOT a product binary:
//!
//! - `node [--byzantine B,..] NODE ARGS`: `synchronicity node` with the real builder of
//!   `node.toml`, except that requests for crates named `load-*` or `flood-*` are answered by
//!   the test builder (the same manifest on every honest member after a short delay) so a
//!   group can be loaded with hundreds of requests; with `--byzantine` it misbehaves
//!   through the node's seams ([`byzantine`], [`flood`]).
//! - `load`, `sizes`, `grows`, `settle`, `check`: the driver's side, on the host, through
//!   the members' control sockets (`DIR/control.sock` on their volumes) and, once they are
//!   stopped, their stores. `check` prints one line per broken invariant, naming it, and
//!   exits 1.

#![forbid(unsafe_code)]

// Beside this file (a crate root's modules are looked up in examples/ itself).
#[path = "testnet_member/byzantine.rs"]
mod byzantine;
#[path = "testnet_member/flood.rs"]
mod flood;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use synchronicity::builder::{Outcome, Phase};
use synchronicity::cli::node::{NodeArgs, NodeWrapper, run_wrapping};
use synchronicity::consensus::record::DecidedRecord;
use synchronicity::log::{CosignedCheckpoint, LogStore};
use synchronicity::node::control::{self, ControlAnswer, ControlRequest, NodeStatus};
use synchronicity::node::{BuildService, NodeConfig, NodeHandle};
use synchronicity::protocol::LogEntry;
use synchronicity::request::PinnedRequest;
use synchronicity::testing::FixedBuilder;

use byzantine::{Behaviour, Byzantine};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a member.
    Node {
        /// Misbehaviours (comma separated): equivocate, conflicting-commitments,
        /// wrong-reveal, withhold-reveal, flood-gossip, flood-cosign, flood-streams,
        /// flood-requests.
        #[arg(long, value_delimiter = ',')]
        byzantine: Vec<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Submit `count` requests (`PREFIX-K@1.0.0`, or the given real crates) round-robin to
    /// the members that answer; appends `spec id` lines to `out`.
    Load {
        #[arg(long, value_delimiter = ',', required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, default_value = "load")]
        prefix: String,
        #[arg(long, default_value_t = 0)]
        count: usize,
        /// Real crates (crate@version) to submit too.
        #[arg(long, value_delimiter = ',')]
        real: Vec<String>,
        /// Requests per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print each member's log size (`-` for one that does not answer).
    Sizes {
        #[arg(long, value_delimiter = ',', required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Exit 0 once any member's log grows past its size now, within `within` seconds;
    /// prints how long it took.
    Grows {
        #[arg(long, value_delimiter = ',', required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        within: f64,
    },
    /// Until killed: append `MS SIZE` (ms since start, the largest log size among `dirs`)
    /// to `out` each time it grows.
    Watch {
        #[arg(long, value_delimiter = ',', required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Wait (at most `timeout` s) until every request of `ids` is decided and cosigned on
    /// every member of `dirs`, tracking the longest time no member's log grew while some
    /// were undecided; prints `decided=D pending=P stall_s=S`, one `pending` line with its
    /// reason per undecided request, and each member's peak memory if `--pids` are given.
    Settle {
        #[arg(long, value_delimiter = ',', required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        ids: PathBuf,
        #[arg(long)]
        timeout: f64,
    },
    /// One line per decided height of a stopped member's store: block time (s after the
    /// first block), the round it was decided in, its messages by kind (requests,
    /// commitments, reveals) and by signer, its bytes, and the entries it logged.
    Blocks {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The invariants over stopped members' stores (`dirs` = the honest members).
    Check {
        #[arg(long, value_delimiter = ',', required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        committee: PathBuf,
        #[arg(long)]
        ids: PathBuf,
    },
}

/// The mixed builder: load requests by the test builder, real crates by the real one.
struct MixedBuilder {
    load: FixedBuilder,
    real: Arc<dyn BuildService>,
}

fn is_load(name: &str) -> bool {
    name.starts_with("load-") || name.starts_with("flood-")
}

impl BuildService for MixedBuilder {
    fn pin(
        &self,
        name: &str,
        version: &str,
        lock: Option<String>,
    ) -> Result<PinnedRequest, String> {
        if is_load(name) {
            self.load.pin(name, version, lock)
        } else {
            self.real.pin(name, version, lock)
        }
    }

    fn build(&self, r: &PinnedRequest, progress: &dyn Fn(Phase)) -> Result<Outcome, String> {
        if is_load(&r.request.krate) {
            self.load.build(r, progress)
        } else {
            self.real.build(r, progress)
        }
    }

    fn artifacts(&self, r: &synchronicity::request::BuildRequest) -> Vec<(String, PathBuf)> {
        self.real.artifacts(r)
    }
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Cmd::Node { byzantine, node } => run_node(byzantine, node),
        other => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(drive(other))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The member: the mixed builder, and Byzantine when told.
struct Member {
    /// The test builder's delay (`SYNC_TEST_BUILD_MS`).
    delay: Duration,
    byzantine: Byzantine,
}

impl NodeWrapper for Member {
    fn builder(&mut self, real: Arc<dyn BuildService>) -> Arc<dyn BuildService> {
        Arc::new(MixedBuilder {
            load: FixedBuilder {
                overrides: Default::default(),
                bins: Default::default(),
                delay: self.delay,
            },
            real,
        })
    }

    fn configure(&mut self, config: &mut NodeConfig) {
        self.byzantine.configure(config);
    }

    fn started(&mut self, node: &NodeHandle) {
        self.byzantine.start_floods(node);
    }
}

fn run_node(byzantine: Vec<String>, node: NodeArgs) -> anyhow::Result<()> {
    let mut behaviours = Vec::new();
    for name in &byzantine {
        let b = Behaviour::parse(name)
            .ok_or_else(|| anyhow::anyhow!("--byzantine: unknown behaviour {name:?}"))?;
        behaviours.push(b);
    }
    let keys = synchronicity::node_dir::load_keys(&node.dir)?;
    let committee = synchronicity::cli::load_committee(&node.committee)?;
    let delay = std::env::var("SYNC_TEST_BUILD_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut member = Member {
        delay: Duration::from_millis(delay),
        byzantine: Byzantine::new(behaviours, keys, committee)?,
    };
    run_wrapping(node, &mut member)
}

async fn status(dir: &Path, key: Option<&str>) -> Option<NodeStatus> {
    let req = ControlRequest::Status {
        key: key.map(str::to_string),
    };
    match tokio::time::timeout(Duration::from_secs(3), control::request(dir, &req)).await {
        Ok(Ok(ControlAnswer::Status(s))) => Some(*s),
        _ => None,
    }
}

async fn sizes(dirs: &[PathBuf]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for d in dirs {
        out.push(status(d, None).await.map(|s| s.log_size));
    }
    out
}

async fn drive(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Node { .. } => unreachable!("run_node"),
        Cmd::Load {
            dirs,
            prefix,
            count,
            real,
            rate,
            out,
        } => load(&dirs, &prefix, count, &real, rate, &out).await,
        Cmd::Sizes { dirs } => {
            let s: Vec<String> = sizes(&dirs)
                .await
                .iter()
                .map(|s| s.map_or("-".into(), |s| s.to_string()))
                .collect();
            println!("{}", s.join(" "));
            Ok(())
        }
        Cmd::Grows { dirs, within } => {
            let start = Instant::now();
            let before = sizes(&dirs).await;
            while start.elapsed().as_secs_f64() < within {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = sizes(&dirs).await;
                if now
                    .iter()
                    .zip(&before)
                    .any(|(n, b)| n.unwrap_or(0) > b.unwrap_or(0))
                {
                    println!("{:.1}", start.elapsed().as_secs_f64());
                    return Ok(());
                }
            }
            anyhow::bail!("no member's log grew in {within} s")
        }
        Cmd::Watch { dirs, out } => {
            use std::io::Write;
            let mut file = std::fs::File::create(&out)?;
            let start = Instant::now();
            let mut last = 0;
            loop {
                let max = sizes(&dirs).await.into_iter().flatten().max().unwrap_or(0);
                if max > last {
                    last = max;
                    writeln!(file, "{} {max}", start.elapsed().as_millis())?;
                    file.flush()?;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Cmd::Settle { dirs, ids, timeout } => settle(&dirs, &ids, timeout).await,
        Cmd::Blocks { dir } => blocks(&dir),
        Cmd::Check {
            dirs,
            committee,
            ids,
        } => check(&dirs, &committee, &ids),
    }
}

async fn load(
    dirs: &[PathBuf],
    prefix: &str,
    count: usize,
    real: &[String],
    rate: f64,
    out: &Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    let mut specs: Vec<(String, String)> = real
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('@').unwrap_or((s, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    specs.extend((0..count).map(|k| (format!("{prefix}-{k}"), "1.0.0".to_string())));
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut turn = 0usize;
    for (krate, version) in specs {
        let req = ControlRequest::Submit {
            krate: krate.clone(),
            version: version.clone(),
            lockfile: None,
            variant: Default::default(),
        };
        // Round-robin over the members; one that is down (or refuses) passes the request
        // on to the next. A request no member takes within a minute is an error.
        let deadline = Instant::now() + Duration::from_secs(60);
        let id = loop {
            let dir = &dirs[turn % dirs.len()];
            turn += 1;
            // A member that does not answer in time (stopped, say) passes its turn on: a
            // load request is taken at once, a real crate is pinned first (a download).
            let wait = if is_load(&krate) { 3 } else { 120 };
            let answer =
                tokio::time::timeout(Duration::from_secs(wait), control::request(dir, &req)).await;
            match answer {
                Ok(Ok(ControlAnswer::Submitted { id })) => break id,
                other => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "no member took {krate}@{version}: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        writeln!(file, "{krate}@{version} {id}")?;
        file.flush()?;
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

fn read_ids(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(s, id)| (s.to_string(), id.to_string()))
        .collect())
}

async fn settle(dirs: &[PathBuf], ids: &Path, timeout: f64) -> anyhow::Result<()> {
    let ids = read_ids(ids)?;
    let start = Instant::now();
    let mut last_growth = Instant::now();
    let mut longest = Duration::ZERO;
    let mut last_sizes = sizes(dirs).await;
    let mut undecided: Vec<(String, String)> = ids.clone();
    loop {
        // A request is settled when every member holds it decided under a checkpoint.
        let mut still = Vec::new();
        for (spec, id) in undecided {
            let mut everywhere = true;
            for d in dirs {
                let done = status(d, Some(&id))
                    .await
                    .and_then(|s| s.entry)
                    .is_some_and(|e| e.cosigned);
                if !done {
                    everywhere = false;
                    break;
                }
            }
            if !everywhere {
                still.push((spec, id));
            }
        }
        undecided = still;
        let now = sizes(dirs).await;
        if now
            .iter()
            .zip(&last_sizes)
            .any(|(n, b)| n.unwrap_or(0) > b.unwrap_or(0))
        {
            last_sizes = now;
            last_growth = Instant::now();
        } else if !undecided.is_empty() {
            longest = longest.max(last_growth.elapsed());
        }
        if undecided.is_empty() || start.elapsed().as_secs_f64() > timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "decided={} pending={} stall_s={:.1}",
        ids.len() - undecided.len(),
        undecided.len(),
        longest.as_secs_f64()
    );
    // The reason of each pending request: its open round somewhere, or none at all (lost).
    for (spec, id) in &undecided {
        let mut reason = String::from("lost: no member has it open or decided");
        for d in dirs {
            if let Some(s) = status(d, Some(id)).await {
                if let Some(r) = s.open.iter().find(|r| r.id == *id) {
                    reason = format!(
                        "open in {} phase, committed {:?}, revealed {:?}",
                        r.phase, r.committed, r.revealed
                    );
                    break;
                }
                if s.entry.is_some() {
                    reason = format!("decided on member {}, not yet everywhere", s.member);
                }
            }
        }
        println!("pending {spec} {id}: {reason}");
    }
    Ok(())
}

/// What each decided height of the store in `dir` held (evidence for the fault suite's
/// stalls: which rounds a height needed, what filled its block).
fn blocks(dir: &Path) -> anyhow::Result<()> {
    use synchronicity::protocol::Body;
    let store = LogStore::open_existing(&dir.join("log"))?;
    let applied = store.applied_height()?.unwrap_or(0);
    let mut first = None;
    let mut entries_before = 0u64;
    for h in 1..=applied {
        let Some(raw) = store.decided_record(h)? else {
            continue;
        };
        let rec = DecidedRecord::decode(&raw).map_err(|e| anyhow::anyhow!("{e}"))?;
        let block =
            synchronicity::node::decode_block(&rec.value).map_err(|e| anyhow::anyhow!(e))?;
        let t0 = *first.get_or_insert(block.time_ms);
        let mut kinds = [0usize; 3];
        let mut signers: BTreeMap<u32, [usize; 3]> = BTreeMap::new();
        for m in &block.messages {
            let k = match m.body {
                Body::Request(_) => 0,
                Body::Commit { .. } => 1,
                Body::Reveal { .. } => 2,
                // Committee changes (the epoch scenarios) are not build traffic.
                Body::Approve { .. } => continue,
            };
            kinds[k] += 1;
            signers.entry(m.signer).or_default()[k] += 1;
        }
        let by_signer: Vec<String> = signers
            .iter()
            .map(|(s, [r, c, v])| format!("m{s}:{r}/{c}/{v}"))
            .collect();
        // Entries logged up to this height: the largest entry index whose height is h.
        let mut logged = 0u64;
        while let Ok(bytes) = store.entry(entries_before + logged) {
            match LogEntry::decode(&bytes) {
                Ok(e) if e.height == h => logged += 1,
                _ => break,
            }
        }
        entries_before += logged;
        println!(
            "height {h} t={:.1}s round={} requests/commits/reveals={}/{}/{} bytes={} entries={logged} [{}]",
            (block.time_ms - t0) as f64 / 1000.0,
            rec.certificate.round.as_i64(),
            kinds[0],
            kinds[1],
            kinds[2],
            rec.value.bytes().len(),
            by_signer.join(" ")
        );
    }
    Ok(())
}

/// The invariants; each broken one is one line `INVARIANT <name>: <detail>`.
fn check(dirs: &[PathBuf], committee: &Path, ids: &Path) -> anyhow::Result<()> {
    let committee = synchronicity::cli::load_committee(&committee.to_path_buf())?;
    let ids = read_ids(ids)?;
    let mut broken: Vec<String> = Vec::new();
    let mut stores = Vec::new();
    for d in dirs {
        match LogStore::open_existing(&d.join("log")) {
            Ok(s) => stores.push((d.clone(), s)),
            Err(e) => broken.push(format!("INVARIANT fsck: {}: cannot open: {e}", d.display())),
        }
    }
    // fsck (entries, hashes, every stored checkpoint against the committee).
    for (d, s) in &stores {
        if let Err(e) = synchronicity::log::fsck(s, Some(&committee)) {
            broken.push(format!("INVARIANT fsck: {}: {e}", d.display()));
        }
    }
    // One history: the same root at every common size.
    let sizes: Vec<u64> = stores.iter().map(|(_, s)| s.size().unwrap_or(0)).collect();
    let common = sizes.iter().copied().min().unwrap_or(0);
    let mut forks = 0;
    for size in 1..=common {
        let roots: Vec<_> = stores.iter().map(|(_, s)| s.tree_hash(size).ok()).collect();
        if roots.iter().any(|r| r.is_none() || *r != roots[0]) {
            forks += 1;
            if forks == 1 {
                broken.push(format!(
                    "INVARIANT one-history: roots differ at size {size}"
                ));
            }
        }
    }
    // One index: at every common size where members recorded index roots (each size a
    // height ended at), they are the same; each member has roots at its own size; and a
    // stored checkpoint carries exactly its size's roots (`fsck` checks that per store).
    let mut index_forks = 0;
    let mut index_sizes = 0;
    for (d, s) in &stores {
        if s.size().unwrap_or(0) > 0 && !matches!(s.index_roots(s.size().unwrap_or(0)), Ok(Some(_)))
        {
            broken.push(format!(
                "INVARIANT index-roots: {} has no index roots at its own size",
                d.display()
            ));
        }
    }
    for size in 1..=common {
        let roots: Vec<_> = stores
            .iter()
            .filter_map(|(_, s)| s.index_roots(size).ok().flatten())
            .collect();
        if roots.len() > 1 {
            index_sizes += 1;
        }
        if roots.iter().any(|r| *r != roots[0]) {
            index_forks += 1;
            if index_forks == 1 {
                broken.push(format!(
                    "INVARIANT index-roots: the members' index roots differ at size {size}"
                ));
            }
        }
    }
    // Every cosigned checkpoint anyone stored verifies, and is consistent with every
    // member's tree (RFC 9162 consistency proof from its size to that member's).
    let mut checkpoints = 0;
    for (d, s) in &stores {
        // Each checkpoint by the committee of its epoch (the stored changes, each verified
        // from the genesis): its size is in (start, end] of that epoch.
        let epochs = match synchronicity::log::stored_epochs(&committee, s) {
            Ok(e) => e,
            Err(e) => {
                broken.push(format!(
                    "INVARIANT checkpoints-verify: {}: its committee changes: {e}",
                    d.display()
                ));
                continue;
            }
        };
        for size in 1..=s.size().unwrap_or(0) {
            let Ok(Some(note)) = s.checkpoint_at(size) else {
                continue;
            };
            checkpoints += 1;
            let signer = epochs
                .iter()
                .find(|e| e.start < size && e.end.is_none_or(|end| size <= end))
                .map_or(&committee, |e| &e.committee);
            let cp = match CosignedCheckpoint::verify(&note, signer) {
                Ok(cp) => cp,
                Err(e) => {
                    broken.push(format!(
                        "INVARIANT checkpoints-verify: {} size {size}: {e}",
                        d.display()
                    ));
                    continue;
                }
            };
            let root = cp.checkpoint().root;
            for (other, o) in &stores {
                let Ok(osize) = o.size() else { continue };
                if osize < size {
                    continue;
                }
                let ok = match (o.tree_hash(osize), o.consistency_proof(size, osize)) {
                    (Ok(new_root), Ok(proof)) => synchronicity::log::merkle::verify_consistency(
                        size, osize, &root, &new_root, &proof,
                    )
                    .is_ok(),
                    _ => false,
                };
                if !ok {
                    broken.push(format!(
                        "INVARIANT one-history: the checkpoint of size {size} stored by {} is not a prefix of {}'s log",
                        d.display(),
                        other.display()
                    ));
                }
            }
        }
    }
    // No request lost: every one submitted is in every honest store.
    let mut lost = 0;
    for (spec, id) in &ids {
        let Ok(raw) = hex::decode(id) else { continue };
        let Ok(id_bytes) = <[u8; 32]>::try_from(raw.as_slice()) else {
            continue;
        };
        for (d, s) in &stores {
            if !matches!(s.lookup_request(&id_bytes), Ok(Some(_))) {
                lost += 1;
                broken.push(format!(
                    "INVARIANT no-lost-request: {spec} ({}) is not in {}'s log",
                    &id[..12],
                    d.display()
                ));
                break;
            }
        }
    }
    // What the log says (not invariants: the scenario judges them): verdicts, the real
    // crates' entries, and who was recorded misbehaving or silent.
    if let Some((_, s)) = stores.first() {
        let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
        let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..s.size().unwrap_or(0) {
            let Ok(e) = s.entry(i).map(|b| LogEntry::decode(&b)) else {
                continue;
            };
            let Ok(e) = e else { continue };
            *verdicts.entry(format!("{:?}", e.verdict)).or_default() += 1;
            if !is_load(&e.request.krate) {
                println!(
                    "real: {} {:?} (dissenters {}, silent {:?})",
                    e.request.spec(),
                    e.verdict,
                    e.dissenters.len(),
                    e.silent
                );
            }
            for (m, k) in &e.misbehaviour {
                *recorded.entry(format!("m{m}:{k:?}")).or_default() += 1;
            }
            for m in &e.silent {
                *recorded.entry(format!("m{m}:Silent")).or_default() += 1;
            }
        }
        println!("verdicts: {verdicts:?}");
        // How consensus went: heights decided per round, and the longest time between
        // two consecutive blocks (block times).
        let mut by_round: BTreeMap<i64, usize> = BTreeMap::new();
        let (mut prev, mut gap, mut gap_at) = (None, 0u64, 0u64);
        for h in 1..=s.applied_height().ok().flatten().unwrap_or(0) {
            let Some(r) = s
                .decided_record(h)
                .ok()
                .flatten()
                .and_then(|raw| DecidedRecord::decode(&raw).ok())
            else {
                continue;
            };
            *by_round.entry(r.certificate.round.as_i64()).or_default() += 1;
            if let Ok(b) = synchronicity::node::decode_block(&r.value) {
                if let Some(p) = prev
                    && b.time_ms.saturating_sub(p) > gap
                {
                    gap = b.time_ms - p;
                    gap_at = h;
                }
                prev = Some(b.time_ms);
            }
        }
        println!(
            "heights by round: {by_round:?}; longest gap between blocks {:.1} s (before height {gap_at})",
            gap as f64 / 1000.0
        );
        println!("recorded: {recorded:?}");
        // The committee changes: the height whose block ended each epoch.
        for (epoch, index) in s.epochs().unwrap_or_default() {
            if let Ok(c) = s
                .entry(index)
                .map(|b| synchronicity_verify::ChangeEntry::decode(&b))
                && let Ok(c) = c
            {
                println!("change: epoch {epoch} began after height {}", c.height);
            }
        }
    }
    println!(
        "check: members={} sizes={:?} checkpoints={checkpoints} forks={forks} index-roots-compared-at={index_sizes} index-roots-differ-at={index_forks} lost={lost} fsck={}",
        stores.len(),
        sizes,
        if broken.iter().any(|b| b.starts_with("INVARIANT fsck")) {
            "FAILED"
        } else {
            "ok"
        }
    );
    for b in &broken {
        println!("{b}");
    }
    anyhow::ensure!(broken.is_empty(), "{} invariant(s) broken", broken.len());
    Ok(())
}
