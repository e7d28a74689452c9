//! The witness over real HTTP on loopback: malformed, foreign and stale POSTs are refused
//! by the cheap checks, with no pairing (the witness counts its verifications); a forged
//! signature costs one, and one address's pairings are rate limited.

use super::{VERIFY_BURST, Witness, serve};
use crate::http::server::tests::exchange;
use crate::log::{CosignedCheckpoint, SignedNote};
use crate::testing::TestCommittee;
use crate::witness::AddCheckpoint;
use std::net::SocketAddr;
use std::sync::Arc;

/// One POST /add-checkpoint over a new connection: (status, body).
async fn post(addr: SocketAddr, body: &str) -> (u16, String) {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(s, req.as_bytes()).await
}

fn body(old: u64, note: &str) -> String {
    AddCheckpoint {
        old,
        proof: vec![],
        note: note.to_string(),
    }
    .to_body()
}

/// `cp`'s note carrying `other`'s committee signature (a valid signature, of another
/// checkpoint: same shape, same key id; only the pairing can tell).
fn forged(cp: &CosignedCheckpoint, other: &CosignedCheckpoint) -> String {
    let mut note = SignedNote::parse(cp.note()).unwrap();
    note.signatures[0] = SignedNote::parse(other.note()).unwrap().signatures[0].clone();
    note.format()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_checks_come_before_any_pairing_and_pairings_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let tc = TestCommittee::new(4, 51);
    let w = Arc::new(
        Witness::open(dir.path(), tc.committee.trust_root().clone(), "w.example").unwrap(),
    );
    let addr = serve("127.0.0.1:0".parse().unwrap(), w.clone())
        .await
        .unwrap();
    let good = tc.cosign(5, [7; 32]);

    // Malformed body, malformed note, another log's origin, another committee's key (same
    // origin), a stale `old`: refused, each with its reason, and no pairing.
    let other_origin =
        TestCommittee::with_origin(4, 51, "example.org/another-log").cosign(5, [7; 32]);
    let other_key = TestCommittee::new(4, 52).cosign(5, [7; 32]);
    let cases = [
        ("not a body".to_string(), 400, "blank line"),
        (body(0, "no signatures\n"), 400, "not a signed note"),
        (body(0, other_origin.note()), 403, "origin"),
        (body(0, other_key.note()), 403, "key id"),
        (body(3, good.note()), 409, "0"),
    ];
    for (k, (b, status, why)) in cases.iter().enumerate() {
        let (got, text) = post(addr, b).await;
        assert_eq!(got, *status, "case {k}: {text}");
        assert!(text.contains(why), "case {k}: {text}");
        assert_eq!(text.lines().count(), 1, "case {k}: one line: {text}");
    }
    assert_eq!(w.verifications(), 0);
    assert_eq!(w.refused_early(), cases.len() as u64);
    assert!(!dir.path().join("checkpoint").exists(), "nothing written");

    // A forged signature of the right shape costs one pairing, and is refused.
    let (got, text) = post(addr, &body(0, &forged(&good, &tc.cosign(5, [9; 32])))).await;
    assert_eq!(got, 403, "{text}");
    assert_eq!(w.verifications(), 1);
    assert!(!dir.path().join("checkpoint").exists(), "nothing written");
    // The genuine one is cosigned.
    let (got, text) = post(addr, &body(0, good.note())).await;
    assert_eq!(got, 200, "{text}");
    assert_eq!(w.verifications(), 2);

    // One address asking for pairings (forged notes, right shape, right `old`) gets at most
    // its burst (plus the refill while it asks) before 429s, which cost no pairing.
    let next = forged(&tc.cosign(6, [8; 32]), &tc.cosign(6, [9; 32]));
    let before = w.verifications();
    let mut limited = 0;
    for _ in 0..(VERIFY_BURST as usize * 3) {
        let (got, text) = post(addr, &body(5, &next)).await;
        match got {
            403 => {}
            429 => {
                limited += 1;
                assert_eq!(text, "too many checkpoints to verify from your address");
            }
            _ => panic!("{got}: {text}"),
        }
    }
    let spent = w.verifications() - before;
    assert_eq!(spent + limited, VERIFY_BURST as u64 * 3);
    assert!(
        limited > 0 && w.rate_limited() == limited,
        "{limited} limited"
    );
    assert!(spent < VERIFY_BURST as u64 * 2, "{spent} pairings");
}

/// The witness across a committee change: the new committee's checkpoint is refused until
/// the witness's chain file holds the verified change, then cosigned (consistent with the
/// old committee's checkpoint it held); the retired committee cannot sign beyond its
/// handoff; a chain file that does not extend the one held changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_follows_the_group_across_a_change_it_verified() {
    use synchronicity_verify::test_chain::TestHistory;
    use synchronicity_verify::test_committee::TestCommittee as Members;
    use synchronicity_verify::tlog::merkle;

    let mut h = TestHistory::new(Members::new(4, 61));
    let dir = tempfile::tempdir().unwrap();
    let genesis = h.epochs[0].committee.clone();
    let w = Arc::new(Witness::open(dir.path(), genesis, "w.example").unwrap());
    let addr = serve("127.0.0.1:0".parse().unwrap(), w.clone())
        .await
        .unwrap();
    let root = |h: &TestHistory, size: u64| merkle::tree_hash(size, &h.log).unwrap();
    let cp0 = h.current().cosign(1, root(&h, 1));
    let (got, text) = post(addr, &body(0, cp0.note())).await;
    assert_eq!(got, 200, "{text}");

    // Epoch 1: a fifth member joins (log: build, change entry, build; handoff at size 2).
    let c = h.current();
    let mut members: Vec<_> = (0..4).map(|i| c.member(i)).collect();
    members.push(Members::newcomer(62, 0));
    let next = c.successor(members, |_| {});
    h.change(next);
    let with_proof = |h: &TestHistory, cp: &CosignedCheckpoint| {
        AddCheckpoint {
            old: 1,
            proof: merkle::prove_consistency(1, cp.checkpoint().size, &h.log).unwrap(),
            note: cp.note().to_string(),
        }
        .to_body()
    };
    let cp1 = h.current().cosign(3, root(&h, 3));
    let (got, text) = post(addr, &with_proof(&h, &cp1)).await;
    assert_eq!(got, 403, "{text}");
    assert!(text.contains("chain.toml is behind"), "{text}");

    // A chain file of another history (another change of the same genesis) is refused and
    // changes nothing; the real one is verified, and the new key is accepted.
    let mut fork = TestHistory::new(Members::new(4, 61));
    let c = fork.current();
    let shrunk = c.successor((0..4).map(|i| c.member(i)).collect(), |f| {
        f.protocol.reveal_window_secs = 99;
    });
    fork.change(shrunk);
    let fork_cp = fork.current().cosign(3, root(&fork, 3));
    std::fs::write(dir.path().join("chain.toml"), fork.chain_text()).unwrap();
    let (got, _) = post(addr, &with_proof(&fork, &fork_cp)).await;
    assert_eq!(
        got, 200,
        "the forked chain verifies from the genesis: it is held now"
    );
    // …so the real history's chain, which does not extend it, is refused and changes nothing.
    std::fs::write(dir.path().join("chain.toml"), h.chain_text()).unwrap();
    let (got, text) = post(addr, &with_proof(&h, &cp1)).await;
    assert_eq!(got, 403, "{text}");

    // A witness whose operator's timer has just written the chain with the handoff, before
    // any checkpoint of the new committee arrived: the old committee's checkpoint beyond its
    // handoff is refused (the file is read again before a checkpoint is judged, not only when
    // a key is unknown).
    let dir = tempfile::tempdir().unwrap();
    let w =
        Arc::new(Witness::open(dir.path(), h.epochs[0].committee.clone(), "w.example").unwrap());
    let addr = serve("127.0.0.1:0".parse().unwrap(), w.clone())
        .await
        .unwrap();
    let (got, text) = post(addr, &body(0, cp0.note())).await;
    assert_eq!(got, 200, "{text}");
    std::fs::write(dir.path().join("chain.toml"), h.chain_text()).unwrap();
    let retired = h.epochs[0].cosign(3, root(&h, 3));
    let (got, text) = post(addr, &with_proof(&h, &retired)).await;
    assert_eq!(got, 403, "{text}");
    assert!(text.contains("epoch 0"), "{text}");

    // A fresh witness with the real chain: the retired committee cannot sign beyond its
    // handoff; the new committee's checkpoint is cosigned.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.toml"), h.chain_text()).unwrap();
    let genesis = h.epochs[0].committee.clone();
    let w = Arc::new(Witness::open(dir.path(), genesis, "w.example").unwrap());
    let addr = serve("127.0.0.1:0".parse().unwrap(), w.clone())
        .await
        .unwrap();
    let (got, text) = post(addr, &body(0, cp0.note())).await;
    assert_eq!(got, 200, "{text}");
    let retired = h.epochs[0].cosign(3, root(&h, 3));
    let (got, text) = post(addr, &with_proof(&h, &retired)).await;
    assert_eq!(got, 403, "{text}");
    assert!(text.contains("epoch 0"), "{text}");
    let (got, text) = post(addr, &with_proof(&h, &cp1)).await;
    assert_eq!(got, 200, "{text}");
}
