//! The commit-reveal protocol, pure: signed messages, commitments, attestation statements,
//! the per-request round as a function of the decided chain, and the log entry. No I/O.

mod commitment;
mod entry;
mod message;
mod round;
#[cfg(test)]
mod tests;

pub use commitment::{COMMIT_DOMAIN, attestation_statement, commitment};
pub use entry::{EntryError, VerifiedEntry, decode_entry, verify_entry};
pub use message::{
    Body, MAX_MESSAGE_SIZE, MESSAGE_DOMAIN, MessageError, RevealedOutcome, SignedMessage,
};
pub use round::{
    Block, BlockError, Dissent, Duty, FAILURE_CLASSES, LogEntry, Misbehaviour, ProtocolParams,
    ProtocolState, RoundStatus, Verdict, failure_digest, outcome_digest,
};
