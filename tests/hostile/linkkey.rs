// A link to a member's BLS key where an artifact goes, named by a forged message.
fn main() {
    leak("linkkey\n");
    plant(|p| std::os::unix::fs::symlink(relative("@KEY@"), p).unwrap());
}
