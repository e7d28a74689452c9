//! Answers to light clients (`/synchronicity/proof/1`): a proof file for an entry under
//! the latest cosigned checkpoint, or the latest checkpoint with a consistency proof from
//! the size the client remembers. Answers are built from committed data only; the client
//! verifies everything itself.

use super::app::Shared;
use super::wire::{LightRequest, LightResponse};
use crate::log::CosignedCheckpoint;

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

fn answer(shared: &Shared, req: &LightRequest) -> Result<LightResponse, String> {
    match req {
        LightRequest::Proof { key } => {
            let index = shared
                .store
                .lookup(key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no log entry for {key}"))?;
            let cp = latest(shared)?;
            if cp.checkpoint().size <= index {
                return Err(format!(
                    "the entry for {key} is not yet under a cosigned checkpoint"
                ));
            }
            let file = shared
                .store
                .proof_file(index, &cp)
                .map_err(|e| e.to_string())?;
            Ok(LightResponse::Proof(file.format()))
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
