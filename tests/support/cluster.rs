//! A local group of member processes, by default the test node (`src/bin/fixed_builder_node.rs`:
//! the real node with a builder that returns chosen manifests), for kill-and-restart tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use synchronicity::committee::ProtocolRules;
use synchronicity::crypto::ThresholdSignature;
use synchronicity::node::control::{self, ControlAnswer, ControlRequest, NodeStatus};
use synchronicity::testing::{TestCommittee, free_loopback_ports};

use super::peers::peer_addr;

/// The test node binary. Cargo builds it for every integration test (a `[[bin]]` with
/// `required-features = ["testkit"]`, which the crate's dev-dependency on itself enables), so
/// it is never stale and no test runs cargo.
pub(crate) fn test_node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fixed_builder_node"))
}

/// A group of `n` member directories and their processes.
pub(crate) struct Cluster {
    pub(crate) tc: TestCommittee,
    pub(crate) root: tempfile::TempDir,
    pub(crate) committee_file: PathBuf,
    pub(crate) children: Vec<Option<Child>>,
    pub(crate) overrides: Vec<String>,
    pub(crate) binary: PathBuf,
    /// Extra command-line arguments per member.
    pub(crate) extra_args: Vec<Vec<String>>,
    /// Another committee file for a member (default: the group's).
    pub(crate) committee_override: Vec<Option<PathBuf>>,
    /// Extra environment per member (e.g. `SYNC_TEST_BUILD_MS`).
    pub(crate) extra_env: Vec<Vec<(String, String)>>,
}

impl Cluster {
    /// Directories, keys, a committee under `rules` and `node_toml` (local settings) for
    /// `n` members (none started).
    pub(crate) fn new(seed: u8, n: usize, rules: ProtocolRules, node_toml: &str) -> Self {
        Self::with_binary(seed, n, rules, node_toml, test_node_binary())
    }

    /// Like [`Cluster::new`], running the product's `synchronicity node` (real builds).
    pub(crate) fn real_nodes(seed: u8, n: usize, rules: ProtocolRules, node_toml: &str) -> Self {
        Self::with_binary(seed, n, rules, node_toml, super::cli::product_binary())
    }

    /// Like [`Cluster::new`], running `binary`.
    pub(crate) fn with_binary(
        seed: u8,
        n: usize,
        rules: ProtocolRules,
        node_toml: &str,
        binary: PathBuf,
    ) -> Self {
        let tc = TestCommittee::with_ports(seed, &free_loopback_ports(n)).with_rules(rules);
        let root = tempfile::tempdir().unwrap();
        let committee_file = root.path().join("committee.toml");
        std::fs::write(&committee_file, tc.committee.to_toml()).unwrap();
        for i in 0..n {
            let d = root.path().join(format!("n{i}"));
            tc.write_node_dir(i, &d);
            std::fs::write(d.join("node.toml"), node_toml).unwrap();
        }
        Self {
            tc,
            root,
            committee_file,
            children: (0..n).map(|_| None).collect(),
            overrides: vec![String::new(); n],
            binary,
            extra_args: vec![Vec::new(); n],
            committee_override: vec![None; n],
            extra_env: vec![Vec::new(); n],
        }
    }

    /// A place for one more node, `n{i}` (its directory is not made: a test makes it, e.g.
    /// with `keygen`, for a node that joins the group later); its index.
    pub(crate) fn add_slot(&mut self) -> usize {
        self.children.push(None);
        self.overrides.push(String::new());
        self.extra_args.push(Vec::new());
        self.committee_override.push(None);
        self.extra_env.push(Vec::new());
        self.children.len() - 1
    }

    /// Member `i`'s directory.
    pub(crate) fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(format!("n{i}"))
    }

    /// The same members with attestation threshold `t`, written to the committee file (start
    /// no member before).
    pub(crate) fn set_threshold(&mut self, t: usize) {
        assert!(
            self.running().is_empty(),
            "set the threshold before starting"
        );
        let tc = std::mem::replace(&mut self.tc, TestCommittee::new(1, 0));
        self.tc = tc.with_threshold(t);
        std::fs::write(&self.committee_file, self.tc.committee.to_toml()).unwrap();
    }

    /// How many members signed `attestation` (0 if it is no threshold signature of this
    /// group's size).
    pub(crate) fn signers(&self, attestation: &[u8]) -> usize {
        ThresholdSignature::from_bytes(attestation, self.tc.committee.len())
            .map(|s| s.signers.count())
            .unwrap_or(0)
    }

    /// Member `i`'s address for `--peer` (`/ip4/…/tcp/…/p2p/<peer id>`).
    pub(crate) fn peer(&self, i: usize) -> String {
        peer_addr(&self.tc.committee, i)
    }

    /// Starts member `i` (stderr appended to its `node.log`).
    pub(crate) fn start(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "member {i} already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir(i).join("node.log"))
            .unwrap();
        let mut cmd = Command::new(&self.binary);
        if self
            .binary
            .file_name()
            .is_some_and(|n| n == "synchronicity")
        {
            cmd.arg("node");
        }
        let child = cmd
            .arg("--dir")
            .arg(self.dir(i))
            .arg("--committee")
            .arg(
                self.committee_override[i]
                    .as_ref()
                    .unwrap_or(&self.committee_file),
            )
            .args(&self.extra_args[i])
            .env("SYNC_TEST_OVERRIDES", &self.overrides[i])
            .envs(
                self.extra_env[i]
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env(
                "RUST_LOG",
                std::env::var("SYNC_TEST_LOG")
                    .unwrap_or_else(|_| "info,arc_malachitebft_core_consensus=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub(crate) fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `within` for member `i`'s process to exit by itself; its exit status.
    pub(crate) fn wait_exit(
        &mut self,
        i: usize,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let c = self.children[i].as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.children[i] = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The members whose process runs.
    pub(crate) fn running(&self) -> Vec<usize> {
        (0..self.children.len())
            .filter(|i| self.children[*i].is_some())
            .collect()
    }

    /// The status of member `i` (None while it starts or is down).
    pub(crate) async fn status(&self, i: usize, key: Option<&str>) -> Option<NodeStatus> {
        let req = ControlRequest::Status {
            key: key.map(str::to_string),
        };
        match control::request(&self.dir(i), &req).await {
            Ok(ControlAnswer::Status(s)) => Some(*s),
            _ => None,
        }
    }

    /// Submits through member `i` (retrying while it starts).
    pub(crate) async fn submit(&self, i: usize, krate: &str, version: &str) -> String {
        self.submit_with(i, krate, version, Some("lock".into()))
            .await
    }

    /// Submits with an explicit lockfile choice (None: the shipped or generated one).
    pub(crate) async fn submit_with(
        &self,
        i: usize,
        krate: &str,
        version: &str,
        lockfile: Option<String>,
    ) -> String {
        let req = ControlRequest::Submit {
            krate: krate.into(),
            version: version.into(),
            lockfile,
            variant: Default::default(),
        };
        let mut last = String::new();
        for _ in 0..100 {
            match control::request(&self.dir(i), &req).await {
                Ok(ControlAnswer::Submitted { id }) => return id,
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("member {i} does not accept submissions: {last}");
    }

    /// Waits until every running member has a cosigned entry for `key`; returns them.
    pub(crate) async fn decided_on(
        &self,
        members: &[usize],
        key: &str,
        secs: u64,
    ) -> Vec<NodeStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut all = Vec::new();
            for &i in members {
                match self.status(i, Some(key)).await {
                    Some(s) if s.entry.as_ref().is_some_and(|e| e.cosigned) => all.push(s),
                    _ => break,
                }
            }
            if all.len() == members.len() {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "{key} not decided and cosigned on {members:?} in {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `members` report the same log size, root and cosigned size.
    pub(crate) async fn converge(&self, members: &[usize], secs: u64) -> NodeStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut st = Vec::new();
            for &i in members {
                if let Some(s) = self.status(i, None).await {
                    st.push(s);
                }
            }
            if st.len() == members.len()
                && st.iter().all(|s| {
                    s.root == st[0].root
                        && s.log_size == st[0].log_size
                        && s.checkpoint_size == Some(s.log_size)
                })
            {
                return st.swap_remove(0);
            }
            assert!(
                Instant::now() < deadline,
                "members {members:?} did not converge in {secs} s: {:?}",
                st.iter()
                    .map(|s| (s.member, s.applied_height, s.log_size, s.checkpoint_size))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `synchronicity proof WHAT EXTRA.. --peer <member i> --trust <committee> --out OUT`: the
    /// light client fetches (and verifies) a proof from member `i`.
    pub(crate) fn proof(&self, i: usize, what: &str, extra: &[&str], out: &Path) -> Output {
        super::cli::bin()
            .args(["proof", what])
            .args(extra)
            .args(["--peer", &self.peer(i), "--trust"])
            .arg(&self.committee_file)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    }

    /// `synchronicity log fsck --trust` on member `i`'s store (the member must be down).
    pub(crate) fn fsck(&self, i: usize) {
        let out = super::cli::bin()
            .args(["log", "fsck", "--store"])
            .arg(self.dir(i).join("log"))
            .arg("--trust")
            .arg(&self.committee_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fsck of member {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The last 30 lines of member `i`'s `node.log`.
    pub(crate) fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.dir(i).join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// Polls member `i`'s applied height for `for_`; returns the longest time between two
/// increments (or since the last one).
pub(crate) async fn longest_stall(c: &Cluster, i: usize, for_: Duration) -> Duration {
    let start = Instant::now();
    let mut last_change = Instant::now();
    let mut last_height = None;
    let mut longest = Duration::ZERO;
    while start.elapsed() < for_ {
        if let Some(s) = c.status(i, None).await
            && Some(s.applied_height) != last_height
        {
            longest = longest.max(last_change.elapsed());
            last_change = Instant::now();
            last_height = Some(s.applied_height);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    longest.max(last_change.elapsed())
}
