// A FIFO where an artifact goes, named by a forged message.
fn main() {
    leak("fifo\n");
    plant(|p| assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success()));
}
