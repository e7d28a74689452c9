//! Answers to light clients (`/synchronicity/proof/2`, the messages of
//! `synchronicity-light`): a proof file for an entry under
//! the latest cosigned checkpoint (`crate@version` answers with the default variant, see
//! `log::LookupKey`), the latest checkpoint with a consistency proof from the size the
//! client remembers, a text an entry pins by sha256 (lockfile, manifest), a batch of proofs,
//! or a chunk of an artifact from the member's store. Answers are built from committed data
//! (and content-addressed files) only; the client verifies everything itself. Answers are
//! computed on a blocking thread, never in the node's event loop.

use synchronicity_light::{LightRequest, LightResponse, MAX_CHUNK, MAX_PROOF_BATCH};

use super::app::Shared;
use crate::log::{CosignedCheckpoint, LookupKey};

/// The answer to `req`.
pub(crate) fn serve(shared: &Shared, req: &LightRequest) -> LightResponse {
    match answer(shared, req) {
        Ok(r) => r,
        Err(e) => LightResponse::NotFound(e),
    }
}

fn latest(shared: &Shared) -> Result<CosignedCheckpoint, String> {
    shared
        .latest_cosigned()?
        .ok_or_else(|| "no cosigned checkpoint yet".to_string())
}

/// The proof file for `key` under `cp`.
fn proof_for(shared: &Shared, cp: &CosignedCheckpoint, key: &str) -> Result<String, String> {
    let lookup = LookupKey::parse(key)
        .ok_or_else(|| format!("{key:?} is neither CRATE@VERSION nor a request id"))?;
    let index = shared
        .store
        .resolve_for(&lookup, Some(&shared.committee.build().target))
        .map_err(|e| e.to_string())??;
    if cp.checkpoint().size <= index {
        return Err(format!(
            "the entry for {key} is not yet under a cosigned checkpoint"
        ));
    }
    let file = shared
        .store
        .proof_file(index, cp)
        .map_err(|e| e.to_string())?;
    Ok(file.format())
}

fn answer(shared: &Shared, req: &LightRequest) -> Result<LightResponse, String> {
    match req {
        LightRequest::Consistency { old, new } => {
            let size = shared.store.size().map_err(|e| e.to_string())?;
            if old > new || *new > size {
                return Err(format!(
                    "no consistency proof from {old} to {new} in a log of size {size}"
                ));
            }
            let proof = shared
                .store
                .consistency_proof(*old, *new)
                .map_err(|e| e.to_string())?;
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
                .map_err(|_| "a blob is named by 32 bytes".to_string())?;
            let blob = shared
                .store
                .blob(&sha)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no text with sha256 {}", hex::encode(sha)))?;
            Ok(LightResponse::Blob(serde_bytes::ByteBuf::from(blob)))
        }
        LightRequest::Proof { key } => {
            let cp = latest(shared)?;
            Ok(LightResponse::Proof(proof_for(shared, &cp, key)?))
        }
        LightRequest::Proofs { keys } => {
            if keys.len() > MAX_PROOF_BATCH {
                return Err(format!("at most {MAX_PROOF_BATCH} keys in one request"));
            }
            let cp = latest(shared)?;
            Ok(LightResponse::Proofs(
                keys.iter().map(|k| proof_for(shared, &cp, k)).collect(),
            ))
        }
        LightRequest::Artifact { sha256, offset } => {
            let sha: [u8; 32] = sha256
                .as_slice()
                .try_into()
                .map_err(|_| "an artifact is named by 32 bytes".to_string())?;
            let store = shared
                .artifacts
                .as_ref()
                .ok_or_else(|| "this member keeps no artifacts".to_string())?;
            let (total, data) = store
                .chunk(&sha, *offset, MAX_CHUNK)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no artifact with sha256 {}", hex::encode(sha)))?;
            Ok(LightResponse::Chunk {
                total,
                offset: *offset,
                data: serde_bytes::ByteBuf::from(data),
            })
        }
        LightRequest::Checkpoint { old_size } => {
            let cp = latest(shared)?;
            let new = cp.checkpoint().size;
            let proof = match old_size {
                Some(old) if *old > new => {
                    return Err(format!(
                        "remembered size {old} is beyond this member's checkpoint size {new}"
                    ));
                }
                Some(old) => shared
                    .store
                    .consistency_proof(*old, new)
                    .map_err(|e| e.to_string())?,
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
