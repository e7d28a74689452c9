// 1 GiB into cargo's stdout.
fn main() {
    leak("flood\n");
    into_cargo_stdout("flood", "");
}
