// Names with `..` to host files, and a hard link to a file outside the build's disk.
fn main() {
    leak("dotdot\n");
    let r = release_dir();
    if std::fs::hard_link("/etc/passwd", r.join("libhard.rlib")).is_ok() {
        leak("HARDLINKED /etc/passwd\n");
    }
    forge(&format!("/opt/rustwide/target/{}", relative("@CANARY@")));
    forge("@CANARY@");
}
