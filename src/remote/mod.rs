//! Remotes: the middlemen through which databases exchange history.
//!
//! A remote is an object store (a directory for `file:///path`, later a bucket for
//! `s3://bucket/prefix`) holding a `manifest` (refs, live packs, fencing epoch) and
//! content-named packs of chunks with their indexes. See `docs/REMOTE_FORMAT.md`.
//! Push writes one pack with the chunks the remote lacks, then swaps the manifest by
//! compare-and-swap; fetch walks from a remote head, reads each chunk the local store
//! lacks from its pack, verifies its hash and stores it. The only mutable object is
//! the manifest and the only write to it is a CAS, which is why the same code works
//! on a filesystem (flock + rename) and on an object store (conditional PUT).
//!
//! Invariant relied on by both directions: the chunks of the packs listed in the
//! manifest are closed under references, so "the remote has X" means it has
//! everything X reaches, and walks stop there. Local stores keep the same invariant.

mod chunks;
mod compact;
mod error;
mod fetch;
mod file;
mod manifest;
mod mirror;
pub mod moto;
mod object;
mod pack;
mod push;
pub mod s3;
pub mod testsuite;
mod url;
mod walk;

#[cfg(test)]
mod tests;

pub use chunks::{RemoteChunkStore, DEFAULT_FLUSH_THRESHOLD};
pub use compact::{
    level as pack_level, plan as compaction_plan, CompactOutcome, PruneOutcome, Tombstone,
    DEFAULT_FAN_IN, LEVEL_UNIT, RETIRED_PREFIX,
};
pub use error::{RemoteError, Result};
pub use fetch::FetchOutcome;
pub use file::FileStore;
pub use manifest::{Manifest, FORMAT, MANIFEST_KEY};
pub use mirror::MirrorOutcome;
pub use object::{now_ms, valid_key, ObjectInfo, ObjectStore, ObjectWriter, Reread, Version};
pub use pack::{idx_key, pack_key, IdxEntry, PackIndex, PackRef, PackWriter};
pub use push::{is_ancestor, known_heads, Prepared, PushOutcome, PREPARED_MAX_AGE_MS};
pub use url::{open, open_s3, open_with, parse_url, RemoteUrl};
pub use walk::chunk_refs;

use crate::store::Hash;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// How many chunks at most pass between two progress reports.
pub const PROGRESS_EVERY: u64 = 1000;

/// Gives up after this many lost manifest CASes in one operation: each loss means
/// another writer made progress, so this is only reached under heavy contention.
const MAX_CAS_ATTEMPTS: u32 = 50;

/// Progress of a push or fetch. Totals are unknown (`None`) while walking: the
/// walk discovers the chunks to transfer as it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub chunks_done: u64,
    pub bytes_done: u64,
    pub chunks_total: Option<u64>,
    pub bytes_total: Option<u64>,
}

/// Which listed pack holds which chunk: the idx entries of every pack in a manifest.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackRef, Arc<PackIndex>)>,
}

impl Index {
    /// The pack and entry holding `h`, if any listed pack does.
    pub fn locate(&self, h: &Hash) -> Option<(&PackRef, IdxEntry)> {
        // Newest packs first: recent history is what walks ask about most.
        self.packs
            .iter()
            .rev()
            .find_map(|(p, idx)| idx.get(h).map(|e| (p, *e)))
    }

    /// The loaded index of listed pack `name`.
    pub fn pack(&self, name: &str) -> Option<&PackIndex> {
        self.packs
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(_, i)| &**i)
    }

    pub fn contains(&self, h: &Hash) -> bool {
        self.locate(h).is_some()
    }

    /// Number of chunk entries over all packs (a chunk in two packs counts twice).
    pub fn entries(&self) -> usize {
        self.packs.iter().map(|(_, i)| i.len()).sum()
    }
}

/// Index entries (44 bytes each) above which a push does not load a pack's index.
pub const DEFAULT_LAZY_INDEX_ABOVE: u64 = 16_384;

/// Bytes of pack indexes a `Remote` keeps loaded between operations (default).
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 64 << 20;

/// Memory of a loaded index (its entries).
fn index_bytes(i: &PackIndex) -> u64 {
    i.len() as u64 * std::mem::size_of::<IdxEntry>() as u64
}

/// Chunk membership over a manifest's packs (see `Remote::membership`). A big pack
/// looked up more than `LOAD_AFTER` times in one operation (a clone, a long fetch) is
/// loaded after all: range reads pay for a few lookups, not for thousands.
pub(crate) struct Membership<'r, O: ObjectStore> {
    remote: &'r Remote<O>,
    loaded: std::cell::RefCell<Index>,
    lazy: std::cell::RefCell<Vec<(PackRef, u32)>>,
}

const LOAD_AFTER: u32 = 64;

impl<O: ObjectStore> Membership<'_, O> {
    /// The pack holding `h` and its entry, if a listed pack does.
    pub(crate) fn locate(&self, h: &Hash) -> Result<Option<(PackRef, IdxEntry)>> {
        if let Some((p, e)) = self.loaded.borrow().locate(h) {
            return Ok(Some((p.clone(), e)));
        }
        let mut found = None;
        let mut load = None;
        {
            let mut lazy = self.lazy.borrow_mut();
            for (i, (p, n)) in lazy.iter_mut().enumerate().rev() {
                *n += 1;
                if *n > LOAD_AFTER && load.is_none() {
                    load = Some(i);
                }
                if let Some(e) = self.remote.lookup(p, h)? {
                    found = Some((p.clone(), e));
                    break;
                }
            }
        }
        if let Some(i) = load {
            let (p, _) = self.lazy.borrow_mut().remove(i);
            let more = self.remote.index(&Manifest {
                packs: vec![p],
                ..Manifest::default()
            })?;
            self.loaded.borrow_mut().packs.extend(more.packs);
        }
        Ok(found)
    }

    pub(crate) fn contains(&self, h: &Hash) -> Result<bool> {
        Ok(self.locate(h)?.is_some())
    }
}

/// Lifts a store's deadline when dropped (`Remote::deadline`).
pub struct DeadlineGuard<'a>(&'a dyn ObjectStore);

impl Drop for DeadlineGuard<'_> {
    fn drop(&mut self) {
        self.0.set_deadline(None);
    }
}

/// A remote: an object store plus the operations on its manifest and packs.
pub struct Remote<O: ObjectStore> {
    store: O,
    /// Loaded pack indexes by pack name. Packs are immutable, so entries never
    /// go stale; a pack that disappears is noticed when a chunk read fails. Holds
    /// only packs the last manifest read lists or retires, and at most
    /// `idx_cache_limit` bytes: memory per process does not grow with the history.
    idx_cache: Mutex<HashMap<String, Arc<PackIndex>>>,
    idx_cache_limit: u64,
    /// A push looks chunks up in the index of a pack with more entries than this by
    /// range reads (`lookup`) instead of loading it, unless it is cached: a fresh
    /// connection's push costs the change, not the history.
    lazy_above: u64,
    /// The manifest as last read, and its version: the next read asks the store for
    /// it only if it changed (`get_if_changed`; on S3 a conditional GET answered
    /// `304`), so a standby's idle poll moves no manifest bytes.
    last_manifest: Mutex<Option<(Version, Manifest)>>,
}

impl<O: ObjectStore> Remote<O> {
    pub fn new(store: O) -> Remote<O> {
        Remote {
            store,
            idx_cache: Mutex::new(HashMap::new()),
            idx_cache_limit: DEFAULT_INDEX_CACHE_BYTES,
            lazy_above: DEFAULT_LAZY_INDEX_ABOVE,
            last_manifest: Mutex::new(None),
        }
    }

    /// Packs with more index entries than `entries` are looked up by range reads in a
    /// push instead of loaded (default [`DEFAULT_LAZY_INDEX_ABOVE`]).
    pub fn with_lazy_index_above(mut self, entries: u64) -> Remote<O> {
        self.lazy_above = entries;
        self
    }

    /// Keeps at most `bytes` of pack indexes loaded between operations (an operation
    /// holds the indexes it uses while it runs, whatever the limit).
    pub fn with_index_cache_limit(mut self, bytes: u64) -> Remote<O> {
        self.idx_cache_limit = bytes;
        self
    }

    pub fn url(&self) -> &str {
        self.store.url()
    }

    pub fn store(&self) -> &O {
        &self.store
    }

    /// The current manifest (an empty one if the remote has never been pushed to).
    pub fn read_manifest(&self) -> Result<Manifest> {
        Ok(self.manifest()?.0)
    }

    /// The current manifest and its version (`None`: absent), read again only if it
    /// changed since this remote last read it.
    pub fn manifest(&self) -> Result<(Manifest, Option<Version>)> {
        let known = self.last().clone();
        let (m, v) = match known {
            None => Manifest::read(&self.store)?,
            Some((v, m)) => match self.store.get_if_changed(MANIFEST_KEY, &v)? {
                Reread::Unchanged => return Ok((m, Some(v))),
                Reread::Absent => (Manifest::default(), None),
                Reread::Changed(data, v) => (Manifest::decode(self.url(), &data)?, Some(v)),
            },
        };
        *self.last() = v.clone().map(|v| (v, m.clone()));
        Ok((m, v))
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<(Version, Manifest)>> {
        self.last_manifest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests give up after `within` until the guard is dropped (see
    /// `ObjectStore::set_deadline`).
    pub fn deadline(&self, within: std::time::Duration) -> DeadlineGuard<'_> {
        self.store
            .set_deadline(Some(std::time::Instant::now() + within));
        DeadlineGuard(&self.store)
    }

    /// The indexes of every pack `manifest` lists, loaded (and verified) once per
    /// pack name and then served from the cache.
    pub fn index(&self, manifest: &Manifest) -> Result<Index> {
        let mut packs = Vec::with_capacity(manifest.packs.len());
        for p in &manifest.packs {
            let cached = self.cache().get(&p.name).cloned();
            let idx = match cached {
                Some(idx) => idx,
                None => {
                    let key = idx_key(&p.name);
                    let (data, _) = self.store.get(&key)?.ok_or(RemoteError::NotFound {
                        url: self.url().to_string(),
                        key,
                    })?;
                    let idx = Arc::new(PackIndex::decode(self.url(), p, &data)?);
                    let mut cache = self.cache();
                    let held: u64 = cache.values().map(|i| index_bytes(i)).sum();
                    if held + index_bytes(&idx) <= self.idx_cache_limit {
                        cache.insert(p.name.clone(), idx.clone());
                    }
                    idx
                }
            };
            packs.push((p.clone(), idx));
        }
        Ok(Index { packs })
    }

    /// Whether pack `p` holds chunk `h`, from its index by range reads, without loading
    /// it: an interpolation search (hashes are uniform, so a lookup takes about two
    /// reads of 32 entries). The entries read are checked for order and bounds; the
    /// index as a whole is not (its hash needs all of it), and a chunk read from the
    /// pack is verified by its hash as always.
    pub fn lookup(&self, p: &PackRef, h: &Hash) -> Result<Option<IdxEntry>> {
        const WINDOW: u64 = 32;
        const ENTRY: u64 = pack::ENTRY_LEN as u64;
        let key = idx_key(&p.name);
        let prefix = |x: &Hash| u64::from_be_bytes(x.as_bytes()[..8].try_into().expect("8 bytes"));
        let target = prefix(h) as u128;
        let (mut lo, mut hi) = (0u64, p.chunks);
        let (mut lo_v, mut hi_v): (u128, u128) = (0, 1u128 << 64);
        for _ in 0..64 {
            if lo >= hi {
                return Ok(None);
            }
            let span = (hi_v - lo_v).max(1);
            let guess =
                lo + ((target.saturating_sub(lo_v)).min(span) * u128::from(hi - lo) / span) as u64;
            let start = guess.min(hi - 1).saturating_sub(WINDOW / 2).max(lo);
            let end = (start + WINDOW).min(hi);
            let buf = self.store.get_range(
                &key,
                pack::HEADER_LEN + start * ENTRY,
                (end - start) * ENTRY,
            )?;
            if buf.len() as u64 != (end - start) * ENTRY {
                return Err(RemoteError::corrupt_object(
                    self.url(),
                    &key,
                    "index ends early",
                ));
            }
            let entries = pack::decode_entries(&buf).ok_or_else(|| {
                RemoteError::corrupt_object(self.url(), &key, "entries are not sorted by hash")
            })?;
            let (first, last) = (entries[0], entries[entries.len() - 1]);
            if *h < first.hash {
                hi = start;
                hi_v = prefix(&first.hash) as u128 + 1;
            } else if *h > last.hash {
                lo = end;
                lo_v = prefix(&last.hash) as u128;
            } else {
                return Ok(match entries.binary_search_by(|e| e.hash.cmp(h)) {
                    Ok(i) if entries[i].offset + u64::from(entries[i].len) <= p.bytes => {
                        Some(entries[i])
                    }
                    Ok(_) => {
                        return Err(RemoteError::corrupt_object(
                            self.url(),
                            &key,
                            "an entry points past the pack",
                        ))
                    }
                    Err(_) => None,
                });
            }
        }
        Err(RemoteError::corrupt_object(
            self.url(),
            &key,
            "lookup did not converge",
        ))
    }

    /// Which packs of `m` hold a chunk, for a push's walk or a fetch: cached and small
    /// indexes loaded, big ones looked up by range reads (`lookup`) until they are
    /// asked often enough to be worth loading.
    pub(crate) fn membership(&self, m: &Manifest) -> Result<Membership<'_, O>> {
        let cached: std::collections::HashSet<String> = self.cache().keys().cloned().collect();
        let (load, lazy): (Vec<PackRef>, Vec<PackRef>) = m
            .packs
            .iter()
            .cloned()
            .partition(|p| cached.contains(&p.name) || p.chunks <= self.lazy_above);
        let loaded = self.index(&Manifest {
            packs: load,
            ..Manifest::default()
        })?;
        Ok(Membership {
            remote: self,
            loaded: std::cell::RefCell::new(loaded),
            lazy: std::cell::RefCell::new(lazy.into_iter().map(|p| (p, 0)).collect()),
        })
    }

    /// Forgets the indexes of packs `m` does not list (compacted away): the cache
    /// holds at most what the remote lists now.
    pub fn trim_cache(&self, m: &Manifest) {
        self.cache().retain(|name, _| m.has_pack(name));
    }

    /// Bytes of pack indexes held in this remote's cache.
    pub fn cached_index_bytes(&self) -> u64 {
        self.cache().values().map(|i| index_bytes(i)).sum()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PackIndex>>> {
        // The map is valid even if a holder panicked: inserts are single calls.
        self.idx_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn list_refs(&self) -> Result<BTreeMap<String, Hash>> {
        Ok(self.read_manifest()?.refs)
    }

    pub fn epoch(&self) -> Result<u64> {
        Ok(self.read_manifest()?.epoch)
    }

    /// Raises the epoch from `expected` to `expected + 1` by CAS and returns the new
    /// epoch; `Fenced` if the remote is not at `expected` (someone else bumped it).
    /// Pushes that expect the old epoch are refused from then on.
    pub fn bump_epoch(&self, expected: u64) -> Result<u64> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = self.manifest()?;
            self.check_epoch(&m, Some(expected))?;
            m.epoch = expected + 1;
            if m.write_if(&self.store, version.as_ref())? {
                return Ok(m.epoch);
            }
            // Lost to a concurrent write (a push, or another bump): look again.
        }
        Err(self.contended())
    }

    /// Removes ref `name` by CAS and returns the head it named (`None`: there was no
    /// such ref). Its chunks stay until compaction and pruning find them unreachable.
    pub fn delete_ref(&self, name: &str, expected_epoch: Option<u64>) -> Result<Option<Hash>> {
        self.check_branch(name)?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = self.manifest()?;
            self.check_epoch(&m, expected_epoch)?;
            let Some(old) = m.refs.remove(name) else {
                return Ok(None);
            };
            if m.write_if(&self.store, version.as_ref())? {
                return Ok(Some(old));
            }
            // Lost to a concurrent write: look again.
        }
        Err(self.contended())
    }

    fn check_epoch(&self, m: &Manifest, expected: Option<u64>) -> Result<()> {
        match expected {
            Some(e) if e != m.epoch => Err(RemoteError::Fenced {
                url: self.url().to_string(),
                expected: e,
                actual: m.epoch,
            }),
            _ => Ok(()),
        }
    }

    fn contended(&self) -> RemoteError {
        RemoteError::Contended {
            url: self.url().to_string(),
            attempts: MAX_CAS_ATTEMPTS,
        }
    }

    fn check_branch(&self, branch: &str) -> Result<()> {
        if branch.is_empty() || branch.len() > 255 || branch.chars().any(char::is_control) {
            return Err(RemoteError::BadBranch {
                url: self.url().to_string(),
                branch: branch.to_string(),
            });
        }
        Ok(())
    }
}
