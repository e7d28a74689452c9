//! Which entry answers `crate@version`: the DEFAULT variant's, chosen from ALL the entries
//! of `crate@version` (which the index proves complete), so a client chooses it itself
//! instead of taking a member's word. Members answer lookups with the same function. The
//! default variant has default features, lib and bins, the release profile, the
//! committee's target (`BuildRequest::is_default_variant_for`), and
//!
//! 0. never a request the group refused as invalid (failure class `invalid-request`, e.g. a
//!    `lockfile_shipped` that lied); then the crate's SHIPPED lockfile: once any such entry
//!    with `lockfile_shipped` exists, only those count, so a request ordered first with a
//!    lockfile of someone's choosing never becomes the default of a crate that ships one;
//!    for a crate that ships none, the entries with a generated lockfile;
//! 1. the EARLIEST reproduced such entry, so a later failed re-attempt or a second
//!    lockfile never changes an answer users already rely on;
//! 2. else the LATEST such entry (the newest attempt says the most);
//! 3. else nothing (only other variants exist: ask by request id).

use crate::entry::{FailureClass, LogEntry, Verdict};

/// Of `variants` (index, entry) in log order, the index that answers `crate@version` on a
/// committee building for `target` (`None`: any target, for callers without a committee).
pub fn default_variant(variants: &[(u64, LogEntry)], target: Option<&str>) -> Option<u64> {
    let refused = FailureClass::InvalidRequest.digest();
    let settings = |e: &LogEntry| {
        // A request the group refused as invalid (e.g. its `lockfile_shipped` lied) is not a
        // build of the crate: it answers by request id only.
        let invalid = e.verdict == Verdict::Failed && e.digest[..] == refused[..];
        !invalid
            && match target {
                Some(t) => e.request.is_default_variant_for(t),
                None => e.request.is_default_variant(),
            }
    };
    let any_shipped = variants
        .iter()
        .any(|(_, e)| settings(e) && e.request.lockfile_shipped);
    let defaults = || {
        variants
            .iter()
            .filter(|(_, e)| settings(e) && e.request.lockfile_shipped == any_shipped)
    };
    defaults()
        .find(|(_, e)| e.verdict == Verdict::Reproduced)
        .or_else(|| defaults().next_back())
        .map(|(i, _)| *i)
}
