//! The index line and the wire proof: round trips, each malformed form refused with the
//! error that names it, and arbitrary bytes never panic the decoders.

use super::*;
use crate::tlog::Checkpoint;

fn with_lines(lines: &[&str]) -> Checkpoint {
    let mut cp = Checkpoint::new("example.org/log", 2, [1; 32]);
    cp.extensions = lines.iter().map(|l| l.to_string()).collect();
    cp
}

#[test]
fn the_index_line_round_trips_and_malformed_ones_are_refused() {
    let roots = IndexRoots {
        variants: [7; 32],
        crates: [9; 32],
    };
    let line = roots.extension_line();
    assert!(line.starts_with("synchronicity-index/v1 "));
    let cp = with_lines(&["other/extension ignored", &line]);
    assert_eq!(IndexRoots::of_checkpoint(&cp), Ok(roots));
    // Through the checkpoint's text and back.
    let reparsed = Checkpoint::parse(&cp.to_body()).unwrap();
    assert_eq!(IndexRoots::of_checkpoint(&reparsed), Ok(roots));

    assert_eq!(
        IndexRoots::of_checkpoint(&with_lines(&[])),
        Err(IndexError::NoIndex(2))
    );
    assert_eq!(
        IndexRoots::of_checkpoint(&with_lines(&[&line, &line])),
        Err(IndexError::Doubled)
    );
    let b64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    for (bad, why) in [
        ("synchronicity-index/v1", "no space after the tag"),
        ("synchronicity-index/v1x a b", "no space after the tag"),
        (
            &format!("synchronicity-index/v1 {b64}") as &str,
            "not two roots",
        ),
        (
            &format!("synchronicity-index/v1 {b64} {b64} {b64}"),
            "not two roots",
        ),
        (
            &format!("synchronicity-index/v1 {b64} !!!"),
            "a root is not base64",
        ),
        (
            &format!("synchronicity-index/v1 {b64} AAAA"),
            "a root is not 32 bytes",
        ),
        (
            &format!("synchronicity-index/v1 {b64} BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd="),
            // Non-zero padding bits: refused by the decoder already.
            "a root is not base64",
        ),
    ] {
        let e = IndexRoots::of_checkpoint(&with_lines(&[bad])).unwrap_err();
        assert_eq!(e, IndexError::Malformed(why), "{bad}");
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn values_refuse_lists_out_of_order() {
    assert_eq!(
        variants_value(&[(3, [0; 32]), (3, [1; 32])]),
        Err(IndexError::OutOfOrder)
    );
    assert_eq!(
        variants_value(&[(4, [0; 32]), (3, [1; 32])]),
        Err(IndexError::OutOfOrder)
    );
    assert!(variants_value(&[(3, [0; 32]), (4, [1; 32])]).is_ok());
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        versions_value(&v(&["1.0.0", "0.9.0"])),
        Err(IndexError::BadVersions)
    );
    assert_eq!(
        versions_value(&v(&["1.0.0", "1.0.0"])),
        Err(IndexError::BadVersions)
    );
    assert_eq!(
        versions_value(&v(&["1.0\n0"])),
        Err(IndexError::BadVersions)
    );
    assert!(versions_value(&v(&["0.9.0", "1.0.0"])).is_ok());
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn arbitrary_bytes_never_panic_the_decoders() {
    let cp = {
        let mut c = Checkpoint::new("example.org/log", 9, [1; 32]);
        c.extensions.push(IndexRoots::default().extension_line());
        c
    };
    for seed in 0..2000u64 {
        let bytes = noise(seed, (seed % 300) as usize);
        if let Ok(a) = crate::codec::from_slice::<VariantsAnswer>(&bytes, 1 << 20) {
            let _ = a.proof.decode();
        }
        let wire = WireProof {
            depth: (seed % 300) as u16,
            empty: serde_bytes::ByteBuf::from(noise(seed + 2, (seed % 40) as usize)),
            siblings: serde_bytes::ByteBuf::from(noise(seed, (seed % 97) as usize * 8)),
            leaf: (seed % 3 == 0)
                .then(|| serde_bytes::ByteBuf::from(noise(seed + 1, (seed % 70) as usize))),
        };
        if let Ok(p) = wire.decode() {
            let _ = p.verify(&[0; 32], &[1; 32], None);
        }
        let text = String::from_utf8_lossy(&bytes);
        let line = format!("synchronicity-index/v1 {text}");
        let mut c = cp.clone();
        c.extensions = vec![line];
        let _ = IndexRoots::of_checkpoint(&c);
    }
}

/// A proof travels without its empty siblings and comes back whole; a bitmap that does
/// not match the carried siblings is refused.
#[test]
fn wire_proofs_round_trip_and_mismatched_bitmaps_are_refused() {
    let mut keys: Vec<(smt::Hash, smt::Hash)> = (0..200u32)
        .map(|i| (crate::sha256(&i.to_be_bytes()), [1; 32]))
        .collect();
    // Two keys sharing 20 bits: a deep path with empty siblings below the rest.
    let mut deep = keys[0].0;
    deep[3] ^= 1;
    keys.push((deep, [2; 32]));
    keys.sort();
    for k in [keys[0].0, deep, [0x55; 32]] {
        let p = smt::prove(&keys, &k).unwrap();
        let w = WireProof::from(&p);
        assert_eq!(w.decode().unwrap(), p);
        assert_eq!(usize::from(w.depth), p.siblings.len());
        if k == deep {
            assert!(
                w.siblings.len() < 32 * p.siblings.len(),
                "empties not carried"
            );
        }
        let mut bad = w.clone();
        bad.depth += 1;
        assert!(bad.decode().is_err());
        let mut bad = w.clone();
        bad.siblings.extend_from_slice(&[9; 32]);
        assert!(bad.decode().is_err());
        let mut bad = w.clone();
        if let Some(b) = bad.empty.first_mut() {
            *b ^= 0x80;
            assert!(bad.decode().is_err());
        }
    }
}

#[test]
fn the_builder_is_the_definition_and_refuses_what_the_log_cannot_hold() {
    let h = |i: u8| [i; 32];
    let mut b = IndexBuilder::default();
    for (i, spec) in ["a@1.0.0", "a-b@2.0.0", "a@1.0.0", "a@0.9.0"]
        .iter()
        .enumerate()
    {
        b.push(i as u64, spec, h(i as u8)).unwrap();
    }
    assert_eq!(b.entries("a@1.0.0"), &[(0, h(0)), (2, h(2))]);
    // By hand: each key's value, then the trees.
    let mut variants = vec![
        (
            variants_key("a@1.0.0"),
            variants_value(&[(0, h(0)), (2, h(2))]).unwrap(),
        ),
        (
            variants_key("a-b@2.0.0"),
            variants_value(&[(1, h(1))]).unwrap(),
        ),
        (
            variants_key("a@0.9.0"),
            variants_value(&[(3, h(3))]).unwrap(),
        ),
    ];
    let mut crates = vec![
        (
            crate_key("a"),
            versions_value(&["0.9.0".into(), "1.0.0".into()]).unwrap(),
        ),
        (crate_key("a-b"), versions_value(&["2.0.0".into()]).unwrap()),
    ];
    variants.sort();
    crates.sort();
    assert_eq!(
        b.roots().unwrap(),
        IndexRoots {
            variants: smt::root(&variants).unwrap(),
            crates: smt::root(&crates).unwrap(),
        }
    );
    assert_eq!(b.push(2, "a@1.0.0", h(9)), Err(BuildError::OutOfOrder(2)));
    for bad in ["a", "@1", "a@", "a@1\n2"] {
        assert_eq!(b.push(9, bad, h(9)), Err(BuildError::BadSpec(bad.into())));
    }
}
