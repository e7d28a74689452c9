//! One request's round, as a pure function of the decided chain:
//!
//! ```text
//! Request ──► Commit ──(all n counted members committed; or ≥ t committed and the grace
//!             passed since the block of the t-th commitment; or the commit window)──►
//!             Reveal ──(every counted committer revealed or misbehaved; or the reveal
//!             window)──► Decided
//! ```
//!
//! grace = max(commit_grace, time from the request's block to the t-th commitment's
//! block): slower honest builders get as long again as the fastest t needed. All times are
//! block times, so every member reaches the same phases.
//!
//! A member that sent two different commitments (an equivocator) is excluded from the
//! request's counts, from the attesters and from early-decision bookkeeping; it is listed
//! under misbehaviour. Reveals are stored as sent; their BLS signatures are checked when the
//! round is decided, one aggregate per revealed digest (and one by one only if an aggregate
//! fails, to name who signed wrong), so each signature costs each node one check at most.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use synchronicity_verify::Phase;
use synchronicity_verify::entry::{
    Dissent, ENTRY_FORMAT, LogEntry, Misbehaviour, Verdict, attestation_statement,
};

use super::commitment::commitment;
use super::message::RevealedOutcome;
use super::params::ProtocolParams;
use crate::committee::Committee;
use crate::crypto::{
    BlsPublicKey, BlsSignature, SignerBitmap, ThresholdSignature, UncheckedSignature,
};
use crate::request::{BuildRequest, PinnedRequest};
use crate::verify::manifest::{MAX_RECIPE_MANIFEST_SIZE, Manifest, manifest_bound};

/// The outcome's digest, or `None` if the reveal is malformed. A manifest may be as large as
/// a recipe's ([`MAX_RECIPE_MANIFEST_SIZE`]); a round also holds a crate's to
/// [`manifest_bound`] of its request.
pub fn outcome_digest(o: &RevealedOutcome) -> Option<[u8; 32]> {
    match o {
        RevealedOutcome::Manifest(text) => Manifest::parse_within(text, MAX_RECIPE_MANIFEST_SIZE)
            .ok()
            .map(|m| m.digest()),
        RevealedOutcome::Failure(class) => Some(class.digest()),
    }
}

/// A decided request: its log entry and the texts the entry pins by sha256 (the lockfile,
/// and the manifest when reproduced), which every member stores content-addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The entry appended to the log.
    pub entry: LogEntry,
    /// The lockfile text (`sha256 = entry.request.lockfile_sha256`).
    pub lockfile: String,
    /// The attested manifest text (`sha256 = entry.digest`), when reproduced.
    pub manifest: Option<String>,
    /// For a not-reproduced verdict, the manifest texts the members revealed (each `sha256`
    /// a member's digest in the entry), kept so that anyone can ask why
    /// (`synchronicity diff`).
    pub dissenting_manifests: Vec<String>,
}

/// Where a round stands, with what its deadlines need (stored in the round's row; the
/// public name is [`Phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RoundPhase {
    Commit,
    Reveal { since_ms: u64 },
}

impl RoundPhase {
    /// The phase's public name.
    pub(crate) fn public(self) -> Phase {
        match self {
            Self::Commit => Phase::Commit,
            Self::Reveal { .. } => Phase::Reveal,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Commit {
    #[serde(with = "serde_bytes")]
    pub(crate) commitment: [u8; 32],
    /// Time of the block that ordered it.
    pub(crate) at_ms: u64,
}

/// A reveal that matched its commitment; its attestation is checked at decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reveal {
    #[serde(with = "serde_bytes")]
    pub(crate) digest: [u8; 32],
    pub(crate) outcome: RevealedOutcome,
    #[serde(with = "serde_bytes")]
    pub(crate) attestation: Vec<u8>,
}

/// The reveals of one digest.
#[derive(Debug, Clone)]
pub(crate) struct AttestationGroup {
    pub(crate) digest: [u8; 32],
    pub(crate) members: Vec<u32>,
    pub(crate) statement: String,
    pub(crate) signatures: Vec<Option<UncheckedSignature>>,
    /// Their sum, in the subgroup (`None`: some signature does not decode, or the sum is
    /// not in the subgroup: then each is checked on its own).
    pub(crate) aggregate: Option<BlsSignature>,
}

/// A group's aggregate key and aggregate signature, to verify (alone or in a batch).
pub(crate) fn batch_item<'g>(
    g: &'g AttestationGroup,
    committee: &Committee,
) -> Option<(BlsPublicKey, &'g BlsSignature)> {
    let sig = g.aggregate.as_ref()?;
    let key = BlsPublicKey::aggregate(
        g.members
            .iter()
            .map(|m| &committee.members()[*m as usize].bls_public_key),
    )?;
    Some((key, sig))
}

/// What an accepted commitment or reveal changes in its round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    Commit(u32, Commit),
    Reveal(u32, Reveal),
    Misbehaved(u32, Misbehaviour),
}

/// An open round (also the row stored per open request in the node's snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Round {
    pub(crate) request: BuildRequest,
    pub(crate) lockfile: String,
    /// A recipe request's recipe (canonical CBOR), which its builders need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) recipe: Option<serde_bytes::ByteBuf>,
    pub(crate) opened_ms: u64,
    pub(crate) phase: RoundPhase,
    pub(crate) commits: BTreeMap<u32, Commit>,
    pub(crate) reveals: BTreeMap<u32, Reveal>,
    pub(crate) misbehaviour: Vec<(u32, Misbehaviour)>,
    /// The member whose request opened the round (builders serve members in turn; rows
    /// stored before it existed have none).
    #[serde(default)]
    pub(crate) requester: Option<u32>,
}

impl Round {
    pub(crate) fn new(pinned: &PinnedRequest, opened_ms: u64) -> Self {
        Self {
            request: pinned.request.clone(),
            lockfile: pinned.lockfile.clone(),
            recipe: pinned.recipe.clone(),
            opened_ms,
            phase: RoundPhase::Commit,
            commits: BTreeMap::new(),
            reveals: BTreeMap::new(),
            misbehaviour: Vec::new(),
            requester: None,
        }
    }

    /// Sent two different commitments.
    pub(crate) fn is_equivocator(&self, m: u32) -> bool {
        self.misbehaviour
            .contains(&(m, Misbehaviour::DoubleCommitment))
    }

    fn misbehaved(&self, m: u32) -> bool {
        self.misbehaviour.iter().any(|(x, _)| *x == m)
    }

    /// Committers that count: everyone who committed, equivocators excluded.
    pub(crate) fn counted_committers(&self) -> impl Iterator<Item = u32> + '_ {
        self.commits
            .keys()
            .copied()
            .filter(|m| !self.is_equivocator(*m))
    }

    /// Block time of the t-th counted commitment, once there are t.
    fn t_th_commit_ms(&self, t: usize) -> Option<u64> {
        let mut times: Vec<u64> = self
            .commits
            .iter()
            .filter(|(m, _)| !self.is_equivocator(**m))
            .map(|(_, c)| c.at_ms)
            .collect();
        times.sort_unstable();
        times.get(t.checked_sub(1)?).copied()
    }

    /// When the commit phase ends at the latest, by time alone (the all-n rule ends it at
    /// the block that completes it).
    pub(crate) fn commit_deadline_ms(&self, p: &ProtocolParams, t: usize) -> u64 {
        let window = self.opened_ms.saturating_add(p.commit_window_ms);
        match self.t_th_commit_ms(t) {
            Some(at) => {
                let grace = p.commit_grace_ms.max(at.saturating_sub(self.opened_ms));
                window.min(at.saturating_add(grace))
            }
            None => window,
        }
    }

    /// The end of the current phase (ms of block time).
    pub(crate) fn deadline_ms(&self, p: &ProtocolParams, t: usize) -> u64 {
        match self.phase {
            RoundPhase::Commit => self.commit_deadline_ms(p, t),
            RoundPhase::Reveal { since_ms } => since_ms.saturating_add(p.reveal_window_ms),
        }
    }

    /// Every one of the `n` members committed and none equivocated.
    pub(crate) fn all_committed(&self, n: usize) -> bool {
        self.counted_committers().count() == n
    }

    /// Every counted committer revealed or misbehaved: nothing more to wait for.
    pub(crate) fn all_revealed(&self) -> bool {
        self.counted_committers()
            .all(|m| self.reveals.contains_key(&m) || self.misbehaved(m))
    }

    /// What a commitment by `signer` would do (in the commit phase, checked by the
    /// caller); nothing changes until [`Round::record`].
    pub(crate) fn judge_commit(
        &self,
        signer: u32,
        c: [u8; 32],
        now_ms: u64,
    ) -> Result<Effect, &'static str> {
        match self.commits.get(&signer) {
            None => Ok(Effect::Commit(
                signer,
                Commit {
                    commitment: c,
                    at_ms: now_ms,
                },
            )),
            Some(old) if old.commitment == c => Err("duplicate commitment"),
            Some(_) if self.is_equivocator(signer) => Err("double commitment already recorded"),
            Some(_) => Ok(Effect::Misbehaved(signer, Misbehaviour::DoubleCommitment)),
        }
    }

    /// What a reveal by `signer` would do (in the reveal phase, checked by the caller).
    pub(crate) fn judge_reveal(
        &self,
        id: &[u8; 32],
        signer: u32,
        outcome: &RevealedOutcome,
        salt: [u8; 32],
        attestation: &[u8],
        committee: &Committee,
    ) -> Result<Effect, &'static str> {
        let committed = self
            .commits
            .get(&signer)
            .ok_or("reveal without a commitment")?
            .commitment;
        if self.is_equivocator(signer) {
            return Err("reveal from an equivocator (excluded from this request)");
        }
        if self.reveals.contains_key(&signer) || self.misbehaved(signer) {
            return Err("second reveal");
        }
        if let RevealedOutcome::Manifest(text) = outcome
            && text.len() > manifest_bound(&self.request)
        {
            return Err("a manifest over the bound of its request's kind");
        }
        let digest = outcome_digest(outcome).ok_or("malformed outcome")?;
        let member = &committee.members()[signer as usize];
        if commitment(id, &digest, &salt, &member.peer_id) != committed {
            return Ok(Effect::Misbehaved(signer, Misbehaviour::RevealMismatch));
        }
        if attestation.len() != crate::crypto::SIGNATURE_LEN {
            return Ok(Effect::Misbehaved(signer, Misbehaviour::BadAttestation));
        }
        Ok(Effect::Reveal(
            signer,
            Reveal {
                digest,
                outcome: outcome.clone(),
                attestation: attestation.to_vec(),
            },
        ))
    }

    /// Records a judged message.
    pub(crate) fn record(&mut self, effect: Effect) {
        match effect {
            Effect::Commit(m, c) => {
                self.commits.insert(m, c);
            }
            Effect::Reveal(m, r) => {
                self.reveals.insert(m, r);
            }
            Effect::Misbehaved(m, k) => self.misbehaviour.push((m, k)),
        }
    }

    /// The reveals grouped by digest, with their signatures decoded onto the curve
    /// (`None`: does not decode) and the group's statement: what [`Round::decide`] checks.
    pub(crate) fn attestation_groups(
        &self,
        id: &[u8; 32],
        committee: &Committee,
    ) -> Vec<AttestationGroup> {
        let mut groups: BTreeMap<[u8; 32], Vec<u32>> = BTreeMap::new();
        for (m, r) in &self.reveals {
            groups.entry(r.digest).or_default().push(*m);
        }
        groups
            .into_iter()
            .map(|(digest, members)| {
                let signatures: Vec<Option<UncheckedSignature>> = members
                    .iter()
                    .map(|m| UncheckedSignature::from_bytes(&self.reveals[m].attestation).ok())
                    .collect();
                let aggregate = signatures
                    .iter()
                    .map(Option::as_ref)
                    .collect::<Option<Vec<_>>>()
                    .and_then(UncheckedSignature::aggregate);
                AttestationGroup {
                    digest,
                    statement: attestation_statement(committee.origin(), id, &digest),
                    signatures,
                    aggregate,
                    members,
                }
            })
            .collect()
    }

    /// Checks the attestations of `groups` (from [`Round::attestation_groups`]), one
    /// aggregate per digest; `batch_ok`: every group with an aggregate was verified
    /// already, in one batch with other rounds' ([`batch_item`]). Only where an aggregate
    /// fails is each member checked; members whose signature does not verify move from the
    /// reveals to misbehaviour (BadAttestation). Returns, per digest, the good members and
    /// the aggregate of their signatures.
    fn check_attestations(
        &mut self,
        groups: Vec<AttestationGroup>,
        batch_ok: bool,
        committee: &Committee,
    ) -> BTreeMap<[u8; 32], (Vec<u32>, BlsSignature)> {
        let key = |m: u32| -> &BlsPublicKey { &committee.members()[m as usize].bls_public_key };
        let mut out = BTreeMap::new();
        let mut bad = Vec::new();
        for g in groups {
            let together = match (&g.aggregate, batch_ok) {
                (Some(_), true) => true,
                (Some(_), false) => batch_item(&g, committee)
                    .is_some_and(|(k, s)| k.verify(g.statement.as_bytes(), s).is_ok()),
                (None, _) => false,
            };
            if together {
                let agg = g.aggregate.expect("checked");
                out.insert(g.digest, (g.members, agg));
                continue;
            }
            let mut good = Vec::new();
            let mut sigs = Vec::new();
            for (m, sig) in g.members.iter().zip(g.signatures) {
                match sig.and_then(|s| s.check().ok()) {
                    Some(s) if key(*m).verify(g.statement.as_bytes(), &s).is_ok() => {
                        good.push(*m);
                        sigs.push(s);
                    }
                    _ => bad.push(*m),
                }
            }
            if let Some(agg) = BlsSignature::aggregate(&sigs) {
                out.insert(g.digest, (good, agg));
            }
        }
        for m in bad {
            self.reveals.remove(&m);
            self.misbehaviour.push((m, Misbehaviour::BadAttestation));
        }
        out
    }

    /// The log entry of this round, decided at `height` (`groups` and `batch_ok` as for
    /// [`Round::check_attestations`]).
    pub(crate) fn decide(
        mut self,
        height: u64,
        committee: &Committee,
        groups: Vec<AttestationGroup>,
        batch_ok: bool,
    ) -> Decided {
        let groups = self.check_attestations(groups, batch_ok, committee);
        let best = groups
            .iter()
            .max_by_key(|(d, (ms, _))| (ms.len(), std::cmp::Reverse(**d)));
        let t = committee.threshold();
        let (verdict, digest, manifest, attestation, majority) = match best {
            Some((d, (ms, agg))) if ms.len() >= t => {
                // The group's aggregate was verified above: it is the attestation.
                let mut signers = SignerBitmap::new(committee.len());
                for m in ms {
                    signers.set(*m as usize);
                }
                let ts = ThresholdSignature {
                    signers,
                    aggregate: agg.clone(),
                };
                let (verdict, manifest) = match &self.reveals[&ms[0]].outcome {
                    RevealedOutcome::Manifest(text) => (Verdict::Reproduced, Some(text.clone())),
                    RevealedOutcome::Failure(_) => (Verdict::Failed, None),
                };
                (verdict, d.to_vec(), manifest, ts.to_bytes(), ms.clone())
            }
            _ => (
                Verdict::NotReproduced,
                Vec::new(),
                None,
                Vec::new(),
                Vec::new(),
            ),
        };
        let dissenters = self
            .reveals
            .iter()
            .filter(|(m, _)| !majority.contains(m))
            .map(|(m, r)| Dissent {
                member: *m,
                digest: r.digest.to_vec(),
            })
            .collect();
        // Kept only for a not-reproduced verdict, where they explain the entry: beside a
        // reproduced one a Byzantine member's junk manifest would cost every member storage
        // for each request.
        let mut dissenting_manifests: Vec<String> = self
            .reveals
            .iter()
            .filter(|_| verdict == Verdict::NotReproduced)
            .filter(|(m, _)| !majority.contains(m))
            .filter_map(|(_, r)| match &r.outcome {
                RevealedOutcome::Manifest(text) => Some(text.clone()),
                RevealedOutcome::Failure(_) => None,
            })
            .collect();
        dissenting_manifests.sort();
        dissenting_manifests.dedup();
        let silent = self
            .counted_committers()
            .filter(|m| !self.reveals.contains_key(m) && !self.misbehaved(*m))
            .collect();
        Decided {
            entry: LogEntry {
                format: ENTRY_FORMAT,
                request: self.request,
                verdict,
                digest,
                attestation,
                dissenters,
                silent,
                misbehaviour: self.misbehaviour,
                height,
                epoch: committee.epoch(),
            },
            lockfile: self.lockfile,
            manifest,
            dissenting_manifests,
        }
    }
}
