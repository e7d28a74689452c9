//! What users do with proofs, end to end with four real `synchronicity node` processes and
//! real builds of crates from crates.io (threshold 4 of 4):
//!
//! - `install hello-cli@0.2.2` with a client config naming one member installs `hello`, and
//!   `hello --version` prints its version;
//! - a member whose store serves a corrupted artifact is named a faulty peer, the next
//!   member serves the right bytes, and the installed file is right;
//! - `fetch` from a peer that drops the connection mid-transfer starts over at another peer;
//! - a not-reproduced crate (rust-hello@0.1.1: one member was down, 3 of 4 agree) is refused
//!   by `install`, exit non-zero, nothing installed;
//! - `audit` of a 480-package lockfile with a few of its crates logged: the table through
//!   `--json`, `--deny` exit codes, a checksum that is not the logged source is "source
//!   mismatch", and a second run works from the proof cache alone (`--offline`).
//!
//! Needs the sandbox root filesystem (`scripts/build-image.sh`, run by `scripts/test.sh`)
//! and crates.io.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::Cluster;
use support::cli::{ok, user_command};
use support::peers::light_peer;
use support::rules::windows;
use synchronicity::node::wire::{self, LightRequest, LightResponse};
use synchronicity::protocol::Verdict;
use synchronicity_net::NetEvent;

/// Runs the CLI as a user whose client config names `peers`.
fn user(home: &Path, c: &Cluster, peers: &[String], args: &[&str]) -> Output {
    let cfg = home.join("config/synchronicity");
    std::fs::create_dir_all(&cfg).unwrap();
    let list: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        cfg.join("client.toml"),
        format!(
            "trust = {:?}\npeers = [{}]\n",
            c.committee_file.display().to_string(),
            list.join(", ")
        ),
    )
    .unwrap();
    user_command(home).args(args).output().unwrap()
}

fn sha_hex(path: &Path) -> String {
    hex::encode(synchronicity::crypto::sha256(&std::fs::read(path).unwrap()))
}

/// The manifest sha256 of `hello` in the entry for hello-cli (from member 1's store).
fn attested_sha(c: &Cluster, home: &Path) -> String {
    let out = home.join("fetched-manifest");
    ok(&user(
        home,
        c,
        &[c.peer(1)],
        &[
            "fetch",
            "hello-cli@0.2.2",
            "--out",
            out.to_str().unwrap(),
            "--artifact",
            "hello",
        ],
    ));
    let manifest = std::fs::read_to_string(out.join("hello-cli-0.2.2.manifest")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.ends_with("/release/hello"))
        .expect("hello in the manifest");
    line.split_whitespace().next().unwrap().to_string()
}

/// A light peer that serves the first chunk of an artifact and then drops off the network.
async fn dropping_peer(c: &Cluster, artifact: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let (net, mut events, addr) = light_peer(&c.tc.committee).await;
    let task = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let NetEvent::Request(req) = ev else { continue };
            match wire::decode::<LightRequest>(&req.data, wire::MAX_REQUEST) {
                Ok(LightRequest::Artifact { offset: 0, .. }) => {
                    let n = synchronicity::node::artifacts::MAX_CHUNK.min(artifact.len());
                    let chunk = LightResponse::Chunk {
                        total: artifact.len() as u64,
                        offset: 0,
                        data: serde_bytes::ByteBuf::from(artifact[..n].to_vec()),
                    };
                    req.respond(wire::encode(&chunk)).await;
                    // Gone mid-transfer.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    net.shutdown().await;
                    return;
                }
                _ => req.refuse("not this".into()).await,
            }
        }
    });
    (addr, task)
}

fn audit(home: &Path, c: &Cluster, lockfile: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec!["audit", "--lockfile", lockfile.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = user(home, c, &[c.peer(2)], &args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

fn status_of<'a>(rows: &'a serde_json::Value, krate: &str) -> Vec<&'a str> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["crate"] == krate)
        .map(|r| r["status"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_install_fetch_and_audit_only_what_the_group_reproduced() {
    let rules = windows(90, 5, 20);
    let toml = "idle_interval_ms = 1000\n[builder]\nbackend = \"sandbox\"\n";
    let mut c = Cluster::real_nodes(91, 4, rules, toml);
    c.set_threshold(4);
    for i in 0..4 {
        c.start(i);
    }
    // hello-cli has no shipped lockfile: member 0 generates it once. itoa and hex as the
    // fixture lockfile pins them.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit/Cargo.lock");
    let pins = [("hello-cli", "0.2.2"), ("itoa", "1.0.19"), ("hex", "0.4.3")];
    for (n, v) in pins {
        c.submit_with(0, n, v, None).await;
    }
    for (n, v) in pins {
        let st = c.decided_on(&[0, 1, 2, 3], &format!("{n}@{v}"), 600).await;
        let e = &st[0].entry.as_ref().unwrap().entry;
        assert_eq!(e.verdict, Verdict::Reproduced, "{n}: {e:?}");
    }
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    // Install with a client config naming one member.
    let root = home.join("root");
    let err = ok(&user(
        home,
        &c,
        &[c.peer(1)],
        &[
            "install",
            "hello-cli@0.2.2",
            "--root",
            root.to_str().unwrap(),
        ],
    ));
    let hello = root.join("bin/hello");
    let out = Command::new(&hello).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello 0.2.2",
        "{err}"
    );
    let sha = attested_sha(&c, home);
    assert_eq!(sha_hex(&hello), sha);

    // Member 0's store serves corrupted bytes: named, skipped, the right file installed.
    let stored = c.dir(0).join("artifacts").join(&sha);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();
    let root2 = home.join("root2");
    let o = user(
        home,
        &c,
        &[c.peer(0), c.peer(1)],
        &[
            "install",
            "hello-cli@0.2.2",
            "--root",
            root2.to_str().unwrap(),
        ],
    );
    let err = ok(&o);
    assert!(
        err.contains(&c.peer(0)) && err.contains("faulty peer"),
        "member 0 is named: {err}"
    );
    assert_eq!(sha_hex(&root2.join("bin/hello")), sha);

    // A peer that drops mid-transfer: the transfer starts over at the next one.
    let good = std::fs::read(c.dir(1).join("artifacts").join(&sha)).unwrap();
    assert!(
        good.len() > synchronicity::node::artifacts::MAX_CHUNK,
        "two chunks at least"
    );
    let (dropper, task) = dropping_peer(&c, good).await;
    let out_dir = home.join("resumed");
    let err = ok(&user(
        home,
        &c,
        &[dropper.clone(), c.peer(1)],
        &[
            "fetch",
            "hello-cli@0.2.2",
            "--out",
            out_dir.to_str().unwrap(),
            "--artifact",
            "hello",
        ],
    ));
    assert!(
        err.contains(&format!(
            "starting over at the next peer (its {} bytes are dropped)",
            synchronicity::node::artifacts::MAX_CHUNK
        )),
        "{err}"
    );
    assert_eq!(sha_hex(&out_dir.join("hello")), sha);
    assert!(out_dir.join("hello-cli-0.2.2.tlog-proof").is_file());
    let _ = task.await;

    // Not reproduced: member 3 is down for rust-hello (3 of 4 agree, under the threshold).
    c.stop(3);
    let id = c.submit_with(0, "rust-hello", "0.1.1", None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while c.status(0, Some(&id)).await.and_then(|s| s.entry).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "rust-hello not decided"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.start(3);
    let st = c.decided_on(&[0, 1, 2, 3], &id, 300).await;
    assert_eq!(
        st[0].entry.as_ref().unwrap().entry.verdict,
        Verdict::NotReproduced
    );
    let root3 = home.join("root3");
    let o = user(
        home,
        &c,
        &[c.peer(1)],
        &[
            "install",
            "rust-hello@0.1.1",
            "--root",
            root3.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "refused");
    assert!(
        err.contains("NotReproduced") && err.contains("nothing written"),
        "{err}"
    );
    assert!(!root3.exists(), "nothing installed");

    // Audit a 480-package lockfile with four of its crates logged.
    let (o, rows) = audit(home, &c, &fixture, &[]);
    ok(&o);
    let all = rows.as_array().unwrap();
    assert!(all.len() >= 300, "{} packages", all.len());
    for (n, _) in pins {
        assert_eq!(status_of(&rows, n), ["reproduced"], "{n}");
    }
    assert_eq!(status_of(&rows, "rust-hello"), ["not-reproduced"]);
    let unknown = all.iter().filter(|r| r["status"] == "unknown").count();
    assert_eq!(unknown, all.len() - 4, "every other package is unknown");
    let hello_row = all.iter().find(|r| r["crate"] == "hello-cli").unwrap();
    assert_eq!(hello_row["signers"], 4);
    // --deny: exit codes.
    let (o, _) = audit(home, &c, &fixture, &["--deny", "failed,source-mismatch"]);
    ok(&o);
    let (o, _) = audit(home, &c, &fixture, &["--deny", "not-reproduced"]);
    assert!(!o.status.success(), "not-reproduced is denied");
    assert!(String::from_utf8_lossy(&o.stderr).contains("rust-hello@0.1.1 is not-reproduced"));
    // A checksum that is not the .crate the group built.
    let text = std::fs::read_to_string(&fixture).unwrap().replace(
        "7f24254aa9a54b5c858eaee2f5bccdb46aaf0e486a595ed5fd8f86ba55232a70",
        &"0".repeat(64),
    );
    let tampered = home.join("Cargo.lock");
    std::fs::write(&tampered, text).unwrap();
    let (o, rows) = audit(home, &c, &tampered, &["--deny", "source-mismatch"]);
    assert!(!o.status.success(), "source mismatch is denied");
    assert_eq!(status_of(&rows, "hex"), ["source-mismatch"]);
    // Every proof is cached now: the same table with no network at all.
    for i in 0..4 {
        c.stop(i);
    }
    let (o, rows) = audit(home, &c, &fixture, &["--offline"]);
    ok(&o);
    assert_eq!(status_of(&rows, "hello-cli"), ["reproduced"]);
    assert_eq!(status_of(&rows, "rust-hello"), ["not-reproduced"]);
}
