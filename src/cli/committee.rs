//! `synchronicity committee init|check|propose`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use crate::committee::{
    BuildEnvironment, Committee, CommitteeFile, ProtocolRules, default_threshold,
};
use crate::node_dir;

/// Arguments of `committee init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The log's origin (a schema-less URL such as example.org/synchronicity/testnet).
    #[arg(long)]
    origin: String,
    /// Consensus chain id [default: the origin].
    #[arg(long)]
    chain_id: Option<String>,
    /// Signatures required [default: ⌊2n/3⌋+1].
    #[arg(long)]
    threshold: Option<usize>,
    /// Rust toolchain every member builds with [default: the local rustc's version].
    #[arg(long)]
    toolchain: Option<String>,
    /// Target triple [default: the local rustc's host].
    #[arg(long)]
    target: Option<String>,
    /// `[protocol]` values.
    #[command(flatten)]
    rules: RuleFlags,
    /// Where to write the committee file (refuses to overwrite unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Node directories or member.toml files, in committee order.
    #[arg(required = true)]
    members: Vec<PathBuf>,
}

/// The `[protocol]` values a committee file's author may set (the rest keep their value).
#[derive(Debug, Default, Args)]
pub(super) struct RuleFlags {
    /// `[protocol]` commit window: from a request's block to the latest end of the commit
    /// phase [default: 1800].
    #[arg(long)]
    pub(super) commit_window_secs: Option<u64>,
    /// `[protocol]` reveal window [default: 120].
    #[arg(long)]
    pub(super) reveal_window_secs: Option<u64>,
    /// `[protocol]` least grace after the t-th commitment [default: 60].
    #[arg(long)]
    pub(super) commit_grace_secs: Option<u64>,
    /// `[protocol]` most open rounds one member's requests may hold [default: 256].
    #[arg(long)]
    pub(super) max_open_requests_per_member: Option<u64>,
    /// `[protocol]` most new requests one block may order [default: 0, no bound of its
    /// own].
    #[arg(long)]
    pub(super) max_requests_per_block: Option<u64>,
}

impl RuleFlags {
    /// `rules` with every given value set.
    pub(super) fn apply(&self, mut rules: ProtocolRules) -> ProtocolRules {
        let set = |v: &mut u64, flag: Option<u64>| *v = flag.unwrap_or(*v);
        set(&mut rules.commit_window_secs, self.commit_window_secs);
        set(&mut rules.reveal_window_secs, self.reveal_window_secs);
        set(&mut rules.commit_grace_secs, self.commit_grace_secs);
        set(
            &mut rules.max_open_requests_per_member,
            self.max_open_requests_per_member,
        );
        set(
            &mut rules.max_requests_per_block,
            self.max_requests_per_block,
        );
        rules
    }
}

/// Arguments of `committee check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The committee file.
    file: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Print every member's signed-note verifier key (`name+id+key`, Ed25519), one a line:
    /// what a C2SP or Go `note` verifier needs to check the members' checkpoint lines.
    #[arg(long)]
    vkeys: bool,
}

/// Member `m`'s signed-note verifier key.
pub(super) fn member_vkey(c: &crate::committee::Committee, m: &crate::committee::Member) -> String {
    use crate::verify::tlog::{ED25519_KEY_TYPE, member_key_name, verifier_key};
    let public = crate::crypto::ed25519_key_of(&m.peer_id)
        .map(|k| k.to_bytes().to_vec())
        .unwrap_or_default();
    verifier_key(
        &member_key_name(c.origin(), &m.name),
        ED25519_KEY_TYPE,
        &public,
    )
}

/// The local rustc's release and host triple, from `rustc -vV`.
fn local_rustc() -> anyhow::Result<(String, String)> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc to detect the toolchain; pass --toolchain and --target")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .with_context(|| {
                format!("rustc -vV printed no {name:?} line; pass --toolchain and --target")
            })
    };
    Ok((field("release:")?, field("host:")?))
}

pub(super) fn init(args: InitArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    let members = args
        .members
        .iter()
        .map(|p| node_dir::load_member(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (toolchain, target) = match (args.toolchain, args.target) {
        (Some(v), Some(t)) => (v, t),
        (v, t) => {
            let (lv, lt) = local_rustc()?;
            (v.unwrap_or(lv), t.unwrap_or(lt))
        }
    };
    let file = CommitteeFile {
        chain_id: args.chain_id.unwrap_or_else(|| args.origin.clone()),
        epoch: 0,
        previous: None,
        origin: args.origin,
        threshold: args
            .threshold
            .unwrap_or_else(|| default_threshold(members.len())),
        build: BuildEnvironment { toolchain, target },
        protocol: args.rules.apply(ProtocolRules::default()),
        members,
    };
    let committee = Committee::from_file(file)?;
    for w in committee.warnings() {
        eprintln!("warning: {w}");
    }
    node_dir::write_atomic(&args.out, committee.to_toml().as_bytes())?;
    eprintln!(
        "wrote {}: {} members, threshold {}, key id {}",
        args.out.display(),
        committee.len(),
        committee.threshold(),
        hex::encode(committee.key_id())
    );
    Ok(())
}

pub(super) fn check(args: CheckArgs) -> anyhow::Result<()> {
    // Always the full check (every proof of possession), never the cache.
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let c = crate::committee::Committee::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let warnings = c.warnings();
    if args.vkeys {
        for m in c.members() {
            println!("{}", member_vkey(&c, m));
        }
        return Ok(());
    }
    if args.json {
        let members: Vec<_> = c
            .members()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "peer_id": m.peer_id.to_base58(),
                    "bls_public_key": hex::encode(m.bls_public_key.to_bytes()),
                    "note_verifier_key": member_vkey(&c, m),
                    "addrs": m.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "valid": true,
            "origin": c.origin(),
            "epoch": c.epoch(),
            "previous": c.previous().map(hex::encode),
            "chain_id": c.chain_id(),
            "members": c.len(),
            "threshold": c.threshold(),
            "max_faulty": c.max_faulty(),
            "toolchain": c.build().toolchain,
            "target": c.build().target,
            "committee_digest": hex::encode(c.digest()),
            "key_id": hex::encode(c.key_id()),
            "protocol": c.protocol(),
            "warnings": warnings,
            "member_list": members,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        println!("committee {} is valid", args.file.display());
        println!("  origin     {}", c.origin());
        match c.previous() {
            None => println!("  epoch      0 (the genesis)"),
            Some(p) => println!("  epoch      {} (after {})", c.epoch(), hex::encode(p)),
        }
        println!("  chain id   {}", c.chain_id());
        println!(
            "  threshold  {} of {} (tolerates {} faulty in consensus)",
            c.threshold(),
            c.len(),
            c.max_faulty()
        );
        println!(
            "  build      Rust {} for {}",
            c.build().toolchain,
            c.build().target
        );
        println!("  protocol   (every member applies these rules; covered by the digest)");
        let rules = c.protocol();
        for (name, value) in rules.fields().into_iter().chain(rules.extensions()) {
            println!("    {name:<20} {value}");
        }
        println!("  digest     {}", hex::encode(c.digest()));
        println!("  key id     {}", hex::encode(c.key_id()));
        for (i, m) in c.members().iter().enumerate() {
            let bls = hex::encode(m.bls_public_key.to_bytes());
            println!(
                "  [{i}] {:<12} {}  bls {}…  PoP ok",
                m.name,
                m.peer_id,
                &bls[..16]
            );
        }
    }
    Ok(())
}
