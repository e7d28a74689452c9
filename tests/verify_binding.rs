//! `synchronicity verify` binds a proof to what the user asked: the crate AND version (or
//! the request id), the `.crate`'s sha256, and each artifact by sha256 AND manifest path.
//! Proofs come from a real redb log store cosigned by a real committee; the command runs as
//! a process. Also: the proof size bound at 2^20 entries and 100 members, and which entry
//! answers `crate@version` when a crate has several variants.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::cli::one_line_error;
use synchronicity::crypto::sha256;
use synchronicity::log::{Height, LogStore, LookupKey, NewEntry, ProofFile, merkle};
use synchronicity::protocol::{ENTRY_FORMAT, LogEntry, Verdict, attestation_statement};
use synchronicity::testing::{TestCommittee, request};
use synchronicity::verify::{Expected, Manifest, verify_proof};

/// The product binary with a committee cache of its own (not the user's).
fn synchronicity() -> Command {
    let mut c = support::cli::bin();
    c.env(
        "SYNCHRONICITY_CACHE_DIR",
        std::env::temp_dir().join("synchronicity-test-cache"),
    );
    c
}

/// An entry for `name@version` with these manifest files, attested by `signers`.
fn entry_with(
    tc: &TestCommittee,
    name: &str,
    version: &str,
    features: &[&str],
    verdict: Verdict,
    files: &[(&str, &[u8])],
    signers: &[usize],
) -> (LogEntry, Manifest) {
    let mut req = request(name, version, &format!("# lockfile of {name}\n")).request;
    req.features = features.iter().map(|f| f.to_string()).collect();
    let mut m = Manifest::default();
    for (path, bytes) in files {
        m.insert(path, sha256(bytes));
    }
    let (digest, attestation) = if verdict == Verdict::Reproduced {
        let st = attestation_statement(tc.committee.origin(), &req.id(), &m.digest());
        let sig = tc.sign(signers.iter().copied(), st.as_bytes());
        (m.digest().to_vec(), sig.to_bytes())
    } else {
        (vec![], vec![])
    };
    let e = LogEntry {
        format: ENTRY_FORMAT,
        request: req,
        verdict,
        digest,
        attestation,
        dissenters: vec![],
        silent: vec![],
        misbehaviour: vec![],
        height: 1,
        epoch: 0,
    };
    (e, m)
}

struct Fixture {
    dir: tempfile::TempDir,
    trust: PathBuf,
}

impl Fixture {
    /// A log holding `entries`, cosigned; writes each entry's proof as `proof-<i>` and
    /// manifest as `manifest-<i>`.
    fn new(tc: &TestCommittee, entries: &[(LogEntry, Manifest)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("committee.toml");
        std::fs::write(&trust, tc.committee.to_toml()).unwrap();
        let store = LogStore::open(&dir.path().join("log")).unwrap();
        let new: Vec<NewEntry> = entries
            .iter()
            .map(|(e, m)| NewEntry {
                bytes: e.to_cbor(),
                request_id: e.request.id(),
                spec: e.request.spec(),
                blobs: vec![m.to_text().into_bytes()],
            })
            .collect();
        store.append_decided(&new, Height::bare(1, 1)).unwrap();
        let cp = tc.cosign_log(&store, store.size().unwrap());
        store.put_checkpoint(&cp).unwrap();
        for (i, (_, m)) in entries.iter().enumerate() {
            let pf = store.proof_file(i as u64, &cp).unwrap();
            std::fs::write(dir.path().join(format!("proof-{i}")), pf.format()).unwrap();
            std::fs::write(dir.path().join(format!("manifest-{i}")), m.to_text()).unwrap();
        }
        Self { dir, trust }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn verify(&self, i: usize, args: &[&str]) -> Output {
        synchronicity()
            .arg("verify")
            .arg(self.path(&format!("proof-{i}")))
            .arg("--trust")
            .arg(&self.trust)
            .args(args)
            .output()
            .unwrap()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn verify_names_what_the_proof_is_about_when_it_is_not_what_was_asked() {
    let tc = TestCommittee::new(4, 31);
    let lib = b"the itoa rlib".as_slice();
    let entries = [
        entry_with(
            &tc,
            "itoa",
            "1.0.15",
            &[],
            Verdict::Reproduced,
            &[
                ("x86_64-unknown-linux-gnu/release/libitoa.rlib", lib),
                ("x86_64-unknown-linux-gnu/release/itoa-bin", b"bin"),
            ],
            &[0, 1, 2],
        ),
        // A crate that renames its library to `itoa` and builds reproducibly.
        entry_with(
            &tc,
            "itoa-evil",
            "1.0.15",
            &[],
            Verdict::Reproduced,
            &[("x86_64-unknown-linux-gnu/release/libitoa.rlib", b"evil")],
            &[0, 1, 3],
        ),
        entry_with(&tc, "ryu", "1.0.20", &[], Verdict::NotReproduced, &[], &[]),
        // Attested by fewer than t.
        entry_with(
            &tc,
            "hexyl",
            "0.16.0",
            &[],
            Verdict::Reproduced,
            &[("r/hexyl", b"h")],
            &[0, 1],
        ),
    ];
    let f = Fixture::new(&tc, &entries);
    let m0 = f.path("manifest-0");
    let good = f.file("art/libitoa.rlib", lib);

    let ok = f.verify(
        0,
        &[
            "--crate",
            "itoa@1.0.15",
            "--manifest",
            s(&m0),
            "--artifact",
            s(&good),
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains("matches x86_64-unknown-linux-gnu/release/libitoa.rlib")
    );
    // By request id, and with the .crate's sha256 pinned.
    let id = hex::encode(entries[0].0.request.id());
    let src = hex::encode(&entries[0].0.request.source_sha256);
    assert!(
        f.verify(0, &["--request", &id, "--source-sha256", &src])
            .status
            .success()
    );
    let err = one_line_error(&f.verify(
        0,
        &[
            "--crate",
            "itoa@1.0.15",
            "--source-sha256",
            &"00".repeat(32),
        ],
    ));
    assert!(err.contains(".crate sha256"), "{err}");
    let err = one_line_error(&f.verify(0, &["--request", &"ab".repeat(32)]));
    assert!(err.contains("about itoa@1.0.15"), "{err}");

    // Another crate, the same crate at another version: one line naming what it is about.
    let err = one_line_error(&f.verify(0, &["--crate", "serde@1.0.15"]));
    assert!(
        err.contains("the proof is about itoa@1.0.15") && err.contains("not serde@1.0.15"),
        "{err}"
    );
    let err = one_line_error(&f.verify(0, &["--crate", "itoa@1.0.14"]));
    assert!(
        err.contains("the proof is about itoa@1.0.15") && err.contains("not itoa@1.0.14"),
        "{err}"
    );
    // No subject at all: refused by the command line.
    assert!(!f.verify(0, &[]).status.success());

    // The renamed library: a valid proof whose manifest lists release/libitoa.rlib, but
    // about itoa-evil — refused for itoa, and its rlib is not itoa's.
    let evil = f.file("evil/libitoa.rlib", b"evil");
    let err = one_line_error(&f.verify(
        1,
        &[
            "--crate",
            "itoa@1.0.15",
            "--manifest",
            s(&f.path("manifest-1")),
            "--artifact",
            s(&evil),
        ],
    ));
    assert!(err.contains("the proof is about itoa-evil@1.0.15"), "{err}");
    assert!(
        f.verify(1, &["--crate", "itoa-evil@1.0.15"])
            .status
            .success()
    );
    let err = one_line_error(&f.verify(
        0,
        &[
            "--crate",
            "itoa@1.0.15",
            "--manifest",
            s(&m0),
            "--artifact",
            s(&evil),
        ],
    ));
    assert!(err.contains("differs from the attested"), "{err}");

    // The right bytes under another name, or at another exact path: refused.
    let renamed = f.file("art/libother.rlib", lib);
    let err = one_line_error(&f.verify(
        0,
        &[
            "--crate",
            "itoa@1.0.15",
            "--manifest",
            s(&m0),
            "--artifact",
            s(&renamed),
        ],
    ));
    assert!(
        err.contains("is attested for x86_64-unknown-linux-gnu/release/libitoa.rlib"),
        "{err}"
    );
    let exact = format!("x86_64-unknown-linux-gnu/release/itoa-bin={}", s(&good));
    let err = one_line_error(&f.verify(
        0,
        &[
            "--crate",
            "itoa@1.0.15",
            "--manifest",
            s(&m0),
            "--artifact",
            &exact,
        ],
    ));
    assert!(err.contains("differs from the attested"), "{err}");
    let exact = format!(
        "x86_64-unknown-linux-gnu/release/libitoa.rlib={}",
        s(&renamed)
    );
    assert!(
        f.verify(
            0,
            &[
                "--crate",
                "itoa@1.0.15",
                "--manifest",
                s(&m0),
                "--artifact",
                &exact
            ]
        )
        .status
        .success()
    );
    // An artifact needs the manifest; a manifest must be the attested one.
    let err = one_line_error(&f.verify(0, &["--crate", "itoa@1.0.15", "--artifact", s(&good)]));
    assert!(err.contains("--manifest"), "{err}");
    let err = one_line_error(&f.verify(
        0,
        &[
            "--crate",
            "itoa@1.0.15",
            "--manifest",
            s(&f.path("manifest-1")),
        ],
    ));
    assert!(err.contains("manifest does not hash"), "{err}");

    // Not reproduced, and attested by fewer than t: refused with the reason.
    let err = one_line_error(&f.verify(2, &["--crate", "ryu@1.0.20"]));
    assert!(err.contains("NotReproduced"), "{err}");
    let err = one_line_error(&f.verify(3, &["--crate", "hexyl@0.16.0"]));
    assert!(
        err.contains("attestation") && err.contains("below the threshold"),
        "{err}"
    );

    // JSON for other implementations.
    let o = f.verify(0, &["--json", "--crate", "itoa@1.0.15"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["index"], 0);
    assert_eq!(v["build"]["crate"], "itoa");
    assert_eq!(v["build"]["attesters"].as_array().unwrap().len(), 3);
    assert_eq!(v["build"]["default_variant"], true);
}

#[test]
fn tampered_proofs_and_a_changed_committee_fail_with_one_line() {
    let tc = TestCommittee::new(4, 32);
    let entries = [
        entry_with(
            &tc,
            "itoa",
            "1.0.15",
            &[],
            Verdict::Reproduced,
            &[("r/libitoa.rlib", b"x")],
            &[0, 1, 2],
        ),
        entry_with(
            &tc,
            "itoa",
            "1.0.16",
            &[],
            Verdict::Reproduced,
            &[("r/libitoa.rlib", b"y")],
            &[0, 1, 2],
        ),
    ];
    let f = Fixture::new(&tc, &entries);
    let pf = ProofFile::parse(&std::fs::read_to_string(f.path("proof-0")).unwrap()).unwrap();
    let mut cases: Vec<ProofFile> = Vec::new();
    let mut p = pf.clone();
    p.proof[0][0] ^= 1;
    cases.push(p);
    let mut p = pf.clone();
    p.index = 1;
    cases.push(p);
    let mut p = pf.clone();
    p.extra = Some(entries[1].0.to_cbor());
    cases.push(p);
    for (i, p) in cases.iter().enumerate() {
        let path = f.file(&format!("bad-{i}"), p.format().as_bytes());
        let o = synchronicity()
            .arg("verify")
            .arg(&path)
            .arg("--trust")
            .arg(&f.trust)
            .args(["--crate", "itoa@1.0.15"])
            .output()
            .unwrap();
        one_line_error(&o);
    }
    let other = TestCommittee::new(4, 33);
    let mut file = tc.committee.to_file();
    file.members[1] = other.committee.to_file().members[1].clone();
    let changed = f.file("changed.toml", toml::to_string(&file).unwrap().as_bytes());
    let o = synchronicity()
        .arg("verify")
        .arg(f.path("proof-0"))
        .arg("--trust")
        .arg(&changed)
        .args(["--crate", "itoa@1.0.15"])
        .output()
        .unwrap();
    one_line_error(&o);
    // The cached committee (second load of the same file) gives the same answers.
    for _ in 0..2 {
        assert!(f.verify(0, &["--crate", "itoa@1.0.15"]).status.success());
    }
}

/// An entry whose attestation is signed over another manifest, in a log the committee
/// cosigned (which honest members never do: they check every reveal before deciding). The
/// library's `verify_proof` relies on the cosigners for it and accepts;
/// `check_attestation` and the `verify` command re-check it and refuse.
#[test]
fn an_attestation_over_another_statement_is_refused_by_the_verify_command() {
    let tc = TestCommittee::new(4, 34);
    let (mut bad, m) = entry_with(
        &tc,
        "itoa",
        "1.0.15",
        &[],
        Verdict::Reproduced,
        &[("r/libitoa.rlib", b"x")],
        &[0, 1, 2],
    );
    let other = attestation_statement(tc.committee.origin(), &bad.request.id(), &[7u8; 32]);
    bad.attestation = tc.sign([0, 1, 2], other.as_bytes()).to_bytes();
    let f = Fixture::new(&tc, &[(bad, m)]);
    let text = std::fs::read_to_string(f.path("proof-0")).unwrap();
    let record = verify_proof(
        &text,
        tc.committee.trust_root(),
        &Expected::crate_version("itoa", "1.0.15"),
    )
    .expect("the checkpoint signature and inclusion hold");
    assert_eq!(record.attesters(), &[0, 1, 2]);
    let err = record
        .check_attestation(tc.committee.trust_root())
        .unwrap_err();
    assert!(err.to_string().contains("attestation"), "{err}");
    let line = one_line_error(&f.verify(0, &["--crate", "itoa@1.0.15"]));
    assert!(
        line.contains("attestation: signature does not verify"),
        "{line}"
    );
}

/// 2^20 entries, 100 members (67 cosigners and attesters), a crate whose lockfile has 300
/// packages: the proof file is at most 2,048 bytes and verifies.
#[test]
fn proof_file_is_at_most_2048_bytes_at_2_pow_20_entries_and_100_members() {
    let tc = TestCommittee::new(100, 34);
    let t = tc.committee.threshold();
    let lockfile: String = (0..300)
        .map(|i| format!("[[package]]\nname = \"dependency-number-{i}\"\nversion = \"1.{i}.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n\n", hex::encode(sha256(&[i as u8]))))
        .collect();
    let mut pinned = request("serde_json", "1.0.140", &lockfile);
    pinned.request.features = vec![];
    let pinned = synchronicity::request::PinnedRequest::new(pinned.request, lockfile);
    pinned.validate().unwrap();
    let mut m = Manifest::default();
    m.insert(
        "x86_64-unknown-linux-gnu/release/deps/libserde_json-0123456789abcdef.rlib",
        [7; 32],
    );
    let st = attestation_statement(tc.committee.origin(), &pinned.id(), &m.digest());
    let entry = LogEntry {
        format: ENTRY_FORMAT,
        request: pinned.request.clone(),
        verdict: Verdict::Reproduced,
        digest: m.digest().to_vec(),
        attestation: tc.sign(0..t, st.as_bytes()).to_bytes(),
        dissenters: vec![],
        silent: (t as u32..100).collect::<Vec<_>>()[..0].to_vec(),
        misbehaviour: vec![],
        height: 123_456,
        epoch: 0,
    };
    let bytes = entry.to_cbor();
    // Any 20 sibling hashes make a valid path in a perfect tree of 2^20 leaves.
    let size = 1u64 << 20;
    let index = 777_777u64;
    let proof: Vec<merkle::Hash> = (0..20u8).map(|i| sha256(&[i, 1, 2])).collect();
    let root = synchronicity::testing::perfect_tree_root(&bytes, index, &proof);
    let cp = tc.cosign(size, root);
    let pf = ProofFile {
        extra: Some(bytes),
        index,
        proof,
        checkpoint: cp.note().to_string(),
    };
    let text = pf.format();
    let record = verify_proof(
        &text,
        &tc.committee,
        &Expected::crate_version("serde_json", "1.0.140"),
    )
    .unwrap();
    assert_eq!(record.attesters().len(), t);
    record.check_lockfile(&pinned.lockfile).unwrap();
    assert!(text.len() <= 2048, "proof file is {} bytes", text.len());
    eprintln!(
        "proof file: {} bytes (lockfile {} bytes, pinned by sha256)",
        text.len(),
        pinned.lockfile.len()
    );
}

/// `crate@version` answers with the default variant: a second variant (other features)
/// and a failed re-attempt after a reproduced verdict do not change the answer.
#[test]
fn crate_at_version_answers_with_the_first_reproduced_default_variant() {
    let tc = TestCommittee::new(4, 35);
    let f = |features: &[&str], attempt: u32, verdict: Verdict| {
        let (mut e, m) = entry_with(
            &tc,
            "itoa",
            "1.0.15",
            features,
            verdict,
            &[("r/libitoa.rlib", b"x")],
            &[0, 1, 2],
        );
        e.request.attempt = attempt;
        if verdict == Verdict::Reproduced {
            let st = attestation_statement(tc.committee.origin(), &e.request.id(), &m.digest());
            e.attestation = tc.sign([0, 1, 2], st.as_bytes()).to_bytes();
        }
        (e, m)
    };
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    let key = LookupKey::parse("itoa@1.0.15").unwrap();
    let append = |e: &(LogEntry, Manifest), h: u64| {
        store
            .append_decided(
                &[NewEntry {
                    bytes: e.0.to_cbor(),
                    request_id: e.0.request.id(),
                    spec: e.0.request.spec(),
                    blobs: vec![],
                }],
                Height::bare(h, h),
            )
            .unwrap();
    };
    assert!(store.resolve(&key).unwrap().is_err());
    append(&f(&[], 1, Verdict::NotReproduced), 1);
    assert_eq!(
        store.resolve(&key).unwrap(),
        Ok(0),
        "only a failed attempt: it answers"
    );
    append(&f(&[], 2, Verdict::Reproduced), 2);
    assert_eq!(store.resolve(&key).unwrap(), Ok(1));
    append(&f(&["std"], 1, Verdict::Reproduced), 3);
    append(&f(&[], 3, Verdict::NotReproduced), 4);
    assert_eq!(
        store.resolve(&key).unwrap(),
        Ok(1),
        "other variant and later failure change nothing"
    );
    assert_eq!(store.variants("itoa@1.0.15").unwrap(), vec![0, 1, 2, 3]);
    // Every variant stays reachable by its request id.
    let other = f(&["std"], 1, Verdict::Reproduced).0.request.id();
    assert_eq!(store.resolve(&LookupKey::Request(other)).unwrap(), Ok(2));
}
