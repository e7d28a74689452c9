// A link to /dev/zero where an artifact goes, named by a forged message.
fn main() {
    leak("zero\n");
    plant(|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap());
}
