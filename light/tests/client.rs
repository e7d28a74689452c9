//! The [`Client`] against scripted members on the real light protocol (real libp2p on
//! loopback, real verify types): a faulty member's wrong proof, wrong text, wrong artifact
//! bytes and wrong consistency proof are each refused and named, and the honest member's
//! answer is returned; a split view is reported with its evidence; nothing is accepted
//! when no member's answer verifies.

mod fixture;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixture::{ARTIFACT, Log, PATH, committee, manifest};
use synchronicity_light::{
    Client, ClientConfig, LightError, LightRequest, LightResponse, ProofQuery,
};
use synchronicity_net::{Keypair, Multiaddr, NetConfig, NetEvent};
use synchronicity_verify::test_committee::TestCommittee;
use synchronicity_verify::tlog::Hash;

/// A member that answers each light request with `answer(request)` (`None`: refused).
/// Returns its address with its peer id; it runs until the test ends.
async fn member(
    answer: impl Fn(LightRequest) -> Option<LightResponse> + Send + Sync + 'static,
) -> Multiaddr {
    let cfg = NetConfig::new(Keypair::generate_ed25519(), Vec::new())
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (net, mut events) = synchronicity_net::start(cfg).await.unwrap();
    let mut listening = Vec::new();
    for _ in 0..100 {
        listening = net.listen_addrs().await.unwrap();
        if !listening.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = format!("{}/p2p/{}", listening[0], net.local_peer_id())
        .parse()
        .unwrap();
    tokio::spawn(async move {
        let _net = net; // kept alive as long as the task
        while let Some(ev) = events.recv().await {
            let NetEvent::Request(req) = ev else { continue };
            match LightRequest::from_bytes(&req.data).ok().and_then(&answer) {
                Some(a) => req.respond(a.to_bytes()).await,
                None => req.refuse("not this".into()).await,
            }
        }
    });
    addr
}

fn hashes(h: &[Hash]) -> Vec<serde_bytes::ByteBuf> {
    h.iter()
        .map(|h| serde_bytes::ByteBuf::from(h.to_vec()))
        .collect()
}

/// A client of `tc` asking `peers` in order; its notices, one line each.
async fn client(tc: &TestCommittee, peers: Vec<Multiaddr>) -> (Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let config = ClientConfig::new(tc.committee.clone(), peers)
        .with_request_timeout(Duration::from_secs(5))
        .with_notices(move |n| sink.lock().unwrap().push(n.to_string()));
    (Client::start(config).await.unwrap(), notices)
}

fn taken(notices: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *notices.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_members_are_named_and_skipped_and_only_verified_values_return() {
    let tc = committee();
    let log = Arc::new(Log::new(&tc));
    let (one, two) = (log.checkpoint(&tc, 1), log.checkpoint(&tc, 2));
    let manifest_text = manifest().to_text();

    // The faulty member: another variant's proof, a wrong text, wrong artifact bytes of the
    // right size, the real checkpoint with a wrong consistency proof.
    let (note2, indexed) = (two.note().to_string(), log.indexed(&tc, &[]));
    let (faulty_log, faulty_cp) = (log.clone(), indexed.clone());
    let faulty = member(move |req| match req {
        LightRequest::Lookups { .. } => {
            Some(faulty_log.lookup(&faulty_cp, "itoa@1.0.15", &[0, 1], Some(1)))
        }
        LightRequest::Blob { .. } => Some(LightResponse::Blob(b"not it".to_vec().into())),
        LightRequest::Artifact { offset: 0, .. } => {
            let mut wrong = ARTIFACT.to_vec();
            wrong[3] ^= 1;
            Some(LightResponse::Chunk {
                total: wrong.len() as u64,
                offset: 0,
                data: wrong.into(),
            })
        }
        LightRequest::Checkpoint { .. } => Some(LightResponse::Checkpoint {
            note: note2.clone(),
            proof: hashes(&[[7; 32]]),
        }),
        LightRequest::Consistency { .. } => Some(LightResponse::Consistency(hashes(&[[8; 32]]))),
        _ => None,
    })
    .await;
    // The honest member.
    let (note2, text) = (two.note().to_string(), manifest_text.clone());
    let (honest_log, honest_cp) = (log.clone(), indexed.clone());
    let honest = member(move |req| match req {
        LightRequest::Lookups { specs } if specs == ["itoa@1.0.15"] => {
            Some(honest_log.lookup(&honest_cp, "itoa@1.0.15", &[0, 1], Some(0)))
        }
        LightRequest::Blob { .. } => Some(LightResponse::Blob(text.clone().into_bytes().into())),
        LightRequest::Artifact { offset, .. } => {
            let from = (offset as usize).min(ARTIFACT.len());
            let to = (from + 16).min(ARTIFACT.len());
            Some(LightResponse::Chunk {
                total: ARTIFACT.len() as u64,
                offset,
                data: ARTIFACT[from..to].to_vec().into(),
            })
        }
        // (The proof from size 1; a client holding no checkpoint ignores it.)
        LightRequest::Checkpoint { .. } => Some(LightResponse::Checkpoint {
            note: note2.clone(),
            proof: hashes(&honest_log.consistency()),
        }),
        LightRequest::Consistency { old: 1, new: 2 } => Some(LightResponse::Consistency(hashes(
            &honest_log.consistency(),
        ))),
        _ => None,
    })
    .await;
    let (c, notices) = client(&tc, vec![faulty.clone(), honest.clone()]).await;

    // A proof: the faulty member's other variant is refused and named.
    let p = c
        .proof(&ProofQuery::default_variant("itoa", "1.0.15"))
        .await
        .unwrap();
    assert_eq!(
        (p.record().index(), p.text()),
        (0, log.proof_under(&indexed, 0).as_str())
    );
    assert_eq!(
        taken(&notices),
        [format!(
            "{faulty}: faulty peer: answered with a non-default variant (features=serde) of itoa@1.0.15; trying the next peer"
        )]
    );

    // The reproduced build with its manifest: the faulty member's text is refused.
    let build = c.reproduced("itoa", "1.0.15").await.unwrap();
    assert_eq!(build.manifest(), &manifest());
    assert_eq!(build.manifest_text(), manifest_text);
    let said = taken(&notices);
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!(
        said[1],
        format!("{faulty}: faulty peer: sent a text with another sha256; trying the next peer")
    );

    // The artifact: the faulty member's bytes are dropped, the download starts over.
    let mut calls = 0;
    let bytes = c
        .artifact(
            build.manifest(),
            PATH,
            Instant::now() + Duration::from_secs(30),
            &mut |_, _| calls += 1,
        )
        .await
        .unwrap();
    assert_eq!(bytes, ARTIFACT);
    assert!(calls > 1, "progress after each chunk");
    assert_eq!(
        taken(&notices),
        [format!(
            "{faulty}: faulty peer: the artifact's bytes do not hash to {}; starting over at the next peer (its {} bytes are dropped)",
            hex(manifest().get(PATH).unwrap()),
            ARTIFACT.len()
        )]
    );
    // A path the manifest does not list is not fetched at all.
    assert!(matches!(
        c.artifact(
            build.manifest(),
            "x86_64-unknown-linux-gnu/release/other",
            Instant::now() + Duration::from_secs(30),
            &mut |_, _| (),
        )
        .await,
        Err(LightError::NotInManifest(_))
    ));

    // The checkpoint: the faulty member's proof fails; the honest one's holds; then the
    // faulty member's (same) checkpoint is proven consistent by the honest member.
    let update = c.checkpoint(Some(&one), &|_| Ok(())).await.unwrap();
    assert_eq!(update.checkpoint.checkpoint().size, 2);
    assert_eq!(update.proof, log.consistency());
    let said = taken(&notices);
    assert!(
        said[0].starts_with(&format!(
            "{faulty}: faulty peer: its consistency proof from size 1 to 2 does not verify"
        )),
        "{said:?}"
    );
    assert_eq!(
        said.last().unwrap(),
        &format!(
            "{faulty}: its checkpoint of size 2 is consistent after all (another member proved it); only its proof was wrong"
        )
    );
    // An extra policy that refuses every checkpoint: nothing is accepted.
    let refused = c
        .checkpoint(None, &|_| Err("no witness cosigned it".into()))
        .await;
    assert!(matches!(refused, Err(LightError::NoVerifiedAnswer(_))));
    assert!(taken(&notices).iter().all(|n| {
        n.contains("the checkpoint does not meet the witness policy: no witness cosigned it")
    }));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_view_is_reported_with_its_evidence() {
    let tc = committee();
    let log = Log::new(&tc);
    let one = log.checkpoint(&tc, 1);
    // Another history: a validly cosigned root at size 1, and one at size 2.
    let (fork1, fork2) = (tc.cosign(1, [9; 32]), tc.cosign(2, [9; 32]));
    let n1 = fork1.note().to_string();
    let consistency = log.consistency();
    let forked = member(move |req| match req {
        LightRequest::Checkpoint { old_size: Some(1) } => Some(LightResponse::Checkpoint {
            note: n1.clone(),
            proof: vec![],
        }),
        LightRequest::Consistency { .. } => Some(LightResponse::Consistency(hashes(&consistency))),
        _ => None,
    })
    .await;
    let (c, _) = client(&tc, vec![forked.clone()]).await;

    // Two cosigned roots of one size.
    let Err(LightError::SplitView(split)) = c.checkpoint(Some(&one), &|_| Ok(())).await else {
        panic!("two roots of one size are accepted");
    };
    assert_eq!(
        split.why,
        "two cosigned checkpoints of size 1 with different roots"
    );
    assert_eq!(
        (
            split.held.note(),
            split.served.note(),
            split.served_by.as_ref()
        ),
        (one.note(), fork1.note(), Some(&forked))
    );
    // A newer checkpoint that no member proves consistent with the held one.
    let Err(e @ LightError::SplitView(_)) = c.advance(&one, &fork2).await else {
        panic!("an unprovable checkpoint moves the log forward");
    };
    assert_eq!(
        e.to_string(),
        "SPLIT VIEW: no reachable member proves the cosigned checkpoint of size 2 consistent with the remembered one of size 1"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_accepted_when_no_answer_verifies() {
    let tc = committee();
    let other = TestCommittee::new(4, 99);
    let log = Log::new(&other);
    // A proof cosigned by another committee, then refusals.
    let foreign = log.indexed(&other, &[]);
    let a = member(move |req| match req {
        LightRequest::Lookups { specs } => Some(log.lookup(&foreign, &specs[0], &[0, 1], Some(0))),
        _ => None,
    })
    .await;
    let b = member(|_| Some(LightResponse::NotFound("no entry for itoa@1.0.15".into()))).await;
    let (c, notices) = client(&tc, vec![a.clone(), b.clone()]).await;
    let r = c
        .proof(&ProofQuery::default_variant("itoa", "1.0.15"))
        .await;
    assert!(
        matches!(r, Err(LightError::NoVerifiedAnswer("a proven lookup"))),
        "{r:?}"
    );
    let said = taken(&notices);
    assert!(
        said[0].starts_with(&format!("{a}: faulty peer:")),
        "{said:?}"
    );
    assert_eq!(
        said[1],
        format!("{b}: no entry for itoa@1.0.15; trying the next peer")
    );
    c.shutdown().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
