//! The `[protocol]` rules test groups run under: the round windows are what differs.

use synchronicity::committee::ProtocolRules;

/// The default rules with these round windows: `commit` seconds to commit, at least `grace`
/// seconds after the t-th commitment, `reveal` seconds to reveal.
pub(crate) fn windows(commit: u64, grace: u64, reveal: u64) -> ProtocolRules {
    ProtocolRules {
        commit_window_secs: commit,
        commit_grace_secs: grace,
        reveal_window_secs: reveal,
        ..ProtocolRules::default()
    }
}

/// For the test node's builds (50 ms, chosen manifests): 8 s to commit (2 s least grace
/// after the t-th commitment), 4 s to reveal.
pub(crate) fn short_rounds() -> ProtocolRules {
    windows(8, 2, 4)
}

/// For real builds in the sandbox: 300 s to commit (5 s least grace), 20 s to reveal, and a
/// new attempt 1 s after a not-reproduced verdict.
pub(crate) fn real_builds() -> ProtocolRules {
    ProtocolRules {
        attempt_spacing_secs: 1,
        ..windows(300, 5, 20)
    }
}
