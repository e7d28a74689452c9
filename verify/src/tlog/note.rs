//! C2SP signed notes, and the cosigned checkpoint: a checkpoint body signed by the
//! committee's BLS threshold signature line
//! `— <origin> base64(keyID[4] || bitmap || aggregate[96])`.
//!
//! Parsing follows signed-note: valid UTF-8, no control characters but newline, the text
//! ends at the LAST blank line, at least one signature line; lines of unknown keys (another
//! name or another key ID) are ignored; a known key's line must verify and must not repeat.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::FormatError;
use super::checkpoint::Checkpoint;
use crate::committee::Committee;
use crate::crypto::{BlsPublicKey, ThresholdError, ThresholdSignature};

/// Largest note we parse (a 100-member committee's line is ~200 bytes).
pub const MAX_NOTE_SIZE: usize = 64 * 1024;
/// Most signature lines we parse (the committee's line, one Ed25519 line per member, and
/// witness cosignatures).
pub const MAX_SIGNATURES: usize = 512;
/// Signed-note key type of a plain Ed25519 key (what Go's `note.NewVerifier` accepts).
pub const ED25519_KEY_TYPE: u8 = 0x01;
/// Signed-note key type of a timestamped Ed25519 cosignature (tlog-cosignature/v1).
pub const COSIGNATURE_V1_KEY_TYPE: u8 = 0x04;

/// A signed-note key ID: `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn note_key_id(name: &str, key_type: u8, public_key: &[u8]) -> [u8; 4] {
    let mut m = name.as_bytes().to_vec();
    m.push(b'\n');
    m.push(key_type);
    m.extend_from_slice(public_key);
    let h = crate::sha256(&m);
    [h[0], h[1], h[2], h[3]]
}

/// A signed-note verifier key: `name+<8 hex key ID>+base64(type || public key)`.
pub fn verifier_key(name: &str, key_type: u8, public_key: &[u8]) -> String {
    let mut k = vec![key_type];
    k.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(note_key_id(name, key_type, public_key)),
        B64.encode(k)
    )
}

/// The signed-note key name of committee member `member` (its Ed25519 line on the
/// checkpoint): `<origin>/<member name>`.
pub fn member_key_name(origin: &str, member: &str) -> String {
    format!("{origin}/{member}")
}
const DASH: &str = "\u{2014} ";

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first 4 bytes of the decoded signature).
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// `— <name> <base64(key id || signature)>\n`.
    pub fn to_line(&self) -> String {
        let mut bytes = self.key_id.to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("{DASH}{} {}\n", self.name, B64.encode(bytes))
    }
}

/// A parsed (NOT verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// Signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a signed note strictly.
    pub fn parse(note: &str) -> Result<Self, FormatError> {
        if note.len() > MAX_NOTE_SIZE {
            return Err(FormatError::Note("larger than 64 KiB"));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(FormatError::Note("contains control characters"));
        }
        if !note.ends_with('\n') {
            return Err(FormatError::Note("does not end in a newline"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(FormatError::Note("no blank line before the signatures"))?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        let mut signatures = Vec::new();
        for line in sigs.strip_suffix('\n').unwrap_or(sigs).split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(FormatError::Note("too many signature lines"));
            }
            let rest = line.strip_prefix(DASH).ok_or(FormatError::Note(
                "signature line does not start with an em dash",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(FormatError::Note("signature line has no signature"))?;
            if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
                return Err(FormatError::Note("invalid key name"));
            }
            let bytes = B64
                .decode(b64)
                .map_err(|_| FormatError::Note("signature is not base64"))?;
            if bytes.len() < 5 {
                return Err(FormatError::Note("signature shorter than a key ID"));
            }
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id: [bytes[0], bytes[1], bytes[2], bytes[3]],
                signature: bytes[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(FormatError::Note("no signature lines"));
        }
        Ok(Self {
            text: text.to_string(),
            signatures,
        })
    }

    /// The note text: text, blank line, signature lines.
    pub fn format(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.to_line());
        }
        s
    }
}

/// Why a cosigned checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note or checkpoint text is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// No signature line of the committee's key (origin + key ID).
    #[error("no signature by the committee key {origin} {key_id}")]
    NoCommitteeSignature {
        /// Expected key name.
        origin: String,
        /// Expected key ID, hex.
        key_id: String,
    },
    /// The committee's key signed twice.
    #[error("the committee key signed the note more than once")]
    DuplicateCommitteeSignature,
    /// The threshold signature is malformed or does not verify.
    #[error("committee signature: {0}")]
    Signature(#[from] ThresholdError),
    /// The checkpoint's origin is not the committee's.
    #[error("checkpoint origin {found:?} is not the committee's {expected:?}")]
    WrongOrigin {
        /// The committee's.
        expected: String,
        /// The checkpoint's.
        found: String,
    },
}

/// A parsed cosigned checkpoint whose every check but the pairing passed: the caller
/// verifies `signature.aggregate` under `signers_key` over `body` (alone or in a batch),
/// then calls [`PendingCheckpoint::verified`].
#[derive(Debug)]
pub(crate) struct PendingCheckpoint {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) body: String,
    pub(crate) signature: ThresholdSignature,
    pub(crate) signers_key: BlsPublicKey,
    key_id: [u8; 4],
    note: String,
}

impl PendingCheckpoint {
    /// Parses the note, finds the committee's single line, decodes the threshold
    /// signature (≥ t signers) and the checkpoint, and checks the origin.
    pub(crate) fn parse(note: &str, committee: &Committee) -> Result<Self, CheckpointError> {
        let parsed = SignedNote::parse(note)?;
        let mut ours = parsed
            .signatures
            .iter()
            .filter(|s| s.name == committee.origin() && s.key_id == committee.key_id());
        let sig = ours
            .next()
            .ok_or_else(|| CheckpointError::NoCommitteeSignature {
                origin: committee.origin().to_string(),
                key_id: hex::encode(committee.key_id()),
            })?;
        if ours.next().is_some() {
            return Err(CheckpointError::DuplicateCommitteeSignature);
        }
        let signature = ThresholdSignature::from_bytes(&sig.signature, committee.len())?;
        let signers_key = signature.signers_key(committee.keys(), committee.threshold())?;
        let checkpoint = Checkpoint::parse(&parsed.text)?;
        if checkpoint.origin != committee.origin() {
            return Err(CheckpointError::WrongOrigin {
                expected: committee.origin().into(),
                found: checkpoint.origin,
            });
        }
        let key_id = sig.key_id;
        Ok(Self {
            checkpoint,
            body: parsed.text,
            signature,
            signers_key,
            key_id,
            note: note.to_string(),
        })
    }

    /// The checkpoint, once its signature verified (the caller's duty).
    pub(crate) fn verified(self) -> CosignedCheckpoint {
        CosignedCheckpoint {
            checkpoint: self.checkpoint,
            signature: self.signature,
            key_id: self.key_id,
            note: self.note,
        }
    }
}

/// A checkpoint whose committee threshold signature has been VERIFIED. Only
/// [`CosignedCheckpoint::verify`] and [`CosignedCheckpoint::assemble`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    checkpoint: Checkpoint,
    signature: ThresholdSignature,
    key_id: [u8; 4],
    note: String,
}

impl CosignedCheckpoint {
    /// Parses `note` and verifies the committee's threshold signature over its text.
    pub fn verify(note: &str, committee: &Committee) -> Result<Self, CheckpointError> {
        let pending = PendingCheckpoint::parse(note, committee)?;
        pending
            .signers_key
            .verify(pending.body.as_bytes(), &pending.signature.aggregate)
            .map_err(|_| CheckpointError::Signature(ThresholdError::BadAggregate))?;
        Ok(pending.verified())
    }

    /// Builds the note from a checkpoint and a threshold signature over its body, and
    /// verifies it (so a bad aggregate is never stored or served).
    pub fn assemble(
        checkpoint: &Checkpoint,
        signature: &ThresholdSignature,
        committee: &Committee,
    ) -> Result<Self, CheckpointError> {
        Self::assemble_with(checkpoint, signature, committee, Vec::new())
    }

    /// [`CosignedCheckpoint::assemble`] with more signature lines after the committee's
    /// (members' Ed25519 lines, witness cosignatures; not verified here).
    pub fn assemble_with(
        checkpoint: &Checkpoint,
        signature: &ThresholdSignature,
        committee: &Committee,
        more: Vec<NoteSignature>,
    ) -> Result<Self, CheckpointError> {
        let mut signatures = vec![NoteSignature {
            name: committee.origin().to_string(),
            key_id: committee.key_id(),
            signature: signature.to_bytes(),
        }];
        signatures.extend(more);
        let note = SignedNote {
            text: checkpoint.to_body(),
            signatures,
        };
        Self::verify(&note.format(), committee)
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The verified threshold signature.
    pub fn signature(&self) -> &ThresholdSignature {
        &self.signature
    }
    /// The note text, verbatim (with every signature line it carried).
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The note without the members' own Ed25519 lines (key names `<origin>/…`): what a
    /// proof file carries. The committee's threshold line and witness cosignatures stay;
    /// member lines are for verifiers without BLS, and would grow every proof by n lines.
    pub fn compact_note(&self) -> String {
        let member_prefix = format!("{}/", self.checkpoint.origin);
        let mut signatures: Vec<NoteSignature> = SignedNote::parse(&self.note)
            .map(|n| n.signatures)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.name.starts_with(&member_prefix))
            .collect();
        if signatures.is_empty() {
            signatures.push(NoteSignature {
                name: self.checkpoint.origin.clone(),
                key_id: self.key_id,
                signature: self.signature.to_bytes(),
            });
        }
        SignedNote {
            text: self.checkpoint.to_body(),
            signatures,
        }
        .format()
    }
}
