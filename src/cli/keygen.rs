//! `synchronicity keygen`.

use std::path::PathBuf;

use clap::Args;
use multiaddr::Multiaddr;

use crate::node_dir;

/// Arguments of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Node directory to create (keys are never overwritten).
    #[arg(long)]
    dir: PathBuf,
    /// Member name, unique in the committee (no whitespace).
    #[arg(long, required_unless_present = "rotate_bls")]
    name: Option<String>,
    /// Make a NEXT BLS key for the existing node in --dir (its identity stays): writes
    /// bls.next.key and member.next.toml, to propose with `committee propose --rotate
    /// NAME=DIR/member.next.toml`; the node switches to it at the epoch that names it.
    #[arg(long, conflicts_with_all = ["name", "addrs"])]
    rotate_bls: bool,
    /// Address where this node will listen (repeatable), e.g. /ip4/10.0.0.5/tcp/7000.
    #[arg(long = "addr")]
    addrs: Vec<Multiaddr>,
}

pub(super) fn run(args: KeygenArgs) -> anyhow::Result<()> {
    if args.rotate_bls {
        let entry = node_dir::create_next_bls(&args.dir)?;
        eprintln!(
            "created {} (0600) in {}; the member entry with it is {}:",
            node_dir::NEXT_BLS_FILE,
            args.dir.display(),
            node_dir::NEXT_MEMBER_FILE
        );
        print!("{}", toml::to_string(&entry)?);
        return Ok(());
    }
    let name = args.name.as_deref().unwrap_or_default();
    let (_, entry) = node_dir::create(&args.dir, name, &args.addrs)?;
    eprintln!(
        "created {} (secret keys 0600: {}, {}); public entry in {}:",
        args.dir.display(),
        node_dir::IDENTITY_FILE,
        node_dir::BLS_FILE,
        node_dir::MEMBER_FILE
    );
    print!("{}", toml::to_string(&entry)?);
    Ok(())
}
