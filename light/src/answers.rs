//! What the [`crate::Client`]'s methods return: values that passed every check.

use synchronicity_verify::tlog::{CosignedCheckpoint, Hash};
use synchronicity_verify::{Manifest, ReproducedBuild};

use crate::{CheckedProof, PeerError};
use synchronicity_verify::index::ProvenEntry;

/// What the log holds for one `crate@version`, proven complete by the index of a cosigned
/// checkpoint ([`crate::Client::lookups`]).
#[derive(Debug, Clone)]
pub struct ProvenLookup {
    /// `crate@version`.
    pub spec: String,
    /// The size of the checkpoint it was proven at.
    pub checkpoint_size: u64,
    /// Every entry (every variant and attempt), in log order; empty: proven absent.
    pub entries: Vec<ProvenEntry>,
    /// The default variant's verified proof (the client's own choice from `entries`);
    /// `None` when no entry is the default variant.
    pub default: Option<CheckedProof>,
}

impl ProvenLookup {
    /// Proven absent, no default variant, or a default built with a generated lockfile:
    /// an answer an older checkpoint could give where a newer one would not.
    pub fn is_negative(&self) -> bool {
        self.default
            .as_ref()
            .is_none_or(|p| p.lockfile() == crate::Lockfile::Generated)
    }

    /// Each entry's request id and variant, for a message.
    pub fn variants_line(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                let label = e.entry.request.variant_label();
                format!(
                    "{} ({})",
                    hex::encode(e.entry.request.id()),
                    if label.is_empty() {
                        "default settings".into()
                    } else {
                        label
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A checkpoint accepted by [`crate::Client::checkpoint`].
#[derive(Debug, Clone)]
pub struct CheckpointUpdate {
    /// The latest cosigned checkpoint, verified against the committee.
    pub checkpoint: CosignedCheckpoint,
    /// The consistency proof from the held checkpoint's size (empty without one).
    pub proof: Vec<Hash>,
}

/// How a fresh checkpoint stands against a held one ([`crate::Client::advance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The fresh one is older: keep the held one (a stale member, not evidence).
    Older,
    /// The same checkpoint.
    Same,
    /// Newer and proven consistent by a member: the log moved forward.
    Forward,
}

/// One answer of [`crate::Client::batch`].
#[derive(Debug)]
pub enum BatchAnswer {
    /// A proof of the default variant that verifies (of any verdict).
    Proof(Box<CheckedProof>),
    /// No member knows a build of it (or no member answered the batch).
    Unknown,
    /// The member's proof for it was refused.
    Refused(PeerError),
}

/// A reproduced build of a crate's default variant with its attested manifest
/// ([`crate::Client::reproduced`]): only such a value can name the artifacts to fetch.
#[derive(Debug, Clone)]
pub struct VerifiedBuild {
    pub(crate) proof: CheckedProof,
    pub(crate) build: ReproducedBuild,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_text: String,
}

impl VerifiedBuild {
    /// The verified proof (its text is what to keep).
    pub fn proof(&self) -> &CheckedProof {
        &self.proof
    }
    /// The build: at least `t` members attested its manifest.
    pub fn build(&self) -> &ReproducedBuild {
        &self.build
    }
    /// The attested manifest (its text hashes to the attested digest).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The manifest's text.
    pub fn manifest_text(&self) -> &str {
        &self.manifest_text
    }
}
