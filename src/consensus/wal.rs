//! The consensus write-ahead log: every input that changed the core's state in the height
//! in progress (votes, proposals, proposed values, polka certificates, elapsed timeouts), so
//! a node killed mid-height replays them after restart and re-derives exactly the votes it
//! had already signed — it never signs a conflicting one.
//!
//! Storage is Malachite's `arc-malachitebft-wal` file (length + CRC per entry; a torn tail
//! is truncated on open). It holds one height: its sequence number is the height, and
//! starting a different height resets it.
//!
//! Durability: entries are appended without fsync and flushed (fsync) by the actor before
//! any message leaves the node ("sync before broadcast"), so everything a peer could have
//! seen from us is on disk.

use std::path::Path;

use arc_malachitebft_core_consensus::{Input, ProposedValue};
use arc_malachitebft_core_types::{Timeout, TimeoutKind, Validity, ValueOrigin};
use serde::{Deserialize, Serialize};

use super::context::{Address, Ctx, Height, Value};
use super::wire::{Wire, WireError};
use crate::codec;

/// Largest WAL entry (a proposal with its block, or a proposed value).
const MAX_ENTRY: usize = super::wire::MAX_WIRE_SIZE + 1024;

#[derive(Serialize, Deserialize)]
enum Entry {
    Message(#[serde(with = "serde_bytes")] Vec<u8>),
    ProposedValue {
        height: u64,
        round: i64,
        valid_round: i64,
        #[serde(with = "serde_bytes")]
        proposer: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        valid: bool,
        sync: bool,
    },
    Timeout {
        kind: u8,
        round: i64,
    },
}

/// Why a WAL entry could not be decoded (the WAL is then discarded: its height is
/// re-done from the network without our earlier votes, which is safe only because the
/// entry was never flushed before a broadcast).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Not an entry.
    #[error("WAL entry: {0}")]
    Codec(#[from] codec::CodecError),
    /// A message inside is malformed.
    #[error("WAL entry: {0}")]
    Wire(#[from] WireError),
    /// A field is out of range.
    #[error("WAL entry: invalid {0}")]
    Field(&'static str),
    /// The file could not be read or written.
    #[error("WAL file: {0}")]
    Io(#[from] std::io::Error),
}

fn round_i64(r: arc_malachitebft_core_types::Round) -> i64 {
    r.as_i64()
}

fn round_from(r: i64) -> Result<arc_malachitebft_core_types::Round, WalError> {
    match r {
        -1 => Ok(arc_malachitebft_core_types::Round::Nil),
        0..=0xffff_ffff => Ok(arc_malachitebft_core_types::Round::new(r as u32)),
        _ => Err(WalError::Field("round")),
    }
}

/// Encodes an input the core asked to log; `None` for inputs that are never logged.
pub fn encode_input(input: &Input<Ctx>) -> Option<Vec<u8>> {
    let e = match input {
        Input::Vote(v) => Entry::Message(Wire::Vote(v.clone()).encode()),
        Input::Proposal(p) => Entry::Message(Wire::Proposal(p.clone()).encode()),
        Input::PolkaCertificate(c) => Entry::Message(Wire::Polka(c.clone()).encode()),
        Input::RoundCertificate(c) => Entry::Message(Wire::RoundCertificate(c.clone()).encode()),
        Input::ProposedValue(pv, origin) => Entry::ProposedValue {
            height: pv.height.0,
            round: round_i64(pv.round),
            valid_round: round_i64(pv.valid_round),
            proposer: pv.proposer.0.to_vec(),
            value: pv.value.bytes().to_vec(),
            valid: pv.validity.is_valid(),
            sync: origin.is_sync(),
        },
        Input::TimeoutElapsed(t) => Entry::Timeout {
            kind: match t.kind {
                TimeoutKind::Propose => 0,
                TimeoutKind::Prevote => 1,
                TimeoutKind::Precommit => 2,
                TimeoutKind::Rebroadcast => 3,
                TimeoutKind::FinalizeHeight(_) => return None,
            },
            round: round_i64(t.round),
        },
        _ => return None,
    };
    Some(codec::to_vec(&e))
}

/// Decodes a logged input.
pub fn decode_input(bytes: &[u8]) -> Result<Input<Ctx>, WalError> {
    Ok(match codec::from_slice::<Entry>(bytes, MAX_ENTRY)? {
        Entry::Message(m) => match Wire::decode(&m)? {
            Wire::Vote(v) => Input::Vote(v),
            Wire::Proposal(p) => Input::Proposal(p),
            Wire::Polka(c) => Input::PolkaCertificate(c),
            Wire::RoundCertificate(c) => Input::RoundCertificate(c),
        },
        Entry::ProposedValue {
            height,
            round,
            valid_round,
            proposer,
            value,
            valid,
            sync,
        } => Input::ProposedValue(
            ProposedValue {
                height: Height(height),
                round: round_from(round)?,
                valid_round: round_from(valid_round)?,
                proposer: Address(
                    proposer
                        .as_slice()
                        .try_into()
                        .map_err(|_| WalError::Field("proposer"))?,
                ),
                value: Value::new(value),
                validity: Validity::from_bool(valid),
            },
            if sync {
                ValueOrigin::Sync
            } else {
                ValueOrigin::Consensus
            },
        ),
        Entry::Timeout { kind, round } => {
            let round = round_from(round)?;
            Input::TimeoutElapsed(match kind {
                0 => Timeout::propose(round),
                1 => Timeout::prevote(round),
                2 => Timeout::precommit(round),
                3 => Timeout::rebroadcast(round),
                _ => return Err(WalError::Field("timeout kind")),
            })
        }
    })
}

/// The WAL file of one node.
pub struct Wal {
    log: arc_malachitebft_wal::Log,
    /// Appended but not yet fsynced.
    dirty: bool,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("height", &self.log.sequence())
            .field("entries", &self.log.len())
            .finish()
    }
}

impl Wal {
    /// Opens (or creates) the WAL at `path`; takes an exclusive lock on it.
    pub fn open(path: &Path) -> Result<Self, WalError> {
        Ok(Self {
            log: arc_malachitebft_wal::Log::open(path)?,
            dirty: false,
        })
    }

    /// Begins `height`: returns the inputs logged for it (to replay), or resets the WAL to
    /// it when it holds another height. Entries after the first undecodable one are
    /// dropped (they were never flushed before a broadcast: see the module doc).
    pub fn begin_height(&mut self, height: Height) -> Result<Vec<Input<Ctx>>, WalError> {
        if self.log.sequence() != height.0 {
            self.log.reset(height.0)?;
            self.dirty = false;
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for raw in self.log.iter()? {
            match raw.map_err(WalError::from).and_then(|b| decode_input(&b)) {
                Ok(i) => out.push(i),
                Err(e) => {
                    tracing::warn!("WAL replay stops at entry {}: {e}", out.len());
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Appends one encoded entry (not yet durable).
    pub fn append(&mut self, entry: &[u8]) -> Result<(), WalError> {
        self.log.append(entry)?;
        self.dirty = true;
        Ok(())
    }

    /// Makes every appended entry durable (fsync); a no-op when nothing is pending.
    pub fn flush(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.log.flush()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The height the WAL holds.
    pub fn height(&self) -> Height {
        Height(self.log.sequence())
    }
}

#[cfg(test)]
mod tests {
    use arc_malachitebft_core_types::{LinearTimeouts, Round};
    use arc_malachitebft_signing_ed25519::PrivateKey;

    use super::*;
    use crate::consensus::{Action, Core, ValidatorSet};
    use crate::testing::TestCommittee;

    fn core(tc: &TestCommittee, i: usize) -> Core {
        Core::new(
            Ctx::new(tc.committee.signing_domain()),
            ValidatorSet::from_committee(&tc.committee),
            PrivateKey::from(tc.identities[i].secret_bytes()),
            LinearTimeouts::default(),
        )
    }

    fn split(actions: Vec<Action>) -> (Vec<Vec<u8>>, Vec<Wire>) {
        let mut wal = Vec::new();
        let mut sent = Vec::new();
        for a in actions {
            match a {
                Action::WalAppend(b) => wal.push(b),
                Action::Broadcast(w) => sent.push(w),
                _ => {}
            }
        }
        (wal, sent)
    }

    /// The proposer of (1, 0), validator 0, proposes; validator 1 prevotes it, "crashes",
    /// and a fresh core with the same key replays the WAL: it re-sends the SAME signed
    /// prevote (recorded signature) and no conflicting vote.
    #[test]
    fn replay_re_derives_the_same_votes() {
        let tc = TestCommittee::new(4, 8);
        let mut p = core(&tc, 0);
        let mut actions = p.start_height(Height(1));
        let value = Value::new(b"block one".to_vec());
        assert!(actions.iter().any(|a| matches!(a, Action::GetValue { .. })));
        actions.extend(p.propose(Height(1), Round::new(0), value.clone()));
        let (_, sent) = split(actions);
        let proposal = sent
            .iter()
            .find_map(|w| match w {
                Wire::Proposal(p) => Some(p.clone()),
                _ => None,
            })
            .expect("the proposer proposes");

        let mut v = core(&tc, 1);
        let mut actions = v.start_height(Height(1));
        actions.extend(v.on_proposal(proposal, Validity::Valid));
        let (wal, sent) = split(actions);
        let votes: Vec<Wire> = sent
            .into_iter()
            .filter(|w| matches!(w, Wire::Vote(_)))
            .collect();
        assert_eq!(votes.len(), 1, "one prevote");
        assert!(!wal.is_empty(), "the prevote's inputs are logged");

        // Through a real WAL file, across a reopen.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consensus.wal");
        {
            let mut w = Wal::open(&path).unwrap();
            assert!(w.begin_height(Height(1)).unwrap().is_empty());
            for e in &wal {
                w.append(e).unwrap();
            }
            w.flush().unwrap();
        }
        let mut w = Wal::open(&path).unwrap();
        let entries = w.begin_height(Height(1)).unwrap();
        assert_eq!(entries.len(), wal.len());

        let mut restarted = core(&tc, 1);
        let mut actions = restarted.start_height(Height(1));
        actions.extend(restarted.replay(entries));
        let (again, sent) = split(actions);
        assert!(again.is_empty(), "nothing is logged twice while replaying");
        let re_votes: Vec<Wire> = sent
            .into_iter()
            .filter(|w| matches!(w, Wire::Vote(_)))
            .collect();
        assert!(!re_votes.is_empty(), "the prevote is re-sent");
        for r in &re_votes {
            assert_eq!(
                r, &votes[0],
                "identical vote and signature, nothing conflicting"
            );
        }

        // Another height resets the WAL.
        assert!(w.begin_height(Height(2)).unwrap().is_empty());
        assert_eq!(w.height(), Height(2));
        drop(w);
        let mut w = Wal::open(&path).unwrap();
        assert!(w.begin_height(Height(2)).unwrap().is_empty());
    }

    #[test]
    fn every_logged_input_round_trips_and_garbage_is_refused() {
        let tc = TestCommittee::new(4, 9);
        let mut p = core(&tc, 0);
        let mut actions = p.start_height(Height(1));
        actions.extend(p.propose(Height(1), Round::new(0), Value::new(b"v".to_vec())));
        actions.extend(p.on_timeout(Timeout::prevote(Round::new(0))));
        let (wal, _) = split(actions);
        assert!(wal.len() >= 2);
        for e in &wal {
            let input = decode_input(e).unwrap();
            assert_eq!(encode_input(&input).as_deref(), Some(e.as_slice()));
        }
        let t = Input::TimeoutElapsed(Timeout::precommit(Round::new(3)));
        assert_eq!(decode_input(&encode_input(&t).unwrap()).unwrap(), t);
        assert!(decode_input(b"not cbor").is_err());
        assert!(decode_input(&codec::to_vec(&Entry::Timeout { kind: 9, round: 0 })).is_err());
    }
}
