//! Members in the test's own process: the real node (libp2p on loopback, consensus, redb
//! store) with a builder that returns chosen manifests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use synchronicity::node::{self, NodeConfig, NodeHandle};
use synchronicity::testing::{FixedBuilder, TestCommittee};

/// Starts member `i` of `tc` in a new directory (kept as long as the returned one): idle
/// interval 500 ms, 100 ms builds whose manifests take the variant `overrides` names for a
/// crate ("same" for the others).
pub(crate) async fn start_member(
    tc: &TestCommittee,
    i: usize,
    overrides: HashMap<String, String>,
) -> (NodeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    tc.write_node_dir(i, dir.path());
    let mut config = NodeConfig::new(dir.path(), tc.committee.clone());
    config.idle_interval = Duration::from_millis(500);
    let builder = FixedBuilder {
        overrides,
        bins: HashMap::new(),
        delay: Duration::from_millis(100),
    };
    (node::start(config, Arc::new(builder)).await.unwrap(), dir)
}
