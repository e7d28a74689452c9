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
    #[arg(long)]
    name: String,
    /// Address where this node will listen (repeatable), e.g. /ip4/10.0.0.5/tcp/7000.
    #[arg(long = "addr")]
    addrs: Vec<Multiaddr>,
}

pub(super) fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let (_, entry) = node_dir::create(&args.dir, &args.name, &args.addrs)?;
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
