//! Signed notes and cosigned-checkpoint verification: never panic; a parsed note re-formats
//! to the same bytes; nothing random verifies against the committee.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use synchronicity::log::{CosignedCheckpoint, SignedNote};
use synchronicity::testing::TestCommittee;

static COMMITTEE: LazyLock<TestCommittee> = LazyLock::new(|| TestCommittee::new(4, 1));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(note) = SignedNote::parse(text) {
        assert_eq!(note.format(), text);
    }
    assert!(CosignedCheckpoint::verify(text, &COMMITTEE.committee).is_err());
});
