//! A committee change as a decided transaction, pure: members of the current epoch approve
//! the next committee file in blocks; once `t` approvals of ONE proposal are ordered, the
//! change is scheduled, and it ends the epoch at the first height after which no round is
//! open (docs/decisions.md, "Epochs").
//!
//! ```text
//! Approve(next file, BLS partial) ─┬─ (< t for every proposal) ─► pending
//!                                  └─ (t-th approval of D ordered at height h) ─► scheduled(D, h)
//! scheduled ── requests wait; open rounds run to their decision ──► no open round after a
//! block ──► the change entry is appended at that height; the next height is epoch e+1's
//! ```
//!
//! A member approves at most one proposal per epoch, and an approval is final (a withdrawn
//! one could be replayed by any proposer: messages carry no nonce). So at most `n` proposals
//! are held, however many a member sends. Two competing proposals for the same epoch: the
//! first to reach `t` in the decided chain wins; every approval after that is refused.
//!
//! Members, keys, the threshold, the rules and the toolchain may all change. A member the
//! proposal adds approves nothing in this epoch (it is not a member of it); its node follows
//! the log as a non-voter until the change ends the epoch (`node --join`, `node/join.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use synchronicity_verify::epoch::{
    CHANGE_ENTRY_KIND, ChangeEntry, approval_message, check_proposal,
};

use crate::committee::Committee;
use crate::crypto::{BlsSignature, PartialSignature, ThresholdAggregator};

type Digest = [u8; 32];

/// Largest committee file an approval may carry (a few thousand members; a message is at
/// most [`super::MAX_MESSAGE_SIZE`]).
pub const MAX_PROPOSAL_SIZE: usize = 1024 * 1024;

/// The open-round row id under which the node stores the [`ChangeState`] with each height
/// that changes it: no request id is all zeroes (it is a SHA-256).
pub const CHANGE_ROW_ID: Digest = [0; 32];

/// One proposal and who approved it (bounded by the committee: one live approval each).
/// Proposals are keyed by the SHA-256 of their text, which the change statement binds (the
/// committee digest does not cover names, peer ids and addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Proposal {
    /// The next committee file, verbatim (what the change entry will carry).
    text: String,
    /// Member → its BLS signature over the approval statement (compressed, verified when
    /// ordered).
    approvals: BTreeMap<u32, Vec<u8>>,
}

/// The change under way in an epoch (also the row the node stores with each height that
/// changes it, so a restart loads it instead of replaying).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeState {
    /// Proposals by the SHA-256 of their text.
    proposals: BTreeMap<Digest, Proposal>,
    /// The winning proposal and the height whose block ordered its `t`-th approval.
    scheduled: Option<(Digest, u64)>,
}

/// What an ordered approval does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Approval {
    signer: u32,
    file: Digest,
    text: String,
    signature: Vec<u8>,
}

impl ChangeState {
    /// True when a change is scheduled: requests wait, and the epoch ends once no round is open.
    pub fn is_scheduled(&self) -> bool {
        self.scheduled.is_some()
    }

    /// True when nothing is pending or scheduled.
    pub fn is_empty(&self) -> bool {
        self.proposals.is_empty() && self.scheduled.is_none()
    }

    /// Every proposal's text hash with the members that approved it, for status displays.
    pub fn approvals(&self) -> Vec<(Digest, Vec<u32>)> {
        self.proposals
            .iter()
            .map(|(d, p)| (*d, p.approvals.keys().copied().collect()))
            .collect()
    }

    /// The text of the proposal whose SHA-256 is `file`, if one is held.
    pub fn proposal_text(&self, file: &Digest) -> Option<&str> {
        self.proposals.get(file).map(|p| p.text.as_str())
    }

    /// The scheduled change's text hash and the height that scheduled it.
    pub fn scheduled(&self) -> Option<(Digest, u64)> {
        self.scheduled
    }

    /// Whether member `signer` may approve `text` now (its signature over the approval
    /// statement verifies for its key in `current`), and what that does.
    pub(crate) fn judge(
        &self,
        current: &Committee,
        signer: u32,
        text: &str,
        signature: &[u8],
        checked: &ProposalCache,
    ) -> Result<Approval, &'static str> {
        if self.scheduled.is_some() {
            return Err("a committee change is already scheduled");
        }
        if text.len() > MAX_PROPOSAL_SIZE {
            return Err("proposed committee file too large");
        }
        let member = current
            .keys()
            .get(signer as usize)
            .ok_or("signer is not a member")?;
        if self
            .proposals
            .values()
            .any(|p| p.approvals.contains_key(&signer))
        {
            return Err("the member approved a proposal of this epoch already");
        }
        let file = crate::crypto::sha256(text.as_bytes());
        // Parsing and the proofs of possession: once per text and node (the cache).
        let digest = checked.next_digest(current, text, file)?;
        let sig = BlsSignature::from_bytes(signature).map_err(|_| "bad approval signature")?;
        let statement = synchronicity_verify::epoch::change_statement(
            current.origin(),
            current.epoch().checked_add(1).ok_or("the last epoch")?,
            &current.digest(),
            &digest,
            &file,
        );
        member
            .verify(statement.as_bytes(), &sig)
            .map_err(|_| "approval signature does not verify")?;
        Ok(Approval {
            signer,
            file,
            text: text.to_string(),
            signature: signature.to_vec(),
        })
    }

    /// Records a judged approval ordered at `height`; schedules the change when its proposal
    /// reaches `threshold`.
    pub(crate) fn record(&mut self, a: Approval, height: u64, threshold: usize) {
        let p = self.proposals.entry(a.file).or_insert_with(|| Proposal {
            text: a.text,
            approvals: BTreeMap::new(),
        });
        p.approvals.insert(a.signer, a.signature);
        if p.approvals.len() >= threshold {
            self.scheduled = Some((a.file, height));
            // The others can no longer win.
            self.proposals.retain(|d, _| *d == a.file);
        }
    }

    /// The change entry of the scheduled change: the next committee file and the aggregate
    /// of the approvals (`t` or more, each verified when ordered). Deterministic: every
    /// member computes the same bytes.
    pub fn entry(&self, current: &Committee) -> Option<ChangeEntry> {
        let (digest, height) = self.scheduled?;
        let p = self.proposals.get(&digest)?;
        let next = synchronicity_verify::Committee::from_toml_checked_before(&p.text).ok()?;
        let mut agg = ThresholdAggregator::new(
            current.keys(),
            approval_message(current, &next, &p.text).into_bytes(),
        );
        for (&signer, sig) in &p.approvals {
            let signature = BlsSignature::from_bytes(sig).ok()?;
            agg.add(PartialSignature {
                signer: signer as usize,
                signature,
            })
            .ok()?;
        }
        let approval = agg.finish(current.threshold()).ok()?;
        Some(ChangeEntry {
            kind: CHANGE_ENTRY_KIND.into(),
            committee: p.text.clone(),
            approval: approval.to_bytes(),
            height,
        })
    }
}

/// Proposals this node checked (parsed, every proof of possession verified, a successor of
/// the committee): by the SHA-256 of the text and the current committee's digest, the next
/// committee's digest. Bounded: the oldest are forgotten first (and checked again if seen).
#[derive(Debug, Default)]
pub struct ProposalCache {
    inner: std::sync::Mutex<std::collections::VecDeque<CheckedProposal>>,
}

/// (text hash, current digest) → the next digest, or why the proposal is refused.
type CheckedProposal = ((Digest, Digest), Result<Digest, &'static str>);

/// Proposals remembered.
const MAX_CHECKED_PROPOSALS: usize = 64;

impl ProposalCache {
    /// The digest of the committee `text` (whose SHA-256 is `file`) proposes after
    /// `current`, if it is a valid successor (see the module doc).
    fn next_digest(
        &self,
        current: &Committee,
        text: &str,
        file: Digest,
    ) -> Result<Digest, &'static str> {
        let key = (file, current.digest());
        let lock = || self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, d)) = lock().iter().find(|(k, _)| *k == key) {
            return *d;
        }
        let verdict = match check_proposal(current, text) {
            Err(_) => Err("the proposed committee is invalid or does not follow this one"),
            Ok(next) => Ok(next.digest()),
        };
        let mut seen = lock();
        seen.push_back((key, verdict));
        while seen.len() > MAX_CHECKED_PROPOSALS {
            seen.pop_front();
        }
        verdict
    }
}
