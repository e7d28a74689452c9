//! Committee epochs through the real binary: `committee propose` writes each next epoch's
//! file and refuses bad edits with one line, writing nothing; `verify --chain` accepts a
//! proof cosigned in any epoch with the genesis and the chain, and refuses a tampered chain
//! and a retired committee's checkpoint.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::cli::{bin, ok, one_line_error};
use synchronicity_verify::test_chain::rotations;
use synchronicity_verify::tlog::ProofFile;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn keygen(root: &Path, name: &str, port: u16) -> PathBuf {
    let dir = root.join(name);
    let addr = format!("/ip4/127.0.0.1/tcp/{port}");
    ok(&run(&[
        "keygen",
        "--dir",
        s(&dir),
        "--name",
        name,
        "--addr",
        &addr,
    ]));
    dir
}

#[test]
fn propose_writes_each_next_epoch_and_refuses_bad_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dirs: Vec<PathBuf> = (0..5)
        .map(|i| keygen(root, &format!("n{i}"), 7200 + i))
        .collect();
    let genesis = root.join("genesis.toml");
    let mut init = vec![
        "committee",
        "init",
        "--origin",
        "example.org/synchronicity/epochs",
        "--toolchain",
        "1.95.0",
        "--target",
        "x86_64-unknown-linux-gnu",
        "--out",
        s(&genesis),
    ];
    init.extend(dirs.iter().map(|d| s(d)));
    ok(&run(&init));

    // Epoch 1: n4 leaves.
    let e1 = root.join("epoch1.toml");
    let err = ok(&run(&[
        "committee",
        "propose",
        "--from",
        s(&genesis),
        "--remove",
        "n4",
        "--out",
        s(&e1),
    ]));
    assert!(
        err.contains("epoch 1") && err.contains("removed: n4"),
        "{err}"
    );
    let o = run(&["committee", "check", "--json", s(&e1)]);
    let json: serde_json::Value = serde_json::from_slice(&ok_out(&o)).unwrap();
    assert_eq!(
        (json["epoch"].as_u64(), json["members"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(json["threshold"], 3);
    let g: serde_json::Value = serde_json::from_slice(&ok_out(&run(&[
        "committee",
        "check",
        "--json",
        s(&genesis),
    ])))
    .unwrap();
    assert_eq!(json["previous"], g["committee_digest"]);

    // Epoch 2: n0 gets a new BLS key (its identity stays); epoch 3: a rule and the toolchain.
    let err = ok(&run(&["keygen", "--dir", s(&dirs[0]), "--rotate-bls"]));
    assert!(err.contains("bls.next.key"), "{err}");
    let next_member = dirs[0].join("member.next.toml");
    let e2 = root.join("epoch2.toml");
    let rotate = format!("n0={}", s(&next_member));
    ok(&run(&[
        "committee",
        "propose",
        "--from",
        s(&e1),
        "--rotate",
        &rotate,
        "--out",
        s(&e2),
    ]));
    let before = std::fs::read_to_string(dirs[0].join("member.toml")).unwrap();
    let after = std::fs::read_to_string(&next_member).unwrap();
    let bls = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("bls_public_key"))
            .unwrap()
            .to_string()
    };
    assert_ne!(bls(&before), bls(&after));
    assert!(std::fs::read_to_string(&e2).unwrap().contains(&bls(&after)));
    // A second rotation before the first is used is refused.
    let err = one_line_error(&run(&["keygen", "--dir", s(&dirs[0]), "--rotate-bls"]));
    assert!(err.contains("already exists"), "{err}");
    let e3 = root.join("epoch3.toml");
    ok(&run(&[
        "committee",
        "propose",
        "--from",
        s(&e2),
        "--reveal-window-secs",
        "300",
        "--toolchain",
        "1.96.0",
        "--out",
        s(&e3),
    ]));
    let text = std::fs::read_to_string(&e3).unwrap();
    assert!(text.contains("epoch = 3") && text.contains("reveal_window_secs = 300"));
    assert!(text.contains("toolchain = \"1.96.0\""));

    // Refusals: one line each, nothing written.
    let n5 = keygen(root, "n5", 7205);
    let other_identity = format!("n2={}", s(&n5));
    let out = root.join("never.toml");
    for (args, needle) in [
        (vec!["--remove", "nobody"], "no member named \"nobody\""),
        (vec![], "changes nothing"),
        (vec!["--remove", "n2", "--remove", "n3"], "fewer than 4"),
        (vec!["--threshold", "2"], "below the BFT quorum"),
        (vec!["--rotate", "n2"], "expected NAME=MEMBER"),
        (vec!["--add", s(&dirs[1])], "already in epoch 3"),
        (vec!["--rotate", &other_identity], "another peer id"),
    ] {
        let mut a = vec!["committee", "propose", "--from", s(&e3), "--out", s(&out)];
        a.extend(args);
        let err = one_line_error(&run(&a));
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
        assert!(!out.exists());
    }
    // Approving a file whose toolchain this host lacks warns first (no node runs in this
    // directory, so the approval itself then fails).
    let o = run(&["committee", "approve", s(&e3), "--node", s(&dirs[0])]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: toolchain 1.96.0 is not installed here"),
        "{err}"
    );
    // n5 joins: five members, threshold ⌊2·5/3⌋+1 = 4.
    let e4 = root.join("epoch4.toml");
    let err = ok(&run(&[
        "committee",
        "propose",
        "--from",
        s(&e3),
        "--add",
        s(&n5),
        "--out",
        s(&e4),
    ]));
    assert!(
        err.contains("added: n5") && err.contains("5 members"),
        "{err}"
    );
    assert!(err.contains("threshold 4"), "{err}");
    // A file that exists is not replaced without --force.
    let before = std::fs::read_to_string(&e1).unwrap();
    let err = one_line_error(&run(&[
        "committee",
        "propose",
        "--from",
        s(&genesis),
        "--remove",
        "n3",
        "--out",
        s(&e1),
    ]));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&e1).unwrap(), before);
}

fn ok_out(o: &Output) -> Vec<u8> {
    ok(o);
    o.stdout.clone()
}

#[test]
fn verify_takes_a_chain_and_refuses_a_tampered_one_or_a_retired_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let h = rotations(4, 3);
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let genesis = write("genesis.toml", &h.epochs[0].committee.to_toml());
    let chain = write("chain.toml", &h.chain_text());
    let verify = |proof: &Path, chain: &Path, spec: &str| {
        run(&[
            "verify",
            s(proof),
            "--trust",
            s(&genesis),
            "--chain",
            s(chain),
            "--crate",
            spec,
        ])
    };
    // Builds of every epoch, under the current checkpoint (cosigned by epoch 3).
    for epoch in 0..=3 {
        let name = if epoch == 0 {
            "genesis-crate".to_string()
        } else {
            format!("crate-of-epoch-{epoch}")
        };
        let proof = write("p.tlog-proof", &h.log.proof(h.builds[epoch], h.current()));
        let o = verify(&proof, &chain, &format!("{name}@1.0.0"));
        let out = String::from_utf8(ok_out(&o)).unwrap();
        assert!(out.contains("epoch 3"), "{out}");
        if epoch < 3 {
            assert!(
                out.contains(&format!("attested   in epoch {epoch}")),
                "{out}"
            );
        }
    }
    // An old proof: the genesis build under the handoff checkpoint epoch 0 cosigned.
    let handoff = ProofFile::parse(&h.links[0].proof).unwrap().checkpoint;
    let old = ProofFile {
        extra: Some(h.log.leaves[h.builds[0] as usize].clone()),
        index: h.builds[0],
        proof: synchronicity_verify::tlog::merkle::prove_inclusion(
            h.builds[0],
            synchronicity_verify::tlog::Checkpoint::parse(
                &synchronicity_verify::tlog::SignedNote::parse(&handoff)
                    .unwrap()
                    .text,
            )
            .unwrap()
            .size,
            &h.log,
        )
        .unwrap(),
        checkpoint: handoff,
    };
    let old = write("old.tlog-proof", &old.format());
    ok(&verify(&old, &chain, "genesis-crate@1.0.0"));

    // The genesis alone does not reach epoch 3's key.
    let current = write("cur.tlog-proof", &h.log.proof(h.builds[3], h.current()));
    let err = one_line_error(&run(&[
        "verify",
        s(&current),
        "--trust",
        s(&genesis),
        "--crate",
        "crate-of-epoch-3@1.0.0",
    ]));
    assert!(err.contains("no signature by the committee key"), "{err}");
    // A retired committee (epoch 0's keys, say leaked) signing the current log: refused.
    let forged = write("forged.tlog-proof", &h.log.proof(h.builds[0], &h.epochs[0]));
    let err = one_line_error(&verify(&forged, &chain, "genesis-crate@1.0.0"));
    assert!(err.contains("signed by epoch 0"), "{err}");
    // A chain that skips an epoch, and one whose link names another log's genesis.
    let text = h.chain_text();
    let skipping = write("skip.toml", &text.replacen("epoch = 2", "epoch = 3", 1));
    let err = one_line_error(&verify(&current, &skipping, "crate-of-epoch-3@1.0.0"));
    assert!(err.contains("where epoch 2 was next"), "{err}");
    let other = write(
        "other.toml",
        &text.replacen(
            &hex::encode(h.epochs[0].committee.digest()),
            &"ab".repeat(32),
            1,
        ),
    );
    let err = one_line_error(&verify(&current, &other, "crate-of-epoch-3@1.0.0"));
    assert!(err.contains("not from this trust root"), "{err}");
}
