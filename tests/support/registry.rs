//! A crates.io-like sparse registry on loopback: `config.json`, index files (with an ETag;
//! `If-None-Match` gets `304`), `.crate` downloads; crates can be published while it runs.
//! Builders reach it by `[builder] registry_index` / `registry_dl`, host-side cargo by
//! source replacement.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use synchronicity::builder::index_path;
use synchronicity::crypto::sha256;

use super::http::{Request, Response, serve_on};

/// The `source` of a crates.io package in a lockfile (builders replace it with this registry).
pub(crate) const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// A dependency of a published version: (name, requirement, kind: normal | dev | build).
pub(crate) type Dep<'a> = (&'a str, &'a str, &'a str);

#[derive(Default)]
struct State {
    /// Index path → lines.
    index: BTreeMap<String, Vec<String>>,
    /// Download path → bytes.
    files: BTreeMap<String, Vec<u8>>,
}

/// The running registry.
#[derive(Clone)]
pub(crate) struct LoopbackRegistry {
    pub(crate) base: String,
    state: Arc<Mutex<State>>,
    /// Index requests served (200 or 304), and of those 304.
    pub(crate) index_requests: Arc<AtomicU64>,
    pub(crate) not_modified: Arc<AtomicU64>,
}

/// A `.crate`: a gzipped tar of `name-version/<path>` entries.
pub(crate) fn make_crate(name: &str, version: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("{name}-{version}/{path}"),
            content.as_bytes(),
        )
        .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

impl LoopbackRegistry {
    /// A registry with no crates, serving on a new loopback port.
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let reg = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            state: Default::default(),
            index_requests: Default::default(),
            not_modified: Default::default(),
        };
        let r = reg.clone();
        serve_on(listener, move |req| r.answer(req));
        reg
    }

    /// The answer to `req`; counts index requests and `304`s.
    fn answer(&self, req: &Request) -> Response {
        if req.path == "/index/config.json" {
            let base = &self.base;
            let config = format!(r#"{{"dl":"{base}/dl/{{crate}}/{{crate}}-{{version}}.crate"}}"#);
            return Response::ok(config.into_bytes());
        }
        let st = self.state.lock().unwrap();
        if let Some(p) = req.path.strip_prefix("/index/") {
            self.index_requests.fetch_add(1, Ordering::Relaxed);
            let Some(lines) = st.index.get(p) else {
                return Response::not_found();
            };
            let body = lines.join("\n") + "\n";
            let etag = format!("\"{}\"", hex::encode(&sha256(body.as_bytes())[..8]));
            let headers = format!("ETag: {etag}\r\n");
            if req.header("if-none-match") == Some(etag.as_str()) {
                self.not_modified.fetch_add(1, Ordering::Relaxed);
                return Response {
                    status: "304 Not Modified",
                    headers,
                    body: Vec::new(),
                };
            }
            return Response {
                headers,
                ..Response::ok(body.into_bytes())
            };
        }
        match st.files.get(&req.path) {
            Some(b) => Response::ok(b.clone()),
            None => Response::not_found(),
        }
    }

    /// `[builder]` keys pointing a node at this registry.
    pub(crate) fn node_toml(&self) -> String {
        format!(
            "registry_index = \"{0}/index\"\nregistry_dl = \"{0}/dl\"\n",
            self.base
        )
    }

    /// Publishes `name@version`: a library with no dependencies that ships its lockfile
    /// ([`lone_lock`]). Returns the `.crate`'s sha256.
    pub(crate) fn publish_lone(&self, name: &str, version: &str) -> [u8; 32] {
        let lock = lone_lock(name, version);
        self.publish(
            name,
            version,
            &[
                ("Cargo.lock", lock.as_str()),
                ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
            ],
            &[],
        )
    }

    /// Publishes `name@version` with `files` (a `Cargo.toml` is made from `deps` unless
    /// given) and an index line listing `deps`. Returns the `.crate`'s sha256.
    pub(crate) fn publish(
        &self,
        name: &str,
        version: &str,
        files: &[(&str, &str)],
        deps: &[Dep<'_>],
    ) -> [u8; 32] {
        let mut all: Vec<(String, String)> = files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        if !files.iter().any(|(p, _)| *p == "Cargo.toml") {
            let mut toml = format!(
                "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n"
            );
            for kind in ["normal", "dev", "build"] {
                let section = match kind {
                    "normal" => "dependencies",
                    "dev" => "dev-dependencies",
                    _ => "build-dependencies",
                };
                let mine: Vec<_> = deps.iter().filter(|d| d.2 == kind).collect();
                if !mine.is_empty() {
                    toml.push_str(&format!("\n[{section}]\n"));
                    for (n, req, _) in mine {
                        toml.push_str(&format!("{n} = \"{req}\"\n"));
                    }
                }
            }
            all.push(("Cargo.toml".into(), toml));
        }
        if !all
            .iter()
            .any(|(p, _)| p == "src/lib.rs" || p == "src/main.rs")
        {
            all.push(("src/lib.rs".into(), String::new()));
        }
        let refs: Vec<(&str, &str)> = all.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        let bytes = make_crate(name, version, &refs);
        let cksum = sha256(&bytes);
        let deps_json: Vec<String> = deps
            .iter()
            .map(|(n, req, kind)| {
                format!(
                    r#"{{"name":"{n}","req":"{req}","features":[],"optional":false,"default_features":true,"target":null,"kind":"{kind}"}}"#
                )
            })
            .collect();
        let line = format!(
            r#"{{"name":"{name}","vers":"{version}","deps":[{}],"cksum":"{}","features":{{}},"yanked":false}}"#,
            deps_json.join(","),
            hex::encode(cksum)
        );
        let mut st = self.state.lock().unwrap();
        st.index.entry(index_path(name)).or_default().push(line);
        st.files
            .insert(format!("/dl/{name}/{name}-{version}.crate"), bytes);
        cksum
    }
}

/// A lockfile for `name@version` with no dependencies.
pub(crate) fn lone_lock(name: &str, version: &str) -> String {
    format!("version = 4\n\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n")
}

/// A loopback address where nothing listens.
pub(crate) fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
