//! The README's committee walk-through, run against the real binary: four node directories,
//! a committee file, `committee check`; then the rejections a user can cause, each a one-line
//! error with a non-zero exit and nothing written.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::cli::{bin, one_line_error, stderr};

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// A failure is exactly one `error:` line on stderr, naming `needle`, and a non-zero exit.
fn assert_one_line_error(o: &Output, needle: &str) {
    let err = one_line_error(o);
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn four_nodes(root: &Path) -> Vec<PathBuf> {
    (0..4)
        .map(|i| {
            let dir = root.join(format!("n{i}"));
            let addr = format!("/ip4/127.0.0.1/tcp/{}", 7100 + i);
            let o = run(&[
                "keygen",
                "--dir",
                dir.to_str().unwrap(),
                "--name",
                &format!("n{i}"),
                "--addr",
                &addr,
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let stdout = String::from_utf8(o.stdout).unwrap();
            assert!(stdout.contains("bls_proof_of_possession"));
            dir
        })
        .collect()
}

fn init(root: &Path, dirs: &[PathBuf], extra: &[&str], out: &Path) -> Output {
    let mut args = vec![
        "committee",
        "init",
        "--origin",
        "example.org/synchronicity/test",
        "--toolchain",
        "1.95.0",
    ];
    args.extend([
        "--target",
        "x86_64-unknown-linux-gnu",
        "--out",
        out.to_str().unwrap(),
    ]);
    args.extend(extra);
    let dirs: Vec<String> = dirs
        .iter()
        .map(|d| d.to_str().unwrap().to_string())
        .collect();
    let mut cmd = bin();
    cmd.current_dir(root).args(&args).args(&dirs);
    cmd.output().unwrap()
}

#[test]
fn readme_walkthrough_and_rejections() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dirs = four_nodes(root);
    let committee = root.join("committee.toml");
    let o = init(root, &dirs, &[], &committee);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(&["committee", "check", committee.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("threshold  3 of 4"));
    let o = run(&["committee", "check", "--json", committee.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["members"], 4);
    assert_eq!(json["threshold"], 3);

    // keygen refuses to overwrite a node directory.
    let before = std::fs::read(dirs[0].join("bls.key")).unwrap();
    let o = run(&[
        "keygen",
        "--dir",
        dirs[0].to_str().unwrap(),
        "--name",
        "again",
    ]);
    assert_one_line_error(&o, "refusing to overwrite");
    assert_eq!(std::fs::read(dirs[0].join("bls.key")).unwrap(), before);

    let text = std::fs::read_to_string(&committee).unwrap();
    let check = |name: &str, bad: &str, needle: &str| {
        let p = root.join(name);
        std::fs::write(&p, bad).unwrap();
        let o = run(&["committee", "check", p.to_str().unwrap()]);
        assert_one_line_error(&o, needle);
    };
    // One corrupted PoP: swap in another member's proof.
    let pops: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("bls_proof_of_possession"))
        .collect();
    check(
        "pop.toml",
        &text.replacen(pops[1], pops[0], 1),
        "proof of possession does not verify",
    );
    // A member duplicated.
    let first = &text[text.find("[[members]]").unwrap()..];
    let first_member = &first[..first[1..].find("[[members]]").unwrap() + 1];
    check(
        "dup.toml",
        &format!("{text}\n{first_member}"),
        "have the same name",
    );
    // Threshold 0.
    check(
        "t0.toml",
        &text.replace("threshold = 3", "threshold = 0"),
        "threshold 0 is out of range",
    );

    // `committee init` with a bad member writes nothing.
    let out = root.join("never.toml");
    let bad_member = root.join("bad-member.toml");
    let member = std::fs::read_to_string(dirs[1].join("member.toml")).unwrap();
    let other = std::fs::read_to_string(dirs[2].join("member.toml")).unwrap();
    let pop_line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("bls_proof_of_possession"))
            .unwrap()
            .to_string()
    };
    std::fs::write(
        &bad_member,
        member.replace(&pop_line(&member), &pop_line(&other)),
    )
    .unwrap();
    let o = init(root, &[dirs[0].clone(), bad_member], &[], &out);
    assert_one_line_error(&o, "proof of possession does not verify");
    assert!(!out.exists());
    let o = init(root, &[dirs[0].clone(), dirs[0].clone()], &[], &out);
    assert_one_line_error(&o, "have the same name");
    assert!(!out.exists());
    let o = init(root, &dirs, &["--threshold", "0"], &out);
    assert_one_line_error(&o, "threshold 0 is out of range");
    assert!(!out.exists());
    // And it does not overwrite an existing committee file.
    let o = init(root, &dirs, &[], &committee);
    assert_one_line_error(&o, "already exists");
    assert_eq!(std::fs::read_to_string(&committee).unwrap(), text);
}
