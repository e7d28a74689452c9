//! The node's outgoing seams (`NodeConfig::outgoing_frames`, `outgoing_messages`) as a
//! test member uses them (the fault suite's Byzantine member is one:
//! examples/testnet_member/byzantine.rs). Four members in one process over loopback with
//! real consensus and stores; member 3 lies through its messages seam, one lie per request
//! (never reveals, reveals another outcome, commits twice), and its frames seam counts its
//! consensus broadcasts on their way out; the honest members' log records each lie.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::in_process::{entry_on_all, start_member_with};
use support::rules::windows;
use synchronicity::consensus::wire::Wire;
use synchronicity::consensus::{HonestFrames, OutgoingFrames};
use synchronicity::crypto::BlsSecretKey;
use synchronicity::node::{NodeHandle, OutgoingMessages};
use synchronicity::protocol::{
    Body, Misbehaviour, RevealedOutcome, Verdict, attestation_statement, outcome_digest,
};
use synchronicity::testing::{TestCommittee, free_loopback_ports, request};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_lies_through_its_outgoing_seams_and_the_log_records_it() {
    let tc = TestCommittee::with_ports(41, &free_loopback_ports(4)).with_rules(windows(30, 2, 4));
    let [silent, mismatch, twice] =
        ["silent", "mismatch", "twice"].map(|k| request(k, "1.0.0", "lock"));
    let counted = Arc::new(Counted::default());
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..4 {
        let (node, dir) = start_member_with(&tc, i, HashMap::new(), |config| {
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
        })
        .await;
        nodes.push(node);
        dirs.push(dir);
    }
    for r in [silent, mismatch, twice] {
        nodes[0].submit(r).await.unwrap();
    }
    let honest: Vec<&NodeHandle> = nodes[..3].iter().collect();

    let e = entry_on_all(&honest, "silent@1.0.0", 60).await;
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

    let e = entry_on_all(&honest, "mismatch@1.0.0", 60).await;
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::RevealMismatch)]);
    assert!(e.dissenters.is_empty() && e.silent.is_empty(), "{e:?}");

    let e = entry_on_all(&honest, "twice@1.0.0", 60).await;
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
