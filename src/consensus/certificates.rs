//! Certificate checks for the core's `Verify*Certificate` effects and for values fetched by
//! sync: every signature is re-derived from the vote it stands for (votes carry no
//! extension), each validator counts once, and the signed voting power must meet the
//! threshold.

// The error type is fixed by Malachite: `Verify*Certificate` effects resume with exactly it.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use arc_malachitebft_core_types::{
    self as mc, CertificateError, CommitCertificate, NilOrVal, PolkaCertificate, RoundCertificate,
    RoundCertificateType, ThresholdParams, Validator as _, ValidatorSet as _, VoteType,
};
use arc_malachitebft_signing_ed25519::Signature;

use super::context::{Address, Ctx, ValidatorSet, ValueId, Vote};

type Result = std::result::Result<(), CertificateError<Ctx>>;

/// Sums the voting power of distinct, correctly signed votes.
fn tally<'a>(
    ctx: &Ctx,
    vs: &ValidatorSet,
    votes: impl Iterator<Item = (Vote, &'a Address, &'a Signature)>,
    bad: impl Fn(Address) -> CertificateError<Ctx>,
) -> std::result::Result<u64, CertificateError<Ctx>> {
    let mut seen = BTreeSet::new();
    let mut power: u64 = 0;
    for (vote, address, signature) in votes {
        if !seen.insert(*address) {
            return Err(CertificateError::DuplicateVote(*address));
        }
        let v = vs
            .get_by_address(address)
            .ok_or(CertificateError::UnknownValidator(*address))?;
        if v.public_key()
            .verify(&ctx.vote_sign_bytes(&vote), signature)
            .is_err()
        {
            return Err(bad(*address));
        }
        power =
            power
                .checked_add(v.voting_power())
                .ok_or(CertificateError::VotingPowerOverflow {
                    signed: power,
                    added: v.voting_power(),
                })?;
    }
    Ok(power)
}

fn enough(power: u64, vs: &ValidatorSet, threshold: mc::ThresholdParam) -> Result {
    let total = vs.total_voting_power();
    if threshold.is_met(power, total) {
        Ok(())
    } else {
        Err(CertificateError::NotEnoughVotingPower {
            signed: power,
            total,
            expected: threshold.min_expected(total),
        })
    }
}

/// A commit certificate: a quorum of precommits for the value.
pub fn verify_commit(
    ctx: &Ctx,
    c: &CommitCertificate<Ctx>,
    vs: &ValidatorSet,
    th: ThresholdParams,
) -> Result {
    let votes = c.commit_signatures.iter().map(|s| {
        let vote = mc::Context::new_precommit(
            ctx,
            c.height,
            c.round,
            NilOrVal::Val(c.value_id),
            s.address,
        );
        (vote, &s.address, &s.signature)
    });
    let power = tally(ctx, vs, votes, |a| {
        let sig = c
            .commit_signatures
            .iter()
            .find(|s| s.address == a)
            .expect("signer present")
            .clone();
        CertificateError::InvalidCommitSignature(sig)
    })?;
    enough(power, vs, th.quorum)
}

/// A polka certificate: a quorum of prevotes for the value.
pub fn verify_polka(
    ctx: &Ctx,
    c: &PolkaCertificate<Ctx>,
    vs: &ValidatorSet,
    th: ThresholdParams,
) -> Result {
    let votes = c.polka_signatures.iter().map(|s| {
        let vote =
            mc::Context::new_prevote(ctx, c.height, c.round, NilOrVal::Val(c.value_id), s.address);
        (vote, &s.address, &s.signature)
    });
    let power = tally(ctx, vs, votes, |a| {
        let sig = c
            .polka_signatures
            .iter()
            .find(|s| s.address == a)
            .expect("signer present")
            .clone();
        CertificateError::InvalidPolkaSignature(sig)
    })?;
    enough(power, vs, th.quorum)
}

/// A round certificate: a quorum of precommits (any value), or f+1 votes of a later round.
pub fn verify_round(
    ctx: &Ctx,
    c: &RoundCertificate<Ctx>,
    vs: &ValidatorSet,
    th: ThresholdParams,
) -> Result {
    let votes = c.round_signatures.iter().map(|s| {
        let value: NilOrVal<ValueId> = s.value_id;
        let vote = match s.vote_type {
            VoteType::Prevote => mc::Context::new_prevote(ctx, c.height, c.round, value, s.address),
            VoteType::Precommit => {
                mc::Context::new_precommit(ctx, c.height, c.round, value, s.address)
            }
        };
        (vote, &s.address, &s.signature)
    });
    let power = tally(ctx, vs, votes, |a| {
        let sig = c
            .round_signatures
            .iter()
            .find(|s| s.address == a)
            .expect("signer present")
            .clone();
        CertificateError::InvalidRoundSignature(sig)
    })?;
    match c.cert_type {
        RoundCertificateType::Precommit => enough(power, vs, th.quorum),
        RoundCertificateType::Skip => enough(power, vs, th.honest),
    }
}
