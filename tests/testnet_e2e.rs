//! End to end with real builds: four `synchronicity node` processes on loopback build a real
//! crate from crates.io in their sandboxes, agree, log and cosign; the light client fetches
//! the proof and `verify` accepts it offline with the artifact file. With one member stopped
//! before the request the verdict is reproduced 3 of 4. A tampered proof, a wrong artifact
//! and a committee file with one key changed each make `verify` fail with one line.
//!
//! Needs the sandbox image (`scripts/build-image.sh`, run by `scripts/test.sh`) and
//! crates.io.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Cluster;
use support::cli::{bin, ok, one_line_error};
use support::rules::windows;
use synchronicity::committee::ProtocolRules;
use synchronicity::protocol::Verdict;
use synchronicity::testing::TestCommittee;

/// Short windows: a small crate builds in seconds; in the 3-of-4 case the stopped member
/// never commits, so the phase ends a grace after the third commitment (not the window).
fn rules() -> ProtocolRules {
    windows(300, 10, 20)
}
const NODE_TOML: &str = "idle_interval_ms = 2000\n";

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut found = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            if let Some(f) = find_file(&p, name) {
                found = Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name)
            && p.to_string_lossy().contains("release")
        {
            found = Some(p);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_crate_from_request_to_offline_verified_proof() {
    let mut c = Cluster::real_nodes(51, 4, rules(), NODE_TOML);
    for i in 0..4 {
        c.start(i);
    }
    c.submit_with(0, "itoa", "1.0.15", None).await;
    let st = c.decided_on(&[0, 1, 2, 3], "itoa@1.0.15", 900).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced, "{e:?}");
    assert_eq!(c.signers(&e.attestation), 4, "reproduced 4/4");

    // The light client fetches the proof from member 2 and verifies it before writing.
    let proof = c.root.path().join("itoa.tlog-proof");
    ok(&c.proof(2, "itoa@1.0.15", &["--with-inputs"], &proof));

    // Offline, with the inputs fetched beside the proof and the artifact member 0 built.
    let manifest_file = c.root.path().join("itoa.manifest");
    let manifest = std::fs::read_to_string(&manifest_file).expect("proof --with-inputs wrote it");
    let lock = std::fs::read_to_string(c.root.path().join("itoa.Cargo.lock")).unwrap();
    assert_eq!(
        synchronicity::crypto::sha256(lock.as_bytes())[..],
        e.request.lockfile_sha256[..]
    );
    let path_in_manifest = manifest.lines().next().unwrap().split_once("  ").unwrap().1;
    let name = path_in_manifest.rsplit('/').next().unwrap();
    let artifact = find_file(&c.dir(0).join("work"), name).expect("member 0's artifact");
    let verify = |extra: &[&std::ffi::OsStr]| {
        bin()
            .arg("verify")
            .arg(&proof)
            .arg("--trust")
            .arg(&c.committee_file)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = verify(&[
        "--crate".as_ref(),
        "itoa@1.0.15".as_ref(),
        "--manifest".as_ref(),
        manifest_file.as_os_str(),
        "--lockfile".as_ref(),
        c.root.path().join("itoa.Cargo.lock").as_os_str(),
        "--artifact".as_ref(),
        artifact.as_os_str(),
    ]);
    ok(&o);
    // The proof is about itoa@1.0.15: another version or crate fails, naming itoa@1.0.15.
    for other in ["itoa@1.0.14", "ryu@1.0.15"] {
        let err = one_line_error(&verify(&["--crate".as_ref(), other.as_ref()]));
        assert!(
            err.contains("about itoa@1.0.15") && err.contains(other),
            "{err}"
        );
    }
    // The verifier crate's example program accepts it too (built by `cargo test`).
    let example = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/verify_proof");
    assert!(example.is_file(), "{} not built", example.display());
    let o = Command::new(&example)
        .arg(&c.committee_file)
        .arg(&proof)
        .arg("itoa@1.0.15")
        .arg(&manifest_file)
        .arg(&artifact)
        .output()
        .unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("itoa@1.0.15 reproduced by 4 of 4"));

    // A tampered proof, a wrong artifact, a committee with one key changed.
    let text = std::fs::read_to_string(&proof).unwrap();
    let tampered = c.root.path().join("tampered.tlog-proof");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let idx = lines.iter().position(|l| l.starts_with("index ")).unwrap();
    lines[idx] = format!("index {}", 1 + lines[idx][6..].parse::<u64>().unwrap());
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    one_line_error(
        &bin()
            .arg("verify")
            .arg(&tampered)
            .args(["--crate", "itoa@1.0.15", "--trust"])
            .arg(&c.committee_file)
            .output()
            .unwrap(),
    );
    let wrong = c.root.path().join(name);
    std::fs::write(&wrong, b"not the artifact").unwrap();
    let err = one_line_error(
        &bin()
            .arg("verify")
            .arg(&proof)
            .args(["--crate", "itoa@1.0.15", "--trust"])
            .arg(&c.committee_file)
            .arg("--manifest")
            .arg(&manifest_file)
            .arg("--artifact")
            .arg(&wrong)
            .output()
            .unwrap(),
    );
    assert!(err.contains("differs from the attested"), "{err}");
    // The right bytes under another name: refused.
    let renamed = c.root.path().join("libother.rlib");
    std::fs::copy(&artifact, &renamed).unwrap();
    let err = one_line_error(&verify(&[
        "--crate".as_ref(),
        "itoa@1.0.15".as_ref(),
        "--manifest".as_ref(),
        manifest_file.as_os_str(),
        "--artifact".as_ref(),
        renamed.as_os_str(),
    ]));
    assert!(err.contains("is attested for"), "{err}");
    let other = TestCommittee::new(4, 99);
    let mut file = c.tc.committee.to_file();
    file.members[1].bls_public_key = other.committee.to_file().members[1].bls_public_key.clone();
    file.members[1].bls_proof_of_possession = other.committee.to_file().members[1]
        .bls_proof_of_possession
        .clone();
    let changed = c.root.path().join("changed.toml");
    std::fs::write(&changed, toml::to_string(&file).unwrap()).unwrap();
    one_line_error(
        &bin()
            .arg("verify")
            .arg(&proof)
            .args(["--crate", "itoa@1.0.15", "--trust"])
            .arg(&changed)
            .output()
            .unwrap(),
    );

    // One member stopped before the request: reproduced by the other three.
    c.stop(3);
    c.submit_with(0, "itoa", "1.0.14", None).await;
    let st = c.decided_on(&[0, 1, 2], "itoa@1.0.14", 900).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced, "{e:?}");
    assert_eq!(c.signers(&e.attestation), 3, "reproduced 3/4");
    for i in 0..3 {
        c.stop(i);
        c.fsck(i);
    }
}
