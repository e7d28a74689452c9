//! The node's view of the committee (the trust root's own checks are tested in
//! `synchronicity-verify`).

use super::*;
use crate::crypto::{BlsSecretKey, NodeIdentity};

fn file(n: usize) -> CommitteeFile {
    let members = (0..n)
        .map(|i| {
            let id = NodeIdentity::from_secret_bytes(&[i as u8 + 1; 32]).unwrap();
            let bls = BlsSecretKey::from_key_material(&[i as u8 + 100; 32]).unwrap();
            MemberEntry {
                name: format!("node{i}"),
                peer_id: id.peer_id().to_base58(),
                bls_public_key: hex::encode(bls.public_key().to_bytes()),
                bls_proof_of_possession: hex::encode(bls.proof_of_possession().to_bytes()),
                addrs: vec![format!("/ip4/127.0.0.1/tcp/{}", 7000 + i)],
            }
        })
        .collect();
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
        members,
    }
}

#[test]
fn members_carry_their_libp2p_identity_and_addresses() {
    let c = Committee::from_file(file(4)).unwrap();
    let id = NodeIdentity::from_secret_bytes(&[3; 32]).unwrap();
    assert_eq!(c.members()[2].peer_id, id.peer_id());
    assert_eq!(c.index_of_peer(&id.peer_id()), Some(2));
    assert_eq!(c.members()[2].ed25519.to_bytes(), id.public_key_bytes());
    assert_eq!(
        c.members()[1].addrs[0].to_string(),
        "/ip4/127.0.0.1/tcp/7001"
    );
    assert_eq!(Committee::from_toml(&c.to_toml()).unwrap(), c);
}

#[test]
fn rejects_addresses_that_are_not_multiaddresses() {
    let mut f = file(4);
    f.members[0].addrs = vec!["/ip4/999.0.0.1/tcp/7000".into()];
    assert!(matches!(
        Committee::from_file(f),
        Err(CommitteeError::BadAddr { .. })
    ));
}
