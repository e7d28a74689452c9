//! The checks the client runs on each member's answer, on real verify types (a real test
//! committee's signatures and RFC 6962 hashes, no mocks): a wrong proof, an inconsistent
//! checkpoint, a text or an artifact whose bytes are not the pinned ones are each refused
//! with the error that names the fault; and the wire encoding of every light message is
//! the one members and clients have always exchanged.

mod fixture;

use fixture::{ARTIFACT, Log, PATH, committee, manifest};
use synchronicity_light::check::{self, Download, Standing};
use synchronicity_light::{
    LightRequest, LightResponse, Lockfile, MAX_ARTIFACT, PeerError, ProofQuery,
};
use synchronicity_verify::test_committee::TestCommittee;
use synchronicity_verify::tlog::ProofFile;
use synchronicity_verify::{CommitteeChain, Verdict, VerifyError, sha256};

/// The client's trust: one committee, as a chain of it alone.
fn chain(tc: &TestCommittee) -> CommitteeChain {
    CommitteeChain::single(tc.committee.clone())
}

#[test]
fn a_proof_that_verifies_and_is_the_default_variant_is_accepted() {
    let tc = committee();
    let log = Log::new(&tc);
    let p = check::check_proof(
        log.proof(&tc, 0),
        &chain(&tc),
        &ProofQuery::default_variant("itoa", "1.0.15"),
    )
    .unwrap();
    assert_eq!(
        (p.verdict(), p.lockfile(), p.record().index()),
        (Verdict::Reproduced, Lockfile::Shipped, 0)
    );
    // By request id, the other variant is exactly what was asked.
    let mut other = fixture::request();
    other.features = vec!["serde".into()];
    let p = check::check_proof(
        log.proof(&tc, 1),
        &chain(&tc),
        &ProofQuery::request(other.id()),
    )
    .unwrap();
    assert_eq!(p.record().index(), 1);
}

#[test]
fn a_wrong_proof_is_refused() {
    let tc = committee();
    let log = Log::new(&tc);
    let itoa = ProofQuery::default_variant("itoa", "1.0.15");

    // About another crate.
    let err = check::check_proof(
        log.proof(&tc, 0),
        &chain(&tc),
        &ProofQuery::default_variant("serde", "1.0.15"),
    )
    .unwrap_err();
    assert!(
        matches!(err, PeerError::Proof(VerifyError::WrongSubject { .. })),
        "{err}"
    );
    let said = err.to_string();
    assert!(
        said.starts_with("the proof does not verify: the proof is about itoa@1.0.15 (request ")
            && said.ends_with("), not serde@1.0.15"),
        "{said}"
    );

    // Another variant than the default one, though it verifies.
    let err = check::check_proof(log.proof(&tc, 1), &chain(&tc), &itoa).unwrap_err();
    assert_eq!(
        err.to_string(),
        "faulty peer: answered with a non-default variant (features=serde) of itoa@1.0.15"
    );

    // Cosigned by another committee.
    let other = TestCommittee::new(4, 99);
    let err = check::check_proof(log.proof(&other, 0), &chain(&tc), &itoa).unwrap_err();
    assert!(matches!(err, PeerError::Proof(_)), "{err}");

    // The other entry under the first one's index and path: the inclusion proof fails.
    let forged = ProofFile {
        extra: Some(log.entries[1].clone()),
        index: 0,
        proof: vec![log.leaves[1]],
        checkpoint: log.checkpoint(&tc, 2).note().to_string(),
    }
    .format();
    let err = check::check_proof(forged, &chain(&tc), &itoa).unwrap_err();
    assert!(
        matches!(err, PeerError::Proof(VerifyError::Inclusion(_))),
        "{err}"
    );
}

#[test]
fn an_inconsistent_checkpoint_is_refused() {
    let tc = committee();
    let log = Log::new(&tc);
    let (one, two) = (log.checkpoint(&tc, 1), log.checkpoint(&tc, 2));

    assert!(matches!(
        check::standing(&one, &two, &log.consistency()),
        Standing::Consistent
    ));
    // A wrong consistency proof: unproven (the member may be faulty), never accepted.
    let Standing::Unproven(err) = check::standing(&one, &two, &[[7; 32]]) else {
        panic!("a wrong proof is accepted");
    };
    assert!(
        err.to_string()
            .starts_with("faulty peer: its consistency proof from size 1 to 2 does not verify"),
        "{err}"
    );
    // A validly cosigned checkpoint of another history at size 2: no proof connects them.
    let other = tc.cosign(2, [9; 32]);
    assert!(matches!(
        check::standing(&one, &other, &log.consistency()),
        Standing::Unproven(PeerError::Inconsistent { old: 1, new: 2, .. })
    ));
    // Older than the held one: refused, not evidence.
    let Standing::Older(err) = check::standing(&two, &one, &[]) else {
        panic!("an older checkpoint is accepted");
    };
    assert_eq!(
        err.to_string(),
        "faulty peer: its checkpoint (size 1) is older than the remembered one (size 2)"
    );
    // The same size with another root: evidence of two histories.
    let Standing::SplitView(why) = check::standing(&two, &other, &[]) else {
        panic!("two roots at one size are not a split view");
    };
    assert_eq!(
        why,
        "two cosigned checkpoints of size 2 with different roots"
    );
    // A proof hash that is not 32 bytes.
    assert!(matches!(
        check::proof_hashes(&[serde_bytes::ByteBuf::from(vec![1; 31])]),
        Err(PeerError::BadHash)
    ));
}

fn chunk(total: usize, offset: usize, data: &[u8]) -> LightResponse {
    LightResponse::Chunk {
        total: total as u64,
        offset: offset as u64,
        data: serde_bytes::ByteBuf::from(data.to_vec()),
    }
}

#[test]
fn an_artifact_whose_bytes_do_not_match_the_manifest_is_refused() {
    let sha = *manifest().get(PATH).unwrap();
    let n = ARTIFACT.len();

    // The right bytes in two chunks.
    let mut d = Download::new(sha);
    assert_eq!(
        d.accept(chunk(n, 0, &ARTIFACT[..10])).unwrap(),
        Some(n as u64)
    );
    assert_eq!(
        d.request(),
        LightRequest::Artifact {
            sha256: sha.to_vec(),
            offset: 10
        }
    );
    assert_eq!(d.accept(chunk(n, 10, &ARTIFACT[10..])).unwrap(), None);
    let bytes = d.into_bytes();
    assert_eq!(
        manifest().check_artifact(Some(PATH), "libitoa.rlib", &bytes),
        Ok(PATH.to_string())
    );

    // Bytes of the right size that are not the attested ones.
    let mut wrong = ARTIFACT.to_vec();
    wrong[0] ^= 1;
    let mut d = Download::new(sha);
    let err = d.accept(chunk(n, 0, &wrong)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "faulty peer: the artifact's bytes do not hash to {}",
            hex(&sha)
        )
    );

    // Chunks that do not fit: another offset, another total than declared, past the
    // total, empty before the end, over the largest artifact.
    let bad = [
        vec![chunk(n, 1, &ARTIFACT[1..])],
        vec![
            chunk(n, 0, &ARTIFACT[..10]),
            chunk(n + 1, 10, &ARTIFACT[10..]),
        ],
        vec![chunk(5, 0, &ARTIFACT[..10])],
        vec![chunk(n, 0, &[])],
        vec![LightResponse::Chunk {
            total: MAX_ARTIFACT + 1,
            offset: 0,
            data: serde_bytes::ByteBuf::from(vec![0; 10]),
        }],
    ];
    for answers in bad {
        let mut d = Download::new(sha);
        let last = answers.len() - 1;
        for (i, a) in answers.into_iter().enumerate() {
            let r = d.accept(a);
            if i == last {
                assert!(matches!(r, Err(PeerError::BadChunk)), "{r:?}");
            }
        }
    }

    // A "not found" is named as the member said it.
    let err = Download::new(sha)
        .accept(LightResponse::NotFound("no artifact".into()))
        .unwrap_err();
    assert_eq!(err.to_string(), "no artifact");
}

#[test]
fn a_text_whose_sha256_is_not_the_pinned_one_is_refused() {
    let text = b"# Cargo.lock\n".to_vec();
    let sha = sha256(&text);
    let ok = check::blob(LightResponse::Blob(text.clone().into()), &sha).unwrap();
    assert_eq!(ok, text);
    let err = check::blob(LightResponse::Blob(b"other".to_vec().into()), &sha).unwrap_err();
    assert_eq!(
        err.to_string(),
        "faulty peer: sent a text with another sha256"
    );
    let err = check::blob(LightResponse::Proof("p".into()), &sha).unwrap_err();
    assert_eq!(err.to_string(), "unexpected answer: a proof");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes every light message had on the wire before the protocol moved into this
/// crate (computed from `synchronicity::node::wire` at 2c82d14): a change here is a
/// protocol change and needs a new protocol name.
#[test]
fn the_wire_encoding_is_unchanged() {
    let requests = [
        (
            LightRequest::Proof {
                key: "itoa@1.0.15".into(),
            },
            GOLDEN_REQUESTS[0],
        ),
        (
            LightRequest::Consistency { old: 1, new: 300 },
            GOLDEN_REQUESTS[1],
        ),
        (
            LightRequest::Blob {
                sha256: vec![0xab; 32],
            },
            GOLDEN_REQUESTS[2],
        ),
        (
            LightRequest::Checkpoint { old_size: None },
            GOLDEN_REQUESTS[3],
        ),
        (
            LightRequest::Checkpoint {
                old_size: Some(70_000),
            },
            GOLDEN_REQUESTS[4],
        ),
        (
            LightRequest::Artifact {
                sha256: vec![1; 32],
                offset: 524_288,
            },
            GOLDEN_REQUESTS[5],
        ),
        (
            LightRequest::Proofs {
                keys: vec!["a@1.0.0".into(), "b@2.0.0".into()],
            },
            GOLDEN_REQUESTS[6],
        ),
    ];
    for (r, golden) in &requests {
        assert_eq!(hex(&r.to_bytes()), *golden, "{r:?}");
        assert_eq!(&LightRequest::from_bytes(&r.to_bytes()).unwrap(), r);
    }
    let answers = [
        (LightResponse::Proof("proof".into()), GOLDEN_ANSWERS[0]),
        (
            LightResponse::Checkpoint {
                note: "note".into(),
                proof: vec![serde_bytes::ByteBuf::from(vec![2; 32])],
            },
            GOLDEN_ANSWERS[1],
        ),
        (LightResponse::Consistency(vec![]), GOLDEN_ANSWERS[2]),
        (
            LightResponse::Blob(serde_bytes::ByteBuf::from(b"lock".to_vec())),
            GOLDEN_ANSWERS[3],
        ),
        (LightResponse::NotFound("none".into()), GOLDEN_ANSWERS[4]),
        (
            LightResponse::Chunk {
                total: 3,
                offset: 0,
                data: serde_bytes::ByteBuf::from(vec![7, 8, 9]),
            },
            GOLDEN_ANSWERS[5],
        ),
        (
            LightResponse::Proofs(vec![Ok("p".into()), Err("unknown".into())]),
            GOLDEN_ANSWERS[6],
        ),
    ];
    for (a, golden) in &answers {
        assert_eq!(hex(&a.to_bytes()), *golden, "{a:?}");
        assert_eq!(&LightResponse::from_bytes(&a.to_bytes()).unwrap(), a);
    }
    // Decoding is bounded by direction.
    let big = LightRequest::Proof {
        key: "x".repeat(synchronicity_light::MAX_LIGHT_REQUEST),
    };
    assert!(LightRequest::from_bytes(&big.to_bytes()).is_err());
}

const GOLDEN_REQUESTS: [&str; 7] = [
    "a16550726f6f66a1636b65796b69746f6140312e302e3135",
    "a16b436f6e73697374656e6379a2636f6c6401636e657719012c",
    "a164426c6f62a1667368613235365820abababababababababababababababababababababababababababababababab",
    "a16a436865636b706f696e74a1686f6c645f73697a65f6",
    "a16a436865636b706f696e74a1686f6c645f73697a651a00011170",
    "a1684172746966616374a26673686132353658200101010101010101010101010101010101010101010101010101010101010101666f66667365741a00080000",
    "a16650726f6f6673a1646b65797382676140312e302e30676240322e302e30",
];
const GOLDEN_ANSWERS: [&str; 7] = [
    "a16550726f6f666570726f6f66",
    "a16a436865636b706f696e74a2646e6f7465646e6f74656570726f6f668158200202020202020202020202020202020202020202020202020202020202020202",
    "a16b436f6e73697374656e637980",
    "a164426c6f62446c6f636b",
    "a1684e6f74466f756e64646e6f6e65",
    "a1654368756e6ba365746f74616c03666f666673657400646461746143070809",
    "a16650726f6f667382a1624f6b6170a16345727267756e6b6e6f776e",
];

#[test]
fn the_default_variant_is_the_committees_target_with_default_settings() {
    use synchronicity_light::default_variant::check;
    let tc = committee();
    let c = &tc.committee;
    let mut r = fixture::request();
    assert_eq!(r.target, c.build().target);
    assert_eq!(check(&r, c).unwrap(), Lockfile::Shipped);
    r.lockfile_shipped = false;
    assert_eq!(check(&r, c).unwrap(), Lockfile::Generated);
    let mut other = r.clone();
    other.target = "wasm32-unknown-unknown".into();
    let err = check(&other, c).unwrap_err().to_string();
    assert!(err.contains("target=wasm32-unknown-unknown"), "{err}");
    let mut other = r.clone();
    other.features = vec!["serde".into()];
    assert!(
        check(&other, c)
            .unwrap_err()
            .to_string()
            .contains("features=serde")
    );
    let mut other = r;
    other.profile = "dev".into();
    assert!(check(&other, c).is_err());
}

/// A lookup answer is accepted only if it proves ALL the entries of what was asked against
/// the checkpoint's index, and its default variant is the one the client's rule picks: a
/// member that leaves a variant out, says "absent" for a present key, adds an entry, picks
/// another default, serves an older checkpoint than one held, or a checkpoint without (or
/// with a doubled, or a malformed) index line is refused with the error that names it.
#[test]
fn lookup_answers_prove_every_variant_and_absence() {
    use synchronicity_verify::BatchVerifier;
    let tc = committee();
    let log = Log::new(&tc);
    let trust = chain(&tc);
    let cp = log.indexed(&tc, &[]);
    let specs = ["itoa@1.0.15".to_string()];
    let run = |answer: LightResponse, specs: &[String], held: u64| {
        let mut verifier = BatchVerifier::in_chain(&trust);
        check::check_lookups(&mut verifier, &trust, &tc.committee, specs, held, answer)
    };

    // Honest: both variants, the default is entry 0 (the client's own choice).
    let ok = run(log.lookup(&cp, &specs[0], &[0, 1], Some(0)), &specs, 0).unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].checkpoint_size, 2);
    assert_eq!(
        ok[0].entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(ok[0].default.as_ref().unwrap().record().index(), 0);

    // Proven absent: a key the log holds nothing for.
    let absent = ["serde@1.0.0".to_string()];
    let none = run(log.lookup(&cp, &absent[0], &[], None), &absent, 0).unwrap();
    assert!(none[0].entries.is_empty() && none[0].default.is_none());

    let index_fault = |r: Result<_, PeerError>| match r {
        Err(PeerError::Index { error, .. }) => error.to_string(),
        other => panic!("expected an index fault, got {other:?}"),
    };
    // A variant left out.
    let e = index_fault(run(log.lookup(&cp, &specs[0], &[0], Some(0)), &specs, 0));
    assert!(e.contains("index proof"), "{e}");
    // "Absent" for a present key.
    index_fault(run(log.lookup(&cp, &specs[0], &[], None), &specs, 0));
    // Out of order.
    let e = index_fault(run(log.lookup(&cp, &specs[0], &[1, 0], Some(0)), &specs, 0));
    assert!(e.contains("log order"), "{e}");
    // Another crate's entries under this key.
    let e = index_fault(run(log.lookup(&cp, &absent[0], &[0], None), &absent, 0));
    assert!(e.contains("not serde@1.0.0"), "{e}");
    // No default proof although the rule picks entry 0.
    assert!(matches!(
        run(log.lookup(&cp, &specs[0], &[0, 1], None), &specs, 0),
        Err(PeerError::WrongDefault {
            chosen: Some(0),
            sent: None,
            ..
        })
    ));
    // Under a checkpoint older than one the client holds.
    assert!(matches!(
        run(log.lookup(&cp, &specs[0], &[0, 1], Some(0)), &specs, 3),
        Err(PeerError::OlderCheckpoint { served: 2, held: 3 })
    ));
    // A checkpoint without the index line, with it twice, or with a malformed one.
    let bare = log.checkpoint(&tc, 2);
    let e = index_fault(run(
        log.lookup(&bare, &specs[0], &[0, 1], Some(0)),
        &specs,
        0,
    ));
    assert!(e.contains("carries no index roots"), "{e}");
    let line = synchronicity_verify::index::IndexRoots::of_checkpoint(cp.checkpoint())
        .unwrap()
        .extension_line();
    let doubled = log.indexed(&tc, std::slice::from_ref(&line));
    let e = index_fault(run(
        log.lookup(&doubled, &specs[0], &[0, 1], Some(0)),
        &specs,
        0,
    ));
    assert!(e.contains("twice"), "{e}");
    let malformed = log.indexed(&tc, &["synchronicity-index/v1 AAAA".to_string()]);
    let e = index_fault(run(
        log.lookup(&malformed, &specs[0], &[0, 1], Some(0)),
        &specs,
        0,
    ));
    assert!(e.contains("twice") || e.contains("malformed"), "{e}");
    // A tampered proof: one sibling flipped.
    let mut tampered = log.lookup(&cp, &absent[0], &[], None);
    if let LightResponse::Lookups { answers, .. } = &mut tampered {
        let p = &mut answers[0].variants.proof;
        match &mut p.leaf {
            Some(l) => l[40] ^= 1,
            None => p.siblings.push(7),
        }
    }
    index_fault(run(tampered, &absent, 0));
}
