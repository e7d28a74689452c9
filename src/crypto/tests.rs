//! Identity tests (the BLS and threshold tests live with them in `synchronicity-verify`).

use super::*;

#[test]
fn identity_roundtrip_and_peer_id_key() {
    let id = NodeIdentity::generate();
    let back = NodeIdentity::from_secret_bytes(&id.secret_bytes()).unwrap();
    assert_eq!(back.peer_id(), id.peer_id());
    let pk = ed25519_key_of(&id.peer_id()).unwrap();
    assert_eq!(pk.to_bytes(), id.public_key_bytes());
    assert!(pk.verify(b"hello", &id.sign(b"hello")));
    assert!(NodeIdentity::from_secret_bytes(&[1u8; 31]).is_err());
    // A hashed (non-identity) peer id has no embedded key.
    let random = libp2p_identity::PeerId::random();
    assert!(ed25519_key_of(&random).is_err());
}
