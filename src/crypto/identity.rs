//! The node identity: one Ed25519 key that is both the node's libp2p `PeerId` and its
//! consensus validator key.

use std::fmt;

use libp2p_identity::{Keypair, PeerId, PublicKey, ed25519};

/// Size of an Ed25519 secret key seed.
pub const IDENTITY_SECRET_LEN: usize = 32;

/// Why identity bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The secret key bytes are not a 32-byte Ed25519 seed.
    #[error("invalid Ed25519 secret key")]
    BadSecretKey,
    /// The peer id does not embed an Ed25519 public key (it is hashed, or another key type).
    #[error("peer id {0} does not embed an Ed25519 public key")]
    NotEd25519PeerId(PeerId),
}

/// An Ed25519 key pair. Never printed: `Debug` shows the peer id only.
#[derive(Clone)]
pub struct NodeIdentity {
    keypair: ed25519::Keypair,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeIdentity({})", self.peer_id())
    }
}

impl NodeIdentity {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self {
            keypair: ed25519::Keypair::generate(),
        }
    }

    /// From a 32-byte secret seed.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut seed: [u8; IDENTITY_SECRET_LEN] =
            bytes.try_into().map_err(|_| IdentityError::BadSecretKey)?;
        let secret = ed25519::SecretKey::try_from_bytes(&mut seed)
            .map_err(|_| IdentityError::BadSecretKey)?;
        Ok(Self {
            keypair: ed25519::Keypair::from(secret),
        })
    }

    /// The 32-byte secret seed. Handle with care.
    pub fn secret_bytes(&self) -> [u8; IDENTITY_SECRET_LEN] {
        let mut out = [0u8; IDENTITY_SECRET_LEN];
        out.copy_from_slice(self.keypair.secret().as_ref());
        out
    }

    /// The libp2p key pair (for the swarm).
    pub fn keypair(&self) -> Keypair {
        Keypair::from(self.keypair.clone())
    }

    /// The peer id derived from the public key.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_public_key(&PublicKey::from(self.keypair.public()))
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.keypair.public().to_bytes()
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.keypair
            .sign(message)
            .try_into()
            .expect("Ed25519 signatures are 64 bytes")
    }
}

/// The Ed25519 public key embedded in an Ed25519 peer id (identity multihash of the
/// protobuf-encoded key). Peer ids of other key types are rejected.
pub fn ed25519_key_of(peer: &PeerId) -> Result<ed25519::PublicKey, IdentityError> {
    let mh = peer.as_ref();
    const IDENTITY_MULTIHASH: u64 = 0x00;
    if mh.code() != IDENTITY_MULTIHASH {
        return Err(IdentityError::NotEd25519PeerId(*peer));
    }
    PublicKey::try_decode_protobuf(mh.digest())
        .ok()
        .and_then(|k| k.try_into_ed25519().ok())
        .ok_or(IdentityError::NotEd25519PeerId(*peer))
}
