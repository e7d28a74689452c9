// A process in a new session that holds cargo's stdout (the host's pipe) open and tries to
// outlive the build.
fn main() {
    leak("daemon\n");
    assert!(into_cargo_stdout("hold", ""), "cannot reach cargo's stdout");
}
