// A link to a host file (relative) where an artifact goes, named by a forged message.
fn main() {
    leak("linkrel\n");
    plant(|p| std::os::unix::fs::symlink(relative("@CANARY@"), p).unwrap());
}
