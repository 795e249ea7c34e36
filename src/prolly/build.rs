//! The tree builder: a stack of per-level chunkers fed in key order.
//!
//! Entries go into level 0; when a level's chunker cuts, the node is encoded,
//! `put`, and `(last key, hash)` is pushed into the level above. `finish`
//! flushes bottom up; the root is the single node of the lowest level that
//! produced exactly one node (an empty input gives an empty leaf). Invariant
//! relied on by `apply_edits`: the nodes produced depend only on the sorted
//! entry sequence, and a whole subtree may be pushed in one step
//! (`push_subtree`) when every level at or below it has an empty buffer,
//! with the same result as streaming its entries.

use super::chunker::{Chunking, LevelChunker};
use super::node::{encode_node, load_at};
use super::ProllyError;
use crate::store::{ChunkStore, Hash, Result as StoreResult};

pub struct Builder<'s, S: ChunkStore + ?Sized> {
    store: &'s mut S,
    chunking: Chunking,
    levels: Vec<LevelChunker>,
    /// Last key accepted at level 0 (or last key of a pushed subtree).
    last_key: Option<Vec<u8>>,
    /// Entries accepted so far, for error messages.
    index: usize,
}

impl<'s, S: ChunkStore + ?Sized> Builder<'s, S> {
    /// A builder of a new tree, cut by `Chunking::CURRENT`.
    pub fn new(store: &'s mut S) -> Self {
        Self::with_chunking(store, Chunking::CURRENT)
    }

    /// A builder cutting by `chunking`: `apply_edits` keeps an old tree's rule.
    pub(crate) fn with_chunking(store: &'s mut S, chunking: Chunking) -> Self {
        Builder {
            store,
            chunking,
            levels: Vec::new(),
            last_key: None,
            index: 0,
        }
    }

    pub(crate) fn chunking(&self) -> Chunking {
        self.chunking
    }

    /// Read access for callers that walk an old tree while building.
    pub(crate) fn store(&self) -> &S {
        self.store
    }

    /// Append a leaf entry; keys must be strictly ascending.
    pub fn push(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), ProllyError> {
        self.check_order(&key)?;
        self.push_at(0, key, value)?;
        Ok(())
    }

    fn check_order(&mut self, key: &[u8]) -> Result<(), ProllyError> {
        let index = self.index;
        self.index += 1;
        match &mut self.last_key {
            Some(prev) if prev.as_slice() >= key => Err(ProllyError::Unsorted { index }),
            Some(prev) => {
                prev.clear();
                prev.extend_from_slice(key);
                Ok(())
            }
            None => {
                self.last_key = Some(key.to_vec());
                Ok(())
            }
        }
    }

    /// Are levels `0..=level` all at a node boundary (nothing buffered)?
    pub(crate) fn at_cut(&self, level: u8) -> bool {
        self.levels
            .iter()
            .take(level as usize + 1)
            .all(|c| c.entries.is_empty())
    }

    /// Push an existing subtree whose root node sits at `level` without
    /// reading it. Only valid when `at_cut(level)`: the chunkers would then
    /// cut exactly where the old tree did, so streaming the subtree's entries
    /// would rebuild the very same nodes.
    pub(crate) fn push_subtree(
        &mut self,
        level: u8,
        last_key: Vec<u8>,
        hash: Hash,
    ) -> Result<(), ProllyError> {
        debug_assert!(self.at_cut(level));
        self.check_order(&last_key)?;
        self.push_at(level as usize + 1, last_key, hash.0.to_vec())?;
        Ok(())
    }

    fn push_at(&mut self, level: usize, key: Vec<u8>, value: Vec<u8>) -> StoreResult<()> {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, LevelChunker::default);
        }
        // Internal nodes take >= 2 entries, so each level holds at most about
        // half the entries of the one below and `level` stays far below 256.
        self.levels[level].push(self.chunking, level as u8, key, value);
        if self.levels[level].complete {
            self.emit(level)?;
        }
        Ok(())
    }

    /// Write the node buffered at `level` and push its entry one level up.
    /// Terminates: the level above either was empty (one entry cannot
    /// complete an internal node) or is one step closer to the top.
    fn emit(&mut self, level: usize) -> StoreResult<()> {
        let entries = self.levels[level].take();
        let Some(last_key) = entries.last().map(|(k, _)| k.clone()) else {
            return Ok(());
        };
        let hash = self
            .store
            .put(encode_node(self.chunking, level as u8, &entries))?;
        self.levels[level].last_emitted = Some((hash, entries.len()));
        self.push_at(level + 1, last_key, hash.0.to_vec())
    }

    /// Flush every level and return the root hash: the single node of the
    /// lowest level that has exactly one node.
    pub fn finish(mut self) -> Result<Hash, ProllyError> {
        let mut level = 0;
        while level < self.levels.len() {
            if self.levels[level].entries.is_empty() {
                level += 1;
                continue;
            }
            let above_empty = self.levels[level + 1..]
                .iter()
                .all(|c| c.entries.is_empty());
            if !above_empty {
                self.emit(level)?;
                level += 1;
                continue;
            }
            let entries = self.levels[level].take();
            if level > 0 && entries.len() == 1 {
                // The level below produced one node in total: it is the root,
                // unless it too has a single child (possible for reused
                // subtrees), so walk down the single-child chain.
                let child =
                    Hash::from_slice(&entries[0].1).expect("internal entries hold 32-byte hashes");
                return Ok(self.collapse(child, level - 1)?);
            }
            return Ok(self
                .store
                .put(encode_node(self.chunking, level as u8, &entries))?);
        }
        Ok(self.store.put(encode_node(self.chunking, 0, &[]))?)
    }

    fn collapse(&self, mut hash: Hash, mut level: usize) -> StoreResult<Hash> {
        while level > 0 {
            // A node this builder wrote is known not to need a read.
            if matches!(self.levels[level].last_emitted, Some((h, n)) if h == hash && n != 1) {
                break;
            }
            let node = load_at(&*self.store, hash, level as u8)?;
            if node.len() != 1 {
                break;
            }
            hash = node.child(0);
            level -= 1;
        }
        Ok(hash)
    }
}

/// Build a tree from entries in strictly ascending key order. Returns
/// `ProllyError::Unsorted` otherwise.
pub fn build<S, I>(store: &mut S, entries: I) -> Result<Hash, ProllyError>
where
    S: ChunkStore + ?Sized,
    I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
{
    let mut b = Builder::new(store);
    for (k, v) in entries {
        b.push(k, v)?;
    }
    b.finish()
}
