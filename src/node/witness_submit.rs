//! Members submit each new cosigned checkpoint to the witnesses `node.toml` lists
//! (`[[witnesses]] url, vkey`), with the consistency proof from the size the witness holds
//! (learnt from a 409 answer), check the returned cosignature against the witness's key,
//! and add it to the stored note (served by the light protocol, `/checkpoint`, and proofs).
//!
//! A task per node: it looks at the latest cosigned checkpoint every second and submits it
//! to each witness that has not cosigned it yet, one request at a time per witness
//! (blocking HTTP on a blocking thread). A witness that failed is retried after 30 s; nothing of consensus waits on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::log::{CosignedCheckpoint, LogStore, SignedNote};
use crate::witness::{AddCheckpoint, WitnessKey};

/// One witness a member submits to.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    /// Base URL (`http://host:port`); requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// Its verifier key.
    pub key: WitnessKey,
}

/// The cosignature of `ep` on the checkpoint of `size` (note `note`), submitting from the
/// witness's size `known` (updated from a 409).
pub fn submit_one(
    ep: &WitnessEndpoint,
    store: &LogStore,
    note: &str,
    size: u64,
    known: &mut u64,
) -> Result<crate::log::NoteSignature, String> {
    for _ in 0..2 {
        let old = (*known).min(size);
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            store
                .consistency_proof(old, size)
                .map_err(|e| e.to_string())?
        };
        let body = AddCheckpoint {
            old,
            proof,
            note: note.to_string(),
        }
        .to_body();
        let resp = attohttpc::post(format!("{}/add-checkpoint", ep.url.trim_end_matches('/')))
            .header("Content-Type", "text/plain")
            .timeout(Duration::from_secs(10))
            .text(body)
            .send()
            .map_err(|e| format!("{}: {e}", ep.url))?;
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|e| format!("{}: {e}", ep.url))?;
        match status {
            200 => {
                let parsed = SignedNote::parse(note).map_err(|e| e.to_string())?;
                let lines = SignedNote::parse(&format!("{}\n{}", parsed.text, text))
                    .map_err(|e| format!("{}: bad cosignature: {e}", ep.url))?;
                if ep.key.cosigned_at(&lines).is_none() {
                    return Err(format!(
                        "{}: the cosignature does not verify under its key",
                        ep.url
                    ));
                }
                *known = size;
                return lines
                    .signatures
                    .into_iter()
                    .find(|s| s.name == ep.key.name && s.key_id == ep.key.key_id)
                    .ok_or_else(|| format!("{}: no cosignature line", ep.url));
            }
            409 => {
                *known = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("{}: 409 without a size", ep.url))?;
                if *known > size {
                    return Err(format!(
                        "{}: the witness holds size {known}, beyond {size}",
                        ep.url
                    ));
                }
            }
            s => return Err(format!("{}: HTTP {s}: {}", ep.url, text.trim())),
        }
    }
    Err(format!("{}: the witness's size keeps changing", ep.url))
}

/// Runs the submissions until the node stops.
pub(crate) async fn run(shared: Arc<Shared>, witnesses: Vec<WitnessEndpoint>) {
    // Per witness: the size it holds (as far as we know), the size it cosigned for us, and
    // when it last failed.
    let mut state: Vec<(u64, u64, Option<Instant>)> = vec![(0, 0, None); witnesses.len()];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(Some(note)) = shared.store.latest_checkpoint() else {
            continue;
        };
        let Ok(cp) = CosignedCheckpoint::verify(&note, &shared.committee) else {
            continue;
        };
        let size = cp.checkpoint().size;
        for (i, ep) in witnesses.iter().enumerate() {
            let (known, cosigned, failed) = state[i];
            if cosigned >= size || failed.is_some_and(|t| t.elapsed() < Duration::from_secs(30)) {
                continue;
            }
            let (ep2, shared2, note2) = (ep.clone(), shared.clone(), note.clone());
            let result = tokio::task::spawn_blocking(move || {
                let mut known = known;
                let r =
                    submit_one(&ep2, &shared2.store, &note2, size, &mut known).and_then(|line| {
                        shared2
                            .store
                            .add_note_lines(size, &[line])
                            .map_err(|e| e.to_string())
                    });
                (known, r)
            })
            .await;
            match result {
                Ok((known, Ok(()))) => state[i] = (known, size, None),
                Ok((known, Err(e))) => {
                    tracing::warn!(witness = %ep.url, "witness did not cosign: {e}");
                    state[i] = (known, cosigned, Some(Instant::now()));
                }
                Err(_) => return,
            }
        }
    }
}
