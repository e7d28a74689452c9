//! `mirror --url URL --trust FILE --out DIR`: a private, verified copy of a group's log for
//! audits that ask nobody (`audit --mirror DIR`).
//!
//! The mirror downloads the latest cosigned checkpoint and the entry bundles from any
//! C2SP tlog-tiles server (`node --http`, or `node --tiles-dir` behind nginx or a CDN),
//! only those it lacks (a refresh fetches the bundles from its old size on), and keeps them
//! in the same layout (`DIR/checkpoint`, `DIR/tile/entries/…`), so a mirror can itself be
//! served. It accepts a checkpoint only if: it verifies against the trusted committee (or
//! chain); it is not older than the one held; the entries' RFC 6962 root is its root, and
//! the root of the held size is the held checkpoint's (one history); and the index roots
//! it signs are those of the entries (the index is recomputed from them, so the mirror
//! needs no index files and holds every variant of every crate). Files are written
//! atomically, bundles first and the checkpoint last: a refresh cut short leaves the old
//! mirror whole and is resumed by the next one.
//!
//! What a server learns from a mirroring client: that it mirrors, and from which size; no
//! crate name. `audit --mirror` reads only local files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::log::merkle::{self, Hash, HashIndex, HashReader, MerkleError};
use crate::log::tiles::{TILE_WIDTH, format_index, parse_entry_bundle, width_in_tree};
use crate::log::{CosignedCheckpoint, ProofFile};
use crate::protocol::LogEntry;
use crate::verify::CommitteeChain;
use crate::verify::index::{IndexBuilder, IndexRoots};

/// Largest checkpoint note read.
const MAX_NOTE: u64 = 64 * 1024;
/// Largest entry bundle read (256 entries of at most 65,535 bytes, with their lengths).
const MAX_BUNDLE: u64 = 256 * 65_537;

/// Arguments of `mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The tiles server's base URL (`node --http`'s, or a static copy's).
    #[arg(long)]
    pub url: String,
    /// The committee file to trust.
    #[arg(long)]
    pub trust: PathBuf,
    /// The committee chain from that genesis: checkpoints of any epoch it holds.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// The mirror's directory (created; refreshed when it holds a mirror).
    #[arg(long)]
    pub out: PathBuf,
}

/// The trust root of a mirror: the genesis's chain, or the genesis alone.
pub(super) fn trust(trust: &Path, chain: Option<&Path>) -> anyhow::Result<CommitteeChain> {
    let genesis = super::load_committee(&trust.to_path_buf())?;
    Ok(match chain {
        Some(c) => super::client::read_chain(&genesis, c)?,
        None => CommitteeChain::single(genesis.trust_root().clone()),
    })
}

/// Every stored hash of a tree held in memory (as the store keeps them).
#[derive(Debug, Default)]
struct MemoryTree(std::collections::HashMap<u64, Hash>);

impl HashReader for MemoryTree {
    fn read_hashes(&self, indexes: &[HashIndex]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(&i.key())
                    .copied()
                    .ok_or_else(|| MerkleError::Storage(format!("no hash {i:?}")))
            })
            .collect()
    }
}

impl MemoryTree {
    fn push(&mut self, n: u64, entry: &[u8]) -> Result<(), MerkleError> {
        let siblings = self.read_hashes(&merkle::append_reads(n))?;
        for (idx, h) in merkle::hashes_to_store(n, merkle::leaf_hash(entry), &siblings) {
            self.0.insert(idx.key(), h);
        }
        Ok(())
    }
}

/// A verified mirror, loaded.
pub(super) struct Mirror {
    /// Its checkpoint (verified).
    pub(super) checkpoint: CosignedCheckpoint,
    /// The compact note (what proof files carry).
    note: String,
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
    /// `crate@version` → its entries, in log order.
    by_spec: BTreeMap<String, Vec<(u64, LogEntry)>>,
}

fn bundle_path(dir: &Path, index: u64, width: u64) -> PathBuf {
    let base = dir.join("tile/entries").join(format_index(index));
    if width == TILE_WIDTH {
        base
    } else {
        PathBuf::from(format!("{}.p", base.display())).join(width.to_string())
    }
}

impl Mirror {
    /// Checks `entries` (the log's first `size` entries) against `checkpoint`: the tree's
    /// root and the index roots it signs.
    fn check(checkpoint: CosignedCheckpoint, entries: Vec<Vec<u8>>) -> anyhow::Result<Self> {
        let cp = checkpoint.checkpoint().clone();
        if entries.len() as u64 != cp.size {
            bail!(
                "the mirror holds {} entries, its checkpoint says {}",
                entries.len(),
                cp.size
            );
        }
        let mut tree = MemoryTree::default();
        for (n, e) in entries.iter().enumerate() {
            tree.push(n as u64, e)?;
        }
        if merkle::tree_hash(cp.size, &tree)? != cp.root {
            bail!(
                "the entries' root is not the checkpoint's (size {}): a broken server or mirror",
                cp.size
            );
        }
        let mut by_spec: BTreeMap<String, Vec<(u64, LogEntry)>> = BTreeMap::new();
        let mut index = IndexBuilder::default();
        for (n, e) in entries.iter().enumerate() {
            if let Ok(entry) = LogEntry::decode(e) {
                let spec = entry.request.spec();
                index.push(n as u64, &spec, merkle::leaf_hash(e))?;
                by_spec.entry(spec).or_default().push((n as u64, entry));
            }
        }
        let signed = IndexRoots::of_checkpoint(&cp)
            .map_err(|e| anyhow::anyhow!("the checkpoint of size {}: {e}", cp.size))?;
        let ours = index.roots()?;
        if ours != signed {
            bail!(
                "the index roots the checkpoint of size {} signs are not its entries' (SPLIT VIEW or a broken server)",
                cp.size
            );
        }
        let note = checkpoint.compact_note();
        Ok(Self {
            checkpoint,
            note,
            entries,
            tree,
            by_spec,
        })
    }

    /// Loads and verifies the mirror in `dir` against `chain`.
    pub(super) fn load(dir: &Path, chain: &CommitteeChain) -> anyhow::Result<Self> {
        let path = dir.join("checkpoint");
        let note = read_bounded_file(&path, MAX_NOTE)?;
        let note = String::from_utf8(note).context("the mirror's checkpoint is not text")?;
        let (checkpoint, _) = chain
            .verify_checkpoint(&note)
            .with_context(|| format!("{}", path.display()))?;
        let size = checkpoint.checkpoint().size;
        let entries = read_bundles(dir, 0, size)?;
        Self::check(checkpoint, entries)
    }

    /// Every entry of `spec`, in log order.
    pub(super) fn variants(&self, spec: &str) -> &[(u64, LogEntry)] {
        self.by_spec.get(spec).map_or(&[], Vec::as_slice)
    }

    /// The proof file of entry `index` under the mirror's checkpoint.
    pub(super) fn proof_file(&self, index: u64) -> anyhow::Result<String> {
        let size = self.checkpoint.checkpoint().size;
        Ok(ProofFile {
            extra: Some(self.entries[index as usize].clone()),
            index,
            proof: merkle::prove_inclusion(index, size, &self.tree)?,
            checkpoint: self.note.clone(),
        }
        .format())
    }
}

fn read_bounded_file(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    crate::node_dir::read_bounded(path, max).with_context(|| path.display().to_string())
}

/// Entries `from .. size` from the bundles in `dir` (`from` a multiple of 256).
fn read_bundles(dir: &Path, from: u64, size: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut index = from / TILE_WIDTH;
    while let Some(width) = width_in_tree(0, index, size) {
        let path = bundle_path(dir, index, width);
        let bytes = read_bounded_file(&path, MAX_BUNDLE)?;
        let entries = parse_entry_bundle(&bytes, width).ok_or_else(|| {
            anyhow::anyhow!("{}: not a bundle of {width} entries", path.display())
        })?;
        out.extend(entries);
        index += 1;
    }
    Ok(out)
}

/// GET `url`, at most `max` bytes of body.
fn get(url: &str, max: u64) -> anyhow::Result<Vec<u8>> {
    let resp = attohttpc::get(url)
        .header(
            "User-Agent",
            concat!("synchronicity/", env!("CARGO_PKG_VERSION")),
        )
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .with_context(|| url.to_string())?;
    if !resp.is_success() {
        bail!("{url}: HTTP {}", resp.status());
    }
    let mut body = Vec::new();
    resp.take(max + 1)
        .read_to_end(&mut body)
        .with_context(|| url.to_string())?;
    if body.len() as u64 > max {
        bail!("{url}: larger than {max} bytes");
    }
    Ok(body)
}

/// `mirror`.
pub(super) fn mirror(args: MirrorArgs) -> anyhow::Result<()> {
    let chain = trust(&args.trust, args.chain.as_deref())?;
    let base = args.url.trim_end_matches('/');
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    // What the mirror holds (verified again: it is only a directory).
    let held = if args.out.join("checkpoint").is_file() {
        Some(Mirror::load(&args.out, &chain).context("the mirror held")?)
    } else {
        None
    };
    let note = String::from_utf8(get(&format!("{base}/checkpoint"), MAX_NOTE)?)
        .context("the server's checkpoint is not text")?;
    let (checkpoint, _) = chain
        .verify_checkpoint(&note)
        .with_context(|| format!("{base}/checkpoint"))?;
    let size = checkpoint.checkpoint().size;
    let held_size = held.as_ref().map_or(0, |m| m.checkpoint.checkpoint().size);
    if size < held_size {
        bail!(
            "the server's checkpoint (size {size}) is older than the mirror's (size {held_size}); nothing changed"
        );
    }
    if size == held_size {
        if held
            .as_ref()
            .is_some_and(|m| m.checkpoint.checkpoint().root != checkpoint.checkpoint().root)
        {
            bail!(
                "SPLIT VIEW: the server's checkpoint of size {size} has another root than the mirror's"
            );
        }
        println!("{}: up to date at size {size}", args.out.display());
        return Ok(());
    }
    // Whole bundles the mirror has are kept; from the first one that grew on, downloaded.
    let from = (held_size / TILE_WIDTH) * TILE_WIDTH;
    let mut entries = match &held {
        Some(m) => m.entries[..from as usize].to_vec(),
        None => Vec::new(),
    };
    let mut fetched = Vec::new();
    let mut bytes = 0u64;
    let mut index = from / TILE_WIDTH;
    while let Some(width) = width_in_tree(0, index, size) {
        let path = if width == TILE_WIDTH {
            format_index(index)
        } else {
            format!("{}.p/{width}", format_index(index))
        };
        let url = format!("{base}/tile/entries/{path}");
        let body = get(&url, MAX_BUNDLE)?;
        let got = parse_entry_bundle(&body, width)
            .ok_or_else(|| anyhow::anyhow!("{url}: not a bundle of {width} entries"))?;
        bytes += body.len() as u64;
        entries.extend(got);
        fetched.push((index, width, body));
        index += 1;
    }
    let mirror = Mirror::check(checkpoint, entries)?;
    // One history: the held checkpoint's root is the new entries' root at its size.
    if let Some(h) = &held {
        let c = h.checkpoint.checkpoint();
        if merkle::tree_hash(c.size, &mirror.tree)? != c.root {
            bail!(
                "SPLIT VIEW: the server's log does not extend the mirror's (size {})",
                c.size
            );
        }
    }
    // Bundles first, the checkpoint last (each atomically): a crash leaves the old mirror.
    for (index, width, body) in &fetched {
        let path = bundle_path(&args.out, *index, *width);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        crate::node_dir::write_atomic(&path, body)?;
    }
    crate::node_dir::write_atomic(&args.out.join("checkpoint"), note.as_bytes())?;
    // Partial bundles the new checkpoint no longer names.
    for (index, width, _) in &fetched {
        let partials = PathBuf::from(format!(
            "{}.p",
            args.out
                .join("tile/entries")
                .join(format_index(*index))
                .display()
        ));
        if partials.is_dir() {
            for e in std::fs::read_dir(&partials)?.flatten() {
                if *width == TILE_WIDTH || e.file_name().to_str() != Some(&width.to_string()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    println!(
        "{}: size {held_size} -> {size}, {} bundle(s), {bytes} bytes downloaded; index verified ({} crate versions)",
        args.out.display(),
        fetched.len(),
        mirror.by_spec.len()
    );
    Ok(())
}
