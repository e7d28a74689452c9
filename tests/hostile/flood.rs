// 1 GiB into cargo's stdout; where that channel is closed, 64 MiB of warnings that cargo
// prints itself.
fn main() {
    leak("flood\n");
    if !into_cargo_stdout("flood", "") {
        let line = "x".repeat(1000);
        for _ in 0..(64 << 10) {
            println!("cargo:warning={line}");
        }
    }
}
