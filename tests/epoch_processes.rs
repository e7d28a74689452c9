//! Committee changes with real member processes: members approve the next committee file
//! through their control sockets (`committee approve`), the change is decided, every member
//! restarts itself into the new epoch at the same height, and the group goes on deciding.
//! Epoch 1 adds a fifth builder, which started from the genesis file with `--join` and
//! followed the log as a non-voter, under load; epoch 2 removes an original member (which
//! stops with one line); epoch 3 rotates one member's BLS key (`keygen --rotate-bls`);
//! epoch 4 changes a rule. Every log holds the change entries, the roots agree, `log fsck`
//! checks each checkpoint against its epoch's committee, and proofs of entries from every
//! epoch verify with the genesis and the chain (`verify --chain`, `proof --refresh`).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::Cluster;
use support::cli::{bin, ok};
use support::rules::short_rounds;
use synchronicity::log::LogStore;
use synchronicity::node::control::{self, ControlRequest};
use synchronicity::testing::free_loopback_ports;
use synchronicity_verify::Committee;
use synchronicity_verify::epoch::{ChainFile, ChainLink, ChangeEntry};
use synchronicity_verify::tlog::CosignedCheckpoint;

const NODE_TOML: &str = "idle_interval_ms = 1000\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `synchronicity committee approve FILE --node DIR` for each of `members`.
fn approve(c: &Cluster, file: &Path, members: &[usize]) {
    for &i in members {
        let o = bin()
            .args(["committee", "approve", s(file), "--node", s(&c.dir(i))])
            .output()
            .unwrap();
        let err = ok(&o);
        assert!(err.contains("published"), "{err}");
    }
}

/// Waits until every one of `members` serves epoch `epoch`.
async fn reach_epoch(c: &Cluster, members: &[usize], epoch: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut epochs = Vec::new();
        for &i in members {
            epochs.push(c.status(i, None).await.map(|s| s.epoch));
        }
        if epochs.iter().all(|e| *e == Some(epoch)) {
            return;
        }
        if Instant::now() >= deadline {
            let tails: Vec<String> = members
                .iter()
                .map(|&i| format!("--- member {i}\n{}", c.log_tail(i)))
                .collect();
            panic!(
                "not every member reached epoch {epoch}: {epochs:?}\n{}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The chain file from a stopped member's store: each change entry under its handoff.
fn chain_from_store(store: &LogStore, genesis: &Committee) -> ChainFile {
    let mut current = genesis.clone();
    let mut links = Vec::new();
    for (epoch, index) in store.epochs().unwrap() {
        let note = store
            .checkpoint_at(index + 1)
            .unwrap()
            .expect("the handoff checkpoint is cosigned");
        let handoff = CosignedCheckpoint::verify(&note, &current).expect("cosigned by the old");
        let link = store.proof_file(index, &handoff).unwrap();
        let entry = ChangeEntry::decode(&store.entry(index).unwrap()).unwrap();
        current = entry.verify(&current).unwrap();
        links.push(ChainLink {
            epoch,
            proof: link.format(),
        });
    }
    ChainFile {
        origin: genesis.origin().into(),
        genesis: hex::encode(genesis.digest()),
        links,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_joins_one_leaves_a_key_rotates_a_rule_changes_and_the_group_goes_on() {
    let mut c = Cluster::new(47, 4, short_rounds(), NODE_TOML);
    for i in 0..4 {
        c.start(i);
    }
    c.submit(0, "e0", "1.0.0").await;
    c.decided_on(&[0, 1, 2, 3], "e0@1.0.0", 60).await;
    let genesis: Committee = (*c.tc.committee).clone();
    let root = c.root.path().to_path_buf();
    // A user's proof from epoch 0, kept (refreshed after the changes, below).
    let old_proof = root.join("old-e0.tlog-proof");
    ok(&bin()
        .args(["proof", "e0@1.0.0", "--peer", &c.peer(0)])
        .args(["--trust", s(&c.committee_file), "--out", s(&old_proof)])
        .output()
        .unwrap());

    // Epoch 1: a fifth builder joins. Its operator makes its keys, starts it from the
    // genesis file with --join (it follows the log as a non-voter), and the members add it.
    let j = c.add_slot();
    let addr = format!("/ip4/127.0.0.1/tcp/{}", free_loopback_ports(1)[0]);
    ok(&bin()
        .args([
            "keygen",
            "--dir",
            s(&c.dir(j)),
            "--name",
            "m4",
            "--addr",
            &addr,
        ])
        .output()
        .unwrap());
    std::fs::write(c.dir(j).join("node.toml"), NODE_TOML).unwrap();
    c.extra_args[j] = vec!["--join".into()];
    c.start(j);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (follower, member) = (c.status(j, None).await, c.status(0, None).await);
        if let (Some(f), Some(m)) = (follower, member)
            && f.following
            && f.epoch == 0
            && f.log_size == m.log_size
            && f.root == m.root
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the joining node did not follow the log\n{}",
            c.log_tail(j)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It orders nothing before it is a member: one line says why.
    let req = ControlRequest::Submit {
        krate: "early".into(),
        version: "1.0.0".into(),
        lockfile: Some("lock".into()),
        variant: Default::default(),
    };
    let err = control::request(&c.dir(j), &req)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a member of epoch 0"), "{err}");
    let e1 = root.join("epoch1.toml");
    ok(&bin()
        .args(["committee", "propose", "--from", s(&c.committee_file)])
        .args(["--add", s(&c.dir(j)), "--out", s(&e1)])
        .output()
        .unwrap());
    // Under load: rounds are ordered while the approvals come in, and after.
    c.submit(1, "load1", "1.0.0").await;
    c.submit(2, "load2", "1.0.0").await;
    approve(&c, &e1, &[0, 1, 2]);
    c.submit(3, "load3", "1.0.0").await;
    reach_epoch(&c, &[0, 1, 2, 3, j], 1).await;
    let joined = c.status(j, None).await.unwrap();
    assert!(!joined.following && joined.member == 4, "{joined:?}");
    for key in ["load1@1.0.0", "load2@1.0.0", "load3@1.0.0"] {
        c.decided_on(&[0, 1, 2, 3, j], key, 120).await;
    }
    // The new member orders, builds and attests like the others.
    c.submit(j, "e1", "1.0.0").await;
    let e1_status = c.decided_on(&[0, 1, 2, 3, j], "e1@1.0.0", 90).await;
    let entry = &e1_status[0].entry.as_ref().unwrap().entry;
    assert_eq!(entry.epoch, 1);

    // Epoch 2: an original member (m1) leaves; t = 4 of 5, the newcomer among them.
    let e2 = root.join("epoch2.toml");
    ok(&bin()
        .args(["committee", "propose", "--from", s(&e1), "--remove", "m1"])
        .args(["--out", s(&e2)])
        .output()
        .unwrap());
    approve(&c, &e2, &[0, 2, 3, j]);
    let members = [0, 2, 3, j];
    reach_epoch(&c, &members, 2).await;
    // The removed member stopped with one line, and exit status 0 (it did what the group
    // decided; a service manager must not start it again).
    let status = c.wait_exit(1, Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        c.log_tail(1)
            .contains("is not a member of the committee of epoch 2: it was removed"),
        "{}",
        c.log_tail(1)
    );
    c.submit(j, "e2", "1.0.0").await;
    c.decided_on(&members, "e2@1.0.0", 90).await;

    // Epoch 3: m3 and m0 get new BLS keys.
    let (n0, n3) = (c.dir(0), c.dir(3));
    for n in [&n0, &n3] {
        ok(&bin()
            .args(["keygen", "--dir", s(n), "--rotate-bls"])
            .output()
            .unwrap());
    }
    let e3 = root.join("epoch3.toml");
    let rotate3 = format!("m3={}", s(&n3.join("member.next.toml")));
    let rotate0 = format!("m0={}", s(&n0.join("member.next.toml")));
    ok(&bin()
        .args(["committee", "propose", "--from", s(&e2)])
        .args(["--rotate", &rotate3, "--rotate", &rotate0])
        .args(["--out", s(&e3)])
        .output()
        .unwrap());
    let old_key = std::fs::read(n3.join("bls.key")).unwrap();
    // m2 is down across this boundary: the others cosign the handoff and move on.
    c.stop(2);
    approve(&c, &e3, &[0, 3, j]);
    reach_epoch(&c, &[0, 3, j], 3).await;
    c.submit(0, "e3", "1.0.0").await;
    c.decided_on(&[0, 3, j], "e3@1.0.0", 90).await;
    // Back, it applies the block that ended epoch 2 from sync. The others sign the handoff
    // again for it, but two of them with their new keys, which epoch 2 does not know: it
    // asks a member for the handoff checkpoint (not the five-minute wait for cosignatures)
    // and moves to epoch 3.
    c.start(2);
    reach_epoch(&c, &members, 3).await;
    let log2 = std::fs::read_to_string(c.dir(2).join("node.log")).unwrap();
    assert!(
        log2.contains("fetched the handoff checkpoint from a member"),
        "{}",
        c.log_tail(2)
    );
    c.decided_on(&members, "e3@1.0.0", 90).await;
    // m3 signs with its new key now; the old one is gone from its directory.
    let new_key = std::fs::read(n3.join("bls.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!n3.join("bls.next.key").exists());

    // Epoch 4: a longer reveal window; a round is open while 3 of 4 approve.
    let e4 = root.join("epoch4.toml");
    ok(&bin()
        .args(["committee", "propose", "--from", s(&e3)])
        .args(["--reveal-window-secs", "5", "--out", s(&e4)])
        .output()
        .unwrap());
    c.submit(2, "open", "1.0.0").await;
    approve(&c, &e4, &[0, 3, j]);
    c.submit(3, "e4", "1.0.0").await;
    reach_epoch(&c, &members, 4).await;
    for key in ["open@1.0.0", "e4@1.0.0"] {
        c.decided_on(&members, key, 90).await;
    }
    let e4_status = c.status(0, Some("e4@1.0.0")).await.unwrap();
    assert_eq!(e4_status.entry.as_ref().unwrap().entry.epoch, 4);
    c.converge(&members, 60).await;

    // A light client fetches the chain from a member and verifies it from the genesis.
    let fetched = root.join("fetched-chain.toml");
    let chain_cmd = |out: &Path| {
        bin()
            .args(["committee", "chain", "--peer", &c.peer(2)])
            .args(["--trust", s(&c.committee_file), "--out", s(out)])
            .args(["--current", s(&root.join("current.toml"))])
            .output()
            .unwrap()
    };
    let err = ok(&chain_cmd(&fetched));
    assert!(err.contains("epochs 0..=4 (4 new)"), "{err}");
    // The latest committee file, for the next proposal: epoch 4's.
    let current = std::fs::read_to_string(root.join("current.toml")).unwrap();
    let e4_text = std::fs::read_to_string(&e4).unwrap();
    assert_eq!(
        Committee::from_toml(&current).unwrap().digest(),
        Committee::from_toml(&e4_text).unwrap().digest()
    );
    // Asked again, the chain it holds is only extended (by nothing).
    let err = ok(&chain_cmd(&fetched));
    assert!(err.contains("(0 new)"), "{err}");
    // The newcomer serves the whole chain too: it fetched the handoff checkpoints of the
    // epochs it followed (epoch 0's, before it was a member) from the members.
    let member: toml::Value =
        toml::from_str(&std::fs::read_to_string(c.dir(j).join("member.toml")).unwrap()).unwrap();
    let joiner_addr = format!(
        "{}/p2p/{}",
        member["addrs"][0].as_str().unwrap(),
        member["peer_id"].as_str().unwrap()
    );
    let from_joiner = root.join("joiner-chain.toml");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = bin()
            .args(["committee", "chain", "--peer", &joiner_addr])
            .args(["--trust", s(&c.committee_file), "--out", s(&from_joiner)])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        if o.status.success() && err.contains("epochs 0..=4") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the newcomer does not serve the chain: {err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A held chain that was tampered with is refused, and left as it is.
    let text = std::fs::read_to_string(&fetched).unwrap();
    let forged = text.replacen("epoch = 2", "epoch = 3", 1);
    std::fs::write(&fetched, &forged).unwrap();
    let o = chain_cmd(&fetched);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&fetched).unwrap(), forged);
    std::fs::write(&fetched, &text).unwrap();

    // The light client with the chain: a proof of an epoch-0 entry under the current
    // (epoch 4) checkpoint is fetched and verified; with the genesis alone it is refused.
    let light_proof = root.join("light-e0.tlog-proof");
    let proof_cmd = |chain: Option<&Path>| {
        let mut cmd = bin();
        cmd.args(["proof", "e0@1.0.0", "--peer", &c.peer(0)]).args([
            "--trust",
            s(&c.committee_file),
            "--out",
            s(&light_proof),
        ]);
        if let Some(ch) = chain {
            cmd.args(["--chain", s(ch)]);
        }
        cmd.output().unwrap()
    };
    assert!(!proof_cmd(None).status.success());
    assert!(!light_proof.exists());
    ok(&proof_cmd(Some(&fetched)));
    ok(&bin()
        .args(["verify", s(&light_proof), "--trust", s(&c.committee_file)])
        .args(["--chain", s(&fetched), "--crate", "e0@1.0.0"])
        .output()
        .unwrap());
    // The epoch-0 proof re-proven under the current checkpoint (same entry, same index).
    let refreshed = root.join("refreshed-e0.tlog-proof");
    let err = ok(&bin()
        .args(["proof", "--refresh", s(&old_proof), "--peer", &c.peer(3)])
        .args(["--trust", s(&c.committee_file), "--chain", s(&fetched)])
        .args(["--out", s(&refreshed)])
        .output()
        .unwrap());
    assert!(
        err.contains("(epoch 4; was") && err.contains("epoch 0)"),
        "{err}"
    );
    ok(&bin()
        .args(["verify", s(&refreshed), "--trust", s(&c.committee_file)])
        .args(["--chain", s(&fetched), "--crate", "e0@1.0.0"])
        .output()
        .unwrap());
    // `checkpoint` with the chain: the current checkpoint, cosigned by epoch 4.
    let state = root.join("checkpoint.note");
    ok(&bin()
        .args(["checkpoint", "--peer", &c.peer(0)])
        .args(["--trust", s(&c.committee_file), "--chain", s(&fetched)])
        .args(["--state", s(&state)])
        .output()
        .unwrap());
    assert!(state.exists());

    for &i in &members {
        c.stop(i);
    }

    // Every log holds the four change entries at the same places; the same head everywhere
    // (the newcomer's too: it applied the same blocks).
    let mut heads = Vec::new();
    for &i in &members {
        let store = LogStore::open_existing(&c.dir(i).join("log")).unwrap();
        heads.push((store.head().unwrap(), store.epochs().unwrap()));
    }
    assert!(heads.iter().all(|h| *h == heads[0]), "{heads:?}");
    assert_eq!(heads[0].1.len(), 4);

    let store = LogStore::open_existing(&c.dir(0).join("log")).unwrap();
    let chain = chain_from_store(&store, &genesis);
    let chain_file = root.join("chain.toml");
    std::fs::write(&chain_file, toml::to_string(&chain).unwrap()).unwrap();
    // The member served exactly the chain its store holds (members may hold the handoff
    // checkpoint with different sets of t cosigners: compare with the one asked).
    let served = synchronicity_verify::epoch::parse_chain_file(&text).unwrap();
    let store2 = LogStore::open_existing(&c.dir(2).join("log")).unwrap();
    assert_eq!(served, chain_from_store(&store2, &genesis));
    drop(store2);
    let last = Committee::from_toml(&std::fs::read_to_string(&e4).unwrap()).unwrap();
    // Proofs of every epoch's entries under the latest checkpoint (cosigned by epoch 4).
    let latest = store.latest_checkpoint().unwrap().unwrap();
    let latest = CosignedCheckpoint::verify(&latest, &last).expect("cosigned by epoch 4");
    let mut proofs: Vec<(String, PathBuf)> = Vec::new();
    for key in ["e0", "load1", "e1", "e2", "e3", "open", "e4"] {
        let index = *store
            .variants(&format!("{key}@1.0.0"))
            .unwrap()
            .first()
            .unwrap();
        let path = root.join(format!("{key}.tlog-proof"));
        std::fs::write(&path, store.proof_file(index, &latest).unwrap().format()).unwrap();
        proofs.push((key.into(), path));
    }
    // The retired keys no longer count: the genesis committee (m1 since removed, m0's and
    // m3's BLS keys since rotated) signing the latest size is refused with the chain, and
    // so is the proof under it.
    let (size, tree_root) = (latest.checkpoint().size, latest.checkpoint().root);
    let retired = c.tc.cosign(size, tree_root);
    let e4_index = *store.variants("e4@1.0.0").unwrap().first().unwrap();
    let retired_proof = root.join("retired.tlog-proof");
    std::fs::write(
        &retired_proof,
        store.proof_file(e4_index, &retired).unwrap().format(),
    )
    .unwrap();
    drop(store);
    let o = bin()
        .args(["verify", s(&retired_proof), "--trust", s(&c.committee_file)])
        .args(["--chain", s(&chain_file), "--crate", "e4@1.0.0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("epoch 0"), "{err}");
    for (key, path) in &proofs {
        let o = bin()
            .args(["verify", s(path), "--trust", s(&c.committee_file)])
            .args([
                "--chain",
                s(&chain_file),
                "--crate",
                &format!("{key}@1.0.0"),
            ])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        ok(&o);
        assert!(out.contains("epoch 4"), "{out}");
    }
    // Without the chain, the genesis does not reach epoch 4's key.
    let o = bin()
        .args(["verify", s(&proofs[0].1), "--trust", s(&c.committee_file)])
        .args(["--crate", "e0@1.0.0"])
        .output()
        .unwrap();
    assert!(!o.status.success());

    // fsck with the genesis: each change verified, each checkpoint by its epoch's key.
    for &i in &members {
        c.fsck(i);
    }
    // Each member restarted itself once per epoch it moved to; the newcomer too (it
    // followed epoch 0 as a non-voter).
    for &i in &members {
        let log = std::fs::read_to_string(c.dir(i).join("node.log")).unwrap();
        assert_eq!(
            log.matches("restarting into the next epoch").count(),
            4,
            "member {i}"
        );
    }
    let log = std::fs::read_to_string(c.dir(j).join("node.log")).unwrap();
    assert!(log.contains("following the log as a non-voter"));
}
