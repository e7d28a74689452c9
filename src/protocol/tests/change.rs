//! A committee change as a decided transaction: approvals in blocks, the threshold that
//! schedules it, requests that wait, the open rounds that drain, the entry that ends the
//! epoch; and every approval the rules refuse.

use super::*;
use crate::committee::Committee;
use synchronicity_verify::epoch::{ChangeEntry, approval_message};

/// The next committee file: the same members, with `edit` applied.
fn next_text(net: &Net, edit: impl FnOnce(&mut crate::committee::CommitteeFile)) -> String {
    let c = &net.tc.committee;
    let mut f = c.to_file();
    f.epoch = c.epoch() + 1;
    f.previous = Some(hex::encode(c.digest()));
    edit(&mut f);
    Committee::from_file(f).unwrap().to_toml()
}

/// Member `m`'s approval of `text` (signed over the statement for the text's own digest).
fn approve(net: &Net, m: usize, text: &str) -> SignedMessage {
    let next = synchronicity_verify::Committee::from_toml(text).unwrap();
    let st = approval_message(&net.tc.committee, &next, text);
    net.msg(
        m,
        Body::Approve {
            committee: text.into(),
            signature: net.tc.bls[m].sign(st.as_bytes()).to_bytes().to_vec(),
        },
    )
}

#[test]
fn t_approvals_schedule_a_change_that_ends_the_epoch_once_no_round_is_open() {
    let mut net = Net::new();
    let text = next_text(&net, |f| f.protocol.reveal_window_secs = 300);
    let id = net.open();
    // Two approvals of four (t = 3): pending; requests are still ordered.
    net.apply(1000, vec![approve(&net, 0, &text), approve(&net, 1, &text)])
        .unwrap();
    assert!(!net.state.change().is_scheduled());
    assert_eq!(net.state.change().approvals()[0].1, vec![0, 1]);
    let other = crate::testing::request("other", "1.0.0", "version = 4\n");
    net.block(1000, vec![net.msg(1, Body::Request(other.clone()))])
        .unwrap();
    // The third schedules it at this height; the open rounds keep the epoch going.
    let applied = net.apply(1000, vec![approve(&net, 2, &text)]).unwrap();
    let scheduled_at = net.height;
    assert_eq!(applied.change, None);
    assert!(net.state.change().is_scheduled());
    assert!(
        applied
            .changed_rounds
            .iter()
            .any(|(i, _)| *i == CHANGE_ROW_ID),
        "the change state is stored with the height"
    );
    // Requests now wait: refused in a block and left out of a proposal.
    let third = crate::testing::request("third", "1.0.0", "version = 4\n");
    let late = net.msg(2, Body::Request(third));
    let size = late.to_cbor().len();
    let now = net.time + 1000;
    assert!(
        net.state
            .select(&[(&late, size)], now, net.env())
            .is_empty()
    );
    let before = net.state.clone();
    assert!(matches!(
        net.block(1000, vec![late]),
        Err(BlockError::NotAllowed { .. })
    ));
    assert_eq!(net.state.open_count(), before.open_count());
    // And so do approvals: the change is decided.
    assert!(matches!(
        net.block(1000, vec![approve(&net, 3, &text)]),
        Err(BlockError::NotAllowed { .. })
    ));
    // The open rounds run to their decision under this epoch's rules; the block that
    // decides the last one ends the epoch with the change entry.
    let a = manifest(1);
    for rid in [id, other.id()] {
        let commits = (0..4).map(|m| net.commit(m, &rid, &a)).collect();
        let applied = net.apply(1000, commits).unwrap();
        assert_eq!(applied.change, None, "a round is still open");
    }
    let reveals: Vec<_> = [id, other.id()]
        .iter()
        .flat_map(|rid| (0..4).map(|m| net.reveal(m, rid, &a)).collect::<Vec<_>>())
        .collect();
    let applied = net.apply(1000, reveals).unwrap();
    assert_eq!(
        applied.decided.len(),
        2,
        "both rounds decided in the last block"
    );
    let entry: ChangeEntry = applied.change.expect("the epoch ends here");
    assert_eq!(entry.height, scheduled_at);
    assert_eq!(entry.committee, text);
    // The entry is a valid change for any verifier: the next committee, approved by t.
    let next = entry.verify(&net.tc.committee).unwrap();
    assert_eq!((next.epoch(), next.protocol().reveal_window_secs), (1, 300));
    assert_eq!(
        ChangeEntry::decode(&entry.to_cbor()).unwrap(),
        entry,
        "one encoding"
    );
    assert!(
        applied.changed_rounds.contains(&(CHANGE_ROW_ID, None)),
        "the next epoch starts with no change row"
    );
    // This state applies no more blocks.
    assert!(net.state.epoch_ended());
    assert!(matches!(
        net.block(1000, vec![]),
        Err(BlockError::EpochEnded { .. })
    ));
}

#[test]
fn with_no_round_open_the_change_ends_the_epoch_at_the_block_that_schedules_it() {
    let mut net = Net::new();
    let text = next_text(&net, |f| f.threshold = 4);
    let msgs = (0..3).map(|m| approve(&net, m, &text)).collect();
    let applied = net.apply(1000, msgs).unwrap();
    let entry = applied.change.expect("nothing open: ends at once");
    assert_eq!(entry.height, net.height);
    assert_eq!(entry.verify(&net.tc.committee).unwrap().threshold(), 4);
}

#[test]
fn approvals_the_rules_refuse() {
    let mut net = Net::new();
    let text = next_text(&net, |f| f.protocol.commit_window_secs = 900);
    let refused = |net: &mut Net, m: SignedMessage| {
        let before = net.state.change().clone();
        let r = net.block(1000, vec![m]);
        assert!(matches!(r, Err(BlockError::NotAllowed { .. })), "{r:?}");
        assert_eq!(
            net.state.change(),
            &before,
            "a refused approval changes nothing"
        );
    };
    // A signature over another statement.
    let mut bad = approve(&net, 0, &text);
    if let Body::Approve { signature, .. } = &mut bad.body {
        *signature = net.tc.bls[0].sign(b"something else").to_bytes().to_vec();
    }
    let bad = net.msg(0, bad.body);
    refused(&mut net, bad);
    // Another member's BLS key signing as member 0.
    let mut stolen = approve(&net, 1, &text);
    stolen = net.msg(0, stolen.body);
    refused(&mut net, stolen);
    // A proposal that does not follow this committee: another previous digest, a skipped
    // epoch, garbage.
    let wrong = next_text(&net, |f| f.previous = Some("ab".repeat(32)));
    let m = approve(&net, 0, &wrong);
    refused(&mut net, m);
    let skip = next_text(&net, |f| f.epoch = 2);
    let m = approve(&net, 0, &skip);
    refused(&mut net, m);
    let garbage = net.msg(
        0,
        Body::Approve {
            committee: "origin = 1".into(),
            signature: vec![0; 96],
        },
    );
    refused(&mut net, garbage);
    // Two approvals of one member in one block.
    let rival0 = next_text(&net, |f| f.protocol.commit_window_secs = 1500);
    let (m1, m2) = (approve(&net, 1, &text), approve(&net, 1, &rival0));
    let r = net.block(1000, vec![m1, m2]);
    assert!(
        matches!(r, Err(BlockError::NotAllowed { index: 1, .. })),
        "{r:?}"
    );
    // The same approval twice.
    net.block(1000, vec![approve(&net, 0, &text)]).unwrap();
    let m = approve(&net, 0, &text);
    refused(&mut net, m);
    // An approval is final: the member cannot approve another proposal of this epoch (a
    // withdrawn approval could be replayed by any proposer).
    let rival = next_text(&net, |f| f.protocol.commit_window_secs = 1200);
    let m = approve(&net, 0, &rival);
    refused(&mut net, m);
    // A proposal that adds a member whose key is not proven (its PoP is another key's).
    let stranger = crate::testing::TestCommittee::new(2, 99);
    let mut newcomer = stranger.committee.trust_root().members()[0].to_entry();
    newcomer.name = "joiner".into();
    newcomer.bls_proof_of_possession = stranger.committee.trust_root().members()[1]
        .to_entry()
        .bls_proof_of_possession;
    let unproven = {
        let c = &net.tc.committee;
        let mut f = c.to_file();
        f.epoch = c.epoch() + 1;
        f.previous = Some(hex::encode(c.digest()));
        f.members.push(newcomer);
        f.threshold = 4;
        toml::to_string(&f).unwrap()
    };
    let m = net.msg(
        1,
        Body::Approve {
            committee: unproven,
            signature: vec![0; 96],
        },
    );
    refused(&mut net, m);
    // Competing proposals: the first to reach t wins.
    net.block(
        1000,
        vec![approve(&net, 1, &rival), approve(&net, 2, &rival)],
    )
    .unwrap();
    let held = net.state.change().approvals();
    assert_eq!(held.len(), 2, "{held:?}");
    let applied = net.apply(1000, vec![approve(&net, 3, &rival)]).unwrap();
    let entry = applied.change.expect("rival reached t = 3 first");
    assert_eq!(entry.committee, rival);
    assert!(net.state.epoch_ended());
}

#[test]
fn the_change_under_way_is_restored_from_the_stored_rows() {
    let mut net = Net::new();
    let text = next_text(&net, |f| f.protocol.reveal_window_secs = 60);
    net.open();
    net.block(1000, vec![approve(&net, 0, &text), approve(&net, 3, &text)])
        .unwrap();
    let restored =
        ProtocolState::from_snapshot(PARAMS, net.state.last_block(), net.rows.clone()).unwrap();
    assert_eq!(restored.change(), net.state.change());
    assert_eq!(restored.open_count(), 1, "the change row is not a round");
    // A cut row is refused with its name.
    let mut rows = net.rows.clone();
    rows.insert(CHANGE_ROW_ID, vec![0xff]);
    let err = ProtocolState::from_snapshot(PARAMS, None, rows).unwrap_err();
    assert!(err.contains("committee change row"), "{err}");
}

#[test]
fn a_change_that_adds_a_member_is_decided_like_any_other() {
    let mut net = Net::new();
    let stranger = crate::testing::TestCommittee::new(1, 99);
    let mut newcomer = stranger.committee.trust_root().members()[0].to_entry();
    newcomer.name = "joiner".into();
    let joiner = next_text(&net, |f| {
        f.members.push(newcomer);
        f.threshold = 4;
    });
    net.block(
        1000,
        vec![approve(&net, 0, &joiner), approve(&net, 1, &joiner)],
    )
    .unwrap();
    // Nothing is open: the t-th approval ends the epoch at once, naming five members.
    let applied = net.apply(1000, vec![approve(&net, 3, &joiner)]).unwrap();
    let entry = applied.change.expect("t = 3 approvals of four");
    assert_eq!(entry.committee, joiner);
    let next = entry.verify(&net.tc.committee).unwrap();
    assert_eq!(next.len(), 5);
    assert!(
        next.index_of_peer_id(&stranger.committee.members()[0].peer_id.to_base58())
            .is_some()
    );
}
