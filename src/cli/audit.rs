//! `audit` (and `cargo synchronicity audit`): what the group says about every crates.io
//! package of a `Cargo.lock`, like cargo-audit's table and exit codes.
//!
//! For each package: the proof of `name@version`'s default variant, verified offline against
//! the trusted committee ([`BatchVerifier`]: each distinct checkpoint's signature once) and
//! checked to be the default variant (`synchronicity_light::check::check_batch_proof`; the
//! JSON says which lockfile), and its status: `reproduced`, `not-reproduced`, `failed`,
//! `unknown` (never built), or `source-mismatch` (the lockfile's `checksum` is not the
//! `.crate` the group built). Answers are proven lookups (`synchronicity_light::Client::
//! lookups`): every entry of each `name@version`, proven complete by the index of a
//! cosigned checkpoint, from which the client picks the default variant itself; so a
//! member cannot hide a verdict, and `unknown` from a fresh answer means proven absent (no
//! default-variant entry at that size; the JSON's `proven` and `checkpoint_size` say so).
//! A member whose answer does not prove itself, or is under a checkpoint smaller than one
//! already held (a cached proof's, an earlier answer's), is named and the next is asked.
//!
//! The proof cache (the user's cache directory, `synchronicity/proofs/`, each file written
//! atomically) is not trusted: a cached proof is verified again on every run, with the same
//! default-variant check as a fresh one. A cached proof older than `--max-age` (by the time
//! it was written) is fetched again; the new proof's checkpoint must be at least the cached
//! one's size and provably consistent with it (a consistency proof from a member), so a
//! refresh can move the answer forward in the same log, never to another history. Two
//! cosigned checkpoints of one size with different roots, or a newer one no member proves
//! consistent, are a SPLIT VIEW (exit non-zero). A refresh that gets no answer keeps the
//! cached proof and says so. Attesters' own signatures are vouched for by the cosigners (as
//! in `verify_proof`); `verify` re-checks them for one proof.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use synchronicity_light::Lockfile;
use synchronicity_light::check::check_batch_proof;

use super::audit_cache;
use super::client::{ClientSetup, runtime, start};
use super::fetch::PeerArgs;
use crate::protocol::Verdict;
use crate::verify::{BatchVerifier, VerifiedRecord};

/// The crates.io source as lockfiles name it (both spellings).
const CRATES_IO_SOURCES: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];
/// Largest lockfile read.
const MAX_LOCKFILE: u64 = 16 << 20;

/// Statuses `--deny` accepts.
const STATUSES: [&str; 5] = [
    "reproduced",
    "not-reproduced",
    "failed",
    "unknown",
    "source-mismatch",
];

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The lockfile to audit.
    #[arg(long, default_value = "Cargo.lock")]
    pub lockfile: PathBuf,
    /// Print JSON (one object per package).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if any package has one of these statuses (comma-separated:
    /// not-reproduced,failed,unknown,source-mismatch).
    #[arg(long, value_delimiter = ',')]
    pub deny: Vec<String>,
    /// Ask the group to build the unknown packages, through this member's node directory.
    #[arg(long, requires = "node")]
    pub submit: bool,
    /// A member's node directory (for --submit).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// Proof cache [default: the user's cache dir, synchronicity/proofs].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Use only cached proofs (no network): a package without one is unknown.
    #[arg(long)]
    pub offline: bool,
    /// Answer every package from this mirror (`synchronicity mirror --out DIR`), verified
    /// again, with no network and no cache: proven answers, the same table as online.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["offline", "submit"])]
    pub mirror: Option<PathBuf>,
    /// Fetch again a cached proof older than this (`90s`, `30m`, `12h`, `7d`).
    #[arg(long, value_name = "AGE", default_value = "1d", value_parser = audit_cache::parse_age)]
    pub max_age: std::time::Duration,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// One crates.io package of the lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    name: String,
    version: String,
    checksum: Option<[u8; 32]>,
}

impl Package {
    fn spec(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// The crates.io packages of a lockfile, sorted, deduplicated.
fn packages(text: &str) -> anyhow::Result<Vec<Package>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Pkg>,
    }
    #[derive(serde::Deserialize)]
    struct Pkg {
        name: String,
        version: String,
        source: Option<String>,
        checksum: Option<String>,
    }
    let lock: Lock = toml::from_str(text)
        .map_err(|e| anyhow::anyhow!("not a Cargo.lock: {}", e.message().replace('\n', " ")))?;
    let mut out: Vec<Package> = lock
        .package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| CRATES_IO_SOURCES.contains(&s))
        })
        .map(|p| {
            let checksum = p.checksum.as_deref().and_then(|c| {
                let mut b = [0u8; 32];
                hex::decode_to_slice(c, &mut b).ok().map(|()| b)
            });
            Package {
                name: p.name,
                version: p.version,
                checksum,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup();
    Ok(out)
}

/// One row of the report.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    #[serde(rename = "crate")]
    krate: String,
    version: String,
    status: &'static str,
    signers: usize,
    log_index: Option<u64>,
    request_id: Option<String>,
    /// `shipped` (the `.crate`'s own) or `generated` (the crate ships none).
    lockfile: Option<&'static str>,
    /// The size of the checkpoint the proof was verified under (for an `unknown` that is
    /// proven: the size at which the log held no default-variant entry).
    checkpoint_size: Option<u64>,
    /// Whether the answer was proven complete by the checkpoint's index (a fresh lookup),
    /// rather than read from the proof cache or left unanswered.
    proven: bool,
}

fn row(p: &Package, record: Option<&VerifiedRecord>, proven_at: Option<u64>) -> Row {
    let Some(r) = record else {
        return Row {
            krate: p.name.clone(),
            version: p.version.clone(),
            status: "unknown",
            signers: 0,
            log_index: None,
            request_id: None,
            lockfile: None,
            checkpoint_size: proven_at,
            proven: proven_at.is_some(),
        };
    };
    let e = r.entry();
    let status = if p
        .checksum
        .is_some_and(|c| c[..] != e.request.source_sha256[..])
    {
        "source-mismatch"
    } else {
        match e.verdict {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not-reproduced",
            Verdict::Failed => "failed",
        }
    };
    Row {
        krate: p.name.clone(),
        version: p.version.clone(),
        status,
        signers: r.attesters().len(),
        log_index: Some(r.index()),
        request_id: Some(hex::encode(e.request.id())),
        lockfile: Some(if e.request.lockfile_shipped {
            Lockfile::Shipped.as_str()
        } else {
            Lockfile::Generated.as_str()
        }),
        checkpoint_size: Some(r.checkpoint().checkpoint().size),
        proven: proven_at.is_some(),
    }
}

fn cache_dir(args: &AuditArgs) -> Option<PathBuf> {
    if let Some(c) = &args.cache {
        return Some(c.clone());
    }
    super::committee_cache_dir().and_then(|d| d.parent().map(|p| p.join("proofs")))
}

/// `audit`.
pub(super) fn audit(args: AuditArgs) -> anyhow::Result<std::process::ExitCode> {
    for d in &args.deny {
        if !STATUSES.contains(&d.as_str()) {
            bail!("--deny {d:?}: not one of {}", STATUSES.join(", "));
        }
    }
    let meta =
        std::fs::metadata(&args.lockfile).with_context(|| args.lockfile.display().to_string())?;
    if meta.len() > MAX_LOCKFILE {
        bail!("{}: larger than 16 MiB", args.lockfile.display());
    }
    let text = std::fs::read_to_string(&args.lockfile)
        .with_context(|| args.lockfile.display().to_string())?;
    let pkgs = packages(&text).with_context(|| args.lockfile.display().to_string())?;
    if let Some(dir) = &args.mirror {
        return from_mirror(&args, dir, &pkgs);
    }
    let setup = if args.offline {
        let committee = match &args.peers.trust {
            Some(t) => super::load_committee(t)?,
            None => ClientSetup::load(None, None, &[])?.committee,
        };
        ClientSetup {
            committee,
            chain: None,
            peers: Vec::new(),
        }
    } else {
        args.peers.setup()?
    };
    let cache = cache_dir(&args);
    // With a chain, proofs cosigned in any of its epochs.
    let mut verifier = match &setup.chain {
        Some(chain) => BatchVerifier::in_chain(chain),
        None => BatchVerifier::new(setup.committee.trust_root()),
    };
    let mut records: Vec<Option<VerifiedRecord>> = vec![None; pkgs.len()];
    let cached_path = |p: &Package| {
        cache
            .as_ref()
            .map(|c| c.join(format!("{}-{}.tlog-proof", p.name, p.version)))
    };
    // Cached proofs first, verified and checked again (the cache is not trusted); the ones
    // older than --max-age are fetched again below.
    let mut stale: Vec<Option<VerifiedRecord>> = vec![None; pkgs.len()];
    for (i, p) in pkgs.iter().enumerate() {
        let Some(path) = cached_path(p) else { continue };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let checked = check_batch_proof(&mut verifier, &setup.committee, &p.name, &p.version, text);
        let r = match checked {
            Ok(checked) => checked.into_parts().1,
            Err(e) => {
                eprintln!(
                    "warning: {}: cached proof {} dropped: {e}",
                    p.spec(),
                    path.display()
                );
                continue;
            }
        };
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let fresh_enough = age.is_some_and(|a| a <= args.max_age);
        if fresh_enough || args.offline {
            if !fresh_enough {
                eprintln!(
                    "warning: {}: the cached proof is older than --max-age (--offline: not refreshed)",
                    p.spec()
                );
            }
            records[i] = Some(r);
        } else {
            stale[i] = Some(r);
        }
    }
    let mut proven_at: Vec<Option<u64>> = vec![None; pkgs.len()];
    let missing: Vec<usize> = (0..pkgs.len()).filter(|&i| records[i].is_none()).collect();
    if !missing.is_empty() && !args.offline {
        let specs: Vec<String> = missing.iter().map(|&i| pkgs[i].spec()).collect();
        // The largest checkpoint the cached proofs hold: an answer under a smaller one is a
        // stale or faulty member's.
        let mut held = records
            .iter()
            .chain(&stale)
            .flatten()
            .map(|r| r.checkpoint().checkpoint().size)
            .max()
            .unwrap_or(0);
        runtime()?.block_on(async {
            let client = start(&setup).await?;
            let result = async {
                let answers = client.lookups(&mut verifier, &specs, &mut held).await;
                for (&i, answer) in missing.iter().zip(answers) {
                    let p = &pkgs[i];
                    let fresh = match answer {
                        Some(found) => {
                            proven_at[i] = Some(found.checkpoint_size);
                            found.default.map(|c| c.into_parts())
                        }
                        None => {
                            eprintln!("warning: {}: no peer gave an answer that proves itself", p.spec());
                            None
                        }
                    };
                    records[i] = match (stale[i].take(), fresh) {
                        (None, Some((text, r))) => {
                            audit_cache::keep_cached(cached_path(p).as_deref(), &text);
                            Some(r)
                        }
                        (None, None) => None,
                        (Some(old), None) if proven_at[i].is_none() => {
                            eprintln!("warning: {}: the cached proof is older than --max-age and no peer gave a fresh one that verifies; using the cached one", p.spec());
                            Some(old)
                        }
                        (Some(_), None) => {
                            // Proven: the log holds no default-variant entry now, though a
                            // cached proof says it did. Only a split view can do that.
                            anyhow::bail!("{}: a cached proof names a default-variant entry the index proves absent at size {}: SPLIT VIEW or a corrupt cache", p.spec(), proven_at[i].unwrap_or(0));
                        }
                        (Some(old), Some((text, r))) => {
                            let r = audit_cache::refresh(&client, &p.spec(), old, r).await?;
                            audit_cache::keep_cached(cached_path(p).as_deref(), &text);
                            Some(r)
                        }
                    };
                }
                anyhow::Ok(())
            }
            .await;
            client.shutdown().await;
            result
        })?;
    }
    let rows: Vec<Row> = pkgs
        .iter()
        .zip(&records)
        .zip(&proven_at)
        .map(|((p, r), at)| row(p, r.as_ref(), *at))
        .collect();
    report(&args, &rows, verifier.checkpoints_verified())
}

/// `audit --mirror DIR`: every package from the verified mirror, no network.
fn from_mirror(
    args: &AuditArgs,
    dir: &std::path::Path,
    pkgs: &[Package],
) -> anyhow::Result<std::process::ExitCode> {
    let trust = match &args.peers.trust {
        Some(t) => t.clone(),
        None => bail!("--mirror needs --trust FILE (the committee the mirror was verified with)"),
    };
    let chain = super::mirror::trust(&trust, args.peers.chain.as_deref())?;
    let mirror = super::mirror::Mirror::load(dir, &chain)
        .with_context(|| format!("mirror {}", dir.display()))?;
    let committee = chain.latest().clone();
    let target = committee.build().target.clone();
    let size = mirror.checkpoint.checkpoint().size;
    let mut verifier = BatchVerifier::in_chain(&chain);
    let mut rows = Vec::with_capacity(pkgs.len());
    for p in pkgs {
        let chosen =
            crate::verify::index::default_variant(mirror.variants(&p.spec()), Some(&target));
        let record = match chosen {
            Some(i) => {
                let text = mirror.proof_file(i)?;
                let checked =
                    check_batch_proof(&mut verifier, &committee, &p.name, &p.version, text)
                        .map_err(|e| {
                            anyhow::anyhow!("{}: the mirror's entry {i}: {e}", p.spec())
                        })?;
                Some(checked.into_parts().1)
            }
            None => None,
        };
        rows.push(row(p, record.as_ref(), Some(size)));
    }
    report(args, &rows, verifier.checkpoints_verified())
}

/// Prints the table (or JSON), submits unknowns with `--submit`, and the exit code.
fn report(
    args: &AuditArgs,
    rows: &[Row],
    checkpoints: usize,
) -> anyhow::Result<std::process::ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<32} {:<16} {:<16} {:>7} {:>9}",
            "crate", "version", "status", "signers", "log index"
        );
        for r in rows {
            println!(
                "{:<32} {:<16} {:<16} {:>7} {:>9}",
                r.krate,
                r.version,
                r.status,
                r.signers,
                r.log_index
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
        let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
        eprintln!(
            "{} packages: {} reproduced, {} not reproduced, {} failed, {} unknown, {} source mismatch ({} checkpoint(s) verified)",
            rows.len(),
            count("reproduced"),
            count("not-reproduced"),
            count("failed"),
            count("unknown"),
            count("source-mismatch"),
            checkpoints
        );
        let generated = rows
            .iter()
            .filter(|r| r.lockfile == Some("generated"))
            .count();
        if generated > 0 {
            eprintln!(
                "note: {generated} package(s) were built with a lockfile the group generated (the crate ships none; `--json` names them)"
            );
        }
    }
    if args.submit
        && let Some(node) = &args.node
    {
        submit_unknown(node, rows)?;
    }
    let denied: BTreeSet<&str> = args.deny.iter().map(String::as_str).collect();
    let bad: Vec<&Row> = rows.iter().filter(|r| denied.contains(r.status)).collect();
    if !bad.is_empty() {
        eprintln!(
            "error: {} package(s) denied ({}), first: {}@{} is {}",
            bad.len(),
            args.deny.join(","),
            bad[0].krate,
            bad[0].version,
            bad[0].status
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Orders a build of every unknown package through the member at `node`.
fn submit_unknown(node: &std::path::Path, rows: &[Row]) -> anyhow::Result<()> {
    use crate::node::control::{self, ControlAnswer, ControlRequest};
    let rt = runtime()?;
    for r in rows.iter().filter(|r| r.status == "unknown") {
        let req = ControlRequest::Submit {
            krate: r.krate.clone(),
            version: r.version.clone(),
            lockfile: None,
            variant: Default::default(),
        };
        match rt.block_on(control::request(node, &req)) {
            Ok(ControlAnswer::Submitted { id }) => {
                eprintln!("submitted {}@{}: {id}", r.krate, r.version)
            }
            Ok(other) => eprintln!("warning: {}@{}: {other:?}", r.krate, r.version),
            Err(e) => eprintln!("warning: {}@{}: {e}", r.krate, r.version),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crates_io_packages_with_their_checksums() {
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"0101010101010101010101010101010101010101010101010101010101010101\"\n\n[[package]]\nname = \"local\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"g\"\nversion = \"0.1.0\"\nsource = \"git+https://example.org/g#abc\"\n";
        let p = packages(lock).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].spec(), p[0].checksum),
            ("a@1.0.0".into(), Some([1; 32]))
        );
        assert!(packages("[[package]\n").is_err());
    }
}
