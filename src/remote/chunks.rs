//! `RemoteChunkStore`: a remote seen as a plain [`ChunkStore`], because the design
//! says a remote is just another chunk store, and so that the shared chunk-store
//! conformance suite runs against the file backend.
//!
//! Reads go through the manifest's pack indexes: `get(h)` locates `h` in the
//! indexes of the listed packs, reads its bytes with one range read and verifies
//! them against `h` before handing them out. The index is loaded once and
//! refreshed (one manifest read, plus the idx of any new pack) only when a chunk
//! is not found, since another writer may have listed new packs since. Writes are
//! buffered: `put` keeps new chunks in memory, where this store's own `get`/`has`
//! see them at once, and `flush` writes them as ONE pack plus its idx and appends
//! that pack to the manifest by compare-and-swap, leaving refs alone. `put`
//! flushes by itself once the buffered bytes reach a threshold (8 MiB by default),
//! so memory stays flat however much is written.
//!
//! **Visibility.** Other readers (other `RemoteChunkStore`s, fetches) see a chunk
//! only after the flush that listed it. Dropping the store does NOT flush: a
//! flush is remote I/O that can fail, and a destructor could only hide that
//! failure, so unflushed chunks are simply lost. Call [`RemoteChunkStore::flush`]
//! and check its result.
//!
//! **Closure.** The remote's invariant (`docs/REMOTE_FORMAT.md`) is that the
//! chunks of the listed packs are closed under references (`chunk_refs`), and
//! push relies on it: `Remote::push` skips every chunk the remote lists together
//! with everything below it. This store cannot check the invariant (it stores any
//! bytes, not only pgvc chunks), so the caller must keep it: **when a flush runs
//! (explicitly or inside `put`), every chunk referenced by a buffered chunk must
//! be buffered too or already listed on the remote.** Putting every chunk after
//! all the chunks it references (bottom up, the order in which `prolly::build`,
//! `store_value`, `RootValue::write` and `Commit::write` produce them, since a
//! parent embeds its children's hashes) is enough: buffered chunks are flushed in
//! put order, so each flush lists a prefix of the puts, and chunks `put` skipped
//! because the remote had them stay listed (packs are only appended). A caller
//! that flushes a parent before its children breaks the invariant: a later push
//! of a commit reaching that parent skips the missing children, and fetches of it
//! then fail with `MissingChunk` (never wrong data: fetch looks every chunk up and
//! verifies it). Fetch itself relies only on the local store's closure. This store
//! is meant for tests and for backup code that writes whole closures bottom up.

use super::manifest::Manifest;
use super::object::{ObjectStore, Version};
use super::pack::{pack_key, IdxEntry, PackRef, PackWriter};
use super::{Index, Remote, RemoteError, MAX_CAS_ATTEMPTS};
use crate::store::{hash_of, verify, Chunk, ChunkStore, Hash, Result, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default number of buffered bytes at which `put` flushes by itself: large
/// enough that a pack holds many chunks, small enough to keep memory flat.
pub const DEFAULT_FLUSH_THRESHOLD: usize = 8 << 20;

/// The index of the packs of one manifest, and that manifest's version.
struct Loaded {
    /// `None` when unknown (right after our own CAS, whose new version the object
    /// store does not report) or when the manifest was absent; either way the
    /// next refresh rebuilds instead of trusting it.
    version: Option<Version>,
    index: Arc<Index>,
}

/// A [`ChunkStore`] over a remote's packs. See the module documentation for when
/// written chunks become visible and what writers must guarantee.
pub struct RemoteChunkStore<O: ObjectStore> {
    remote: Remote<O>,
    /// Behind a mutex because `get` and `has` take `&self` yet may refresh it.
    loaded: Mutex<Option<Loaded>>,
    /// Chunks put but not flushed, in put order (flushes write prefixes of the
    /// puts, which is what keeps bottom-up writers closed), and where each is.
    pending: Vec<(Hash, Chunk)>,
    pending_at: HashMap<Hash, usize>,
    pending_bytes: usize,
    threshold: usize,
    /// Chunks and data bytes written to packs by flushes so far.
    flushed: (u64, u64),
}

impl<O: ObjectStore> RemoteChunkStore<O> {
    /// A store over the remote in `store`. Nothing is read until first use.
    pub fn new(store: O) -> RemoteChunkStore<O> {
        RemoteChunkStore::from_remote(Remote::new(store))
    }

    pub fn from_remote(remote: Remote<O>) -> RemoteChunkStore<O> {
        RemoteChunkStore {
            remote,
            loaded: Mutex::new(None),
            pending: Vec::new(),
            pending_at: HashMap::new(),
            pending_bytes: 0,
            threshold: DEFAULT_FLUSH_THRESHOLD,
            flushed: (0, 0),
        }
    }

    /// Flush from `put` once `bytes` are buffered (`0`: after every put).
    pub fn with_flush_threshold(mut self, bytes: usize) -> RemoteChunkStore<O> {
        self.threshold = bytes;
        self
    }

    /// Chunks and data bytes that flushes wrote to the remote so far.
    pub fn flushed(&self) -> (u64, u64) {
        self.flushed
    }

    pub fn remote(&self) -> &Remote<O> {
        &self.remote
    }

    pub fn url(&self) -> &str {
        self.remote.url()
    }

    /// Number of chunks put and not yet flushed.
    pub fn pending_chunks(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of the chunks put and not yet flushed.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Writes every buffered chunk the remote does not list yet into one pack and
    /// its idx, then appends the pack to the manifest by CAS; refs and epoch are
    /// left as they are. The epoch is not checked either: fencing guards refs,
    /// and a fenced writer that lists valid chunks misleads no reader (it must
    /// still keep the closure rule). Returns the new pack, `None` if nothing had
    /// to be written. On error the chunks stay buffered, so the flush can be
    /// retried (a pack written before the error is an unlisted orphan, ignored by
    /// readers; an identical retry writes the same pack name).
    pub fn flush(&mut self) -> super::Result<Option<PackRef>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        // `put` skipped what the index listed then; a `get` or `has` since may have
        // refreshed it. No manifest read just for this: a chunk that another
        // writer listed meanwhile costs only a harmless duplicate copy.
        let (index, _) = self.cached()?;
        let mut writer: Option<PackWriter> = None;
        for (h, data) in &self.pending {
            if index.contains(h) {
                continue;
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(PackWriter::new(self.remote.store())?),
            };
            w.add_chunk(*h, data.clone())?;
            self.flushed.0 += 1;
            self.flushed.1 += data.len() as u64;
        }
        let pack = match writer {
            Some(w) => Some(w.finish()?),
            None => None,
        };
        if let Some(p) = &pack {
            self.publish(p)?;
        }
        self.pending.clear();
        self.pending_at.clear();
        self.pending_bytes = 0;
        Ok(pack)
    }

    /// Appends `pack` to the manifest. A lost CAS means another writer changed
    /// the manifest; we re-read it and append to what it now says, so their refs
    /// and packs are kept, never overwritten with our stale copy.
    fn publish(&self, pack: &PackRef) -> super::Result<()> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = self.remote.manifest()?;
            if m.has_pack(&pack.name) {
                // Same content flushed by another writer: the pack is listed.
                return self.remember(&m, version);
            }
            m.packs.push(pack.clone());
            if m.write_if(self.remote.store(), version.as_ref())? {
                return self.remember(&m, None);
            }
        }
        Err(self.remote.contended())
    }

    /// Makes `m`'s index the one `get` and `has` consult.
    fn remember(&self, m: &Manifest, version: Option<Version>) -> super::Result<()> {
        let index = Arc::new(self.remote.index(m)?);
        *self.lock() = Some(Loaded { version, index });
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Loaded>> {
        // A holder that panicked left either the old or the new value: both valid.
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index as last loaded, loading it on first use; `true` if this call
    /// loaded it (then a refresh would read the same manifest again).
    fn cached(&self) -> super::Result<(Arc<Index>, bool)> {
        if let Some(l) = self.lock().as_ref() {
            return Ok((l.index.clone(), false));
        }
        Ok((self.refresh()?, true))
    }

    /// Re-reads the manifest; the index is rebuilt only if the manifest changed
    /// (idx files themselves are cached per pack by `Remote::index`).
    fn refresh(&self) -> super::Result<Arc<Index>> {
        let (m, version) = self.remote.manifest()?;
        if let (Some(l), Some(v)) = (self.lock().as_ref(), version.as_ref()) {
            if l.version.as_ref() == Some(v) {
                return Ok(l.index.clone());
            }
        }
        let index = Arc::new(self.remote.index(&m)?);
        *self.lock() = Some(Loaded {
            version,
            index: index.clone(),
        });
        Ok(index)
    }

    /// Where `h` is on the remote, refreshing the index once if it is not found.
    fn locate(&self, h: &Hash) -> super::Result<Option<(PackRef, IdxEntry)>> {
        let (index, fresh) = self.cached()?;
        if let Some((p, e)) = index.locate(h) {
            return Ok(Some((p.clone(), e)));
        }
        if fresh {
            return Ok(None);
        }
        Ok(self.refresh()?.locate(h).map(|(p, e)| (p.clone(), e)))
    }

    /// Reads and verifies the bytes of `h` at `e` in `pack`.
    fn read(&self, h: &Hash, pack: &PackRef, e: IdxEntry) -> Result<Chunk> {
        let key = pack_key(&pack.name);
        let url = self.url();
        let data = self
            .remote
            .store()
            .get_range(&key, e.offset, u64::from(e.len))
            .map_err(|err| StoreError::Backend(format!("{err} (reading chunk {h})")))?;
        let at = format!("remote {url}: {key} at offset {}", e.offset);
        if data.len() != e.len as usize {
            let msg = format!("{at}: pack ends before the chunk (truncated)");
            return Err(StoreError::corrupt(*h, msg));
        }
        verify(h, &data).map_err(|err| match err {
            StoreError::Corrupt { hash, detail } => {
                StoreError::corrupt(hash, format!("{at}: {detail}"))
            }
            other => other,
        })?;
        Ok(data.into())
    }
}

/// Remote failures as chunk-store errors. Every `RemoteError` message names the
/// remote URL and the object involved, so `Backend` keeps that text.
fn to_store(e: RemoteError) -> StoreError {
    match e {
        RemoteError::CorruptChunk { url, chunk, detail } => {
            StoreError::corrupt(chunk, format!("remote {url}: {detail}"))
        }
        RemoteError::Local(s) => s,
        other => StoreError::Backend(other.to_string()),
    }
}

impl<O: ObjectStore> ChunkStore for RemoteChunkStore<O> {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        if let Some(&i) = self.pending_at.get(h) {
            // Hashed by `put` from memory we own: no need to verify again.
            return Ok(self.pending[i].1.clone());
        }
        match self.locate(h).map_err(to_store)? {
            Some((pack, e)) => self.read(h, &pack, e),
            None => Err(StoreError::Missing(*h)),
        }
    }

    /// A miss costs a manifest read (it may be listed since): ask about many
    /// chunks with `has_many`, which reads it at most once.
    fn has(&self, h: &Hash) -> Result<bool> {
        Ok(self.pending_at.contains_key(h) || self.locate(h).map_err(to_store)?.is_some())
    }

    fn has_many(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        let (index, fresh) = self.cached().map_err(to_store)?;
        let mut out: Vec<bool> = hs
            .iter()
            .map(|h| self.pending_at.contains_key(h) || index.contains(h))
            .collect();
        // One refresh for the whole batch, not one per absent chunk.
        if !fresh && out.contains(&false) {
            let index = self.refresh().map_err(to_store)?;
            for (found, h) in out.iter_mut().zip(hs) {
                *found = *found || index.contains(h);
            }
        }
        Ok(out)
    }

    /// Buffers `data` unless it is buffered already or the remote lists it (by
    /// the index as last loaded: a stale index only costs a duplicate copy).
    /// Flushes when the buffered bytes reach the threshold; if that flush fails,
    /// the error is returned and every chunk, this one included, stays buffered.
    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        let h = hash_of(&data);
        if self.pending_at.contains_key(&h) {
            return Ok(h);
        }
        let (index, _) = self.cached().map_err(to_store)?;
        if index.contains(&h) {
            return Ok(h);
        }
        self.pending_bytes += data.len();
        self.pending_at.insert(h, self.pending.len());
        self.pending.push((h, data.into()));
        if self.pending_bytes >= self.threshold {
            self.flush().map_err(to_store)?;
        }
        Ok(h)
    }
}
