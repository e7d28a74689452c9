//! BLS12-381 signatures, IETF ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`
//! in the `min_pk` variant (48-byte G1 public keys, 96-byte G2 signatures), as Ethereum
//! uses it, so that independent implementations can verify our signatures.
//!
//! Trust boundary: every byte string that reaches [`BlsPublicKey::from_bytes`] or
//! [`BlsSignature::from_bytes`] is untrusted. Both decode *and* validate: the point must be on
//! the curve, in the prime-order subgroup and (for keys) not the identity. A public key is only
//! usable in a [`crate::crypto::MemberKeys`] set after its proof of possession has been verified,
//! which is what makes same-message aggregation safe against rogue keys.

use std::fmt;

use blst::BLST_ERROR;
use blst::min_pk as imp;

/// Domain separation tag of the signature ciphersuite (IETF BLS draft, §4.2.3 "proof of possession").
pub const SIGNATURE_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Domain separation tag of proofs of possession (IETF BLS draft, §4.2.3).
pub const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Size of a compressed public key.
pub const PUBLIC_KEY_LEN: usize = 48;
/// Size of a compressed signature.
pub const SIGNATURE_LEN: usize = 96;
/// The compressed encoding of the identity point of G1.
const INFINITY_PUBLIC_KEY: [u8; PUBLIC_KEY_LEN] = {
    let mut b = [0u8; PUBLIC_KEY_LEN];
    b[0] = 0xc0;
    b
};
/// Size of a serialized secret key (big-endian scalar).
pub const SECRET_KEY_LEN: usize = 32;

/// Why BLS bytes or a BLS signature were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlsError {
    /// The bytes are not a point encoding (wrong length, bad flags, not on the curve).
    #[error("invalid BLS {what} encoding")]
    BadEncoding {
        /// "public key", "signature" or "secret key".
        what: &'static str,
    },
    /// The point is not in the prime-order subgroup.
    #[error("BLS {what} is not in the prime-order subgroup")]
    NotInGroup {
        /// "public key" or "signature".
        what: &'static str,
    },
    /// The public key is the identity point, which would verify anything.
    #[error("BLS public key is the point at infinity")]
    InfinityKey,
    /// The secret key is zero or not below the group order.
    #[error("invalid BLS secret key")]
    BadSecretKey,
    /// The signature does not verify for this message and key.
    #[error("BLS signature does not verify")]
    BadSignature,
    /// The proof of possession does not verify for its public key.
    #[error("BLS proof of possession does not verify")]
    BadProofOfPossession,
    /// Key generation was given too little key material.
    #[error("BLS key generation needs at least 32 bytes of key material")]
    ShortKeyMaterial,
}

fn point_error(err: BLST_ERROR, what: &'static str) -> BlsError {
    match err {
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => BlsError::NotInGroup { what },
        BLST_ERROR::BLST_PK_IS_INFINITY => BlsError::InfinityKey,
        _ => BlsError::BadEncoding { what },
    }
}

/// A BLS secret key. Never printed: `Debug` is redacted.
#[derive(Clone)]
pub struct BlsSecretKey(imp::SecretKey);

impl fmt::Debug for BlsSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlsSecretKey(<redacted>)")
    }
}

impl BlsSecretKey {
    /// Derives a key from at least 32 bytes of uniformly random key material (IETF KeyGen).
    pub fn from_key_material(ikm: &[u8]) -> Result<Self, BlsError> {
        imp::SecretKey::key_gen(ikm, &[])
            .map(Self)
            .map_err(|_| BlsError::ShortKeyMaterial)
    }

    /// Generates a fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut ikm = [0u8; 32];
        getrandom::fill(&mut ikm)?;
        let key = Self::from_key_material(&ikm).expect("32 bytes of key material is enough");
        ikm.fill(0);
        Ok(key)
    }

    /// Decodes a 32-byte big-endian scalar; zero and out-of-range scalars are rejected.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        imp::SecretKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| BlsError::BadSecretKey)
    }

    /// The 32-byte big-endian scalar. Handle with care: this is the secret.
    pub fn to_bytes(&self) -> [u8; SECRET_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> BlsPublicKey {
        BlsPublicKey(self.0.sk_to_pk())
    }

    /// Signs `message` with the signature DST.
    pub fn sign(&self, message: &[u8]) -> BlsSignature {
        BlsSignature(self.0.sign(message, SIGNATURE_DST, &[]))
    }

    /// The proof of possession: a signature, under the PoP DST, over the compressed public key.
    pub fn proof_of_possession(&self) -> BlsSignature {
        let pk = self.public_key().to_bytes();
        BlsSignature(self.0.sign(&pk, POP_DST, &[]))
    }
}

/// A validated BLS public key (on the curve, in the subgroup, not the identity).
#[derive(Clone, PartialEq, Eq)]
pub struct BlsPublicKey(pub(crate) imp::PublicKey);

impl fmt::Debug for BlsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsPublicKey({})", hex::encode(self.to_bytes()))
    }
}

impl BlsPublicKey {
    /// Decodes and validates a 48-byte compressed public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(BlsError::BadEncoding { what: "public key" });
        }
        imp::PublicKey::key_validate(bytes)
            .map(Self)
            .map_err(|e| point_error(e, "public key"))
    }

    /// Decodes a 48-byte compressed key that was validated before (on the curve, in the
    /// subgroup, not the identity), skipping the subgroup check that dominates decoding. For
    /// a committee file whose exact bytes were fully checked earlier, never for new input.
    pub fn from_prechecked_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != PUBLIC_KEY_LEN || bytes == INFINITY_PUBLIC_KEY {
            return Err(BlsError::BadEncoding { what: "public key" });
        }
        imp::PublicKey::uncompress(bytes)
            .map(Self)
            .map_err(|e| point_error(e, "public key"))
    }

    /// The sum of `keys` (for a FastAggregateVerify of members who all signed one message;
    /// the keys must have had their proofs of possession checked). `None` for an empty list
    /// or a sum that is the identity.
    pub fn aggregate<'a>(keys: impl IntoIterator<Item = &'a BlsPublicKey>) -> Option<Self> {
        let keys: Vec<&BlsPublicKey> = keys.into_iter().collect();
        super::batch::aggregate_keys(&keys).filter(|k| !k.is_infinity())
    }

    /// True for the identity point (which would verify the identity signature for anything).
    pub(crate) fn is_infinity(&self) -> bool {
        self.to_bytes() == INFINITY_PUBLIC_KEY
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    /// Verifies `signature` over `message` (IETF CoreVerify with the signature DST).
    pub fn verify(&self, message: &[u8], signature: &BlsSignature) -> Result<(), BlsError> {
        // Keys are validated on decode and signatures on decode, so neither check is repeated.
        match signature
            .0
            .verify(false, message, SIGNATURE_DST, &[], &self.0, false)
        {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(BlsError::BadSignature),
        }
    }

    /// Verifies a proof of possession for this key (IETF PopVerify).
    pub fn verify_proof_of_possession(&self, pop: &BlsSignature) -> Result<(), BlsError> {
        let pk = self.to_bytes();
        match pop.0.verify(false, &pk, POP_DST, &[], &self.0, false) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(BlsError::BadProofOfPossession),
        }
    }
}

/// A validated BLS signature (on the curve and in the subgroup). It may be the identity
/// point: that only verifies against an identity key, which [`BlsPublicKey`] never is.
#[derive(Clone, PartialEq, Eq)]
pub struct BlsSignature(pub(crate) imp::Signature);

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSignature({})", hex::encode(self.to_bytes()))
    }
}

impl BlsSignature {
    /// Decodes and validates a 96-byte compressed signature (subgroup check included).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(BlsError::BadEncoding { what: "signature" });
        }
        imp::Signature::sig_validate(bytes, false)
            .map(Self)
            .map_err(|e| point_error(e, "signature"))
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }

    /// Adds signatures (IETF Aggregate). `None` for an empty list.
    pub fn aggregate<'a>(signatures: impl IntoIterator<Item = &'a BlsSignature>) -> Option<Self> {
        let refs: Vec<&imp::Signature> = signatures.into_iter().map(|s| &s.0).collect();
        // Inputs were group-checked when decoded.
        imp::AggregateSignature::aggregate(&refs, false)
            .ok()
            .map(|agg| Self(agg.to_signature()))
    }

    /// IETF FastAggregateVerify: every key signed the same `message`. The keys must have had
    /// their proofs of possession verified (see [`crate::crypto::MemberKeys`]); an empty key
    /// list never verifies.
    pub fn fast_aggregate_verify(
        &self,
        message: &[u8],
        keys: &[&BlsPublicKey],
    ) -> Result<(), BlsError> {
        let Some(agg) = super::batch::aggregate_keys(keys) else {
            return Err(BlsError::BadSignature);
        };
        // Keys that cancel out would sum to the identity, which verifies the identity
        // signature for any message. PoPs rule that out; check anyway, it costs nothing.
        if agg.is_infinity() {
            return Err(BlsError::InfinityKey);
        }
        agg.verify(message, self)
    }
}

/// A signature decoded onto the curve whose subgroup membership is NOT checked yet: for
/// summing many into an aggregate that is checked once ([`UncheckedSignature::aggregate`]),
/// which costs one subgroup check instead of one per signature. A sum of points that
/// are not all in the subgroup is caught there (or, if their off-subgroup parts cancel,
/// is still exactly the aggregate of the signers' valid signatures).
#[derive(Clone, PartialEq, Eq)]
pub struct UncheckedSignature(imp::Signature);

impl fmt::Debug for UncheckedSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UncheckedSignature({})", hex::encode(self.0.compress()))
    }
}

impl UncheckedSignature {
    /// Decodes a 96-byte compressed point (on the curve; no subgroup check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(BlsError::BadEncoding { what: "signature" });
        }
        imp::Signature::uncompress(bytes)
            .map(Self)
            .map_err(|e| point_error(e, "signature"))
    }

    /// This one signature, subgroup-checked.
    pub fn check(&self) -> Result<BlsSignature, BlsError> {
        self.0
            .validate(false)
            .map(|()| BlsSignature(self.0))
            .map_err(|e| point_error(e, "signature"))
    }

    /// The sum of `sigs`, subgroup-checked as a whole. `None` for an empty list or a sum
    /// outside the subgroup.
    pub fn aggregate<'a>(
        sigs: impl IntoIterator<Item = &'a UncheckedSignature>,
    ) -> Option<BlsSignature> {
        let refs: Vec<&imp::Signature> = sigs.into_iter().map(|s| &s.0).collect();
        let sum = imp::AggregateSignature::aggregate(&refs, false)
            .ok()?
            .to_signature();
        sum.validate(false).ok()?;
        Some(BlsSignature(sum))
    }
}
