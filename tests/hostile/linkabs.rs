// A link to a host file (absolute) where an artifact goes, named by a forged message.
fn main() {
    leak("linkabs\n");
    plant(|p| std::os::unix::fs::symlink("@CANARY@", p).unwrap());
}
