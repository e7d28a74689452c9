//! Batched BLS verification: many (message, key, signature) triples checked with ONE
//! multi-pairing and one final exponentiation, instead of one pairing check each.
//!
//! Each triple is weighted by a fresh random 64-bit scalar `r_i` and the batch checks
//! `e(g1, Σ r_i·σ_i) = Π e(r_i·pk_i, H(m_i))`. A batch with a bad signature passes only if
//! the attacker guesses the weights: probability at most 2⁻⁶⁴ per try, and the weights are
//! drawn after the inputs are fixed (the same argument as Ethereum's batch verification).
//! Cost for `k` triples: `k` hashes to G2, `k` 64-bit scalar multiplications in each group,
//! a `k+1`-pair Miller loop sharing its squarings, and one final exponentiation.
//!
//! A failed batch says only that SOME triple is bad; callers that must name the culprit
//! re-check one by one (rare: only on bad input).

use blst::BLST_ERROR;
use blst::min_pk as imp;

use super::bls::{BlsError, BlsPublicKey, BlsSignature};

/// Bits of each random weight.
const WEIGHT_BITS: usize = 64;

/// One signature to check in a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signed message.
    pub message: &'a [u8],
    /// The (possibly aggregated) public key. Must be PoP-checked or a PoP's own key.
    pub key: &'a BlsPublicKey,
    /// The signature (validated when decoded).
    pub signature: &'a BlsSignature,
}

/// Verifies every item under the domain separation tag `dst` with one multi-pairing.
/// An empty batch is an error (nothing was shown).
pub fn verify_batch(dst: &[u8], items: &[BatchItem<'_>]) -> Result<(), BlsError> {
    if items.is_empty() {
        return Err(BlsError::BadSignature);
    }
    let mut weights = vec![0u8; 8 * items.len()];
    getrandom::fill(&mut weights).map_err(|_| BlsError::BadSignature)?;
    let mut pairing = blst::Pairing::new(true, dst);
    for (item, weight) in items.iter().zip(weights.chunks_exact(8)) {
        // A zero weight would drop the item from the check.
        let mut w = [0u8; 8];
        w.copy_from_slice(weight);
        w[0] |= 1;
        let pk: &blst::blst_p1_affine = (&item.key.0).into();
        let sig: &blst::blst_p2_affine = (&item.signature.0).into();
        // Keys and signatures were validated (subgroup checks) when decoded.
        let err =
            pairing.mul_n_aggregate(pk, false, sig, false, &w, WEIGHT_BITS, item.message, &[]);
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(BlsError::BadSignature);
        }
    }
    pairing.commit();
    if pairing.finalverify(None) {
        Ok(())
    } else {
        Err(BlsError::BadSignature)
    }
}

/// Sums keys (for a threshold signature's signers). `None` for an empty list.
pub(crate) fn aggregate_keys(keys: &[&BlsPublicKey]) -> Option<BlsPublicKey> {
    let refs: Vec<&imp::PublicKey> = keys.iter().map(|k| &k.0).collect();
    imp::AggregatePublicKey::aggregate(&refs, false)
        .ok()
        .map(|agg| BlsPublicKey(agg.to_public_key()))
}
