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
use crate::store::Hash;
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

/// Streams chunks into a new pack object.
pub struct PackWriter {
    url: String,
    out: Box<dyn ObjectWriter>,
    hasher: blake3::Hasher,
    entries: Vec<IdxEntry>,
}

impl PackWriter {
    pub fn new(store: &dyn ObjectStore) -> Result<PackWriter> {
        let mut w = PackWriter {
            url: store.url().to_string(),
            out: store.put_stream()?,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
        };
        w.write(&header(PACK_MAGIC))?;
        Ok(w)
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.out.write_all(data)
    }

    /// Appends one chunk. The caller has verified that `data` hashes to `hash`
    /// and adds each chunk once.
    pub fn add(&mut self, hash: Hash, data: &[u8]) -> Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| {
            RemoteError::corrupt_chunk(&self.url, hash, "chunk is larger than 4 GiB")
        })?;
        let offset = self.out.written();
        self.write(data)?;
        self.entries.push(IdxEntry { hash, offset, len });
        Ok(())
    }

    pub fn chunks(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes of chunk data written (header excluded).
    pub fn data_bytes(&self) -> u64 {
        self.out.written() - HEADER_LEN
    }

    /// Makes the pack and then its idx durable under their final names and returns
    /// the manifest entry. Nothing refers to them until a manifest lists them.
    pub fn finish(mut self, store: &dyn ObjectStore) -> Result<PackRef> {
        self.entries.sort_by_key(|e| e.hash);
        let mut idx = header(IDX_MAGIC);
        idx.reserve(self.entries.len() * ENTRY_LEN + TRAILER_LEN);
        for e in &self.entries {
            idx.extend_from_slice(e.hash.as_bytes());
            idx.extend_from_slice(&e.offset.to_be_bytes());
            idx.extend_from_slice(&e.len.to_be_bytes());
        }
        idx.extend_from_slice(&(self.entries.len() as u64).to_be_bytes());
        idx.extend_from_slice(self.hasher.finalize().as_bytes());
        let name = blake3::hash(&idx).to_hex().to_string();
        let bytes = self.out.written();
        // Pack first: an idx must never name a pack that is not there.
        self.out.finish(&pack_key(&name))?;
        store.put(&idx_key(&name), &idx)?;
        Ok(PackRef {
            name,
            chunks: self.entries.len() as u64,
            bytes,
        })
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
