//! A [`NodeStorage`] that crashes at its `k`-th write (counting from 0): the write either
//! reaches the disk first (`persist`: the crash came after the write, before the caller
//! learned) or not at all (the crash came before it). From the crash on, every write is
//! refused and not made (the process is gone); the caller sees an error and stops.

use std::sync::Mutex;

use super::{NodeStorage, RedbStorage, StorageError};
use crate::log::{Appended, Height, LogStore, NewEntry, StoreError};
use crate::node::own::{OwnRoundsError, OwnState};

/// One write the node made through the storage, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Crash point 1.
    SaveSubmitted,
    /// Crash point 2, at this height.
    ApplyHeight(u64),
    /// Crash point 3.
    ForgetSubmitted,
    /// Crash point 4.
    SaveBuilt,
    /// Crash point 5.
    SaveCommitted,
    /// Crash point 6.
    SaveRevealed,
    /// Crash point 7.
    ForgetRound,
}

/// Where to crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The index of the write that crashes.
    pub(crate) at: usize,
    /// Whether that write reached the disk before the crash.
    pub(crate) persist: bool,
}

#[derive(Debug, Default)]
struct Trace {
    steps: Vec<Step>,
    crashed: bool,
}

/// The fault-injecting storage over a real [`RedbStorage`].
#[derive(Debug)]
pub(crate) struct FaultyStorage {
    inner: RedbStorage,
    fault: Option<Fault>,
    trace: Mutex<Trace>,
}

/// What a write may do.
enum Go {
    /// Write, and return its result.
    Write,
    /// Write, then fail (crash after the write).
    WriteThenCrash,
    /// Do not write; fail.
    Refuse,
}

impl FaultyStorage {
    /// `inner`, crashing at `fault` (never with `None`: a run that records the steps).
    pub(crate) fn new(inner: RedbStorage, fault: Option<Fault>) -> Self {
        Self {
            inner,
            fault,
            trace: Mutex::default(),
        }
    }

    /// The writes asked for so far (the crashing one included, later refused ones not).
    pub(crate) fn steps(&self) -> Vec<Step> {
        self.trace.lock().unwrap().steps.clone()
    }

    /// Whether the fault fired.
    pub(crate) fn crashed(&self) -> bool {
        self.trace.lock().unwrap().crashed
    }

    fn go(&self, step: Step) -> Go {
        let mut t = self.trace.lock().unwrap();
        if t.crashed {
            return Go::Refuse;
        }
        let k = t.steps.len();
        t.steps.push(step);
        match self.fault {
            Some(f) if f.at == k => {
                t.crashed = true;
                if f.persist {
                    Go::WriteThenCrash
                } else {
                    Go::Refuse
                }
            }
            _ => Go::Write,
        }
    }

    /// Runs `write` as `step` says, failing with `crash` at the fault.
    fn write<T>(
        &self,
        step: Step,
        crash: impl Fn() -> StorageError,
        write: impl FnOnce() -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match self.go(step) {
            Go::Write => write(),
            Go::WriteThenCrash => {
                write()?;
                Err(crash())
            }
            Go::Refuse => Err(crash()),
        }
    }
}

fn rounds_crash() -> StorageError {
    let io = std::io::Error::other("injected crash");
    StorageError::Rounds(OwnRoundsError::Db(redb::Error::Io(io)))
}

impl NodeStorage for FaultyStorage {
    fn apply_height(
        &self,
        log: &LogStore,
        entries: &[NewEntry],
        height: Height<'_>,
    ) -> Result<Appended, StorageError> {
        let crash = || StorageError::Log(StoreError::Db("injected crash".into()));
        self.write(Step::ApplyHeight(height.height), crash, || {
            self.inner.apply_height(log, entries, height)
        })
    }

    fn save_round(&self, id: &[u8; 32], state: &OwnState) -> Result<(), StorageError> {
        let step = match state {
            OwnState::Submitted(_) => Step::SaveSubmitted,
            OwnState::Built(_) => Step::SaveBuilt,
            OwnState::Committed(_) => Step::SaveCommitted,
            OwnState::Revealed(_) => Step::SaveRevealed,
        };
        self.write(step, rounds_crash, || self.inner.save_round(id, state))
    }

    fn round(&self, id: &[u8; 32]) -> Option<OwnState> {
        self.inner.round(id)
    }

    fn round_ids(&self) -> Vec<[u8; 32]> {
        self.inner.round_ids()
    }

    fn forget_round(&self, id: &[u8; 32]) {
        let _ = self.write(Step::ForgetRound, rounds_crash, || {
            self.inner.forget_round(id);
            Ok(())
        });
    }

    fn forget_submitted(&self, id: &[u8; 32]) {
        let _ = self.write(Step::ForgetSubmitted, rounds_crash, || {
            self.inner.forget_submitted(id);
            Ok(())
        });
    }
}
