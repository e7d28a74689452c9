//! `synchronicity witness`: a minimal C2SP tlog-witness for one group's log (see
//! `http::witness`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

/// Arguments of `witness`.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// Address to listen on (HTTP: POST /add-checkpoint).
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Directory for the witness's key and the latest checkpoint it cosigned.
    #[arg(long)]
    pub dir: PathBuf,
    /// The committee file of the log to witness.
    #[arg(long)]
    pub log: PathBuf,
    /// The witness's key name [default: witness-<first 8 hex of its key>].
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs the witness until SIGINT/SIGTERM.
pub(super) fn run(args: WitnessArgs) -> anyhow::Result<()> {
    super::node::init_logging();
    let committee = super::load_trust_root(&args.log)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => {
            // A provisional open to learn the key (the file is made at first start).
            let w = crate::http::witness::Witness::open(&args.dir, committee.clone(), "w")?;
            format!("witness-{}", &hex::encode(w.key().public)[..8])
        }
    };
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        anyhow::bail!("--name {name:?}: a key name has no spaces and no '+'");
    }
    let witness = Arc::new(crate::http::witness::Witness::open(
        &args.dir, committee, &name,
    )?);
    println!("{}", witness.key().vkey());
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    rt.block_on(async move {
        let local = crate::http::witness::serve(args.listen, witness).await?;
        tracing::info!(%local, "witness listening");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })
}
