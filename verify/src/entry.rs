//! The log entry (what a proof file's `extra` carries) and the statements its signatures
//! cover. Pure.
//!
//! An entry is compact: it pins the lockfile (in the request) and the manifest (its digest)
//! by sha256; their texts are stored by every member and served content-addressed, so a
//! proof stays small whatever the size of the crate's dependency tree.
//!
//! ```text
//! attestation statement = "synchronicity/attestation/v1\n<origin>\nrequest <hex id>\nmanifest <hex digest>\n"
//! failure digest        = SHA-256("synchronicity/build-failure/v1\n<class>\n")
//! ```

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::request::{BuildRequest, RequestError};
use crate::sha256;

/// Entry format version written by this crate.
pub const ENTRY_FORMAT: u32 = 2;
/// Largest entry decoded (an entry is a few hundred bytes; a 1,000-member committee's
/// dissent lists stay far below this).
pub const MAX_ENTRY_SIZE: usize = 256 * 1024;

/// Why a build failed: the classes a reveal may name. Members that agree on a class agree on
/// the failure ([`failure_digest`] of its name). Serialised as its name ([`FailureClass::name`],
/// e.g. `"out-of-memory"`), in reveals, round rows and anywhere else it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The crate did not compile (cargo exited 101), including a build script that failed.
    CompileError,
    /// Over the time limit.
    Timeout,
    /// Over the memory limit of the whole process tree.
    OutOfMemory,
    /// Over the process (task) limit of the whole process tree: a `fork` was refused.
    TooManyProcesses,
    /// The build's disk (target directory and `/tmp`) is full.
    DiskLimit,
    /// The sandbox itself failed.
    SandboxError,
    /// Over the output cap: the build wrote more than the limit to stdout and stderr.
    OutputLimit,
    /// The build left something the host refuses to read where an artifact should be: a
    /// link, FIFO or device, a file on another filesystem or over the size cap, or a name
    /// that is not a plain relative path.
    ForbiddenOutput,
    /// The request lies about its inputs (it says the lockfile is the one the `.crate`
    /// ships, and it is not): every member refuses to build it.
    InvalidRequest,
}

impl FailureClass {
    /// Every class, in the order of [`FAILURE_CLASSES`] (metrics count them in this order).
    pub const ALL: [FailureClass; 9] = [
        Self::CompileError,
        Self::Timeout,
        Self::OutOfMemory,
        Self::TooManyProcesses,
        Self::DiskLimit,
        Self::SandboxError,
        Self::OutputLimit,
        Self::ForbiddenOutput,
        Self::InvalidRequest,
    ];

    /// Its name, as serialised and as hashed by [`failure_digest`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::CompileError => "compile-error",
            Self::Timeout => "timeout",
            Self::OutOfMemory => "out-of-memory",
            Self::TooManyProcesses => "too-many-processes",
            Self::DiskLimit => "disk-limit",
            Self::SandboxError => "sandbox-error",
            Self::OutputLimit => "output-limit",
            Self::ForbiddenOutput => "forbidden-output",
            Self::InvalidRequest => "invalid-request",
        }
    }

    /// The class named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Its position in [`FailureClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The digest a build that failed this way commits to ([`failure_digest`] of its name).
    pub fn digest(self) -> [u8; 32] {
        failure_digest(self.name())
    }

    /// The class whose digest is `digest`, if any.
    pub fn of_digest(digest: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.digest()[..] == *digest)
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The names of the failure classes a reveal may name, derived from [`FailureClass::ALL`].
pub const FAILURE_CLASSES: [&str; FailureClass::ALL.len()] = {
    let mut names = [""; FailureClass::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = FailureClass::ALL[i].name();
        i += 1;
    }
    names
};

/// The digest a failed build commits to: `SHA-256("synchronicity/build-failure/v1\n<class>\n")`.
pub fn failure_digest(class: &str) -> [u8; 32] {
    sha256(format!("synchronicity/build-failure/v1\n{class}\n").as_bytes())
}

/// The name of the failure class whose digest is `digest`, if any.
pub fn failure_class(digest: &[u8]) -> Option<&'static str> {
    FailureClass::of_digest(digest).map(FailureClass::name)
}

/// The attestation statement every matching revealer BLS-signs; one aggregate signature
/// over it proves that the signers got the same digest for the same request in this log.
pub fn attestation_statement(origin: &str, request_id: &[u8; 32], digest: &[u8; 32]) -> String {
    format!(
        "synchronicity/attestation/v1\n{origin}\nrequest {}\nmanifest {}\n",
        hex::encode(request_id),
        hex::encode(digest)
    )
}

/// The group's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// At least `t` members revealed the same successful manifest.
    Reproduced,
    /// At least `t` members revealed the same failure class.
    Failed,
    /// No outcome reached `t`.
    NotReproduced,
}

/// Provable misbehaviour, recorded in the log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Misbehaviour {
    /// The reveal does not open the member's commitment.
    RevealMismatch,
    /// The attestation signature does not verify.
    BadAttestation,
    /// A second, different commitment.
    DoubleCommitment,
}

/// A dissenting revealer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dissent {
    /// Committee position.
    pub member: u32,
    /// Its digest.
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
}

/// What is appended to the log for a decided request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Entry format version ([`ENTRY_FORMAT`]).
    pub format: u32,
    /// The request, with every pin (the lockfile by sha256).
    pub request: BuildRequest,
    /// The verdict.
    pub verdict: Verdict,
    /// The majority digest when a group reached `t`: the manifest digest
    /// (`SHA-256(manifest text)`) when reproduced, a [`failure_digest`] when failed; empty
    /// otherwise.
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
    /// `bitmap || aggregate` of the majority's BLS signatures over the attestation statement
    /// (empty when no group reached `t`).
    #[serde(with = "serde_bytes")]
    pub attestation: Vec<u8>,
    /// Members that revealed another digest.
    pub dissenters: Vec<Dissent>,
    /// Members that committed but did not (validly) reveal.
    pub silent: Vec<u32>,
    /// Misbehaviour seen, by member.
    pub misbehaviour: Vec<(u32, Misbehaviour)>,
    /// Height at which it was decided.
    pub height: u64,
    /// The epoch whose committee ordered the request and attested the verdict: bitmap
    /// positions in `attestation`, `dissenters`, `silent` and `misbehaviour` are that
    /// committee's. Absent (and not written) for epoch 0, so entries of a group that never
    /// changed its committee are byte for byte what they were before epochs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Why entry bytes are not a build record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not CBOR of the entry shape.
    #[error("the entry is not a build record: {0}")]
    Codec(#[from] CodecError),
    /// Another entry format.
    #[error("entry format {0} is not supported (this verifier reads format {ENTRY_FORMAT})")]
    Format(u32),
    /// The request inside is invalid.
    #[error("the entry's request: {0}")]
    Request(#[from] RequestError),
    /// A field is inconsistent with the verdict.
    #[error("the entry is malformed: {0}")]
    Malformed(&'static str),
}

impl LogEntry {
    /// Decodes entry bytes and checks their shape: format, a valid request, a 32-byte
    /// digest and an attestation when a group reached `t`, none otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let e: Self = codec::from_slice(bytes, MAX_ENTRY_SIZE)?;
        if e.format != ENTRY_FORMAT {
            return Err(EntryError::Format(e.format));
        }
        e.request.validate()?;
        match e.verdict {
            Verdict::Reproduced | Verdict::Failed => {
                if e.digest.len() != 32 {
                    return Err(EntryError::Malformed("digest is not 32 bytes"));
                }
                if e.attestation.is_empty() {
                    return Err(EntryError::Malformed("no attestation"));
                }
            }
            Verdict::NotReproduced => {
                if !e.digest.is_empty() || !e.attestation.is_empty() {
                    return Err(EntryError::Malformed(
                        "a digest or attestation without a verdict",
                    ));
                }
            }
        }
        if e.verdict == Verdict::Failed && failure_class(&e.digest).is_none() {
            return Err(EntryError::Malformed(
                "failed verdict with an unknown digest",
            ));
        }
        Ok(e)
    }

    /// The canonical CBOR bytes (what the log's leaf hashes).
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::to_vec(self)
    }

    /// The attestation statement of this entry's majority digest, if it has one.
    pub fn statement(&self, origin: &str) -> Option<String> {
        let digest: [u8; 32] = self.digest.as_slice().try_into().ok()?;
        Some(attestation_statement(origin, &self.request.id(), &digest))
    }

    /// The majority digest as 32 bytes (reproduced or failed entries).
    pub fn digest32(&self) -> Option<[u8; 32]> {
        self.digest.as_slice().try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_format() {
        let s = attestation_statement("example.org/log", &[0xab; 32], &[0xcd; 32]);
        assert_eq!(
            s,
            format!(
                "synchronicity/attestation/v1\nexample.org/log\nrequest {}\nmanifest {}\n",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
    }

    #[test]
    fn failure_classes_roundtrip() {
        for c in FAILURE_CLASSES {
            assert_eq!(failure_class(&failure_digest(c)), Some(c));
        }
        assert_eq!(failure_class(&[0; 32]), None);
    }

    /// Each class is serialised as its name, exactly as the string it replaced (reveals and
    /// stored rows written before the enum decode unchanged), and `ALL` is in index order.
    #[test]
    fn failure_classes_serialise_as_their_names() {
        let names = [
            "compile-error",
            "timeout",
            "out-of-memory",
            "too-many-processes",
            "disk-limit",
            "sandbox-error",
            "output-limit",
            "forbidden-output",
            "invalid-request",
        ];
        assert_eq!(FAILURE_CLASSES, names);
        for (i, c) in FailureClass::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(c.to_string(), names[i]);
            assert_eq!(FailureClass::from_name(names[i]), Some(c));
            assert_eq!(FailureClass::of_digest(&failure_digest(names[i])), Some(c));
            let bytes = codec::to_vec(&c);
            assert_eq!(bytes, codec::to_vec(names[i]));
            assert_eq!(codec::from_slice::<FailureClass>(&bytes, 64), Ok(c));
        }
        assert!(codec::from_slice::<FailureClass>(&codec::to_vec("segfault"), 64).is_err());
        assert_eq!(FailureClass::from_name("segfault"), None);
    }
}
