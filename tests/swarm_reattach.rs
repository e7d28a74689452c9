//! A member that builds on the swarm backend, killed mid-build and restarted, re-attaches to
//! the swarm job its predecessor started: no second job for the round, the build's result
//! is the first job's, and the group decides with this member's commitment (threshold 4 of
//! 4: the round cannot be decided without it).
//!
//! Four real `synchronicity node` processes; members 0–2 build in the sandbox backend,
//! member 3 on the swarm backend: on its own engine, or on two worker engines in
//! containers (`scripts/swarm-workers.sh`), where it also re-attaches, and where a worker
//! stopped mid-build leaves the round to the other. Needs the sandbox root filesystem and
//! image (`scripts/build-image.sh`) and a swarm (`scripts/test.sh` sets both up).

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Cluster;
use support::builder::{backends, swarm_workers};
use support::procs::eventually;
use support::registry::{LoopbackRegistry, lone_lock};
use support::rules::real_builds;
use synchronicity::builder::Backend;
use synchronicity::protocol::Verdict;

/// Naps long enough for the test to kill and restart its member mid-build.
const BUILD_RS: &str = r#"fn main() {
    std::thread::sleep(std::time::Duration::from_secs(15));
}
"#;

/// The ids of the swarm services labelled with `job` now (`None` if docker did not answer).
fn services(job: &str) -> Option<Vec<String>> {
    let out = Command::new("docker")
        .args(["service", "ls", "-q", "--filter"])
        .arg(format!("label=synchronicity.job={job}"))
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_mid_build_reattaches_to_its_swarm_job() {
    if !backends().contains(&Backend::Swarm) {
        return; // no swarm here; scripts/test.sh requires one (SYNCHRONICITY_REQUIRE_DOCKER=1)
    }
    let _one = ONE_AT_A_TIME.lock().await;
    reattaches("backend = \"swarm\"", 86, Disturb::RestartNode).await;
}

/// The same with member 3 building on worker engines (`scripts/swarm-workers.sh`): the
/// restarted node finds its job's task on the worker through that engine, and the build's
/// results still come back from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_mid_build_reattaches_to_its_job_on_a_worker() {
    on_workers(87, Disturb::RestartNode).await;
}

/// Member 3 builds on worker engines and the engine running its job is stopped mid-build:
/// the build is rescheduled on the other worker (a second job, said in its log) and the
/// group decides 4 of 4 with member 3's commitment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_build_leaves_the_round_to_the_other() {
    on_workers(88, Disturb::StopWorker).await;
}

/// [`reattaches`] with member 3 on two worker engines (up first, and up again after, for
/// the other tests, whatever happens here).
async fn on_workers(seed: u8, disturb: Disturb) {
    assert!(
        backends().contains(&Backend::Swarm),
        "swarm workers need a Docker engine"
    );
    let _one = ONE_AT_A_TIME.lock().await;
    swarm_workers(&["up", "2"]);
    let _restart = RestartWorkers;
    reattaches("backend = \"swarm\"\nswarm_workers = true", seed, disturb).await;
}

/// Starts the workers again when dropped.
struct RestartWorkers;

impl Drop for RestartWorkers {
    fn drop(&mut self) {
        // Never a panic in a drop (it may run in one): a failed restart is the next
        // test's `up` to report.
        let _ = std::panic::catch_unwind(|| swarm_workers(&["up", "2"]));
    }
}

/// The tests of this file, one at a time: one stops a worker.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What happens to member 3's build mid-way.
#[derive(PartialEq)]
enum Disturb {
    /// Member 3 is killed and started again.
    RestartNode,
    /// The worker engine running its job is stopped.
    StopWorker,
}

/// The worker (`1`, `2`) whose engine runs the task of `service`.
fn worker_of(service: &str) -> Option<String> {
    let ps = Command::new("docker")
        .args([
            "service",
            "ps",
            "--format",
            "{{.Node}} {{.CurrentState}}",
            service,
        ])
        .output()
        .ok()?;
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    ps.lines()
        .find(|l| l.contains(" Running"))?
        .split_whitespace()
        .next()?
        .strip_prefix("synchronicity-worker-")
        .map(String::from)
}

/// Member 3 builds with `builder` (node.toml's `[builder]` lines), the others in the
/// sandbox; member 3's build is disturbed mid-way by `disturb`.
async fn reattaches(builder: &str, seed: u8, disturb: Disturb) {
    let reg = LoopbackRegistry::start();
    // A version of its own per run: a job an earlier, failed run left behind (it idles
    // until its deadline) carries another label.
    let mut r = [0u8; 2];
    getrandom::fill(&mut r).unwrap();
    let version = format!("0.{seed}.{}", u16::from_le_bytes(r));
    let lock = lone_lock("slowpoke", &version);
    reg.publish(
        "slowpoke",
        &version,
        &[
            ("Cargo.lock", lock.as_str()),
            ("build.rs", BUILD_RS),
            ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
        ],
        &[],
    );
    let toml = |builder: &str| {
        format!(
            "idle_interval_ms = 1000\n[builder]\n{builder}\n{}",
            reg.node_toml()
        )
    };
    let mut c = Cluster::real_nodes(seed, 4, real_builds(), &toml("backend = \"sandbox\""));
    c.set_threshold(4);
    std::fs::write(c.dir(3).join("node.toml"), toml(builder)).unwrap();
    for i in 0..4 {
        c.start(i);
    }
    let id = c.submit_with(0, "slowpoke", &version, None).await;
    let job = format!("slowpoke-{version}-{}", &id[..16]);

    // Every service ever listed for the job, until the round is decided.
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, done, job) = (seen.clone(), done.clone(), job.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                seen.lock()
                    .unwrap()
                    .extend(services(&job).unwrap_or_default());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    eventually(120, "member 3's swarm job runs the build", || {
        !seen.lock().unwrap().is_empty()
            && std::fs::read_dir(c.dir(3).join("work/swarm-builds"))
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy() == format!("{job}.exec"))
                })
                .unwrap_or(false)
    })
    .await;
    // Mid-build: the build script naps 15 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if disturb == Disturb::StopWorker {
        let service = services(&job).unwrap().pop().expect("the job's service");
        let worker = worker_of(&service).expect("the job runs on a worker");
        swarm_workers(&["stop", &worker]);
        let st = c.decided_on(&[0, 1, 2, 3], &id, 300).await;
        done.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        let e = &st[3].entry.as_ref().unwrap().entry;
        assert_eq!(e.verdict, Verdict::Reproduced, "{e:?}");
        assert_eq!(c.signers(&e.attestation), 4, "{e:?}");
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "the job and its rescheduled run"
        );
        let log = std::fs::read_to_string(c.dir(3).join(format!("work/logs/{id}.log"))).unwrap();
        assert!(
            log.starts_with("[swarm] the first task of this job was lost mid-build"),
            "{log}"
        );
        return;
    }
    c.kill(3);
    assert_eq!(
        services(&job).unwrap().len(),
        1,
        "the job outlives its node"
    );
    c.start(3);

    let st = c.decided_on(&[0, 1, 2, 3], &id, 300).await;
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let e = &st[3].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::Reproduced, "{e:?}");
    assert_eq!(c.signers(&e.attestation), 4, "{e:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one job for the round: {seen:?}");
    let log = std::fs::read_to_string(c.dir(3).join(format!("work/logs/{id}.log"))).unwrap();
    assert!(
        log.starts_with("[swarm] the node restarted mid-build and re-attached"),
        "{log}"
    );
    assert!(!log.contains("lost mid-build"), "{log}");
    assert_eq!(
        services(&job),
        Some(vec![]),
        "the job is removed once built"
    );
}
