//! What a user's client refuses and survives, against four real member processes (the real
//! node with a builder that returns chosen manifests, `src/bin/fixed_builder_node.rs`; real
//! libp2p, consensus and redb) and hostile light peers on the real light protocol:
//!
//! - `install` of a crate with a binary named `cargo` refuses, even with `--force`, naming
//!   the file, writing nothing; a binary whose name exists as a file `install` did not write
//!   is refused without `--force` and replaced with it; a file `install` wrote is replaced
//!   without `--force` (the record under the install root);
//! - a faulty first peer that serves a wrong prefix and then breaks (every time it is
//!   asked) does not fail a download an honest second member serves; a peer that trickles
//!   one byte a second is cut off by `--timeout`;
//! - `proof CRATE@VERSION` answers with a variant built with a lockfile someone chose only
//!   while no build with the shipped lockfile exists, and says so; once the shipped one is
//!   decided it answers with that;
//! - `audit` keeps cached proofs younger than `--max-age` and refreshes older ones against
//!   the newer checkpoint; a cached proof of another variant (features, another target),
//!   cosigned in a real redb log, is dropped with the same check as a fresh one.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::Cluster;
use support::cli::{bin, ok, refused, stderr, user_command};
use support::peers::light_peer;
use support::rules::short_rounds;
use synchronicity::node::wire::{self, LightRequest, LightResponse};
use synchronicity::protocol::Verdict;
use synchronicity::testing::{fixed_binary, shipped_lockfile};
use synchronicity_net::NetEvent;

const NODE_TOML: &str = "idle_interval_ms = 1000\n";

/// Runs the CLI as a user with its own home, trusting the group's committee, asking `peers`.
fn user(home: &Path, c: &Cluster, peers: &[&str], args: &[&str]) -> Output {
    let mut cmd = user_command(home);
    cmd.args(args)
        .arg("--trust")
        .arg(&c.committee_file)
        .env_remove("CARGO_HOME");
    for p in peers {
        cmd.args(["--peer", p]);
    }
    cmd.output().unwrap()
}

/// Everything under `dir` (relative paths), sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A light peer that answers artifact requests with `answer(offset)` (after `delay`) and
/// refuses everything else. Returns its address.
async fn hostile_peer(
    c: &Cluster,
    delay: Duration,
    answer: impl Fn(u64) -> Option<LightResponse> + Send + Sync + 'static,
) -> String {
    let (net, mut events, addr) = light_peer(&c.tc.committee).await;
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        let _net = net; // kept alive as long as the task
        while let Some(ev) = events.recv().await {
            let NetEvent::Request(req) = ev else { continue };
            let answer = answer.clone();
            tokio::spawn(async move {
                match wire::decode::<LightRequest>(&req.data, wire::MAX_REQUEST) {
                    Ok(LightRequest::Artifact { offset, .. }) => match answer(offset) {
                        Some(r) => {
                            tokio::time::sleep(delay).await;
                            req.respond(wire::encode(&r)).await
                        }
                        None => req.refuse("broken".into()).await,
                    },
                    _ => req.refuse("not this".into()).await,
                }
            });
        }
    });
    addr
}

/// A member that hides: it forwards each `Lookups` request to the honest member `honest`
/// and serves the answer after `hide` changed it; it refuses everything else. Returns its
/// address.
async fn hiding_peer(
    c: &Cluster,
    honest: usize,
    hide: impl Fn(&mut LightResponse) + Send + Sync + 'static,
) -> String {
    let (net, mut events, addr) = light_peer(&c.tc.committee).await;
    let target: synchronicity_net::Multiaddr = c.peer(honest).parse().unwrap();
    let target_id = c.tc.committee.members()[honest].peer_id;
    let hide = std::sync::Arc::new(hide);
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let NetEvent::Request(req) = ev else { continue };
            let Ok(asked @ LightRequest::Lookups { .. }) =
                wire::decode::<LightRequest>(&req.data, wire::MAX_REQUEST)
            else {
                req.refuse("not this".into()).await;
                continue;
            };
            net.dial(target.clone()).await.unwrap();
            let bytes = net
                .request(
                    target_id,
                    synchronicity_net::RequestKind::Light,
                    wire::encode(&asked),
                )
                .await
                .unwrap();
            let mut answer: LightResponse = wire::decode(&bytes, usize::MAX).unwrap();
            hide(&mut answer);
            req.respond(wire::encode(&answer)).await;
        }
    });
    addr
}

fn chunk(total: usize, offset: u64, data: &[u8]) -> LightResponse {
    LightResponse::Chunk {
        total: total as u64,
        offset,
        data: serde_bytes::ByteBuf::from(data.to_vec()),
    }
}

/// A Cargo.lock naming `name@version` from crates.io with the group's source sha256.
fn audit_lockfile(dir: &Path, name: &str, version: &str) -> PathBuf {
    let path = dir.join("Cargo.lock");
    std::fs::write(
        &path,
        format!(
            "version = 4\n\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            "01".repeat(32)
        ),
    )
    .unwrap();
    path
}

fn audit_row(o: &Output) -> serde_json::Value {
    let rows: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("audit JSON: {}", stderr(o)));
    rows[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refuse_what_is_not_theirs_and_survive_hostile_peers() {
    let mut c = Cluster::new(67, 4, short_rounds(), NODE_TOML);
    for i in 0..4 {
        c.extra_env[i].push(("SYNC_TEST_BINS".into(), "tool=cargo+tool".into()));
        c.start(i);
    }
    // "tool" ships its lockfile; its build has a lib and the binaries cargo and tool.
    c.submit_with(0, "tool", "1.0.0", None).await;
    let st = c.decided_on(&[0, 1, 2, 3], "tool@1.0.0", 120).await;
    assert_eq!(
        st[0].entry.as_ref().unwrap().entry.verdict,
        Verdict::Reproduced
    );
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let honest = c.peer(1);
    let tool = fixed_binary("tool", "1.0.0", "tool");
    let tool_sha = hex::encode(synchronicity::crypto::sha256(&tool));
    std::fs::write(c.dir(1).join("artifacts").join(&tool_sha), &tool).unwrap();

    // A binary named cargo: refused, even with --force; nothing written.
    let root = home.join("root");
    for force in [false, true] {
        let mut args = vec!["install", "tool@1.0.0", "--root", root.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let err = refused(&user(home, &c, &[&honest], &args));
        assert!(
            err.contains(&format!("refusing to install {}/bin/cargo", root.display()))
                && err.contains("belongs to cargo/rustup"),
            "{err}"
        );
        assert!(!root.exists(), "nothing written: {:?}", tree(&root));
    }

    // The user's own bin/tool: refused without --force, untouched.
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/tool"), b"the user's own tool").unwrap();
    let only_tool = [
        "install",
        "tool@1.0.0",
        "--bin",
        "tool",
        "--root",
        root.to_str().unwrap(),
    ];
    let err = refused(&user(home, &c, &[&honest], &only_tool));
    assert!(
        err.contains(&format!(
            "refusing to overwrite {}/bin/tool",
            root.display()
        )) && err.contains("not installed by synchronicity"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(root.join("bin/tool")).unwrap(),
        b"the user's own tool"
    );
    assert_eq!(tree(&root), ["bin", "bin/tool"], "nothing else written");
    // With --force it is replaced, and recorded: the next install needs no --force.
    let mut forced = only_tool.to_vec();
    forced.push("--force");
    ok(&user(home, &c, &[&honest], &forced));
    let out = Command::new(root.join("bin/tool")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "tool from tool@1.0.0"
    );
    assert!(root.join(".synchronicity-installs.json").is_file());
    ok(&user(home, &c, &[&honest], &only_tool));

    // A faulty first peer: a wrong prefix of the right length, then it breaks, on every
    // turn. The honest member's download is not spoiled by it.
    let (len, half) = (tool.len(), tool.len() / 2);
    let faulty = hostile_peer(&c, Duration::ZERO, move |offset| {
        (offset == 0).then(|| chunk(len, 0, &vec![b'X'; half]))
    })
    .await;
    let out_dir = home.join("fetched");
    let o = user(
        home,
        &c,
        &[&faulty, &honest],
        &[
            "fetch",
            "tool@1.0.0",
            "--out",
            out_dir.to_str().unwrap(),
            "--artifact",
            "tool",
        ],
    );
    let err = ok(&o);
    assert!(
        err.contains(&faulty)
            && err.contains(&format!(
                "starting over at the next peer (its {half} bytes are dropped)"
            )),
        "{err}"
    );
    assert_eq!(std::fs::read(out_dir.join("tool")).unwrap(), tool);

    // A peer that trickles one right byte a second: --timeout ends the whole download.
    let bytes = tool.clone();
    let slow = hostile_peer(&c, Duration::from_secs(1), move |offset| {
        let o = offset as usize;
        (o < bytes.len()).then(|| chunk(bytes.len(), offset, &bytes[o..o + 1]))
    })
    .await;
    let slow_dir = home.join("slow");
    let started = Instant::now();
    let o = user(
        home,
        &c,
        &[&slow, &honest],
        &[
            "fetch",
            "tool@1.0.0",
            "--out",
            slow_dir.to_str().unwrap(),
            "--artifact",
            "tool",
            "--timeout",
            "4",
        ],
    );
    let err = refused(&o);
    assert!(err.contains("within 4 s (--timeout"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(!slow_dir.exists(), "nothing written");

    // Someone orders "lib2" with a lockfile of its choice first: until the build with the
    // shipped lockfile is decided, `proof` answers with it and says so; then with the
    // shipped one.
    let junk = c
        .submit_with(
            2,
            "lib2",
            "1.0.0",
            Some("# a lockfile of someone's choice\n".into()),
        )
        .await;
    c.decided_on(&[0, 1, 2, 3], &junk, 120).await;
    let proof_file = home.join("lib2.tlog-proof");
    let proof = |c: &Cluster| {
        user(
            home,
            c,
            &[&honest],
            &["proof", "lib2@1.0.0", "--out", proof_file.to_str().unwrap()],
        )
    };
    let err = ok(&proof(&c));
    assert!(
        err.contains("lib2@1.0.0 was built with a lockfile the group generated"),
        "{err}"
    );
    let shipped = c.submit_with(3, "lib2", "1.0.0", None).await;
    assert_ne!(shipped, junk);
    c.decided_on(&[0, 1, 2, 3], &shipped, 120).await;
    let err = ok(&proof(&c));
    assert!(!err.contains("generated"), "{err}");
    let o = bin()
        .args(["verify", "--json", proof_file.to_str().unwrap(), "--trust"])
        .arg(&c.committee_file)
        .args(["--crate", "lib2@1.0.0"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["build"]["request_id"], shipped.as_str(), "{v}");
    assert_eq!(v["build"]["lockfile_shipped"], true);
    assert_eq!(
        synchronicity::crypto::sha256(shipped_lockfile("lib2", "1.0.0").as_bytes()).to_vec(),
        hex::decode(v["build"]["lockfile_sha256"].as_str().unwrap()).unwrap()
    );

    // Audit: a fresh proof is cached with its checkpoint size; within --max-age the cache
    // answers; past it the proof is fetched again under the newer checkpoint.
    let lock = audit_lockfile(home, "tool", "1.0.0");
    let audit = |extra: &[&str]| {
        let mut args = vec!["audit", "--json", "--lockfile", lock.to_str().unwrap()];
        args.extend_from_slice(extra);
        user(home, &c, &[&honest], &args)
    };
    let o = audit(&[]);
    ok(&o);
    let first = audit_row(&o);
    assert_eq!(
        (first["status"].as_str(), first["lockfile"].as_str()),
        (Some("reproduced"), Some("shipped"))
    );
    let cached_size = first["checkpoint_size"].as_u64().unwrap();
    // The log grows.
    c.submit(0, "later", "1.0.0").await;
    let head = c.decided_on(&[0, 1, 2, 3], "later@1.0.0", 120).await;
    let grown = head[0].checkpoint_size.unwrap();
    assert!(grown > cached_size);
    let o = audit(&[]);
    assert_eq!(
        audit_row(&o)["checkpoint_size"].as_u64(),
        Some(cached_size),
        "cached: {}",
        stderr(&o)
    );
    let cached = home.join("cache/synchronicity/proofs/tool-1.0.0.tlog-proof");
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&cached)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let o = audit(&["--max-age", "7d"]);
    assert_eq!(
        audit_row(&o)["checkpoint_size"].as_u64(),
        Some(cached_size),
        "{}",
        stderr(&o)
    );
    let o = audit(&[]);
    ok(&o);
    let refreshed = audit_row(&o);
    assert!(
        refreshed["checkpoint_size"].as_u64().unwrap() >= grown,
        "{refreshed}: {}",
        stderr(&o)
    );
    assert_eq!(refreshed["request_id"], first["request_id"]);

    // A member that hides: it answers "no entry" (its honest peer's index proof kept, the
    // entries dropped), or leaves a variant out. Each time it is named a faulty peer, and
    // the answer is the next member's, proven complete.
    let absent = hiding_peer(&c, 2, |a| {
        if let LightResponse::Lookups { answers, .. } = a {
            for x in answers {
                x.variants.entries.clear();
                x.default_proof = None;
            }
        }
    })
    .await;
    let o = user(
        home,
        &c,
        &[&absent, &honest],
        &[
            "audit",
            "--json",
            "--lockfile",
            lock.to_str().unwrap(),
            "--max-age",
            "0s",
        ],
    );
    let err = ok(&o);
    let row = audit_row(&o);
    assert!(
        err.contains(&absent)
            && err.contains("faulty peer: its answer for tool@1.0.0 is not what the index proves"),
        "{err}"
    );
    assert_eq!(
        (row["status"].as_str(), row["proven"].as_bool()),
        (Some("reproduced"), Some(true)),
        "{row}"
    );
    let omits = hiding_peer(&c, 2, |a| {
        if let LightResponse::Lookups { answers, .. } = a {
            for x in answers {
                if !x.variants.entries.is_empty() {
                    x.variants.entries.remove(0);
                }
            }
        }
    })
    .await;
    let o = user(
        home,
        &c,
        &[&omits, &honest],
        &["lookup", "lib2@1.0.0", "--json"],
    );
    let err = ok(&o);
    assert!(err.contains(&omits) && err.contains("faulty peer"), "{err}");
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let variants = found["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2, "{found}");
    let default: Vec<_> = variants.iter().filter(|v| v["default"] == true).collect();
    assert_eq!(default.len(), 1, "{found}");
    assert_eq!(default[0]["request_id"], shipped.as_str());
    assert_eq!(default[0]["lockfile"], "shipped");
    // Absence is proven too: a crate never built.
    let o = user(home, &c, &[&honest], &["lookup", "never-built@9.9.9"]);
    let out = String::from_utf8_lossy(&ok_out(&o)).to_string();
    assert!(out.contains("no entry (proven absent at size"), "{out}");
}

/// `o`'s stdout, after checking it succeeded.
fn ok_out(o: &Output) -> Vec<u8> {
    ok(o);
    o.stdout.clone()
}

/// A proof file for `entry`, the only entry of a real redb log cosigned by `tc`.
fn proof_of(
    tc: &synchronicity::testing::TestCommittee,
    dir: &Path,
    entry: &synchronicity::protocol::LogEntry,
) -> String {
    use synchronicity::log::{Height, LogStore, NewEntry};
    let store = LogStore::open(&dir.join("log")).unwrap();
    store
        .append_decided(
            &[NewEntry {
                bytes: entry.to_cbor(),
                request_id: entry.request.id(),
                spec: entry.request.spec(),
                blobs: vec![],
            }],
            Height::bare(1, 1),
        )
        .unwrap();
    let cp = tc.cosign_log(&store, store.size().unwrap());
    store.put_checkpoint(&cp).unwrap();
    store.proof_file(0, &cp).unwrap().format()
}

/// A cached proof gets the same default-variant check as a fresh one: a proof of another
/// variant (features, another target) planted in the cache is dropped, said, and the
/// package is unknown; the default variant's proof in the same place is used.
#[test]
fn audit_checks_cached_proofs_like_fresh_ones() {
    use synchronicity::protocol::{ENTRY_FORMAT, LogEntry, attestation_statement};
    let tc = synchronicity::testing::TestCommittee::new(4, 71);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let trust = home.join("committee.toml");
    std::fs::write(&trust, tc.committee.to_toml()).unwrap();
    let entry = |features: &[&str], target: &str| {
        let mut req = synchronicity::testing::request("tool", "1.0.0", "lock").request;
        req.features = features.iter().map(|f| f.to_string()).collect();
        req.target = target.into();
        let digest = [5u8; 32];
        let st = attestation_statement(tc.committee.origin(), &req.id(), &digest);
        LogEntry {
            format: ENTRY_FORMAT,
            request: req,
            verdict: Verdict::Reproduced,
            digest: digest.to_vec(),
            attestation: tc.sign(0..3, st.as_bytes()).to_bytes(),
            dissenters: vec![],
            silent: vec![],
            misbehaviour: vec![],
            height: 1,
            epoch: 0,
        }
    };
    let lock = audit_lockfile(home, "tool", "1.0.0");
    let cached = home.join("cache/synchronicity/proofs/tool-1.0.0.tlog-proof");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    let audit = || {
        user_command(home)
            .args([
                "audit",
                "--offline",
                "--json",
                "--lockfile",
                lock.to_str().unwrap(),
                "--trust",
            ])
            .arg(&trust)
            .output()
            .unwrap()
    };
    let target = tc.committee.build().target.clone();
    for (i, (features, target, label)) in [
        (&["serde"][..], target.as_str(), "features=serde"),
        (
            &[][..],
            "aarch64-unknown-linux-gnu",
            "target=aarch64-unknown-linux-gnu",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = home.join(format!("log{i}"));
        std::fs::write(&cached, proof_of(&tc, &dir, &entry(features, target))).unwrap();
        let o = audit();
        let err = ok(&o);
        assert_eq!(audit_row(&o)["status"], "unknown", "{err}");
        assert!(
            err.contains("cached proof") && err.contains("dropped") && err.contains(label),
            "{err}"
        );
    }
    // What a crash can leave (the cache is written without fsync): an empty file or a cut
    // one is dropped, said, and the package is unknown until fetched again.
    let good = proof_of(&tc, &home.join("log-default"), &entry(&[], &target));
    for cut in [&good[..0], &good[..good.len() / 2]] {
        std::fs::write(&cached, cut).unwrap();
        let o = audit();
        let err = ok(&o);
        assert_eq!(audit_row(&o)["status"], "unknown", "{err}");
        assert!(
            err.contains("cached proof") && err.contains("dropped"),
            "{err}"
        );
    }
    std::fs::write(&cached, &good).unwrap();
    let o = audit();
    ok(&o);
    assert_eq!(audit_row(&o)["status"], "reproduced");
    assert_eq!(audit_row(&o)["lockfile"], "shipped");
}
