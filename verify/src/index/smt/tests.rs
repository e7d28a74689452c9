//! The tree against a naive reference (every one of the 256 levels computed, with the empty
//! subtree's hash at each depth derived by the shortcut rules), fixed vectors, and proofs:
//! every present and absent key proves, and every tampering is refused.

use super::*;

fn key(s: &str) -> Hash {
    sha256(s.as_bytes())
}

fn pairs(n: usize) -> Vec<(Hash, Hash)> {
    let mut p: Vec<(Hash, Hash)> = (0..n)
        .map(|i| (key(&format!("crate-{i}@1.0.0")), key(&format!("value-{i}"))))
        .collect();
    p.sort();
    p
}

/// The same tree computed without the split shortcut: recursion over every prefix, one bit
/// at a time, from the definition in the module doc.
fn reference(depth: usize, pairs: &[(Hash, Hash)]) -> Hash {
    match pairs {
        [] => EMPTY,
        [(k, v)] => leaf_hash(k, v),
        _ => {
            let zeros: Vec<_> = pairs
                .iter()
                .filter(|(k, _)| !bit(k, depth))
                .copied()
                .collect();
            let ones: Vec<_> = pairs
                .iter()
                .filter(|(k, _)| bit(k, depth))
                .copied()
                .collect();
            node_hash(&reference(depth + 1, &zeros), &reference(depth + 1, &ones))
        }
    }
}

#[test]
fn the_root_is_the_definitions_and_fixed() {
    assert_eq!(root(&[]).unwrap(), EMPTY);
    let one = pairs(1);
    assert_eq!(root(&one).unwrap(), leaf_hash(&one[0].0, &one[0].1));
    for n in [2, 3, 10, 100, 1000] {
        let p = pairs(n);
        assert_eq!(root(&p).unwrap(), reference(0, &p), "n = {n}");
    }
    // Fixed vectors (also printed by verify/tests/smt_reference.py 3 and 1000): a change
    // to the hashing or the layout changes these.
    assert_eq!(
        hex::encode(root(&pairs(3)).unwrap()),
        "bdeb8887f46ae9136e1acf571239af34305bf47774478fb0d51a2a1159644d9c"
    );
    assert_eq!(
        hex::encode(root(&pairs(1000)).unwrap()),
        "d5b1a73824c91ce30b4e78fd271d030fc2a3b863af23edbb0b3a9213398ceeec"
    );
    let two = [([0u8; 32], [1u8; 32]), ([0xff; 32], [2u8; 32])];
    assert_eq!(
        root(&two).unwrap(),
        node_hash(
            &leaf_hash(&[0; 32], &[1; 32]),
            &leaf_hash(&[0xff; 32], &[2; 32])
        )
    );
    // Keys sharing their first bit: one node level with an EMPTY sibling above them.
    let mut low = [0u8; 32];
    low[31] = 1;
    let near = [([0u8; 32], [1u8; 32]), (low, [2u8; 32])];
    let mut expect = node_hash(&leaf_hash(&[0; 32], &[1; 32]), &leaf_hash(&low, &[2; 32]));
    for _ in 0..255 {
        expect = node_hash(&expect, &EMPTY);
    }
    assert_eq!(root(&near).unwrap(), expect);
}

#[test]
fn unsorted_or_duplicate_keys_have_no_tree() {
    let mut p = pairs(4);
    p.swap(0, 1);
    assert_eq!(root(&p), Err(SmtError::NotSorted));
    let mut p = pairs(4);
    p[1].0 = p[0].0;
    assert!(matches!(root(&p), Err(SmtError::DuplicateKey(_))));
}

#[test]
fn every_present_and_absent_key_proves_and_nothing_else_does() {
    let p = pairs(200);
    let r = root(&p).unwrap();
    for (k, v) in &p {
        let proof = prove(&p, k).unwrap();
        proof.verify(&r, k, Some(v)).unwrap();
        // Not another value, not absent.
        assert_eq!(
            proof.verify(&r, k, Some(&key("other"))),
            Err(SmtProofError::WrongLeaf)
        );
        assert_eq!(proof.verify(&r, k, None), Err(SmtProofError::WrongLeaf));
        assert!(proof.siblings.len() < 24, "depth {}", proof.siblings.len());
    }
    for i in 0..200 {
        let absent = key(&format!("absent-{i}"));
        let proof = prove(&p, &absent).unwrap();
        proof.verify(&r, &absent, None).unwrap();
        assert!(proof.verify(&r, &absent, Some(&key("x"))).is_err());
        // The same proof says nothing of another key that is present.
        let (k, v) = p[i];
        assert!(proof.verify(&r, &k, Some(&v)).is_err());
    }
    // The empty tree proves every key absent, and none present.
    let empty = prove(&[], &key("a")).unwrap();
    empty.verify(&EMPTY, &key("a"), None).unwrap();
    assert!(empty.verify(&EMPTY, &key("a"), Some(&key("v"))).is_err());
}

#[test]
fn tampered_proofs_are_refused() {
    let p = pairs(64);
    let r = root(&p).unwrap();
    let (k, v) = p[10];
    let good = prove(&p, &k).unwrap();
    // A flipped sibling, a dropped one, an extra EMPTY one: another root.
    let mut bad = good.clone();
    bad.siblings[0][0] ^= 1;
    assert_eq!(bad.verify(&r, &k, Some(&v)), Err(SmtProofError::WrongRoot));
    let mut bad = good.clone();
    bad.siblings.pop();
    assert!(bad.verify(&r, &k, Some(&v)).is_err());
    let mut bad = good.clone();
    bad.siblings.push(EMPTY);
    assert!(bad.verify(&r, &k, Some(&v)).is_err());
    // Absence claimed with the present key's own leaf swapped for "nothing".
    let mut bad = good.clone();
    bad.leaf = None;
    assert_eq!(bad.verify(&r, &k, None), Err(SmtProofError::WrongRoot));
    // Another key's leaf that is not on this key's path does not prove absence.
    let absent = key("absent-x");
    let mut bad = prove(&p, &absent).unwrap();
    let far = p
        .iter()
        .find(|(o, _)| bit(o, 0) != bit(&absent, 0))
        .copied()
        .unwrap();
    bad.leaf = Some(far);
    assert_eq!(bad.verify(&r, &absent, None), Err(SmtProofError::WrongLeaf));
    // Too deep.
    let deep = SmtProof {
        siblings: vec![EMPTY; MAX_DEPTH + 1],
        leaf: None,
    };
    assert_eq!(
        deep.verify(&r, &k, None),
        Err(SmtProofError::TooDeep(MAX_DEPTH + 1))
    );
}
