//! This node's secrets of open rounds: the outcome it committed to and the commitment's
//! salt, one file per request under `DIR/rounds/`. Written atomically (temp file, fsync,
//! rename) BEFORE the commitment is published, so a node restarted after committing can
//! still reveal; removed once the request is decided.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::node_dir::write_atomic;
use crate::protocol::RevealedOutcome;

/// A committed outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnRound {
    /// What we built.
    pub outcome: RevealedOutcome,
    /// The commitment's salt.
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
}

/// The directory of round files.
#[derive(Debug, Clone)]
pub(crate) struct OwnRounds {
    dir: PathBuf,
}

impl OwnRounds {
    /// Round files under `dir` (created if needed).
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cbor", hex::encode(id)))
    }

    /// Stores (durably) our round for request `id`.
    pub(crate) fn save(&self, id: &[u8; 32], round: &OwnRound) -> Result<(), String> {
        write_atomic(&self.path(id), &codec::to_vec(round)).map_err(|e| e.to_string())
    }

    /// Our round for `id`, if we committed.
    pub(crate) fn load(&self, id: &[u8; 32]) -> Option<OwnRound> {
        let bytes = std::fs::read(self.path(id)).ok()?;
        match codec::from_slice(&bytes, crate::protocol::MAX_MESSAGE_SIZE) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("round file of {}: {e}", hex::encode(id));
                None
            }
        }
    }

    /// The requests that have a round file.
    pub(crate) fn ids(&self) -> Vec<[u8; 32]> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|f| {
                let name = f.file_name();
                let stem = name.to_str()?.strip_suffix(".cbor")?.to_string();
                <[u8; 32]>::try_from(hex::decode(stem).ok()?).ok()
            })
            .collect()
    }

    /// Forgets the round of a decided request.
    pub(crate) fn remove(&self, id: &[u8; 32]) {
        let _ = std::fs::remove_file(self.path(id));
    }
}
