//! `synchronicity committee propose`: the committee file of the next epoch, made from the
//! current one and an operator's edits (members added, removed or with rotated keys, the
//! threshold, the rule book, the toolchain). The members of the current epoch then approve
//! it (docs/formats.md, "Epochs").
//!
//! [`next_committee`] is pure (the edits on a validated committee); the command reads the
//! files and writes the result atomically.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::committee::RuleFlags;
use crate::committee::{CommitteeFile, MemberEntry, default_threshold};
use crate::node_dir;
use crate::verify::Committee;

/// The least group that tolerates one faulty member.
const LEAST_MEMBERS: usize = 4;

/// Arguments of `committee propose`.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The committee file of the current epoch.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// A member to add (its node directory or member.toml), after the others. Repeatable.
    #[arg(long, value_name = "MEMBER")]
    add: Vec<PathBuf>,
    /// A member to remove, by name. Repeatable.
    #[arg(long, value_name = "NAME")]
    remove: Vec<String>,
    /// New keys for a member, by name: `NAME=MEMBER` (its node directory or member.toml made
    /// by `keygen`); the member keeps its name and its place. Repeatable.
    #[arg(long, value_name = "NAME=MEMBER")]
    rotate: Vec<String>,
    /// Signatures required [default: the current threshold if the membership stays, else
    /// ⌊2n/3⌋+1].
    #[arg(long)]
    threshold: Option<usize>,
    /// Rust toolchain every member builds with from the change on.
    #[arg(long)]
    toolchain: Option<String>,
    /// Target triple from the change on.
    #[arg(long)]
    target: Option<String>,
    /// `[protocol]` values.
    #[command(flatten)]
    rules: RuleFlags,
    /// Accept fewer than 4 members or a threshold below ⌊2n/3⌋+1.
    #[arg(long)]
    force_small: bool,
    /// Where to write the next committee file (refuses to overwrite unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

/// An operator's edits of a committee.
#[derive(Debug, Default)]
struct Edits {
    /// Members to append.
    add: Vec<MemberEntry>,
    /// Names to remove.
    remove: Vec<String>,
    /// `(name, new entry)`: the member keeps its name and place.
    rotate: Vec<(String, MemberEntry)>,
    /// The threshold, if set.
    threshold: Option<usize>,
    /// The toolchain, if set.
    toolchain: Option<String>,
    /// The target, if set.
    target: Option<String>,
    /// Allow a group under 4 members or a threshold under the BFT quorum.
    force_small: bool,
}

/// The next epoch's committee file: `current`'s with `edits` and `rules` applied, `epoch + 1`
/// and `previous` = `current`'s digest, validated as a committee and as a successor of
/// `current`. Refuses (one line each) an unknown name, a name both removed and rotated, a
/// change that changes nothing, and, without `force_small`, fewer than 4 members or a
/// threshold below ⌊2n/3⌋+1.
fn next_committee(
    current: &Committee,
    edits: &Edits,
    rules: &RuleFlags,
) -> anyhow::Result<Committee> {
    let mut file: CommitteeFile = current.to_file();
    let known = |name: &str| file.members.iter().any(|m| m.name == name);
    for name in edits
        .remove
        .iter()
        .chain(edits.rotate.iter().map(|(n, _)| n))
    {
        if !known(name) {
            bail!("no member named {name:?} in epoch {}", current.epoch());
        }
    }
    if let Some((name, _)) = edits.rotate.iter().find(|(n, _)| edits.remove.contains(n)) {
        bail!("member {name:?} is both removed and rotated");
    }
    // Added members are new names and new identities (a new BLS key alone is --rotate).
    for (i, m) in edits.add.iter().enumerate() {
        let earlier = &edits.add[..i];
        if known(&m.name) || earlier.iter().any(|o| o.name == m.name) {
            bail!(
                "--add: a member named {:?} is already in epoch {}",
                m.name,
                current.epoch()
            );
        }
        let peers = file.members.iter().chain(earlier);
        if peers.into_iter().any(|o| o.peer_id == m.peer_id) {
            bail!("--add {:?}: its peer id is already a member's", m.name);
        }
    }
    for (name, entry) in &edits.rotate {
        let old = file.members.iter().find(|m| &m.name == name);
        if old.is_some_and(|m| m.peer_id != entry.peer_id) {
            bail!(
                "--rotate {name}: the new entry has another peer id; only the BLS key rotates (make it with `keygen --dir DIR --rotate-bls`)"
            );
        }
    }
    for (name, entry) in &edits.rotate {
        let slot = file
            .members
            .iter_mut()
            .find(|m| &m.name == name)
            .expect("checked above");
        *slot = MemberEntry {
            name: name.clone(),
            ..entry.clone()
        };
    }
    file.members.retain(|m| !edits.remove.contains(&m.name));
    file.members.extend(edits.add.iter().cloned());
    let n = file.members.len();
    let same_members = n == current.len();
    file.threshold = match edits.threshold {
        Some(t) => t,
        None if same_members => current.threshold(),
        None => default_threshold(n),
    };
    if let Some(v) = &edits.toolchain {
        file.build.toolchain = v.clone();
    }
    if let Some(t) = &edits.target {
        file.build.target = t.clone();
    }
    file.protocol = rules.apply(file.protocol);
    if file == current.to_file() {
        bail!("the proposal changes nothing");
    }
    if !edits.force_small {
        if n < LEAST_MEMBERS {
            bail!(
                "the next committee would have {n} members, fewer than {LEAST_MEMBERS} (no faulty member tolerated); pass --force-small to propose it anyway"
            );
        }
        if file.threshold < default_threshold(n) {
            bail!(
                "threshold {} is below the BFT quorum {} for {n} members; pass --force-small to propose it anyway",
                file.threshold,
                default_threshold(n)
            );
        }
        // Until the newcomers vote (each follows the log first), the next committee decides
        // only with t of the others: more newcomers than it tolerates down halt the group, and
        // for good if one never comes up (no removal could be decided either).
        let tolerated = n.saturating_sub(file.threshold);
        if edits.add.len() > tolerated {
            bail!(
                "adding {} members at once: the next committee tolerates {tolerated} not voting, and newcomers do not vote until they have followed the log; add at most {tolerated} per change, or pass --force-small",
                edits.add.len()
            );
        }
    }
    file.epoch = current.epoch() + 1;
    file.previous = Some(hex::encode(current.digest()));
    let text = Committee::from_file(file)?.to_toml();
    Ok(crate::verify::epoch::check_proposal(current, &text)?)
}

/// `committee propose`.
pub(super) fn propose(args: ProposeArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    // The full check of the current file (every proof of possession): a proposal is made
    // once, and its author should not build on a file it has not checked.
    let text =
        std::fs::read_to_string(&args.from).with_context(|| args.from.display().to_string())?;
    let current =
        Committee::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.from.display()))?;
    let load = |p: &PathBuf| node_dir::load_member(p).map_err(anyhow::Error::from);
    let mut edits = Edits {
        add: args.add.iter().map(load).collect::<Result<_, _>>()?,
        remove: args.remove.clone(),
        threshold: args.threshold,
        toolchain: args.toolchain.clone(),
        target: args.target.clone(),
        force_small: args.force_small,
        ..Edits::default()
    };
    for spec in &args.rotate {
        let Some((name, path)) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            bail!("--rotate {spec:?}: expected NAME=MEMBER");
        };
        edits
            .rotate
            .push((name.to_string(), load(&PathBuf::from(path))?));
    }
    let next = next_committee(&current, &edits, &args.rules)?;
    for w in next.warnings() {
        eprintln!("warning: {w}");
    }
    node_dir::write_atomic(&args.out, next.to_toml().as_bytes())?;
    let names =
        |c: &Committee| -> Vec<String> { c.members().iter().map(|m| m.name.clone()).collect() };
    let (before, after) = (names(&current), names(&next));
    let added: Vec<_> = after
        .iter()
        .filter(|n| !before.contains(n))
        .cloned()
        .collect();
    let removed: Vec<_> = before
        .iter()
        .filter(|n| !after.contains(n))
        .cloned()
        .collect();
    eprintln!(
        "wrote {}: epoch {} after {}, {} members (added: {}; removed: {}; rotated: {}), threshold {}, key id {}",
        args.out.display(),
        next.epoch(),
        hex::encode(current.digest()),
        next.len(),
        list(&added),
        list(&removed),
        list(
            &edits
                .rotate
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        ),
        next.threshold(),
        hex::encode(next.key_id()),
    );
    eprintln!(
        "it takes effect once {} of the {} members of epoch {} approve it",
        current.threshold(),
        current.len(),
        current.epoch()
    );
    Ok(())
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synchronicity_verify::test_committee::TestCommittee;

    fn no_rules() -> RuleFlags {
        RuleFlags::default()
    }

    fn refused(current: &Committee, edits: &Edits, rules: &RuleFlags) -> String {
        next_committee(current, edits, rules)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_member_leaves_and_one_rotates_its_bls_key() {
        let g = TestCommittee::new(5, 3);
        let c = &g.committee;
        // Leave: four, threshold 3 (from ⌊2·5/3⌋+1 = 4).
        let leave = Edits {
            remove: vec!["m1".into()],
            ..Edits::default()
        };
        let e2 = next_committee(c, &leave, &no_rules()).unwrap();
        assert_eq!((e2.epoch(), e2.len(), e2.threshold()), (1, 4, 3));
        assert_eq!(e2.previous(), Some(c.digest()));
        assert!(e2.members().iter().all(|m| m.name != "m1"));
        // Rotate: m0 keeps its name, place and identity, with a new BLS key.
        let (mut fresh, _) = TestCommittee::newcomer(6, 0);
        fresh.peer_id = e2.members()[0].peer_id.clone();
        let rotate = Edits {
            rotate: vec![("m0".into(), fresh.clone())],
            ..Edits::default()
        };
        let e3 = next_committee(&e2, &rotate, &no_rules()).unwrap();
        assert_eq!(e3.members()[0].name, "m0");
        assert_eq!(e3.members()[0].peer_id, e2.members()[0].peer_id);
        assert_ne!(
            e3.members()[0].bls_public_key,
            e2.members()[0].bls_public_key
        );
        // A rule and the toolchain.
        let rules = RuleFlags {
            reveal_window_secs: Some(300),
            ..RuleFlags::default()
        };
        let toolchain = Edits {
            toolchain: Some("1.96.0".into()),
            ..Edits::default()
        };
        let e4 = next_committee(&e3, &toolchain, &rules).unwrap();
        assert_eq!(e4.protocol().reveal_window_secs, 300);
        assert_eq!(e4.build().toolchain, "1.96.0");
        assert_eq!(e4.len(), 4);
    }

    #[test]
    fn bad_proposals_are_refused_with_one_line() {
        let g = TestCommittee::new(4, 3);
        let c = &g.committee;
        let e = refused(c, &Edits::default(), &no_rules());
        assert!(e.contains("changes nothing"), "{e}");
        let unknown = Edits {
            remove: vec!["nobody".into()],
            ..Edits::default()
        };
        assert!(refused(c, &unknown, &no_rules()).contains("no member named \"nobody\""));
        // A member joins: five, threshold ⌊2·5/3⌋+1 = 4.
        let (newcomer, _) = TestCommittee::newcomer(5, 0);
        let join = Edits {
            add: vec![newcomer.clone()],
            ..Edits::default()
        };
        let joined = next_committee(c, &join, &no_rules()).unwrap();
        assert_eq!((joined.len(), joined.threshold()), (5, 4));
        assert_eq!(joined.members()[4].peer_id, newcomer.peer_id);
        // A member added twice, or under a member's peer id.
        let twice = Edits {
            add: vec![newcomer.clone(), newcomer.clone()],
            ..Edits::default()
        };
        assert!(
            refused(c, &twice, &no_rules()).contains("already"),
            "{}",
            refused(c, &twice, &no_rules())
        );
        let clone = Edits {
            add: vec![MemberEntry {
                name: "m9".into(),
                ..c.members()[0].to_entry()
            }],
            ..Edits::default()
        };
        assert!(refused(c, &clone, &no_rules()).contains("peer id is already a member's"));
        // Two newcomers at once into a committee of six (t = 5) that tolerates one not voting.
        let two = Edits {
            add: vec![newcomer.clone(), TestCommittee::newcomer(5, 1).0],
            ..Edits::default()
        };
        assert!(refused(c, &two, &no_rules()).contains("add at most 1 per change"));
        let identity = Edits {
            rotate: vec![("m0".into(), TestCommittee::newcomer(6, 0).0)],
            ..Edits::default()
        };
        assert!(refused(c, &identity, &no_rules()).contains("another peer id"));
        let both = Edits {
            remove: vec!["m2".into()],
            rotate: vec![("m2".into(), TestCommittee::newcomer(7, 0).0)],
            ..Edits::default()
        };
        assert!(refused(c, &both, &no_rules()).contains("both removed and rotated"));
        // Three members: refused without --force-small, accepted with it.
        let small = Edits {
            remove: vec!["m3".into()],
            ..Edits::default()
        };
        assert!(refused(c, &small, &no_rules()).contains("fewer than 4"));
        let forced = Edits {
            remove: vec!["m3".into()],
            force_small: true,
            ..Edits::default()
        };
        assert_eq!(next_committee(c, &forced, &no_rules()).unwrap().len(), 3);
        // A threshold under the quorum, or out of range.
        let low = Edits {
            threshold: Some(2),
            ..Edits::default()
        };
        assert!(refused(c, &low, &no_rules()).contains("below the BFT quorum"));
        let high = Edits {
            threshold: Some(5),
            ..Edits::default()
        };
        assert!(refused(c, &high, &no_rules()).contains("out of range"));
        // A duplicate key: m1's new BLS key is m0's.
        let mut twin = c.members()[0].to_entry();
        twin.peer_id = c.members()[1].peer_id.clone();
        let dup = Edits {
            rotate: vec![("m1".into(), twin)],
            ..Edits::default()
        };
        assert!(refused(c, &dup, &no_rules()).contains("same"));
        // A rule out of range.
        let rules = RuleFlags {
            commit_window_secs: Some(0),
            ..RuleFlags::default()
        };
        let e = refused(c, &Edits::default(), &rules);
        assert!(e.contains("commit_window_secs"), "{e}");
    }
}
