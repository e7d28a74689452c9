//! A crates.io-like sparse registry on loopback: `config.json`, index files (with an ETag;
//! `If-None-Match` gets `304`), `.crate` downloads; crates can be published while it runs.
//! Builders reach it by `[builder] registry_index` / `registry_dl`, host-side cargo by
//! source replacement.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use synchronicity::builder::index_path;
use synchronicity::crypto::sha256;

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
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let reg = Self {
            base: base.clone(),
            state: Default::default(),
            index_requests: Default::default(),
            not_modified: Default::default(),
        };
        let config = format!(r#"{{"dl":"{base}/dl/{{crate}}/{{crate}}-{{version}}.crate"}}"#);
        let r = reg.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let r = r.clone();
                let config = config.clone();
                std::thread::spawn(move || r.answer(stream, &config));
            }
        });
        reg
    }

    fn answer(&self, stream: std::net::TcpStream, config: &str) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut if_none_match = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("if-none-match")
            {
                if_none_match = Some(v.trim().to_string());
            }
        }
        let (status, body, etag) = {
            let st = self.state.lock().unwrap();
            if path == "/index/config.json" {
                ("200 OK", Some(config.as_bytes().to_vec()), None)
            } else if let Some(p) = path.strip_prefix("/index/") {
                self.index_requests.fetch_add(1, Ordering::Relaxed);
                match st.index.get(p) {
                    Some(lines) => {
                        let body = lines.join("\n") + "\n";
                        let etag = format!("\"{}\"", hex::encode(&sha256(body.as_bytes())[..8]));
                        if if_none_match.as_deref() == Some(etag.as_str()) {
                            self.not_modified.fetch_add(1, Ordering::Relaxed);
                            ("304 Not Modified", None, Some(etag))
                        } else {
                            ("200 OK", Some(body.into_bytes()), Some(etag))
                        }
                    }
                    None => ("404 Not Found", None, None),
                }
            } else {
                match st.files.get(&path) {
                    Some(b) => ("200 OK", Some(b.clone()), None),
                    None => ("404 Not Found", None, None),
                }
            }
        };
        let mut s = stream;
        let body = body.unwrap_or_default();
        let etag = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{etag}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(&body);
    }

    /// `[builder]` keys pointing a node at this registry.
    pub(crate) fn node_toml(&self) -> String {
        format!(
            "registry_index = \"{0}/index\"\nregistry_dl = \"{0}/dl\"\n",
            self.base
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

/// A loopback address where nothing listens.
pub(crate) fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
