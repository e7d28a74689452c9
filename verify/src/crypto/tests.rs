//! Crypto tests: published Ethereum consensus-spec BLS vectors (same ciphersuite), proofs of
//! possession, and every rejection of the threshold scheme.

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Vectors {
    sign: Vec<SignCase>,
    verify: Vec<VerifyCase>,
    fast_aggregate_verify: Vec<FastAggCase>,
    aggregate: Vec<AggregateCase>,
}
#[derive(Deserialize)]
struct SignCase {
    privkey: String,
    message: String,
    output: Option<String>,
}
#[derive(Deserialize)]
struct VerifyCase {
    pubkey: String,
    message: String,
    signature: String,
    output: bool,
}
#[derive(Deserialize)]
struct FastAggCase {
    pubkeys: Vec<String>,
    message: String,
    signature: String,
    output: bool,
}
#[derive(Deserialize)]
struct AggregateCase {
    input: Vec<String>,
    output: Option<String>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../../tests/vectors/eth-bls.json")).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn eth_sign_vectors() {
    let v = vectors();
    assert!(v.sign.len() >= 3);
    for case in v.sign {
        let sk = BlsSecretKey::from_bytes(&unhex(&case.privkey));
        match case.output {
            Some(expected) => {
                let sig = sk.unwrap().sign(&unhex(&case.message));
                assert_eq!(hex::encode(sig.to_bytes()), expected);
            }
            None => assert_eq!(sk.unwrap_err(), BlsError::BadSecretKey),
        }
    }
}

/// Decoding failures count as "does not verify", as the spec's `verify` returns false.
#[test]
fn eth_verify_vectors() {
    let v = vectors();
    assert!(v.verify.iter().any(|c| c.output) && v.verify.iter().any(|c| !c.output));
    for case in v.verify {
        let got = (|| {
            let pk = BlsPublicKey::from_bytes(&unhex(&case.pubkey)).ok()?;
            let sig = BlsSignature::from_bytes(&unhex(&case.signature)).ok()?;
            pk.verify(&unhex(&case.message), &sig).ok()
        })()
        .is_some();
        assert_eq!(got, case.output, "verify case {}", case.pubkey);
    }
}

#[test]
fn eth_fast_aggregate_verify_vectors() {
    let v = vectors();
    assert!(v.fast_aggregate_verify.iter().any(|c| !c.output));
    for case in v.fast_aggregate_verify {
        let got = (|| {
            let pks: Vec<BlsPublicKey> = case
                .pubkeys
                .iter()
                .map(|p| BlsPublicKey::from_bytes(&unhex(p)).ok())
                .collect::<Option<_>>()?;
            let refs: Vec<&BlsPublicKey> = pks.iter().collect();
            let sig = BlsSignature::from_bytes(&unhex(&case.signature)).ok()?;
            sig.fast_aggregate_verify(&unhex(&case.message), &refs).ok()
        })()
        .is_some();
        assert_eq!(
            got,
            case.output,
            "fast_aggregate_verify with {} keys",
            case.pubkeys.len()
        );
    }
}

#[test]
fn eth_aggregate_vectors() {
    for case in vectors().aggregate {
        let sigs: Vec<BlsSignature> = case
            .input
            .iter()
            .map(|s| BlsSignature::from_bytes(&unhex(s)).unwrap())
            .collect();
        let got = BlsSignature::aggregate(&sigs).map(|s| hex::encode(s.to_bytes()));
        assert_eq!(got, case.output);
    }
}

fn key(seed: u8) -> BlsSecretKey {
    BlsSecretKey::from_key_material(&[seed; 32]).unwrap()
}

fn committee(n: usize) -> (Vec<BlsSecretKey>, MemberKeys) {
    let sks: Vec<_> = (0..n).map(|i| key(i as u8 + 1)).collect();
    let entries: Vec<_> = sks
        .iter()
        .map(|sk| (sk.public_key(), sk.proof_of_possession()))
        .collect();
    (sks, MemberKeys::from_keys_with_pops(&entries).unwrap())
}

fn threshold_sign(
    sks: &[BlsSecretKey],
    keys: &MemberKeys,
    signers: &[usize],
    msg: &[u8],
) -> ThresholdSignature {
    let mut agg = ThresholdAggregator::new(keys, msg);
    for &i in signers {
        agg.add(PartialSignature {
            signer: i,
            signature: sks[i].sign(msg),
        })
        .unwrap();
    }
    agg.finish(signers.len()).unwrap()
}

#[test]
fn proof_of_possession_roundtrip_and_rejections() {
    let a = key(1);
    let b = key(2);
    a.public_key()
        .verify_proof_of_possession(&a.proof_of_possession())
        .unwrap();
    // Another key's PoP.
    assert_eq!(
        a.public_key()
            .verify_proof_of_possession(&b.proof_of_possession()),
        Err(BlsError::BadProofOfPossession)
    );
    // A plain signature over the key bytes (wrong DST) is not a PoP.
    let not_pop = a.sign(&a.public_key().to_bytes());
    assert!(a.public_key().verify_proof_of_possession(&not_pop).is_err());
}

#[test]
fn member_keys_reject_bad_pop_duplicates_and_empty() {
    let (a, b) = (key(1), key(2));
    let bad = [
        (a.public_key(), a.proof_of_possession()),
        (b.public_key(), a.proof_of_possession()),
    ];
    assert_eq!(
        MemberKeys::from_keys_with_pops(&bad),
        Err(ThresholdError::BadProofOfPossession { index: 1 })
    );
    let dup = [
        (a.public_key(), a.proof_of_possession()),
        (a.public_key(), a.proof_of_possession()),
    ];
    assert_eq!(
        MemberKeys::from_keys_with_pops(&dup),
        Err(ThresholdError::DuplicateKey {
            first: 0,
            second: 1
        })
    );
    assert_eq!(
        MemberKeys::from_keys_with_pops(&[]),
        Err(ThresholdError::EmptyCommittee)
    );
}

#[test]
fn invalid_points_are_rejected() {
    let sig = key(1).sign(b"m").to_bytes();
    let pk = key(1).public_key().to_bytes();
    assert!(BlsSignature::from_bytes(&sig[..95]).is_err());
    assert!(BlsPublicKey::from_bytes(&pk[..47]).is_err());
    let mut infinity = [0u8; 48];
    infinity[0] = 0xc0;
    assert_eq!(
        BlsPublicKey::from_bytes(&infinity),
        Err(BlsError::InfinityKey)
    );
    // x = 0 with the compression flag is not on the curve.
    let mut off_curve = [0u8; 48];
    off_curve[0] = 0x80;
    assert!(BlsPublicKey::from_bytes(&off_curve).is_err());
    let mut bad_sig = sig;
    bad_sig[95] ^= 0xff;
    bad_sig[94] ^= 0xff;
    assert!(BlsSignature::from_bytes(&bad_sig).is_err());
}

#[test]
fn threshold_signature_verifies_and_roundtrips() {
    let (sks, keys) = committee(10);
    let msg = b"checkpoint body";
    let ts = threshold_sign(&sks, &keys, &[0, 3, 7, 9, 2, 5, 8], msg);
    assert_eq!(
        ts.signers.iter().collect::<Vec<_>>(),
        vec![0, 2, 3, 5, 7, 8, 9]
    );
    let bytes = ts.to_bytes();
    assert_eq!(bytes.len(), 2 + 96);
    assert_eq!(bytes[0], 0b1010_1101);
    assert_eq!(bytes[1], 0b0000_0011);
    let back = ThresholdSignature::from_bytes(&bytes, 10).unwrap();
    back.verify(&keys, 7, msg).unwrap();
    back.verify(&keys, 1, msg).unwrap();
}

#[test]
fn threshold_verify_rejections() {
    let (sks, keys) = committee(10);
    let msg = b"checkpoint body";
    let ts = threshold_sign(&sks, &keys, &[0, 1, 2, 3, 4, 5, 6], msg);
    // Below threshold.
    assert_eq!(
        ts.verify(&keys, 8, msg),
        Err(ThresholdError::BelowThreshold {
            signers: 7,
            threshold: 8
        })
    );
    // Threshold out of range.
    assert!(matches!(
        ts.verify(&keys, 0, msg),
        Err(ThresholdError::ThresholdOutOfRange { .. })
    ));
    assert!(matches!(
        ts.verify(&keys, 11, msg),
        Err(ThresholdError::ThresholdOutOfRange { .. })
    ));
    // Wrong message.
    assert_eq!(
        ts.verify(&keys, 7, b"other"),
        Err(ThresholdError::BadAggregate)
    );
    // A signer bit moved: the claimed signers did not all sign.
    let mut bytes = ts.to_bytes();
    bytes[0] ^= 0b0000_0001;
    bytes[1] ^= 0b0000_0001;
    let moved = ThresholdSignature::from_bytes(&bytes, 10).unwrap();
    assert_eq!(
        moved.verify(&keys, 7, msg),
        Err(ThresholdError::BadAggregate)
    );
    // A bit beyond n.
    let mut bytes = ts.to_bytes();
    bytes[1] |= 0b0000_0100;
    assert_eq!(
        ThresholdSignature::from_bytes(&bytes, 10),
        Err(ThresholdError::BitBeyondCommittee {
            bit: 10,
            members: 10
        })
    );
    // Wrong length (bitmap for another committee size).
    assert!(matches!(
        ThresholdSignature::from_bytes(&ts.to_bytes(), 17),
        Err(ThresholdError::BadLength { .. })
    ));
    // An invalid point as aggregate.
    let mut bytes = ts.to_bytes();
    bytes[2 + 40] ^= 0x55;
    assert!(ThresholdSignature::from_bytes(&bytes, 10).is_err());
    // Verified against another committee of the same size.
    let (_, other) = committee(11);
    let other_keys = MemberKeys::from_keys_with_pops(
        &(20..30)
            .map(|i| (key(i).public_key(), key(i).proof_of_possession()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(
        ts.verify(&other_keys, 7, msg),
        Err(ThresholdError::BadAggregate)
    );
    assert!(matches!(
        ts.verify(&other, 7, msg),
        Err(ThresholdError::BadLength { .. })
    ));
}

#[test]
fn aggregator_rejects_non_members_duplicates_and_bad_partials() {
    let (sks, keys) = committee(4);
    let msg = b"m";
    let mut agg = ThresholdAggregator::new(&keys, msg.as_slice());
    agg.add(PartialSignature {
        signer: 0,
        signature: sks[0].sign(msg),
    })
    .unwrap();
    assert_eq!(
        agg.add(PartialSignature {
            signer: 4,
            signature: sks[0].sign(msg)
        }),
        Err(ThresholdError::NotAMember {
            index: 4,
            members: 4
        })
    );
    let outsider = key(99);
    assert!(matches!(
        agg.add_by_key(&outsider.public_key(), outsider.sign(msg)),
        Err(ThresholdError::NotAMember { .. })
    ));
    assert_eq!(
        agg.add(PartialSignature {
            signer: 0,
            signature: sks[0].sign(msg)
        }),
        Err(ThresholdError::DuplicateSigner { index: 0 })
    );
    // Wrong message, and another member's signature under my index.
    assert_eq!(
        agg.add(PartialSignature {
            signer: 1,
            signature: sks[1].sign(b"other")
        }),
        Err(ThresholdError::BadPartial { index: 1 })
    );
    assert_eq!(
        agg.add(PartialSignature {
            signer: 2,
            signature: sks[3].sign(msg)
        }),
        Err(ThresholdError::BadPartial { index: 2 })
    );
    assert_eq!(agg.count(), 1);
    assert_eq!(
        agg.finish(3),
        Err(ThresholdError::BelowThreshold {
            signers: 1,
            threshold: 3
        })
    );
    agg.add_by_key(&sks[1].public_key(), sks[1].sign(msg))
        .unwrap();
    agg.add(PartialSignature {
        signer: 3,
        signature: sks[3].sign(msg),
    })
    .unwrap();
    let ts = agg.finish(3).unwrap();
    ts.verify(&keys, 3, msg).unwrap();
}
