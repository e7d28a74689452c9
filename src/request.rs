//! Build requests as the node handles them. The request itself (every pin, the lockfile by
//! sha256) is `synchronicity-verify`'s [`BuildRequest`]; a [`PinnedRequest`] carries the
//! lockfile TEXT beside it, which builders need and every member stores content-addressed
//! once the request is decided.

use serde::{Deserialize, Serialize};
pub use synchronicity_verify::request::{
    BuildRequest, MAX_FEATURES, MAX_REQUEST_SIZE, REQUEST_FORMAT, RequestError,
};

use crate::crypto::sha256;

/// Largest lockfile accepted (a 1,000-package `Cargo.lock` is about 200 KiB).
pub const MAX_LOCKFILE_SIZE: usize = 1024 * 1024;

/// A request with the text of the lockfile it pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedRequest {
    /// The request (identity: its id).
    pub request: BuildRequest,
    /// The `Cargo.lock` text; its sha256 is `request.lockfile_sha256`.
    pub lockfile: String,
}

impl PinnedRequest {
    /// Pins `lockfile` into `request` (sets its `lockfile_sha256`).
    pub fn new(mut request: BuildRequest, lockfile: String) -> Self {
        request.lockfile_sha256 = sha256(lockfile.as_bytes()).to_vec();
        Self { request, lockfile }
    }

    /// Checks the request's fields and that the lockfile is the one it pins.
    pub fn validate(&self) -> Result<(), RequestError> {
        self.request.validate()?;
        if self.lockfile.is_empty() || self.lockfile.len() > MAX_LOCKFILE_SIZE {
            return Err(RequestError::Invalid("lockfile (empty or over 1 MiB)"));
        }
        if sha256(self.lockfile.as_bytes())[..] != self.request.lockfile_sha256[..] {
            return Err(RequestError::Invalid(
                "lockfile (does not hash to lockfile_sha256)",
            ));
        }
        Ok(())
    }

    /// The request id.
    pub fn id(&self) -> [u8; 32] {
        self.request.id()
    }
}
