//! The `synchronicity` command line. Each subcommand lives in its own file; this one holds
//! the argument tree and the dispatch. Errors come back as one line; `main` prints them and
//! exits non-zero.

mod audit;
mod audit_cache;
mod build;
mod chain;
mod client;
mod committee;
mod cook;
mod diff;
mod fetch;
mod install;
mod install_record;
mod keygen;
mod light;
mod log;
mod lookup;
mod metrics;
mod mirror;
pub mod node;
mod propose;
mod recipe;
mod verify;
mod witness;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Distributed reproducible builds with offline-verifiable proofs.
#[derive(Debug, Parser)]
#[command(name = "synchronicity", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node directory with fresh keys and print its public member entry.
    #[command(
        after_help = "Examples:\n  synchronicity keygen --dir nodes/n0 --name n0 --addr /ip4/127.0.0.1/tcp/7000\n  synchronicity keygen --dir /var/lib/synchronicity --name builder-eu-1 --addr /dns4/b1.example.org/tcp/7000"
    )]
    Keygen(keygen::KeygenArgs),
    /// Build a crate from crates.io in a sandbox and print its artifact manifest.
    #[command(
        after_help = "Examples:\n  synchronicity build itoa@1.0.15\n  synchronicity build --backend sandbox --json serde_json@1.0.140\n  synchronicity build --lockfile Cargo.lock hexyl@0.16.0"
    )]
    Build(build::BuildArgs),
    /// Assemble or check a committee file.
    #[command(subcommand)]
    Committee(CommitteeCommand),
    /// Inspect or check a log store.
    #[command(subcommand)]
    Log(LogCommand),
    /// Run a member node (consensus, builder, log) until SIGINT/SIGTERM.
    #[command(
        after_help = "Examples:\n  synchronicity node --dir nodes/n0 --committee committee.toml\n  RUST_LOG=debug synchronicity node --dir nodes/n0 --committee committee.toml --metrics 127.0.0.1:9100"
    )]
    Node(node::NodeArgs),
    /// Ask the group to build a crate (through a member's control socket).
    #[command(
        after_help = "Prints the request id.\n\nExamples:\n  synchronicity submit itoa@1.0.15 --node nodes/n0\n  synchronicity submit hexyl@0.16.0 --lockfile Cargo.lock --node nodes/n0"
    )]
    Submit(node::SubmitArgs),
    /// A member's state, and a request's round or entry.
    #[command(
        after_help = "Examples:\n  synchronicity status --node nodes/n0\n  synchronicity status itoa@1.0.15 --node nodes/n0 --watch"
    )]
    Status(node::StatusArgs),
    /// Fetch a build's proof from any member and verify it before writing it.
    #[command(
        after_help = "Examples:\n  synchronicity proof itoa@1.0.15 --peer /ip4/127.0.0.1/tcp/7000/p2p/12D3Koo... --trust committee.toml --out itoa.tlog-proof"
    )]
    Proof(light::ProofArgs),
    /// Every entry the log holds for a crate@version, proven complete (or proven absent).
    #[command(
        after_help = "The answer is proven by the index of a cosigned checkpoint: no member can leave out an entry or answer \"no entry\" for one the log holds. The default variant is chosen by this client from the proven list; --out writes its verified proof file.\n\nExamples:\n  synchronicity lookup itoa@1.0.15 --peer /ip4/127.0.0.1/tcp/7000/p2p/12D3Koo... --trust committee.toml\n  synchronicity lookup itoa@1.0.15 --json --out itoa.tlog-proof"
    )]
    Lookup(lookup::LookupArgs),
    /// Keep a verified copy of a group's log (its entries, checked against the signed tree and index) for private audits.
    #[command(
        after_help = "Downloads only what the mirror lacks; run it again to refresh. `audit --mirror DIR` then answers a whole lockfile with no network.\n\nExamples:\n  synchronicity mirror --url http://b1.example.org:8080 --trust committee.toml --out ~/.cache/synchronicity/mirror\n  synchronicity audit --mirror ~/.cache/synchronicity/mirror --trust committee.toml"
    )]
    Mirror(mirror::MirrorArgs),
    /// Fetch the latest cosigned checkpoint; prove it consistent with the remembered one.
    #[command(
        after_help = "A checkpoint that is not consistent with the remembered one is a split view: reported loudly, exit status 1.\n\nExamples:\n  synchronicity checkpoint --peer /ip4/127.0.0.1/tcp/7000/p2p/12D3Koo... --trust committee.toml --state checkpoint.note"
    )]
    Checkpoint(light::CheckpointArgs),
    /// Verify a proof file offline against a committee file.
    #[command(
        after_help = "Exit status 0 only if the threshold cosignature and the inclusion proof hold, the entry is about the asked crate@version (or request) and records a reproduced build whose attestation verifies, and every --artifact matches the attested manifest by sha256 and path.\n\nExamples:\n  synchronicity verify itoa-1.0.15.tlog-proof --trust committee.toml --crate itoa@1.0.15\n  synchronicity verify itoa-1.0.15.tlog-proof --trust committee.toml --crate itoa@1.0.15 --manifest itoa-1.0.15.manifest --artifact libitoa.rlib\n  synchronicity verify --json F.tlog-proof --trust committee.toml --request 3f1c…"
    )]
    Verify(verify::VerifyArgs),
    /// Fetch a build's proof and artifacts from the group, each checked against the attested manifest.
    #[command(
        after_help = "Peers and the trust root come from --peer/--trust or ~/.config/synchronicity/client.toml.\n\nExamples:\n  synchronicity fetch hexyl@0.16.0 --out hexyl\n  synchronicity fetch itoa@1.0.15 --out . --artifact libitoa.rlib --peer /ip4/127.0.0.1/tcp/7000/p2p/12D3Koo... --trust committee.toml"
    )]
    Fetch(fetch::FetchArgs),
    /// Why a build was not reproduced: two members' artifacts, each checked against its revealed manifest, compared by diffoscope.
    #[command(
        after_help = "Writes member-A/ and member-B/ (the differing files), their manifests, summary.txt, and diffoscope's diff.txt and diff.html (diffoscope runs confined: bubblewrap, no network). With --out NODE_DIR/diffs/REQUEST_ID the node's web view links the report.\n\nExamples:\n  synchronicity diff 3f1c… --out why\n  synchronicity diff 3f1c… --members 0 2 --out /srv/node/diffs/3f1c… --peer /ip4/127.0.0.1/tcp/7000/p2p/12D3Koo... --trust committee.toml"
    )]
    Diff(diff::DiffArgs),
    /// Print the recipe of a workspace's dependencies and its id (`cargo synchronicity recipe`).
    #[command(
        after_help = "The recipe is what the group builds a workspace's dependencies from: every manifest (sources replaced by stubs, TOML normalized), Cargo.lock, toolchain, target, the release profile, features and RUSTFLAGS (from the environment). Its id changes when the dependencies would compile differently, not when the workspace's own code does. Refused, with one line naming the problem: git dependencies, path dependencies outside the workspace's members, a Cargo.lock that does not match the manifests, a recipe over 1 MiB.\n\nExamples:\n  cargo synchronicity recipe\n  synchronicity recipe --manifest-path app/Cargo.toml --features tls --out app.recipe"
    )]
    Recipe(recipe::RecipeArgs),
    /// Unpack a workspace's dependencies, pre-built and attested by a threshold of builders, into its target directory (`cargo synchronicity cook`).
    #[command(
        after_help = "Reads the workspace's recipe (as `recipe` does), looks it up with a proven answer, fetches every file of the attested bundle from any member, checks each against the manifest a threshold of builders attested, and only then moves them into target/release. Prints on stdout the environment the build must run with (CARGO_HOME at the builders' path, RUSTFLAGS); messages go to stderr. A miss exits 1 (0 with --fallback, nothing changed).\n\nExamples (a CI job):\n  eval \"$(cargo synchronicity cook --fallback)\"\n  cargo build --release"
    )]
    Cook(cook::CookArgs),
    /// Install a crate's binaries, only if a threshold of builders reproduced them.
    #[command(
        after_help = "Without a version: the newest non-yanked release on crates.io. Installs into $CARGO_HOME/bin (or --root DIR/bin); refuses, installing nothing, unless the verdict is reproduced and every byte matches the attested manifest. Never replaces cargo's or rustup's own binaries; replaces other existing files only if install wrote them before (recorded in $CARGO_HOME/.synchronicity-installs.json), or with --force.\n\nExamples:\n  synchronicity install ripgrep\n  synchronicity install hello-cli@0.2.2 --root /opt/tools"
    )]
    Install(install::InstallArgs),
    /// Audit a Cargo.lock: what the group says about every crates.io package in it.
    #[command(
        after_help = "Statuses: reproduced, not-reproduced, failed, unknown (never built), source-mismatch (the lockfile's checksum is not the .crate the group built).\n\nExamples:\n  synchronicity audit --lockfile Cargo.lock\n  cargo synchronicity audit --deny not-reproduced,failed,source-mismatch --json"
    )]
    Audit(audit::AuditArgs),
    /// Run a minimal C2SP tlog-witness for a group's log.
    #[command(
        after_help = "Prints its verifier key (for node.toml [[witnesses]] and verify --witness).\n\nExamples:\n  synchronicity witness --listen 127.0.0.1:7400 --dir witness --log committee.toml --name witness.example.org"
    )]
    Witness(witness::WitnessArgs),
}

/// `log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Size, root, applied height and the latest cosigned checkpoint.
    #[command(
        after_help = "Examples:\n  synchronicity log info --store nodes/n0\n  synchronicity log info --store nodes/n0/log --json"
    )]
    Info(log::InfoArgs),
    /// Recompute every hash and check every stored checkpoint; exit non-zero at the first inconsistency.
    #[command(
        after_help = "Examples:\n  synchronicity log fsck --store nodes/n0\n  synchronicity log fsck --store nodes/n0 --trust committee.toml"
    )]
    Fsck(log::FsckArgs),
}

/// `committee` subcommands.
#[derive(Debug, Subcommand)]
pub enum CommitteeCommand {
    /// Build a committee file from node directories (or their member.toml files).
    #[command(
        after_help = "Examples:\n  synchronicity committee init --origin example.org/synchronicity/testnet --out committee.toml nodes/n0 nodes/n1 nodes/n2 nodes/n3\n  synchronicity committee init --origin example.org/log --threshold 5 --toolchain 1.95.0 --out c.toml m1.toml m2.toml ..."
    )]
    Init(committee::InitArgs),
    /// Validate a committee file (every PoP, duplicates, threshold) and print a summary.
    #[command(
        after_help = "Examples:\n  synchronicity committee check committee.toml\n  synchronicity committee check --json committee.toml"
    )]
    Check(committee::CheckArgs),
    /// Write the committee file of the next epoch: members added, removed or with new keys,
    /// another threshold, rule or toolchain. Members of the current epoch then approve it.
    #[command(
        after_help = "Refuses a change that leaves fewer than 4 members or a threshold under ⌊2n/3⌋+1 (unless --force-small), an unknown name, and a change that changes nothing.\n\nExamples:\n  synchronicity committee propose --from committee.toml --add nodes/n4 --out epoch1.toml\n  synchronicity committee propose --from epoch1.toml --remove n2 --out epoch2.toml\n  synchronicity committee propose --from epoch2.toml --rotate n0=nodes/n0-new --toolchain 1.96.0 --out epoch3.toml"
    )]
    Propose(propose::ProposeArgs),
    /// Approve the next epoch's committee file as this member (through its node).
    #[command(
        after_help = "The change is scheduled once a threshold of the current members' approvals are ordered; requests then wait while the open rounds are decided, and every member moves to the new committee at the same height.\n\nExamples:\n  synchronicity committee approve epoch1.toml --node nodes/n0"
    )]
    Approve(node::ApproveArgs),
    /// Fetch the committee chain from members and verify it from the genesis (each link with
    /// the previous committee's keys); an existing --out is only extended.
    #[command(
        after_help = "Examples:\n  synchronicity committee chain --peer /ip4/127.0.0.1/tcp/7000/p2p/12D3Koo... --trust committee.toml --out chain.toml\n  synchronicity verify F.tlog-proof --trust committee.toml --chain chain.toml --crate itoa@1.0.15"
    )]
    Chain(chain::ChainArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    run_other(cli)
}

/// Runs a command; `Ok` with a non-success code for a command that ran and says no (an
/// audit with denied packages), `Err` for one that could not run.
pub fn run_code(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    if let Command::Audit(args) = cli.command {
        return audit::audit(args);
    }
    run_other(cli).map(|()| std::process::ExitCode::SUCCESS)
}

fn run_other(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fetch(args) => fetch::fetch(args),
        Command::Diff(args) => diff::diff(args),
        Command::Recipe(args) => recipe::recipe(args),
        Command::Cook(args) => cook::cook(args),
        Command::Witness(args) => witness::run(args),
        Command::Install(args) => install::install(args),
        Command::Audit(args) => match audit::audit(args)? {
            c if c == std::process::ExitCode::SUCCESS => Ok(()),
            _ => Err(anyhow::anyhow!("denied packages (see above)")),
        },
        Command::Keygen(args) => keygen::run(args),
        Command::Build(args) => build::run(args),
        Command::Committee(CommitteeCommand::Init(args)) => committee::init(args),
        Command::Committee(CommitteeCommand::Check(args)) => committee::check(args),
        Command::Committee(CommitteeCommand::Propose(args)) => propose::propose(args),
        Command::Committee(CommitteeCommand::Approve(args)) => node::approve(args),
        Command::Committee(CommitteeCommand::Chain(args)) => chain::chain(args),
        Command::Log(LogCommand::Info(args)) => log::info(args),
        Command::Log(LogCommand::Fsck(args)) => log::fsck(args),
        Command::Verify(args) => verify::verify(args),
        Command::Node(args) => node::run(args),
        Command::Proof(args) => light::proof(args),
        Command::Lookup(args) => lookup::lookup(args),
        Command::Mirror(args) => mirror::mirror(args),
        Command::Checkpoint(args) => light::checkpoint(args),
        Command::Submit(args) => node::submit(args),
        Command::Status(args) => node::status(args),
    }
}

/// Reads a committee file and validates it as a node needs it (trust root plus the
/// members' libp2p identities and addresses), with the path in the error.
pub fn load_committee(path: &PathBuf) -> anyhow::Result<crate::committee::Committee> {
    crate::committee::Committee::from_trust_root(load_trust_root(path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Reads a committee file and validates it as a trust root. The full check (every proof of
/// possession, one batched multi-pairing) runs once per exact file: its sha256 is then
/// remembered in the user's cache directory ([`committee_cache_dir`]), and later loads of
/// the same bytes skip the pairings (every other check still runs). A missing or unwritable
/// cache only costs time.
pub fn load_trust_root(path: &PathBuf) -> anyhow::Result<crate::verify::Committee> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let marker = committee_cache_dir().map(|d| {
        d.join(format!(
            "{}.checked",
            hex::encode(crate::crypto::sha256(text.as_bytes()))
        ))
    });
    let checked_before = marker.as_ref().is_some_and(|m| m.is_file());
    let committee = if checked_before {
        crate::verify::Committee::from_toml_checked_before(&text)
    } else {
        crate::verify::Committee::from_toml(&text)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let (false, Some(m)) = (checked_before, &marker) {
        remember_checked(m);
    }
    Ok(committee)
}

/// Records that a committee file was fully checked (atomic: temp file, fsync, rename; a
/// crash leaves either no marker, so the next load checks in full, or the whole marker).
fn remember_checked(marker: &std::path::Path) {
    if let Some(dir) = marker.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::node_dir::write_atomic(marker, b"synchronicity/committee-checked/v1\n");
    }
}

/// `$SYNCHRONICITY_CACHE_DIR`, else `$XDG_CACHE_HOME/synchronicity/committees`, else
/// `$HOME/.cache/synchronicity/committees`.
pub fn committee_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SYNCHRONICITY_CACHE_DIR") {
        return Some(PathBuf::from(d).join("committees"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("synchronicity").join("committees"))
}
