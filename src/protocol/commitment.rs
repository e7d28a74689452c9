//! Commit and reveal: a builder first publishes a commitment that hides its result, then
//! reveals the result with the salt and a BLS signature over the attestation statement.
//! A member that did not build cannot copy others' digests: their commitments hide them, and
//! a reveal must match the revealer's OWN earlier commitment (which names its peer id).
//!
//! ```text
//! commitment = SHA-256("synchronicity/commit/v1\n" || request id || manifest digest || salt[32] || peer id bytes)
//! statement  = "synchronicity/attestation/v1\n<origin>\nrequest <hex id>\nmanifest <hex digest>\n"
//! ```

use libp2p_identity::PeerId;

use crate::crypto::sha256;

/// Domain prefix of commitments.
pub const COMMIT_DOMAIN: &[u8] = b"synchronicity/commit/v1\n";

/// The commitment to `digest` for `request_id` by `peer`, blinded by `salt`.
pub fn commitment(
    request_id: &[u8; 32],
    digest: &[u8; 32],
    salt: &[u8; 32],
    peer: &PeerId,
) -> [u8; 32] {
    let mut data = COMMIT_DOMAIN.to_vec();
    data.extend_from_slice(request_id);
    data.extend_from_slice(digest);
    data.extend_from_slice(salt);
    data.extend_from_slice(&peer.to_bytes());
    sha256(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_binds_every_input() {
        let p = PeerId::random();
        let q = PeerId::random();
        let c = commitment(&[1; 32], &[2; 32], &[3; 32], &p);
        assert_eq!(c, commitment(&[1; 32], &[2; 32], &[3; 32], &p));
        for other in [
            commitment(&[9; 32], &[2; 32], &[3; 32], &p),
            commitment(&[1; 32], &[9; 32], &[3; 32], &p),
            commitment(&[1; 32], &[2; 32], &[9; 32], &p),
            // Another member cannot reuse my commitment as its own.
            commitment(&[1; 32], &[2; 32], &[3; 32], &q),
        ] {
            assert_ne!(c, other);
        }
    }
}
