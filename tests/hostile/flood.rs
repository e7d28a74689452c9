// 1 GiB into cargo's stdout.
fn main() {
    leak("flood\n");
    assert!(into_cargo_stdout("flood", ""), "cannot reach cargo's stdout");
}
