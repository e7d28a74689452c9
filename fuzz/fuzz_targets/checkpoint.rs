//! Checkpoint bodies: never panic; whatever parses re-formats to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synchronicity::log::Checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cp) = Checkpoint::parse(text)
    {
        assert_eq!(cp.to_body(), text);
    }
});
