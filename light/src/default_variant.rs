//! What a client accepts as `crate@version`'s DEFAULT variant when a member answers with
//! one entry (fresh or cached alike): default features, lib and bins, release profile, the
//! committee's target; and the crate's shipped lockfile where it ships one.
//!
//! One entry cannot show that a crate ships NO lockfile: an entry with a generated lockfile
//! (`lockfile_shipped == false`) is the default only when the crate ships none, which the
//! member's lookup decides (it prefers any shipped entry). So a client given a generated
//! one asks its other peers for a shipped one first, and when it keeps the generated one it
//! says so ([`crate::Notice::GeneratedLockfile`]).

use synchronicity_verify::{BuildRequest, Committee};

use crate::PeerError;

/// Which lockfile the accepted default entry was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockfile {
    /// The one inside the `.crate`.
    Shipped,
    /// One generated for the request (the crate ships none, as the member's lookup says).
    Generated,
}

impl Lockfile {
    /// `shipped` or `generated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shipped => "shipped",
            Self::Generated => "generated",
        }
    }
}

/// Checks that `request` has the default variant's settings on `committee`; which lockfile.
/// The error names the variant that was sent instead.
pub fn check(request: &BuildRequest, committee: &Committee) -> Result<Lockfile, PeerError> {
    let target = &committee.build().target;
    if !request.is_default_variant_for(target) {
        let label = request.variant_label();
        let label = if request.target != *target {
            format!("target={} {label}", request.target)
        } else {
            label
        };
        return Err(PeerError::NotDefaultVariant {
            variant: label.trim().to_string(),
            spec: request.spec(),
        });
    }
    Ok(if request.lockfile_shipped {
        Lockfile::Shipped
    } else {
        Lockfile::Generated
    })
}
