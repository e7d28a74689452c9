// A process that tries to outlive the build (a new session, double fork).
fn main() {
    leak("daemon\n");
    let _ = std::process::Command::new("/bin/sh")
        .args(["-c", "setsid sh -c 'exec sleep @SLEEP@' </dev/null >/dev/null 2>&1 &"])
        .status();
}
