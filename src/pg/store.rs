//! `PgStore`: the chunk store in the extension table `vc.chunks`.
//!
//! Writes are buffered and flushed as one multi-row `INSERT ... ON CONFLICT DO
//! NOTHING` per few MB, inside the caller's transaction: a rolled back commit leaves
//! no chunk behind. Reads go through a per-backend cache; caching across transactions
//! is safe because a chunk's bytes are fixed by its hash, and writes never trust the
//! cache (a cached chunk may come from a rolled back transaction), they always INSERT.
//! Every chunk read from the table is verified against its hash. Writing, and trusting
//! presence (`has_many`), hold off `vc.gc()` for the transaction (`storage`).

use super::spi::{query, Arg};
use crate::codec::Cell;
use crate::store::{hash_of, verify, Chunk, ChunkStore, Hash, Result, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;

/// Flush threshold for buffered writes: large enough to amortise the INSERT, small
/// enough to keep a big commit's memory flat and the `unnest` of the batch under the
/// default work_mem (4 MB; 8 MB batches spilled to temp files).
const FLUSH_BYTES: usize = 2 << 20;
/// Bound of the per-backend read cache: two generations of at most half each. A chunk
/// read or written goes to the young one; when it is full it becomes the old one (the
/// previous old one is dropped), and a hit in the old one moves the chunk back. What a
/// stream of commits keeps touching (the paths from the root to the changed leaves)
/// stays cached; memory stays flat however many commits a session makes.
const CACHE_BYTES: usize = 8 << 20;

#[derive(Default)]
struct Cache {
    young: HashMap<Hash, Chunk>,
    young_bytes: usize,
    old: HashMap<Hash, Chunk>,
}

impl Cache {
    fn insert(&mut self, h: Hash, data: Chunk) {
        if self.young_bytes + data.len() > CACHE_BYTES / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += data.len();
        self.young.insert(h, data);
    }

    fn get(&mut self, h: &Hash) -> Option<Chunk> {
        if let Some(c) = self.young.get(h) {
            return Some(c.clone());
        }
        let c = self.old.remove(h)?;
        self.insert(*h, c.clone());
        Some(c)
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn cache_get(h: &Hash) -> Option<Chunk> {
    CACHE.with(|c| c.borrow_mut().get(h))
}

/// Forgets every cached chunk, so the next reads go to the table (tests of what the
/// table holds).
#[cfg(any(test, feature = "pg_test"))]
pub fn clear_cache() {
    CACHE.with(|c| *c.borrow_mut() = Cache::default())
}

fn cache_put(h: Hash, data: Chunk) {
    CACHE.with(|c| c.borrow_mut().insert(h, data))
}

#[derive(Default)]
struct Pending {
    chunks: HashMap<Hash, Chunk>,
    bytes: usize,
}

/// Interior mutability lets several writers (a tree builder and the blob writer that
/// feeds it) share one store through `&PgStore`.
#[derive(Default)]
pub struct PgStore {
    pending: RefCell<Pending>,
}

impl PgStore {
    pub fn new() -> PgStore {
        PgStore::default()
    }

    /// Writes the buffered chunks to `vc.chunks`. Must be called before the data is
    /// referenced from a ref or returned to the user.
    pub fn flush(&self) -> Result<()> {
        let drained: Vec<(Hash, Chunk)> = {
            let mut p = self.pending.borrow_mut();
            p.bytes = 0;
            p.chunks.drain().collect()
        };
        if drained.is_empty() {
            return Ok(());
        }
        // A write may reuse a chunk a concurrent vc.gc() is about to delete: keep it out.
        super::storage::writing_chunks()?;
        let (hashes, datas): (Vec<_>, Vec<_>) = drained
            .into_iter()
            .map(|(h, d)| (Some(h.as_bytes().to_vec()), Some(d.to_vec())))
            .unzip();
        query(
            "INSERT INTO vc.chunks (hash, data) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT (hash) DO NOTHING",
            vec![Arg::ByteaArray(hashes), Arg::ByteaArray(datas)],
            &[],
        )
        .map_err(|e| StoreError::Backend(e.message))?;
        super::storage::chunks_written().map_err(|e| StoreError::Backend(e.message))?;
        Ok(())
    }

    fn fetch(h: &Hash) -> Result<Option<Chunk>> {
        let rows = query(
            "SELECT data FROM vc.chunks WHERE hash = $1",
            vec![Arg::Bytea(Some(h.as_bytes().to_vec()))],
            &[true],
        )
        .map_err(|e| StoreError::Backend(e.message))?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Cell::Bytes(b)) => {
                verify(h, &b)?;
                Ok(Some(Chunk::from(b)))
            }
            _ => Ok(None),
        }
    }
}

impl PgStore {
    fn get_chunk(&self, h: &Hash) -> Result<Chunk> {
        // Long walks (push, fetch, commit of big tables) stay cancellable.
        pgrx::check_for_interrupts!();
        let pending = self.pending.borrow().chunks.get(h).cloned();
        if let Some(c) = pending.or_else(|| cache_get(h)) {
            return Ok(c);
        }
        let c = PgStore::fetch(h)?.ok_or(StoreError::Missing(*h))?;
        cache_put(*h, c.clone());
        Ok(c)
    }

    /// Pending and cached chunks from memory, the rest with one query. Bulk reads
    /// (push, diffs) stream through far more chunks than the cache holds, so what
    /// they read from the table is not cached: it would evict the paths that a
    /// stream of commits keeps touching.
    fn get_many_chunks(&self, hs: &[Hash], verified: bool) -> Result<Vec<Option<Chunk>>> {
        pgrx::check_for_interrupts!();
        let mut out: Vec<Option<Chunk>> = {
            let pending = self.pending.borrow();
            hs.iter()
                .map(|h| pending.chunks.get(h).cloned().or_else(|| cache_get(h)))
                .collect()
        };
        let asked: Vec<Option<Vec<u8>>> = hs
            .iter()
            .zip(&out)
            .filter(|(_, c)| c.is_none())
            .map(|(h, _)| Some(h.as_bytes().to_vec()))
            .collect();
        if asked.is_empty() {
            return Ok(out);
        }
        let rows = query(
            "SELECT hash, data FROM vc.chunks WHERE hash = ANY($1)",
            vec![Arg::ByteaArray(asked)],
            &[true, true],
        )
        .map_err(|e| StoreError::Backend(e.message))?;
        let mut found: HashMap<Hash, Chunk> = HashMap::with_capacity(rows.len());
        for row in rows {
            let mut cells = row.into_iter();
            if let (Some(Cell::Bytes(h)), Some(Cell::Bytes(d))) = (cells.next(), cells.next()) {
                let Some(h) = Hash::from_slice(&h) else {
                    continue;
                };
                if verified {
                    verify(&h, &d)?;
                }
                found.insert(h, Chunk::from(d));
            }
        }
        for (c, h) in out.iter_mut().zip(hs) {
            if c.is_none() {
                *c = found.get(h).cloned();
            }
        }
        Ok(out)
    }

    fn has_chunk(&self, h: &Hash) -> Result<bool> {
        if self.pending.borrow().chunks.contains_key(h) {
            return Ok(true);
        }
        let rows = query(
            "SELECT 1 FROM vc.chunks WHERE hash = $1",
            vec![Arg::Bytea(Some(h.as_bytes().to_vec()))],
            &[],
        )
        .map_err(|e| StoreError::Backend(e.message))?;
        Ok(!rows.is_empty())
    }

    /// One query for a whole batch (fetch asks per tree level). A caller skips what
    /// is here with everything below it, so a concurrent vc.gc() is held off.
    fn has_many_chunks(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        super::storage::writing_chunks()?;
        let rows = query(
            "SELECT hash FROM vc.chunks WHERE hash = ANY($1)",
            vec![Arg::ByteaArray(
                hs.iter().map(|h| Some(h.as_bytes().to_vec())).collect(),
            )],
            &[true],
        )
        .map_err(|e| StoreError::Backend(e.message))?;
        let found: std::collections::HashSet<Vec<u8>> = rows
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Cell::Bytes(b)) => Some(b),
                _ => None,
            })
            .collect();
        let pending = self.pending.borrow();
        Ok(hs
            .iter()
            .map(|h| pending.chunks.contains_key(h) || found.contains(h.as_bytes().as_slice()))
            .collect())
    }

    fn put_chunk(&self, data: Vec<u8>) -> Result<Hash> {
        // Long walks (push, fetch, commit of big tables) stay cancellable.
        pgrx::check_for_interrupts!();
        let h = hash_of(&data);
        let full = {
            let mut p = self.pending.borrow_mut();
            if !p.chunks.contains_key(&h) {
                p.bytes += data.len();
                let chunk = Chunk::from(data);
                cache_put(h, chunk.clone());
                p.chunks.insert(h, chunk);
            }
            p.bytes >= FLUSH_BYTES
        };
        if full {
            self.flush()?;
        }
        Ok(h)
    }
}

impl ChunkStore for PgStore {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        self.get_chunk(h)
    }
    fn has(&self, h: &Hash) -> Result<bool> {
        self.has_chunk(h)
    }
    fn has_many(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        self.has_many_chunks(hs)
    }
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        self.get_many_chunks(hs, true)
    }
    fn get_many_unverified(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        self.get_many_chunks(hs, false)
    }
    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        self.put_chunk(data)
    }
}

impl ChunkStore for &PgStore {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        self.get_chunk(h)
    }
    fn has(&self, h: &Hash) -> Result<bool> {
        self.has_chunk(h)
    }
    fn has_many(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        self.has_many_chunks(hs)
    }
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        self.get_many_chunks(hs, true)
    }
    fn get_many_unverified(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        self.get_many_chunks(hs, false)
    }
    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        self.put_chunk(data)
    }
}
