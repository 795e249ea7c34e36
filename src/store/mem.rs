//! `MemStore`: a HashMap-backed chunk store for tests and scratch work.
//!
//! It counts what callers do so tests can assert on I/O cost: `puts` and
//! `bytes_put` count only chunks that were new, `put_calls` counts every put,
//! and `reads()` counts `get` calls (an atomic so `get` can stay `&self`).

use super::{hash_of, Chunk, ChunkStore, Hash, Result, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct MemStore {
    chunks: HashMap<Hash, Chunk>,
    /// Number of puts that stored a chunk not already present.
    pub puts: usize,
    /// Total bytes of those new chunks.
    pub bytes_put: usize,
    /// Number of `put` calls, new or not.
    pub put_calls: usize,
    reads: AtomicUsize,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Number of distinct chunks stored.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Number of `get` calls since creation or the last `reset_counters`.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    pub fn reset_counters(&mut self) {
        self.puts = 0;
        self.bytes_put = 0;
        self.put_calls = 0;
        self.reads.store(0, Ordering::Relaxed);
    }

    /// Replace a chunk's bytes without rehashing, to simulate corruption.
    pub fn overwrite_unchecked(&mut self, h: Hash, data: Vec<u8>) {
        self.chunks.insert(h, data.into());
    }

    /// Every chunk's hash, sorted.
    pub fn hashes(&self) -> Vec<Hash> {
        let mut v: Vec<Hash> = self.chunks.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Drop a chunk, to simulate a missing one.
    pub fn remove(&mut self, h: &Hash) -> bool {
        self.chunks.remove(h).is_some()
    }
}

impl ChunkStore for MemStore {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.chunks.get(h).cloned().ok_or(StoreError::Missing(*h))
    }

    fn has(&self, h: &Hash) -> Result<bool> {
        Ok(self.chunks.contains_key(h))
    }

    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        let h = hash_of(&data);
        self.put_calls += 1;
        if !self.chunks.contains_key(&h) {
            self.puts += 1;
            self.bytes_put += data.len();
            self.chunks.insert(h, data.into());
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::store::testsuite::run_all(&mut MemStore::new);
    }

    #[test]
    fn counters() {
        let mut m = MemStore::new();
        let h = m.put(vec![1, 2, 3]).unwrap();
        m.put(vec![1, 2, 3]).unwrap();
        assert_eq!((m.puts, m.bytes_put, m.put_calls), (1, 3, 2));
        m.get(&h).unwrap();
        assert!(m.get(&hash_of(b"nope")).is_err());
        assert_eq!(m.reads(), 2);
        m.reset_counters();
        assert_eq!((m.puts, m.reads()), (0, 0));
        assert_eq!(m.len(), 1);
    }
}
