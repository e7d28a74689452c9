//! Committee changes with real member processes: members approve the next committee file
//! through their control sockets (`committee approve`), the change is decided, every member
//! restarts itself into the new epoch at the same height, and the group goes on deciding.
//! Epoch 1 changes a rule; epoch 2 rotates one member's BLS key (`keygen --rotate-bls`) and
//! removes another (which stops with one line). Every log holds the change entries, the
//! roots agree, `log fsck` checks each checkpoint against its epoch's committee, and proofs
//! of entries from every epoch verify with the genesis and the chain (`verify --chain`).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::Cluster;
use support::cli::{bin, ok};
use support::rules::short_rounds;
use synchronicity::log::LogStore;
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
async fn a_group_changes_rules_keys_and_members_and_goes_on_deciding() {
    let mut c = Cluster::new(47, 5, short_rounds(), NODE_TOML);
    for i in 0..5 {
        c.start(i);
    }
    c.submit(0, "before", "1.0.0").await;
    c.decided_on(&[0, 1, 2, 3, 4], "before@1.0.0", 60).await;
    let genesis: Committee = (*c.tc.committee).clone();
    let root = c.root.path().to_path_buf();
    // A user's proof from epoch 0, kept (refreshed after the changes, below).
    let old_proof = root.join("old-before.tlog-proof");
    ok(&bin()
        .args(["proof", "before@1.0.0", "--peer", &c.peer(0)])
        .args(["--trust", s(&c.committee_file), "--out", s(&old_proof)])
        .output()
        .unwrap());

    // Epoch 1: a longer reveal window; a round is open while 4 of 5 approve.
    let e1 = root.join("epoch1.toml");
    ok(&bin()
        .args(["committee", "propose", "--from", s(&c.committee_file)])
        .args(["--reveal-window-secs", "5", "--out", s(&e1)])
        .output()
        .unwrap());
    c.submit(1, "open", "1.0.0").await;
    approve(&c, &e1, &[0, 1, 2, 3]);
    c.submit(2, "after1", "1.0.0").await;
    reach_epoch(&c, &[0, 1, 2, 3, 4], 1).await;
    for key in ["open@1.0.0", "after1@1.0.0"] {
        c.decided_on(&[0, 1, 2, 3, 4], key, 90).await;
    }

    // Epoch 2: m3 gets a new BLS key, m4 leaves.
    let n3 = c.dir(3);
    ok(&bin()
        .args(["keygen", "--dir", s(&n3), "--rotate-bls"])
        .output()
        .unwrap());
    let e2 = root.join("epoch2.toml");
    let rotate = format!("m3={}", s(&n3.join("member.next.toml")));
    ok(&bin()
        .args([
            "committee",
            "propose",
            "--from",
            s(&e1),
            "--rotate",
            &rotate,
        ])
        .args(["--remove", "m4", "--out", s(&e2)])
        .output()
        .unwrap());
    let old_key = std::fs::read(n3.join("bls.key")).unwrap();
    approve(&c, &e2, &[0, 1, 3, 4]);
    reach_epoch(&c, &[0, 1, 2, 3], 2).await;
    c.submit(0, "after2", "1.0.0").await;
    c.decided_on(&[0, 1, 2, 3], "after2@1.0.0", 90).await;
    // The removed member stopped with one line, and exit status 0 (it did what the group
    // decided; a service manager must not start it again).
    let status = c.wait_exit(4, Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        c.log_tail(4)
            .contains("is not a member of the committee of epoch 2: it was removed"),
        "{}",
        c.log_tail(4)
    );
    // m3 signs with its new key now; the old one is gone from its directory.
    let new_key = std::fs::read(n3.join("bls.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!n3.join("bls.next.key").exists());
    let after2 = c.status(0, Some("after2@1.0.0")).await.unwrap();
    let e = &after2.entry.as_ref().unwrap().entry;
    assert_eq!(e.epoch, 2);
    c.converge(&[0, 1, 2, 3], 60).await;

    // A light client fetches the chain from a member and verifies it from the genesis.
    let fetched = root.join("fetched-chain.toml");
    let chain_cmd = |out: &Path| {
        bin()
            .args(["committee", "chain", "--peer", &c.peer(2)])
            .args(["--trust", s(&c.committee_file), "--out", s(out)])
            .output()
            .unwrap()
    };
    let err = ok(&chain_cmd(&fetched));
    assert!(err.contains("epochs 0..=2 (2 new)"), "{err}");
    // Asked again, the chain it holds is only extended (by nothing).
    let err = ok(&chain_cmd(&fetched));
    assert!(err.contains("(0 new)"), "{err}");
    // A held chain that was tampered with is refused, and left as it is.
    let text = std::fs::read_to_string(&fetched).unwrap();
    let forged = text.replacen("epoch = 2", "epoch = 3", 1);
    std::fs::write(&fetched, &forged).unwrap();
    let o = chain_cmd(&fetched);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&fetched).unwrap(), forged);
    std::fs::write(&fetched, &text).unwrap();

    // The light client with the chain: a proof of an epoch-0 entry under the current
    // (epoch 2) checkpoint is fetched and verified; with the genesis alone it is refused.
    let light_proof = root.join("light-before.tlog-proof");
    let proof_cmd = |chain: Option<&Path>| {
        let mut cmd = bin();
        cmd.args(["proof", "before@1.0.0", "--peer", &c.peer(1)])
            .args(["--trust", s(&c.committee_file), "--out", s(&light_proof)]);
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
        .args(["--chain", s(&fetched), "--crate", "before@1.0.0"])
        .output()
        .unwrap());
    // The epoch-0 proof re-proven under the current checkpoint (same entry, same index).
    let refreshed = root.join("refreshed-before.tlog-proof");
    let err = ok(&bin()
        .args(["proof", "--refresh", s(&old_proof), "--peer", &c.peer(3)])
        .args(["--trust", s(&c.committee_file), "--chain", s(&fetched)])
        .args(["--out", s(&refreshed)])
        .output()
        .unwrap());
    assert!(
        err.contains("(epoch 2; was") && err.contains("epoch 0)"),
        "{err}"
    );
    ok(&bin()
        .args(["verify", s(&refreshed), "--trust", s(&c.committee_file)])
        .args(["--chain", s(&fetched), "--crate", "before@1.0.0"])
        .output()
        .unwrap());
    // `checkpoint` with the chain: the current checkpoint, cosigned by epoch 2.
    let state = root.join("checkpoint.note");
    ok(&bin()
        .args(["checkpoint", "--peer", &c.peer(0)])
        .args(["--trust", s(&c.committee_file), "--chain", s(&fetched)])
        .args(["--state", s(&state)])
        .output()
        .unwrap());
    assert!(state.exists());

    for i in 0..4 {
        c.stop(i);
    }

    // Every log holds both change entries at the same places; the same head everywhere.
    let mut heads = Vec::new();
    for i in 0..4 {
        let store = LogStore::open_existing(&c.dir(i).join("log")).unwrap();
        heads.push((store.head().unwrap(), store.epochs().unwrap()));
    }
    assert!(heads.iter().all(|h| *h == heads[0]), "{heads:?}");
    assert_eq!(heads[0].1.len(), 2);

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
    let next: Vec<Committee> = [&e1, &e2]
        .iter()
        .map(|p| Committee::from_toml(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    // Proofs of every epoch's entries under the latest checkpoint (cosigned by epoch 2).
    let latest = store.latest_checkpoint().unwrap().unwrap();
    let latest = CosignedCheckpoint::verify(&latest, &next[1]).expect("cosigned by epoch 2");
    let mut proofs: Vec<(String, PathBuf)> = Vec::new();
    for key in ["before", "open", "after1", "after2"] {
        let index = *store
            .variants(&format!("{key}@1.0.0"))
            .unwrap()
            .first()
            .unwrap();
        let path = root.join(format!("{key}.tlog-proof"));
        std::fs::write(&path, store.proof_file(index, &latest).unwrap().format()).unwrap();
        proofs.push((key.into(), path));
    }
    drop(store);
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
        assert!(out.contains("epoch 2"), "{out}");
    }
    // Without the chain, the genesis does not reach epoch 2's key.
    let o = bin()
        .args(["verify", s(&proofs[0].1), "--trust", s(&c.committee_file)])
        .args(["--crate", "before@1.0.0"])
        .output()
        .unwrap();
    assert!(!o.status.success());

    // fsck with the genesis: each change verified, each checkpoint by its epoch's key.
    for i in 0..4 {
        c.fsck(i);
    }
    // Each member restarted itself once per epoch it moved to.
    for i in 0..4 {
        let log = std::fs::read_to_string(c.dir(i).join("node.log")).unwrap();
        assert_eq!(
            log.matches("restarting into the next epoch").count(),
            2,
            "member {i}"
        );
    }
}
