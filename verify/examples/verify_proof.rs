//! Verifies a Synchronicity proof with `synchronicity-verify` alone (no node, no network):
//!
//! ```text
//! verify_proof COMMITTEE.toml PROOF.tlog-proof CRATE@VERSION [MANIFEST ARTIFACT]
//! ```
//!
//! Exit status 0 only if the proof is about CRATE@VERSION, the verdict is reproduced and,
//! when given, ARTIFACT is the file the attested MANIFEST lists under its name.

use std::error::Error;

use synchronicity_verify::{Committee, Expected, verify_proof};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [committee, proof, spec, rest @ ..] = args.as_slice() else {
        return Err("usage: verify_proof COMMITTEE PROOF CRATE@VERSION [MANIFEST ARTIFACT]".into());
    };
    let (name, version) = spec.split_once('@').ok_or("expected CRATE@VERSION")?;
    let committee = Committee::from_toml(&std::fs::read_to_string(committee)?)?;
    let expected = Expected::crate_version(name, version);
    let build = verify_proof(&std::fs::read_to_string(proof)?, &committee, &expected)?
        .require_reproduced()?;
    println!(
        "{spec} reproduced by {} of {} members",
        build.attesters().len(),
        committee.len()
    );
    if let [manifest, artifact] = rest {
        let manifest = build.manifest(&std::fs::read_to_string(manifest)?)?;
        let file_name = std::path::Path::new(artifact)
            .file_name()
            .and_then(|n| n.to_str());
        let path =
            manifest.check_artifact(None, file_name.unwrap_or(""), &std::fs::read(artifact)?)?;
        println!("{artifact} is {path}, as attested");
    }
    Ok(())
}
