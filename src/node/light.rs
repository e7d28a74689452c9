//! Answers to light clients (`/synchronicity/proof/2`, the messages of
//! `synchronicity-light`): a proof file for an entry under
//! the latest cosigned checkpoint (`crate@version` answers with the default variant, see
//! `log::LookupKey`), the latest checkpoint with a consistency proof from the size the
//! client remembers, a text an entry pins by sha256 (lockfile, manifest), a batch of proofs,
//! or a chunk of an artifact from the member's store. Answers are built from committed data
//! (and content-addressed files) only; the client verifies everything itself. Answers are
//! computed on a blocking thread, never in the node's event loop.

use synchronicity_light::{
    LightRequest, LightResponse, LookupAnswer, MAX_CHUNK, MAX_LIGHT_RESPONSE, MAX_PROOF_BATCH,
    MAX_SPEC,
};

use super::shared::{LatestCheckpointError, Shared};
use crate::log::{CosignedCheckpoint, LookupKey, StoreError};

/// Why a light request has no answer (sent back as one line, `NotFound`).
#[derive(Debug, thiserror::Error)]
enum LightError {
    /// No checkpoint is cosigned yet.
    #[error("no cosigned checkpoint yet")]
    NoCheckpoint,
    /// The latest checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] LatestCheckpointError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key that is no lookup key.
    #[error("{0:?} is neither CRATE@VERSION nor a request id")]
    BadKey(String),
    /// Nothing answers the key (the lookup's own line).
    #[error("{0}")]
    NoEntry(String),
    /// The entry is beyond the latest cosigned checkpoint.
    #[error("the entry for {0} is not yet under a cosigned checkpoint")]
    NotCosigned(String),
    /// A consistency proof between sizes the log does not have.
    #[error("no consistency proof from {old} to {new} in a log of size {size}")]
    NoConsistency {
        /// From.
        old: u64,
        /// To.
        new: u64,
        /// Our log's size.
        size: u64,
    },
    /// A blob or artifact name that is not 32 bytes.
    #[error("{0} is named by 32 bytes")]
    BadName(&'static str),
    /// No text with that hash.
    #[error("no text with sha256 {0}")]
    NoBlob(String),
    /// One key's answer alone would not fit a response.
    #[error("the entries of {0} do not fit one answer")]
    TooLarge(String),
    /// Too many keys in one request.
    #[error("at most {MAX_PROOF_BATCH} keys in one request")]
    TooManyKeys,
    /// This member keeps no artifacts.
    #[error("this member keeps no artifacts")]
    NoArtifacts,
    /// The artifact store could not be read.
    #[error(transparent)]
    Artifacts(#[from] std::io::Error),
    /// No artifact with that hash.
    #[error("no artifact with sha256 {0}")]
    NoArtifact(String),
    /// The handoff checkpoint of an epoch is not stored here (ask another member).
    #[error("this member holds no handoff checkpoint for epoch {0}")]
    NoHandoff(u64),
    /// The client remembers a size beyond our checkpoint.
    #[error("remembered size {old} is beyond this member's checkpoint size {new}")]
    Ahead {
        /// The client's size.
        old: u64,
        /// Our checkpoint's.
        new: u64,
    },
}

/// The answer to `req`.
pub(crate) fn serve(shared: &Shared, req: &LightRequest) -> LightResponse {
    match answer(shared, req) {
        Ok(r) => r,
        Err(e) => LightResponse::NotFound(e.to_string()),
    }
}

/// The chain links after epoch `after`, up to what fits one answer: each change entry under
/// its handoff checkpoint (the stored checkpoint that ends with it, verified with the
/// committee that signed it).
fn chain(shared: &Shared, after: u64) -> Result<LightResponse, LightError> {
    let mut links = Vec::new();
    let mut bytes = 0usize;
    for (epoch, index) in shared.store.epochs()? {
        if epoch <= after {
            continue;
        }
        let note = shared
            .store
            .checkpoint_at(index + 1)?
            .ok_or(LightError::NoHandoff(epoch))?;
        let cp = shared
            .verify_checkpoint(&note)
            .map_err(|_| LightError::NoHandoff(epoch))?;
        let proof = shared.store.proof_file(index, &cp)?.format();
        bytes += proof.len() + 64;
        if bytes > synchronicity_light::MAX_LIGHT_RESPONSE - 64 * 1024 && !links.is_empty() {
            break;
        }
        links.push((epoch, proof));
    }
    Ok(LightResponse::Chain {
        latest: shared.committee.epoch(),
        links,
    })
}

fn latest(shared: &Shared) -> Result<CosignedCheckpoint, LightError> {
    shared.latest_cosigned()?.ok_or(LightError::NoCheckpoint)
}

/// The proof file for `key` under `cp`.
fn proof_for(shared: &Shared, cp: &CosignedCheckpoint, key: &str) -> Result<String, LightError> {
    let lookup = LookupKey::parse(key).ok_or_else(|| LightError::BadKey(key.to_string()))?;
    let index = shared
        .store
        .resolve_for(&lookup, Some(&shared.committee.build().target))?
        .map_err(LightError::NoEntry)?;
    if cp.checkpoint().size <= index {
        return Err(LightError::NotCosigned(key.to_string()));
    }
    Ok(shared.store.proof_file(index, cp)?.format())
}

/// Every entry of each of `specs` under the latest cosigned checkpoint, proven by its index,
/// with the default variant's proof file; as many answers as fit one response.
fn lookups(shared: &Shared, specs: &[String]) -> Result<LightResponse, LightError> {
    if specs.len() > MAX_PROOF_BATCH {
        return Err(LightError::TooManyKeys);
    }
    if let Some(s) = specs.iter().find(|s| s.len() > MAX_SPEC) {
        return Err(LightError::BadKey(s.chars().take(MAX_SPEC).collect()));
    }
    let cp = latest(shared)?;
    let snap = shared.store.index_snapshot(cp.checkpoint().size)?;
    let checkpoint = cp.compact_note();
    let target = &shared.committee.build().target;
    let mut answers = Vec::new();
    let mut bytes = checkpoint.len();
    for spec in specs {
        let at = snap.variants(spec)?;
        let decoded: Vec<(u64, crate::protocol::LogEntry)> = at
            .entries
            .iter()
            .filter_map(|(i, b)| crate::protocol::LogEntry::decode(b).ok().map(|e| (*i, e)))
            .collect();
        let default_proof = match crate::log::choose_default(&decoded, Some(target)) {
            Some(i) => Some(shared.store.proof_file(i, &cp)?.format()),
            None => None,
        };
        let answer = LookupAnswer {
            variants: at.into(),
            default_proof,
        };
        // The answer's size, bounded before it joins the response: the client asks again
        // for what did not fit.
        let size = crate::verify::codec::to_vec(&answer).len();
        if bytes + size > MAX_LIGHT_RESPONSE - 4096 && !answers.is_empty() {
            break;
        }
        if bytes + size > MAX_LIGHT_RESPONSE - 4096 {
            return Err(LightError::TooLarge(spec.clone()));
        }
        bytes += size;
        answers.push(answer);
    }
    Ok(LightResponse::Lookups {
        checkpoint,
        answers,
    })
}

fn answer(shared: &Shared, req: &LightRequest) -> Result<LightResponse, LightError> {
    match req {
        LightRequest::Consistency { old, new } => {
            let size = shared.store.size()?;
            if old > new || *new > size {
                return Err(LightError::NoConsistency {
                    old: *old,
                    new: *new,
                    size,
                });
            }
            let proof = shared.store.consistency_proof(*old, *new)?;
            Ok(LightResponse::Consistency(
                proof
                    .into_iter()
                    .map(|h| serde_bytes::ByteBuf::from(h.to_vec()))
                    .collect(),
            ))
        }
        LightRequest::Blob { sha256 } => {
            let sha: [u8; 32] = sha256
                .as_slice()
                .try_into()
                .map_err(|_| LightError::BadName("a blob"))?;
            let blob = shared
                .store
                .blob(&sha)?
                .ok_or_else(|| LightError::NoBlob(hex::encode(sha)))?;
            Ok(LightResponse::Blob(serde_bytes::ByteBuf::from(blob)))
        }
        LightRequest::Proof { key } => {
            let cp = latest(shared)?;
            Ok(LightResponse::Proof(proof_for(shared, &cp, key)?))
        }
        LightRequest::Proofs { keys } => {
            if keys.len() > MAX_PROOF_BATCH {
                return Err(LightError::TooManyKeys);
            }
            let cp = latest(shared)?;
            Ok(LightResponse::Proofs(
                keys.iter()
                    .map(|k| proof_for(shared, &cp, k).map_err(|e| e.to_string()))
                    .collect(),
            ))
        }
        LightRequest::Artifact { sha256, offset } => {
            let sha: [u8; 32] = sha256
                .as_slice()
                .try_into()
                .map_err(|_| LightError::BadName("an artifact"))?;
            let store = shared.artifacts.as_ref().ok_or(LightError::NoArtifacts)?;
            let (total, data) = store
                .chunk(&sha, *offset, MAX_CHUNK)?
                .ok_or_else(|| LightError::NoArtifact(hex::encode(sha)))?;
            Ok(LightResponse::Chunk {
                total,
                offset: *offset,
                data: serde_bytes::ByteBuf::from(data),
            })
        }
        LightRequest::Chain { after } => chain(shared, *after),
        LightRequest::Lookups { specs } => lookups(shared, specs),
        LightRequest::Checkpoint { old_size } => {
            let cp = latest(shared)?;
            let new = cp.checkpoint().size;
            let proof = match old_size {
                Some(old) if *old > new => return Err(LightError::Ahead { old: *old, new }),
                Some(old) => shared.store.consistency_proof(*old, new)?,
                None => Vec::new(),
            };
            Ok(LightResponse::Checkpoint {
                note: cp.note().to_string(),
                proof: proof
                    .into_iter()
                    .map(|h| serde_bytes::ByteBuf::from(h.to_vec()))
                    .collect(),
            })
        }
    }
}
