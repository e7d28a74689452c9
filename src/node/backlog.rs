//! A backlog: a given list of releases (node.toml `[follow] list = FILE`) built once each,
//! at a rate the group can absorb.
//!
//! Each line is `CRATE` (its newest release when the node first reaches the line) or
//! `CRATE@VERSION`, optionally followed by `--features a,b`, `--no-default-features`,
//! `--all-features` (the variant `submit` takes). The node works through the lines in file
//! order. An item is DONE once the group has decided a request for it; it is ORDERED while
//! a round for it is open; it is UNBUILDABLE after [`MAX_PIN_TRIES`] failed pins (not in
//! the index, a feature the crate does not declare; the error is kept for `status`).
//!
//! **Rate.** The bounds are the committee's, never this node's: a member keeps at most half
//! of its `max_open_requests_per_member` rounds open with backlog items (the other half is
//! its users' `submit`s), and every block orders at most `max_requests_per_block` requests
//! from all members together. A node whose backlog is full waits for decisions.
//!
//! **Exactly once across the group**, as following is: each item has one designated member
//! ([`super::follow::designated`] of its line); it orders the item at once, every other
//! member only after [`super::follow::FollowConfig::takeover`] without the group knowing the
//! item. An item counts as known once the group has ordered or decided a request for its
//! release with its variant: for the default variant the follower's own rule
//! ([`super::follow`]), for another variant the same pinned sources and features.
//!
//! State (`DIR/backlog.json`: per line, the version chosen, the request and what became of
//! it) is written atomically (temp file, fsync, rename) after each change; after a crash at
//! worst an item submitted just before is submitted again, which the group orders once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::follow::designated;
use super::run::{self, Command};
use super::service::BuildService;
use super::shared::Shared;
use crate::builder::{IndexPoll, Registry, Variant, index_versions, newest_release};
use crate::clock::now_ms;
use crate::protocol::Verdict;
use crate::request::BuildRequest;
use synchronicity_verify::request::{valid_crate_name, valid_version};

/// Most lines in a backlog file.
pub const MAX_BACKLOG: usize = 100_000;
/// Longest line of a backlog file.
const MAX_LINE: usize = 1024;
/// Most features one line names.
const MAX_FEATURES: usize = 64;
/// Failed pins after which an item is given up as unbuildable.
pub const MAX_PIN_TRIES: u32 = 3;
/// Most pins (each a registry download and a `cargo` run) in one pass over the list.
const PINS_PER_PASS: usize = 4;
/// Most waiting items looked at in one pass (each costs a look-up of what the group
/// knows): the list is worked through in order, so the first ones are what matters.
const EXAMINED_PER_PASS: usize = 64;
/// Time between two passes over the list.
const PASS_INTERVAL: Duration = Duration::from_secs(2);

/// One line of a backlog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogItem {
    /// The crate.
    pub name: String,
    /// The exact version asked for; `None`: the newest release.
    pub version: Option<String>,
    /// The features asked for.
    pub variant: Variant,
}

impl BacklogItem {
    /// The line in canonical form (features sorted): the item's key in the state file and
    /// the input of its designated member.
    pub fn key(&self) -> String {
        let mut out = self.name.clone();
        if let Some(v) = &self.version {
            out.push('@');
            out.push_str(v);
        }
        if self.variant.all_features {
            out.push_str(" --all-features");
        } else if !self.variant.features.is_empty() {
            out.push_str(" --features ");
            out.push_str(&self.variant.features.join(","));
        }
        if self.variant.no_default_features {
            out.push_str(" --no-default-features");
        }
        out
    }

    /// Whether `request` builds this item's variant of `spec` (the version chosen).
    fn matches(&self, request: &BuildRequest, target: &str) -> bool {
        if self.variant == Variant::default() {
            return request.is_default_variant_for(target);
        }
        // `--all-features` is a list known only once pinned (the crate's declared features):
        // such an item is known only as the same pinned build.
        !self.variant.all_features
            && request.target == target
            && request.no_default_features == self.variant.no_default_features
            && request.features == self.variant.features
    }
}

/// Parses a backlog file: one item a line, `#` starts a comment, blank lines are skipped,
/// a line repeated (in canonical form) counts once. The error names the line.
pub fn parse_backlog(text: &str) -> Result<Vec<BacklogItem>, String> {
    let mut items = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.len() > MAX_LINE {
            return Err(format!("line {n}: longer than {MAX_LINE} bytes"));
        }
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let item = parse_line(line).map_err(|e| format!("line {n}: {e}"))?;
        if seen.insert(item.key()) {
            items.push(item);
        }
        if items.len() > MAX_BACKLOG {
            return Err(format!("more than {MAX_BACKLOG} items"));
        }
    }
    Ok(items)
}

fn parse_line(line: &str) -> Result<BacklogItem, String> {
    let mut words = line.split_whitespace();
    let spec = words.next().unwrap_or_default();
    let (name, version) = match spec.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    if !valid_crate_name(name) || name == synchronicity_verify::request::RECIPE_CRATE {
        return Err(format!("{name:?} is not a crate name"));
    }
    if let Some(v) = version
        && !valid_version(v)
    {
        return Err(format!("{v:?} is not a version"));
    }
    let mut variant = Variant::default();
    while let Some(w) = words.next() {
        match w {
            "--no-default-features" => variant.no_default_features = true,
            "--all-features" => variant.all_features = true,
            "--features" => {
                let list = words
                    .next()
                    .ok_or("--features needs a comma-separated list")?;
                variant.features.extend(list.split(',').map(str::to_string));
            }
            other => match other.strip_prefix("--features=") {
                Some(list) => variant.features.extend(list.split(',').map(str::to_string)),
                None => return Err(format!("unknown word {other:?}")),
            },
        }
    }
    variant.features.retain(|f| !f.is_empty());
    variant.features.sort();
    variant.features.dedup();
    if variant.features.len() > MAX_FEATURES {
        return Err(format!("more than {MAX_FEATURES} features"));
    }
    if let Some(f) = variant.features.iter().find(|f| {
        f.len() > 128
            || !f
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/+.".contains(&b))
    }) {
        return Err(format!("{f:?} is not a feature name"));
    }
    if variant.all_features && !variant.features.is_empty() {
        return Err("--all-features and --features together".into());
    }
    Ok(BacklogItem {
        name: name.to_string(),
        version: version.map(str::to_string),
        variant,
    })
}

/// What the backlog needs to run (node.toml `[follow] list`).
#[derive(Debug, Clone)]
pub struct BacklogConfig {
    /// The items, in file order.
    pub items: Vec<BacklogItem>,
    /// Where versions are looked up.
    pub registry: Registry,
    /// How long a non-designated member waits for the designated one.
    pub takeover: Duration,
    /// `DIR/backlog.json`.
    pub state_file: PathBuf,
}

/// What became of one item (durable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ItemState {
    /// The version chosen (the line's, or the newest release when first reached).
    version: Option<String>,
    /// When this node first found the item due and unknown to the group (ms).
    since: Option<u64>,
    /// The request that builds it (ours or another member's), hex.
    request: Option<String>,
    /// The request is ordered: a round is open or was.
    ordered: bool,
    /// The group's verdict on it.
    verdict: Option<Verdict>,
    /// Failed pins, and the last error.
    tries: u32,
    error: Option<String>,
    /// Times this node submitted the item's request without the group ordering it.
    #[serde(default)]
    submits: u32,
    /// Given up: never ordered after [`MAX_PIN_TRIES`] submits. The request is still
    /// followed: if the group orders it after all, the item counts as ordered.
    #[serde(default)]
    given_up: bool,
}

/// Where one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting,
    /// Submitted by this node, not ordered yet.
    Submitted,
    Ordered,
    Decided(Verdict),
    Unbuildable,
}

impl ItemState {
    fn stage(&self) -> Stage {
        match (&self.verdict, self.ordered, &self.request) {
            (Some(v), _, _) => Stage::Decided(*v),
            (None, true, _) => Stage::Ordered,
            (None, false, Some(_)) if !self.given_up => Stage::Submitted,
            _ if self.tries >= MAX_PIN_TRIES || self.given_up => Stage::Unbuildable,
            _ => Stage::Waiting,
        }
    }
}

/// How far the backlog has come (`status`, the web view).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogProgress {
    /// Items in the list.
    pub total: usize,
    /// Not ordered yet (this node's submits waiting to be ordered included).
    pub waiting: usize,
    /// Ordered, round open.
    pub ordered: usize,
    /// Decided: reproduced.
    pub reproduced: usize,
    /// Decided: not reproduced.
    pub not_reproduced: usize,
    /// Decided: failed.
    pub failed: usize,
    /// Given up: the item could not be pinned (`errors` says why).
    pub unbuildable: usize,
    /// The last few pin errors: (line, error).
    pub errors: Vec<(String, String)>,
}

impl BacklogProgress {
    /// Decided items.
    pub fn decided(&self) -> usize {
        self.reproduced + self.not_reproduced + self.failed
    }
}

/// The backlog's durable state and its pure decisions.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BacklogState {
    items: BTreeMap<String, ItemState>,
}

impl BacklogState {
    fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Temp file, fsync, rename, fsync of the directory (`node_dir::write_atomic`): a crash
    /// leaves the old state or the new one.
    fn save(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        crate::node_dir::write_atomic(path, &bytes).map_err(|e| e.to_string())
    }

    fn progress(&self, items: &[BacklogItem]) -> BacklogProgress {
        let mut p = BacklogProgress {
            total: items.len(),
            ..Default::default()
        };
        for item in items {
            let key = item.key();
            let st = self.items.get(&key).cloned().unwrap_or_default();
            match st.stage() {
                Stage::Waiting | Stage::Submitted => p.waiting += 1,
                Stage::Ordered => p.ordered += 1,
                Stage::Decided(Verdict::Reproduced) => p.reproduced += 1,
                Stage::Decided(Verdict::NotReproduced) => p.not_reproduced += 1,
                Stage::Decided(Verdict::Failed) => p.failed += 1,
                Stage::Unbuildable => p.unbuildable += 1,
            }
            if let Some(e) = &st.error
                && p.errors.len() < 8
            {
                p.errors.push((key, e.clone()));
            }
        }
        p
    }

    /// This node's submitted items of `items` not ordered yet (they will take open rounds).
    fn submitted(&self, items: &[BacklogItem]) -> usize {
        items
            .iter()
            .filter_map(|i| self.items.get(&i.key()))
            .filter(|s| s.stage() == Stage::Submitted)
            .count()
    }
}

/// How many more items this node may submit now: half of the committee's
/// `max_open_requests_per_member` (at least one), less its open rounds and its submits
/// waiting to be ordered.
fn room(max_open_per_member: usize, open_of_me: usize, submitted: usize) -> usize {
    (max_open_per_member / 2)
        .max(1)
        .saturating_sub(open_of_me + submitted)
}

/// Where the group stands on request `id`: `Some(None)` ordered and open, `Some(Some(v))`
/// decided, `None` unknown.
fn request_stage(shared: &Shared, id: &[u8; 32]) -> Option<Option<Verdict>> {
    if let Ok(Some(index)) = shared.store.lookup_request(id) {
        let entry = shared
            .store
            .entry(index)
            .ok()
            .and_then(|b| crate::protocol::LogEntry::decode(&b).ok())?;
        return Some(Some(entry.verdict));
    }
    shared.view().state.is_open(id).then_some(None)
}

/// Runs the backlog until the node stops, publishing its progress on `progress`.
pub(crate) async fn run(
    config: BacklogConfig,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    service: Arc<dyn BuildService>,
    progress: watch::Sender<Option<BacklogProgress>>,
) {
    let mut state = BacklogState::load(&config.state_file);
    let n = shared.committee.members().len();
    let target = shared.committee.build().target.clone();
    loop {
        let changed = pass(
            &config, &mut state, &shared, &commands, &service, n, &target,
        )
        .await;
        if changed && let Err(e) = state.save(&config.state_file) {
            tracing::warn!(error = %e, file = %config.state_file.display(), "cannot save the backlog state");
        }
        let now = state.progress(&config.items);
        progress.send_if_modified(|p| {
            let differs = p.as_ref() != Some(&now);
            *p = Some(now.clone());
            differs
        });
        if commands.is_closed() {
            return;
        }
        tokio::time::sleep(PASS_INTERVAL).await;
    }
}

/// One pass over the list: follows known requests to their decision, then orders what is
/// due while this node has room. True if the state changed.
async fn pass(
    config: &BacklogConfig,
    state: &mut BacklogState,
    shared: &Arc<Shared>,
    commands: &mpsc::Sender<Command>,
    service: &Arc<dyn BuildService>,
    members: usize,
    target: &str,
) -> bool {
    let mut changed = false;
    // What became of the requests we know.
    for st in state.items.values_mut() {
        if st.verdict.is_some() {
            continue;
        }
        let Some(id) = st.request.as_deref().and_then(parse_id) else {
            continue;
        };
        match request_stage(shared, &id) {
            Some(Some(v)) => {
                (st.verdict, st.ordered) = (Some(v), true);
                changed = true;
            }
            Some(None) if !st.ordered => {
                st.ordered = true;
                changed = true;
            }
            _ => {}
        }
    }
    let view = shared.view();
    let max_open = view.state.params().max_open_requests_per_member;
    let submitted = state.submitted(&config.items);
    let mut room = room(max_open, view.state.open_requests_of(shared.me), submitted);
    let (mut pins, mut examined) = (0, 0);
    for item in &config.items {
        if room == 0 || pins >= PINS_PER_PASS || examined >= EXAMINED_PER_PASS {
            break;
        }
        let key = item.key();
        let mut st = state.items.get(&key).cloned().unwrap_or_default();
        if !matches!(st.stage(), Stage::Waiting | Stage::Submitted) {
            continue;
        }
        examined += 1;
        let before = st.clone();
        let ordered = order_item(
            config, item, &key, &mut st, shared, commands, service, members, target, &mut pins,
        )
        .await;
        if ordered {
            room -= 1;
        }
        if st != before {
            state.items.insert(key, st);
            changed = true;
        }
    }
    changed
}

fn parse_id(hex_id: &str) -> Option<[u8; 32]> {
    hex::decode(hex_id).ok()?.try_into().ok()
}

/// Takes one waiting item a step: chooses its version, notices that the group knows it,
/// or (if it is ours to order, or the designated member let the takeover time pass) pins
/// and submits it. True if this node submitted it.
#[allow(clippy::too_many_arguments)]
async fn order_item(
    config: &BacklogConfig,
    item: &BacklogItem,
    key: &str,
    st: &mut ItemState,
    shared: &Arc<Shared>,
    commands: &mpsc::Sender<Command>,
    service: &Arc<dyn BuildService>,
    members: usize,
    target: &str,
    pins: &mut usize,
) -> bool {
    if st.version.is_none() {
        st.version = match &item.version {
            Some(v) => Some(v.clone()),
            None => {
                // A registry request: it counts against the pass's budget like a pin.
                *pins += 1;
                match newest(&config.registry, &item.name).await {
                    Ok(v) => Some(v),
                    Err(e) => {
                        st.tries += 1;
                        st.error = Some(e);
                        return false;
                    }
                }
            }
        };
    }
    let version = st.version.clone().unwrap_or_default();
    let spec = format!("{}@{version}", item.name);
    // Before pinning (cheap), only a REPRODUCED decision counts: an open or failed request
    // for the release may be another member's junk (other sources, a lying "shipped"
    // lockfile), which must not close the item; the pinned build is compared below.
    let known = shared.known_requests(&spec);
    let usable = |(r, v): &(BuildRequest, Option<Verdict>)| {
        item.matches(r, target)
            && (r.lockfile_shipped || item.variant != Variant::default())
            && *v == Some(Verdict::Reproduced)
    };
    if let Some((r, v)) = known.iter().find(|k| usable(k)) {
        adopt(st, r, *v);
        return false;
    }
    if st.stage() == Stage::Submitted {
        // Ours, gossiped, not ordered yet: submitted again after the takeover time, at
        // most MAX_PIN_TRIES times in all (then given up: the group does not order it).
        if now_ms().saturating_sub(st.since.unwrap_or(0)) < config.takeover.as_millis() as u64 {
            return false;
        }
        st.submits += 1;
        if st.submits >= MAX_PIN_TRIES {
            st.given_up = true;
            st.error = Some(format!("submitted {} times, never ordered", st.submits));
            return false;
        }
    }
    let since = *st.since.get_or_insert_with(now_ms);
    let mine = designated(key, members) == shared.me;
    // A reproduced decision for the release's variant that the check above could not take
    // (a lockfile the crate does not ship): pinning now tells whether it is this build,
    // so the other members need not wait out the takeover to count the item.
    let decided = known
        .iter()
        .any(|(r, v)| item.matches(r, target) && *v == Some(Verdict::Reproduced));
    if !mine && !decided && now_ms().saturating_sub(since) < config.takeover.as_millis() as u64 {
        return false;
    }
    *pins += 1;
    let (svc, name, v, variant) = (
        service.clone(),
        item.name.clone(),
        version.clone(),
        item.variant.clone(),
    );
    let pinned =
        match tokio::task::spawn_blocking(move || svc.pin_variant(&name, &v, None, &variant)).await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                st.tries += 1;
                st.error = Some(e);
                return false;
            }
            Err(_) => return false,
        };
    // The same build, ordered meanwhile (any verdict: re-attempts are the group's business);
    // for a crate that ships no lockfile, as following counts it, an ordered or reproduced
    // build of the variant with a lockfile another member generated.
    let p = &pinned.request;
    let same = |(r, v): &&(BuildRequest, Option<Verdict>)| {
        let variant = r.features == p.features && r.no_default_features == p.no_default_features;
        let exact = r.source_sha256 == p.source_sha256 && r.lockfile_sha256 == p.lockfile_sha256;
        let generated = !p.lockfile_shipped
            && !r.lockfile_shipped
            && r.target == p.target
            && v.is_none_or(|v| v == Verdict::Reproduced);
        variant && (exact || generated)
    };
    if let Some((r, v)) = shared.known_requests(&spec).iter().find(same) {
        adopt(st, r, *v);
        return false;
    }
    match run::submit(commands, pinned).await {
        Ok(id) => {
            tracing::info!(item = %key, id = %hex::encode(id), designated = mine, "backlog item ordered");
            st.request = Some(hex::encode(id));
            st.since = Some(now_ms());
            st.error = None;
            true
        }
        Err(e) => {
            // Counted like a failed pin: an item the node cannot submit is not pinned
            // again on every pass for ever.
            st.tries += 1;
            st.error = Some(e.to_string());
            false
        }
    }
}

/// Records a request the group knows as the item's.
fn adopt(st: &mut ItemState, request: &BuildRequest, verdict: Option<Verdict>) {
    st.request = Some(hex::encode(request.id()));
    st.ordered = true;
    st.verdict = verdict;
    st.error = None;
}

/// The newest release of `name` in `registry`.
async fn newest(registry: &Registry, name: &str) -> Result<String, String> {
    let (registry, krate) = (registry.clone(), name.to_string());
    let poll = tokio::task::spawn_blocking(move || registry.poll_index(&krate, None))
        .await
        .map_err(|e| e.to_string())?;
    match poll {
        Ok(IndexPoll::Changed { body, .. }) => newest_release(&index_versions(&body))
            .ok_or_else(|| format!("{name} has no non-yanked release")),
        Ok(_) => Err(format!("{name} is not in the index")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
