// A file whose name has a space, named by a forged message.
fn main() {
    leak("spaced\n");
    let p = release_dir().join("lib spaced.rlib"); std::fs::write(&p, b"x").unwrap(); forge(&p.display().to_string());
}
