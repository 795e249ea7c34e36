//! The boundary rule: where a level's entry stream is cut into nodes.
//!
//! After appending an entry, a node is cut when its size (sum of encoded
//! entry sizes, header excluded) is >= `MIN_NODE` and either the size is >=
//! `MAX_NODE` or the entry's boundary hash fires. Internal levels also need
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

/// Does the boundary hash fire for this entry? Equivalent to
/// `h / 2^64 < entry_bytes / TARGET_NODE` with `h` the first 8 bytes (LE) of
/// `blake3(level || key)`, computed in integers to be exact everywhere. Only
/// the key is hashed so value edits never move boundaries by themselves.
pub(crate) fn boundary_fires(level: u8, key: &[u8], entry_bytes: usize) -> bool {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[level]);
    hasher.update(key);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    let h = u64::from_le_bytes(first);
    (h as u128) * (TARGET_NODE as u128) < (entry_bytes as u128) << 64
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
    pub fn push(&mut self, level: u8, key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(!self.complete, "push into a completed node");
        let bytes = super::node::entry_size(key.len(), value.len());
        self.size += bytes;
        let enough_entries = level == 0 || !self.entries.is_empty();
        self.complete = enough_entries
            && self.size >= MIN_NODE
            && (self.size >= MAX_NODE || boundary_fires(level, &key, bytes));
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

    #[test]
    fn fire_rate_tracks_entry_size() {
        // ~1/64 of 64-byte entries should fire; allow generous slack.
        let fired = (0..100_000u32)
            .filter(|i| boundary_fires(0, &i.to_be_bytes(), 64))
            .count();
        assert!((1200..1950).contains(&fired), "fired {fired}");
        assert!(
            boundary_fires(0, b"k", TARGET_NODE),
            "entry >= TARGET always fires"
        );
        let lvl0: Vec<bool> = (0..200u32)
            .map(|i| boundary_fires(0, &i.to_be_bytes(), 400))
            .collect();
        let lvl1: Vec<bool> = (0..200u32)
            .map(|i| boundary_fires(1, &i.to_be_bytes(), 400))
            .collect();
        assert_ne!(lvl0, lvl1, "levels cut independently");
    }

    #[test]
    fn min_max_and_internal_fanout() {
        let mut c = LevelChunker::default();
        c.push(0, vec![1], vec![0; MAX_NODE]);
        assert!(c.complete, "an entry reaching MAX cuts");
        let mut c = LevelChunker::default();
        c.push(1, vec![1; 5000], vec![0; 32]);
        assert!(!c.complete, "internal nodes take two entries");
        c.push(1, vec![2; 5000], vec![0; 32]);
        assert!(c.complete);
        let mut c = LevelChunker::default();
        c.push(0, vec![1], vec![0; 100]);
        assert!(!c.complete, "below MIN never cuts");
        assert_eq!(c.take().len(), 1);
        assert!(c.entries.is_empty() && !c.complete);
    }
}
