//! A committee change with real member processes: members approve the next committee file
//! through their control sockets (`committee approve`), the change is decided, every member
//! restarts itself into the new epoch at the same height, and the group goes on deciding;
//! the change entry is in every member's log, the roots agree, and proofs of entries from
//! both epochs verify with the genesis and the chain (`verify --chain`).

mod support;

use std::time::{Duration, Instant};

use support::Cluster;
use support::cli::ok;
use support::rules::short_rounds;
use synchronicity::log::LogStore;
use synchronicity_verify::epoch::{ChainFile, ChainLink, ChangeEntry};
use synchronicity_verify::tlog::CosignedCheckpoint;

const NODE_TOML: &str = "idle_interval_ms = 1000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_changes_its_rules_and_goes_on_deciding() {
    let mut c = Cluster::new(47, 4, short_rounds(), NODE_TOML);
    for i in 0..4 {
        c.start(i);
    }
    c.submit(0, "before", "1.0.0").await;
    c.decided_on(&[0, 1, 2, 3], "before@1.0.0", 60).await;

    // The next committee: the same members, a longer reveal window.
    let genesis = c.tc.committee.clone();
    let mut f = genesis.to_file();
    f.epoch = 1;
    f.previous = Some(hex::encode(genesis.digest()));
    f.protocol.reveal_window_secs += 1;
    let next = synchronicity::committee::Committee::from_file(f).unwrap();
    let next_file = c.root.path().join("epoch1.toml");
    std::fs::write(&next_file, next.to_toml()).unwrap();

    // A round open while the approvals come, and a request submitted after them.
    c.submit(1, "open", "1.0.0").await;
    for i in 0..3 {
        let o = support::cli::bin()
            .args(["committee", "approve"])
            .arg(&next_file)
            .arg("--node")
            .arg(c.dir(i))
            .output()
            .unwrap();
        let err = ok(&o);
        assert!(err.contains("approval of epoch 1 published"), "{err}");
    }
    c.submit(2, "after", "1.0.0").await;

    // Every member moves to epoch 1 (each restarts itself) and the group decides on.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut epochs = Vec::new();
        for i in 0..4 {
            epochs.push(c.status(i, None).await.map(|s| s.epoch));
        }
        if epochs.iter().all(|e| *e == Some(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every member reached epoch 1: {epochs:?}\n{}",
            c.log_tail(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for key in ["open@1.0.0", "after@1.0.0"] {
        c.decided_on(&[0, 1, 2, 3], key, 90).await;
    }
    let after = c.status(0, Some("after@1.0.0")).await.unwrap();
    let after_entry = after.entry.as_ref().unwrap();
    assert_eq!(after_entry.entry.epoch, 1, "decided by the new committee");
    let open = c.status(0, Some("open@1.0.0")).await.unwrap();
    assert_eq!(
        open.entry.as_ref().unwrap().entry.epoch,
        0,
        "a round open at the change is decided by the committee that ordered it"
    );
    c.converge(&[0, 1, 2, 3], 60).await;
    for i in 0..4 {
        c.stop(i);
    }

    // Every member's log: the change entry after "open", the same everywhere; fsck passes.
    let mut heads = Vec::new();
    for i in 0..4 {
        let store = LogStore::open_existing(&c.dir(i).join("log")).unwrap();
        let epochs = store.epochs().unwrap();
        assert_eq!(epochs.len(), 1, "member {i}: {epochs:?}");
        let (epoch, index) = epochs[0];
        assert_eq!(epoch, 1);
        let entry = ChangeEntry::decode(&store.entry(index).unwrap()).unwrap();
        assert_eq!(entry.verify(&genesis).unwrap(), *next);
        heads.push((store.head().unwrap(), index));
    }
    assert!(heads.iter().all(|h| *h == heads[0]), "{heads:?}");

    // The chain from member 0's store: the change entry under its handoff checkpoint.
    let store = LogStore::open_existing(&c.dir(0).join("log")).unwrap();
    let (_, index) = store.epochs().unwrap()[0];
    let handoff = store
        .checkpoint_at(index + 1)
        .unwrap()
        .expect("the handoff checkpoint is cosigned");
    let handoff = CosignedCheckpoint::verify(&handoff, &genesis).expect("cosigned by epoch 0");
    let link = store.proof_file(index, &handoff).unwrap();
    let chain = ChainFile {
        origin: genesis.origin().into(),
        genesis: hex::encode(genesis.digest()),
        links: vec![ChainLink {
            epoch: 1,
            proof: link.format(),
        }],
    };
    let chain_file = c.root.path().join("chain.toml");
    std::fs::write(&chain_file, toml::to_string(&chain).unwrap()).unwrap();

    // Proofs of both epochs' entries under the latest checkpoint (cosigned by epoch 1)
    // verify with the genesis and the chain.
    let latest = store.latest_checkpoint().unwrap().unwrap();
    let latest = CosignedCheckpoint::verify(&latest, &next).expect("cosigned by epoch 1");
    for key in ["before", "open", "after"] {
        let index = c_index(&store, key);
        let proof = store.proof_file(index, &latest).unwrap();
        let path = c.root.path().join(format!("{key}.tlog-proof"));
        std::fs::write(&path, proof.format()).unwrap();
        let o = support::cli::bin()
            .arg("verify")
            .arg(&path)
            .arg("--trust")
            .arg(&c.committee_file)
            .arg("--chain")
            .arg(&chain_file)
            .args(["--crate", &format!("{key}@1.0.0")])
            .output()
            .unwrap();
        ok(&o);
    }
    drop(store);
    // fsck with the genesis: the change entry verified, each checkpoint by its epoch's key.
    for i in 0..4 {
        c.fsck(i);
    }
    // Every member restarted itself once, into epoch 1, at the same height.
    for i in 0..4 {
        let log = std::fs::read_to_string(c.dir(i).join("node.log")).unwrap();
        assert_eq!(log.matches("restarting into the next epoch").count(), 1, "member {i}");
    }
}

fn c_index(store: &LogStore, krate: &str) -> u64 {
    *store
        .variants(&format!("{krate}@1.0.0"))
        .unwrap()
        .first()
        .expect("decided")
}
