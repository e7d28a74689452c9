// A file only its owner may read, named by a forged message.
fn main() {
    leak("private\n");
    plant(|p| { std::fs::write(p, b"private").unwrap(); std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap(); });
}
