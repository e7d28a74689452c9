//! Writes a committee file of N deterministic test members and a reproduced proof for
//! `itoa@1.0.15` at index 777,777 of a 2^20-entry log (for `scripts/bench-verify.sh`):
//!
//! ```text
//! proof_fixture DIR N   →   DIR/committee.toml, DIR/itoa-1.0.15.tlog-proof
//! ```
//! Test keys only: never use them for a real group.

use synchronicity::testing::{TestCommittee, reproduced_proof};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, n] = args.as_slice() else {
        eprintln!("usage: proof_fixture DIR N");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let tc = TestCommittee::new(n.parse().expect("N members"), 77);
    std::fs::create_dir_all(&dir).expect("output directory");
    std::fs::write(dir.join("committee.toml"), tc.committee.to_toml()).expect("write");
    std::fs::write(dir.join("itoa-1.0.15.tlog-proof"), reproduced_proof(&tc)).expect("write");
}
