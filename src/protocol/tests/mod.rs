//! The round as a function of the decided chain: every verdict, deadline and misbehaviour case
//! of the commit-reveal protocol, with real keys and signatures.

use super::*;
use crate::builder::Manifest;
use crate::crypto::ThresholdSignature;
use crate::request::PinnedRequest;
use crate::testing::TestCommittee;

const PARAMS: ProtocolParams = ProtocolParams {
    commit_window_ms: 60_000,
    reveal_window_ms: 10_000,
    commit_grace_ms: 5_000,
    max_block_bytes: 3 * 1024 * 1024,
    max_block_messages: 100,
    max_clock_drift_ms: 2_000,
    max_attempts: 3,
    attempt_spacing_ms: 30_000,
    max_open_requests_per_member: 3,
    max_requests_per_block: usize::MAX,
};

fn request() -> PinnedRequest {
    crate::testing::request("itoa", "1.0.15", "version = 4\n")
}

fn manifest(tag: u8) -> String {
    let mut m = Manifest::default();
    m.insert("x86_64-unknown-linux-gnu/release/libitoa.rlib", [tag; 32]);
    m.to_text()
}

struct Net {
    tc: TestCommittee,
    state: ProtocolState,
    decided: std::collections::HashMap<[u8; 32], (bool, u64)>,
    envelopes: EnvelopeCache,
    /// Every open-round row the applied blocks wrote, as a node's store keeps them.
    rows: std::collections::BTreeMap<[u8; 32], Vec<u8>>,
    height: u64,
    time: u64,
}

impl Net {
    fn new() -> Self {
        Self {
            tc: TestCommittee::new(4, 7),
            state: ProtocolState::new(PARAMS),
            decided: Default::default(),
            envelopes: EnvelopeCache::default(),
            rows: Default::default(),
            height: 0,
            time: 1_000_000,
        }
    }
    fn msg(&self, signer: usize, body: Body) -> SignedMessage {
        SignedMessage::sign(
            body,
            signer as u32,
            &self.tc.identities[signer],
            self.tc.committee.signing_domain(),
        )
    }
    fn salt(member: usize) -> [u8; 32] {
        [member as u8 + 40; 32]
    }
    fn commit(&self, member: usize, id: &[u8; 32], text: &str) -> SignedMessage {
        let digest = Manifest::parse(text).unwrap().digest();
        let peer = self.tc.committee.members()[member].peer_id;
        let c = commitment(id, &digest, &Self::salt(member), &peer);
        self.msg(
            member,
            Body::Commit {
                request_id: id.to_vec(),
                commitment: c.to_vec(),
            },
        )
    }
    fn reveal(&self, member: usize, id: &[u8; 32], text: &str) -> SignedMessage {
        let digest = Manifest::parse(text).unwrap().digest();
        let statement = attestation_statement(self.tc.committee.origin(), id, &digest);
        let sig = self.tc.bls[member].sign(statement.as_bytes());
        self.msg(
            member,
            Body::Reveal {
                request_id: id.to_vec(),
                outcome: RevealedOutcome::Manifest(text.into()),
                salt: Self::salt(member).to_vec(),
                attestation: sig.to_bytes().to_vec(),
            },
        )
    }
    /// Applies a block `dt` ms after the previous one; keeps the rows a node would store
    /// and the decided requests.
    fn apply(&mut self, dt: u64, messages: Vec<SignedMessage>) -> Result<Applied, BlockError> {
        self.height += 1;
        self.time += dt;
        let b = Block {
            height: self.height,
            time_ms: self.time,
            messages,
        };
        let env = Env {
            committee: &self.tc.committee,
            decided: &self.decided,
            envelopes: &self.envelopes,
        };
        let applied = self.state.apply_block(&b, env)?;
        for (id, row) in &applied.changed_rounds {
            match row {
                Some(r) => self.rows.insert(*id, r.clone()),
                None => self.rows.remove(id),
            };
        }
        let time = self.time;
        self.decided.extend(applied.decided.iter().map(|d| {
            (
                d.entry.request.id(),
                (d.entry.verdict == Verdict::Reproduced, time),
            )
        }));
        Ok(applied)
    }
    /// Applies a block `dt` ms after the previous one: its entries and duties.
    fn block(
        &mut self,
        dt: u64,
        messages: Vec<SignedMessage>,
    ) -> Result<(Vec<LogEntry>, Vec<Duty>), BlockError> {
        let applied = self.apply(dt, messages)?;
        let entries = applied.decided.into_iter().map(|d| d.entry).collect();
        Ok((entries, applied.duties))
    }
    fn env(&self) -> Env<'_> {
        Env {
            committee: &self.tc.committee,
            decided: &self.decided,
            envelopes: &self.envelopes,
        }
    }
    fn open(&mut self) -> [u8; 32] {
        let req = request();
        let (_, duties) = self
            .block(1000, vec![self.msg(0, Body::Request(req.clone()))])
            .unwrap();
        assert_eq!(duties, vec![Duty::Build(req.id())]);
        req.id()
    }
    /// Everyone commits to `texts[i]`, then reveals the members in `revealers`.
    fn round(&mut self, texts: [&str; 4], revealers: &[usize]) -> Vec<LogEntry> {
        let id = self.open();
        let commits = (0..4).map(|m| self.commit(m, &id, texts[m])).collect();
        let (_, duties) = self.block(1000, commits).unwrap();
        assert_eq!(
            duties,
            vec![Duty::Reveal(id)],
            "all committed: reveal phase"
        );
        let reveals = revealers
            .iter()
            .map(|&m| self.reveal(m, &id, texts[m]))
            .collect();
        self.block(1000, reveals).unwrap().0
    }
}

fn attested_by(net: &Net, e: &LogEntry) -> Vec<usize> {
    let ts = ThresholdSignature::from_bytes(&e.attestation, 4).unwrap();
    let digest: [u8; 32] = e.digest.as_slice().try_into().unwrap();
    let statement = attestation_statement(net.tc.committee.origin(), &e.request.id(), &digest);
    net.tc
        .committee
        .verify_threshold(statement.as_bytes(), &ts)
        .unwrap();
    ts.signers.iter().collect()
}

#[test]
fn all_agree_reproduced_4_of_4() {
    let mut net = Net::new();
    let a = manifest(1);
    let entries = net.round([&a, &a, &a, &a], &[0, 1, 2, 3]);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(e.digest, crate::crypto::sha256(a.as_bytes()));
    assert_eq!(attested_by(&net, e), vec![0, 1, 2, 3]);
    assert!(e.dissenters.is_empty() && e.silent.is_empty() && e.misbehaviour.is_empty());
    assert!(!net.state.is_open(&e.request.id()) && net.decided.contains_key(&e.request.id()));
    assert_eq!(
        net.state.open_count(),
        0,
        "the state holds open rounds only"
    );
}

#[test]
fn one_dissenter_reproduced_3_of_4_and_named() {
    let mut net = Net::new();
    let (a, b) = (manifest(1), manifest(2));
    let e = net.round([&a, &a, &b, &a], &[0, 1, 2, 3]).remove(0);
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(attested_by(&net, &e), vec![0, 1, 3]);
    assert_eq!(
        e.dissenters,
        vec![Dissent {
            member: 2,
            digest: Manifest::parse(&b).unwrap().digest().to_vec()
        }]
    );
}

#[test]
fn two_and_two_is_not_reproduced() {
    let mut net = Net::new();
    let (a, b) = (manifest(1), manifest(2));
    let e = net.round([&a, &b, &a, &b], &[0, 1, 2, 3]).remove(0);
    assert_eq!(e.verdict, Verdict::NotReproduced);
    assert!(e.attestation.is_empty() && e.digest.is_empty());
    assert_eq!(e.dissenters.len(), 4);
}

#[test]
fn a_silent_member_is_decided_at_the_reveal_deadline() {
    let mut net = Net::new();
    let a = manifest(1);
    assert!(
        net.round([&a, &a, &a, &a], &[0, 1, 2]).is_empty(),
        "waits for the fourth reveal"
    );
    assert!(net.state.next_deadline_ms(&net.tc.committee).is_some());
    let (entries, _) = net.block(PARAMS.reveal_window_ms - 2000, vec![]).unwrap();
    assert!(entries.is_empty(), "before the deadline");
    let (mut entries, _) = net.block(2000, vec![]).unwrap();
    let e = entries.remove(0);
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(e.silent, vec![3]);
    assert_eq!(attested_by(&net, &e), vec![0, 1, 2]);
}

#[test]
fn a_reveal_that_does_not_open_its_commitment_is_misbehaviour() {
    let mut net = Net::new();
    let (a, b) = (manifest(1), manifest(2));
    let id = net.open();
    let commits = (0..4).map(|m| net.commit(m, &id, &a)).collect();
    net.block(1000, commits).unwrap();
    // Member 3 committed to `a` but reveals `b`.
    let reveals = vec![
        net.reveal(0, &id, &a),
        net.reveal(1, &id, &a),
        net.reveal(2, &id, &a),
        net.reveal(3, &id, &b),
    ];
    let e = net.block(1000, reveals).unwrap().0.remove(0);
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::RevealMismatch)]);
    assert_eq!(attested_by(&net, &e), vec![0, 1, 2]);
    assert!(
        e.dissenters.is_empty(),
        "a mismatched reveal does not count as a dissent"
    );
}

#[test]
fn a_member_that_did_not_build_cannot_copy_the_others() {
    let mut net = Net::new();
    let a = manifest(1);
    let id = net.open();
    // Member 3 commits blindly (it has not built), then sees the reveals and copies `a`.
    let blind = {
        let peer = net.tc.committee.members()[3].peer_id;
        let c = commitment(&id, &[0; 32], &Net::salt(3), &peer);
        net.msg(
            3,
            Body::Commit {
                request_id: id.to_vec(),
                commitment: c.to_vec(),
            },
        )
    };
    let commits = vec![
        net.commit(0, &id, &a),
        net.commit(1, &id, &a),
        net.commit(2, &id, &a),
        blind,
    ];
    net.block(1000, commits).unwrap();
    let reveals = vec![
        net.reveal(0, &id, &a),
        net.reveal(1, &id, &a),
        net.reveal(2, &id, &a),
        net.reveal(3, &id, &a),
    ];
    let e = net.block(1000, reveals).unwrap().0.remove(0);
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::RevealMismatch)]);
    assert_eq!(attested_by(&net, &e), vec![0, 1, 2]);
    // And a member that never committed cannot reveal at all.
    let mut net = Net::new();
    let id = net.open();
    let commits = (0..3).map(|m| net.commit(m, &id, &a)).collect();
    net.block(1000, commits).unwrap();
    net.block(PARAMS.commit_window_ms, vec![]).unwrap();
    let r = net.block(1000, vec![net.reveal(3, &id, &a)]);
    assert!(
        matches!(
            r,
            Err(BlockError::NotAllowed {
                reason: "reveal without a commitment",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn invalid_blocks_are_refused_and_change_nothing() {
    let mut net = Net::new();
    let a = manifest(1);
    let id = net.open();
    // A reveal before the reveal phase.
    let r = net.block(1000, vec![net.commit(0, &id, &a), net.reveal(0, &id, &a)]);
    assert!(
        matches!(r, Err(BlockError::NotAllowed { index: 1, .. })),
        "{r:?}"
    );
    // Nothing of that block was applied: member 0 can still commit.
    net.block(1000, vec![net.commit(0, &id, &a)]).unwrap();
    // A non-member's message and a forged signature never enter.
    let outsider = TestCommittee::new(5, 99);
    let foreign = SignedMessage::sign(
        Body::Request(request()),
        4,
        &outsider.identities[4],
        net.tc.committee.signing_domain(),
    );
    assert!(matches!(
        net.block(1000, vec![foreign]),
        Err(BlockError::Message {
            source: MessageError::NotMember(4),
            ..
        })
    ));
    let mut forged = net.commit(1, &id, &a);
    forged.signer = 2;
    assert!(matches!(
        net.block(1000, vec![forged]),
        Err(BlockError::Message {
            source: MessageError::BadSignature(2),
            ..
        })
    ));
    // Another group's chain id.
    let other_chain = SignedMessage::sign(
        Body::Request(request()),
        1,
        &net.tc.identities[1],
        "another-chain",
    );
    assert!(net.block(1000, vec![other_chain]).is_err());
    // Duplicate request, duplicate commitment.
    assert!(
        net.block(1000, vec![net.msg(1, Body::Request(request()))])
            .is_err()
    );
    assert!(net.block(1000, vec![net.commit(0, &id, &a)]).is_err());
    // A commitment after the commit deadline.
    net.block(PARAMS.commit_window_ms, vec![]).unwrap();
    assert!(matches!(
        net.block(1000, vec![net.commit(1, &id, &a)]),
        Err(BlockError::NotAllowed { .. })
    ));
    // Going back in height or time.
    let back = Block {
        height: 1,
        time_ms: net.time + 10,
        messages: vec![],
    };
    let env = net.env();
    assert!(matches!(
        net.state.clone().apply_block(&back, env),
        Err(BlockError::OutOfOrder { .. })
    ));
}

#[test]
fn an_equivocator_is_excluded_from_counts_and_attesters() {
    let mut net = Net::new();
    let (a, b) = (manifest(1), manifest(2));
    let id = net.open();
    net.block(1000, vec![net.commit(0, &id, &a), net.commit(0, &id, &b)])
        .unwrap();
    let commits = (1..4).map(|m| net.commit(m, &id, &a)).collect();
    let (_, duties) = net.block(1000, commits).unwrap();
    assert!(
        duties.is_empty(),
        "four committed, one of them twice: not 'all n', so the grace runs"
    );
    let (_, duties) = net.block(PARAMS.commit_grace_ms, vec![]).unwrap();
    assert_eq!(
        duties,
        vec![Duty::Reveal(id)],
        "t counted commitments + grace"
    );
    // Its reveal is refused; the three others decide at once (every counted committer).
    assert!(matches!(
        net.state.check(&net.reveal(0, &id, &a), net.time + 1, net.env()),
        Err(r) if r.contains("equivocator")
    ));
    let reveals = (1..4).map(|m| net.reveal(m, &id, &a)).collect();
    let e = net.block(1000, reveals).unwrap().0.remove(0);
    assert_eq!(e.misbehaviour, vec![(0, Misbehaviour::DoubleCommitment)]);
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(attested_by(&net, &e), vec![1, 2, 3]);
    assert!(
        e.silent.is_empty(),
        "the equivocator is listed once, as misbehaving"
    );
}

/// With one member down, the commit phase ends `grace` after the block of the t-th
/// commitment, grace = max(the committee's least grace, the time the fastest t took);
/// never later than the commit window.
#[test]
fn the_commit_phase_ends_after_the_grace_once_t_committed() {
    for (build_ms, grace) in [(1_000, PARAMS.commit_grace_ms), (20_000, 20_000)] {
        let mut net = Net::new();
        let a = manifest(1);
        let id = net.open();
        let commits = (0..3).map(|m| net.commit(m, &id, &a)).collect();
        let (_, duties) = net.block(build_ms, commits).unwrap();
        assert!(duties.is_empty());
        let st = net.state.round_status(&id, &net.tc.committee).unwrap();
        assert_eq!(st.deadline_ms, net.time + grace, "build {build_ms} ms");
        let (_, duties) = net.block(grace - 1, vec![]).unwrap();
        assert!(duties.is_empty(), "not before the grace");
        let (_, duties) = net.block(1, vec![]).unwrap();
        assert_eq!(duties, vec![Duty::Reveal(id)]);
    }
    // The fastest t took most of the window: the window still bounds it.
    let mut net = Net::new();
    let a = manifest(1);
    let id = net.open();
    let commits = (0..3).map(|m| net.commit(m, &id, &a)).collect();
    net.block(PARAMS.commit_window_ms - 10_000, commits)
        .unwrap();
    let st = net.state.round_status(&id, &net.tc.committee).unwrap();
    assert_eq!(st.deadline_ms, st.opened_ms + PARAMS.commit_window_ms);
}

/// The rows a block changes rebuild the same state (what a restarted node loads).
#[test]
fn stored_rows_restore_the_open_rounds() {
    let mut net = Net::new();
    let a = manifest(1);
    let other = crate::testing::request("other", "1.0.0", "l");
    let id = other.id();
    net.block(1000, vec![net.msg(1, Body::Request(other))])
        .unwrap();
    let commits = (0..3).map(|m| net.commit(m, &id, &a)).collect();
    net.block(1000, commits).unwrap();
    net.round([&a, &a, &a, &a], &[0, 1, 2, 3]);
    assert_eq!(
        net.rows.len(),
        1,
        "the first round is open, the second decided"
    );
    let restored =
        ProtocolState::from_snapshot(PARAMS, net.state.last_block(), net.rows.clone()).unwrap();
    let c = &net.tc.committee;
    assert_eq!(
        restored.round_status(&id, c),
        net.state.round_status(&id, c)
    );
    assert_eq!(restored.last_time_ms(), net.state.last_time_ms());
    // A row under another id is refused.
    let wrong = vec![([9u8; 32], net.rows[&id].clone())];
    assert!(ProtocolState::from_snapshot(PARAMS, None, wrong).is_err());
}

#[test]
fn a_block_beyond_the_committee_limits_is_refused() {
    let mut net = Net::new();
    let msgs: Vec<SignedMessage> = (0..=PARAMS.max_block_messages)
        .map(|i| {
            net.msg(
                i % 4,
                Body::Request(crate::testing::request(&format!("c{i}"), "1.0.0", "l")),
            )
        })
        .collect();
    assert!(matches!(
        net.block(1000, msgs),
        Err(BlockError::TooLarge {
            what: "max_block_messages",
            ..
        })
    ));
}

/// Each envelope is verified once: applying a block whose messages were checked before
/// costs no signature check.
#[test]
fn envelopes_are_verified_once() {
    let mut net = Net::new();
    let a = manifest(1);
    let id = net.open();
    let commits: Vec<SignedMessage> = (0..4).map(|m| net.commit(m, &id, &a)).collect();
    for c in &commits {
        net.envelopes.verify(c, &net.tc.committee).unwrap();
    }
    let before = net
        .envelopes
        .verified
        .load(std::sync::atomic::Ordering::Relaxed);
    net.block(1000, commits).unwrap();
    let after = net
        .envelopes
        .verified
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(before, after);
}

#[test]
fn check_matches_apply() {
    let mut net = Net::new();
    let a = manifest(1);
    let id = net.open();
    let c = net.commit(0, &id, &a);
    assert!(net.state.check(&c, net.time + 1000, net.env()).is_ok());
    assert!(
        net.state
            .check(&net.reveal(0, &id, &a), net.time + 1000, net.env())
            .is_err()
    );
    // After the commit deadline the same commitment is refused.
    assert!(
        net.state
            .check(&c, net.time + PARAMS.commit_window_ms + 1, net.env())
            .is_err()
    );
}

/// Attestations are checked at the decision, all rounds of a block in one batch: a bad one
/// (a valid point over another statement, or bytes that are no point) is found, named as
/// BadAttestation, and left out; the others still attest.
#[test]
fn a_bad_attestation_is_found_at_the_decision() {
    for garbage in [false, true] {
        let mut net = Net::new();
        let a = manifest(1);
        let id = net.open();
        let commits = (0..4).map(|m| net.commit(m, &id, &a)).collect();
        net.block(1000, commits).unwrap();
        let mut bad = net.reveal(3, &id, &a);
        if let Body::Reveal { attestation, .. } = &mut bad.body {
            *attestation = if garbage {
                vec![0xc0 | 0x1f; 96]
            } else {
                let other = attestation_statement(net.tc.committee.origin(), &[9; 32], &[1; 32]);
                net.tc.bls[3].sign(other.as_bytes()).to_bytes().to_vec()
            };
        }
        let bad = net.msg(3, bad.body);
        let reveals = vec![
            net.reveal(0, &id, &a),
            net.reveal(1, &id, &a),
            net.reveal(2, &id, &a),
            bad,
        ];
        let e = net.block(1000, reveals).unwrap().0.remove(0);
        assert_eq!(e.verdict, Verdict::Reproduced, "garbage {garbage}");
        assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::BadAttestation)]);
        assert_eq!(attested_by(&net, &e), vec![0, 1, 2]);
    }
}

/// A new attempt (same pins, attempt + 1) may be ordered only after the previous one was
/// decided without a reproduced verdict, at least the committee's spacing later, and never
/// beyond max_attempts.
#[test]
fn new_attempts_follow_the_committees_rules() {
    let mut net = Net::new();
    let (a, b) = (manifest(1), manifest(2));
    let attempt = |n: u32| {
        let mut p = request();
        p.request.attempt = n;
        p
    };
    let ask = |net: &Net, n: u32, dt: u64| {
        net.state.check(
            &net.msg(1, Body::Request(attempt(n))),
            net.time + dt,
            net.env(),
        )
    };
    assert_eq!(
        ask(&net, 2, 1),
        Err("a new attempt before the previous one was decided")
    );
    // Attempt 1: two and two, not reproduced.
    let e = net.round([&a, &b, &a, &b], &[0, 1, 2, 3]).remove(0);
    assert_eq!(e.verdict, Verdict::NotReproduced);
    assert!(ask(&net, 2, 1).unwrap_err().contains("attempt_spacing"));
    assert_eq!(ask(&net, 2, PARAMS.attempt_spacing_ms), Ok(()));
    assert!(
        ask(&net, 4, PARAMS.attempt_spacing_ms)
            .unwrap_err()
            .contains("max_attempts")
    );
    // Attempt 2 ordered and reproduced: no attempt 3.
    net.block(
        PARAMS.attempt_spacing_ms,
        vec![net.msg(1, Body::Request(attempt(2)))],
    )
    .unwrap();
    let id2 = attempt(2).id();
    let commits = (0..4).map(|m| net.commit(m, &id2, &a)).collect();
    net.block(1000, commits).unwrap();
    let reveals = (0..4).map(|m| net.reveal(m, &id2, &a)).collect();
    let e = net.block(1000, reveals).unwrap().0.remove(0);
    assert_eq!((e.verdict, e.request.attempt), (Verdict::Reproduced, 2));
    assert_eq!(
        ask(&net, 3, PARAMS.attempt_spacing_ms),
        Err("a new attempt after a reproduced verdict")
    );
}

#[test]
fn a_proposer_takes_at_most_a_share_of_one_members_requests() {
    let mut net = Net::new();
    // Open rounds per member are not what this is about.
    net.state = ProtocolState::new(ProtocolParams {
        max_open_requests_per_member: 1000,
        ..PARAMS
    });
    // Member 3 floods 200 requests, then member 0 asks for one: a block holds 64 of the
    // flood (the proposer's share per member) and member 0's request, though the committee
    // allows 100 messages.
    let mut msgs: Vec<SignedMessage> = (0..200)
        .map(|k| {
            net.msg(
                3,
                Body::Request(crate::testing::request(&format!("flood-{k}"), "1.0.0", "l")),
            )
        })
        .collect();
    msgs.push(net.msg(0, Body::Request(request())));
    let candidates: Vec<(&SignedMessage, usize)> =
        msgs.iter().map(|m| (m, m.to_cbor().len())).collect();
    let chosen = net.state.select(&candidates, net.time, net.env());
    assert_eq!(
        chosen.len(),
        super::state::MAX_REQUESTS_PER_MEMBER_IN_BLOCK + 1
    );
    assert!(chosen.contains(&200), "member 0's request is in");
}

/// The committee's `max_requests_per_block` bounds the new requests of a block: one more
/// makes the block invalid, and a proposer fills the rest of the block with other messages
/// and leaves the surplus of requests, from all members together, for later blocks.
#[test]
fn a_block_orders_at_most_the_committees_requests_per_block() {
    let mut net = Net::new();
    net.state = ProtocolState::new(ProtocolParams {
        max_open_requests_per_member: 1000,
        max_requests_per_block: 3,
        ..PARAMS
    });
    let req = |k: usize| crate::testing::request(&format!("burst-{k}"), "1.0.0", "l");
    let four: Vec<SignedMessage> = (0..4)
        .map(|k| net.msg(k % 2, Body::Request(req(k))))
        .collect();
    let err = net.block(1000, four.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            BlockError::TooLarge {
                what: "max_requests_per_block",
                ..
            }
        ),
        "{err:?}"
    );
    net.height -= 1;
    // The proposer takes three of the four, and the commitments of an open round besides.
    let a = manifest(1);
    let id = net.open();
    let mut msgs = four.clone();
    msgs.extend((0..4).map(|m| net.commit(m, &id, &a)));
    let candidates: Vec<(&SignedMessage, usize)> =
        msgs.iter().map(|m| (m, m.to_cbor().len())).collect();
    let chosen = net.state.select(&candidates, net.time + 1000, net.env());
    let requests = chosen.iter().filter(|&&i| i < 4).count();
    assert_eq!((requests, chosen.len()), (3, 7), "{chosen:?}");
    let block: Vec<SignedMessage> = chosen.iter().map(|&i| msgs[i].clone()).collect();
    net.block(1000, block).unwrap();
}

/// What closes open rounds goes into a block first, and members take turns within a kind:
/// a flood of requests that arrived before the reveals takes none of their places, and a
/// block whose limits run out holds as many of an honest member's requests as of the
/// flooder's. (In arrival order the flood filled the block and the round stayed open.)
#[test]
fn reveals_go_first_and_members_take_turns_in_a_block() {
    let mut net = Net::new();
    net.state = ProtocolState::new(ProtocolParams {
        max_open_requests_per_member: 1000,
        max_block_messages: 16,
        ..PARAMS
    });
    let a = manifest(1);
    let id = net.open();
    let commits = (0..4).map(|m| net.commit(m, &id, &a)).collect();
    net.block(1000, commits).unwrap();
    // Member 3's 200 requests arrive first, then member 0's five, then the four reveals.
    let mut msgs: Vec<SignedMessage> = (0..200)
        .map(|k| {
            net.msg(
                3,
                Body::Request(crate::testing::request(&format!("flood-{k}"), "1.0.0", "l")),
            )
        })
        .collect();
    msgs.extend((0..5).map(|k| {
        net.msg(
            0,
            Body::Request(crate::testing::request(&format!("mine-{k}"), "1.0.0", "l")),
        )
    }));
    msgs.extend((0..4).map(|m| net.reveal(m, &id, &a)));
    let candidates: Vec<(&SignedMessage, usize)> =
        msgs.iter().map(|m| (m, m.to_cbor().len())).collect();
    let chosen = net.state.select(&candidates, net.time + 1000, net.env());
    assert_eq!(chosen.len(), 16);
    assert_eq!(&chosen[..4], &[205, 206, 207, 208], "the reveals first");
    let by = |signer: u32| {
        chosen[4..]
            .iter()
            .filter(|&&i| msgs[i].signer == signer)
            .count()
    };
    assert_eq!(
        (by(0), by(3)),
        (5, 7),
        "turns, then the rest to the flooder"
    );
    // Member 0's requests interleave with the flood's (signer order within a turn), each
    // member's in arrival order.
    assert_eq!(&chosen[4..8], &[200, 0, 201, 1]);
    let block: Vec<SignedMessage> = chosen.iter().map(|&i| msgs[i].clone()).collect();
    let (entries, _) = net.block(1000, block).unwrap();
    assert_eq!(entries.len(), 1, "the round closed");
    assert_eq!(entries[0].verdict, Verdict::Reproduced);
}

/// One member's requests hold at most the committee's `max_open_requests_per_member` open
/// rounds: one more is refused (in a block of its own or with the others), other members
/// are not affected, a restored state counts alike, and a decided round frees a slot.
#[test]
fn one_members_open_requests_are_bounded_by_the_committee() {
    let mut net = Net::new();
    let a = manifest(1);
    let req = |k: usize| crate::testing::request(&format!("mine-{k}"), "1.0.0", "l");
    let four: Vec<SignedMessage> = (0..4).map(|k| net.msg(1, Body::Request(req(k)))).collect();
    let err = net.block(1000, four.clone()).unwrap_err();
    assert!(
        matches!(err, BlockError::NotAllowed { index: 3, reason } if reason.contains("max_open_requests_per_member")),
        "{err:?}"
    );
    net.height -= 1;
    net.block(1000, four[..3].to_vec()).unwrap();
    let fourth = four[3].clone();
    let refused = net.state.check(&fourth, net.time + 1, net.env());
    assert!(
        refused
            .unwrap_err()
            .contains("max_open_requests_per_member")
    );
    let restored =
        ProtocolState::from_snapshot(PARAMS, net.state.last_block(), net.rows.clone()).unwrap();
    assert_eq!(restored.check(&fourth, net.time + 1, net.env()), refused);
    // Another member's request is not affected.
    assert_eq!(
        net.state.check(
            &net.msg(0, Body::Request(request())),
            net.time + 1,
            net.env()
        ),
        Ok(())
    );
    // One of member 1's rounds is decided: its fourth request fits now.
    let id = req(0).id();
    let commits = (0..4).map(|m| net.commit(m, &id, &a)).collect();
    net.block(1000, commits).unwrap();
    let reveals = (0..4).map(|m| net.reveal(m, &id, &a)).collect();
    assert_eq!(net.block(1000, reveals).unwrap().0.len(), 1);
    assert_eq!(net.state.check(&fourth, net.time + 1, net.env()), Ok(()));
    net.block(1000, vec![fourth]).unwrap();
}

/// A request for a toolchain or target other than the committee's makes its block invalid
/// (and `check` says so), whoever signed it; the same request with the committee's values
/// is ordered.
#[test]
fn a_request_for_another_toolchain_or_target_is_refused() {
    let mut net = Net::new();
    let repin = |toolchain: &str, target: &str| {
        let mut r = request();
        r.request.toolchain = toolchain.into();
        r.request.target = target.into();
        r
    };
    let build = net.tc.committee.build().clone();
    for (bad, why) in [
        (repin("1.94.0", &build.target), "toolchain"),
        (
            repin(&build.toolchain, "aarch64-unknown-linux-gnu"),
            "target",
        ),
    ] {
        let m = net.msg(1, Body::Request(bad.clone()));
        let err = net.block(1000, vec![m.clone()]).unwrap_err();
        assert!(
            matches!(&err, BlockError::NotAllowed { index: 0, reason } if reason.contains(why)),
            "{err:?}"
        );
        net.height -= 1;
        let checked = net.state.check(&m, net.time + 1, net.env());
        assert!(checked.unwrap_err().contains(why));
        assert_eq!(
            check_request(&bad, &net.tc.committee).unwrap_err(),
            checked.unwrap_err()
        );
        assert_eq!(net.state.open_count(), 0);
    }
    let good = repin(&build.toolchain, &build.target);
    assert_eq!(check_request(&good, &net.tc.committee), Ok(()));
    net.block(1000, vec![net.msg(1, Body::Request(good))])
        .unwrap();
    assert_eq!(net.state.open_count(), 1);
}

/// A reveal's failure class is on the wire exactly as the string it was before the enum
/// (so signatures over it and stored rows are unchanged); a class no member knows does not
/// decode (before, it decoded and was refused as a malformed outcome).
#[test]
fn failure_outcomes_encode_as_their_class_names() {
    #[derive(serde::Serialize)]
    enum Before {
        #[allow(dead_code)]
        Manifest(String),
        Failure(String),
    }
    for class in FailureClass::ALL {
        let typed = crate::codec::to_vec(&RevealedOutcome::Failure(class));
        let before = crate::codec::to_vec(&Before::Failure(class.name().to_string()));
        assert_eq!(typed, before, "{class}");
        assert_eq!(
            crate::codec::from_slice::<RevealedOutcome>(&before, 1024),
            Ok(RevealedOutcome::Failure(class))
        );
        assert_eq!(
            outcome_digest(&RevealedOutcome::Failure(class)),
            Some(failure_digest(class.name()))
        );
    }
    let unknown = crate::codec::to_vec(&Before::Failure("segfault".into()));
    assert!(crate::codec::from_slice::<RevealedOutcome>(&unknown, 1024).is_err());
}

mod change;
