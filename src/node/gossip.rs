//! Admission of gossiped protocol messages: what the node's verdict on a message of the
//! messages topic is, and the mempool insert that an `Accept` means. Gossipsub forwards
//! only what is accepted, so everything here runs BEFORE a message is admitted or relayed.
//!
//! In order, cheapest first: decodable ([`SignedMessage::from_cbor`], bounded by the topic's
//! size limit); a request this committee could ever order
//! ([`crate::protocol::check_request`]: the committee's toolchain and target, bounded size,
//! the lockfile it pins); a member's valid envelope (Ed25519, verified once per node);
//! commitments and reveals only for open rounds; then the mempool's per-member bounds.
//! Committee-change approvals are checked in full (the rules of a block) before admission.
//! Invalid → `Reject` (gossipsub penalises the relayer and does not forward), counted in
//! `gossip_invalid`, one debug line; over a bound → `Ignore`, counted in
//! `mempool_refused_over_budget`; a duplicate → `Ignore`.

use std::sync::atomic::Ordering;

use synchronicity_net::Validation;

use super::mempool::Refused;
use super::shared::Shared;
use crate::protocol::{Body, SignedMessage};

/// The verdict on gossiped message bytes `data`; an accepted message is in the mempool.
pub(crate) fn admit_message(shared: &Shared, data: &[u8]) -> Validation {
    let invalid = |why: &dyn std::fmt::Display| {
        shared
            .counters
            .gossip_invalid
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("gossip message rejected: {why}");
        Validation::Reject
    };
    let msg = match SignedMessage::from_cbor(data) {
        Ok(m) => m,
        Err(e) => return invalid(&e),
    };

    if let Err(e) = shared.envelopes.verify(&msg, &shared.committee) {
        // Signed for the previous epoch's committee: a member still handing over (or
        // re-publishing) around the change, not a forger: ignored, not penalised.
        if shared
            .past
            .last()
            .is_some_and(|p| msg.verify(&p.committee).is_ok())
        {
            return Validation::Ignore;
        }
        return invalid(&e);
    }
    // A request's own checks after its envelope's: a recipe request decodes up to 1 MiB,
    // which only a member may make this node do.
    if let Body::Request(pinned) = &msg.body
        && let Err(e) = crate::protocol::check_request(pinned, &shared.committee)
    {
        return invalid(&format_args!("request {}: {e}", pinned.request.spec()));
    }
    // Commitments and reveals only for open rounds: a member cannot fill the pool with
    // messages about requests that do not exist (its author re-publishes a message that
    // arrived before we applied the request's block). Read from the published view: a
    // round that closes meanwhile is pruned from the pool after the next height.
    if let Body::Commit { request_id, .. } | Body::Reveal { request_id, .. } = &msg.body {
        let view = shared.view();
        let open =
            <[u8; 32]>::try_from(request_id.as_slice()).is_ok_and(|id| view.state.is_open(&id));
        if !open {
            return Validation::Ignore;
        }
    }
    // An approval is checked in full before it is pooled or relayed (the proposed committee
    // once per text, the BLS signature): one that could not be ordered now (another pending
    // approval of the same member's, a change already scheduled) is ignored, not relayed.
    // The pool keeps one approval per member, its latest.
    if let Body::Approve { .. } = &msg.body {
        // At most one check per member and second, whatever it sends.
        {
            let mut checks = shared
                .approval_checks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if checks
                .get(&msg.signer)
                .is_some_and(|at| now.duration_since(*at) < super::shared::APPROVAL_CHECK_SPACING)
            {
                return Validation::Ignore;
            }
            checks.insert(msg.signer, now);
        }
        let view = shared.view();
        if let Err(why) = view.state.check(&msg, crate::clock::now_ms(), shared.env()) {
            tracing::debug!(signer = msg.signer, "approval not admitted: {why}");
            return Validation::Ignore;
        }
    }
    let signer = msg.signer;
    match shared.mempool.insert(msg, false) {
        Ok(()) => Validation::Accept,
        Err(Refused::Duplicate) => Validation::Ignore,
        Err(e) => {
            shared
                .counters
                .mempool_refused_over_budget
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(signer, "gossip message refused: {e}");
            Validation::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogStore;
    use crate::node::mempool::MAX_BYTES_PER_SIGNER;
    use crate::testing::{TestCommittee, request};

    fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Against a real store and committee: a request for another target or toolchain, a
    /// forged envelope, a lockfile that is not the pinned one and undecodable bytes are
    /// rejected (not admitted, so not relayed) and counted; a valid request is accepted
    /// once; a member over its byte budget is ignored and counted, while another member's
    /// request is still accepted.
    #[test]
    fn invalid_messages_are_rejected_before_the_mempool() {
        let dir = tempfile::tempdir().unwrap();
        let tc = TestCommittee::new(4, 61);
        let (shared, _) =
            Shared::restore(tc.committee.clone(), 0, LogStore::open(dir.path()).unwrap()).unwrap();
        let sign = |m: usize, body: Body| {
            SignedMessage::sign(
                body,
                m as u32,
                &tc.identities[m],
                tc.committee.signing_domain(),
            )
            .to_cbor()
        };
        let pooled = || shared.mempool.len();

        let mut other_target = request("a", "1.0.0", "l");
        other_target.request.target = "aarch64-unknown-linux-gnu".into();
        let mut other_toolchain = request("a", "1.0.0", "l");
        other_toolchain.request.toolchain = "1.80.0".into();
        let mut wrong_lockfile = request("a", "1.0.0", "l");
        wrong_lockfile.lockfile = "another".into();
        let mut forged =
            SignedMessage::from_cbor(&sign(1, Body::Request(request("a", "1.0.0", "l")))).unwrap();
        forged.signer = 2;
        let bad: Vec<Vec<u8>> = vec![
            sign(1, Body::Request(other_target)),
            sign(1, Body::Request(other_toolchain)),
            sign(1, Body::Request(wrong_lockfile)),
            forged.to_cbor(),
            vec![0xff; 100],
        ];
        for (k, b) in bad.iter().enumerate() {
            assert_eq!(admit_message(&shared, b), Validation::Reject, "case {k}");
        }
        assert_eq!(load(&shared.counters.gossip_invalid), bad.len() as u64);
        assert_eq!(pooled(), 0);

        let good = sign(1, Body::Request(request("a", "1.0.0", "l")));
        assert_eq!(admit_message(&shared, &good), Validation::Accept);
        assert_eq!(admit_message(&shared, &good), Validation::Ignore);
        assert_eq!(pooled(), 1);

        // Member 3 gossips 1 MiB requests until its budget is spent.
        let big = |k: usize| {
            let lockfile = format!(
                "{k:08}{}",
                "x".repeat(crate::request::MAX_LOCKFILE_SIZE - 8)
            );
            sign(
                3,
                Body::Request(request(&format!("big{k}"), "1.0.0", &lockfile)),
            )
        };
        let mut k = 0;
        while admit_message(&shared, &big(k)) == Validation::Accept {
            k += 1;
            assert!(k < 200, "no byte bound");
        }
        assert_eq!(k, MAX_BYTES_PER_SIGNER / (1 << 20) - 1);
        assert_eq!(load(&shared.counters.mempool_refused_over_budget), 1);
        assert_eq!(load(&shared.counters.gossip_invalid), bad.len() as u64);
        let other = sign(2, Body::Request(request("b", "1.0.0", "l")));
        assert_eq!(admit_message(&shared, &other), Validation::Accept);
        assert_eq!(pooled(), k + 2);
    }
}
