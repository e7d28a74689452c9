//! CBOR encoding (ciborium) with bounds on decode.
//!
//! Encoding is deterministic for our types: serde visits struct fields in declaration order,
//! and we use no maps with unordered keys in anything that is hashed or signed.
//! Decoding untrusted bytes is bounded three ways: the input length (checked before any
//! work), the nesting depth, and "no trailing bytes" (one value per buffer, so two encodings
//! cannot share a hash).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Maximum nesting depth accepted on decode.
pub const MAX_DEPTH: usize = 32;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input exceeds the caller's size limit.
    #[error("CBOR input of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Input size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("invalid CBOR: {0}")]
    Invalid(String),
    /// Bytes remain after the value.
    #[error("{0} trailing bytes after the CBOR value")]
    TrailingBytes(usize),
}

/// Encodes `value` as CBOR.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

/// Decodes exactly one CBOR value of type `T` from `bytes`, which must be at most `max_len`
/// bytes long.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| CodecError::Invalid(one_line(&e)))?;
    if !reader.is_empty() {
        return Err(CodecError::TrailingBytes(reader.len()));
    }
    Ok(value)
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        n: u64,
    }

    fn sample() -> Sample {
        Sample {
            name: "itoa".into(),
            data: vec![1, 2, 3],
            n: 7,
        }
    }

    #[test]
    fn roundtrip_and_determinism() {
        let a = to_vec(&sample());
        assert_eq!(a, to_vec(&sample()));
        assert_eq!(from_slice::<Sample>(&a, 1024).unwrap(), sample());
    }

    #[test]
    fn rejects_oversized_trailing_truncated_and_deep() {
        let a = to_vec(&sample());
        assert_eq!(
            from_slice::<Sample>(&a, a.len() - 1),
            Err(CodecError::TooLarge {
                len: a.len(),
                max: a.len() - 1
            })
        );
        let mut trailing = a.clone();
        trailing.push(0);
        assert_eq!(
            from_slice::<Sample>(&trailing, 1024),
            Err(CodecError::TrailingBytes(1))
        );
        assert!(matches!(
            from_slice::<Sample>(&a[..a.len() - 1], 1024),
            Err(CodecError::Invalid(_))
        ));
        // 100 nested arrays: over the depth limit, rejected without a stack overflow.
        let deep = [vec![0x81u8; 100], vec![0x00]].concat();
        assert!(matches!(
            from_slice::<ciborium::value::Value>(&deep, 1024),
            Err(CodecError::Invalid(_))
        ));
        // A byte string claiming 2^32 bytes in a 10-byte input is an error, not an allocation.
        let huge = [0x5a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(from_slice::<ciborium::value::Value>(&huge, 1024).is_err());
    }
}
