//! Which entry answers a lookup. A request id names one entry. `crate@version` names every
//! variant of that crate (features, lockfile, attempts); it answers with the DEFAULT
//! variant's entry, by the rule in `synchronicity_verify::index::default` (clients choose
//! with the same function from the index's proven list of every variant).

use super::store::{LogStore, StoreError};
use crate::protocol::LogEntry;

/// What a lookup key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupKey {
    /// One request, by id.
    Request([u8; 32]),
    /// Every variant of `crate@version`.
    Crate(String),
}

impl LookupKey {
    /// `crate@version` or a 64-hex-digit request id; `None` for anything else.
    pub fn parse(key: &str) -> Option<Self> {
        if key.len() == 64 {
            let mut id = [0u8; 32];
            if hex::decode_to_slice(key, &mut id).is_ok() {
                return Some(Self::Request(id));
            }
        }
        match key.split_once('@') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() && key.len() <= 160 => {
                Some(Self::Crate(key.to_string()))
            }
            _ => None,
        }
    }
}

/// Of `variants` (index, entry) in log order, the index that answers `crate@version` on a
/// committee building for `target` (see `synchronicity_verify::index::default`).
pub fn choose_default(variants: &[(u64, LogEntry)], target: Option<&str>) -> Option<u64> {
    crate::verify::index::default_variant(variants, target)
}

impl LogStore {
    /// Every entry of `crate@version`, decoded, in log order.
    pub fn variant_entries(&self, spec: &str) -> Result<Vec<(u64, LogEntry)>, StoreError> {
        self.variants(spec)?
            .into_iter()
            .map(|i| {
                let bytes = self.entry(i)?;
                LogEntry::decode(&bytes)
                    .map(|e| (i, e))
                    .map_err(|e| StoreError::Db(format!("entry {i}: {e}")))
            })
            .collect()
    }

    /// The entry index that answers `key` (see the module doc) for any target, or why there
    /// is none. A member answers with [`LogStore::resolve_for`] its committee's target.
    pub fn resolve(&self, key: &LookupKey) -> Result<Result<u64, String>, StoreError> {
        self.resolve_for(key, None)
    }

    /// The entry index that answers `key` on a committee building for `target`.
    pub fn resolve_for(
        &self,
        key: &LookupKey,
        target: Option<&str>,
    ) -> Result<Result<u64, String>, StoreError> {
        Ok(match key {
            LookupKey::Request(id) => self
                .lookup_request(id)?
                .ok_or_else(|| format!("no log entry for request {}", hex::encode(id))),
            LookupKey::Crate(spec) => {
                let variants = self.variant_entries(spec)?;
                match choose_default(&variants, target) {
                    Some(i) => Ok(i),
                    None if variants.is_empty() => Err(format!("no log entry for {spec}")),
                    None => Err(format!(
                        "{spec} has no default-variant entry; ask by request id: {}",
                        variants
                            .iter()
                            .map(|(_, e)| format!(
                                "{} ({})",
                                hex::encode(e.request.id()),
                                e.request.variant_label()
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Verdict, failure_digest};
    use crate::testing::request;

    const INVALID_REQUEST: &str = "invalid-request";

    fn entry(features: &[&str], attempt: u32, verdict: Verdict) -> LogEntry {
        let mut r = request("itoa", "1.0.15", "lock").request;
        r.features = features.iter().map(|f| f.to_string()).collect();
        r.attempt = attempt;
        LogEntry {
            format: crate::protocol::ENTRY_FORMAT,
            request: r,
            verdict,
            digest: vec![],
            attestation: vec![],
            dissenters: vec![],
            silent: vec![],
            misbehaviour: vec![],
            height: 1,
            epoch: 0,
        }
    }

    /// The same with a lockfile that is not the crate's shipped one.
    fn generated(attempt: u32, verdict: Verdict) -> LogEntry {
        let mut e = entry(&[], attempt, verdict);
        e.request.lockfile_shipped = false;
        e.request.lockfile_sha256 = vec![9; 32];
        e
    }

    const TARGET: Option<&str> = Some("x86_64-unknown-linux-gnu");

    #[test]
    fn default_variant_prefers_the_first_reproduced_entry() {
        use Verdict::*;
        let nr = |a| entry(&[], a, NotReproduced);
        let ok = |a| entry(&[], a, Reproduced);
        let other = entry(&["serde"], 1, Reproduced);
        assert_eq!(choose_default(&[], TARGET), None);
        assert_eq!(choose_default(&[(0, other.clone())], TARGET), None);
        assert_eq!(choose_default(&[(0, nr(1)), (1, nr(2))], TARGET), Some(1));
        // A later other variant and a later failed attempt change nothing.
        assert_eq!(
            choose_default(
                &[(0, nr(1)), (1, ok(2)), (2, other), (3, nr(3)), (4, ok(4))],
                TARGET
            ),
            Some(1)
        );
    }

    #[test]
    fn the_shipped_lockfile_wins_over_one_ordered_first_and_the_target_must_match() {
        use Verdict::*;
        // Someone orders a lockfile of its choice first; it is reproduced.
        let junk = generated(1, Reproduced);
        let shipped = entry(&[], 1, Reproduced);
        assert_eq!(choose_default(&[(0, junk.clone())], TARGET), Some(0));
        assert_eq!(
            choose_default(&[(0, junk.clone()), (1, shipped.clone())], TARGET),
            Some(1)
        );
        // Even a shipped entry that is not reproduced (yet) outranks a generated one.
        let shipped_nr = entry(&[], 1, NotReproduced);
        assert_eq!(
            choose_default(&[(0, junk.clone()), (1, shipped_nr)], TARGET),
            Some(1)
        );
        // A crate that ships none: the first reproduced generated one.
        assert_eq!(
            choose_default(
                &[
                    (0, generated(1, NotReproduced)),
                    (1, generated(2, Reproduced)),
                    (2, junk)
                ],
                TARGET
            ),
            Some(1)
        );
        // A request that lied about its lockfile, refused as invalid by the group: never
        // the default, so it cannot hide the generated one (nor a later shipped one).
        let mut lie = entry(&[], 1, Failed);
        lie.request.lockfile_sha256 = vec![8; 32];
        lie.digest = failure_digest(INVALID_REQUEST).to_vec();
        assert_eq!(
            choose_default(&[(0, lie.clone()), (1, generated(1, Reproduced))], TARGET),
            Some(1)
        );
        assert_eq!(choose_default(&[(0, lie)], TARGET), None);
        // Another target is another variant, even with the shipped lockfile.
        let mut elsewhere = entry(&[], 1, Reproduced);
        elsewhere.request.target = "aarch64-unknown-linux-gnu".into();
        assert_eq!(choose_default(&[(0, elsewhere.clone())], TARGET), None);
        assert_eq!(choose_default(&[(0, elsewhere)], None), Some(0));
    }

    #[test]
    fn keys_parse() {
        assert_eq!(
            LookupKey::parse("itoa@1.0.15"),
            Some(LookupKey::Crate("itoa@1.0.15".into()))
        );
        assert_eq!(
            LookupKey::parse(&"ab".repeat(32)),
            Some(LookupKey::Request([0xab; 32]))
        );
        for bad in ["itoa", "@1", "itoa@", ""] {
            assert_eq!(LookupKey::parse(bad), None, "{bad}");
        }
    }

    /// An entry that decodes (a digest and an attestation where its verdict has them), as
    /// the log holds them.
    fn decodable(mut e: LogEntry) -> LogEntry {
        match e.verdict {
            Verdict::Reproduced => {
                e.digest = vec![5; 32];
                e.attestation = vec![1];
            }
            Verdict::Failed => {
                if e.digest.len() != 32 {
                    e.digest = failure_digest("compile-error").to_vec();
                }
                e.attestation = vec![1];
            }
            Verdict::NotReproduced => {
                e.digest.clear();
                e.attestation.clear();
            }
        }
        e
    }

    /// On every case of the rule's table, the default variant a CLIENT picks from the
    /// proven list (a real store's index answer, verified against a cosigned checkpoint
    /// carrying its index line) is the one the member's lookup answers with.
    #[test]
    fn the_clients_choice_from_the_proven_list_is_the_members_on_every_case() {
        use Verdict::*;
        let ok = |a| entry(&[], a, Reproduced);
        let nr = |a| entry(&[], a, NotReproduced);
        let mut lie = entry(&[], 1, Failed);
        lie.request.lockfile_sha256 = vec![8; 32];
        lie.digest = failure_digest(INVALID_REQUEST).to_vec();
        let mut elsewhere = entry(&[], 1, Reproduced);
        elsewhere.request.target = "aarch64-unknown-linux-gnu".into();
        let cases: Vec<Vec<LogEntry>> = vec![
            vec![entry(&["serde"], 1, Reproduced)],
            vec![nr(1), nr(2)],
            vec![nr(1), ok(2), entry(&["serde"], 1, Reproduced), nr(3), ok(4)],
            vec![generated(1, Reproduced)],
            vec![generated(1, Reproduced), ok(1)],
            vec![generated(1, Reproduced), nr(1)],
            vec![
                generated(1, NotReproduced),
                generated(2, Reproduced),
                generated(1, Reproduced),
            ],
            vec![lie.clone(), generated(1, Reproduced)],
            vec![lie],
            vec![elsewhere],
            vec![entry(&[], 1, Failed), nr(2)],
        ];
        let tc = crate::testing::TestCommittee::new(4, 31);
        for (k, case) in cases.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let store = LogStore::open(dir.path()).unwrap();
            for (h, e) in case.into_iter().enumerate() {
                let e = decodable(e);
                let new = crate::log::NewEntry {
                    bytes: e.to_cbor(),
                    request_id: e.request.id(),
                    spec: e.request.spec(),
                    blobs: vec![],
                };
                store
                    .append_decided(&[new], crate::log::Height::bare(h as u64 + 1, 1))
                    .unwrap();
            }
            let size = store.size().unwrap();
            let cp = tc.cosign_log(&store, size);
            let at = store
                .index_snapshot(size)
                .unwrap()
                .variants("itoa@1.0.15")
                .unwrap();
            let answer = crate::verify::index::VariantsAnswer::from(at);
            let proven: Vec<(u64, LogEntry)> = answer
                .verify(&cp, "itoa@1.0.15")
                .unwrap()
                .into_iter()
                .map(|p| (p.index, p.entry))
                .collect();
            assert_eq!(proven.len() as u64, size, "case {k}: every entry");
            let client = crate::verify::index::default_variant(&proven, TARGET);
            let member = store
                .resolve_for(&LookupKey::Crate("itoa@1.0.15".into()), TARGET)
                .unwrap()
                .ok();
            assert_eq!(client, member, "case {k}");
        }
    }
}
