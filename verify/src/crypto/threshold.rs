//! Threshold signatures by aggregation: every member signs the same message with its own BLS
//! key; any `t` distinct partial signatures combine into one [`ThresholdSignature`] of
//! `signer bitmap || one 96-byte aggregate`.
//!
//! Verification costs one public-key aggregation (at most `n` G1 additions) and ONE
//! FastAggregateVerify (2 pairings) whatever the committee size. It is sound only because the
//! keys in a [`MemberKeys`] set had their proofs of possession checked when the set was made.
//!
//! Bitmap layout (docs/formats.md): ⌈n/8⌉ bytes; member `i` (committee order) is bit `i % 8`,
//! least significant first, of byte `i / 8`. Bits at or beyond `n` must be zero.

use std::collections::BTreeMap;

use super::batch::{BatchItem, aggregate_keys, verify_batch};
use super::bls::{BlsError, BlsPublicKey, BlsSignature, POP_DST, SIGNATURE_LEN};

/// Why a key set, a partial signature or a threshold signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// A key set must have at least one member.
    #[error("the committee has no members")]
    EmptyCommittee,
    /// Member `index`'s proof of possession does not verify: a possible rogue key.
    #[error("member {index}: proof of possession does not verify")]
    BadProofOfPossession {
        /// Committee position of the member.
        index: usize,
    },
    /// Two members have the same BLS public key.
    #[error("members {first} and {second} have the same BLS public key")]
    DuplicateKey {
        /// The earlier position.
        first: usize,
        /// The later position.
        second: usize,
    },
    /// The signer is not a member of the committee.
    #[error("signer {index} is not a committee member (committee has {members})")]
    NotAMember {
        /// The claimed position, or `usize::MAX` when identified by an unknown key.
        index: usize,
        /// Committee size.
        members: usize,
    },
    /// The same member contributed twice.
    #[error("member {index} signed twice")]
    DuplicateSigner {
        /// Committee position of the member.
        index: usize,
    },
    /// A partial signature does not verify for its member and the message.
    #[error("member {index}: partial signature does not verify")]
    BadPartial {
        /// Committee position of the member.
        index: usize,
    },
    /// The encoded threshold signature has the wrong length for this committee.
    #[error("threshold signature is {found} bytes, expected {expected}")]
    BadLength {
        /// ⌈n/8⌉ + 96.
        expected: usize,
        /// What was given.
        found: usize,
    },
    /// The bitmap sets a bit for a position beyond the committee.
    #[error("signer bitmap sets bit {bit}, beyond the {members} committee members")]
    BitBeyondCommittee {
        /// The offending bit position.
        bit: usize,
        /// Committee size.
        members: usize,
    },
    /// Fewer distinct signers than the threshold.
    #[error("{signers} signers, below the threshold of {threshold}")]
    BelowThreshold {
        /// Distinct signers present.
        signers: usize,
        /// Required.
        threshold: usize,
    },
    /// The threshold is not in `1..=n`.
    #[error("threshold {threshold} is out of range 1..={members}")]
    ThresholdOutOfRange {
        /// The given threshold.
        threshold: usize,
        /// Committee size.
        members: usize,
    },
    /// The aggregate signature does not verify (wrong message, wrong signers, forged).
    #[error("aggregate signature does not verify for the message and signers")]
    BadAggregate,
    /// A point failed to decode or validate.
    #[error(transparent)]
    Bls(#[from] BlsError),
}

/// The committee's BLS public keys, in committee order, each with a VERIFIED proof of
/// possession and all distinct. Only constructible through [`MemberKeys::from_keys_with_pops`]:
/// holding one is the proof that the PoPs were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberKeys {
    keys: Vec<BlsPublicKey>,
}

impl MemberKeys {
    /// Checks every proof of possession and rejects duplicate keys and an empty set. The
    /// proofs are checked in ONE batched multi-pairing (see [`super::verify_batch`]); only
    /// when the batch fails are they checked one by one, to name the bad member.
    pub fn from_keys_with_pops(
        entries: &[(BlsPublicKey, BlsSignature)],
    ) -> Result<Self, ThresholdError> {
        let keys = Self::distinct(entries.iter().map(|(k, _)| k.clone()).collect())?;
        let messages: Vec<[u8; 48]> = entries.iter().map(|(k, _)| k.to_bytes()).collect();
        let items: Vec<BatchItem<'_>> = entries
            .iter()
            .zip(&messages)
            .map(|((key, pop), message)| BatchItem {
                message,
                key,
                signature: pop,
            })
            .collect();
        if verify_batch(POP_DST, &items).is_err() {
            for (index, (key, pop)) in entries.iter().enumerate() {
                key.verify_proof_of_possession(pop)
                    .map_err(|_| ThresholdError::BadProofOfPossession { index })?;
            }
            // Every proof verified alone (the batch can only have failed to draw its weights).
        }
        Ok(keys)
    }

    /// A key set whose proofs of possession were verified EARLIER, for exactly these keys in
    /// this order (the committee cache: a file whose sha256 was fully checked before). Still
    /// rejects duplicates and an empty set.
    pub(crate) fn from_previously_checked(keys: Vec<BlsPublicKey>) -> Result<Self, ThresholdError> {
        Self::distinct(keys)
    }

    fn distinct(keys: Vec<BlsPublicKey>) -> Result<Self, ThresholdError> {
        if keys.is_empty() {
            return Err(ThresholdError::EmptyCommittee);
        }
        let mut seen: BTreeMap<[u8; 48], usize> = BTreeMap::new();
        for (index, key) in keys.iter().enumerate() {
            if let Some(&first) = seen.get(&key.to_bytes()) {
                return Err(ThresholdError::DuplicateKey {
                    first,
                    second: index,
                });
            }
            seen.insert(key.to_bytes(), index);
        }
        Ok(Self { keys })
    }

    /// Number of members `n` (at least 1).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set has at least one member.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of member `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&BlsPublicKey> {
        self.keys.get(index)
    }

    /// The position of `key` in the committee.
    pub fn index_of(&self, key: &BlsPublicKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// Keys in committee order.
    pub fn iter(&self) -> impl Iterator<Item = &BlsPublicKey> {
        self.keys.iter()
    }

    fn check_threshold(&self, threshold: usize) -> Result<(), ThresholdError> {
        if threshold == 0 || threshold > self.len() {
            return Err(ThresholdError::ThresholdOutOfRange {
                threshold,
                members: self.len(),
            });
        }
        Ok(())
    }
}

/// Which members signed, in the docs/formats.md layout. Invariant: no bit at or beyond `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerBitmap {
    bytes: Vec<u8>,
    members: usize,
}

impl SignerBitmap {
    /// ⌈n/8⌉: the encoded size for a committee of `members`.
    pub fn encoded_len(members: usize) -> usize {
        members.div_ceil(8)
    }

    /// An empty bitmap for a committee of `members`.
    pub fn new(members: usize) -> Self {
        Self {
            bytes: vec![0; Self::encoded_len(members)],
            members,
        }
    }

    /// Decodes a bitmap for a committee of `members`: exact length, no stray bits.
    pub fn from_bytes(bytes: &[u8], members: usize) -> Result<Self, ThresholdError> {
        let expected = Self::encoded_len(members);
        if bytes.len() != expected {
            return Err(ThresholdError::BadLength {
                expected,
                found: bytes.len(),
            });
        }
        for bit in members..expected * 8 {
            if bytes[bit / 8] >> (bit % 8) & 1 == 1 {
                return Err(ThresholdError::BitBeyondCommittee { bit, members });
            }
        }
        Ok(Self {
            bytes: bytes.to_vec(),
            members,
        })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Committee size this bitmap is for.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Marks member `index`. Panics if `index >= members` (a caller bug, never input).
    pub fn set(&mut self, index: usize) {
        assert!(
            index < self.members,
            "signer {index} beyond committee of {}",
            self.members
        );
        self.bytes[index / 8] |= 1 << (index % 8);
    }

    /// Whether member `index` is marked.
    pub fn contains(&self, index: usize) -> bool {
        index < self.members && self.bytes[index / 8] >> (index % 8) & 1 == 1
    }

    /// Marked members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members).filter(|&i| self.contains(i))
    }

    /// Number of marked members.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }
}

/// `t`-of-`n` signature: who signed, and the aggregate of their signatures over one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdSignature {
    /// The signers.
    pub signers: SignerBitmap,
    /// The sum of their signatures.
    pub aggregate: BlsSignature,
}

impl ThresholdSignature {
    /// `bitmap || aggregate` (⌈n/8⌉ + 96 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signers.as_bytes().to_vec();
        out.extend_from_slice(&self.aggregate.to_bytes());
        out
    }

    /// Decodes `bitmap || aggregate` for a committee of `members`, validating the point.
    pub fn from_bytes(bytes: &[u8], members: usize) -> Result<Self, ThresholdError> {
        let bitmap_len = SignerBitmap::encoded_len(members);
        let expected = bitmap_len + SIGNATURE_LEN;
        if bytes.len() != expected {
            return Err(ThresholdError::BadLength {
                expected,
                found: bytes.len(),
            });
        }
        let signers = SignerBitmap::from_bytes(&bytes[..bitmap_len], members)?;
        let aggregate = BlsSignature::from_bytes(&bytes[bitmap_len..])?;
        Ok(Self { signers, aggregate })
    }

    /// Verifies that at least `threshold` distinct members of `keys` signed `message`.
    /// One FastAggregateVerify (2 pairings) whatever `n`.
    pub fn verify(
        &self,
        keys: &MemberKeys,
        threshold: usize,
        message: &[u8],
    ) -> Result<(), ThresholdError> {
        let key = self.signers_key(keys, threshold)?;
        key.verify(message, &self.aggregate)
            .map_err(|_| ThresholdError::BadAggregate)
    }

    /// Every check of [`Self::verify`] but the pairing: the committee size, at least
    /// `threshold` signers. Returns the sum of the signers' keys, which must verify
    /// [`Self::aggregate`] over the message (alone, or in a [`verify_batch`]).
    pub fn signers_key(
        &self,
        keys: &MemberKeys,
        threshold: usize,
    ) -> Result<BlsPublicKey, ThresholdError> {
        keys.check_threshold(threshold)?;
        if self.signers.members() != keys.len() {
            return Err(ThresholdError::BadLength {
                expected: SignerBitmap::encoded_len(keys.len()) + SIGNATURE_LEN,
                found: self.signers.as_bytes().len() + SIGNATURE_LEN,
            });
        }
        let signers = self.signers.count();
        if signers < threshold {
            return Err(ThresholdError::BelowThreshold { signers, threshold });
        }
        let signer_keys: Vec<&BlsPublicKey> = self
            .signers
            .iter()
            .map(|i| keys.get(i).expect("bitmap has no bit beyond the committee"))
            .collect();
        let key = aggregate_keys(&signer_keys).ok_or(ThresholdError::BadAggregate)?;
        // Keys that cancel out would sum to the identity, which verifies the identity
        // signature for any message. PoPs rule that out; check anyway, it costs nothing.
        if key.is_infinity() {
            return Err(ThresholdError::BadAggregate);
        }
        Ok(key)
    }
}

/// One member's signature over the common message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialSignature {
    /// Committee position of the signer.
    pub signer: usize,
    /// Its signature.
    pub signature: BlsSignature,
}

/// Collects partial signatures over one message, checking each BEFORE it is kept, and
/// combines them once a threshold is reached.
#[derive(Debug)]
pub struct ThresholdAggregator<'k> {
    keys: &'k MemberKeys,
    message: Vec<u8>,
    partials: BTreeMap<usize, BlsSignature>,
}

impl<'k> ThresholdAggregator<'k> {
    /// Starts collecting signatures of `message` by members of `keys`.
    pub fn new(keys: &'k MemberKeys, message: impl Into<Vec<u8>>) -> Self {
        Self {
            keys,
            message: message.into(),
            partials: BTreeMap::new(),
        }
    }

    /// The message being signed.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Adds a partial signature: rejects non-members, a second contribution by the same
    /// member, and signatures that do not verify. On error nothing changes.
    pub fn add(&mut self, partial: PartialSignature) -> Result<(), ThresholdError> {
        let index = partial.signer;
        let key = self.keys.get(index).ok_or(ThresholdError::NotAMember {
            index,
            members: self.keys.len(),
        })?;
        if self.partials.contains_key(&index) {
            return Err(ThresholdError::DuplicateSigner { index });
        }
        key.verify(&self.message, &partial.signature)
            .map_err(|_| ThresholdError::BadPartial { index })?;
        self.partials.insert(index, partial.signature);
        Ok(())
    }

    /// Like [`Self::add`], with the signer named by its public key.
    pub fn add_by_key(
        &mut self,
        key: &BlsPublicKey,
        signature: BlsSignature,
    ) -> Result<(), ThresholdError> {
        let signer = self.keys.index_of(key).ok_or(ThresholdError::NotAMember {
            index: usize::MAX,
            members: self.keys.len(),
        })?;
        self.add(PartialSignature { signer, signature })
    }

    /// Distinct valid partial signatures collected so far.
    pub fn count(&self) -> usize {
        self.partials.len()
    }

    /// Combines the collected signatures; fails below `threshold`.
    pub fn finish(&self, threshold: usize) -> Result<ThresholdSignature, ThresholdError> {
        self.keys.check_threshold(threshold)?;
        if self.partials.len() < threshold {
            return Err(ThresholdError::BelowThreshold {
                signers: self.partials.len(),
                threshold,
            });
        }
        let mut signers = SignerBitmap::new(self.keys.len());
        for &i in self.partials.keys() {
            signers.set(i);
        }
        let aggregate = BlsSignature::aggregate(self.partials.values())
            .expect("at least threshold >= 1 signatures");
        Ok(ThresholdSignature { signers, aggregate })
    }
}
