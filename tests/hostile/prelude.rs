// A hostile build script (tests/hostile_crates.rs). What it manages to read or do goes into
// `$OUT_DIR/leak`, which the crate's lib embeds: a canary that got out would be in the
// artifact store. `@CANARY@` is a host file's path, `@KEY@` a member's key file.
#![allow(dead_code)]
use std::io::Write;
use std::path::PathBuf;

fn out_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("OUT_DIR").unwrap())
}

/// `<target>/<triple>/release`: OUT_DIR is `release/build/<pkg>-<hash>/out`.
fn release_dir() -> PathBuf {
    out_dir().ancestors().nth(3).unwrap().to_path_buf()
}

/// Takes cargo's own stdout (our parent's fd 1, the host's pipe) with `pidfd_getfd` (a
/// process of the same uid may; the pipe's own permissions are not checked) and, by `mode`:
/// writes stdin into it (`text`), writes 1 GiB (`flood`), or becomes a daemon in a new
/// session that holds it open (`hold`, then `sleep @SLEEP@`). Perl is in the build image;
/// its `syscall` needs no crate.
const CARGO_STDOUT_PL: &str = r#"
use POSIX ();
my ($ppid, $mode) = @ARGV;
my $p = syscall(434, $ppid + 0, 0);
die "pidfd_open: $!" if $p < 0;
my $f = syscall(438, $p, 1, 0);
die "pidfd_getfd: $!" if $f < 0;
open(my $h, ">&=", $f) or die "fdopen: $!";
if ($mode eq "flood") {
    my $line = ("x" x 1023) . "\n";
    for (1 .. 1048576) { syswrite($h, $line) or last; }
} elsif ($mode eq "hold") {
    exit 0 if fork();
    POSIX::setsid();
    open(STDIN, "<", "/dev/null");
    open(STDERR, ">", "/dev/null");
    open(STDOUT, ">&=", $f) or die;
    exec("sleep", "@SLEEP@");
} else {
    local $/;
    my $text = <STDIN>;
    syswrite($h, $text) or die "write: $!";
}
"#;

/// Cargo's stdout by its `/proc` name (where the pipe's permissions allow it: not in the
/// sandbox, whose pipes are the node's).
fn open_cargo_stdout() -> Option<std::fs::File> {
    let ppid = std::os::unix::process::parent_id();
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{ppid}/fd/1"))
        .ok()
}

/// Into cargo's stdout by `/proc`, else by `pidfd_getfd` (Docker's seccomp profile refuses
/// that one). True if either got through.
fn into_cargo_stdout(mode: &str, text: &str) -> bool {
    if let Some(mut f) = open_cargo_stdout() {
        match mode {
            "flood" => {
                let line = [b'x'; 1023];
                for _ in 0..(1 << 20) {
                    if f.write_all(&line).and_then(|()| f.write_all(b"\n")).is_err() {
                        break;
                    }
                }
            }
            "hold" => {
                let _ = std::process::Command::new("setsid")
                    .args(["sleep", "@SLEEP@"])
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .stdout(f)
                    .spawn();
            }
            _ => {
                let _ = f.write_all(text.as_bytes());
            }
        }
        return true;
    }
    let script = out_dir().join("cargo-stdout.pl");
    std::fs::write(&script, CARGO_STDOUT_PL).unwrap();
    let ppid = std::os::unix::process::parent_id();
    let mut child = std::process::Command::new("perl")
        .arg(&script)
        .arg(ppid.to_string())
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    child.wait().is_ok_and(|s| s.success())
}

/// Writes a forged `compiler-artifact` message naming `file` into cargo's own stdout;
/// panics if it cannot (the suite would test nothing).
fn forge(file: &str) {
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap();
    let ver = std::env::var("CARGO_PKG_VERSION").unwrap();
    let line = format!(
        "\n{{\"reason\":\"compiler-artifact\",\"package_id\":\"path+file:///opt/rustwide/source#{pkg}@{ver}\",\"target\":{{\"kind\":[\"lib\"]}},\"filenames\":[\"{file}\"]}}\n"
    );
    assert!(into_cargo_stdout("text", &line), "cannot reach cargo's stdout");
}

/// Plants `libplanted.rlib` where artifacts go (by `make`) and names it in a forged message.
fn plant(make: impl FnOnce(&std::path::Path)) {
    let p = release_dir().join("libplanted.rlib");
    make(&p);
    forge(&p.display().to_string());
}

fn leak(text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out_dir().join("leak"))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Tries to read `path`; what it reads is leaked.
fn try_read(path: &str) {
    if let Ok(bytes) = std::fs::read(path) {
        leak(&format!("READ {path}: {}\n", String::from_utf8_lossy(&bytes)));
    }
}

/// Tries to write `path`; a success is leaked.
fn try_write(path: &str) {
    if std::fs::write(path, b"hostile").is_ok() {
        leak(&format!("WROTE {path}\n"));
    }
}

/// The relative spelling of an absolute host path from anywhere below the target dir.
fn relative(abs: &str) -> String {
    format!("{}{}", "../".repeat(40), abs.trim_start_matches('/'))
}
