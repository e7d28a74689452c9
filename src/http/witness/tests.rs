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
    let w = Arc::new(Witness::open(dir.path(), tc.committee.clone(), "w.example").unwrap());
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
