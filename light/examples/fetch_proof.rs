//! Fetches the proof that a crate was reproduced from any member of a group, verifies it
//! against the trusted committee file, and writes it (it verifies offline from then on).
//!
//! ```text
//! cargo run -p synchronicity-light --example fetch_proof -- \
//!     testnet/local/committee.toml itoa@1.0.15 /ip4/127.0.0.1/tcp/7000/p2p/12D3KooW...
//! ```

use synchronicity_light::verify::{Committee, Verdict};
use synchronicity_light::{Client, ClientConfig, Multiaddr, ProofQuery};

#[tokio::main]
async fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let [trust, spec, peers @ ..] = args.as_slice() else {
        return Err("usage: fetch_proof COMMITTEE.toml CRATE@VERSION PEER_ADDR...".into());
    };
    let (name, version) = spec.split_once('@').ok_or("expected CRATE@VERSION")?;
    let committee = Committee::from_toml(&std::fs::read_to_string(trust)?)?;
    let peers = peers
        .iter()
        .map(|p| p.parse::<Multiaddr>())
        .collect::<Result<Vec<_>, _>>()?;
    let config = ClientConfig::new(committee.clone(), peers)
        .with_notices(|n| eprintln!("{}: {n}", if n.is_warning() { "warning" } else { "note" }));
    let client = Client::start(config).await?;
    let proof = client
        .proof(&ProofQuery::default_variant(name, version))
        .await;
    client.shutdown().await;
    let proof = proof?;
    if proof.verdict() != Verdict::Reproduced {
        return Err(format!("{spec}: the group's verdict is {:?}", proof.verdict()).into());
    }
    let record = proof.record();
    let out = format!("{name}-{version}.tlog-proof");
    std::fs::write(&out, proof.text())?;
    println!(
        "{spec}: reproduced by {} of {} members; entry {} under the cosigned checkpoint of size {}; verified proof written to {out}",
        record.attesters().len(),
        committee.len(),
        record.index(),
        record.checkpoint().checkpoint().size,
    );
    Ok(())
}
