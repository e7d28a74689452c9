//! The Byzantine member's floods, run beside its node on the node's network handle: junk
//! and validly signed useless messages on the messages topic, cosignature partials for
//! sizes and roots that do not exist, consensus streams opened and filled with garbage plus
//! sync requests, and build requests by the thousand.

use std::time::Duration;

use synchronicity::log::Checkpoint;
use synchronicity::node::wire::{COSIGN_TOPIC, Cosignature, MESSAGES_TOPIC, encode};
use synchronicity::protocol::{Body, SignedMessage};
use synchronicity_net::{NetworkHandle, RequestKind};

use super::byzantine::Keys;

/// Which floods run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Floods {
    /// Junk and useless signed messages on the messages topic.
    pub(crate) gossip: bool,
    /// Cosignature partials for sizes and roots that do not exist, and junk.
    pub(crate) cosign: bool,
    /// Consensus streams filled with garbage; sync requests.
    pub(crate) streams: bool,
    /// Thousands of build requests.
    pub(crate) requests: bool,
}

impl Floods {
    /// True if any flood runs.
    pub(crate) fn any(&self) -> bool {
        self.gossip || self.cosign || self.streams || self.requests
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    let _ = getrandom::fill(&mut b);
    b
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes(8).try_into().unwrap_or([0; 8]))
}

impl Keys {
    /// Signs `body` as this member and gossips it on the messages topic.
    async fn publish_signed(&self, net: &NetworkHandle, body: Body) {
        let msg = SignedMessage::sign(
            body,
            self.me,
            &self.identity,
            self.committee.signing_domain(),
        );
        let _ = net.publish(MESSAGES_TOPIC, msg.to_cbor()).await;
    }

    /// Our validly signed cosignature of (size, root): BLS and Ed25519 over the checkpoint
    /// body, as `Cosignature` documents.
    fn cosign(&self, size: u64, root: [u8; 32]) -> Cosignature {
        let body = Checkpoint::new(self.committee.origin(), size, root).to_body();
        Cosignature {
            size,
            root: root.to_vec(),
            signature: self.bls.sign(body.as_bytes()).to_bytes().to_vec(),
            ed25519: self.identity.sign(body.as_bytes()).to_vec(),
        }
    }
}

/// Runs `floods` every 10 ms until the process exits.
pub(crate) async fn run(net: NetworkHandle, keys: Keys, floods: Floods) {
    tracing::warn!(?floods, "BYZANTINE member: flooding the group");
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        if floods.gossip {
            // Undecodable bytes, then a validly signed commitment for a request nobody
            // asked for (it passes the envelope check and must be bounded by the pool).
            let _ = net
                .publish(MESSAGES_TOPIC, random_bytes(1 + (n as usize % 4096)))
                .await;
            keys.publish_signed(
                &net,
                Body::Commit {
                    request_id: random_bytes(32),
                    commitment: random_bytes(32),
                },
            )
            .await;
        }
        if floods.cosign {
            // A validly signed partial for a size far ahead with a random root, and junk.
            let size = 1_000_000 + random_u64() % 1_000_000;
            let mut root = [0u8; 32];
            root.copy_from_slice(&random_bytes(32));
            let _ = net
                .publish(COSIGN_TOPIC, encode(&keys.cosign(size, root)))
                .await;
            let _ = net.publish(COSIGN_TOPIC, random_bytes(300)).await;
        }
        if floods.streams {
            flood_streams(&net, &keys, n);
        }
        if floods.requests && n <= 4000 {
            // Valid requests (the test builder's pins), each a new one: the group orders
            // and builds them; the pool and blocks must stay bounded while it does. Pinned
            // to the committee's toolchain and target (others are invalid, not flood).
            let mut req = synchronicity::testing::request(&format!("flood-{n}"), "1.0.0", "lock");
            req.request
                .toolchain
                .clone_from(&keys.committee.build().toolchain);
            req.request
                .target
                .clone_from(&keys.committee.build().target);
            keys.publish_signed(&net, Body::Request(req)).await;
        }
    }
}

/// Tick `n` of the stream flood: garbage frames on every peer's direct stream (a full
/// queue drops them), every 50th tick a fresh raw stream written with a frame header that
/// lies, every 5th a sync request of junk.
fn flood_streams(net: &NetworkHandle, keys: &Keys, n: u64) {
    for p in &keys.peers {
        let _ = net.send_frame(*p, random_bytes(2048));
        if n.is_multiple_of(50) {
            let net = net.clone();
            let p = *p;
            tokio::spawn(async move {
                use futures::AsyncWriteExt;
                if let Ok(mut s) = net.raw_consensus_stream(p).await {
                    let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
                    let _ = s.write_all(&random_bytes(64 * 1024)).await;
                    let _ = s.close().await;
                }
            });
        }
        if n.is_multiple_of(5) {
            let net = net.clone();
            let p = *p;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    net.request(p, RequestKind::Sync, random_bytes(512)),
                )
                .await;
            });
        }
    }
}
