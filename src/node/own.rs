//! This node's secrets of open rounds: the outcome it committed to and the commitment's
//! salt, one row per request in `DIR/rounds.redb`. Each save is its own durable redb
//! transaction, committed BEFORE the commitment is published, so a node restarted after
//! committing can still reveal (a crash before the commit returns leaves no row, and no
//! commitment left this node). Rows go once the request is decided; that removal need not
//! be durable: a row left by a crash is found decided at the next start and removed then.
//!
//! The same database keeps the requests submitted through this node that are not ordered
//! yet (`submitted`): saved durably BEFORE the submitter gets its id, published again at
//! every start, and removed once the group has the request open or decided. A crash before
//! the save returns leaves no row and no id was given out; after it, the request survives
//! the crash (the mempool is memory only). At most [`MAX_SUBMITTED`] wait.

use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::protocol::RevealedOutcome;
use crate::request::PinnedRequest;

const OWN: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("own_rounds");
const SUBMITTED: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("submitted");

/// Most submitted requests waiting to be ordered.
pub(crate) const MAX_SUBMITTED: usize = 10_000;

/// A committed outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnRound {
    /// What we built.
    pub outcome: RevealedOutcome,
    /// The commitment's salt.
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
}

/// Our rounds, in their own small database (never contending with the log's writes).
#[derive(Debug)]
pub(crate) struct OwnRounds {
    db: Database,
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("rounds.redb: {e}")
}

impl OwnRounds {
    /// The database at `path` (created if needed).
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let db = Database::create(path).map_err(std::io::Error::other)?;
        let txn = db.begin_write().map_err(std::io::Error::other)?;
        txn.open_table(OWN).map_err(std::io::Error::other)?;
        txn.open_table(SUBMITTED).map_err(std::io::Error::other)?;
        txn.commit().map_err(std::io::Error::other)?;
        Ok(Self { db })
    }

    /// Stores (durably) our round for request `id`.
    pub(crate) fn save(&self, id: &[u8; 32], round: &OwnRound) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(Durability::Immediate).map_err(err)?;
        txn.open_table(OWN)
            .map_err(err)?
            .insert(id, codec::to_vec(round).as_slice())
            .map_err(err)?;
        txn.commit().map_err(err)
    }

    /// Our round for `id`, if we committed.
    pub(crate) fn load(&self, id: &[u8; 32]) -> Option<OwnRound> {
        let txn = self.db.begin_read().ok()?;
        let t = txn.open_table(OWN).ok()?;
        let bytes = t.get(id).ok()??.value().to_vec();
        match codec::from_slice(&bytes, crate::protocol::MAX_MESSAGE_SIZE) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("round row of {}: {e}", hex::encode(id));
                None
            }
        }
    }

    /// The requests that have a row.
    pub(crate) fn ids(&self) -> Vec<[u8; 32]> {
        let Ok(txn) = self.db.begin_read() else {
            return Vec::new();
        };
        let Ok(t) = txn.open_table(OWN) else {
            return Vec::new();
        };
        let Ok(iter) = t.iter() else {
            return Vec::new();
        };
        iter.flatten().map(|(k, _)| k.value()).collect()
    }

    /// Forgets the round of a decided request (not durable by itself: see the module doc).
    pub(crate) fn remove(&self, id: &[u8; 32]) {
        let Ok(mut txn) = self.db.begin_write() else {
            return;
        };
        if txn.set_durability(Durability::None).is_err() {
            return;
        }
        if let Ok(mut t) = txn.open_table(OWN) {
            let _ = t.remove(id);
        }
        let _ = txn.commit();
    }

    /// Keeps (durably) a request submitted through us until the group orders it.
    pub(crate) fn save_submitted(
        &self,
        id: &[u8; 32],
        request: &PinnedRequest,
    ) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(Durability::Immediate).map_err(err)?;
        {
            let mut t = txn.open_table(SUBMITTED).map_err(err)?;
            if t.len().map_err(err)? as usize >= MAX_SUBMITTED && t.get(id).map_err(err)?.is_none()
            {
                return Err(format!(
                    "{MAX_SUBMITTED} submitted requests already wait to be ordered"
                ));
            }
            t.insert(id, codec::to_vec(request).as_slice())
                .map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    /// The submitted requests still waiting (rows that do not decode are skipped).
    pub(crate) fn submitted(&self) -> Vec<([u8; 32], PinnedRequest)> {
        let Ok(txn) = self.db.begin_read() else {
            return Vec::new();
        };
        let Ok(t) = txn.open_table(SUBMITTED) else {
            return Vec::new();
        };
        let Ok(iter) = t.iter() else {
            return Vec::new();
        };
        iter.flatten()
            .filter_map(|(k, v)| {
                let r = codec::from_slice(v.value(), crate::protocol::MAX_MESSAGE_SIZE).ok()?;
                Some((k.value(), r))
            })
            .collect()
    }

    /// Forgets submitted requests the group has ordered (not durable by itself: a row left
    /// by a crash is found ordered at the next check and removed then).
    pub(crate) fn remove_submitted(&self, ids: &[[u8; 32]]) {
        if ids.is_empty() {
            return;
        }
        let Ok(mut txn) = self.db.begin_write() else {
            return;
        };
        if txn.set_durability(Durability::None).is_err() {
            return;
        }
        if let Ok(mut t) = txn.open_table(SUBMITTED) {
            for id in ids {
                let _ = t.remove(id);
            }
        }
        let _ = txn.commit();
    }
}
