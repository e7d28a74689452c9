//! Our types for Malachite's Tendermint core (`arc-malachitebft-core-*` 0.8.2).
//!
//! - a value is a whole block (`protocol::Block` as CBOR); its id is the SHA-256 of those
//!   bytes, so votes and certificates commit to the exact block;
//! - validators are the committee members in committee order, one vote each; the address is
//!   the member's 32-byte Ed25519 key (the same key as its libp2p peer id);
//! - the proposer of (height, round) is member `(height − 1 + round) mod n`;
//! - vote and proposal signatures are Ed25519 over domain-separated bytes that include the
//!   chain id; vote bytes never include an extension (certificates are re-checked by
//!   rebuilding each precommit from (height, round, value id, address) alone).

use std::fmt;
use std::sync::Arc;

use arc_malachitebft_core_types as mc;
use arc_malachitebft_signing_ed25519::{Ed25519, PublicKey};
use mc::{NilOrVal, Round, VoteType};

use crate::committee::Committee;
use crate::crypto::sha256;

/// A consensus height (the first is 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);
    fn increment_by(&self, n: u64) -> Self {
        Height(self.0 + n)
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator address: the member's Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..12])
    }
}

impl mc::Address for Address {}

/// The id of a value: SHA-256 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub [u8; 32]);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..12])
    }
}

/// A value: the CBOR bytes of one block, with their id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value {
    id: ValueId,
    bytes: Arc<Vec<u8>>,
}

impl Value {
    /// Wraps block bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            id: ValueId(sha256(&bytes)),
            bytes: Arc::new(bytes),
        }
    }
    /// The block bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl mc::Value for Value {
    type Id = ValueId;
    fn id(&self) -> ValueId {
        self.id
    }
}

/// A prevote or precommit (never extended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub typ: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The value voted for, or nil.
    pub value: NilOrVal<ValueId>,
    /// The voter.
    pub address: Address,
}

impl mc::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.typ
    }
    fn validator_address(&self) -> &Address {
        &self.address
    }
    fn extension(&self) -> Option<&mc::SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<mc::SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: mc::SignedExtension<Ctx>) -> Self {
        self
    }
}

/// A proposal carrying its whole value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block.
    pub value: Value,
    /// Proof-of-lock round, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub address: Address,
}

impl mc::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.address
    }
}

/// Values travel inside proposals; no parts are ever sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoParts;

impl mc::ProposalPart<Ctx> for NoParts {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A committee member as a validator (voting power 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    address: Address,
    public_key: PublicKey,
}

impl mc::Validator<Ctx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> mc::VotingPower {
        1
    }
}

/// The committee in committee order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Arc<Vec<Validator>>,
}

impl ValidatorSet {
    /// The committee's members as validators.
    pub fn from_committee(c: &Committee) -> Self {
        let validators = c
            .members()
            .iter()
            .map(|m| {
                let bytes = m.ed25519.to_bytes();
                Validator {
                    address: Address(bytes),
                    public_key: PublicKey::from_bytes(bytes)
                        .expect("committee keys are valid Ed25519 keys"),
                }
            })
            .collect();
        Self {
            validators: Arc::new(validators),
        }
    }

    /// Committee position of `address`.
    pub fn index_of(&self, address: &Address) -> Option<usize> {
        self.validators.iter().position(|v| &v.address == address)
    }
}

impl mc::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> mc::VotingPower {
        self.validators.len() as u64
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.address == address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// The context: the chain id (part of every signed byte string).
#[derive(Debug, Clone)]
pub struct Ctx {
    chain_id: Arc<str>,
}

impl Ctx {
    /// For the committee's chain.
    pub fn new(chain_id: &str) -> Self {
        Self {
            chain_id: chain_id.into(),
        }
    }

    /// The bytes a vote signature covers.
    pub fn vote_sign_bytes(&self, v: &Vote) -> Vec<u8> {
        let mut b = b"synchronicity/vote/v1\n".to_vec();
        b.extend_from_slice(self.chain_id.as_bytes());
        b.push(b'\n');
        b.push(match v.typ {
            VoteType::Prevote => 1,
            VoteType::Precommit => 2,
        });
        b.extend_from_slice(&v.height.0.to_be_bytes());
        b.extend_from_slice(&v.round.as_i64().to_be_bytes());
        match &v.value {
            NilOrVal::Nil => b.push(0),
            NilOrVal::Val(id) => {
                b.push(1);
                b.extend_from_slice(&id.0);
            }
        }
        b.extend_from_slice(&v.address.0);
        b
    }

    /// The bytes a proposal signature covers (the value by its id).
    pub fn proposal_sign_bytes(&self, p: &Proposal) -> Vec<u8> {
        let mut b = b"synchronicity/proposal/v1\n".to_vec();
        b.extend_from_slice(self.chain_id.as_bytes());
        b.push(b'\n');
        b.extend_from_slice(&p.height.0.to_be_bytes());
        b.extend_from_slice(&p.round.as_i64().to_be_bytes());
        b.extend_from_slice(&p.value.id.0);
        b.extend_from_slice(&p.pol_round.as_i64().to_be_bytes());
        b.extend_from_slice(&p.address.0);
        b
    }
}

impl mc::Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = mc::LinearTimeouts;
    type Value = Value;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        vs: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let r = round
            .as_u32()
            .expect("the core never asks for the proposer of round nil") as u64;
        let n = vs.validators.len() as u64;
        &vs.validators[((height.0.saturating_sub(1) + r) % n) as usize]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Value,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            typ: VoteType::Prevote,
            height,
            round,
            value,
            address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            typ: VoteType::Precommit,
            height,
            round,
            value,
            address,
        }
    }
}
