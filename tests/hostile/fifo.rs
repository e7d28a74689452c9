// A FIFO and a link to /dev/zero where artifacts should be, named by forged messages.
fn main() {
    leak("fifo\n");
    let r = release_dir();
    let _ = std::process::Command::new("mkfifo").arg(r.join("libfifo.rlib")).status();
    let _ = std::os::unix::fs::symlink("/dev/zero", r.join("libzero.rlib"));
    forge(&format!("{}/libfifo.rlib", r.display()));
    forge(&format!("{}/libzero.rlib", r.display()));
}
