// A forged name that is a host file's absolute path.
fn main() {
    leak("absolute\n");
    forge("@CANARY@");
}
