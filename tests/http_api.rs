//! The log open to standard tooling, on a 4-member group (the real node with a builder that
//! returns chosen manifests) serving `--http`, with two `synchronicity witness` processes:
//!
//! - every new checkpoint gets both witnesses' cosignatures; a witness refuses a forged
//!   checkpoint that is not consistent with the last one it signed (422) and a stale
//!   `old` size (409 with its size);
//! - an independent client (Go's sumdb/tlog and sumdb/note, Debian's
//!   golang-golang-x-mod-dev) fetches the checkpoint and tiles, recomputes the root, checks
//!   a looked-up entry's inclusion, and verifies ≥ t members' Ed25519 lines;
//! - `verify --witnesses-needed 2` passes, `--witnesses-needed 3` fails;
//! - headless Chromium loads the web view, searches a crate, and finds its verdict and
//!   signers (screenshot in `target/test-artifacts/`);
//! - bad requests get 4xx answers;
//! - member 1 also writes `--tiles-dir`: Debian's nginx serves that directory, the Go
//!   client reads the checkpoint, every tile and every entry bundle through it alone, and
//!   `synchronicity mirror --url` copies it; `audit --mirror` then answers a lockfile with
//!   no network, with the same table as the online audit, and refuses a tampered mirror.
//!
//! Needs `go`, the Go sumdb sources, `chromium` and `nginx` (installed by `scripts/test.sh`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Cluster;
use support::cli::{bin, ok};

/// `o`'s stdout, after checking it succeeded.
fn ok_out(o: &std::process::Output) -> Vec<u8> {
    ok(o);
    o.stdout.clone()
}
use support::http::request as http;
use support::rules::windows;
use synchronicity::testing::free_loopback_ports;
use synchronicity::witness::{AddCheckpoint, WitnessKey, count_witnesses};

/// An nginx serving `root` on `port` (one process, no daemon), stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &Path, root: &Path, port: u16) -> Nginx {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  default_type application/octet-stream;\n  server {{\n    listen 127.0.0.1:{port};\n    root {r};\n    location / {{ try_files $uri =404; }}\n  }}\n}}\n",
            d = dir.display(),
            r = root.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (scripts/test.sh installs it)");
    let n = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {:?}",
            std::fs::read_to_string(dir.join("error.log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    n
}

struct Witness {
    child: Child,
    addr: String,
    vkey: String,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn witness(dir: &Path, committee: &Path, name: &str, port: u16) -> Witness {
    let addr = format!("127.0.0.1:{port}");
    let mut w = Witness {
        child: bin()
            .args(["witness", "--listen", &addr, "--dir"])
            .arg(dir)
            .arg("--log")
            .arg(committee)
            .args(["--name", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        addr,
        vkey: String::new(),
    };
    // Dropping `w` (a panic below) kills and reaps the process.
    let vkey_file = dir.join("witness.vkey");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(v) = std::fs::read_to_string(&vkey_file)
            && std::net::TcpStream::connect(&w.addr).is_ok()
        {
            w.vkey = v.trim().to_string();
            return w;
        }
        assert!(Instant::now() < deadline, "witness {name} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_tooling_reads_the_log_and_witnesses_cosign_it() {
    let rules = windows(60, 2, 10);
    let mut c = Cluster::new(95, 4, rules, "idle_interval_ms = 1000\n");
    let ports = free_loopback_ports(7);
    let tiles_dir = c.root.path().join("tiles");
    let w1 = witness(
        &c.root.path().join("w1"),
        &c.committee_file,
        "witness-one.example",
        ports[4],
    );
    let w2 = witness(
        &c.root.path().join("w2"),
        &c.committee_file,
        "witness-two.example",
        ports[5],
    );
    let toml = format!(
        "idle_interval_ms = 1000\n[[witnesses]]\nurl = \"http://{}\"\nvkey = \"{}\"\n[[witnesses]]\nurl = \"http://{}\"\nvkey = \"{}\"\n",
        w1.addr, w1.vkey, w2.addr, w2.vkey
    );
    for (i, port) in ports.iter().take(4).enumerate() {
        std::fs::write(c.dir(i).join("node.toml"), &toml).unwrap();
        c.extra_args[i] = vec!["--http".into(), format!("127.0.0.1:{port}")];
        if i == 1 {
            c.extra_args[i].push("--tiles-dir".into());
            c.extra_args[i].push(tiles_dir.display().to_string());
        }
        c.start(i);
    }
    let web = format!("127.0.0.1:{}", ports[0]);
    let keys = [
        WitnessKey::parse(&w1.vkey).unwrap(),
        WitnessKey::parse(&w2.vkey).unwrap(),
    ];
    for k in 0..3 {
        c.submit(0, &format!("tiles{k}"), "1.0.0").await;
        c.decided_on(&[0, 1, 2, 3], &format!("tiles{k}@1.0.0"), 120)
            .await;
        // Every new checkpoint gets both witnesses' cosignatures.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, note) = http(&web, "GET", "/checkpoint", "");
            let size: u64 = note
                .lines()
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            if status == 200 && size == k + 1 && count_witnesses(&note, &keys).unwrap() == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "checkpoint {} not witnessed: {note}",
                k + 1
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // A witness refuses a checkpoint inconsistent with the last one it signed.
    let forged = c.tc.cosign(4, [0x42; 32]);
    let req = AddCheckpoint {
        old: 3,
        proof: vec![[7; 32]; 2],
        note: forged.note().to_string(),
    };
    let (status, body) = http(&w1.addr, "POST", "/add-checkpoint", &req.to_body());
    assert_eq!(status, 422, "{body}");
    let same_size = c.tc.cosign(3, [0x43; 32]);
    let req = AddCheckpoint {
        old: 3,
        proof: vec![],
        note: same_size.note().to_string(),
    };
    assert_eq!(
        http(&w1.addr, "POST", "/add-checkpoint", &req.to_body()).0,
        422
    );
    let req = AddCheckpoint {
        old: 1,
        proof: vec![],
        note: forged.note().to_string(),
    };
    let (status, body) = http(&w2.addr, "POST", "/add-checkpoint", &req.to_body());
    assert_eq!(
        (status, body.trim()),
        (409, "3"),
        "the witness says its size"
    );
    assert_eq!(http(&w2.addr, "POST", "/add-checkpoint", "old x\n").0, 400);

    // An independent client: Go's sumdb/tlog and sumdb/note.
    let vkeys = c.root.path().join("vkeys");
    let out = bin()
        .args(["committee", "check", "--vkeys"])
        .arg(&c.committee_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&vkeys, &out.stdout).unwrap();
    let gocache = c.root.path().join("gocache");
    let out = Command::new("go")
        .args(["run", "tests/go/tilecheck/main.go"])
        .arg(format!("http://{web}"))
        .arg(&vkeys)
        .arg(c.tc.committee.threshold().to_string())
        .arg("tiles1@1.0.0")
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", &gocache)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("go is installed (scripts/test.sh installs golang-go)");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.starts_with("ok size=3 index=1"), "{said}");

    // Static tiles: member 1's --tiles-dir reaches the checkpoint of size 3; nginx serves
    // the directory; the Go client reads the checkpoint, tiles and bundles through it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(tiles_dir.join("checkpoint"))
        .is_ok_and(|n| n.lines().nth(1) == Some("3"))
    {
        assert!(
            Instant::now() < deadline,
            "--tiles-dir did not reach size 3"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _nginx = nginx(&c.root.path().join("nginx"), &tiles_dir, ports[6]);
    let static_url = format!("http://127.0.0.1:{}", ports[6]);
    let out = Command::new("go")
        .args(["run", "tests/go/tilecheck/main.go"])
        .arg(&static_url)
        .arg(&vkeys)
        .arg(c.tc.committee.threshold().to_string())
        .arg("-")
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", &gocache)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.starts_with("ok size=3 entries=3"), "{said}");

    // A mirror of the static copy; audit from it with no network = the online audit.
    let mirror_dir = c.root.path().join("mirror");
    let mirror = || {
        bin()
            .args(["mirror", "--url", &static_url, "--out"])
            .arg(&mirror_dir)
            .arg("--trust")
            .arg(&c.committee_file)
            .output()
            .unwrap()
    };
    let said = String::from_utf8_lossy(&ok_out(&mirror())).to_string();
    assert!(
        said.contains("size 0 -> 3") && said.contains("index verified"),
        "{said}"
    );
    let said = String::from_utf8_lossy(&ok_out(&mirror())).to_string();
    assert!(said.contains("up to date at size 3"), "{said}");
    let lock = c.root.path().join("Cargo.lock");
    let mut text = String::from("version = 4\n");
    for name in ["tiles0", "tiles2", "never-logged"] {
        text.push_str(&format!(
            "\n[[package]]\nname = \"{name}\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            "01".repeat(32)
        ));
    }
    std::fs::write(&lock, text).unwrap();
    let audit = |extra: &[&str]| {
        let o = bin()
            .args(["audit", "--json", "--lockfile"])
            .arg(&lock)
            .arg("--trust")
            .arg(&c.committee_file)
            .arg("--cache")
            .arg(c.root.path().join("proof-cache"))
            .args(extra)
            .output()
            .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&ok_out(&o)).unwrap();
        rows
    };
    let online = audit(&["--peer", &c.peer(2), "--max-age", "0s"]);
    let offline = audit(&["--mirror", mirror_dir.to_str().unwrap()]);
    assert_eq!(online, offline, "the mirror's table is the online one");
    let statuses: Vec<_> = online
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["crate"].clone(), r["status"].clone(), r["proven"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("never-logged".into(), "unknown".into(), true.into()),
            ("tiles0".into(), "reproduced".into(), true.into()),
            ("tiles2".into(), "reproduced".into(), true.into()),
        ]
    );
    // A tampered mirror is refused, one line naming it.
    let bundle = mirror_dir.join("tile/entries/000.p/3");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let o = bin()
        .args(["audit", "--lockfile"])
        .arg(&lock)
        .arg("--trust")
        .arg(&c.committee_file)
        .arg("--mirror")
        .arg(&mirror_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("the entries' root is not the checkpoint's"),
        "{err}"
    );

    // verify's witness policy.
    let proof = c.root.path().join("tiles1.tlog-proof");
    ok(&c.proof(1, "tiles1@1.0.0", &[], &proof));
    let third = WitnessKey::new("witness-three.example", [9; 32]).vkey();
    let verify = |needed: &str| {
        bin()
            .arg("verify")
            .arg(&proof)
            .arg("--trust")
            .arg(&c.committee_file)
            .args([
                "--crate",
                "tiles1@1.0.0",
                "--witness",
                &w1.vkey,
                "--witness",
                &w2.vkey,
                "--witness",
                &third,
            ])
            .args(["--witnesses-needed", needed])
            .output()
            .unwrap()
    };
    let o = verify("2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = verify("3");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 valid cosignature(s)"));

    // Bad requests: 4xx, never a panic (the node answers the next request).
    for (method, path, want) in [
        ("GET", "/nope", 404),
        ("GET", "/tile/0/x999/x999/x999/999", 404),
        ("GET", "/tile/9/000", 404),
        ("GET", "/tile/0/000.p/300", 404),
        ("GET", "/tile/entries/001", 404),
        ("GET", "/lookup/%3Cscript%3E", 400),
        ("GET", "/blob/zz", 400),
        ("GET", "/search?q=%3Cscript%3E", 400),
        ("POST", "/checkpoint", 405),
    ] {
        assert_eq!(http(&web, method, path, "").0, want, "{method} {path}");
    }
    let long = format!("/{}", "a".repeat(600));
    assert_eq!(http(&web, "GET", &long, "").0, 414);
    assert_eq!(http(&web, "GET", "/tile/0/000.p/3", "").0, 200);

    // The web view in headless Chromium: search, verdict and signers on the page.
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("web-view-search.png");
    let url = format!("http://{web}/search?q=tiles1%401.0.0");
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!(
                "--user-data-dir={}",
                c.root.path().join("chromium").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium is installed (scripts/test.sh installs it)")
    };
    let dom = chromium(&["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(html.contains("Reproduced"), "verdict on the page: {html}");
    assert!(
        html.contains("4 of 4 (m0, m1, m2, m3)"),
        "signers on the page: {html}"
    );
    let _ = std::fs::remove_file(&shot);
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1200,900",
    ]);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "screenshot saved"
    );
    let (status, index) = http(&web, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(
        index.contains("tiles2@1.0.0") && index.contains("witness-one.example"),
        "{index}"
    );
    // The search is a plain GET form (what the browser above submitted), usable without JS.
    assert!(
        index.contains("action=\"/search\"") && index.contains("name=\"q\""),
        "{index}"
    );
    for i in 0..4 {
        c.stop(i);
    }
}
