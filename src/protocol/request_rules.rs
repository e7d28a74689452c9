//! What a request must be to be ordered by this committee at all, whatever the state: the
//! same check decides a block's validity ([`super::ProtocolState`]) and whether a gossiped
//! request is admitted to the mempool and relayed (the node's gossip validation). Pure;
//! every value compared comes from the committee file, never from a node's configuration.

use crate::committee::Committee;
use crate::request::{MAX_REQUEST_SIZE, PinnedRequest};

/// Why `pinned` can never be ordered by `committee`'s group, if it cannot: a field out of
/// its domain, an encoded request over [`MAX_REQUEST_SIZE`], a lockfile that is empty,
/// over [`crate::request::MAX_LOCKFILE_SIZE`] or not the one the request pins, or a
/// toolchain or target other than the committee's `[build]` ones (a member could
/// otherwise make every other member build, and log as the default variant, a build for
/// a target the group never agreed on).
///
/// Cost: one SHA-256 of the lockfile (at most 1 MiB) and one CBOR encoding of the request;
/// for a recipe request also the recipe's decoding, re-encoding and id (at most 1 MiB; no
/// TOML is parsed: what the manifests say is the builders' to refuse); no signature.
pub fn check_request(pinned: &PinnedRequest, committee: &Committee) -> Result<(), &'static str> {
    let build = committee.build();
    // Cheapest first: two string comparisons.
    if pinned.request.toolchain != build.toolchain {
        return Err("the request's toolchain is not the committee's");
    }
    if pinned.request.target != build.target {
        return Err("the request's target is not the committee's");
    }
    if pinned.request.to_cbor().len() > MAX_REQUEST_SIZE {
        return Err("the encoded request is over 16 KiB");
    }
    pinned
        .validate()
        .map_err(|_| "invalid request (a field, or its lockfile's size or hash)")
}
