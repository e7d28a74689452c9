//! Members in the test's own process: the real node (libp2p on loopback, consensus, redb
//! store) with a builder that returns chosen manifests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use synchronicity::log::LookupKey;
use synchronicity::node::{self, NodeConfig, NodeHandle};
use synchronicity::protocol::LogEntry;
use synchronicity::testing::{FixedBuilder, TestCommittee};

/// Starts member `i` of `tc` in a new directory (kept as long as the returned one): idle
/// interval 500 ms, 100 ms builds whose manifests take the variant `overrides` names for a
/// crate ("same" for the others).
pub(crate) async fn start_member(
    tc: &TestCommittee,
    i: usize,
    overrides: HashMap<String, String>,
) -> (NodeHandle, tempfile::TempDir) {
    start_member_with(tc, i, overrides, |_| {}).await
}

/// [`start_member`], with `configure` changing the member's configuration before it starts
/// (e.g. a test member's outgoing seams).
pub(crate) async fn start_member_with(
    tc: &TestCommittee,
    i: usize,
    overrides: HashMap<String, String>,
    configure: impl FnOnce(&mut NodeConfig),
) -> (NodeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    tc.write_node_dir(i, dir.path());
    let mut config = NodeConfig::new(dir.path(), tc.committee.clone());
    config.idle_interval = Duration::from_millis(500);
    configure(&mut config);
    let builder = FixedBuilder {
        overrides,
        bins: HashMap::new(),
        delay: Duration::from_millis(100),
    };
    (node::start(config, Arc::new(builder)).await.unwrap(), dir)
}

/// Waits until every one of `nodes` logged an entry for `key` (a crate@version or a request
/// id); they must be the same bytes (panics at once if two differ, or after `secs`). That
/// entry.
pub(crate) async fn entry_on_all(nodes: &[&NodeHandle], key: &str, secs: u64) -> LogEntry {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let lookup = LookupKey::parse(key).expect("a lookup key");
    loop {
        let found: Vec<Option<Vec<u8>>> = nodes
            .iter()
            .map(|n| {
                let s = &n.shared().store;
                s.resolve(&lookup)
                    .unwrap()
                    .ok()
                    .map(|i| s.entry(i).unwrap())
            })
            .collect();
        if let Some(Some(first)) = found.first()
            && found.iter().all(Option::is_some)
        {
            for f in &found {
                assert_eq!(f.as_ref(), Some(first), "members logged different entries");
            }
            return LogEntry::decode(first).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} not decided on every member in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
