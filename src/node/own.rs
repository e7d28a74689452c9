//! This node's own rounds, persisted in `DIR/rounds.redb`: for each request, one typed
//! state ([`OwnState`], whose kind is [`super::lifecycle::Own`]) — submitted through us, or
//! built (the outcome we commit to and the commitment's salt), committed, revealed. A row
//! is kept in the table of its kind, as earlier versions wrote it: `submitted` (the
//! request) and `own_rounds` (the outcome and salt, plus the stage once past `built`; a
//! `built` row is byte for byte what earlier versions wrote, and they ignore the stage).
//!
//! Durability, write by write:
//! - `Submitted`: its own durable redb transaction, committed BEFORE the submitter gets the
//!   id. A crash before it returns leaves no row and no id was given out; after it, the
//!   request survives the crash (the mempool is memory only) and is published again at
//!   every start until the group has it open or decided. At most [`MAX_SUBMITTED`] wait.
//! - `Built`: its own durable redb transaction, committed BEFORE the commitment is
//!   published, so a node restarted after committing can still reveal (a crash before the
//!   commit returns leaves no row, and no commitment left this node).
//! - `Committed`, `Revealed`, and removals: not durable by themselves. A crash that loses
//!   one leaves the stage before, whose next step publishes the same message again (same
//!   salt, same outcome); a row left by a crash is found decided at the next start and
//!   removed then.

use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::lifecycle::Own;
use crate::codec::{self, CodecError};
use crate::protocol::RevealedOutcome;
use crate::request::PinnedRequest;

const OWN: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("own_rounds");
const SUBMITTED: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("submitted");

/// Most submitted requests waiting to be ordered.
pub(crate) const MAX_SUBMITTED: usize = 10_000;

/// What we commit to for a request: the outcome and the commitment's salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Secret {
    /// What we built.
    pub(crate) outcome: RevealedOutcome,
    /// The commitment's salt.
    pub(crate) salt: [u8; 32],
}

/// What this member holds of one request (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnState {
    /// Submitted through us, not yet ordered.
    Submitted(Box<PinnedRequest>),
    /// Built; the commitment may not have left yet.
    Built(Secret),
    /// Our commitment was published.
    Committed(Secret),
    /// Our reveal was published.
    Revealed(Secret),
}

impl OwnState {
    /// Its kind, for [`super::lifecycle::next`].
    pub(crate) fn kind(&self) -> Own {
        match self {
            Self::Submitted(_) => Own::Submitted,
            Self::Built(_) => Own::Built,
            Self::Committed(_) => Own::Committed,
            Self::Revealed(_) => Own::Revealed,
        }
    }

    /// The secret, once built.
    pub(crate) fn secret(&self) -> Option<&Secret> {
        match self {
            Self::Submitted(_) => None,
            Self::Built(s) | Self::Committed(s) | Self::Revealed(s) => Some(s),
        }
    }
}

/// The kind of an `own_rounds` row past `built` (absent in a `built` row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Stage {
    #[default]
    Built,
    Committed,
    Revealed,
}

impl Stage {
    fn is_built(&self) -> bool {
        *self == Stage::Built
    }
}

/// An `own_rounds` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SecretRow {
    outcome: RevealedOutcome,
    #[serde(with = "serde_bytes")]
    salt: Vec<u8>,
    #[serde(default, skip_serializing_if = "Stage::is_built")]
    stage: Stage,
}

/// Why `rounds.redb` could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnRoundsError {
    /// The database failed.
    #[error("rounds.redb: {0}")]
    Db(#[from] redb::Error),
    /// 10,000 submitted requests (`MAX_SUBMITTED`) already wait.
    #[error("{MAX_SUBMITTED} submitted requests already wait to be ordered")]
    TooManySubmitted,
}

fn db_err<E: Into<redb::Error>>(e: E) -> OwnRoundsError {
    OwnRoundsError::Db(e.into())
}

/// Why a stored row is not a state (the row is then ignored, with a warning).
#[derive(Debug, thiserror::Error)]
enum RowError {
    /// Not the CBOR of a row.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The salt is not 32 bytes.
    #[error("a salt that is not 32 bytes")]
    Salt,
}

/// An `own_rounds` row as a state.
fn decode_secret(bytes: &[u8]) -> Result<OwnState, RowError> {
    let r: SecretRow = codec::from_slice(bytes, crate::protocol::MAX_MESSAGE_SIZE)?;
    let salt = <[u8; 32]>::try_from(r.salt.as_slice()).map_err(|_| RowError::Salt)?;
    let secret = Secret {
        outcome: r.outcome,
        salt,
    };
    Ok(match r.stage {
        Stage::Built => OwnState::Built(secret),
        Stage::Committed => OwnState::Committed(secret),
        Stage::Revealed => OwnState::Revealed(secret),
    })
}

/// Our rounds, in their own small database (never contending with the log's writes).
#[derive(Debug)]
pub(crate) struct OwnRounds {
    db: Database,
}

impl OwnRounds {
    /// The database at `path` (created if needed).
    pub(crate) fn open(path: &Path) -> Result<Self, OwnRoundsError> {
        let db = Database::create(path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(OWN).map_err(db_err)?;
        txn.open_table(SUBMITTED).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// What we hold of `id` (a row that does not decode is logged and counts as none).
    pub(crate) fn state(&self, id: &[u8; 32]) -> Option<OwnState> {
        let txn = self.db.begin_read().ok()?;
        let row = |def: TableDefinition<[u8; 32], &[u8]>| -> Option<Vec<u8>> {
            let t = txn.open_table(def).ok()?;
            Some(t.get(id).ok()??.value().to_vec())
        };
        let decoded = if let Some(bytes) = row(OWN) {
            decode_secret(&bytes)
        } else {
            let bytes = row(SUBMITTED)?;
            codec::from_slice::<PinnedRequest>(&bytes, crate::protocol::MAX_MESSAGE_SIZE)
                .map(|r| OwnState::Submitted(Box::new(r)))
                .map_err(RowError::from)
        };
        decoded
            .map_err(|e| tracing::warn!("round row of {}: {e}", hex::encode(id)))
            .ok()
    }

    /// Every request with a row.
    pub(crate) fn ids(&self) -> Vec<[u8; 32]> {
        let Ok(txn) = self.db.begin_read() else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for def in [OWN, SUBMITTED] {
            let Ok(t) = txn.open_table(def) else {
                continue;
            };
            let Ok(iter) = t.iter() else {
                continue;
            };
            ids.extend(iter.flatten().map(|(k, _)| k.value()));
        }
        ids
    }

    /// Stores `state` as what we hold of `id`, durably for `Submitted` and `Built` (see
    /// the module doc).
    pub(crate) fn save(&self, id: &[u8; 32], state: &OwnState) -> Result<(), OwnRoundsError> {
        let (bytes, durability) = match state {
            OwnState::Submitted(r) => (codec::to_vec(&**r), Durability::Immediate),
            OwnState::Built(s) | OwnState::Committed(s) | OwnState::Revealed(s) => {
                let stage = match state {
                    OwnState::Committed(_) => Stage::Committed,
                    OwnState::Revealed(_) => Stage::Revealed,
                    _ => Stage::Built,
                };
                let row = SecretRow {
                    outcome: s.outcome.clone(),
                    salt: s.salt.to_vec(),
                    stage,
                };
                let durability = if stage == Stage::Built {
                    Durability::Immediate
                } else {
                    Durability::None
                };
                (codec::to_vec(&row), durability)
            }
        };
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(durability).map_err(db_err)?;
        {
            if let OwnState::Submitted(_) = state {
                let mut t = txn.open_table(SUBMITTED).map_err(db_err)?;
                if t.len().map_err(db_err)? as usize >= MAX_SUBMITTED
                    && t.get(id).map_err(db_err)?.is_none()
                {
                    return Err(OwnRoundsError::TooManySubmitted);
                }
                t.insert(id, bytes.as_slice()).map_err(db_err)?;
            } else {
                txn.open_table(OWN)
                    .map_err(db_err)?
                    .insert(id, bytes.as_slice())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Forgets what we hold of `id`, if anything (not durable by itself: see the module
    /// doc).
    pub(crate) fn remove(&self, id: &[u8; 32]) {
        self.remove_from(&[OWN, SUBMITTED], id);
    }

    /// Forgets the saved submission of `id` (ordered: it is in a block now).
    pub(crate) fn remove_submitted(&self, id: &[u8; 32]) {
        self.remove_from(&[SUBMITTED], id);
    }

    fn remove_from(&self, tables: &[TableDefinition<[u8; 32], &[u8]>], id: &[u8; 32]) {
        let Ok(mut txn) = self.db.begin_write() else {
            return;
        };
        if txn.set_durability(Durability::None).is_err() {
            return;
        }
        for def in tables {
            if let Ok(mut t) = txn.open_table(*def) {
                let _ = t.remove(id);
            }
        }
        let _ = txn.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FailureClass;
    use crate::testing::request;

    /// The row earlier versions wrote for a built round.
    #[derive(Serialize)]
    struct LegacyRow {
        outcome: RevealedOutcome,
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
    }

    /// A built row is byte for byte the row earlier versions wrote, and their rows (and
    /// submissions) read back as the same states; each stage reads back as saved.
    #[test]
    fn rows_keep_the_format_earlier_versions_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let rounds = OwnRounds::open(&dir.path().join("rounds.redb")).unwrap();
        let secret = Secret {
            outcome: RevealedOutcome::Failure(FailureClass::Timeout),
            salt: [7; 32],
        };
        let legacy = codec::to_vec(&LegacyRow {
            outcome: RevealedOutcome::Failure(FailureClass::Timeout),
            salt: vec![7; 32],
        });
        let row = SecretRow {
            outcome: secret.outcome.clone(),
            salt: secret.salt.to_vec(),
            stage: Stage::Built,
        };
        assert_eq!(codec::to_vec(&row), legacy);
        // A row written by an earlier version.
        {
            let txn = rounds.db.begin_write().unwrap();
            txn.open_table(OWN)
                .unwrap()
                .insert(&[1; 32], legacy.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(
            rounds.state(&[1; 32]),
            Some(OwnState::Built(secret.clone()))
        );
        let submitted = OwnState::Submitted(Box::new(request("a", "1.0.0", "l")));
        for (k, state) in [
            submitted.clone(),
            OwnState::Built(secret.clone()),
            OwnState::Committed(secret.clone()),
            OwnState::Revealed(secret.clone()),
        ]
        .into_iter()
        .enumerate()
        {
            let id = [10 + k as u8; 32];
            rounds.save(&id, &state).unwrap();
            assert_eq!(rounds.state(&id), Some(state));
        }
        assert_eq!(rounds.ids().len(), 5);
        // The built row of a request outranks its submission; removal forgets both.
        rounds
            .save(&[10; 32], &OwnState::Built(secret.clone()))
            .unwrap();
        assert_eq!(rounds.state(&[10; 32]), Some(OwnState::Built(secret)));
        rounds.remove(&[10; 32]);
        assert_eq!(rounds.state(&[10; 32]), None);
        rounds.remove_submitted(&[1; 32]);
        assert!(rounds.state(&[1; 32]).is_some(), "only the submission goes");
    }
}
