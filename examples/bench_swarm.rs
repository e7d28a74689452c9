//! The swarm backend's figures (run by `scripts/bench-swarm.sh`, which serves the fixture
//! registry and prepares the swarm):
//!
//! 1. Throughput: `--versions N` releases of a fixed-duration fixture crate (its build script
//!    sleeps) built through the swarm backend with K concurrent builds for each K of `--k`
//!    (one builder, K threads, as a node with `max_parallel = K` runs them). Prints builds
//!    per minute and the ratio to K = 1.
//! 2. Overhead: `--overhead CRATE@VERSION` (from crates.io) built `--runs` times on the swarm
//!    backend and on the bubblewrap sandbox, interleaved; prints the median build time of
//!    each (pinning excluded: it is the same host-side step for both).
//!
//! `--workers`: the swarm builds run on the swarm's worker engines (`swarm_workers`).
//!
//! NOT a product binary; `cargo run --example bench_swarm -- --help`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use synchronicity::builder::{Backend, Builder, BuilderConfig, Outcome};
use synchronicity::request::PinnedRequest;

#[derive(Parser)]
struct Args {
    /// The fixture registry's sparse index URL (its downloads at `<url>/../dl`).
    #[arg(long)]
    registry: String,
    /// The fixture crate's name; its releases are `0.1.0`, `0.1.1`, ….
    #[arg(long, default_value = "sleepy")]
    fixture: String,
    /// How many releases (requests) per K.
    #[arg(long, default_value_t = 40)]
    versions: u32,
    /// Concurrent builds to measure, comma-separated.
    #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
    k: Vec<usize>,
    /// A real crate for the overhead figure.
    #[arg(long, default_value = "itoa@1.0.15")]
    overhead: String,
    /// Builds of it per backend.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Work directory (kept between runs: toolchain copy, caches).
    #[arg(long)]
    work: PathBuf,
    /// Toolchain.
    #[arg(long, default_value = "1.95.0")]
    toolchain: String,
    /// Build on the swarm's worker engines (`swarm_workers`), not on this node.
    #[arg(long)]
    workers: bool,
}

fn builder(args: &Args, backend: Backend, registry: bool) -> Builder {
    let mut cfg = BuilderConfig::new(&args.work, &args.toolchain);
    cfg.backend = backend;
    cfg.swarm_workers = backend == Backend::Swarm && args.workers;
    cfg.limits.jobs = 1;
    if registry {
        let dl = args
            .registry
            .trim_end_matches('/')
            .trim_end_matches("/index")
            .to_string()
            + "/dl";
        cfg.registry = Some((args.registry.clone(), dl));
    }
    Builder::new(&cfg).expect("builder")
}

fn build_ok(b: &Builder, p: &PinnedRequest) -> Duration {
    let t = Instant::now();
    let report = b.build(p, &|_| {}).expect("the build ran");
    let took = t.elapsed();
    match report.outcome {
        Outcome::Success(_) => took,
        Outcome::Failure { class, reason } => panic!("{}: {class}: {reason}", p.request.spec()),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let target = "x86_64-unknown-linux-gnu";
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cores: {cores}; swarm tasks on {}",
        if args.workers {
            "the worker engines"
        } else {
            "this node"
        }
    );

    let swarm = builder(&args, Backend::Swarm, true);
    let pinned: Vec<PinnedRequest> = (0..args.versions)
        .map(|i| {
            swarm
                .pin(&args.fixture, &format!("0.1.{i}"), None, target)
                .expect("pin the fixture")
        })
        .collect();
    // Warm-up: the toolchain copy and the image's first start are not what is measured.
    build_ok(&swarm, &pinned[0]);
    let mut base = None;
    println!("K  builds  wall_s  builds_per_min  ratio_vs_K1  (goal >= 0.8 K)");
    for &k in &args.k {
        let queue = Mutex::new(pinned.iter());
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..k {
                s.spawn(|| {
                    loop {
                        let next = queue.lock().unwrap().next();
                        let Some(p) = next else { break };
                        build_ok(&swarm, p);
                    }
                });
            }
        });
        let wall = t.elapsed().as_secs_f64();
        let rate = pinned.len() as f64 * 60.0 / wall;
        let ratio = rate / *base.get_or_insert(rate);
        println!("{k}  {}  {wall:.1}  {rate:.1}  {ratio:.2}", pinned.len());
    }

    let (name, version) = args.overhead.split_once('@').expect("CRATE@VERSION");
    let swarm = builder(&args, Backend::Swarm, false);
    let sandbox = builder(&args, Backend::Sandbox, false);
    let p = sandbox.pin(name, version, None, target).expect("pin");
    build_ok(&sandbox, &p);
    build_ok(&swarm, &p);
    let (mut on_swarm, mut on_sandbox) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        on_sandbox.push(build_ok(&sandbox, &p));
        on_swarm.push(build_ok(&swarm, &p));
    }
    let (w, x) = (
        median(on_swarm).as_secs_f64(),
        median(on_sandbox).as_secs_f64(),
    );
    println!(
        "overhead {}: swarm {w:.1} s, sandbox {x:.1} s, +{:.1} s, {:.2}x (goal <= 15 s or <= 1.2x)",
        args.overhead,
        w - x,
        w / x
    );
}
