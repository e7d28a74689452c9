//! What can go wrong: [`PeerError`] is one member's answer refused (the client says so
//! through a [`Notice`] and asks the next member); [`LightError`] is the whole operation
//! failing; [`SplitView`] is evidence that the committee signed two histories.

use synchronicity_net::{Multiaddr, NetError};
use synchronicity_verify::codec::CodecError;
use synchronicity_verify::tlog::{CheckpointError, CosignedCheckpoint, MerkleError};
use synchronicity_verify::{Verdict, VerifyError};

/// Why one member's answer was refused: it is faulty, or it could not be reached. Never
/// final on its own: the client asks the next member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The address names no peer id and no committee member listens there.
    #[error("{0}: no /p2p/ peer id and no member listens there")]
    UnknownPeer(Multiaddr),
    /// Not reachable, timed out, or refused (rate limit, shutting down).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The answer is not a light-protocol message within its size bound.
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// The member says it has no such thing (its one-line reason).
    #[error("{0}")]
    NotFound(String),
    /// An answer of another kind than the request asks for.
    #[error("unexpected answer: {0}")]
    Unexpected(&'static str),
    /// The proof fails the offline verification against the trusted committee.
    #[error("the proof does not verify: {0}")]
    Proof(#[from] VerifyError),
    /// A verified entry of another variant than the default one asked for.
    #[error("faulty peer: answered with a non-default variant ({variant}) of {spec}")]
    NotDefaultVariant {
        /// The settings that differ (`target=… features=…`).
        variant: String,
        /// `crate@version`.
        spec: String,
    },
    /// The checkpoint lacks a valid threshold signature of the committee.
    #[error("faulty peer: its checkpoint does not verify: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint is not one the committee chain accepts.
    #[error("faulty peer: {0}")]
    Chain(#[from] synchronicity_verify::ChainError),
    /// The caller's extra policy (e.g. witness cosignatures) refuses the checkpoint.
    #[error("the checkpoint does not meet the witness policy: {0}")]
    Policy(String),
    /// A hash in a proof is not 32 bytes.
    #[error("faulty peer: a proof hash is not 32 bytes")]
    BadHash,
    /// The served checkpoint is older than the one the client holds.
    #[error(
        "faulty peer: its checkpoint (size {served}) is older than the remembered one (size {held})"
    )]
    OlderCheckpoint {
        /// The served size.
        served: u64,
        /// The held size.
        held: u64,
    },
    /// The consistency proof from the held checkpoint to the served one does not verify.
    #[error(
        "faulty peer: its consistency proof from size {old} to {new} does not verify ({error})"
    )]
    Inconsistent {
        /// The held size.
        old: u64,
        /// The served size.
        new: u64,
        /// What failed.
        error: MerkleError,
    },
    /// A text whose sha256 is not the one asked for.
    #[error("faulty peer: sent a text with another sha256")]
    WrongBlob,
    /// An artifact chunk at another offset, past the declared size, over
    /// [`crate::MAX_ARTIFACT`], or with another total than before.
    #[error("faulty peer: a chunk that does not fit")]
    BadChunk,
    /// The whole artifact does not hash to the sha256 the manifest attests.
    #[error("faulty peer: the artifact's bytes do not hash to {0}")]
    ArtifactHash(String),
    /// A batch answer with another number of answers than keys asked.
    #[error("faulty peer: a batch answer of the wrong length")]
    BatchLength,
    /// A lookup answer that does not prove itself against the checkpoint's index (an
    /// entry left out or added, a tampered proof, "absent" for a key that is present).
    #[error("faulty peer: its answer for {spec} is not what the index proves: {error}")]
    Index {
        /// `crate@version`.
        spec: String,
        /// What failed.
        error: synchronicity_verify::index::AnswerError,
    },
    /// The default variant's proof is not of the entry the rule picks from the proven list.
    #[error(
        "faulty peer: for {spec} it sent the proof of entry {sent:?}, the default variant is entry {chosen:?}"
    )]
    WrongDefault {
        /// `crate@version`.
        spec: String,
        /// The entry the client's rule picks.
        chosen: Option<u64>,
        /// The entry of the proof sent.
        sent: Option<u64>,
    },
}

/// Two validly cosigned checkpoints that cannot both be in one append-only log: two
/// histories signed by the committee. Its parts are the evidence to keep.
#[derive(Debug, Clone)]
pub struct SplitView {
    /// What contradicts what, in one line.
    pub why: String,
    /// The checkpoint the client held (remembered, cached, or accepted from another member).
    pub held: CosignedCheckpoint,
    /// The checkpoint that contradicts it.
    pub served: CosignedCheckpoint,
    /// Who served it, when known.
    pub served_by: Option<Multiaddr>,
}

/// Why an operation of the [`crate::Client`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LightError {
    /// A committee member's peer id or address does not parse.
    #[error("committee member {member}: {what}")]
    Committee {
        /// The member's name.
        member: String,
        /// What does not parse.
        what: String,
    },
    /// The client's own network could not start.
    #[error("starting the network: {0}")]
    Start(NetError),
    /// No member gave an answer that verifies (each one's reason was a [`Notice`]).
    #[error("no peer gave {0} that verifies")]
    NoVerifiedAnswer(&'static str),
    /// The log holds no entry of it: proven by the index of a cosigned checkpoint.
    #[error("no entry for {spec} (proven absent at size {size})")]
    Absent {
        /// `crate@version`.
        spec: String,
        /// The checkpoint's size.
        size: u64,
    },
    /// The log holds entries of it, none of them the default variant (proven).
    #[error(
        "{spec} has no default-variant entry (proven at size {size}); ask by request id: {variants}"
    )]
    NoDefault {
        /// `crate@version`.
        spec: String,
        /// The checkpoint's size.
        size: u64,
        /// Each entry's request id and variant.
        variants: String,
    },
    /// Every answer that verifies records another verdict than reproduced.
    #[error("{spec}: the group's verdict is {verdict:?}, not Reproduced")]
    NotReproduced {
        /// `crate@version`.
        spec: String,
        /// The verdict of the first verified answer.
        verdict: Verdict,
    },
    /// No member has the text with this sha256.
    #[error("no peer has the text with sha256 {0}")]
    NoBlob(String),
    /// A text the entry pins is not text.
    #[error("the {0} is not text")]
    NotText(&'static str),
    /// A text the entry pins hashes right but is not what it should be (e.g. the manifest
    /// does not parse).
    #[error("{0}")]
    Pinned(VerifyError),
    /// The attested manifest lists no file at this path.
    #[error("the attested manifest lists no {0}")]
    NotInManifest(String),
    /// No member served the whole artifact.
    #[error("no peer served the artifact {sha256} ({last})")]
    NoArtifact {
        /// Its sha256, hex.
        sha256: String,
        /// The last member's failure.
        last: String,
    },
    /// The deadline passed before any member served the whole artifact.
    #[error("no peer served the artifact {sha256} before the deadline (last: {last})")]
    ArtifactDeadline {
        /// Its sha256, hex.
        sha256: String,
        /// The last member's failure.
        last: String,
    },
    /// The committee signed two histories (see [`SplitView`]).
    #[error("SPLIT VIEW: {}", .0.why)]
    SplitView(Box<SplitView>),
}

/// What the client tells its user while it works: a member refused and the next one asked,
/// a download started over, a weaker answer kept. Its `Display` is one line without the
/// level; [`Notice::is_warning`] gives the level.
#[derive(Debug)]
#[non_exhaustive]
pub enum Notice {
    /// A member's answer was refused (faulty or unreachable): the next one is asked.
    PeerFailed {
        /// The member's address.
        peer: Multiaddr,
        /// Why.
        error: PeerError,
    },
    /// An artifact download from `peer` failed after `dropped` bytes: they are dropped and
    /// the download starts over at the next member (bytes of two members are never mixed).
    DownloadRestarted {
        /// The member's address.
        peer: Multiaddr,
        /// Why.
        error: PeerError,
        /// Bytes received from it and dropped.
        dropped: usize,
    },
    /// A verified proof whose verdict is not reproduced: the next member is asked for one.
    NotReproduced {
        /// The member's address.
        peer: Multiaddr,
        /// The verified verdict.
        verdict: Verdict,
    },
    /// The default variant was built with a lockfile the group generated (the proven list
    /// of entries holds no build with the lockfile shipped in the `.crate`: it ships none).
    GeneratedLockfile {
        /// `crate@version`.
        spec: String,
    },
    /// A member whose own consistency proof failed served a checkpoint that another member
    /// proved consistent after all: only its proof was wrong.
    ProvenByAnother {
        /// The member whose proof failed.
        peer: Multiaddr,
        /// Its checkpoint's size.
        size: u64,
    },
}

impl Notice {
    /// Whether this is a warning (a refused member) rather than a note.
    pub fn is_warning(&self) -> bool {
        !matches!(
            self,
            Self::GeneratedLockfile { .. } | Self::ProvenByAnother { .. }
        )
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PeerFailed { peer, error } => write!(f, "{peer}: {error}; trying the next peer"),
            Self::DownloadRestarted {
                peer,
                error,
                dropped,
            } => write!(
                f,
                "{peer}: {error}; starting over at the next peer (its {dropped} bytes are dropped)"
            ),
            Self::NotReproduced { peer, verdict } => write!(
                f,
                "{peer}: the verified entry's verdict is {verdict:?}; asking the next peer"
            ),
            Self::GeneratedLockfile { spec } => write!(
                f,
                "{spec} was built with a lockfile the group generated: the log holds no build with a lockfile shipped in the .crate (the crate ships none)"
            ),
            Self::ProvenByAnother { peer, size } => write!(
                f,
                "{peer}: its checkpoint of size {size} is consistent after all (another member proved it); only its proof was wrong"
            ),
        }
    }
}
