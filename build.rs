//! Records the host target triple for the build workspace's toolchain directory name.
fn main() {
    println!(
        "cargo:rustc-env=SYNCHRONICITY_HOST_TRIPLE={}",
        std::env::var("TARGET").expect("cargo sets TARGET")
    );
}
