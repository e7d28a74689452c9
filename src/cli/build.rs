//! `synchronicity build CRATE@VERSION`: pin, build in a sandbox, print the manifest.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::builder::{Backend, Builder, BuilderConfig, Outcome, Phase};

/// Arguments of `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The crate, as NAME@VERSION (an exact version).
    spec: String,
    /// Cargo.lock to build with (for crates that ship none; else the shipped one is used).
    #[arg(long)]
    lockfile: Option<PathBuf>,
    /// Sandbox backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Work directory (toolchain copy, caches, logs) [default: ~/.cache/synchronicity/build].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Toolchain [default: the local rustc's version].
    #[arg(long)]
    toolchain: Option<String>,
    /// Target triple.
    #[arg(long, default_value = "x86_64-unknown-linux-gnu")]
    target: String,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 4096)]
    memory_mib: u64,
    /// Time limit in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// Cargo jobs (`-j`), as a node's `[builder] jobs` [default: the CPUs this process may
    /// use]. Reproduced bytes must not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Print JSON (request id, digest, manifest, backend, image id, durations).
    #[arg(long)]
    json: bool,
}

/// `NAME@VERSION` split, with a clear error otherwise.
pub(super) fn parse_spec(spec: &str) -> anyhow::Result<(String, String)> {
    match spec.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n.to_string(), v.to_string())),
        _ => bail!("expected CRATE@VERSION, got {spec:?}"),
    }
}

/// The default work directory.
pub(super) fn default_work_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache"))
        .join("synchronicity/build")
}

/// The local rustc's release (e.g. `1.95.0`).
pub(super) fn local_toolchain() -> anyhow::Result<String> {
    let out = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .context("cannot run rustc; pass --toolchain")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .context("cannot parse rustc --version; pass --toolchain")
}

pub(super) fn run(args: BuildArgs) -> anyhow::Result<()> {
    let (name, version) = parse_spec(&args.spec)?;
    let lockfile = args
        .lockfile
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| p.display().to_string()))
        .transpose()?;
    let toolchain = match args.toolchain {
        Some(t) => t,
        None => local_toolchain()?,
    };
    let mut cfg = BuilderConfig::new(&args.work_dir.unwrap_or_else(default_work_dir), &toolchain);
    cfg.backend = args.backend;
    cfg.limits.memory = args.memory_mib << 20;
    cfg.limits.time = Duration::from_secs(args.timeout_secs);
    if let Some(jobs) = args.jobs {
        cfg.limits.jobs = jobs;
    }

    let bar = if args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("prepare workspace");
    let builder = Builder::new(&cfg)?;
    bar.set_message(format!("resolve {name}@{version}"));
    let started = std::time::Instant::now();
    let req = builder.pin(&name, &version, lockfile, &args.target)?;
    let resolve = started.elapsed().as_secs_f64();
    let progress =
        |p: Phase| bar.set_message(format!("{p} {name}@{version} ({})", builder.backend_name()));
    let mut report = builder.build(&req, &progress)?;
    report.durations.resolve = resolve;
    bar.finish_and_clear();

    let id = hex::encode(report.request.id());
    let digest = hex::encode(report.outcome.digest());
    if args.json {
        let (status, manifest, class, reason) = match &report.outcome {
            Outcome::Success(m) => ("success", Some(m.to_text()), None, None),
            Outcome::Failure { class, reason } => (
                "failure",
                None,
                Some(class.to_string()),
                Some(reason.clone()),
            ),
        };
        let v = serde_json::json!({
            "request_id": id,
            "crate": report.request.krate,
            "version": report.request.version,
            "source_sha256": hex::encode(&report.request.source_sha256),
            "status": status,
            "digest": digest,
            "manifest": manifest,
            "failure_class": class,
            "failure_reason": reason,
            "backend": report.backend,
            "image_id": report.image_id,
            "toolchain": report.request.toolchain,
            "target": report.request.target,
            "lockfile_shipped": report.request.lockfile_shipped,
            "durations_secs": report.durations,
            "log": report.log_path,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprintln!(
            "request {id} ({} backend, image {})",
            report.backend, report.image_id
        );
        match &report.outcome {
            Outcome::Success(m) => {
                print!("{}", m.to_text());
                println!("manifest digest {digest}");
            }
            Outcome::Failure { class, reason } => {
                bail!(
                    "build failed ({class}): {reason}; log: {}",
                    report.log_path.display()
                );
            }
        }
    }
    if let Outcome::Failure { class, .. } = report.outcome {
        bail!("build failed ({class})");
    }
    Ok(())
}
