//! Proof files: never panic; a parsed file re-formats to the same bytes unless its base64
//! was non-canonical; verification of fuzzed input never succeeds.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use synchronicity::log::ProofFile;
use synchronicity::testing::TestCommittee;

static COMMITTEE: LazyLock<TestCommittee> = LazyLock::new(|| TestCommittee::new(4, 1));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pf) = ProofFile::parse(text) {
        let again = ProofFile::parse(&pf.format()).expect("formatted proof parses");
        assert_eq!(again, pf);
        assert!(pf.verify(&COMMITTEE.committee).is_err());
    }
});
