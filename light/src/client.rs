//! [`Client`]: asks the members it is given, in order, and returns only values that passed
//! the checks of [`crate::check`]. A member whose answer fails is a faulty (or unreachable)
//! member: the client says so through a [`Notice`] and asks the next one. A split view is
//! reported only on evidence (two validly cosigned checkpoints that cannot be in one log).

use std::time::Instant;

use synchronicity_net::multiaddr::Protocol;
use synchronicity_net::{
    Keypair, MemberAddr, Multiaddr, NetConfig, NetError, NetworkHandle, PeerId, Refusal,
    RequestKind,
};
use synchronicity_verify::tlog::{CosignedCheckpoint, Hash, merkle};
use synchronicity_verify::{BatchVerifier, Committee, CommitteeChain, Manifest, Verdict};

use crate::check::{self, CheckedProof, Download, ProofQuery, Standing};
use crate::config::NoticeSink;
use crate::default_variant::Lockfile;
use crate::protocol::{LightRequest, LightResponse, MAX_PROOF_BATCH};
use crate::{
    Advance, BatchAnswer, CheckpointUpdate, ClientConfig, LightError, Notice, PeerError,
    ProvenLookup, VerifiedBuild,
};

/// Most bytes of `crate@version`s in one lookup request (within the request bound).
pub const LOOKUP_BATCH_BYTES: usize = 12 * 1024;

/// The first pause after a member refused a request for rate; it doubles up to
/// [`RATE_PAUSE_MAX`].
const RATE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
const RATE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(800);
/// Most times one request is asked of a member that refuses it for rate (0.7 s of pauses
/// between them): a member that always refuses costs a client little before the next
/// member is asked.
const RATE_RETRIES: u32 = 4;

/// A light client: its own throwaway libp2p identity, the light protocol only.
pub struct Client {
    net: NetworkHandle,
    /// The latest committee the client trusts (the genesis, or a chain's latest).
    committee: Committee,
    /// What the client verifies with: its chain, or the one committee it was given.
    chain: CommitteeChain,
    members: Vec<MemberAddr>,
    peers: Vec<Multiaddr>,
    notices: Option<NoticeSink>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("origin", &self.committee.origin())
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// The committee as the network sees it: each member's peer id and addresses.
fn member_addrs(committee: &Committee) -> Result<Vec<MemberAddr>, LightError> {
    committee
        .members()
        .iter()
        .map(|m| {
            let bad = |what: String| LightError::Committee {
                member: m.name.clone(),
                what,
            };
            let peer_id: PeerId = m
                .peer_id
                .parse()
                .map_err(|_| bad(format!("peer id {:?} does not parse", m.peer_id)))?;
            let addrs = m
                .addrs
                .iter()
                .map(|a| {
                    a.parse()
                        .map_err(|_| bad(format!("address {a:?} is not a multiaddress")))
                })
                .collect::<Result<_, _>>()?;
            Ok(MemberAddr { peer_id, addrs })
        })
        .collect()
}

impl Client {
    /// Starts the client's network (no listening address; members are dialled as asked).
    pub async fn start(config: ClientConfig) -> Result<Self, LightError> {
        let members = member_addrs(&config.committee)?;
        let (net, _events) = synchronicity_net::start(
            NetConfig::new(Keypair::generate_ed25519(), members.clone())
                .with_request_timeout(config.request_timeout),
        )
        .await
        .map_err(LightError::Start)?;
        Ok(Self {
            net,
            chain: config
                .chain
                .unwrap_or_else(|| CommitteeChain::single(config.committee.clone())),
            committee: config.committee,
            members,
            peers: config.peers,
            notices: config.notices,
        })
    }

    /// The trusted committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The members asked, in order.
    pub fn peers(&self) -> &[Multiaddr] {
        &self.peers
    }

    fn notice(&self, n: Notice) {
        if let Some(sink) = &self.notices {
            sink(&n);
        }
    }

    fn peer_failed(&self, peer: &Multiaddr, error: PeerError) {
        self.notice(Notice::PeerFailed {
            peer: peer.clone(),
            error,
        });
    }

    /// The peer id of `addr`: its `/p2p/` part, or the committee member listening there.
    fn peer_id(&self, addr: &Multiaddr) -> Result<PeerId, PeerError> {
        if let Some(Protocol::P2p(p)) = addr.iter().last() {
            return Ok(p);
        }
        self.members
            .iter()
            .find(|m| m.addrs.contains(addr))
            .map(|m| m.peer_id)
            .ok_or_else(|| PeerError::UnknownPeer(addr.clone()))
    }

    /// One request to the member at `peer`, its answer UNCHECKED (decoded within
    /// [`crate::MAX_LIGHT_RESPONSE`]). Every other method checks what it returns.
    pub async fn ask(
        &self,
        peer: &Multiaddr,
        req: &LightRequest,
    ) -> Result<LightResponse, PeerError> {
        let id = self.peer_id(peer)?;
        self.net.dial(peer.clone()).await?;
        // A member that refuses for rate may not be faulty: its bucket refills (the net
        // crate's light rate, tokens per second), so the same request is asked again after a
        // short pause, RATE_RETRIES times in all, before the refusal counts as this peer's
        // answer (and the next member is asked).
        let mut pause = RATE_PAUSE;
        for asked in 1..=RATE_RETRIES {
            match self
                .net
                .request(id, RequestKind::Light, req.to_bytes())
                .await
            {
                Err(NetError::Refused(Refusal::RateLimited)) if asked < RATE_RETRIES => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RATE_PAUSE_MAX);
                }
                other => return Ok(LightResponse::from_bytes(&other?)?),
            }
        }
        Err(NetError::Refused(Refusal::RateLimited).into())
    }

    /// The proof `query` asks for, from the first member whose answer passes
    /// [`check::check_proof`] with a reproduced verdict. For a default variant, one built
    /// with the shipped lockfile is preferred: the other members are asked before one with
    /// a generated lockfile is kept (and [`Notice::GeneratedLockfile`] says so). Without a
    /// reproduced answer, the first verified one of another verdict is returned: the
    /// group's verified verdict (check [`CheckedProof::verdict`]).
    pub async fn proof(&self, query: &ProofQuery) -> Result<CheckedProof, LightError> {
        if query.default_variant_asked() {
            return self.default_proof(query.key()).await;
        }
        let req = LightRequest::Proof {
            key: query.key().to_string(),
        };
        let mut generated: Option<CheckedProof> = None;
        let mut unreproduced: Option<CheckedProof> = None;
        for addr in &self.peers {
            let answer = match self.ask(addr, &req).await {
                Ok(LightResponse::Proof(text)) => check::check_proof(text, &self.chain, query),
                Ok(other) => Err(check::unexpected(other)),
                Err(e) => Err(e),
            };
            match answer {
                Ok(p) if p.verdict() == Verdict::Reproduced => {
                    if query.default_variant_asked() && p.lockfile() == Lockfile::Generated {
                        generated.get_or_insert(p);
                    } else {
                        return Ok(p);
                    }
                }
                Ok(p) => {
                    self.notice(Notice::NotReproduced {
                        peer: addr.clone(),
                        verdict: p.verdict(),
                    });
                    unreproduced.get_or_insert(p);
                }
                Err(e) => self.peer_failed(addr, e),
            }
        }
        if let Some(p) = generated {
            self.notice(Notice::GeneratedLockfile {
                spec: query.key().to_string(),
            });
            return Ok(p);
        }
        unreproduced.ok_or(LightError::NoVerifiedAnswer("a proof"))
    }

    /// The default variant of `spec` (`crate@version`) from a proven lookup
    /// ([`Client::lookups`]): the client picks it from the complete list of entries, so no
    /// member can hide it or pick another; [`LightError::Absent`] is a proof of absence.
    async fn default_proof(&self, spec: &str) -> Result<CheckedProof, LightError> {
        let mut verifier = BatchVerifier::in_chain(&self.chain);
        let mut held = 0;
        let found = self
            .lookups(&mut verifier, &[spec.to_string()], &mut held)
            .await
            .pop()
            .flatten()
            .ok_or(LightError::NoVerifiedAnswer("a proven lookup"))?;
        match found.default {
            Some(p) => {
                // As a single proof is checked: the attesters' own signature too.
                let committee = self
                    .chain
                    .committee(p.record().entry_epoch())
                    .unwrap_or_else(|| self.chain.latest());
                p.record()
                    .check_attestation(committee)
                    .map_err(LightError::Pinned)?;
                // A recipe's lockfile is the workspace's own, never a shipped one.
                if p.lockfile() == Lockfile::Generated && !p.record().entry().request.is_recipe() {
                    self.notice(Notice::GeneratedLockfile {
                        spec: spec.to_string(),
                    });
                }
                Ok(p)
            }
            None if found.entries.is_empty() => Err(LightError::Absent {
                spec: spec.to_string(),
                size: found.checkpoint_size,
            }),
            None => Err(LightError::NoDefault {
                spec: spec.to_string(),
                size: found.checkpoint_size,
                variants: found.variants_line(),
            }),
        }
    }

    /// What the log holds for each of `specs` (`crate@version`), proven complete by the
    /// index of a cosigned checkpoint ([`check::check_lookups`]), asked in batches (at most
    /// [`MAX_PROOF_BATCH`] specs and [`LOOKUP_BATCH_BYTES`] of them per request) from the
    /// first member whose answer passes; a member that answers part of a batch is asked
    /// for the rest. `held` is the largest checkpoint size the caller holds: an answer
    /// under a smaller one is a faulty (or stale) member's, and `held` grows with each
    /// accepted answer. A negative answer (proven absent, no default variant, a default
    /// built with a generated lockfile) is asked of one more member, and the answer under
    /// the larger checkpoint kept: a member serving an old checkpoint cannot alone hide
    /// what was logged after it. `None` for a spec no member answered provably (or one
    /// longer than [`crate::MAX_SPEC`], never asked).
    pub async fn lookups(
        &self,
        verifier: &mut BatchVerifier<'_>,
        specs: &[String],
        held: &mut u64,
    ) -> Vec<Option<ProvenLookup>> {
        let mut out: Vec<Option<ProvenLookup>> = vec![None; specs.len()];
        // A spec no member would take (over the bound) is not asked: it would fail the
        // whole batch.
        let asked: Vec<usize> = (0..specs.len())
            .filter(|&i| specs[i].len() <= crate::MAX_SPEC)
            .collect();
        let mut next = 0;
        while next < asked.len() {
            let mut end = next;
            let mut bytes = 0;
            while end < asked.len()
                && end - next < MAX_PROOF_BATCH
                && (end == next || bytes + specs[asked[end]].len() + 8 <= LOOKUP_BATCH_BYTES)
            {
                bytes += specs[asked[end]].len() + 8;
                end += 1;
            }
            let batch: Vec<String> = asked[next..end].iter().map(|&i| specs[i].clone()).collect();
            match self.lookup_batch(verifier, &batch, *held, None).await {
                Some((peer, list)) => {
                    let first = next;
                    next += list.len();
                    for (k, l) in list.into_iter().enumerate() {
                        out[asked[first + k]] = Some(l);
                    }
                    // A negative answer (absent, no default, a generated lockfile) may be
                    // a stale member's under an old checkpoint: one other member is asked
                    // for those, and the answer under the larger checkpoint is kept.
                    let weak: Vec<usize> = asked[first..next]
                        .iter()
                        .copied()
                        .filter(|&i| out[i].as_ref().is_some_and(ProvenLookup::is_negative))
                        .collect();
                    if !weak.is_empty() {
                        let again: Vec<String> = weak.iter().map(|&i| specs[i].clone()).collect();
                        if let Some((_, list)) =
                            self.lookup_batch(verifier, &again, *held, Some(peer)).await
                        {
                            for (k, l) in list.into_iter().enumerate() {
                                let slot = &mut out[weak[k]];
                                if slot
                                    .as_ref()
                                    .is_none_or(|o| l.checkpoint_size > o.checkpoint_size)
                                {
                                    *slot = Some(l);
                                }
                            }
                        }
                    }
                    for l in out.iter().flatten() {
                        *held = (*held).max(l.checkpoint_size);
                    }
                }
                // No member answered this batch provably: its specs stay unanswered.
                None => next = end,
            }
        }
        out
    }

    /// One batch of lookups from the first member (after `after`, if given: then only
    /// members other than it, one of them) whose answer passes [`check::check_lookups`];
    /// which member answered, and its answers (possibly fewer than asked).
    async fn lookup_batch(
        &self,
        verifier: &mut BatchVerifier<'_>,
        batch: &[String],
        held: u64,
        after: Option<usize>,
    ) -> Option<(usize, Vec<ProvenLookup>)> {
        let req = LightRequest::Lookups {
            specs: batch.to_vec(),
        };
        let order: Vec<usize> = match after {
            None => (0..self.peers.len()).collect(),
            Some(a) => (1..self.peers.len())
                .map(|k| (a + k) % self.peers.len())
                .take(1)
                .collect(),
        };
        for p in order {
            let addr = &self.peers[p];
            let checked = match self.ask(addr, &req).await {
                Ok(a) => {
                    check::check_lookups(verifier, &self.chain, &self.committee, batch, held, a)
                }
                Err(e) => Err(e),
            };
            match checked {
                Ok(list) => return Some((p, list)),
                Err(e) => self.peer_failed(addr, e),
            }
        }
        None
    }

    /// A reproduced build of `name@version`'s default variant ([`Client::proof`]) and its
    /// attested manifest (fetched by the digest the attesters signed, and checked against it).
    pub async fn reproduced(&self, name: &str, version: &str) -> Result<VerifiedBuild, LightError> {
        let proof = self
            .proof(&ProofQuery::default_variant(name, version))
            .await?;
        let build =
            proof
                .record()
                .clone()
                .require_reproduced()
                .map_err(|_| LightError::NotReproduced {
                    spec: format!("{name}@{version}"),
                    verdict: proof.verdict(),
                })?;
        let bytes = self.blob(build.manifest_digest()).await?;
        let manifest_text =
            String::from_utf8(bytes).map_err(|_| LightError::NotText("attested manifest"))?;
        let manifest = build.manifest(&manifest_text).map_err(LightError::Pinned)?;
        Ok(VerifiedBuild {
            proof,
            build,
            manifest,
            manifest_text,
        })
    }

    /// The text with this sha256 (a lockfile or a manifest an entry pins), from the first
    /// member whose answer hashes right.
    pub async fn blob(&self, sha256: &[u8]) -> Result<Vec<u8>, LightError> {
        let req = LightRequest::Blob {
            sha256: sha256.to_vec(),
        };
        for addr in &self.peers {
            let answer = match self.ask(addr, &req).await {
                Ok(a) => check::blob(a, sha256),
                Err(e) => Err(e),
            };
            match answer {
                Ok(b) => return Ok(b),
                Err(e) => self.peer_failed(addr, e),
            }
        }
        Err(LightError::NoBlob(hex::encode(sha256)))
    }

    /// The latest cosigned checkpoint, verified against the committee and `accept` (an
    /// extra policy, e.g. witness cosignatures; `Err` is its one-line reason) and, when
    /// `held` is given, proven consistent with it (not older, and the member's consistency
    /// proof verifies). A wrong, stale or unprovable answer is a faulty member. A split
    /// view ([`LightError::SplitView`]) only on evidence: a validly cosigned checkpoint of
    /// the held size with another root, or one that no member proves consistent with
    /// the held one.
    pub async fn checkpoint(
        &self,
        held: Option<&CosignedCheckpoint>,
        accept: &(dyn Fn(&CosignedCheckpoint) -> Result<(), String> + Sync),
    ) -> Result<CheckpointUpdate, LightError> {
        let req = LightRequest::Checkpoint {
            old_size: held.map(|c| c.checkpoint().size),
        };
        // Validly cosigned checkpoints whose consistency proof failed: the member may be
        // faulty, or the committee may have signed two histories. Resolved below.
        let mut unproven: Vec<(&Multiaddr, CosignedCheckpoint)> = Vec::new();
        let mut accepted: Option<CheckpointUpdate> = None;
        for addr in &self.peers {
            let (checkpoint, proof) = match self.checked_checkpoint(addr, &req, accept).await {
                Ok(v) => v,
                Err(e) => {
                    self.peer_failed(addr, e);
                    continue;
                }
            };
            let Some(held) = held else {
                accepted = Some(CheckpointUpdate { checkpoint, proof });
                break;
            };
            match check::standing(held, &checkpoint, &proof) {
                Standing::Consistent => {
                    accepted = Some(CheckpointUpdate { checkpoint, proof });
                    break;
                }
                Standing::SplitView(why) => {
                    return Err(check::split_view(why, held, &checkpoint, Some(addr)));
                }
                Standing::Older(e) => self.peer_failed(addr, e),
                Standing::Unproven(e) => {
                    self.peer_failed(addr, e);
                    unproven.push((addr, checkpoint));
                }
            }
        }
        // A cosigned checkpoint nobody proved consistent: ask every member for a proof to
        // exactly that size before calling it a split view.
        if let Some(held) = held {
            for (addr, served) in &unproven {
                let c = served.checkpoint();
                if let Some(a) = &accepted
                    && a.checkpoint.checkpoint().size == c.size
                    && a.checkpoint.checkpoint().root != c.root
                {
                    let why = check::different_roots(c.size);
                    return Err(check::split_view(why, &a.checkpoint, served, Some(*addr)));
                }
                if !self.proven_consistent(held, served).await {
                    return Err(check::split_view(
                        unprovable(served, held),
                        held,
                        served,
                        Some(*addr),
                    ));
                }
                self.notice(Notice::ProvenByAnother {
                    peer: (*addr).clone(),
                    size: c.size,
                });
            }
        }
        accepted.ok_or(LightError::NoVerifiedAnswer("a checkpoint"))
    }

    /// One member's checkpoint answer, verified against the committee and `accept`.
    async fn checked_checkpoint(
        &self,
        addr: &Multiaddr,
        req: &LightRequest,
        accept: &(dyn Fn(&CosignedCheckpoint) -> Result<(), String> + Sync),
    ) -> Result<(CosignedCheckpoint, Vec<Hash>), PeerError> {
        let (note, proof) = match self.ask(addr, req).await? {
            LightResponse::Checkpoint { note, proof } => (note, proof),
            other => return Err(check::unexpected(other)),
        };
        let (checkpoint, _) = self.chain.verify_checkpoint(&note)?;
        accept(&checkpoint).map_err(PeerError::Policy)?;
        Ok((checkpoint, check::proof_hashes(&proof)?))
    }

    /// Whether some member proves `new` consistent with `old` (`old` not larger).
    async fn proven_consistent(&self, old: &CosignedCheckpoint, new: &CosignedCheckpoint) -> bool {
        let (o, n) = (old.checkpoint(), new.checkpoint());
        let req = LightRequest::Consistency {
            old: o.size,
            new: n.size,
        };
        for addr in &self.peers {
            let proven = match self.ask(addr, &req).await {
                Ok(LightResponse::Consistency(p)) => check::proof_hashes(&p).and_then(|p| {
                    merkle::verify_consistency(o.size, n.size, &o.root, &n.root, &p).map_err(
                        |error| PeerError::Inconsistent {
                            old: o.size,
                            new: n.size,
                            error,
                        },
                    )
                }),
                Ok(other) => Err(check::unexpected(other)),
                Err(e) => Err(e),
            };
            match proven {
                Ok(()) => return true,
                Err(e) => self.peer_failed(addr, e),
            }
        }
        false
    }

    /// Whether `fresh` moves `held` forward in the same log: not smaller, and the same
    /// checkpoint or proven consistent by a member. The same size with another root, or a
    /// newer one no member proves consistent, is a split view.
    pub async fn advance(
        &self,
        held: &CosignedCheckpoint,
        fresh: &CosignedCheckpoint,
    ) -> Result<Advance, LightError> {
        let (o, n) = (held.checkpoint(), fresh.checkpoint());
        if n.size < o.size {
            return Ok(Advance::Older);
        }
        if n.size == o.size {
            if n.root != o.root {
                let why = check::different_roots(n.size);
                return Err(check::split_view(why, held, fresh, None));
            }
            return Ok(Advance::Same);
        }
        if self.proven_consistent(held, fresh).await {
            Ok(Advance::Forward)
        } else {
            Err(check::split_view(
                unprovable(fresh, held),
                held,
                fresh,
                None,
            ))
        }
    }

    /// The proofs of the default variants of `crates` (`(name, version)`), asked in
    /// batches of [`MAX_PROOF_BATCH`] from the first member that answers each batch whole,
    /// each checked by [`check::check_batch_proof`] with `verifier` (made for this
    /// client's committee). One answer per crate, in order.
    pub async fn batch(
        &self,
        verifier: &mut BatchVerifier<'_>,
        crates: &[(&str, &str)],
    ) -> Vec<BatchAnswer> {
        let mut out = Vec::with_capacity(crates.len());
        for chunk in crates.chunks(MAX_PROOF_BATCH) {
            let keys: Vec<String> = chunk.iter().map(|(n, v)| format!("{n}@{v}")).collect();
            let texts = self.batch_texts(keys).await;
            for ((name, version), text) in chunk.iter().zip(texts) {
                out.push(match text {
                    None => BatchAnswer::Unknown,
                    Some(text) => {
                        match check::check_batch_proof(
                            verifier,
                            &self.committee,
                            name,
                            version,
                            text,
                        ) {
                            Ok(p) => BatchAnswer::Proof(Box::new(p)),
                            Err(e) => BatchAnswer::Refused(e),
                        }
                    }
                });
            }
        }
        out
    }

    /// One proof text (or none) per key from the first member that answers the batch whole.
    async fn batch_texts(&self, keys: Vec<String>) -> Vec<Option<String>> {
        let n = keys.len();
        let req = LightRequest::Proofs { keys };
        for addr in &self.peers {
            match self.ask(addr, &req).await {
                Ok(LightResponse::Proofs(answers)) if answers.len() == n => {
                    return answers.into_iter().map(Result::ok).collect();
                }
                Ok(LightResponse::Proofs(_)) => self.peer_failed(addr, PeerError::BatchLength),
                Ok(other) => self.peer_failed(addr, check::unexpected(other)),
                Err(e) => self.peer_failed(addr, e),
            }
        }
        vec![None; n]
    }

    /// The artifact at `path` in the attested `manifest`, its bytes hashing to the
    /// manifest's sha256 for that path (so `manifest.check_artifact(Some(path), ..)` holds),
    /// fetched in chunks from one member at a time. A download that changes members STARTS
    /// OVER: bytes from a member that failed, sent a chunk that does not fit, or whose file
    /// does not hash right are never combined with another member's (a faulty member's
    /// prefix cannot spoil an honest one's download). Each member gets at most two turns;
    /// everything ends at `deadline`. `progress(done, total)` is called after each chunk.
    pub async fn artifact(
        &self,
        manifest: &Manifest,
        path: &str,
        deadline: Instant,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Vec<u8>, LightError> {
        self.artifact_starting_at(manifest, path, 0, deadline, progress)
            .await
    }

    /// [`Client::artifact`] asking the members from the `first`-th of the client's peers
    /// on (wrapping around): many files fetched at once spread over the members (each
    /// member rate-limits each client on its own).
    pub async fn artifact_starting_at(
        &self,
        manifest: &Manifest,
        path: &str,
        first: usize,
        deadline: Instant,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Vec<u8>, LightError> {
        let sha256 = *manifest
            .get(path)
            .ok_or_else(|| LightError::NotInManifest(path.to_string()))?;
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut last = String::from("no peers");
        let n = self.peers.len();
        let first = first % n.max(1);
        let order = (0..2 * n).map(|i| &self.peers[(first + i) % n]);
        for addr in order {
            let mut download = Download::new(sha256);
            let turn = tokio::time::timeout_at(
                deadline,
                self.download_from(addr, &mut download, progress),
            )
            .await;
            match turn {
                Ok(Ok(())) => return Ok(download.into_bytes()),
                Ok(Err(error)) => {
                    last = format!("{addr}: {error}");
                    let dropped = download.received();
                    self.notice(if dropped == 0 {
                        Notice::PeerFailed {
                            peer: addr.clone(),
                            error,
                        }
                    } else {
                        Notice::DownloadRestarted {
                            peer: addr.clone(),
                            error,
                            dropped,
                        }
                    });
                }
                Err(_) => {
                    return Err(LightError::ArtifactDeadline {
                        sha256: hex::encode(sha256),
                        last,
                    });
                }
            }
        }
        Err(LightError::NoArtifact {
            sha256: hex::encode(sha256),
            last,
        })
    }

    /// The whole artifact from `addr` alone, into `download`.
    async fn download_from(
        &self,
        addr: &Multiaddr,
        download: &mut Download,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<(), PeerError> {
        loop {
            let answer = self.ask(addr, &download.request()).await?;
            let more = download.accept(answer)?;
            let total = download.total().unwrap_or(0);
            progress(download.received() as u64, total);
            if more.is_none() {
                return Ok(());
            }
        }
    }

    /// Stops the client's network.
    pub async fn shutdown(self) {
        self.net.shutdown().await;
    }
}

/// The reason of a split view: no member proves `served` consistent with `held`.
fn unprovable(served: &CosignedCheckpoint, held: &CosignedCheckpoint) -> String {
    format!(
        "no reachable member proves the cosigned checkpoint of size {} consistent with the remembered one of size {}",
        served.checkpoint().size,
        held.checkpoint().size
    )
}
