//! A test node: a real network on loopback whose events are collected, gossip accepted and
//! light requests answered with `pong:<request>`.
#![allow(dead_code, unreachable_pub)]

pub mod light_client;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use synchronicity_net::{
    GossipMessage, Keypair, MemberAddr, Multiaddr, NetConfig, NetEvent, NetworkHandle, PeerId,
    TopicConfig, Validation,
};

pub const TOPICS: [&str; 2] = ["/synchronicity/test-a/1", "/synchronicity/test-b/1"];

#[derive(Default)]
pub struct Seen {
    pub gossip: Vec<(String, PeerId, Vec<u8>)>,
    pub frames: Vec<(PeerId, Vec<u8>)>,
}

pub struct TestNode {
    pub handle: NetworkHandle,
    pub key: Keypair,
    pub seen: Arc<Mutex<Seen>>,
}

pub fn keys(n: usize) -> Vec<Keypair> {
    (0..n).map(|_| Keypair::generate_ed25519()).collect()
}

pub fn members(keys: &[Keypair]) -> Vec<MemberAddr> {
    keys.iter()
        .map(|k| MemberAddr {
            peer_id: k.public().to_peer_id(),
            addrs: vec![],
        })
        .collect()
}

pub fn config(
    key: &Keypair,
    members: Vec<MemberAddr>,
    bootstrap: Vec<Multiaddr>,
    topic_max: usize,
) -> NetConfig {
    NetConfig::new(key.clone(), members)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
        .with_bootstrap(bootstrap)
        .with_topics(
            TOPICS
                .iter()
                .map(|t| TopicConfig {
                    name: t.to_string(),
                    max_size: topic_max,
                })
                .collect(),
        )
        .with_redial_max(Duration::from_secs(2))
}

pub async fn spawn(cfg: NetConfig, key: Keypair) -> TestNode {
    let (handle, mut events) = synchronicity_net::start(cfg).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (h, s) = (handle.clone(), seen.clone());
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match e {
                NetEvent::Gossip(m) => {
                    h.validate(&m, Validation::Accept);
                    let GossipMessage {
                        topic,
                        source,
                        data,
                        ..
                    } = m;
                    s.lock().unwrap().gossip.push((topic, source, data));
                }
                NetEvent::Frame { from, data } => s.lock().unwrap().frames.push((from, data)),
                NetEvent::Request(r) => {
                    let mut answer = b"pong:".to_vec();
                    answer.extend(&r.data);
                    r.respond(answer).await;
                }
                _ => {}
            }
        }
    });
    TestNode { handle, key, seen }
}

pub async fn listen_addr(n: &TestNode) -> Multiaddr {
    for _ in 0..100 {
        if let Some(a) = n.handle.listen_addrs().await.unwrap().first() {
            return a.clone().with(libp2p_p2p(n.handle.local_peer_id()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no listen address");
}

fn libp2p_p2p(p: PeerId) -> synchronicity_net::multiaddr::Protocol<'static> {
    synchronicity_net::multiaddr::Protocol::P2p(p)
}

/// Polls `f` every 50 ms until it holds, or panics after `secs` with `what`.
pub async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes, retrying while the mesh forms (publish fails with no subscribed peers).
pub async fn publish(n: &TestNode, topic: &str, data: &[u8]) {
    for _ in 0..200 {
        if n.handle.publish(topic, data.to_vec()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not publish on {topic}");
}
