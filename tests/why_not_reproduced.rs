//! Why a build was not reproduced: four real `synchronicity node` processes (sandbox
//! backend, real builds) build a fixture crate whose build script embeds the build time in
//! its binary, so no two members agree. `synchronicity diff` fetches two members' binaries,
//! each checked against that member's revealed manifest, runs diffoscope (confined), and
//! names the differing file and bytes; the member's web view links the report and serves
//! its build log.
//!
//! Needs the sandbox root filesystem (`scripts/build-image.sh`) and diffoscope, both set up
//! by `scripts/test.sh`.

mod support;

use support::Cluster;
use support::cli::bin;
use support::http::request;
use support::registry::{LoopbackRegistry, lone_lock};
use support::rules::real_builds;
use synchronicity::protocol::Verdict;

const BUILD_RS: &str = r#"fn main() {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{out}/stamp.txt"), format!("built-at-{t}")).unwrap();
}
"#;

const MAIN_RS: &str = r#"const STAMP: &str = include_str!(concat!(env!("OUT_DIR"), "/stamp.txt"));
fn main() {
    println!("{STAMP}");
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_names_the_file_and_bytes_two_members_disagree_on() {
    let reg = LoopbackRegistry::start();
    let lock = lone_lock("stamp", "0.1.0");
    reg.publish(
        "stamp",
        "0.1.0",
        &[
            ("Cargo.lock", lock.as_str()),
            ("build.rs", BUILD_RS),
            ("src/main.rs", MAIN_RS),
        ],
        &[],
    );
    let toml = format!(
        "idle_interval_ms = 1000\n[builder]\nbackend = \"sandbox\"\n{}",
        reg.node_toml()
    );
    let mut c = Cluster::real_nodes(84, 4, real_builds(), &toml);
    let port = synchronicity::testing::free_loopback_ports(1)[0];
    let http = format!("127.0.0.1:{port}");
    c.extra_args[0] = vec!["--http".into(), http.clone()];
    for i in 0..4 {
        c.start(i);
    }
    let id = c.submit_with(0, "stamp", "0.1.0", None).await;
    let st = c.decided_on(&[0, 1, 2, 3], &id, 400).await;
    let e = &st[0].entry.as_ref().unwrap().entry;
    assert_eq!(e.verdict, Verdict::NotReproduced, "{e:?}");
    assert!(e.dissenters.len() >= 2, "{e:?}");
    c.converge(&[0, 1, 2, 3], 120).await;

    // Before a report exists, the entry's page says how to make one.
    let (code, page) = request(&http, "GET", "/search?q=stamp@0.1.0", "");
    assert_eq!(code, 200);
    assert!(page.contains(&format!("synchronicity diff {id}")), "{page}");
    assert!(
        page.contains(&format!("href=\"/build-log/{id}\"")),
        "{page}"
    );
    let (code, log) = request(&http, "GET", &format!("/build-log/{id}"), "");
    assert_eq!(code, 200);
    assert!(log.contains("Compiling stamp v0.1.0"), "{log}");

    let out = c.dir(0).join("diffs").join(&id);
    let run = bin()
        .args(["diff", &id, "--members", "0", "1", "--out"])
        .arg(&out)
        .args(["--peer", &c.peer(1), "--peer", &c.peer(0), "--trust"])
        .arg(&c.committee_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let binary = "x86_64-unknown-linux-gnu/release/stamp";
    assert!(stdout.contains(binary), "the binary differs: {stdout}");
    assert!(stdout.contains("the files differ"), "{stdout}");
    // The files are the members' own: each binary prints its stamp, and the report shows
    // the bytes that differ (the two stamps).
    let stamp = |m: u32| {
        let path = out.join(format!("member-{m}")).join(binary);
        let bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(9)
            .position(|w| w == b"built-at-")
            .expect("the stamp is in the binary");
        String::from_utf8_lossy(&bytes[at..at + 28]).to_string()
    };
    let (a, b) = (stamp(0), stamp(1));
    assert_ne!(a, b);
    let report = std::fs::read_to_string(out.join("diff.txt")).unwrap();
    assert!(report.contains("stamp"), "{report}");
    assert!(
        report.contains(&format!("-{a}")) && report.contains(&format!("+{b}")),
        "the differing bytes are shown: {a} {b}\n{report}"
    );
    // A second run into the same directory writes nothing: --out must be new.
    let again = bin()
        .args(["diff", &id, "--out"])
        .arg(&out)
        .args(["--peer", &c.peer(1), "--trust"])
        .arg(&c.committee_file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("exists; give a new directory (nothing written)")
    );

    // The web view links the report and serves it.
    let (_, page) = request(&http, "GET", "/search?q=stamp@0.1.0", "");
    assert!(page.contains(&format!("href=\"/diff/{id}\"")), "{page}");
    let (code, html) = request(&http, "GET", &format!("/diff/{id}"), "");
    assert_eq!(code, 200);
    assert!(
        html.contains("diffoscope"),
        "{}",
        &html[..html.len().min(500)]
    );
    for i in 0..4 {
        c.stop(i);
    }
}
