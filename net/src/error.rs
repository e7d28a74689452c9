//! Why a network operation failed.

use libp2p::PeerId;

use crate::protocol::Refusal;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The network task has stopped.
    #[error("the network has stopped")]
    Stopped,
    /// The peer is not a committee member (for members-only operations).
    #[error("{0} is not a committee member")]
    NotMember(PeerId),
    /// The payload exceeds the limit for this topic or stream.
    #[error("{len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The member's frame queue is full (it is slow or unreachable).
    #[error("frame queue to {0} is full")]
    QueueFull(PeerId),
    /// The topic was not configured.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// Publishing failed (e.g. no peers subscribed yet).
    #[error("publish failed: {0}")]
    Publish(String),
    /// The request failed; it is not known whether the peer received it.
    #[error("request failed: {0}")]
    Request(String),
    /// The peer refused the request.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Could not start (bad listen address, bad configuration).
    #[error("cannot start the network: {0}")]
    Start(String),
}
