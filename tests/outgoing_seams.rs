//! The node's outgoing seams (`NodeConfig::outgoing_frames`, `outgoing_messages`) as a
//! test member uses them (the fault suite's Byzantine member is one:
//! examples/testnet_member/byzantine.rs). Four members in one process over loopback with
//! real consensus and stores; member 3 lies through its messages seam, one lie per request
//! (never reveals, reveals another outcome, commits twice), and its frames seam counts its
//! consensus broadcasts on their way out; the honest members' log records each lie.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use synchronicity::committee::ProtocolRules;
use synchronicity::consensus::wire::Wire;
use synchronicity::consensus::{HonestFrames, OutgoingFrames};
use synchronicity::crypto::BlsSecretKey;
use synchronicity::log::LookupKey;
use synchronicity::node::{self, NodeConfig, NodeHandle, OutgoingMessages};
use synchronicity::protocol::{
    Body, LogEntry, Misbehaviour, RevealedOutcome, Verdict, attestation_statement, outcome_digest,
};
use synchronicity::testing::{FixedBuilder, TestCommittee, free_loopback_ports, request};
use synchronicity_net::PeerId;

/// Member 3's lies, by request id.
#[derive(Debug)]
struct Lies {
    silent: [u8; 32],
    mismatch: [u8; 32],
    twice: [u8; 32],
    origin: String,
    bls: BlsSecretKey,
}

impl OutgoingMessages for Lies {
    fn publish(&self, body: Body, publish: &mut dyn FnMut(Body)) {
        let id = |r: &[u8]| <[u8; 32]>::try_from(r).ok();
        match body {
            Body::Commit { ref request_id, .. } if id(request_id) == Some(self.twice) => {
                let twin = Body::Commit {
                    request_id: request_id.clone(),
                    commitment: vec![7; 32],
                };
                publish(body);
                publish(twin);
            }
            Body::Reveal { ref request_id, .. } if id(request_id) == Some(self.silent) => {}
            Body::Reveal {
                request_id, salt, ..
            } if id(&request_id) == Some(self.mismatch) => {
                // Another well-formed outcome, validly attested.
                let outcome =
                    RevealedOutcome::Failure(synchronicity::protocol::FailureClass::Timeout);
                let digest = outcome_digest(&outcome).unwrap();
                let statement = attestation_statement(&self.origin, &self.mismatch, &digest);
                publish(Body::Reveal {
                    request_id,
                    outcome,
                    salt,
                    attestation: self.bls.sign(statement.as_bytes()).to_bytes().to_vec(),
                });
            }
            other => publish(other),
        }
    }
}

/// Member 3's frames: counted, then sent as a product node sends them.
#[derive(Debug, Default)]
struct Counted {
    votes: AtomicUsize,
    /// The peers of every broadcast.
    peers: Mutex<Vec<Vec<PeerId>>>,
}

impl OutgoingFrames for Counted {
    fn broadcast(&self, wire: &Wire, peers: &[PeerId], send: &mut dyn FnMut(PeerId, Vec<u8>)) {
        if matches!(wire, Wire::Vote(_)) {
            self.votes.fetch_add(1, Ordering::Relaxed);
        }
        self.peers.lock().unwrap().push(peers.to_vec());
        HonestFrames.broadcast(wire, peers, send);
    }
}

async fn entry_on_all(nodes: &[NodeHandle], key: &str, secs: u64) -> LogEntry {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let key = LookupKey::parse(key).expect("a lookup key");
    loop {
        let found: Vec<Option<Vec<u8>>> = nodes
            .iter()
            .map(|n| {
                let s = &n.shared().store;
                s.resolve(&key).unwrap().ok().map(|i| s.entry(i).unwrap())
            })
            .collect();
        if let Some(Some(first)) = found.first()
            && found.iter().all(|f| f.as_ref() == Some(first))
        {
            return LogEntry::decode(first).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key:?} not decided on every member in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_lies_through_its_outgoing_seams_and_the_log_records_it() {
    let rules = ProtocolRules {
        commit_window_secs: 30,
        commit_grace_secs: 2,
        reveal_window_secs: 4,
        ..ProtocolRules::default()
    };
    let tc = TestCommittee::with_ports(41, &free_loopback_ports(4)).with_rules(rules);
    let [silent, mismatch, twice] =
        ["silent", "mismatch", "twice"].map(|k| request(k, "1.0.0", "lock"));
    let counted = Arc::new(Counted::default());
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        tc.write_node_dir(i, dir.path());
        let mut config = NodeConfig::new(dir.path(), tc.committee.clone());
        config.idle_interval = Duration::from_millis(500);
        if i == 3 {
            config.outgoing_messages = Arc::new(Lies {
                silent: silent.id(),
                mismatch: mismatch.id(),
                twice: twice.id(),
                origin: tc.committee.origin().to_string(),
                bls: tc.bls[3].clone(),
            });
            config.outgoing_frames = counted.clone();
        }
        let builder = FixedBuilder {
            overrides: Default::default(),
            bins: Default::default(),
            delay: Duration::from_millis(100),
        };
        nodes.push(node::start(config, Arc::new(builder)).await.unwrap());
        dirs.push(dir);
    }
    for r in [silent, mismatch, twice] {
        nodes[0].submit(r).await.unwrap();
    }
    let honest = &nodes[..3];

    let e = entry_on_all(honest, "silent@1.0.0", 60).await;
    assert_eq!(
        e.verdict,
        Verdict::Reproduced,
        "three honest reveals reach t = 3"
    );
    assert_eq!(
        e.silent,
        vec![3],
        "decided at the reveal deadline without member 3"
    );
    assert!(e.misbehaviour.is_empty(), "{e:?}");

    let e = entry_on_all(honest, "mismatch@1.0.0", 60).await;
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::RevealMismatch)]);
    assert!(e.dissenters.is_empty() && e.silent.is_empty(), "{e:?}");

    let e = entry_on_all(honest, "twice@1.0.0", 60).await;
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::DoubleCommitment)]);
    assert!(e.dissenters.is_empty() && e.silent.is_empty(), "{e:?}");

    // Member 3's consensus frames went through its seam, each to the three others.
    assert!(
        counted.votes.load(Ordering::Relaxed) > 0,
        "no vote of member 3 seen"
    );
    let me = tc.identities[3].peer_id();
    for peers in counted.peers.lock().unwrap().iter() {
        assert_eq!(peers.len(), 3);
        assert!(!peers.contains(&me));
    }
    for n in nodes {
        n.shutdown().await;
    }
}
