//! Witnesses (C2SP tlog-witness, tlog-cosignature): third parties that cosign a log's
//! checkpoints only if each is consistent with the last one they cosigned, so a split view
//! needs their collusion too.
//!
//! - The pure core here: the `add-checkpoint` request body, the cosignature/v1 message and
//!   line, witness verifier keys (`name+id+base64(0x04 || Ed25519 key)`), and checking a
//!   note's witness lines against a policy (K of these keys).
//! - `synchronicity witness`, a minimal standard witness for one log, is an HTTP server:
//!   [`crate::http::witness`].
//! - What members do after a checkpoint is cosigned is a node duty:
//!   [`crate::node::witness_submit`].
//!
//! This module is formats only (the log's note types below it); it imports no server and
//! no node.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::log::{Hash, NoteSignature, SignedNote};
use crate::verify::tlog::{COSIGNATURE_V1_KEY_TYPE, note_key_id};

/// Largest `add-checkpoint` body (a note and at most 64 proof hashes).
pub const MAX_ADD_CHECKPOINT: usize = 64 * 1024;
/// Most consistency-proof hashes in one request.
pub const MAX_PROOF_HASHES: usize = 64;

/// A witness's public key, from its verifier key text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: [u8; 4],
    /// Ed25519 public key.
    pub public: [u8; 32],
}

impl WitnessKey {
    /// For a witness named `name` with Ed25519 key `public`.
    pub fn new(name: &str, public: [u8; 32]) -> Self {
        Self {
            name: name.to_string(),
            key_id: note_key_id(name, COSIGNATURE_V1_KEY_TYPE, &public),
            public,
        }
    }

    /// Parses `name+<8 hex>+base64(0x04 || key)`, checking the key ID.
    pub fn parse(vkey: &str) -> Result<Self, String> {
        // The key's base64 may itself hold '+': split off the name and the ID only.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("witness key {vkey:?}: expected name+id+key"));
        };
        let bytes = B64
            .decode(key)
            .map_err(|_| format!("witness key {vkey:?}: key is not base64"))?;
        if bytes.len() != 33 || bytes[0] != COSIGNATURE_V1_KEY_TYPE {
            return Err(format!(
                "witness key {vkey:?}: not a cosignature/v1 (type 0x04) Ed25519 key"
            ));
        }
        let public: [u8; 32] = bytes[1..].try_into().map_err(|_| "length".to_string())?;
        let k = Self::new(name, public);
        if hex::encode(k.key_id) != id {
            return Err(format!("witness key {vkey:?}: key ID does not match"));
        }
        Ok(k)
    }

    /// The verifier key text.
    pub fn vkey(&self) -> String {
        let mut k = vec![COSIGNATURE_V1_KEY_TYPE];
        k.extend_from_slice(&self.public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(k)
        )
    }

    /// The time of this witness's valid cosignature on `note`, if it carries one.
    pub fn cosigned_at(&self, note: &SignedNote) -> Option<u64> {
        let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(&self.public).ok()?;
        note.signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_id == self.key_id && s.signature.len() == 72)
            .find_map(|s| {
                let time = u64::from_be_bytes(s.signature[..8].try_into().ok()?);
                key.verify(
                    cosignature_message(&note.text, time).as_bytes(),
                    &s.signature[8..],
                )
                .then_some(time)
            })
    }
}

/// The cosignature/v1 signed message: `cosignature/v1\ntime <t>\n` and the checkpoint text.
pub fn cosignature_message(checkpoint_text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{checkpoint_text}")
}

/// A cosignature/v1 line: key ID, big-endian time, Ed25519 signature.
pub fn cosignature_line(key: &WitnessKey, time: u64, signature: &[u8; 64]) -> NoteSignature {
    let mut sig = time.to_be_bytes().to_vec();
    sig.extend_from_slice(signature);
    NoteSignature {
        name: key.name.clone(),
        key_id: key.key_id,
        signature: sig,
    }
}

/// How many of `keys` validly cosigned `note`.
pub fn count_witnesses(note: &str, keys: &[WitnessKey]) -> Result<usize, String> {
    let parsed = SignedNote::parse(note).map_err(|e| e.to_string())?;
    Ok(keys
        .iter()
        .filter(|k| k.cosigned_at(&parsed).is_some())
        .count())
}

/// A tlog-witness `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size the submitter believes the witness has.
    pub old: u64,
    /// Consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    /// Parses a request body strictly (bounded).
    pub fn parse(body: &str) -> Result<Self, String> {
        if body.len() > MAX_ADD_CHECKPOINT {
            return Err("request body over 64 KiB".into());
        }
        let (head, note) = body
            .split_once("\n\n")
            .ok_or("no blank line before the checkpoint")?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or("first line is not \"old <size>\"")?;
        let mut proof = Vec::new();
        for l in lines {
            if proof.len() == MAX_PROOF_HASHES {
                return Err("too many proof hashes".into());
            }
            let b = B64.decode(l).map_err(|_| "a proof hash is not base64")?;
            let h: Hash = b.try_into().map_err(|_| "a proof hash is not 32 bytes")?;
            proof.push(h);
        }
        Ok(Self {
            old,
            proof,
            note: note.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_requests_and_cosignatures_round_trip() {
        let id = crate::crypto::NodeIdentity::generate();
        let key = WitnessKey::new("witness.example", id.public_key_bytes());
        assert_eq!(WitnessKey::parse(&key.vkey()).unwrap(), key);
        assert!(WitnessKey::parse("a+00000000+AAAA").is_err());
        let req = AddCheckpoint {
            old: 3,
            proof: vec![[7; 32], [8; 32]],
            note: "o\n5\nAAAA\n\n— o AAAA\n".into(),
        };
        assert_eq!(AddCheckpoint::parse(&req.to_body()).unwrap(), req);
        assert!(AddCheckpoint::parse("old x\n\nnote").is_err());
        let text = "origin\n5\nroot\n";
        let sig = id.sign(cosignature_message(text, 1700).as_bytes());
        let mut note = SignedNote {
            text: text.into(),
            signatures: vec![cosignature_line(&key, 1700, &sig)],
        };
        assert_eq!(key.cosigned_at(&note), Some(1700));
        note.signatures[0].signature[0] ^= 1; // another time: the signature no longer holds
        assert_eq!(key.cosigned_at(&note), None);
    }
}

#[cfg(test)]
mod fuzz_like {
    use super::*;

    /// Random bodies never panic the request parser.
    #[test]
    fn arbitrary_bodies_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let pieces = [
            "old ",
            "12",
            "\n",
            "\n\n",
            "AAAA",
            "=",
            "—",
            "x",
            "old 18446744073709551615\n",
        ];
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            let _ = AddCheckpoint::parse(&s);
            let _ = WitnessKey::parse(&s);
            x = x.wrapping_add(1);
        }
    }
}
