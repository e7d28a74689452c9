pub static LEAK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/leak"));

pub fn leak() -> &'static [u8] {
    LEAK
}
