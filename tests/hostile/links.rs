// Links to a host file (absolute and relative) in the target dir, named by forged messages.
fn main() {
    leak("links\n");
    let r = release_dir();
    let _ = std::os::unix::fs::symlink("@CANARY@", r.join("liblinked_abs.rlib"));
    let _ = std::os::unix::fs::symlink(relative("@CANARY@"), r.join("liblinked_rel.rlib"));
    let _ = std::os::unix::fs::symlink(relative("@KEY@"), r.join("liblinked_key.rlib"));
    for n in ["liblinked_abs.rlib", "liblinked_rel.rlib", "liblinked_key.rlib"] {
        forge(&format!("{}/{n}", r.display()));
    }
}
