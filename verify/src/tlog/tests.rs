//! Log tests: RFC 6962 vectors, a brute-force reference for every small (index, size) and
//! (old, new), strict formats, and tampering with every piece of a proof.

use std::cell::Cell;
use std::collections::HashMap;

use serde::Deserialize;

use super::merkle::*;
use super::*;
use crate::test_committee::TestCommittee;

/// In-memory storage that also asserts the [`HashReader`] contract from the caller's side
/// (every requested index must exist) and counts reads.
#[derive(Default)]
struct MemoryTree {
    hashes: HashMap<HashIndex, Hash>,
    size: u64,
    reads: Cell<usize>,
}

impl MemoryTree {
    fn append(&mut self, data: &[u8]) {
        let n = self.size;
        let sib = self.read_hashes(&append_reads(n)).unwrap();
        for (i, h) in hashes_to_store(n, leaf_hash(data), &sib) {
            assert!(
                self.hashes.insert(i, h).is_none(),
                "hash {i:?} stored twice"
            );
        }
        self.size += 1;
    }
    fn of(leaves: &[Vec<u8>]) -> Self {
        let mut t = Self::default();
        leaves.iter().for_each(|l| t.append(l));
        t
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, idx: &[HashIndex]) -> Result<Vec<Hash>, MerkleError> {
        self.reads.set(self.reads.get() + idx.len());
        Ok(idx
            .iter()
            .map(|i| {
                *self
                    .hashes
                    .get(i)
                    .unwrap_or_else(|| panic!("read of unstored {i:?}"))
            })
            .collect())
    }
}

// ---- The RFC 6962 definitions, recursively over the leaves: the reference. ----

fn ref_mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = 1 << (63 - (n as u64 - 1).leading_zeros());
            node_hash(&ref_mth(&leaves[..k]), &ref_mth(&leaves[k..]))
        }
    }
}

fn ref_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = 1 << (63 - (n as u64 - 1).leading_zeros());
    if m < k {
        [ref_path(m, &leaves[..k]), vec![ref_mth(&leaves[k..])]].concat()
    } else {
        [ref_path(m - k, &leaves[k..]), vec![ref_mth(&leaves[..k])]].concat()
    }
}

fn ref_subproof(m: usize, leaves: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![ref_mth(leaves)] };
    }
    let k = 1 << (63 - (n as u64 - 1).leading_zeros());
    if m <= k {
        [
            ref_subproof(m, &leaves[..k], b),
            vec![ref_mth(&leaves[k..])],
        ]
        .concat()
    } else {
        [
            ref_subproof(m - k, &leaves[k..], false),
            vec![ref_mth(&leaves[..k])],
        ]
        .concat()
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
}

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h[7] ^= 1;
    h
}

#[test]
fn brute_force_inclusion_up_to_64() {
    let all = leaves(64);
    let tree = MemoryTree::of(&all);
    for size in 1..=64u64 {
        let sub = &all[..size as usize];
        let root = tree_hash(size, &tree).unwrap();
        assert_eq!(root, ref_mth(sub), "root {size}");
        for index in 0..size {
            let proof = prove_inclusion(index, size, &tree).unwrap();
            assert_eq!(proof, ref_path(index as usize, sub), "path {index} {size}");
            let leaf = leaf_hash(&sub[index as usize]);
            verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
            // Tamper with each hash, the index, the size, the leaf and the root.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
            }
            for other in 0..size.min(8) {
                if other != index {
                    assert!(verify_inclusion(other, size, &leaf, &proof, &root).is_err());
                }
            }
            // Another size with a differently shaped path is refused. (A size with the same
            // path shape gives the same root; the signed checkpoint binds size and root.)
            for other in [size - 1, size + 1] {
                if other > index && inclusion_len(index, other) != proof.len() {
                    assert!(verify_inclusion(index, other, &leaf, &proof, &root).is_err());
                }
            }
            assert!(verify_inclusion(index, size, &flip(&leaf), &proof, &root).is_err());
            assert!(verify_inclusion(index, size, &leaf, &proof, &flip(&root)).is_err());
            assert!(verify_inclusion(size, size, &leaf, &proof, &root).is_err());
        }
    }
}

#[test]
fn brute_force_consistency_up_to_64() {
    let all = leaves(64);
    let tree = MemoryTree::of(&all);
    for new in 1..=64u64 {
        let new_root = ref_mth(&all[..new as usize]);
        for old in 1..=new {
            let old_root = ref_mth(&all[..old as usize]);
            let proof = prove_consistency(old, new, &tree).unwrap();
            let expected = if old == new {
                vec![]
            } else {
                ref_subproof(old as usize, &all[..new as usize], true)
            };
            assert_eq!(proof, expected, "consistency {old} {new}");
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
            }
            assert!(verify_consistency(old, new, &flip(&old_root), &new_root, &proof).is_err());
            assert!(verify_consistency(old, new, &old_root, &flip(&new_root), &proof).is_err());
            if old > 1 && old < new {
                assert!(verify_consistency(old - 1, new, &old_root, &new_root, &proof).is_err());
            }
        }
        verify_consistency(0, new, &EMPTY_ROOT, &new_root, &[]).unwrap();
        assert!(verify_consistency(0, new, &new_root, &new_root, &[]).is_err());
    }
    assert!(prove_consistency(5, 4, &tree).is_err());
}

#[test]
fn stored_hashes_are_amortised_constant_and_proofs_read_log_n() {
    let tree = MemoryTree::of(&leaves(1024));
    // A complete tree of 2^k leaves stores 2^(k+1) - 1 hashes: < 2 per record.
    assert_eq!(tree.hashes.len(), 2047);
    tree.reads.set(0);
    prove_inclusion(517, 1000, &tree).unwrap();
    assert!(tree.reads.get() <= 2 * 10, "{} reads", tree.reads.get());
}

#[derive(Deserialize)]
struct Rfc6962 {
    leaves: Vec<String>,
    roots: Vec<RootCase>,
    inclusion: Vec<InclusionCase>,
    consistency: Vec<ConsistencyCase>,
}
#[derive(Deserialize)]
struct RootCase {
    size: u64,
    root: String,
}
#[derive(Deserialize)]
struct InclusionCase {
    index: u64,
    size: u64,
    proof: Vec<String>,
}
#[derive(Deserialize)]
struct ConsistencyCase {
    old: u64,
    new: u64,
    proof: Vec<String>,
}

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Published vectors (transparency-dev/merkle, google/certificate-transparency).
#[test]
fn rfc6962_published_vectors() {
    let v: Rfc6962 =
        serde_json::from_str(include_str!("../../tests/vectors/rfc6962.json")).unwrap();
    let data: Vec<Vec<u8>> = v.leaves.iter().map(|l| hex::decode(l).unwrap()).collect();
    let tree = MemoryTree::of(&data);
    for r in &v.roots {
        assert_eq!(
            tree_hash(r.size, &tree).unwrap(),
            h(&r.root),
            "root {}",
            r.size
        );
    }
    let root = |size| tree_hash(size, &tree).unwrap();
    for c in &v.inclusion {
        let proof: Vec<Hash> = c.proof.iter().map(|p| h(p)).collect();
        assert_eq!(prove_inclusion(c.index, c.size, &tree).unwrap(), proof);
        verify_inclusion(
            c.index,
            c.size,
            &leaf_hash(&data[c.index as usize]),
            &proof,
            &root(c.size),
        )
        .unwrap();
    }
    for c in &v.consistency {
        let proof: Vec<Hash> = c.proof.iter().map(|p| h(p)).collect();
        assert_eq!(prove_consistency(c.old, c.new, &tree).unwrap(), proof);
        verify_consistency(c.old, c.new, &root(c.old), &root(c.new), &proof).unwrap();
    }
}

#[test]
fn checkpoint_format_is_strict() {
    let cp = Checkpoint::new("example.org/log", 42, [7; 32]);
    let body = cp.to_body();
    assert_eq!(
        body,
        "example.org/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
    );
    assert_eq!(Checkpoint::parse(&body).unwrap(), cp);
    let with_ext = format!("{body}ext line\n");
    assert_eq!(
        Checkpoint::parse(&with_ext).unwrap().extensions,
        vec!["ext line"]
    );
    for bad in [
        body.trim_end(), // no final newline
        "example.org/log\n042\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n", // leading zero
        "example.org/log\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        "example.org/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw==\n", // 31 bytes
        "example.org/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd=\n", // non-canonical
        "example.org/log\n42\n",
        "example.org/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n",
        "example org\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        "example.org/log\n18446744073709551616\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn signed_note_rules() {
    let tc = TestCommittee::new(4, 1);
    let c = &tc.committee;
    let cp = tc.cosign(3, [9; 32]);
    let note = cp.note().to_string();
    CosignedCheckpoint::verify(&note, c).unwrap();
    // Lines of unknown keys (another name, or our name with another key ID) are ignored.
    let foreign = NoteSignature {
        name: "witness.example/w1".into(),
        key_id: [1, 2, 3, 4],
        signature: vec![5; 64],
    };
    let other_id = NoteSignature {
        name: c.origin().into(),
        key_id: [0, 0, 0, 0],
        signature: vec![5; 64],
    };
    let extended = format!("{note}{}{}", foreign.to_line(), other_id.to_line());
    CosignedCheckpoint::verify(&extended, c).unwrap();
    // No line of our key.
    let parsed = SignedNote::parse(&note).unwrap();
    let only_foreign = SignedNote {
        text: parsed.text.clone(),
        signatures: vec![foreign.clone()],
    }
    .format();
    assert!(matches!(
        CosignedCheckpoint::verify(&only_foreign, c),
        Err(CheckpointError::NoCommitteeSignature { .. })
    ));
    // Our key twice.
    let twice = format!("{note}{}", parsed.signatures[0].to_line());
    assert_eq!(
        CosignedCheckpoint::verify(&twice, c),
        Err(CheckpointError::DuplicateCommitteeSignature)
    );
    // Malformed notes.
    for bad in [
        note.trim_end_matches('\n').to_string(),
        note.replace('\u{2014}', "-"),
        note.replacen('\n', "\r\n", 1),
        parsed.text.clone(),
        format!("{}\n\n", parsed.text),
    ] {
        assert!(SignedNote::parse(&bad).is_err(), "{bad:?}");
    }
    // The checkpoint must carry the committee's origin, even if signed by it.
    let cp = Checkpoint::new("other.example/log", 3, [9; 32]);
    let sig = tc.sign(0..3, cp.to_body().as_bytes());
    assert!(matches!(
        CosignedCheckpoint::assemble(&cp, &sig, c),
        Err(CheckpointError::WrongOrigin { .. })
    ));
    // Below threshold.
    let cp = Checkpoint::new(c.origin(), 3, [9; 32]);
    let sig = tc.sign(0..2, cp.to_body().as_bytes());
    assert!(matches!(
        CosignedCheckpoint::assemble(&cp, &sig, c),
        Err(CheckpointError::Signature(_))
    ));
}

fn proof_fixture(tc: &TestCommittee) -> (ProofFile, Vec<Vec<u8>>) {
    let data = leaves(13);
    let tree = MemoryTree::of(&data);
    let cp = tc.cosign(13, tree_hash(13, &tree).unwrap());
    let pf = ProofFile {
        extra: Some(data[6].clone()),
        index: 6,
        proof: prove_inclusion(6, 13, &tree).unwrap(),
        checkpoint: cp.note().to_string(),
    };
    (pf, data)
}

#[test]
fn proof_file_roundtrip_and_every_tamper_fails() {
    let tc = TestCommittee::new(4, 2);
    let c = &tc.committee;
    let (pf, data) = proof_fixture(&tc);
    let text = pf.format();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
    let parsed = ProofFile::parse(&text).unwrap();
    assert_eq!(parsed, pf);
    let v = parsed.verify(c).unwrap();
    assert_eq!(v.leaf_hash, leaf_hash(&data[6]));

    let fails = |t: &str| {
        ProofFile::parse(t)
            .map_err(ProofError::from)
            .and_then(|p| p.verify(c))
            .is_err()
    };
    // Every proof hash.
    for i in 0..pf.proof.len() {
        let mut bad = pf.clone();
        bad.proof[i] = flip(&bad.proof[i]);
        assert!(fails(&bad.format()), "proof hash {i}");
    }
    // Index, extra.
    let mut bad = pf.clone();
    bad.index = 7;
    assert!(fails(&bad.format()));
    let mut bad = pf.clone();
    bad.extra = Some(data[7].clone());
    assert!(fails(&bad.format()));
    bad.extra = None;
    assert!(fails(&bad.format()));
    // Every checkpoint line: origin, size, root.
    let lines: Vec<&str> = pf.checkpoint.lines().collect();
    let size_bad = text.replacen(&format!("\n{}\n", lines[1]), "\n14\n", 1);
    assert!(fails(&size_bad));
    let root_bad = text.replacen(
        lines[2],
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]),
        1,
    );
    assert!(fails(&root_bad));
    let origin_bad = text.replace(&format!("\n{}\n13", lines[0]), "\nexample.org/other\n13");
    assert!(fails(&origin_bad));
    // Every bit of the signature line's bytes (key id, bitmap, aggregate).
    let parsed_note = SignedNote::parse(&pf.checkpoint).unwrap();
    let sig = &parsed_note.signatures[0];
    let total = (4 + sig.signature.len()) * 8;
    for bit in (0..total).step_by(7) {
        let mut bytes = sig.key_id.to_vec();
        bytes.extend(&sig.signature);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let line = NoteSignature {
            name: sig.name.clone(),
            key_id: bytes[..4].try_into().unwrap(),
            signature: bytes[4..].to_vec(),
        };
        let note = SignedNote {
            text: parsed_note.text.clone(),
            signatures: vec![line],
        }
        .format();
        let mut bad = pf.clone();
        bad.checkpoint = note;
        assert!(fails(&bad.format()), "signature bit {bit}");
    }
    // A committee with one key changed.
    let other = TestCommittee::new(4, 3);
    assert!(pf.verify(&other.committee).is_err());
    // Malformed files.
    for bad in [
        text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
        text.replacen("index 6", "index 06", 1),
        text.replacen("index 6", "index", 1),
        text.replacen("\n\n", "\n", 1),
        String::new(),
    ] {
        assert!(ProofFile::parse(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn consistency_body_roundtrip() {
    let tc = TestCommittee::new(4, 4);
    let tree = MemoryTree::of(&leaves(20));
    let cp = tc.cosign(20, tree_hash(20, &tree).unwrap());
    let body = ConsistencyProof {
        old: 7,
        proof: prove_consistency(7, 20, &tree).unwrap(),
        checkpoint: cp.note().into(),
    };
    let text = body.format();
    assert!(text.starts_with("old 7\n"));
    assert_eq!(ConsistencyProof::parse(&text).unwrap(), body);
    assert!(ConsistencyProof::parse(&text.replacen("old 7", "old x", 1)).is_err());
}

/// A proof for a 2^20-entry log and a 100-member committee is ≤ 1.5 KiB without `extra`.
#[test]
fn proof_file_size_at_2_pow_20_and_100_members() {
    let tc = TestCommittee::new(100, 5);
    let mut tree = MemoryTree::default();
    for i in 0..(1u64 << 20) {
        tree.append(&i.to_be_bytes());
    }
    let size = 1u64 << 20;
    let index = 777_777;
    let cp = tc.cosign(size, tree_hash(size, &tree).unwrap());
    let pf = ProofFile {
        extra: None,
        index,
        proof: prove_inclusion(index, size, &tree).unwrap(),
        checkpoint: cp.note().into(),
    };
    assert_eq!(pf.proof.len(), 20);
    let len = pf.format().len();
    assert!(len <= 1536, "proof file is {len} bytes");
    let with_entry = ProofFile {
        extra: Some(index.to_be_bytes().to_vec()),
        ..pf
    };
    with_entry.verify(&tc.committee).unwrap();
}
