//! Peers of a test group on the network: member addresses as clients name them, a light
//! peer of the test's own (to play a faulty server), and a member's key in the test's hands
//! (to play a Byzantine member).

use std::time::Duration;

use synchronicity::committee::Committee;
use synchronicity::crypto::NodeIdentity;
use synchronicity::node;
use synchronicity::node::wire::{COSIGN_TOPIC, MESSAGES_TOPIC};
use synchronicity::testing::TestCommittee;
use synchronicity_net::multiaddr::Protocol;
use synchronicity_net::{Multiaddr, NetConfig, NetEvent, NetworkHandle, TopicConfig};
use tokio::sync::mpsc::Receiver;

/// Member `i`'s address for `--peer`: its first listen address with `/p2p/<peer id>`.
pub(crate) fn peer_addr(committee: &Committee, i: usize) -> String {
    let m = &committee.members()[i];
    format!("{}/p2p/{}", m.addrs[0], m.peer_id)
}

/// A network node with a fresh key (not a member) listening on loopback, knowing
/// `committee`'s members: a light peer whose requests the test answers from `events`.
/// Returns it with its `--peer` address.
pub(crate) async fn light_peer(
    committee: &Committee,
) -> (NetworkHandle, Receiver<NetEvent>, String) {
    let key = NodeIdentity::generate();
    let cfg = NetConfig::new(key.keypair(), node::member_addrs(committee))
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (net, events) = synchronicity_net::start(cfg).await.unwrap();
    let addr = listening_addr(&net).await.to_string();
    (net, events, addr)
}

/// `net`'s first listen address with `/p2p/<its peer id>`, once it listens (within 5 s).
pub(crate) async fn listening_addr(net: &NetworkHandle) -> Multiaddr {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(a) = net.listen_addrs().await.unwrap().first() {
            return a.clone().with(Protocol::P2p(net.local_peer_id()));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the network node does not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Member `i`'s key on a bare network node (no consensus, no mempool of its own) that joins
/// the members' gossip topics through `bootstrap`: what a Byzantine member sends with, signing
/// by the returned identity.
pub(crate) async fn rogue_member(
    tc: &TestCommittee,
    i: usize,
    bootstrap: Vec<Multiaddr>,
) -> (NetworkHandle, Receiver<NetEvent>, NodeIdentity) {
    let identity = NodeIdentity::from_secret_bytes(&tc.identities[i].secret_bytes()).unwrap();
    let cfg = NetConfig::new(identity.keypair(), node::member_addrs(&tc.committee))
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
        .with_bootstrap(bootstrap)
        .with_topics(vec![
            TopicConfig {
                name: MESSAGES_TOPIC.into(),
                max_size: 2 * 1024 * 1024,
            },
            TopicConfig {
                name: COSIGN_TOPIC.into(),
                max_size: 1024,
            },
        ]);
    let (net, events) = synchronicity_net::start(cfg).await.unwrap();
    (net, events, identity)
}
