//! A node directory: the node's secret keys and its public member entry.
//!
//! ```text
//! DIR/identity.key   Ed25519 secret seed (0600)    synchronicity/ed25519-secret-key/v1
//! DIR/bls.key        BLS12-381 secret key (0600)   synchronicity/bls12381-secret-key/v1
//! DIR/member.toml    the public member entry to send to whoever assembles the committee
//! ```
//!
//! Key files are text: a versioned first line, then the key in hex. They are created with
//! mode 0600 and never overwritten; a key file readable by group or others is refused on load,
//! as ssh does. Secrets are never printed.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use multiaddr::Multiaddr;

use crate::committee::MemberEntry;
use crate::crypto::{BlsSecretKey, NodeIdentity};
use crate::verify::committee::Member;

/// File name of the Ed25519 identity key.
pub const IDENTITY_FILE: &str = "identity.key";
/// File name of the BLS key.
pub const BLS_FILE: &str = "bls.key";
/// File name of the public member entry.
pub const MEMBER_FILE: &str = "member.toml";
/// File name of the next BLS key (`keygen --rotate-bls`), used from the epoch whose
/// committee names its public key.
pub const NEXT_BLS_FILE: &str = "bls.next.key";
/// File name of the member entry with the next BLS key (for `committee propose --rotate`).
pub const NEXT_MEMBER_FILE: &str = "member.next.toml";

const IDENTITY_HEADER: &str = "synchronicity/ed25519-secret-key/v1";
const BLS_HEADER: &str = "synchronicity/bls12381-secret-key/v1";

/// Why a node directory could not be created or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeDirError {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Creating keys would overwrite an existing file.
    #[error("{0} already exists; refusing to overwrite keys")]
    Exists(PathBuf),
    /// A key file is malformed.
    #[error("{path}: {reason}")]
    BadKeyFile {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A secret key file is readable by group or others.
    #[error("{path} has mode {mode:o}, readable by others; run `chmod 600 {path}`")]
    Permissions {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The member file is not a valid member entry.
    #[error("{path}: {reason}")]
    BadMember {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The node's secret keys.
#[derive(Debug, Clone)]
pub struct NodeKeys {
    /// Ed25519: peer id and consensus key.
    pub identity: NodeIdentity,
    /// BLS: attestations and checkpoint cosignatures.
    pub bls: BlsSecretKey,
}

impl NodeKeys {
    /// The public member entry for these keys.
    pub fn member_entry(&self, name: &str, addrs: &[Multiaddr]) -> MemberEntry {
        MemberEntry {
            name: name.to_string(),
            peer_id: self.identity.peer_id().to_base58(),
            bls_public_key: hex::encode(self.bls.public_key().to_bytes()),
            bls_proof_of_possession: hex::encode(self.bls.proof_of_possession().to_bytes()),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeDirError + '_ {
    move |source| NodeDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a node directory with fresh keys. Refuses if any of its files exists; on failure
/// removes what it created, so nothing half-made remains.
pub fn create(
    dir: &Path,
    name: &str,
    addrs: &[Multiaddr],
) -> Result<(NodeKeys, MemberEntry), NodeDirError> {
    let keys = NodeKeys {
        identity: NodeIdentity::generate(),
        bls: BlsSecretKey::generate().map_err(|e| NodeDirError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?,
    };
    create_with_keys(dir, name, addrs, keys)
}

/// Like [`create`] with given keys (tests and key import).
pub fn create_with_keys(
    dir: &Path,
    name: &str,
    addrs: &[Multiaddr],
    keys: NodeKeys,
) -> Result<(NodeKeys, MemberEntry), NodeDirError> {
    let paths = [
        dir.join(IDENTITY_FILE),
        dir.join(BLS_FILE),
        dir.join(MEMBER_FILE),
    ];
    for p in &paths {
        if p.exists() {
            return Err(NodeDirError::Exists(p.clone()));
        }
    }
    let entry = keys.member_entry(name, addrs);
    // Validate the entry (name rules, PoP) before anything is written.
    Member::from_entry(&entry).map_err(|e| NodeDirError::BadMember {
        path: paths[2].clone(),
        reason: e.to_string(),
    })?;
    fs::create_dir_all(dir).map_err(io(dir))?;
    let member_text = toml::to_string(&entry).expect("member entry serializes");
    let contents = [
        format!(
            "{IDENTITY_HEADER}\n{}\n",
            hex::encode(keys.identity.secret_bytes())
        ),
        format!("{BLS_HEADER}\n{}\n", hex::encode(keys.bls.to_bytes())),
        member_text,
    ];
    let modes = [0o600, 0o600, 0o644];
    for (i, path) in paths.iter().enumerate() {
        if let Err(e) = write_new(path, contents[i].as_bytes(), modes[i]) {
            for created in &paths[..i] {
                let _ = fs::remove_file(created);
            }
            return Err(e);
        }
    }
    Ok((keys, entry))
}

/// The bytes of the file at `path`, refused when larger than `max`: at most `max + 1`
/// bytes are ever read, whatever the file's size.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    fs::File::open(path)?.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(out)
}

/// [`read_bounded`] of a UTF-8 text.
pub fn read_bounded_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Writes a new file (never an existing one) with `mode`, synced to disk.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), NodeDirError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => NodeDirError::Exists(path.to_path_buf()),
            _ => NodeDirError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io(path))
}

/// Writes `data` to `path` atomically and durably: a temporary file in the same directory,
/// synced, renamed over `path`, then the directory synced so the rename itself survives a
/// power loss. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), NodeDirError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, data, 0o644)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        NodeDirError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn read_key_file(path: &Path, header: &str) -> Result<Vec<u8>, NodeDirError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeDirError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io(path))?;
    let bad = |reason: &str| NodeDirError::BadKeyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(bad(&format!("first line is not {header:?}")));
    }
    let key = lines.next().ok_or_else(|| bad("missing key line"))?;
    if lines.next().is_some() {
        return Err(bad("unexpected lines after the key"));
    }
    hex::decode(key.trim()).map_err(|_| bad("key is not hex"))
}

/// Loads the node's secret keys.
pub fn load_keys(dir: &Path) -> Result<NodeKeys, NodeDirError> {
    let id_path = dir.join(IDENTITY_FILE);
    let identity = NodeIdentity::from_secret_bytes(&read_key_file(&id_path, IDENTITY_HEADER)?)
        .map_err(|e| NodeDirError::BadKeyFile {
            path: id_path,
            reason: e.to_string(),
        })?;
    let bls_path = dir.join(BLS_FILE);
    let bls = BlsSecretKey::from_bytes(&read_key_file(&bls_path, BLS_HEADER)?).map_err(|e| {
        NodeDirError::BadKeyFile {
            path: bls_path,
            reason: e.to_string(),
        }
    })?;
    Ok(NodeKeys { identity, bls })
}

/// Makes a next BLS key for the node in `dir` (its identity, name and addresses stay):
/// writes [`NEXT_BLS_FILE`] (0600) and [`NEXT_MEMBER_FILE`], the member entry to propose
/// (`committee propose --rotate NAME=DIR/member.next.toml`). Refuses to overwrite either.
pub fn create_next_bls(dir: &Path) -> Result<MemberEntry, NodeDirError> {
    let current = load_member(dir)?;
    load_keys(dir)?;
    let paths = [dir.join(NEXT_BLS_FILE), dir.join(NEXT_MEMBER_FILE)];
    for p in &paths {
        if p.exists() {
            return Err(NodeDirError::Exists(p.clone()));
        }
    }
    let bls = BlsSecretKey::generate().map_err(|e| NodeDirError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let entry = MemberEntry {
        bls_public_key: hex::encode(bls.public_key().to_bytes()),
        bls_proof_of_possession: hex::encode(bls.proof_of_possession().to_bytes()),
        ..current
    };
    // The secret first: a crash leaves a key without an entry (keygen refuses to run again
    // until it is removed), never an entry whose key is lost.
    write_new(
        &paths[0],
        format!("{BLS_HEADER}\n{}\n", hex::encode(bls.to_bytes())).as_bytes(),
        0o600,
    )?;
    let text = toml::to_string(&entry).expect("member entry serializes");
    if let Err(e) = write_new(&paths[1], text.as_bytes(), 0o644) {
        let _ = fs::remove_file(&paths[0]);
        return Err(e);
    }
    Ok(entry)
}

/// Moves the node in `dir` to its next BLS key when `wanted` (the committee's key for it)
/// is the next key's: `bls.next.key` replaces `bls.key` (one rename: after a crash either
/// the old or the new key is in place, and the next start finishes the move), and the old
/// key is gone. Returns whether it moved.
pub fn promote_next_bls(
    dir: &Path,
    wanted: &crate::crypto::BlsPublicKey,
) -> Result<bool, NodeDirError> {
    let next = dir.join(NEXT_BLS_FILE);
    if !next.exists() {
        // A crash between the two renames below: the key moved, the entry did not yet.
        let member = dir.join(NEXT_MEMBER_FILE);
        if member.exists() && load_keys(dir)?.bls.public_key() == *wanted {
            fs::rename(&member, dir.join(MEMBER_FILE)).map_err(io(&member))?;
        }
        return Ok(false);
    }
    let key = BlsSecretKey::from_bytes(&read_key_file(&next, BLS_HEADER)?).map_err(|e| {
        NodeDirError::BadKeyFile {
            path: next.clone(),
            reason: e.to_string(),
        }
    })?;
    if key.public_key() != *wanted {
        return Ok(false);
    }
    let current = dir.join(BLS_FILE);
    fs::rename(&next, &current).map_err(io(&current))?;
    let member = dir.join(NEXT_MEMBER_FILE);
    if member.exists() {
        fs::rename(&member, dir.join(MEMBER_FILE)).map_err(io(&member))?;
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(true)
}

/// Loads a public member entry from a node directory (its `member.toml`) or a file path, and
/// validates it (keys decode, PoP verifies).
pub fn load_member(path: &Path) -> Result<MemberEntry, NodeDirError> {
    let file = if path.is_dir() {
        path.join(MEMBER_FILE)
    } else {
        path.to_path_buf()
    };
    let text = fs::read_to_string(&file).map_err(io(&file))?;
    let entry: MemberEntry = toml::from_str(&text).map_err(|e| NodeDirError::BadMember {
        path: file.clone(),
        reason: e.message().replace('\n', " "),
    })?;
    Member::from_entry(&entry).map_err(|e| NodeDirError::BadMember {
        path: file,
        reason: e.to_string(),
    })?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_refuse_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n0");
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/7000".parse().unwrap();
        let (keys, entry) = create(&dir, "n0", &[addr]).unwrap();
        let mode = fs::metadata(dir.join(BLS_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_keys(&dir).unwrap();
        assert_eq!(loaded.identity.peer_id(), keys.identity.peer_id());
        assert_eq!(loaded.bls.public_key(), keys.bls.public_key());
        assert_eq!(load_member(&dir).unwrap(), entry);
        let before = fs::read(dir.join(IDENTITY_FILE)).unwrap();
        assert!(matches!(
            create(&dir, "n0", &[]),
            Err(NodeDirError::Exists(_))
        ));
        assert_eq!(fs::read(dir.join(IDENTITY_FILE)).unwrap(), before);
        // Secrets never appear in Debug output.
        let dbg = format!("{loaded:?}");
        assert!(!dbg.contains(&hex::encode(loaded.bls.to_bytes())));
        assert!(!dbg.contains(&hex::encode(loaded.identity.secret_bytes())));
    }

    #[test]
    fn refuses_open_permissions_and_bad_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("n0");
        create(&dir, "n0", &[]).unwrap();
        let p = dir.join(BLS_FILE);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_keys(&dir),
            Err(NodeDirError::Permissions { .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, "synchronicity/bls12381-secret-key/v1\nzz\n").unwrap();
        assert!(matches!(
            load_keys(&dir),
            Err(NodeDirError::BadKeyFile { .. })
        ));
        fs::write(
            &p,
            format!(
                "synchronicity/bls12381-secret-key/v1\n{}\n",
                "00".repeat(32)
            ),
        )
        .unwrap();
        assert!(matches!(
            load_keys(&dir),
            Err(NodeDirError::BadKeyFile { .. })
        ));
    }
}
