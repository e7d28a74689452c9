//! Four members over real libp2p on loopback with real consensus and real redb stores,
//! one process, one task group per node; a builder that returns chosen manifests. Each
//! case asserts the logged entry.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use support::in_process::start_member;
use support::peers::{peer_addr, rogue_member};
use support::rules::windows;
use synchronicity::committee::ProtocolRules;
use synchronicity::crypto::NodeIdentity;
use synchronicity::log::CosignedCheckpoint;
use synchronicity::node::NodeHandle;
use synchronicity::node::wire::MESSAGES_TOPIC;
use synchronicity::protocol::{
    Body, LogEntry, Misbehaviour, RevealedOutcome, SignedMessage, Verdict, attestation_statement,
    commitment,
};
use synchronicity::testing::{TestCommittee, free_loopback_ports, manifest, request};
use synchronicity_net::{Multiaddr, NetEvent, NetworkHandle, Validation};

struct Group {
    tc: TestCommittee,
    nodes: Vec<(usize, NodeHandle)>,
    _dirs: Vec<tempfile::TempDir>,
}

/// The group's rules for these tests: 30 s to commit, 10 s least grace (the rogue's copied
/// commitment, published after it sees member 0's, must still be ordered under load), 4 s to
/// reveal.
fn rules() -> ProtocolRules {
    windows(30, 10, 4)
}

async fn start_group(seed: u8, honest: &[usize], overrides: &[(usize, &str, &str)]) -> Group {
    let tc = TestCommittee::with_ports(seed, &free_loopback_ports(4)).with_rules(rules());
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for &i in honest {
        let mine = overrides
            .iter()
            .filter(|(m, _, _)| *m == i)
            .map(|(_, k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (n, dir) = start_member(&tc, i, mine).await;
        nodes.push((i, n));
        dirs.push(dir);
    }
    Group {
        tc,
        nodes,
        _dirs: dirs,
    }
}

async fn entry_on_all(g: &Group, key: &str, secs: u64) -> LogEntry {
    let nodes: Vec<&NodeHandle> = g.nodes.iter().map(|(_, n)| n).collect();
    support::in_process::entry_on_all(&nodes, key, secs).await
}

/// Every member ends with the same root and a cosigned checkpoint of it.
async fn same_cosigned_head(g: &Group, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let heads: Vec<_> = g
            .nodes
            .iter()
            .map(|(_, n)| {
                let s = &n.shared().store;
                let cp = s.latest_checkpoint().unwrap().map(|note| {
                    let c = CosignedCheckpoint::verify(&note, &g.tc.committee).unwrap();
                    (c.checkpoint().size, c.checkpoint().root)
                });
                (s.head().unwrap(), cp)
            })
            .collect();
        let agree = heads
            .iter()
            .all(|(h, cp)| *h == heads[0].0 && *cp == Some(*h));
        if agree {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "heads differ or lack a cosigned checkpoint: {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_members_agree_dissent_and_split() {
    let g = start_group(
        31,
        &[0, 1, 2, 3],
        &[
            (3, "dissent", "other"),
            (2, "split", "x"),
            (3, "split", "x"),
        ],
    )
    .await;
    for k in ["agree", "dissent", "split"] {
        g.nodes[0]
            .1
            .submit(request(k, "1.0.0", "lock"))
            .await
            .unwrap();
    }
    let e = entry_on_all(&g, "agree@1.0.0", 60).await;
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(
        e.digest,
        manifest("agree", "1.0.0", "same").digest().to_vec()
    );
    assert!(e.dissenters.is_empty() && e.silent.is_empty() && e.misbehaviour.is_empty());
    let signers = synchronicity::crypto::ThresholdSignature::from_bytes(&e.attestation, 4)
        .unwrap()
        .signers
        .iter()
        .collect::<Vec<_>>();
    assert_eq!(signers, vec![0, 1, 2, 3], "reproduced 4/4");

    let e = entry_on_all(&g, "dissent@1.0.0", 60).await;
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(e.dissenters.len(), 1);
    assert_eq!(e.dissenters[0].member, 3, "the dissenter is named");
    assert_eq!(
        e.dissenters[0].digest,
        manifest("dissent", "1.0.0", "other").digest().to_vec()
    );

    light_client_follows_the_log(&g).await;

    let e = entry_on_all(&g, "split@1.0.0", 60).await;
    assert_eq!(e.verdict, Verdict::NotReproduced, "two and two");
    assert!(e.attestation.is_empty());
    assert_eq!(e.dissenters.len(), 4);
    same_cosigned_head(&g, 30).await;
    for (_, n) in g.nodes {
        n.shutdown().await;
    }
}

/// Member 3 is Byzantine: a raw network endpoint with member 3's keys that publishes what
/// the test tells it to.
struct Rogue {
    net: NetworkHandle,
    events: tokio::sync::mpsc::Receiver<NetEvent>,
    identity: NodeIdentity,
}

async fn rogue(tc: &TestCommittee, i: usize, bootstrap: Vec<Multiaddr>) -> Rogue {
    let (net, events, identity) = rogue_member(tc, i, bootstrap).await;
    Rogue {
        net,
        events,
        identity,
    }
}

impl Rogue {
    /// Publishes, and publishes again twice a second later (as an honest node re-publishes
    /// until its message is ordered: a member that had not yet applied the round ignores it).
    async fn publish(&self, tc: &TestCommittee, signer: u32, key: &NodeIdentity, body: Body) {
        let m = SignedMessage::sign(body, signer, key, tc.committee.signing_domain());
        // Gossip may not have a mesh yet: retry.
        let mut sent = false;
        for _ in 0..50 {
            if self.net.publish(MESSAGES_TOPIC, m.to_cbor()).await.is_ok() {
                sent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(sent, "rogue could not publish");
        let net = self.net.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let _ = net.publish(MESSAGES_TOPIC, m.to_cbor()).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byzantine_member_and_non_member_are_contained() {
    let g = start_group(32, &[0, 1, 2], &[]).await;
    let tc = &g.tc;
    let mut r = rogue(tc, 3, vec![tc.committee.members()[0].addrs[0].clone()]).await;
    let outsider = NodeIdentity::from_secret_bytes(&[77; 32]).unwrap();
    for k in ["silent", "mismatch", "copy", "twice"] {
        g.nodes[0]
            .1
            .submit(request(k, "1.0.0", "lock"))
            .await
            .unwrap();
    }
    // A request signed by a non-member, relayed by a member under a member's position.
    r.publish(
        tc,
        1,
        &outsider,
        Body::Request(request("outsider", "1.0.0", "lock")),
    )
    .await;

    let me = tc.committee.members()[3].peer_id;
    let salt = [9u8; 32];
    let mut copied: Option<Vec<u8>> = None;
    let mut revealed = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while revealed.len() < 3 && tokio::time::Instant::now() < deadline {
        let Ok(Some(NetEvent::Gossip(gm))) =
            tokio::time::timeout(Duration::from_secs(1), r.events.recv()).await
        else {
            continue;
        };
        r.net.validate(&gm, Validation::Accept);
        let Ok(m) = SignedMessage::from_cbor(&gm.data) else {
            continue;
        };
        match m.body {
            Body::Commit { request_id, .. }
                if m.signer == 0
                    && ["silent", "mismatch", "twice"]
                        .iter()
                        .any(|k| request_id == request(k, "1.0.0", "lock").id()) =>
            {
                // The round is open (member 0 committed): commit to the honest digest;
                // "silent" never reveals; for "twice" also commit to another digest.
                let krate = ["silent", "mismatch", "twice"]
                    .into_iter()
                    .find(|k| request_id == request(k, "1.0.0", "lock").id())
                    .unwrap();
                let id: [u8; 32] = request_id.as_slice().try_into().unwrap();
                let d = manifest(krate, "1.0.0", "same").digest();
                let c = commitment(&id, &d, &salt, &me);
                let body = Body::Commit {
                    request_id: request_id.clone(),
                    commitment: c.to_vec(),
                };
                r.publish(tc, 3, &r.identity, body).await;
                if krate == "twice" {
                    let other = manifest(krate, "1.0.0", "other").digest();
                    let body = Body::Commit {
                        request_id,
                        commitment: commitment(&id, &other, &salt, &me).to_vec(),
                    };
                    r.publish(tc, 3, &r.identity, body).await;
                }
            }
            Body::Commit {
                request_id,
                commitment: c,
            } if m.signer == 0 && request_id == request("copy", "1.0.0", "lock").id() => {
                // Copy member 0's commitment without building.
                copied = Some(c.clone());
                let body = Body::Commit {
                    request_id,
                    commitment: c,
                };
                r.publish(tc, 3, &r.identity, body).await;
            }
            Body::Reveal {
                request_id,
                outcome,
                salt: their_salt,
                ..
            } if m.signer == 0 => {
                let id: [u8; 32] = request_id.as_slice().try_into().unwrap();
                // Member 3 reveals manifest `variant` of `krate`, with its own salt.
                let own_reveal = |krate: &str, variant: &str| {
                    let m = manifest(krate, "1.0.0", variant);
                    let st = attestation_statement(tc.committee.origin(), &id, &m.digest());
                    Body::Reveal {
                        request_id: request_id.clone(),
                        outcome: RevealedOutcome::Manifest(m.to_text()),
                        salt: salt.to_vec(),
                        attestation: tc.bls[3].sign(st.as_bytes()).to_bytes().to_vec(),
                    }
                };
                let body = if id == request("mismatch", "1.0.0", "lock").id() {
                    // Reveal a digest other than the one committed to.
                    own_reveal("mismatch", "other")
                } else if id == request("twice", "1.0.0", "lock").id() {
                    // The equivocator reveals its first commitment: excluded anyway.
                    own_reveal("twice", "same")
                } else if copied.is_some() && id == request("copy", "1.0.0", "lock").id() {
                    // Copy member 0's reveal too.
                    let d = synchronicity::protocol::outcome_digest(&outcome).unwrap();
                    let st = attestation_statement(tc.committee.origin(), &id, &d);
                    Body::Reveal {
                        request_id,
                        outcome,
                        salt: their_salt,
                        attestation: tc.bls[3].sign(st.as_bytes()).to_bytes().to_vec(),
                    }
                } else {
                    continue;
                };
                if revealed.insert(id) {
                    r.publish(tc, 3, &r.identity, body).await;
                }
            }
            _ => {}
        }
    }
    assert!(copied.is_some(), "the rogue saw member 0's commitment");

    let e = entry_on_all(&g, "silent@1.0.0", 60).await;
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

    let e = entry_on_all(&g, "mismatch@1.0.0", 60).await;
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::RevealMismatch)]);
    assert!(
        e.dissenters.is_empty(),
        "a mismatching reveal is not counted"
    );

    let e = entry_on_all(&g, "copy@1.0.0", 60).await;
    assert_eq!(
        e.misbehaviour,
        vec![(3, Misbehaviour::RevealMismatch)],
        "a copied commitment does not open for another member"
    );
    let signers: Vec<usize> =
        synchronicity::crypto::ThresholdSignature::from_bytes(&e.attestation, 4)
            .unwrap()
            .signers
            .iter()
            .collect();
    assert_eq!(signers, vec![0, 1, 2]);

    // Two commitments: listed under misbehaviour, not among the attesters.
    let e = entry_on_all(&g, "twice@1.0.0", 60).await;
    assert_eq!(e.verdict, Verdict::Reproduced);
    assert_eq!(e.misbehaviour, vec![(3, Misbehaviour::DoubleCommitment)]);
    assert!(e.dissenters.is_empty() && e.silent.is_empty(), "{e:?}");
    let signers: Vec<usize> =
        synchronicity::crypto::ThresholdSignature::from_bytes(&e.attestation, 4)
            .unwrap()
            .signers
            .iter()
            .collect();
    assert_eq!(signers, vec![0, 1, 2], "the equivocator is not an attester");

    // The non-member's request never entered a block.
    for (_, n) in &g.nodes {
        assert!(
            n.shared()
                .store
                .variants("outsider@1.0.0")
                .unwrap()
                .is_empty()
        );
        assert!(
            n.round_status(&request("outsider", "1.0.0", "lock").id())
                .is_none()
        );
    }
    same_cosigned_head(&g, 30).await;
    faulty_light_peer_is_skipped(&g, r).await;
    for (_, n) in g.nodes {
        n.shutdown().await;
    }
}

/// Member 3 (the rogue) answers light clients with the group's real cosigned checkpoint but
/// a wrong consistency proof, or with an older checkpoint: `checkpoint` names it as a faulty
/// peer, asks the next one, and exits 0 with the honest member's proof (no split view).
async fn faulty_light_peer_is_skipped(g: &Group, mut r: Rogue) {
    use synchronicity::node::wire::{self, LightRequest, LightResponse};
    let store = &g.nodes[0].1.shared().store;
    let latest = store
        .latest_checkpoint()
        .unwrap()
        .expect("a cosigned checkpoint");
    let size = CosignedCheckpoint::verify(&latest, &g.tc.committee)
        .unwrap()
        .checkpoint()
        .size;
    assert!(size >= 3, "three entries decided");
    let older =
        g.tc.cosign(1, store.tree_hash(1).unwrap())
            .note()
            .to_string();
    let rogue_addr = format!(
        "{}/p2p/{}",
        r.net.listen_addrs().await.unwrap()[0],
        r.net.local_peer_id()
    );
    // Answers: first a wrong proof, then an older checkpoint.
    let answers = vec![
        LightResponse::Checkpoint {
            note: latest.clone(),
            proof: vec![serde_bytes::ByteBuf::from(vec![7u8; 32]); 2],
        },
        LightResponse::Checkpoint {
            note: older.clone(),
            proof: vec![],
        },
    ];
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let served_by_rogue = served.clone();
    let responder = tokio::spawn(async move {
        let mut answers = answers.into_iter();
        while let Some(ev) = r.events.recv().await {
            let NetEvent::Request(req) = ev else { continue };
            match wire::decode::<LightRequest>(&req.data, wire::MAX_REQUEST) {
                Ok(LightRequest::Checkpoint { .. }) => {
                    if let Some(a) = answers.next() {
                        served_by_rogue.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        req.respond(wire::encode(&a)).await;
                    }
                }
                Ok(LightRequest::Consistency { .. }) => {
                    let bad =
                        LightResponse::Consistency(vec![serde_bytes::ByteBuf::from(vec![8u8; 32])]);
                    req.respond(wire::encode(&bad)).await;
                }
                _ => req.refuse("rogue".into()).await,
            }
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let trust = tmp.path().join("committee.toml");
    std::fs::write(&trust, g.tc.committee.to_toml()).unwrap();
    // The remembered checkpoint: size 1 (so a consistency proof is needed), then the latest
    // (so the rogue's size-1 checkpoint is older than it).
    for (case, remembered) in [
        ("a wrong consistency proof", &older),
        ("an older checkpoint", &latest),
    ] {
        let state = tmp.path().join("state.note");
        std::fs::write(&state, remembered).unwrap();
        let o = run_cli(checkpoint_args(
            &[rogue_addr.clone(), member_addr(g, 0)],
            &trust,
            &state,
        ))
        .await;
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{case}: {err}");
        assert!(
            err.contains(&rogue_addr) && err.contains("faulty peer") && !err.contains("SPLIT"),
            "{case}: the rogue is named as a faulty peer: {err}"
        );
        let now =
            CosignedCheckpoint::verify(&std::fs::read_to_string(&state).unwrap(), &g.tc.committee)
                .unwrap();
        assert!(
            now.checkpoint().size >= size,
            "{case}: the honest member's checkpoint is kept"
        );
    }
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the rogue answered both times"
    );
    responder.abort();
    let _ = responder.await;
}

fn member_addr(g: &Group, i: usize) -> String {
    peer_addr(&g.tc.committee, i)
}

/// `checkpoint --peer P... --trust T --state S`.
fn checkpoint_args(
    peers: &[String],
    trust: &std::path::Path,
    state: &std::path::Path,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["checkpoint".into()];
    for p in peers {
        args.extend(["--peer".into(), p.into()]);
    }
    args.extend(["--trust".into(), trust.into()]);
    args.extend(["--state".into(), state.into()]);
    args
}

async fn run_cli(args: Vec<std::ffi::OsString>) -> std::process::Output {
    tokio::task::spawn_blocking(move || support::cli::bin().args(args).output().unwrap())
        .await
        .unwrap()
}

/// The light client: a proof fetched from a member verifies; after the log grows, the new
/// checkpoint is proven consistent with the remembered one; a forged remembered checkpoint
/// and a split view are refused with a non-zero exit.
async fn light_client_follows_the_log(g: &Group) {
    let tmp = tempfile::tempdir().unwrap();
    let trust = tmp.path().join("committee.toml");
    std::fs::write(&trust, g.tc.committee.to_toml()).unwrap();
    let state = tmp.path().join("checkpoint.note");
    let proof = tmp.path().join("agree.tlog-proof");
    // Wait for a checkpoint covering "agree" on member 1, then fetch through member 1.
    let mut args: Vec<std::ffi::OsString> = vec!["proof".into(), "agree@1.0.0".into()];
    args.extend(["--peer".into(), member_addr(g, 1).into()]);
    args.extend(["--trust".into(), trust.clone().into()]);
    args.extend(["--out".into(), proof.clone().into()]);
    let mut out = run_cli(args.clone()).await;
    for _ in 0..50 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        out = run_cli(args.clone()).await;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = run_cli(vec![
        "verify".into(),
        proof.clone().into(),
        "--trust".into(),
        trust.clone().into(),
        "--crate".into(),
        "agree@1.0.0".into(),
    ])
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A not-reproduced crate (the 2+2 split): `proof` exits non-zero and writes nothing;
    // `--allow-unreproduced` writes it.
    let unrepro = tmp.path().join("split.tlog-proof");
    let mut args: Vec<std::ffi::OsString> = vec!["proof".into(), "split@1.0.0".into()];
    args.extend(["--peer".into(), member_addr(g, 0).into()]);
    args.extend(["--trust".into(), trust.clone().into()]);
    args.extend(["--out".into(), unrepro.clone().into()]);
    let mut o = run_cli(args.clone()).await;
    for _ in 0..50 {
        if String::from_utf8_lossy(&o.stderr).contains("NotReproduced") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        o = run_cli(args.clone()).await;
    }
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing written"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!unrepro.exists());
    args.push("--allow-unreproduced".into());
    let o = run_cli(args).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(unrepro.exists());

    let checkpoint = |state: std::path::PathBuf, peer: String| {
        run_cli(vec![
            "checkpoint".into(),
            "--peer".into(),
            peer.into(),
            "--trust".into(),
            trust.clone().into(),
            "--state".into(),
            state.into(),
        ])
    };
    // The first peer is unreachable: a faulty peer, named; the next one answers. Its peer
    // id is nobody's: with a member's, libp2p may reach that member at an address it
    // learnt elsewhere, and the "dead" peer answers.
    let dead = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        free_loopback_ports(1)[0],
        synchronicity_net::PeerId::random()
    );
    let o = run_cli(checkpoint_args(
        &[dead.clone(), member_addr(g, 2)],
        &trust,
        &state,
    ))
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&dead),
        "the faulty peer is named: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let first =
        CosignedCheckpoint::verify(&std::fs::read_to_string(&state).unwrap(), &g.tc.committee)
            .unwrap();
    // A second request grows the log; the next checkpoint comes with a consistency proof.
    g.nodes[0]
        .1
        .submit(request("second", "1.0.0", "lock"))
        .await
        .unwrap();
    entry_on_all(g, "second@1.0.0", 60).await;
    let mut grown = false;
    for _ in 0..50 {
        let o = checkpoint(state.clone(), member_addr(g, 3)).await;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let body = String::from_utf8_lossy(&o.stdout).to_string();
        let now =
            CosignedCheckpoint::verify(&std::fs::read_to_string(&state).unwrap(), &g.tc.committee)
                .unwrap();
        if now.checkpoint().size > first.checkpoint().size {
            assert!(body.starts_with("old "), "tlog-witness body: {body}");
            grown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(grown, "the light client saw the log grow");

    // A forged remembered checkpoint (signature of another committee) is refused.
    let forged = tmp.path().join("forged.note");
    let other = TestCommittee::new(4, 99);
    std::fs::write(&forged, other.cosign(1, [7; 32]).note()).unwrap();
    let o = checkpoint(forged, member_addr(g, 0)).await;
    assert!(!o.status.success());
    // A validly cosigned checkpoint of another history that no member can prove
    // consistent: a split view, loudly, with both checkpoints in an evidence file.
    let split = tmp.path().join("split.note");
    std::fs::write(&split, g.tc.cosign(1, [7; 32]).note()).unwrap();
    let o = checkpoint(split, member_addr(g, 0)).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("SPLIT VIEW") && err.contains("no reachable member"),
        "{err}"
    );
    let evidence = |err: &str| {
        let path = err.trim().rsplit(' ').next().unwrap().to_string();
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    assert!(evidence(&err).starts_with("synchronicity/split-view-evidence/v1\n"));
    // Two validly cosigned checkpoints of one size with different roots.
    let size = first_size(&state, g);
    let same = tmp.path().join("same-size.note");
    std::fs::write(&same, g.tc.cosign(size, [9; 32]).note()).unwrap();
    let o = checkpoint(same, member_addr(g, 1)).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("SPLIT VIEW") && err.contains("different roots"),
        "{err}"
    );
    assert!(evidence(&err).contains(&B64.encode([9u8; 32])));
}

/// The size of the checkpoint remembered in `state`.
fn first_size(state: &std::path::Path, g: &Group) -> u64 {
    CosignedCheckpoint::verify(&std::fs::read_to_string(state).unwrap(), &g.tc.committee)
        .unwrap()
        .checkpoint()
        .size
}
