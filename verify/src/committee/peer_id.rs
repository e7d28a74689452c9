//! libp2p peer ids of Ed25519 keys, without libp2p: base58btc of the identity multihash of
//! the protobuf-encoded public key, `00 24 | 08 01 12 20 | key[32]` (libp2p peer-ids spec).

/// The 6 bytes before the key: identity multihash (0x00), length 36, then the protobuf
/// `PublicKey { Type = Ed25519 (1), Data = 32 bytes }`.
const PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// A 38-byte id is 52 base58 digits; anything much longer is not a peer id.
const MAX_TEXT: usize = 64;

/// The Ed25519 public key embedded in a base58 peer id, or `None` if `text` is not the
/// peer id of an Ed25519 key (hashed ids of larger keys are refused too).
pub fn ed25519_key_of_peer_id(text: &str) -> Option<[u8; 32]> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return None;
    }
    let bytes = decode_base58(text)?;
    let key = bytes.strip_prefix(&PREFIX[..])?;
    let key: [u8; 32] = key.try_into().ok()?;
    // One text form only: re-encoding must give the same text (no stray leading '1's).
    (peer_id_of_ed25519(&key) == text).then_some(key)
}

/// The base58 peer id of an Ed25519 public key.
pub fn peer_id_of_ed25519(key: &[u8; 32]) -> String {
    let mut bytes = PREFIX.to_vec();
    bytes.extend_from_slice(key);
    encode_base58(&bytes)
}

fn decode_base58(text: &str) -> Option<Vec<u8>> {
    // Big-endian base-256 accumulator; inputs are at most MAX_TEXT digits.
    let mut out: Vec<u8> = Vec::new();
    for c in text.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for b in out.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    let mut bytes = vec![0u8; zeros];
    bytes.extend(out);
    Some(bytes)
}

fn encode_base58(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::new(); // base 58, most significant first
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut().rev() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.insert(0, (carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().map(|&d| ALPHABET[d as usize] as char))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_known_form() {
        for seed in [0u8, 1, 0x7f, 0xff] {
            let key = [seed; 32];
            let id = peer_id_of_ed25519(&key);
            // Every Ed25519 peer id is 52 digits starting "12D3KooW".
            assert!(id.starts_with("12D3KooW"), "{id}");
            assert_eq!(id.len(), 52);
            assert_eq!(ed25519_key_of_peer_id(&id), Some(key));
        }
    }

    #[test]
    fn rejects_other_ids() {
        let id = peer_id_of_ed25519(&[3; 32]);
        for bad in [
            String::new(),
            "0OIl".into(),
            format!("1{id}"),
            id[..id.len() - 1].to_string(),
            // A sha256-hashed peer id (RSA keys): "Qm…".
            "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N".into(),
            "x".repeat(100),
        ] {
            assert_eq!(ed25519_key_of_peer_id(&bad), None, "{bad}");
        }
    }
}
