//! The index's decoders: a checkpoint's index line, and a lookup answer's proof and entries
//! checked against a checkpoint. Never panic; a line that parses formats back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synchronicity::log::Checkpoint;
use synchronicity::verify::codec;
use synchronicity::verify::index::{IndexRoots, VariantsAnswer};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cp) = Checkpoint::parse(text)
        && let Ok(roots) = IndexRoots::of_checkpoint(&cp)
    {
        assert!(cp.extensions.contains(&roots.extension_line()));
    }
    if let Ok(answer) = codec::from_slice::<VariantsAnswer>(data, 1 << 20)
        && let Ok(proof) = answer.proof.decode()
    {
        assert!(proof.siblings.len() <= 256);
    }
});
