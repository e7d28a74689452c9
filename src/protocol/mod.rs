//! The commit-reveal protocol, pure: signed messages, commitments, attestation statements,
//! the per-request round as a function of the decided chain, the rules of a block, and the
//! log entry. No I/O: decided requests are found through [`DecidedIndex`].

mod change;
mod commitment;
mod envelopes;
mod message;
mod params;
mod request_rules;
mod round;
mod state;
#[cfg(test)]
mod tests;

pub use change::{CHANGE_ROW_ID, ChangeState, MAX_PROPOSAL_SIZE};
pub use commitment::{COMMIT_DOMAIN, commitment};
pub use envelopes::{EnvelopeCache, MAX_VERIFIED};
pub use message::{
    Body, MAX_MESSAGE_SIZE, MESSAGE_DOMAIN, MessageError, RevealedOutcome, SignedMessage,
};
pub use params::{BLOCK_OVERHEAD, ProtocolParams};
pub use request_rules::check_request;
pub use round::{Decided, outcome_digest};
pub use state::{
    Applied, Block, BlockError, DecidedIndex, Duty, Env, Prepared, ProtocolState, RoundStatus,
};
pub use synchronicity_verify::Phase;
pub use synchronicity_verify::entry::{
    Dissent, ENTRY_FORMAT, EntryError, FAILURE_CLASSES, FailureClass, LogEntry, Misbehaviour,
    Verdict, attestation_statement, failure_class, failure_digest,
};
