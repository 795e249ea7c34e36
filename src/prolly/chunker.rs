//! The boundary rule: where a level's entry stream is cut into nodes.
//!
//! After appending an entry, a node is cut when its size (sum of encoded
//! entry sizes, header excluded) is >= `MIN_NODE` and either the size is >=
//! `MAX_NODE` or the entry's boundary hash fires. How likely the hash is to
//! fire is the tree's `Chunking` (recorded in every node's kind tag):
//!
//! - `Flat` (pgvc 0.1 and 0.2 trees): with probability `entry / TARGET_NODE`
//!   whatever the node's size, so sizes are `MIN_NODE` plus an exponential:
//!   many small nodes, and a long tail up to `MAX_NODE`. The node holding a
//!   given row (size-biased) averages about 7.6 KiB.
//! - `Weibull` (trees built since): the probability grows with the node's size,
//!   as the hazard of a Weibull distribution of shape 4 and scale `TARGET_NODE`
//!   (Dolt's rule): an entry taking the node from `s0` to `s1` bytes fires with
//!   probability `(s1^4 - s0^4) / TARGET_NODE^4`, the cumulative hazard it adds.
//!   Sizes gather around the target (mean ~3.7 KiB, size-biased ~4 KiB).
//!
//! Both compare the same key hash against a threshold in exact integer
//! arithmetic, so every platform cuts in the same places. Internal levels also need
//! at least two entries before cutting: otherwise keys larger than
//! `TARGET_NODE` would cut after every entry and the tree would never narrow
//! to a root. The decision uses only the entries since the previous cut (and
//! the level), which is what makes the tree a pure function of its contents
//! and lets unchanged subtrees be reused verbatim.

/// Nodes smaller than this are never cut (except a level's last node).
pub const MIN_NODE: usize = 512;
/// Expected extra size beyond `MIN_NODE` before the boundary hash fires.
pub const TARGET_NODE: usize = 4096;
/// A node reaching this size is cut regardless of the boundary hash.
pub const MAX_NODE: usize = 16 * 1024;

/// How a tree's nodes are cut: see the module comment. A tree never mixes the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Cut probability independent of the node's size (kind tag `NODE`).
    Flat,
    /// Cut probability growing with the node's size (kind tag `SIZED_NODE`).
    Weibull,
}

impl Chunking {
    /// What new trees are built with.
    pub const CURRENT: Chunking = Chunking::Weibull;
}

/// The first 8 bytes (LE) of `blake3(level || key)`. Only the key is hashed so
/// value edits never move boundaries by themselves.
fn key_hash(level: u8, key: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[level]);
    hasher.update(key);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// Does the boundary hash fire for an entry of `entry_bytes` that brought its
/// node to `size` bytes? With `h` the key hash: `Flat` fires when
/// `h / 2^64 < entry_bytes / TARGET_NODE`; `Weibull` when
/// `h / 2^64 < (size^4 - (size - entry_bytes)^4) / TARGET_NODE^4`. Both are
/// computed in u128 integers (sizes are below 2^15 when the rule is asked, as
/// `MAX_NODE` cuts first; larger ones always fire).
pub(crate) fn boundary_fires(
    chunking: Chunking,
    level: u8,
    key: &[u8],
    entry_bytes: usize,
    size: usize,
) -> bool {
    let h = key_hash(level, key) as u128;
    match chunking {
        Chunking::Flat => h * (TARGET_NODE as u128) < (entry_bytes as u128) << 64,
        Chunking::Weibull => {
            if size >= 1 << 15 {
                return true;
            }
            let fourth = |x: usize| (x as u128).pow(4);
            let added = fourth(size) - fourth(size.saturating_sub(entry_bytes));
            // h * T^4 < added * 2^64; T^4 = 2^48 and added < 2^60, so neither
            // side overflows u128.
            h * fourth(TARGET_NODE) < added << 64
        }
    }
}

/// The open node of one level: entries since the last emitted node.
/// `complete` means the boundary rule fired on the last entry and the
/// builder must emit the node before anything else is pushed here.
#[derive(Debug, Default)]
pub(crate) struct LevelChunker {
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    size: usize,
    pub complete: bool,
    /// Hash and entry count of the last node emitted from this level.
    pub last_emitted: Option<(crate::store::Hash, usize)>,
}

impl LevelChunker {
    /// Append an entry to an open (not complete) node and apply the rule.
    pub fn push(&mut self, chunking: Chunking, level: u8, key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(!self.complete, "push into a completed node");
        let bytes = super::node::entry_size(key.len(), value.len());
        self.size += bytes;
        let enough_entries = level == 0 || !self.entries.is_empty();
        self.complete = enough_entries
            && self.size >= MIN_NODE
            && (self.size >= MAX_NODE || boundary_fires(chunking, level, &key, bytes, self.size));
        self.entries.push((key, value));
    }

    /// Take the node's entries, leaving the level empty.
    pub fn take(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.size = 0;
        self.complete = false;
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Chunking::{Flat, Weibull};

    #[test]
    fn flat_fire_rate_tracks_entry_size() {
        // ~1/64 of 64-byte entries should fire, whatever the node size.
        for size in [64, 4000] {
            let fired = (0..100_000u32)
                .filter(|i| boundary_fires(Flat, 0, &i.to_be_bytes(), 64, size))
                .count();
            assert!((1200..1950).contains(&fired), "fired {fired}");
        }
        assert!(
            boundary_fires(Flat, 0, b"k", TARGET_NODE, TARGET_NODE),
            "entry >= TARGET always fires"
        );
        let lvl0: Vec<bool> = (0..200u32)
            .map(|i| boundary_fires(Flat, 0, &i.to_be_bytes(), 400, 400))
            .collect();
        let lvl1: Vec<bool> = (0..200u32)
            .map(|i| boundary_fires(Flat, 1, &i.to_be_bytes(), 400, 400))
            .collect();
        assert_ne!(lvl0, lvl1, "levels cut independently");
    }

    #[test]
    fn weibull_fire_rate_grows_with_node_size() {
        let rate = |size: usize| {
            (0..100_000u32)
                .filter(|i| boundary_fires(Weibull, 0, &i.to_be_bytes(), 64, size))
                .count() as f64
                / 100_000.0
        };
        // The hazard added by 64 bytes ending at `size`: (s^4 - (s-64)^4) / 4096^4.
        let expected = |s: f64| (s.powi(4) - (s - 64.0).powi(4)) / 4096f64.powi(4);
        for size in [1024usize, 2048, 4096, 6144] {
            let (got, want) = (rate(size), expected(size as f64));
            assert!(
                (got - want).abs() < 0.1 * want + 0.002,
                "size {size}: fired {got}, expected {want}"
            );
        }
        assert!(rate(512) < 0.002, "small nodes rarely cut");
        assert!(rate(8192) > 0.4, "large nodes cut soon");
        assert!(
            boundary_fires(Weibull, 0, b"k", 64, 1 << 15),
            "past the arithmetic's range always fires"
        );
        // Exact at the top of the range: no overflow, and every hash fires once the
        // added hazard reaches 1.
        assert!((0..1000u32).all(|i| boundary_fires(
            Weibull,
            0,
            &i.to_be_bytes(),
            (1 << 15) - 1,
            (1 << 15) - 1
        )));
    }

    #[test]
    fn min_max_and_internal_fanout() {
        for ch in [Flat, Weibull] {
            let mut c = LevelChunker::default();
            c.push(ch, 0, vec![1], vec![0; MAX_NODE]);
            assert!(c.complete, "an entry reaching MAX cuts");
            let mut c = LevelChunker::default();
            c.push(ch, 1, vec![1; 5000], vec![0; 32]);
            assert!(!c.complete, "internal nodes take two entries");
            c.push(ch, 1, vec![2; 5000], vec![0; 32]);
            assert!(c.complete);
            let mut c = LevelChunker::default();
            c.push(ch, 0, vec![1], vec![0; 100]);
            assert!(!c.complete, "below MIN never cuts");
            assert_eq!(c.take().len(), 1);
            assert!(c.entries.is_empty() && !c.complete);
        }
    }
}
