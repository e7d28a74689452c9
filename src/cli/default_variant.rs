//! What a client accepts as `crate@version`'s DEFAULT variant when a member answers with
//! one entry (`proof`, `fetch`, `install`, `audit`, fresh or cached alike): default
//! features, lib and bins, release profile, the committee's target; and the crate's
//! shipped lockfile where it ships one.
//!
//! One entry cannot show that a crate ships NO lockfile: an entry with a generated lockfile
//! (`lockfile_shipped == false`) is the default only when the crate ships none, which the
//! member's lookup decides (it prefers any shipped entry, see `log::lookup`). So a client
//! given a generated one asks its other peers for a shipped one first, and when it keeps
//! the generated one it says so.

use crate::verify::{BuildRequest, Committee};

/// Which lockfile the accepted default entry was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lockfile {
    /// The one inside the `.crate`.
    Shipped,
    /// One generated for the request (the crate ships none, as the member's lookup says).
    Generated,
}

impl Lockfile {
    /// `shipped` or `generated`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Shipped => "shipped",
            Self::Generated => "generated",
        }
    }
}

/// Checks that `request` has the default variant's settings on `committee`; which lockfile.
/// The error is one line naming the variant that was sent instead.
pub(super) fn check(request: &BuildRequest, committee: &Committee) -> Result<Lockfile, String> {
    let target = &committee.build().target;
    if !request.is_default_variant_for(target) {
        let label = request.variant_label();
        let label = if request.target != *target {
            format!("target={} {label}", request.target)
        } else {
            label
        };
        return Err(format!(
            "faulty peer: answered with a non-default variant ({}) of {}",
            label.trim(),
            request.spec()
        ));
    }
    Ok(if request.lockfile_shipped {
        Lockfile::Shipped
    } else {
        Lockfile::Generated
    })
}

/// The note printed when the default entry kept has a generated lockfile.
pub(super) fn generated_note(spec: &str) -> String {
    format!(
        "note: {spec} was built with a lockfile the group generated: the answering members know no build with a lockfile shipped in the .crate (the crate ships none)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_target_and_lockfile() {
        let tc = crate::testing::TestCommittee::new(4, 3);
        let c = &tc.committee;
        let mut r = crate::testing::request("itoa", "1.0.15", "lock").request;
        r.target = c.build().target.clone();
        assert_eq!(check(&r, c), Ok(Lockfile::Shipped));
        r.lockfile_shipped = false;
        assert_eq!(check(&r, c), Ok(Lockfile::Generated));
        let mut other = r.clone();
        other.target = "wasm32-unknown-unknown".into();
        let err = check(&other, c).unwrap_err();
        assert!(err.contains("target=wasm32-unknown-unknown"), "{err}");
        let mut other = r.clone();
        other.features = vec!["serde".into()];
        assert!(check(&other, c).unwrap_err().contains("features=serde"));
        let mut other = r;
        other.profile = "dev".into();
        assert!(check(&other, c).is_err());
    }
}
