//! Packs and their indexes: how chunks are stored on a remote.
//!
//! ```text
//! packs/<name>.pack   "PGVCPACK" version:u32be | chunk bytes back to back
//! packs/<name>.idx    "PGVCIDX\0" version:u32be
//!                     | (hash[32] offset:u64be len:u32be)*   sorted by hash, unique
//!                     | count:u64be pack-blake3[32]
//! <name> = hex BLAKE3 of the whole .idx file
//! ```
//!
//! One push writes one pack, streamed (`PackWriter` keeps only the 44-byte index
//! entries in memory). The idx determines the pack completely (contiguous chunks at
//! the listed offsets, whose bytes hash to their names), so naming both by the idx
//! hash makes them content-named: the same push writes the same objects. Readers
//! verify an idx against its name and its structure when they load it
//! (`PackIndex::decode`), and every chunk against its hash when they read it.

use super::object::{ObjectStore, ObjectWriter};
use super::{RemoteError, Result};
use crate::store::{Chunk, Hash};
use serde::{Deserialize, Serialize};

pub const PACK_MAGIC: &[u8; 8] = b"PGVCPACK";
pub const IDX_MAGIC: &[u8; 8] = b"PGVCIDX\0";
pub const PACK_VERSION: u32 = 1;
/// Magic + version, the same length for both files.
pub const HEADER_LEN: u64 = 12;
pub(crate) const ENTRY_LEN: usize = 44;
const TRAILER_LEN: usize = 40;

/// A pack as listed in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRef {
    pub name: String,
    /// Number of chunks in the pack.
    pub chunks: u64,
    /// Size of the `.pack` file in bytes, header included.
    pub bytes: u64,
}

pub fn pack_key(name: &str) -> String {
    format!("packs/{name}.pack")
}

pub fn idx_key(name: &str) -> String {
    format!("packs/{name}.idx")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxEntry {
    pub hash: Hash,
    pub offset: u64,
    pub len: u32,
}

fn header(magic: &[u8; 8]) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&PACK_VERSION.to_be_bytes());
    h
}

/// Batches in flight between the walk and the pack writer's thread, and chunks per
/// batch (a few MB at most in all; batches keep the thread hand-offs few).
const IN_FLIGHT: usize = 8;
const BATCH: usize = 64;

type Batch = Vec<(Hash, Chunk, bool)>;

type Written = Result<(Box<dyn ObjectWriter>, blake3::Hasher)>;

/// Streams chunks into a new pack object.
///
/// The bytes are hashed (for the idx trailer) and written by a thread of its own, so
/// a push reads and walks chunks on one core while the other hashes and copies them
/// into the file (or the S3 spool). The thread starts with the first full batch: a
/// pack of fewer chunks (a one-row commit's push) is written inline at `finish`,
/// sparing a thread's start and hand-offs. The thread touches only the writer: no
/// PostgreSQL state, and it runs with every signal blocked, so the backend's signal
/// handlers never run on it. An error on the thread is returned by the next `add` or
/// by `finish`; a writer dropped unfinished joins its thread, and the object writer's
/// own drop discards the temporary object.
pub struct PackWriter {
    url: String,
    /// The object, until the thread takes it.
    out: Option<Box<dyn ObjectWriter>>,
    tx: Option<std::sync::mpsc::SyncSender<Batch>>,
    batch: Batch,
    thread: Option<std::thread::JoinHandle<Written>>,
    entries: Vec<IdxEntry>,
    /// Bytes handed to the thread, header included: the next chunk's offset.
    end: u64,
}

/// Writes the header and the batches' chunks to `out`, checking those marked so,
/// and hashes all of it for the idx trailer.
fn write_batches(
    mut out: Box<dyn ObjectWriter>,
    batches: impl IntoIterator<Item = Batch>,
) -> Written {
    let mut hasher = blake3::Hasher::new();
    let head = header(PACK_MAGIC);
    hasher.update(&head);
    out.write_all(&head)?;
    for (hash, data, check) in batches.into_iter().flatten() {
        if check {
            crate::store::verify(&hash, &data)?;
        }
        hasher.update(&data);
        out.write_all(&data)?;
    }
    Ok((out, hasher))
}

impl PackWriter {
    pub fn new(store: &dyn ObjectStore) -> Result<PackWriter> {
        Ok(PackWriter {
            url: store.url().to_string(),
            out: Some(store.put_stream()?),
            tx: None,
            batch: Vec::with_capacity(BATCH),
            thread: None,
            entries: Vec::new(),
            end: HEADER_LEN,
        })
    }

    /// Appends one chunk. The caller has verified that `data` hashes to `hash`
    /// and adds each chunk once.
    pub fn add(&mut self, hash: Hash, data: &[u8]) -> Result<()> {
        self.add_chunk(hash, Chunk::from(data))
    }

    /// `add`, without a copy of the bytes.
    pub fn add_chunk(&mut self, hash: Hash, data: Chunk) -> Result<()> {
        self.send(hash, data, false)
    }

    /// `add_chunk` of bytes nobody has checked yet: they are checked against `hash`
    /// before they are written, and a mismatch fails the pack (`Corrupt`, from the
    /// next `add` or from `finish`). The caller must not rely on them before then.
    pub fn add_unverified(&mut self, hash: Hash, data: Chunk) -> Result<()> {
        self.send(hash, data, true)
    }

    /// Stops the writing and returns its error, if it failed (checking what was
    /// still batched): a caller whose own work failed on bytes still to be checked
    /// reports that finding (a corrupt chunk) rather than what followed from it.
    pub fn abandon(mut self) -> Option<RemoteError> {
        // Already joined: its error has been returned.
        if self.thread.is_none() && self.out.is_none() {
            return None;
        }
        self.join().err()
    }

    fn send(&mut self, hash: Hash, data: Chunk, check: bool) -> Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| {
            RemoteError::corrupt_chunk(&self.url, hash, "chunk is larger than 4 GiB")
        })?;
        self.batch.push((hash, data, check));
        if self.batch.len() >= BATCH {
            self.hand_off()?;
        }
        self.entries.push(IdxEntry {
            hash,
            offset: self.end,
            len,
        });
        self.end += u64::from(len);
        Ok(())
    }

    /// Starts the thread with the object.
    fn start(&mut self) -> Result<()> {
        let Some(out) = self.out.take() else {
            return Err(self.stopped());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(IN_FLIGHT);
        let thread = spawn_without_signals(move || write_batches(out, rx)).map_err(|e| {
            RemoteError::io(&self.url, "(a new pack)", "start a writer thread for", e)
        })?;
        self.tx = Some(tx);
        self.thread = Some(thread);
        Ok(())
    }

    /// Sends the batch to the thread, started first if need be.
    fn hand_off(&mut self) -> Result<()> {
        if self.thread.is_none() {
            self.start()?;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let sent = self.tx.as_ref().map(|tx| tx.send(batch).is_ok());
        if sent != Some(true) {
            // The thread stopped early: its error says why.
            return Err(self.join().err().unwrap_or_else(|| self.stopped()));
        }
        Ok(())
    }

    fn stopped(&self) -> RemoteError {
        let e = std::io::Error::other("the pack writer thread stopped");
        RemoteError::io(&self.url, "(a new pack)", "write", e)
    }

    /// Writes what is batched (inline if the thread never started; else it is
    /// handed off, the channel closed and the thread waited for).
    fn join(&mut self) -> Written {
        if let Some(out) = self.out.take() {
            return write_batches(out, [std::mem::take(&mut self.batch)]);
        }
        if !self.batch.is_empty() {
            if let Some(tx) = &self.tx {
                // A closed channel: the thread's own result says why.
                let _ = tx.send(std::mem::take(&mut self.batch));
            }
        }
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(self.stopped()),
            None => Err(self.stopped()),
        }
    }

    pub fn chunks(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes of chunk data written (header excluded).
    pub fn data_bytes(&self) -> u64 {
        self.end - HEADER_LEN
    }

    /// Makes the pack and then its idx durable under their final names and returns
    /// the manifest entry. Nothing refers to them until a manifest lists them.
    pub fn finish(mut self) -> Result<PackRef> {
        let (out, hasher) = self.join()?;
        self.entries.sort_by_key(|e| e.hash);
        let mut idx = header(IDX_MAGIC);
        idx.reserve(self.entries.len() * ENTRY_LEN + TRAILER_LEN);
        for e in &self.entries {
            idx.extend_from_slice(e.hash.as_bytes());
            idx.extend_from_slice(&e.offset.to_be_bytes());
            idx.extend_from_slice(&e.len.to_be_bytes());
        }
        idx.extend_from_slice(&(self.entries.len() as u64).to_be_bytes());
        idx.extend_from_slice(hasher.finalize().as_bytes());
        let name = blake3::hash(&idx).to_hex().to_string();
        let bytes = out.written();
        debug_assert_eq!(bytes, self.end);
        // Pack first: an idx must never name a pack that is not there.
        out.finish_then_put(&pack_key(&name), &idx_key(&name), &idx)?;
        Ok(PackRef {
            name,
            chunks: self.entries.len() as u64,
            bytes,
        })
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// Spawns a thread with every signal blocked (it inherits the mask set here), then
/// restores the caller's mask: a PostgreSQL backend's handlers must run on its own
/// thread.
fn spawn_without_signals<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    // SAFETY: sigfillset/pthread_sigmask on local, initialised sigset_t values.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let spawned = std::thread::Builder::new()
            .name("pgvc-pack".into())
            .spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

/// Index entries from `body` (a whole number of 44-byte entries), or None when they
/// are not strictly sorted by hash.
pub(crate) fn decode_entries(body: &[u8]) -> Option<Vec<IdxEntry>> {
    let entries: Vec<IdxEntry> = body
        .chunks_exact(ENTRY_LEN)
        .map(|e| IdxEntry {
            hash: Hash::from_slice(&e[..32]).expect("32 bytes"),
            offset: u64::from_be_bytes(e[32..40].try_into().expect("8 bytes")),
            len: u32::from_be_bytes(e[40..44].try_into().expect("4 bytes")),
        })
        .collect();
    if entries.windows(2).any(|w| w[0].hash >= w[1].hash) {
        return None;
    }
    Some(entries)
}

/// A loaded, verified pack index.
#[derive(Debug)]
pub struct PackIndex {
    entries: Vec<IdxEntry>,
    /// BLAKE3 of the whole `.pack` file, for full verification.
    pub pack_hash: Hash,
}

impl PackIndex {
    /// Parses and checks an idx: its hash is `pack.name`, the header and trailer
    /// are right, entries are sorted and unique, and they tile the pack exactly
    /// (`pack.bytes`), so every later range read is in bounds of a whole pack.
    pub fn decode(url: &str, pack: &PackRef, data: &[u8]) -> Result<PackIndex> {
        let key = idx_key(&pack.name);
        let bad = |d: &str| RemoteError::corrupt_object(url, &key, d);
        if blake3::hash(data).to_hex().as_str() != pack.name {
            return Err(bad("content does not hash to its name"));
        }
        let h = HEADER_LEN as usize;
        if data.len() < h + TRAILER_LEN || data[..h] != header(IDX_MAGIC)[..] {
            return Err(bad("bad header"));
        }
        let body = &data[h..data.len() - TRAILER_LEN];
        let trailer = &data[data.len() - TRAILER_LEN..];
        let count = u64::from_be_bytes(trailer[..8].try_into().expect("8 bytes"));
        if !body.len().is_multiple_of(ENTRY_LEN) || (body.len() / ENTRY_LEN) as u64 != count {
            return Err(bad("entry count does not match the trailer"));
        }
        if count != pack.chunks {
            return Err(bad("entry count does not match the manifest"));
        }
        let pack_hash = Hash::from_slice(&trailer[8..]).expect("32 bytes");
        let entries = decode_entries(body).ok_or_else(|| bad("entries are not sorted by hash"))?;
        let mut spans: Vec<(u64, u64)> = entries
            .iter()
            .map(|e| (e.offset, u64::from(e.len)))
            .collect();
        spans.sort_unstable();
        let mut at = HEADER_LEN;
        for (offset, len) in spans {
            if offset != at {
                return Err(bad("chunks do not tile the pack"));
            }
            at += len;
        }
        if at != pack.bytes {
            return Err(bad("chunks do not fill the pack"));
        }
        Ok(PackIndex { entries, pack_hash })
    }

    pub fn get(&self, hash: &Hash) -> Option<&IdxEntry> {
        self.entries
            .binary_search_by(|e| e.hash.cmp(hash))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[IdxEntry] {
        &self.entries
    }
}
