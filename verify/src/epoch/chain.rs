//! The committee chain: how a client that trusts only the genesis file comes to trust the
//! committee of any later epoch, and which checkpoints each committee may sign. Pure.
//!
//! Each link is a C2SP tlog-proof of a [`ChangeEntry`] (its `extra`) under the HANDOFF
//! checkpoint: the checkpoint cosigned by the outgoing committee that includes the change
//! entry. A link is verified with the previous committee's keys only:
//! 1. the handoff checkpoint carries the previous committee's threshold signature;
//! 2. the change entry is its LAST entry (the protocol appends it after the block that ends
//!    the epoch, and members cosign every height that grows the log, so the handoff is one
//!    checkpoint, not a choice), at an index no earlier than the previous handoff, and is
//!    included in it (RFC 6962);
//! 3. the entry's committee file follows the previous one (origin, epoch + 1, `previous`
//!    digest) and its approval is a threshold signature of the previous committee over the
//!    change statement, which binds the file's text.
//!
//! The handoff checkpoint ends the outgoing committee's authority: a checkpoint it signs for
//! a larger size is refused, and one of the handoff's size with another root too; a
//! committee's checkpoints smaller than the handoff that started its epoch are refused.
//!
//! What this does NOT stop (docs/decisions.md, "Epochs"): `t` keys of a retired committee
//! can still sign another root for a size INSIDE their old window (a proof under it is
//! believed, as any signature of that committee was while it served), and they can sign a
//! forged next link for a client that holds only the genesis and is handed a chain that
//! forks at their epoch. A client that keeps the chain it verified refuses such a fork;
//! `proof --refresh` re-proves an old entry under the current checkpoint.
//!
//! The chain file (`chain.toml`, docs/formats.md):
//!
//! ```toml
//! origin = "example.org/synchronicity/testnet"
//! genesis = "<hex committee digest of epoch 0>"
//!
//! [[link]]
//! epoch = 1
//! proof = """c2sp.org/tlog-proof@v1
//! extra <base64 CBOR of the change entry>
//! index 17
//! …"""
//! ```

use serde::{Deserialize, Serialize};

use super::{ChangeEntry, ChangeError};
use crate::committee::Committee;
use crate::tlog::{
    CheckpointError, CosignedCheckpoint, FormatError, MerkleError, ProofFile, SignedNote, merkle,
};

/// Largest chain file read.
pub const MAX_CHAIN_FILE_SIZE: usize = 64 * 1024 * 1024;
/// Most links in a chain file (an epoch a day for 27 years).
pub const MAX_CHAIN_LINKS: usize = 10_000;

/// The chain file as written (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainFile {
    /// The log's origin.
    pub origin: String,
    /// The genesis committee's digest, lowercase hex.
    pub genesis: String,
    /// One link per epoch after the genesis, in order.
    #[serde(default, rename = "link")]
    pub links: Vec<ChainLink>,
}

/// One link: the change entry that started `epoch`, proven in its handoff checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLink {
    /// The epoch this link starts.
    pub epoch: u64,
    /// A tlog-proof whose `extra` is the change entry and whose checkpoint is the handoff
    /// checkpoint, cosigned by epoch `epoch - 1`.
    pub proof: String,
}

/// Why a chain, a link or a checkpoint under the chain is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain file is not TOML of the chain shape, or too large.
    #[error("chain file: {0}")]
    Syntax(String),
    /// The trust root is not a genesis committee (epoch 0).
    #[error("the trust root is epoch {0}, not a genesis committee (epoch 0)")]
    NotGenesis(u64),
    /// The chain belongs to another log or another genesis.
    #[error("the chain starts from {found}, not from this trust root ({expected})")]
    OtherGenesis {
        /// The trust root's origin and digest.
        expected: String,
        /// The chain file's.
        found: String,
    },
    /// A link names another epoch than the next one (a skipped or repeated epoch).
    #[error("link for epoch {found} where epoch {expected} was next")]
    SkippedEpoch {
        /// The next epoch.
        expected: u64,
        /// As written.
        found: u64,
    },
    /// A link's proof file is malformed.
    #[error("epoch {epoch}: {source}")]
    Format {
        /// The link's epoch.
        epoch: u64,
        /// Why.
        source: FormatError,
    },
    /// A link's proof carries no change entry.
    #[error("epoch {epoch}: the link's proof carries no entry")]
    NoEntry {
        /// The link's epoch.
        epoch: u64,
    },
    /// A link's handoff checkpoint is not cosigned by the outgoing committee.
    #[error("epoch {epoch}: handoff checkpoint: {source}")]
    Handoff {
        /// The link's epoch.
        epoch: u64,
        /// Why.
        source: CheckpointError,
    },
    /// A link's change entry is not included in its handoff checkpoint.
    #[error("epoch {epoch}: the change entry's inclusion: {source}")]
    Inclusion {
        /// The link's epoch.
        epoch: u64,
        /// Why.
        source: MerkleError,
    },
    /// The handoff checkpoint is not the one that ends with the change entry.
    #[error(
        "epoch {epoch}: the handoff checkpoint has size {size}; the change entry at index {index} must be its last entry"
    )]
    NotHandoff {
        /// The link's epoch.
        epoch: u64,
        /// The checkpoint's size.
        size: u64,
        /// The entry's index.
        index: u64,
    },
    /// A change entry placed before the previous epoch's handoff: it was not decided by the
    /// committee that approved it.
    #[error(
        "epoch {epoch}: the change entry is at index {index}, before the handoff at size {handoff} that began the previous epoch"
    )]
    EntryBeforeEpoch {
        /// The link's epoch.
        epoch: u64,
        /// The entry's index.
        index: u64,
        /// The previous handoff size.
        handoff: u64,
    },
    /// A link's change is not a valid, approved change of the previous committee.
    #[error("epoch {epoch}: {source}")]
    Change {
        /// The link's epoch.
        epoch: u64,
        /// Why.
        source: ChangeError,
    },
    /// No committee of the chain signed the checkpoint.
    #[error("checkpoint: no signature by any committee of the chain (epochs 0..={latest})")]
    UnknownSigner {
        /// The chain's latest epoch.
        latest: u64,
    },
    /// A committee's signature on a checkpoint outside its epoch's sizes.
    #[error(
        "checkpoint of size {size} is signed by epoch {epoch}, whose authority covers sizes {first}..={last}"
    )]
    OutsideEpoch {
        /// The signing committee's epoch.
        epoch: u64,
        /// The checkpoint's size.
        size: u64,
        /// The least size it may sign (the handoff that began its epoch).
        first: u64,
        /// The largest (its own handoff; `u64::MAX` for the latest epoch).
        last: u64,
    },
    /// A retired committee's checkpoint of its handoff's size with another root: a fork.
    #[error(
        "checkpoint of size {size} is signed by epoch {epoch} with another root than its handoff"
    )]
    ForkedHandoff {
        /// The signing committee's epoch.
        epoch: u64,
        /// The handoff size.
        size: u64,
    },
    /// An entry outside the sizes of the epoch it names: not decided by that committee.
    #[error("entry {index} names epoch {epoch}, whose entries are at indexes {first}..{end}")]
    EntryOutsideEpoch {
        /// The entry's index.
        index: u64,
        /// The epoch it names.
        epoch: u64,
        /// The epoch's first index.
        first: u64,
        /// One past its last (`u64::MAX` for the current epoch).
        end: u64,
    },
    /// The checkpoint's signature does not verify.
    #[error("checkpoint (epoch {epoch}): {source}")]
    Checkpoint {
        /// The epoch whose key id the note names.
        epoch: u64,
        /// Why.
        source: CheckpointError,
    },
}

/// One epoch of a verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    committee: Committee,
    /// The size of the handoff checkpoint that began this epoch (0 for the genesis).
    start: u64,
    /// The size and root of the handoff checkpoint that ended it (`None`: the current epoch).
    handoff: Option<(u64, crate::tlog::Hash)>,
    /// The link that began it (`None` for the genesis).
    link: Option<ChainLink>,
}

impl Epoch {
    /// Its committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }
    /// The least checkpoint size its committee may sign.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// The size of the handoff checkpoint that ended it, if it has ended.
    pub fn handoff(&self) -> Option<u64> {
        self.handoff.map(|(size, _)| size)
    }
}

/// A verified committee chain: the genesis and every later epoch, each link checked with
/// the previous committee's keys. Only [`CommitteeChain::from_genesis`],
/// [`CommitteeChain::verify`] and [`CommitteeChain::push`] make or grow one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeChain {
    epochs: Vec<Epoch>,
}

impl CommitteeChain {
    /// The chain of the genesis alone.
    pub fn from_genesis(genesis: Committee) -> Result<Self, ChainError> {
        if genesis.epoch() != 0 {
            return Err(ChainError::NotGenesis(genesis.epoch()));
        }
        Ok(Self {
            epochs: vec![Epoch {
                committee: genesis,
                start: 0,
                handoff: None,
                link: None,
            }],
        })
    }

    /// One committee of any epoch, trusted as given (no chain: nothing before it, no bound
    /// on the sizes it signs). What a client that was handed the current committee file
    /// instead of the genesis holds.
    pub fn single(committee: Committee) -> Self {
        Self {
            epochs: vec![Epoch {
                committee,
                start: 0,
                handoff: None,
                link: None,
            }],
        }
    }

    /// Parses a chain file and verifies every link from `genesis` on.
    pub fn verify(genesis: Committee, text: &str) -> Result<Self, ChainError> {
        let file = parse_chain_file(text)?;
        let mut chain = Self::from_genesis(genesis)?;
        let root = chain.genesis();
        if file.origin != root.origin() || file.genesis != hex::encode(root.digest()) {
            return Err(ChainError::OtherGenesis {
                expected: format!("{} {}", root.origin(), hex::encode(root.digest())),
                found: format!("{} {}", file.origin, file.genesis),
            });
        }
        for link in file.links {
            chain.push(link)?;
        }
        Ok(chain)
    }

    /// Verifies `link` with the latest committee's keys and appends its epoch.
    pub fn push(&mut self, link: ChainLink) -> Result<(), ChainError> {
        let current = self.latest();
        let epoch = current.epoch().checked_add(1).ok_or(ChainError::Change {
            epoch: current.epoch(),
            source: ChangeError::LastEpoch(current.epoch()),
        })?;
        if link.epoch != epoch {
            return Err(ChainError::SkippedEpoch {
                expected: epoch,
                found: link.epoch,
            });
        }
        let start = self.epochs.last().map_or(0, |e| e.start);
        let pf =
            ProofFile::parse(&link.proof).map_err(|source| ChainError::Format { epoch, source })?;
        let entry_bytes = pf.extra.as_deref().ok_or(ChainError::NoEntry { epoch })?;
        // Cheap checks first: the proof's shape and the entry's, then one pairing for the
        // checkpoint, the proofs of possession of the new committee and one pairing for the
        // approval.
        let entry = ChangeEntry::decode(entry_bytes)
            .map_err(|source| ChainError::Change { epoch, source })?;
        if pf.index < start {
            return Err(ChainError::EntryBeforeEpoch {
                epoch,
                index: pf.index,
                handoff: start,
            });
        }
        let checkpoint = CosignedCheckpoint::verify(&pf.checkpoint, current)
            .map_err(|source| ChainError::Handoff { epoch, source })?;
        let cp = checkpoint.checkpoint();
        if pf.index.checked_add(1) != Some(cp.size) {
            return Err(ChainError::NotHandoff {
                epoch,
                size: cp.size,
                index: pf.index,
            });
        }
        merkle::verify_inclusion(
            pf.index,
            cp.size,
            &merkle::leaf_hash(entry_bytes),
            &pf.proof,
            &cp.root,
        )
        .map_err(|source| ChainError::Inclusion { epoch, source })?;
        let next = entry
            .verify(current)
            .map_err(|source| ChainError::Change { epoch, source })?;
        let handoff = cp.size;
        if let Some(last) = self.epochs.last_mut() {
            last.handoff = Some((handoff, cp.root));
        }
        self.epochs.push(Epoch {
            committee: next,
            start: handoff,
            handoff: None,
            link: Some(link),
        });
        Ok(())
    }

    /// The first committee: the genesis (or the one committee of [`CommitteeChain::single`]).
    pub fn genesis(&self) -> &Committee {
        &self.epochs[0].committee
    }
    /// The latest committee.
    pub fn latest(&self) -> &Committee {
        &self.epochs[self.epochs.len() - 1].committee
    }
    /// Every epoch, from the genesis.
    pub fn epochs(&self) -> &[Epoch] {
        &self.epochs
    }
    /// The committee of `epoch`, if the chain holds it.
    pub fn committee(&self, epoch: u64) -> Option<&Committee> {
        let first = self.epochs[0].committee.epoch();
        let i = usize::try_from(epoch.checked_sub(first)?).ok()?;
        self.epochs.get(i).map(|e| &e.committee)
    }

    /// The chain file of this chain.
    pub fn to_file(&self) -> ChainFile {
        ChainFile {
            origin: self.genesis().origin().into(),
            genesis: hex::encode(self.genesis().digest()),
            links: self.epochs.iter().filter_map(|e| e.link.clone()).collect(),
        }
    }

    /// The chain file's TOML text.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(&self.to_file()).expect("chain serializes to TOML");
        format!(
            "# Synchronicity committee chain: every committee change since the genesis.\n{body}"
        )
    }

    /// The epoch whose committee signed `note` (by the signature line's key ID), checked to
    /// sign a size inside that epoch's authority, but NOT yet the signature itself.
    pub fn epoch_of_note(&self, note: &str) -> Result<&Epoch, ChainError> {
        let parsed = SignedNote::parse(note).map_err(|e| ChainError::Checkpoint {
            epoch: self.latest().epoch(),
            source: e.into(),
        })?;
        // The newest committee first: a current checkpoint names the current key.
        let epoch = self
            .epochs
            .iter()
            .rev()
            .find(|e| {
                parsed
                    .signatures
                    .iter()
                    .any(|s| s.name == e.committee.origin() && s.key_id == e.committee.key_id())
            })
            .ok_or(ChainError::UnknownSigner {
                latest: self.latest().epoch(),
            })?;
        let cp =
            crate::tlog::Checkpoint::parse(&parsed.text).map_err(|e| ChainError::Checkpoint {
                epoch: epoch.committee.epoch(),
                source: e.into(),
            })?;
        let last = epoch.handoff().unwrap_or(u64::MAX);
        if cp.size < epoch.start || cp.size > last {
            return Err(ChainError::OutsideEpoch {
                epoch: epoch.committee.epoch(),
                size: cp.size,
                first: epoch.start,
                last,
            });
        }
        if let Some((size, root)) = epoch.handoff
            && cp.size == size
            && cp.root != root
        {
            return Err(ChainError::ForkedHandoff {
                epoch: epoch.committee.epoch(),
                size,
            });
        }
        Ok(epoch)
    }

    /// Whether entry `index` can have been decided by the committee of `epoch`: its index is
    /// inside that epoch's entries (from the handoff that began it to the one that ended it).
    pub fn check_entry_epoch(&self, index: u64, epoch: u64) -> Result<(), ChainError> {
        let first = self.epochs[0].committee.epoch();
        let e = epoch
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.epochs.get(i));
        let (start, end) = e.map_or((u64::MAX, u64::MAX), |e| {
            (e.start, e.handoff().unwrap_or(u64::MAX))
        });
        if index < start || index >= end {
            return Err(ChainError::EntryOutsideEpoch {
                index,
                epoch,
                first: start,
                end,
            });
        }
        Ok(())
    }

    /// Verifies a cosigned checkpoint of any epoch: the committee named by its key ID
    /// signed it, for a size inside that committee's authority.
    pub fn verify_checkpoint(&self, note: &str) -> Result<(CosignedCheckpoint, u64), ChainError> {
        let epoch = self.epoch_of_note(note)?;
        let number = epoch.committee.epoch();
        let cp = CosignedCheckpoint::verify(note, &epoch.committee).map_err(|source| {
            ChainError::Checkpoint {
                epoch: number,
                source,
            }
        })?;
        Ok((cp, number))
    }
}

/// Parses a chain file's text (bounded).
pub fn parse_chain_file(text: &str) -> Result<ChainFile, ChainError> {
    if text.len() > MAX_CHAIN_FILE_SIZE {
        return Err(ChainError::Syntax(format!(
            "{} bytes, over the limit of {MAX_CHAIN_FILE_SIZE}",
            text.len()
        )));
    }
    let file: ChainFile =
        toml::from_str(text).map_err(|e| ChainError::Syntax(e.message().replace('\n', " ")))?;
    if file.links.len() > MAX_CHAIN_LINKS {
        return Err(ChainError::Syntax(format!(
            "{} links, over the limit of {MAX_CHAIN_LINKS}",
            file.links.len()
        )));
    }
    Ok(file)
}
