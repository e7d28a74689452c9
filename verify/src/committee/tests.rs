use super::*;
use crate::crypto::BlsSecretKey;

fn entry(i: usize) -> MemberEntry {
    let bls = BlsSecretKey::from_key_material(&[i as u8 + 100; 32]).unwrap();
    MemberEntry {
        name: format!("node{i}"),
        peer_id: peer_id_of_ed25519(&[i as u8 + 1; 32]),
        bls_public_key: hex::encode(bls.public_key().to_bytes()),
        bls_proof_of_possession: hex::encode(bls.proof_of_possession().to_bytes()),
        addrs: vec![format!("/ip4/127.0.0.1/tcp/{}", 7000 + i)],
    }
}

fn file(n: usize) -> CommitteeFile {
    CommitteeFile {
        origin: "example.org/synchronicity/test".into(),
        chain_id: "example.org/synchronicity/test".into(),
        epoch: 0,
        previous: None,
        threshold: default_threshold(n),
        build: BuildEnvironment {
            toolchain: "1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
        },
        protocol: ProtocolRules::default(),
        members: (0..n).map(entry).collect(),
    }
}

#[test]
fn valid_committee_roundtrips_and_has_design_digest() {
    let c = Committee::from_file(file(4)).unwrap();
    assert_eq!(c.threshold(), 3);
    assert_eq!(c.max_faulty(), 1);
    assert!(c.warnings().is_empty());
    let again = Committee::from_toml(&c.to_toml()).unwrap();
    assert_eq!(again, c);
    // The digest and key id as docs/formats.md defines them, computed from the file's hex.
    let mut data = Vec::new();
    for m in &file(4).members {
        data.extend(hex::decode(&m.bls_public_key).unwrap());
    }
    data.extend([0, 0, 0, 3]);
    // The rule book: domain line, chain id, toolchain, target (u16 length-prefixed), then
    // the nine [protocol] values as u64 big-endian (the defaults here).
    data.extend(b"synchronicity/rules/v2\n");
    for s in [
        "example.org/synchronicity/test",
        "1.95.0",
        "x86_64-unknown-linux-gnu",
    ] {
        data.extend((s.len() as u16).to_be_bytes());
        data.extend(s.as_bytes());
    }
    for v in [
        1800u64,
        120,
        60,
        3 * 1024 * 1024,
        10_000,
        2_000,
        3,
        600,
        256,
    ] {
        data.extend(v.to_be_bytes());
    }
    assert_eq!(c.digest(), sha256(&data));
    let mut kid =
        b"example.org/synchronicity/test\n\xffsynchronicity/bls12381-threshold/v1".to_vec();
    kid.extend(c.digest());
    assert_eq!(c.key_id(), sha256(&kid)[..4]);
    assert_eq!(c.index_of_peer_id(&c.members()[2].peer_id), Some(2));
    assert_eq!(c.members()[2].ed25519_public_key, [3; 32]);
}

/// A rule added after v2 is encoded only when set: an unset one keeps the digest a
/// committee had before the rule existed; set ones append their count, then each one's
/// position and value.
#[test]
fn a_set_extension_rule_changes_the_digest_an_unset_one_does_not() {
    let plain = Committee::from_file(file(4)).unwrap();
    let mut f = file(4);
    f.protocol.max_requests_per_block = 0;
    assert_eq!(Committee::from_file(f).unwrap().digest(), plain.digest());
    let mut f = file(4);
    f.protocol.max_requests_per_block = 8;
    let set = Committee::from_file(f.clone()).unwrap();
    assert_ne!(set.digest(), plain.digest());
    let book = rule_book(&f.chain_id, &f.build, &f.protocol);
    let base = rule_book(&f.chain_id, &f.build, &ProtocolRules::default());
    assert_eq!(book[..base.len()], base[..]);
    assert_eq!(book[base.len()..], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8]);
    // The file keeps it; out of range is refused with its name.
    assert_eq!(Committee::from_toml(&set.to_toml()).unwrap(), set);
    f.protocol.max_requests_per_block = 100_001;
    assert!(
        Committee::from_file(f)
            .unwrap_err()
            .to_string()
            .contains("max_requests_per_block")
    );
}

#[test]
fn default_threshold_is_bft_quorum() {
    assert_eq!(default_threshold(1), 1);
    assert_eq!(default_threshold(4), 3);
    assert_eq!(default_threshold(7), 5);
    assert_eq!(default_threshold(100), 67);
}

fn reject(f: CommitteeFile) -> CommitteeError {
    Committee::from_file(f).unwrap_err()
}

#[test]
fn rejects_corrupted_pop() {
    let mut f = file(4);
    f.members[2].bls_proof_of_possession = f.members[1].bls_proof_of_possession.clone();
    assert_eq!(
        reject(f),
        CommitteeError::BadProofOfPossession {
            member: "node2".into()
        }
    );
    let mut f = file(4);
    f.members[1]
        .bls_proof_of_possession
        .replace_range(10..12, "zz");
    assert!(matches!(
        reject(f),
        CommitteeError::BadBls {
            what: "proof of possession",
            ..
        }
    ));
}

#[test]
fn rejects_duplicates() {
    let mut f = file(4);
    f.members.push(f.members[1].clone());
    assert!(matches!(
        reject(f),
        CommitteeError::Duplicate { what: "name", .. }
    ));
    let mut f = file(4);
    f.members[3].peer_id = f.members[0].peer_id.clone();
    assert!(matches!(
        reject(f),
        CommitteeError::Duplicate {
            what: "peer id",
            ..
        }
    ));
    let mut f = file(4);
    f.members[3].bls_public_key = f.members[0].bls_public_key.clone();
    f.members[3].bls_proof_of_possession = f.members[0].bls_proof_of_possession.clone();
    assert_eq!(
        reject(f),
        CommitteeError::Duplicate {
            what: "BLS public key",
            first: "node0".into(),
            second: "node3".into()
        }
    );
}

#[test]
fn rejects_threshold_out_of_range_and_warns_below_quorum() {
    for t in [0, 5] {
        let mut f = file(4);
        f.threshold = t;
        assert_eq!(
            reject(f),
            CommitteeError::ThresholdOutOfRange {
                threshold: t,
                members: 4
            }
        );
    }
    let mut f = file(4);
    f.threshold = 2;
    let c = Committee::from_file(f).unwrap();
    assert_eq!(c.warnings().len(), 1);
}

#[test]
fn rejects_bad_origin_fields_and_members() {
    for origin in ["", "a b", "a+b", "a\nb"] {
        let mut f = file(4);
        f.origin = origin.into();
        assert!(
            matches!(reject(f), CommitteeError::BadOrigin { .. }),
            "{origin:?}"
        );
    }
    let mut f = file(4);
    f.build.toolchain = String::new();
    assert!(matches!(reject(f), CommitteeError::BadField { .. }));
    let mut f = file(4);
    f.members.clear();
    assert_eq!(reject(f), CommitteeError::NoMembers);
    let mut f = file(4);
    f.members[0].peer_id = "not-a-peer-id".into();
    assert!(matches!(reject(f), CommitteeError::BadPeerId { .. }));
    let mut f = file(4);
    // A hashed peer id (of an RSA key) embeds no Ed25519 key.
    f.members[0].peer_id = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N".into();
    assert!(matches!(reject(f), CommitteeError::BadPeerId { .. }));
    let mut f = file(4);
    f.members[0].addrs = vec!["127.0.0.1:7000".into()];
    assert!(matches!(reject(f), CommitteeError::BadAddr { .. }));
    let mut f = file(4);
    f.members[0].bls_public_key = format!("c0{}", "0".repeat(94));
    assert!(matches!(
        reject(f),
        CommitteeError::BadBls {
            source: BlsError::InfinityKey,
            ..
        }
    ));
}

#[test]
fn rejects_unknown_fields_and_bad_toml() {
    let c = Committee::from_file(file(4)).unwrap();
    let text = c
        .to_toml()
        .replace("threshold = 3", "threshold = 3\nquorum = 2");
    assert!(matches!(
        Committee::from_toml(&text),
        Err(CommitteeError::Syntax(_))
    ));
    assert!(matches!(
        Committee::from_toml("origin = "),
        Err(CommitteeError::Syntax(_))
    ));
}

#[test]
fn checked_before_skips_pops_but_not_the_rest() {
    let c = Committee::from_file(file(4)).unwrap();
    let text = c.to_toml();
    // The same text loads to the same committee either way.
    assert_eq!(Committee::from_toml_checked_before(&text).unwrap(), c);
    // Other checks still run on the cached path.
    let dup = text.replace(&c.members()[1].name, &c.members()[0].name);
    assert!(matches!(
        Committee::from_toml_checked_before(&dup),
        Err(CommitteeError::Duplicate { what: "name", .. })
    ));
    // A bad PoP is caught by the full check (in the batch), not by the cached path: the
    // caller only takes that path for a text it fully checked before.
    let mut f = file(4);
    f.members[2].bls_proof_of_possession = f.members[1].bls_proof_of_possession.clone();
    let bad = toml::to_string(&f).unwrap();
    assert!(Committee::from_toml(&bad).is_err());
    assert!(Committee::from_toml_checked_before(&bad).is_ok());
}

#[test]
fn batched_pop_check_names_the_bad_member_in_a_large_committee() {
    let mut f = file(100);
    f.members[57].bls_proof_of_possession = f.members[3].bls_proof_of_possession.clone();
    assert_eq!(
        reject(f),
        CommitteeError::BadProofOfPossession {
            member: "node57".into()
        }
    );
    assert_eq!(Committee::from_file(file(100)).unwrap().len(), 100);
}

#[test]
fn a_rule_is_part_of_the_digest_and_the_key_id() {
    let base = Committee::from_file(file(4)).unwrap();
    let mut f = file(4);
    f.protocol.commit_window_secs = 1;
    f.protocol.commit_grace_secs = 1;
    let fast = Committee::from_file(f).unwrap();
    assert_ne!(fast.digest(), base.digest());
    assert_ne!(fast.key_id(), base.key_id());
    // Written and read back, the rules survive; an absent section means the defaults.
    assert_eq!(Committee::from_toml(&fast.to_toml()).unwrap(), fast);
    let text = base.to_toml();
    let without: String = {
        let start = text.find("[protocol]").expect("written out");
        let end = start + text[start..].find("\n\n").unwrap_or(text.len() - start);
        format!("{}{}", &text[..start], &text[end..])
    };
    assert!(!without.contains("[protocol]"), "{without}");
    assert_eq!(
        Committee::from_toml(&without).unwrap().digest(),
        base.digest()
    );
    // Out of range, or unknown: refused with the rule's name.
    let mut f = file(4);
    f.protocol.reveal_window_secs = 0;
    assert!(matches!(reject(f), CommitteeError::BadRule(m) if m.contains("reveal_window_secs")));
    let bad = text.replace("[protocol]\n", "[protocol]\ncommit_window = 5\n");
    assert!(
        Committee::from_toml(&bad)
            .unwrap_err()
            .to_string()
            .contains("commit_window")
    );
}
