//! The index's tree against an independent implementation written from its definition in
//! Python (`smt_reference.py`, hashlib only): the same roots for 0 to 1,000 keys. Needs
//! `python3` (the machine kind has it; without it this test fails, it does not skip).

use std::process::Command;

use synchronicity_verify::index::smt::root;
use synchronicity_verify::sha256;

fn python_root(n: usize) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smt_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(n.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn roots_agree_with_an_independent_implementation() {
    for n in [0usize, 1, 2, 3, 17, 100, 1000] {
        let mut pairs: Vec<([u8; 32], [u8; 32])> = (0..n)
            .map(|i| {
                (
                    sha256(format!("crate-{i}@1.0.0").as_bytes()),
                    sha256(format!("value-{i}").as_bytes()),
                )
            })
            .collect();
        pairs.sort();
        assert_eq!(
            hex::encode(root(&pairs).unwrap()),
            python_root(n),
            "n = {n}"
        );
    }
}
