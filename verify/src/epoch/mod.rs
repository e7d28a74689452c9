//! Committee changes: what the members of epoch `e` sign to hand the log to epoch `e + 1`,
//! and the log entry that records it. Pure.
//!
//! The committee file of epoch `e + 1` is the whole next committee (members, threshold,
//! `[protocol]`, toolchain, target) with the same origin, `epoch = e + 1` and `previous = <the
//! committee digest of e>`. Members of `e` approve it by a BLS signature over the change
//! statement; `t_e` of them, aggregated, make the approval. Once ordered, the change and its
//! approval are appended to the log as a [`ChangeEntry`], so the committee history is in
//! the append-only log itself.
//!
//! ```text
//! change statement = "synchronicity/committee-change/v1\n<origin>\nepoch <e+1>\nprevious <hex digest of e>\nnext <hex digest of e+1>\nfile <hex SHA-256 of the next committee file's text>\n"
//! ```
//!
//! The digest covers the keys, the threshold and the rules but not the members' names,
//! peer ids (their Ed25519 keys) or addresses; the file's hash binds those too, so an
//! approval of one file cannot be carried over to another with the same digest.

mod chain;

pub use chain::{
    ChainError, ChainFile, ChainLink, CommitteeChain, Epoch, MAX_CHAIN_FILE_SIZE, MAX_CHAIN_LINKS,
    parse_chain_file,
};

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::committee::{Committee, CommitteeError};
use crate::crypto::{ThresholdError, ThresholdSignature};

/// The `kind` of a change entry (a build entry has no `kind`).
pub const CHANGE_ENTRY_KIND: &str = "committee-change/v1";
/// Largest change entry decoded: a committee file of a few thousand members.
pub const MAX_CHANGE_ENTRY_SIZE: usize = 2 * 1024 * 1024;

/// The statement members of `previous`'s epoch sign to approve `next`, whose committee
/// file's text hashes to `file` (see the module doc).
pub fn change_statement(
    origin: &str,
    epoch: u64,
    previous: &[u8; 32],
    next: &[u8; 32],
    file: &[u8; 32],
) -> String {
    format!(
        "synchronicity/committee-change/v1\n{origin}\nepoch {epoch}\nprevious {}\nnext {}\nfile {}\n",
        hex::encode(previous),
        hex::encode(next),
        hex::encode(file)
    )
}

/// The log entry of a committee change: the next committee file, verbatim, and the
/// outgoing committee's approval of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEntry {
    /// Always [`CHANGE_ENTRY_KIND`].
    pub kind: String,
    /// The committee file of the new epoch, as the members approved it (TOML text).
    pub committee: String,
    /// `bitmap || aggregate` of the outgoing committee's signatures over the change
    /// statement (bitmap positions in the OUTGOING committee's order).
    #[serde(with = "serde_bytes")]
    pub approval: Vec<u8>,
    /// The height whose block ordered the `t`-th approval (the change's own height).
    pub height: u64,
}

/// Why a committee change (an entry, a proposal or an approval) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The bytes are not a change entry.
    #[error("not a committee change entry: {0}")]
    Codec(#[from] CodecError),
    /// Another kind.
    #[error("entry kind {0:?} is not {CHANGE_ENTRY_KIND}")]
    Kind(String),
    /// The next committee file is not a valid committee.
    #[error("the next committee: {0}")]
    Committee(#[from] CommitteeError),
    /// The current committee is the last epoch a `u64` can number.
    #[error("epoch {0} has no successor")]
    LastEpoch(u64),
    /// The next committee has another origin.
    #[error("the next committee's origin {found:?} is not the log's {expected:?}")]
    Origin {
        /// The current committee's.
        expected: String,
        /// The next one's.
        found: String,
    },
    /// The next committee's epoch does not follow the current one.
    #[error("the next committee is epoch {found}, not {expected}")]
    Epoch {
        /// Current epoch + 1.
        expected: u64,
        /// As written.
        found: u64,
    },
    /// The next committee names another previous digest.
    #[error(
        "the next committee's previous digest {found} is not the current committee's {expected}"
    )]
    Previous {
        /// The current committee's digest, hex.
        expected: String,
        /// As written, hex (empty when absent).
        found: String,
    },
    /// The approval is malformed, has fewer than `t` signers of the outgoing committee, or
    /// does not verify over the change statement.
    #[error("approval: {0}")]
    Approval(ThresholdError),
}

impl ChangeEntry {
    /// Decodes entry bytes of a change entry (bounded by [`MAX_CHANGE_ENTRY_SIZE`]). Only the
    /// shape: [`ChangeEntry::verify`] checks the committee and the approval.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChangeError> {
        let e: Self = codec::from_slice(bytes, MAX_CHANGE_ENTRY_SIZE)?;
        if e.kind != CHANGE_ENTRY_KIND {
            return Err(ChangeError::Kind(e.kind));
        }
        Ok(e)
    }

    /// The canonical CBOR bytes (what the log's leaf hashes).
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// The next committee, if `current`'s members approved it: it parses and validates
    /// (every proof of possession), has `current`'s origin, the next epoch and `current`'s
    /// digest as `previous`, and at least `t` of `current`'s members signed the change
    /// statement (one aggregate check).
    pub fn verify(&self, current: &Committee) -> Result<Committee, ChangeError> {
        let next = check_proposal(current, &self.committee)?;
        let sig = ThresholdSignature::from_bytes(&self.approval, current.len())
            .map_err(ChangeError::Approval)?;
        let statement = approval_message(current, &next, &self.committee);
        current
            .verify_threshold(statement.as_bytes(), &sig)
            .map_err(ChangeError::Approval)?;
        Ok(next)
    }
}

/// The next committee, if `text` is a valid committee file that follows `current`: same
/// origin, epoch + 1, `previous` = `current`'s digest. What a member checks before it signs
/// an approval, and every member before it orders one.
pub fn check_proposal(current: &Committee, text: &str) -> Result<Committee, ChangeError> {
    let next = Committee::from_toml(text)?;
    if next.origin() != current.origin() {
        return Err(ChangeError::Origin {
            expected: current.origin().into(),
            found: next.origin().into(),
        });
    }
    let expected = current
        .epoch()
        .checked_add(1)
        .ok_or(ChangeError::LastEpoch(current.epoch()))?;
    if next.epoch() != expected {
        return Err(ChangeError::Epoch {
            expected,
            found: next.epoch(),
        });
    }
    if next.previous() != Some(current.digest()) {
        return Err(ChangeError::Previous {
            expected: hex::encode(current.digest()),
            found: next.previous().map(hex::encode).unwrap_or_default(),
        });
    }
    Ok(next)
}

/// The change statement for `current` → `next`, whose file is `text`.
pub fn approval_message(current: &Committee, next: &Committee, text: &str) -> String {
    change_statement(
        current.origin(),
        next.epoch(),
        &current.digest(),
        &next.digest(),
        &crate::sha256(text.as_bytes()),
    )
}

/// What a log entry is: a build record or a committee change. A change entry has a `kind`;
/// a build entry has none (its `format` says which build-entry format it is).
pub fn is_change_entry(bytes: &[u8]) -> bool {
    ChangeEntry::decode(bytes).is_ok()
}

#[cfg(test)]
mod tests;
