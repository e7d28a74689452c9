//! Source resolution against a real HTTP server on loopback serving a sparse index and
//! `.crate` files: unknown crates, unknown and yanked versions, and checksum mismatches are
//! clear errors; a good download is cached content-addressed and unpacked safely.

mod support;

use support::http::Response;
use synchronicity::builder::{Registry, SourceError, unpack_crate};
use synchronicity::crypto::sha256;

/// Serves `routes` (path → body) over HTTP/1.1 on loopback; other paths get 404.
fn serve(routes: Vec<(String, Vec<u8>)>) -> String {
    support::http::serve(
        move |req| match routes.iter().find(|(p, _)| *p == req.path) {
            Some((_, body)) => Response::ok(body.clone()),
            None => Response::not_found(),
        },
    )
}

/// A `.crate` with a minimal `Cargo.toml` and `extra` files.
fn make_crate(name: &str, version: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let manifest = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n");
    let mut files = vec![("Cargo.toml", manifest.as_str())];
    files.extend_from_slice(extra);
    support::registry::make_crate(name, version, &files)
}

fn index_line(version: &str, cksum: &[u8; 32], yanked: bool) -> String {
    format!(
        r#"{{"name":"demo","vers":"{version}","deps":[],"cksum":"{}","features":{{}},"yanked":{yanked}}}"#,
        hex::encode(cksum)
    )
}

#[test]
fn resolve_fetch_and_the_errors_a_user_can_meet() {
    let good = make_crate(
        "demo",
        "1.0.0",
        &[("Cargo.lock", "version = 4\n"), ("src/lib.rs", "")],
    );
    let other = make_crate("demo", "1.1.0", &[]);
    let index = [
        index_line("0.9.0", &[1; 32], true),
        index_line("1.0.0", &sha256(&good), false),
        // The index promises one checksum, the server delivers other bytes.
        index_line("1.1.0", &[9; 32], false),
    ]
    .join("\n");
    let base = serve(vec![
        ("/de/mo/demo".into(), index.into_bytes()),
        ("/dl/demo/demo-1.0.0.crate".into(), good.clone()),
        ("/dl/demo/demo-1.1.0.crate".into(), other),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let reg = Registry::with_urls(&base, &format!("{base}/dl"), cache.path());

    assert!(matches!(
        reg.resolve("nosuchcrate", "1.0.0"),
        Err(SourceError::UnknownCrate(_))
    ));
    assert!(matches!(
        reg.resolve("demo", "2.0.0"),
        Err(SourceError::UnknownVersion(..))
    ));
    let e = reg.resolve("demo", "0.9.0").unwrap_err();
    assert!(matches!(e, SourceError::Yanked(..)));
    assert_eq!(e.to_string(), "demo@0.9.0 is yanked");

    let entry = reg.resolve("demo", "1.1.0").unwrap();
    let e = reg.fetch("demo", "1.1.0", &entry.cksum).unwrap_err();
    assert!(matches!(e, SourceError::ChecksumMismatch { .. }), "{e}");
    assert!(
        !reg.cached_path(&entry.cksum).exists(),
        "nothing cached on a mismatch"
    );

    let entry = reg.resolve("demo", "1.0.0").unwrap();
    let path = reg.fetch("demo", "1.0.0", &entry.cksum).unwrap();
    assert_eq!(path, reg.cached_path(&sha256(&good)));
    // A corrupted cache entry is detected and replaced.
    std::fs::write(&path, b"garbage").unwrap();
    let path = reg.fetch("demo", "1.0.0", &entry.cksum).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), good);

    let dest = tempfile::tempdir().unwrap();
    let lock = unpack_crate(&path, "demo", "1.0.0", &dest.path().join("src")).unwrap();
    assert_eq!(lock.as_deref(), Some("version = 4\n"));
    assert!(dest.path().join("src/Cargo.toml").is_file());
}

#[test]
fn unpack_refuses_entries_outside_the_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = make_crate("evil", "1.0.0", &[]);
    let f = tmp.path().join("evil.crate");
    std::fs::write(&f, &bad).unwrap();
    // Right crate, wrong prefix expected: every entry is "outside".
    assert!(unpack_crate(&f, "other", "1.0.0", &tmp.path().join("x")).is_err());
}
