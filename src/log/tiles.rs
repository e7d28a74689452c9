//! C2SP tlog-tiles paths and contents (pure). Tile height 8: a hash tile at level L and
//! index N holds the hashes of the subtrees of 256^L leaves number N·256 … N·256 + W − 1
//! (W = 256 for a full tile), 32 bytes each; an entry bundle `entries/N` holds entries
//! N·256 … as big-endian u16 length-prefixed records.
//!
//! Paths: `<L>/<N>[.p/<W>]` and `entries/<N>[.p/<W>]`, where N is written in 3-digit
//! groups, all but the last prefixed with `x` (1234067 → `x001/x234/067`). Anything else is
//! not a tile path (the HTTP layer answers 404 or 400).

/// Hashes per full tile (height 8).
pub const TILE_WIDTH: u64 = 256;
/// Highest hash-tile level served (level 8 covers 2^64 leaves).
pub const MAX_TILE_LEVEL: u8 = 7;

/// A parsed tile path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// A hash tile.
    Hashes {
        /// Tile level L.
        level: u8,
        /// Tile index N.
        index: u64,
        /// `Some(W)` for a partial tile.
        width: Option<u16>,
    },
    /// An entry bundle.
    Entries {
        /// Bundle index N.
        index: u64,
        /// `Some(W)` for a partial bundle.
        width: Option<u16>,
    },
}

impl TilePath {
    /// The number of hashes or entries the path names.
    pub fn width(&self) -> u64 {
        match self {
            TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => {
                width.map_or(TILE_WIDTH, u64::from)
            }
        }
    }

    /// True for a full tile (immutable once it exists).
    pub fn is_full(&self) -> bool {
        self.width() == TILE_WIDTH
    }
}

/// Writes N in the tile path form (`x001/x234/067`).
pub fn format_index(n: u64) -> String {
    let mut groups = Vec::new();
    let mut n = n;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i + 1 == groups.len() {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_index(parts: &[&str]) -> Option<u64> {
    let (last, rest) = parts.split_last()?;
    // At most 7 groups (10^21 > 2^64), and no leading zero group (one path per tile).
    if parts.len() > 7 || (parts.len() > 1 && parts[0] == "x000") {
        return None;
    }
    let mut n: u64 = 0;
    for (i, p) in rest.iter().chain(std::iter::once(last)).enumerate() {
        let digits = if i + 1 < parts.len() {
            p.strip_prefix('x')?
        } else {
            p
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    Some(n)
}

/// Parses the part of a URL path after `tile/`.
pub fn parse_tile_path(path: &str) -> Option<TilePath> {
    if path.len() > 128 {
        return None;
    }
    let (path, width) = match path.split_once(".p/") {
        Some((p, w)) => {
            if w.is_empty()
                || w.len() > 3
                || !w.bytes().all(|b| b.is_ascii_digit())
                || w.starts_with('0')
            {
                return None;
            }
            let w: u16 = w.parse().ok()?;
            if !(1..TILE_WIDTH as u16).contains(&w) {
                return None;
            }
            (p, Some(w))
        }
        None => (path, None),
    };
    let mut parts: Vec<&str> = path.split('/').collect();
    let first = parts.remove(0);
    let index = parse_index(&parts)?;
    if first == "entries" {
        return Some(TilePath::Entries { index, width });
    }
    if first.is_empty()
        || (first.len() > 1 && first.starts_with('0'))
        || !first.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let level: u8 = first.parse().ok()?;
    if level > MAX_TILE_LEVEL {
        return None;
    }
    Some(TilePath::Hashes {
        level,
        index,
        width,
    })
}

/// The width a tile must have in a tree of `size` leaves: 256 if it is complete, the
/// partial width if it is the rightmost one, `None` if it does not exist (yet).
pub fn width_in_tree(level: u8, index: u64, size: u64) -> Option<u64> {
    let span = 1u64.checked_shl(8 * u32::from(level))?;
    let hashes = size / span; // complete subtrees of 256^level leaves
    let start = index.checked_mul(TILE_WIDTH)?;
    if hashes <= start {
        return None;
    }
    Some((hashes - start).min(TILE_WIDTH))
}

/// The entries of a bundle that must hold exactly `width` of them (`None`: it does not:
/// short, long, or a length running past the end).
pub fn parse_entry_bundle(bytes: &[u8], width: u64) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if out.len() as u64 >= width || rest.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = rest.get(2..2 + len)?;
        out.push(body.to_vec());
        rest = &rest[2 + len..];
    }
    (out.len() as u64 == width).then_some(out)
}

/// An entry bundle: each entry as a big-endian u16 length, then its bytes. `None` if an
/// entry is over 65,535 bytes (it cannot be written in this format).
pub fn entry_bundle(entries: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_malformed_ones_are_refused() {
        assert_eq!(format_index(1234067), "x001/x234/067");
        assert_eq!(format_index(5), "005");
        assert_eq!(
            parse_tile_path("0/x001/x234/067.p/8"),
            Some(TilePath::Hashes {
                level: 0,
                index: 1234067,
                width: Some(8)
            })
        );
        assert_eq!(
            parse_tile_path("entries/000"),
            Some(TilePath::Entries {
                index: 0,
                width: None
            })
        );
        for bad in [
            "",
            "0",
            "0/1",
            "0/0001",
            "0/x001",
            "0/001.p/0",
            "0/001.p/256",
            "0/001.p/",
            "9/000",
            "01/000",
            "a/000",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
            "0/000.p/08",
            "entries/x000",
            "0/000/",
            "0/-01",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn widths_follow_the_tree_size() {
        assert_eq!(width_in_tree(0, 0, 5), Some(5));
        assert_eq!(width_in_tree(0, 0, 256), Some(256));
        assert_eq!(width_in_tree(0, 1, 256), None);
        assert_eq!(width_in_tree(1, 0, 256 * 3 + 7), Some(3));
        assert_eq!(width_in_tree(1, 0, 255), None);
        assert_eq!(width_in_tree(7, u64::MAX, u64::MAX), None);
        assert_eq!(
            entry_bundle(&[b"ab".to_vec(), vec![]]).unwrap(),
            [0, 2, b'a', b'b', 0, 0]
        );
        assert!(entry_bundle(&[vec![0; 70_000]]).is_none());
    }
}

#[cfg(test)]
mod fuzz_like {
    use super::*;

    /// Random and mutated paths never panic the parser, and whatever parses prints back.
    #[test]
    fn arbitrary_paths_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"0123456789x/.p-entries";
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((x >> (i % 56)) as usize + i) % alphabet.len()] as char)
                .collect();
            if let Some(TilePath::Hashes {
                level,
                index,
                width,
            }) = parse_tile_path(&s)
            {
                let mut back = format!("{level}/{}", format_index(index));
                if let Some(w) = width {
                    back.push_str(&format!(".p/{w}"));
                }
                assert_eq!(back, s);
            }
        }
    }

    /// Bundles round trip, and random or cut bundles never panic the parser: whatever
    /// parses holds exactly the width asked and formats back to the same bytes.
    #[test]
    fn arbitrary_bundles_never_panic() {
        let entries: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; usize::from(i) * 3]).collect();
        let b = entry_bundle(&entries).unwrap();
        assert_eq!(parse_entry_bundle(&b, 5), Some(entries.clone()));
        assert_eq!(parse_entry_bundle(&b, 4), None);
        assert_eq!(parse_entry_bundle(&b, 6), None);
        for cut in 0..b.len() {
            let p = parse_entry_bundle(&b[..cut], 5);
            assert!(p.is_none(), "cut at {cut}");
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes: Vec<u8> = (0..(x % 64)).map(|i| (x >> (i % 56)) as u8).collect();
            if let Some(e) = parse_entry_bundle(&bytes, x % 4) {
                assert_eq!(e.len() as u64, x % 4);
                assert_eq!(entry_bundle(&e).unwrap(), bytes);
            }
        }
    }
}
