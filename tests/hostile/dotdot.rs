// A forged name that climbs out of the target directory to a host file.
fn main() {
    leak("dotdot\n");
    forge(&format!("/opt/rustwide/target/{}", relative("@CANARY@")));
}
