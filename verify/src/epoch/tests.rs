//! Committee changes and the chain: a log that lives through four changes (a member joins,
//! one leaves, a key rotates, a rule changes), verified from the genesis alone; and every
//! tampered link refused.

use super::*;
use crate::entry::LogEntry;
use crate::proof::{Expected, VerifyError, verify_proof, verify_proof_in_chain};
use crate::test_chain::{
    TestHistory as History, TestLog as Log, approval, build_entry, change_entry, four_changes,
};
use crate::test_committee::TestCommittee;
use crate::tlog::{ProofFile, merkle};

#[test]
fn change_statement_format() {
    assert_eq!(
        change_statement("example.org/log", 3, &[0xab; 32], &[0xcd; 32], &[0xef; 32]),
        format!(
            "synchronicity/committee-change/v1\nexample.org/log\nepoch 3\nprevious {}\nnext {}\nfile {}\n",
            "ab".repeat(32),
            "cd".repeat(32),
            "ef".repeat(32)
        )
    );
}

#[test]
fn a_log_lives_through_four_changes_verified_from_the_genesis_alone() {
    let h = four_changes();
    let chain = CommitteeChain::verify(h.epochs[0].committee.clone(), &h.chain_text()).unwrap();
    assert_eq!(chain.latest().epoch(), 4);
    assert_eq!(chain.latest(), &h.epochs[4].committee);
    assert_eq!(chain.latest().protocol().reveal_window_secs, 240);
    assert_eq!(chain.committee(1).unwrap().len(), 5);
    // Every epoch has its own digest and key ID, and the same origin.
    let ids: std::collections::BTreeSet<_> = chain
        .epochs()
        .iter()
        .map(|e| e.committee().key_id())
        .collect();
    assert_eq!(ids.len(), 5);
    // The chain writes out and reads back as itself.
    let again = CommitteeChain::verify(h.epochs[0].committee.clone(), &chain.to_toml()).unwrap();
    assert_eq!(again, chain);

    // A proof of every epoch's build verifies with the genesis and the chain: under the
    // current checkpoint (cosigned by epoch 4) ...
    for (epoch, &index) in h.builds.iter().enumerate() {
        let name = if epoch == 0 {
            "genesis-crate".to_string()
        } else {
            format!("crate-of-epoch-{epoch}")
        };
        let want = Expected::crate_version(&name, "1.0.0");
        let proof = h.log.proof(index, &h.epochs[4]);
        let r = verify_proof_in_chain(&proof, &chain, &want).unwrap();
        assert_eq!((r.checkpoint_epoch(), r.entry_epoch()), (4, epoch as u64));
        r.check_attestation(chain.committee(r.entry_epoch()).unwrap())
            .unwrap();
    }
    // An auditor's batch: every epoch's build under the one current checkpoint, its
    // signature checked once.
    let mut batch = crate::proof::BatchVerifier::in_chain(&chain);
    for (epoch, &index) in h.builds.iter().enumerate() {
        let name = if epoch == 0 {
            "genesis-crate".to_string()
        } else {
            format!("crate-of-epoch-{epoch}")
        };
        let r = batch
            .verify(
                &h.log.proof(index, &h.epochs[4]),
                &Expected::crate_version(&name, "1.0.0"),
            )
            .unwrap();
        assert_eq!(r.entry_epoch(), epoch as u64);
    }
    assert_eq!(batch.checkpoints_verified(), 1);
    // ... and under the handoff checkpoint its own epoch cosigned back then.
    let first = &h.links[0];
    let handoff = ProofFile::parse(&first.proof).unwrap().checkpoint;
    let (cp, epoch) = chain.verify_checkpoint(&handoff).unwrap();
    assert_eq!(epoch, 0);
    assert_eq!(Some(cp.checkpoint().size), chain.epochs()[0].handoff());

    // The genesis alone cannot read epoch 4's checkpoint; and an entry of epoch 2 cannot
    // be vouched for by the genesis committee file used as the only committee.
    let g = &h.epochs[0].committee;
    let proof = h.log.proof(h.builds[2], &h.epochs[4]);
    assert!(
        verify_proof(
            &proof,
            g,
            &Expected::crate_version("crate-of-epoch-2", "1.0.0")
        )
        .is_err()
    );
}

#[test]
fn retired_committees_cannot_sign_new_history() {
    let h = four_changes();
    let chain = CommitteeChain::verify(h.epochs[0].committee.clone(), &h.chain_text()).unwrap();
    let handoff0 = chain.epochs()[0].handoff().unwrap();
    // The genesis committee (all of its keys, e.g. leaked) signs the current log: refused.
    let note = h.epochs[0].cosign(h.log.size(), h.log.root());
    assert!(matches!(
        chain.verify_checkpoint(note.note()),
        Err(ChainError::OutsideEpoch { epoch: 0, last, .. }) if last == handoff0
    ));
    // A proof under that checkpoint is refused the same way.
    let proof = h.log.proof(h.builds[0], &h.epochs[0]);
    assert!(matches!(
        verify_proof_in_chain(
            &proof,
            &chain,
            &Expected::crate_version("genesis-crate", "1.0.0")
        ),
        Err(VerifyError::Chain(ChainError::OutsideEpoch { .. }))
    ));
    // The rotated key's old committee (epoch 2) likewise, beyond its handoff.
    let note = h.epochs[2].cosign(h.log.size(), h.log.root());
    assert!(matches!(
        chain.verify_checkpoint(note.note()),
        Err(ChainError::OutsideEpoch { epoch: 2, .. })
    ));
    // A retired committee signing its own handoff size with another root: a fork.
    let size0 = chain.epochs()[0].handoff().unwrap();
    let forked = h.epochs[0].cosign(size0, [7; 32]);
    assert!(matches!(
        chain.verify_checkpoint(forked.note()),
        Err(ChainError::ForkedHandoff { epoch: 0, .. })
    ));
    // The genesis committee attesting a new entry, appended in epoch 4 and cosigned by the
    // current committee: the entry's index is outside epoch 0's entries.
    let mut late = Log {
        leaves: h.log.leaves.clone(),
    };
    let index = late.append(build_entry("late", &h.epochs[0]));
    let proof = late.proof(index, &h.epochs[4]);
    assert!(matches!(
        verify_proof_in_chain(&proof, &chain, &Expected::crate_version("late", "1.0.0")),
        Err(VerifyError::Chain(ChainError::EntryOutsideEpoch {
            epoch: 0,
            ..
        }))
    ));
    // A committee nobody in the chain knows.
    let stranger = TestCommittee::new(4, 99);
    let note = stranger.cosign(h.log.size(), h.log.root());
    assert!(matches!(
        chain.verify_checkpoint(note.note()),
        Err(ChainError::UnknownSigner { latest: 4 })
    ));
    // The current committee signs the current size; a size before its epoch is refused.
    let current = h.epochs[4].cosign(h.log.size(), h.log.root());
    assert_eq!(chain.verify_checkpoint(current.note()).unwrap().1, 4);
    let early = h.epochs[4].cosign(1, merkle::leaf_hash(&h.log.leaves[0]));
    assert!(matches!(
        chain.verify_checkpoint(early.note()),
        Err(ChainError::OutsideEpoch {
            epoch: 4,
            size: 1,
            ..
        })
    ));
}

/// Re-proves `links[at]` with `entry` in the log's place of the original change entry.
fn relink(h: &History, at: usize, entry: &ChangeEntry) -> History {
    let mut log = Log {
        leaves: h.log.leaves.clone(),
    };
    let index = ProofFile::parse(&h.links[at].proof).unwrap().index;
    log.leaves[index as usize] = entry.to_cbor();
    let mut links = h.links.clone();
    links[at].proof = log.proof_at(index, index + 1, &h.epochs[at]);
    History {
        epochs: h
            .epochs
            .iter()
            .map(|t| TestCommittee {
                committee: t.committee.clone(),
                bls: t.bls.clone(),
            })
            .collect(),
        log,
        links,
        builds: h.builds.clone(),
    }
}

fn verify_history(h: &History) -> Result<CommitteeChain, ChainError> {
    CommitteeChain::verify(h.epochs[0].committee.clone(), &h.chain_text())
}

#[test]
fn every_tampered_link_is_refused() {
    let h = four_changes();
    let g = &h.epochs[0];
    assert!(verify_history(&h).is_ok());

    // Another committee file in the entry than the one approved (a member swapped in).
    let mut other = change_entry(g, &h.epochs[1]);
    let intruder = g.successor(
        vec![
            g.member(0),
            g.member(1),
            g.member(2),
            TestCommittee::newcomer(66, 0),
        ],
        |_| {},
    );
    other.committee = intruder.committee.to_toml();
    assert!(matches!(
        verify_history(&relink(&h, 0, &other)),
        Err(ChainError::Change {
            epoch: 1,
            source: ChangeError::Approval(_)
        })
    ));

    // A forged approval: signed by members of another committee, or by fewer than t.
    let stranger = TestCommittee::new(4, 98);
    let mut forged = change_entry(g, &h.epochs[1]);
    forged.approval = approval(&stranger, &h.epochs[1], &[0, 1, 2]);
    assert!(matches!(
        verify_history(&relink(&h, 0, &forged)),
        Err(ChainError::Change {
            epoch: 1,
            source: ChangeError::Approval(_)
        })
    ));
    let mut few = change_entry(g, &h.epochs[1]);
    few.approval = approval(g, &h.epochs[1], &[0, 1]);
    assert!(matches!(
        verify_history(&relink(&h, 0, &few)),
        Err(ChainError::Change {
            epoch: 1,
            source: ChangeError::Approval(_)
        })
    ));

    // A skipped epoch: the genesis hands straight to a committee that says epoch 2.
    let skipping = g.successor((0..4).map(|i| g.member(i)).collect(), |f| f.epoch = 2);
    let skip = change_entry(g, &skipping);
    assert!(matches!(
        verify_history(&relink(&h, 0, &skip)),
        Err(ChainError::Change {
            source: ChangeError::Epoch {
                expected: 1,
                found: 2
            },
            ..
        })
    ));
    // A link file that skips a link.
    let mut missing = relink(&h, 0, &change_entry(g, &h.epochs[1]));
    missing.links.remove(1);
    assert!(matches!(
        verify_history(&missing),
        Err(ChainError::SkippedEpoch {
            expected: 2,
            found: 3
        })
    ));

    // A wrong previous digest; another origin.
    let wrong_prev = g.successor((0..4).map(|i| g.member(i)).collect(), |f| {
        f.previous = Some("ab".repeat(32));
    });
    assert!(matches!(
        verify_history(&relink(&h, 0, &change_entry(g, &wrong_prev))),
        Err(ChainError::Change {
            source: ChangeError::Previous { .. },
            ..
        })
    ));
    let elsewhere = g.successor((0..4).map(|i| g.member(i)).collect(), |f| {
        f.origin = "example.org/another-log".into();
    });
    assert!(matches!(
        verify_history(&relink(&h, 0, &change_entry(g, &elsewhere))),
        Err(ChainError::Change {
            source: ChangeError::Origin { .. },
            ..
        })
    ));

    // A handoff checkpoint signed by the NEW committee instead of the outgoing one.
    let mut self_signed = relink(&h, 0, &change_entry(g, &h.epochs[1]));
    let index = ProofFile::parse(&self_signed.links[0].proof).unwrap().index;
    self_signed.links[0].proof = self_signed.log.proof_at(index, index + 1, &h.epochs[1]);
    assert!(matches!(
        verify_history(&self_signed),
        Err(ChainError::Handoff { epoch: 1, .. })
    ));

    // A handoff that is not the checkpoint ending with the change entry (a later one, which
    // would widen the old committee's window), and an inclusion proof for another index.
    let mut later = relink(&h, 0, &change_entry(g, &h.epochs[1]));
    let index = ProofFile::parse(&later.links[0].proof).unwrap().index;
    later.links[0].proof = later.log.proof_at(index, index + 2, g);
    assert!(matches!(
        verify_history(&later),
        Err(ChainError::NotHandoff { epoch: 1, .. })
    ));
    let mut moved = relink(&h, 0, &change_entry(g, &h.epochs[1]));
    let mut pf = ProofFile::parse(&moved.links[0].proof).unwrap();
    pf.proof[0][0] ^= 1;
    moved.links[0].proof = pf.format();
    assert!(matches!(
        verify_history(&moved),
        Err(ChainError::Inclusion { epoch: 1, .. })
    ));

    // Another genesis, or another log.
    let other_genesis = TestCommittee::new(4, 2);
    assert!(matches!(
        CommitteeChain::verify(other_genesis.committee.clone(), &h.chain_text()),
        Err(ChainError::OtherGenesis { .. })
    ));
    // A trust root that is not a genesis.
    assert!(matches!(
        CommitteeChain::verify(h.epochs[1].committee.clone(), &h.chain_text()),
        Err(ChainError::NotGenesis(1))
    ));
    // Garbage and oversized files.
    assert!(matches!(
        CommitteeChain::verify(g.committee.clone(), "origin = 3"),
        Err(ChainError::Syntax(_))
    ));
}

#[test]
fn a_change_entry_is_not_a_build_entry_and_back() {
    let h = four_changes();
    let entry = change_entry(&h.epochs[0], &h.epochs[1]);
    let bytes = entry.to_cbor();
    assert!(is_change_entry(&bytes));
    assert_eq!(ChangeEntry::decode(&bytes).unwrap(), entry);
    assert!(LogEntry::decode(&bytes).is_err());
    let build = build_entry("itoa", &h.epochs[0]);
    assert!(!is_change_entry(&build));
    let mut other_kind = entry.clone();
    other_kind.kind = "committee-change/v9".into();
    assert!(matches!(
        ChangeEntry::decode(&other_kind.to_cbor()),
        Err(ChangeError::Kind(_))
    ));
    // A proof of a change entry is not a build record.
    let index = ProofFile::parse(&h.links[0].proof).unwrap().index;
    let chain = verify_history(&h).unwrap();
    let proof = h.log.proof(index, &h.epochs[4]);
    assert!(verify_proof_in_chain(&proof, &chain, &Expected::crate_version("x", "1")).is_err());
}

#[test]
fn committee_files_say_their_epoch() {
    let g = TestCommittee::new(4, 1);
    // The genesis text has no epoch or previous line: files written before epochs read
    // unchanged, with the same digest.
    let text = g.committee.to_toml();
    assert!(!text.contains("epoch") && !text.contains("previous"));
    let next = g.successor((0..4).map(|i| g.member(i)).collect(), |_| {});
    let text = next.committee.to_toml();
    assert!(text.contains("epoch = 1") && text.contains(&hex::encode(g.committee.digest())));
    assert_eq!(crate::Committee::from_toml(&text).unwrap(), next.committee);
    // Same keys and rules, another epoch: another digest and key ID.
    assert_ne!(next.committee.digest(), g.committee.digest());
    assert_ne!(next.committee.key_id(), g.committee.key_id());
    // Epoch and previous must agree.
    let mut f = g.committee.to_file();
    f.previous = Some(hex::encode(g.committee.digest()));
    assert!(matches!(
        crate::Committee::from_file(f),
        Err(crate::CommitteeError::BadEpoch(_))
    ));
    let mut f = next.committee.to_file();
    f.previous = None;
    assert!(matches!(
        crate::Committee::from_file(f),
        Err(crate::CommitteeError::BadEpoch(_))
    ));
    let mut f = next.committee.to_file();
    f.previous = Some("AB".repeat(32));
    assert!(matches!(
        crate::Committee::from_file(f),
        Err(crate::CommitteeError::BadEpoch(_))
    ));
}
