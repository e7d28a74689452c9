//! Writes a committee file of N deterministic test members and a reproduced proof for
//! `itoa@1.0.15` at index 777,777 of a 2^20-entry log (for `scripts/bench-verify.sh`):
//!
//! ```text
//! proof_fixture DIR N           →   DIR/committee.toml, DIR/itoa-1.0.15.tlog-proof
//! proof_fixture DIR N EPOCHS    →   DIR/genesis.toml, DIR/chain.toml (EPOCHS changes, each
//!                                   giving one member new keys) and
//!                                   DIR/crate-of-epoch-EPOCHS-1.0.0.tlog-proof (a build of
//!                                   the last epoch, cosigned by it)
//! ```
//! Test keys only: never use them for a real group.

use synchronicity::testing::{TestCommittee, reproduced_proof};
use synchronicity_verify::test_chain::rotations;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, n, epochs) = match args.as_slice() {
        [dir, n] => (dir, n, None),
        [dir, n, e] => (dir, n, Some(e.parse::<usize>().expect("EPOCHS"))),
        _ => {
            eprintln!("usage: proof_fixture DIR N [EPOCHS]");
            std::process::exit(2);
        }
    };
    let dir = std::path::PathBuf::from(dir);
    if let Some(epochs) = epochs {
        let h = rotations(n.parse().expect("N members"), epochs);
        std::fs::create_dir_all(&dir).expect("output directory");
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
        write("genesis.toml", h.epochs[0].committee.to_toml());
        write("chain.toml", h.chain_text());
        let last = h.builds[epochs];
        write(
            &format!("crate-of-epoch-{epochs}-1.0.0.tlog-proof"),
            h.log.proof(last, h.current()),
        );
        return;
    }
    let tc = TestCommittee::new(n.parse().expect("N members"), 77);
    std::fs::create_dir_all(&dir).expect("output directory");
    std::fs::write(dir.join("committee.toml"), tc.committee.to_toml()).expect("write");
    std::fs::write(dir.join("itoa-1.0.15.tlog-proof"), reproduced_proof(&tc)).expect("write");
}
