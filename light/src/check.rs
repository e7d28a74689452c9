//! The pure checks the [`crate::Client`] runs on each member's answer, with no I/O: a
//! proof against the trusted committee and what was asked, a served checkpoint against the
//! held one, a text against the sha256 that pins it, an artifact's chunks against the size
//! they declare and the whole file against the manifest's sha256. A tool with its own
//! transport can drive them directly.

use synchronicity_verify::tlog::{CosignedCheckpoint, Hash, merkle};
use synchronicity_verify::{
    BatchVerifier, Committee, CommitteeChain, Expected, Verdict, VerifiedRecord, sha256,
    verify_proof_in_chain,
};

use crate::default_variant::{self, Lockfile};
use crate::protocol::{LightRequest, LightResponse, MAX_ARTIFACT};
use crate::{PeerError, SplitView};

/// What a proof must be about, and the key members look it up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofQuery {
    key: String,
    expected: Expected,
    default_variant: bool,
}

impl ProofQuery {
    /// `name@version`'s default variant (see [`crate::default_variant`]): an entry of
    /// another variant is refused even when it verifies.
    pub fn default_variant(name: &str, version: &str) -> Self {
        Self {
            key: format!("{name}@{version}"),
            expected: Expected::crate_version(name, version),
            default_variant: true,
        }
    }

    /// Exactly the request with this id (which names its own variant).
    pub fn request(id: [u8; 32]) -> Self {
        Self {
            key: hex::encode(id),
            expected: Expected::request_id(id),
            default_variant: false,
        }
    }

    /// Also require the `.crate` file's sha256.
    pub fn with_source_sha256(mut self, sha256: [u8; 32]) -> Self {
        self.expected = self.expected.with_source_sha256(sha256);
        self
    }

    /// The lookup key sent to members (`crate@version` or the request id in hex).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the query is for a default variant (not an exact request).
    pub(crate) fn default_variant_asked(&self) -> bool {
        self.default_variant
    }
}

/// A proof text that passed every check, with its verified record.
#[derive(Debug, Clone)]
pub struct CheckedProof {
    text: String,
    record: VerifiedRecord,
    lockfile: Lockfile,
}

impl CheckedProof {
    /// The proof file's text (what to keep: it verifies offline).
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The verified record (checkpoint, index, entry, attesters).
    pub fn record(&self) -> &VerifiedRecord {
        &self.record
    }
    /// The entry's verdict.
    pub fn verdict(&self) -> Verdict {
        self.record.entry().verdict
    }
    /// Which lockfile the entry was built with (a request id's entry: as it says).
    pub fn lockfile(&self) -> Lockfile {
        self.lockfile
    }
    /// The text and the record.
    pub fn into_parts(self) -> (String, VerifiedRecord) {
        (self.text, self.record)
    }
}

/// The whole check of one proof answer: [`verify_proof`] against `committee` and what
/// `query` asks, the attesters' own signature ([`VerifiedRecord::check_attestation`]), and
/// for a default-variant query the variant's settings.
pub fn check_proof(
    text: String,
    chain: &CommitteeChain,
    query: &ProofQuery,
) -> Result<CheckedProof, PeerError> {
    let record = verify_proof_in_chain(&text, chain, &query.expected)?;
    // The entry's epoch is in the chain: the record was verified against it.
    let committee = chain
        .committee(record.entry_epoch())
        .unwrap_or_else(|| chain.latest());
    record.check_attestation(committee)?;
    let lockfile = if query.default_variant {
        default_variant::check(&record.entry().request, committee)?
    } else if record.entry().request.lockfile_shipped {
        Lockfile::Shipped
    } else {
        Lockfile::Generated
    };
    Ok(CheckedProof {
        text,
        record,
        lockfile,
    })
}

/// The check of a proof of `name@version`'s default variant among many (an audit's batch,
/// or its cache): `verifier` checks each distinct checkpoint's signature once; the
/// attesters' own signature is vouched for by the cosigners (as in [`verify_proof`]).
/// `committee` is the one `verifier` was made for.
pub fn check_batch_proof(
    verifier: &mut BatchVerifier<'_>,
    committee: &Committee,
    name: &str,
    version: &str,
    text: String,
) -> Result<CheckedProof, PeerError> {
    let record = verifier.verify(&text, &Expected::crate_version(name, version))?;
    let lockfile = default_variant::check(&record.entry().request, committee)?;
    Ok(CheckedProof {
        text,
        record,
        lockfile,
    })
}

/// One member's answer to [`LightRequest::Lookups`] for `specs`, checked whole: its
/// checkpoint verifies through `chain` and is not older than `held`; each answer proves
/// every entry of its `crate@version` (or none) against the checkpoint's index; and the
/// default variant's proof is of the entry [`default_variant`] picks from that list (none
/// when it picks none), checked by [`check_batch_proof`]. At least one answer, at most one
/// per spec, in order.
pub fn check_lookups(
    verifier: &mut BatchVerifier<'_>,
    chain: &CommitteeChain,
    committee: &Committee,
    specs: &[String],
    held: u64,
    answer: LightResponse,
) -> Result<Vec<crate::ProvenLookup>, PeerError> {
    let (note, answers) = match answer {
        LightResponse::Lookups {
            checkpoint,
            answers,
        } => (checkpoint, answers),
        other => return Err(unexpected(other)),
    };
    if answers.is_empty() || answers.len() > specs.len() {
        return Err(PeerError::BatchLength);
    }
    let (cp, _) = chain.verify_checkpoint(&note)?;
    let size = cp.checkpoint().size;
    if size < held {
        return Err(PeerError::OlderCheckpoint { served: size, held });
    }
    let target = &committee.build().target;
    let mut out = Vec::with_capacity(answers.len());
    for (spec, a) in specs.iter().zip(answers) {
        let entries = a
            .variants
            .verify(&cp, spec)
            .map_err(|error| PeerError::Index {
                spec: spec.clone(),
                error,
            })?;
        let pairs: Vec<(u64, synchronicity_verify::LogEntry)> =
            entries.iter().map(|e| (e.index, e.entry.clone())).collect();
        let chosen = synchronicity_verify::index::default_variant(&pairs, Some(target));
        let wrong = |sent| PeerError::WrongDefault {
            spec: spec.clone(),
            chosen,
            sent,
        };
        let default = match (chosen, a.default_proof) {
            (None, None) => None,
            (None, Some(_)) => return Err(wrong(None)),
            (Some(_), None) => return Err(wrong(None)),
            (Some(i), Some(text)) => {
                let (name, version) = spec.split_once('@').unwrap_or((spec, ""));
                let p = check_batch_proof(verifier, committee, name, version, text)?;
                let r = p.record();
                if r.index() != i || r.checkpoint().checkpoint() != cp.checkpoint() {
                    return Err(wrong(Some(r.index())));
                }
                Some(p)
            }
        };
        out.push(crate::ProvenLookup {
            spec: spec.clone(),
            checkpoint_size: size,
            entries,
            default,
        });
    }
    Ok(out)
}

/// A member's answer of the wrong kind, as an error.
pub fn unexpected(answer: LightResponse) -> PeerError {
    match answer {
        LightResponse::NotFound(why) => PeerError::NotFound(why),
        other => PeerError::Unexpected(other.kind()),
    }
}

/// The hashes of a consistency proof as sent.
pub fn proof_hashes(proof: &[serde_bytes::ByteBuf]) -> Result<Vec<Hash>, PeerError> {
    proof
        .iter()
        .map(|h| h.as_slice().try_into().map_err(|_| PeerError::BadHash))
        .collect()
}

/// Where a served checkpoint stands against the held one.
#[derive(Debug)]
pub enum Standing {
    /// Not older, and proven consistent (or the same).
    Consistent,
    /// Refused: older than the held one (a stale or faulty member, not evidence).
    Older(PeerError),
    /// Its proof does not verify: the member may be faulty, or the committee may have
    /// signed two histories; another member's proof decides.
    Unproven(PeerError),
    /// The same size with another root: two histories (evidence).
    SplitView(String),
}

/// Judges `served` against `held` with the member's consistency `proof` between them.
pub fn standing(
    held: &CosignedCheckpoint,
    served: &CosignedCheckpoint,
    proof: &[Hash],
) -> Standing {
    let (o, c) = (held.checkpoint(), served.checkpoint());
    if c.size == o.size && c.root != o.root {
        return Standing::SplitView(different_roots(c.size));
    }
    if c.size < o.size {
        return Standing::Older(PeerError::OlderCheckpoint {
            served: c.size,
            held: o.size,
        });
    }
    match merkle::verify_consistency(o.size, c.size, &o.root, &c.root, proof) {
        Ok(()) => Standing::Consistent,
        Err(error) => Standing::Unproven(PeerError::Inconsistent {
            old: o.size,
            new: c.size,
            error,
        }),
    }
}

/// The reason of a split view of two roots at one size.
pub(crate) fn different_roots(size: u64) -> String {
    format!("two cosigned checkpoints of size {size} with different roots")
}

/// A split view between `held` and `served`.
pub(crate) fn split_view(
    why: String,
    held: &CosignedCheckpoint,
    served: &CosignedCheckpoint,
    served_by: Option<&synchronicity_net::Multiaddr>,
) -> crate::LightError {
    crate::LightError::SplitView(Box::new(SplitView {
        why,
        held: held.clone(),
        served: served.clone(),
        served_by: served_by.cloned(),
    }))
}

/// Checks a text answer against the sha256 asked for.
pub fn blob(answer: LightResponse, want: &[u8]) -> Result<Vec<u8>, PeerError> {
    match answer {
        LightResponse::Blob(b) if sha256(&b)[..] == *want => Ok(b.into_vec()),
        LightResponse::Blob(_) => Err(PeerError::WrongBlob),
        other => Err(unexpected(other)),
    }
}

/// One member's download of an artifact, from offset 0: each chunk must start where the
/// bytes so far end, keep the size the first one declared (at most [`MAX_ARTIFACT`]), and
/// stay within it; the complete file must hash to the sha256 asked for (the manifest's).
#[derive(Debug)]
pub struct Download {
    sha256: [u8; 32],
    data: Vec<u8>,
    total: Option<u64>,
}

impl Download {
    /// A download of the artifact with this sha256.
    pub fn new(sha256: [u8; 32]) -> Self {
        Self {
            sha256,
            data: Vec::new(),
            total: None,
        }
    }

    /// The request for the next chunk.
    pub fn request(&self) -> LightRequest {
        LightRequest::Artifact {
            sha256: self.sha256.to_vec(),
            offset: self.data.len() as u64,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.data.len()
    }

    /// Takes the answer to [`Download::request`]: `Ok(Some(total))` while more is due,
    /// `Ok(None)` once the whole file is in and hashes right.
    pub fn accept(&mut self, answer: LightResponse) -> Result<Option<u64>, PeerError> {
        let LightResponse::Chunk {
            total,
            offset,
            data,
        } = answer
        else {
            return Err(unexpected(answer));
        };
        let at = self.data.len() as u64;
        let fits = offset == at
            && total <= MAX_ARTIFACT
            && self.total.is_none_or(|known| known == total)
            && offset + data.len() as u64 <= total
            && (!data.is_empty() || offset == total);
        if !fits {
            return Err(PeerError::BadChunk);
        }
        self.total = Some(total);
        self.data.extend_from_slice(&data);
        if (self.data.len() as u64) < total {
            return Ok(Some(total));
        }
        if sha256(&self.data) != self.sha256 {
            return Err(PeerError::ArtifactHash(hex::encode(self.sha256)));
        }
        Ok(None)
    }

    /// The artifact's size, once a chunk declared it.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The bytes (whole and checked once [`Download::accept`] returned `Ok(None)`).
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
}
