// Reads of host paths (directly, through /proc), writes outside the target dir and into
// other builds' directories; reports who it runs as. Succeeds: its lib embeds the report.
fn main() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_string())
            .unwrap_or_default()
    };
    leak(&format!(
        "ESCAPE-REPORT uid={} nnp={} capeff={} capbnd={}\n",
        field("Uid:").split_whitespace().next().unwrap_or(""),
        field("NoNewPrivs:"),
        field("CapEff:"),
        field("CapBnd:"),
    ));
    let ppid = std::os::unix::process::parent_id();
    for p in [
        "@CANARY@".to_string(),
        "@KEY@".to_string(),
        format!("/proc/1/root@CANARY@"),
        format!("/proc/{ppid}/root@CANARY@"),
        format!("/proc/1/root@KEY@"),
        format!("/opt/rustwide/target/{}", relative("@CANARY@")),
        format!("/opt/rustwide/source/{}", relative("@CANARY@")),
    ] {
        try_read(&p);
    }
    for p in [
        "/opt/rustwide/source/hostile-was-here",
        "/opt/rustwide/cargo-home/hostile-was-here",
        "/opt/rustwide/rustup-home/hostile-was-here",
        "/etc/hostile-was-here",
        "/hostile-was-here",
    ] {
        try_write(p);
    }
    // The members' directories (every build's host directories are below them), by their
    // host paths: listed, read and written if they can be reached at all.
    walk(std::path::Path::new("@ROOT@"), 0);
    // A setuid file of its own, named as an artifact: copied without the bit.
    let suid = release_dir().join("libsuid.rlib");
    let _ = std::fs::write(&suid, b"suid");
    let _ = std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755));
    forge(&suid.display().to_string());
}

fn walk(dir: &std::path::Path, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    leak(&format!("LISTED {}\n", dir.display()));
    try_write(&dir.join("hostile-was-here").display().to_string());
    for e in entries.flatten() {
        let p = e.path();
        if depth < 6 && p.is_dir() {
            walk(&p, depth + 1);
        } else {
            try_read(&p.display().to_string());
        }
    }
}
