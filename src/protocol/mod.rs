//! The commit-reveal protocol, pure: signed messages, commitments, attestation statements,
//! the per-request round as a function of the decided chain, and the log entry. No I/O.

mod commitment;
mod message;
mod round;
#[cfg(test)]
mod tests;

pub use commitment::{COMMIT_DOMAIN, commitment};
pub use message::{
    Body, MAX_MESSAGE_SIZE, MESSAGE_DOMAIN, MessageError, RevealedOutcome, SignedMessage,
};
pub use round::{
    Block, BlockError, Decided, Duty, ProtocolParams, ProtocolState, RoundStatus, outcome_digest,
};
pub use synchronicity_verify::entry::{
    Dissent, ENTRY_FORMAT, EntryError, FAILURE_CLASSES, LogEntry, Misbehaviour, Verdict,
    attestation_statement, failure_class, failure_digest,
};
