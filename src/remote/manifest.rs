//! The manifest: the one mutable object of a remote, replaced only by
//! compare-and-swap. It holds the refs, the list of live packs and the epoch.
//!
//! MessagePack with named fields (`write_named`), so fields can be added later
//! and older readers ignore them; `format` changes only for incompatible
//! changes, and a reader refuses a format it does not know rather than guess.
//! An absent manifest is an empty remote (epoch 0, no refs, no packs).

use super::object::{ObjectStore, Version};
use super::pack::PackRef;
use super::{RemoteError, Result};
use crate::store::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MANIFEST_KEY: &str = "manifest";
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Fencing token: raised (by CAS) when a new primary is promoted; a writer
    /// that expects an older epoch is refused.
    pub epoch: u64,
    /// Branch name -> head commit.
    pub refs: BTreeMap<String, Hash>,
    /// Every live pack. Invariant: the chunks of these packs are closed under
    /// references. Pushes append; a compaction replaces some packs by one that holds
    /// all their chunks.
    pub packs: Vec<PackRef>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT,
            epoch: 0,
            refs: BTreeMap::new(),
            packs: Vec::new(),
        }
    }
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Plain structs of ints, strings and byte arrays always serialize.
        rmp_serde::encode::write_named(&mut out, self).expect("msgpack encoding of the manifest");
        out
    }

    pub fn decode(url: &str, data: &[u8]) -> Result<Manifest> {
        let m: Manifest = rmp_serde::from_slice(data)
            .map_err(|e| RemoteError::corrupt_object(url, MANIFEST_KEY, e.to_string()))?;
        if m.format != FORMAT {
            return Err(RemoteError::Unsupported {
                url: url.to_string(),
                reason: format!(
                    "manifest format {} is not understood by this pgvc (it reads format {FORMAT})",
                    m.format
                ),
            });
        }
        Ok(m)
    }

    /// The current manifest and its version (`None` when absent).
    pub fn read(store: &dyn ObjectStore) -> Result<(Manifest, Option<Version>)> {
        match store.get(MANIFEST_KEY)? {
            None => Ok((Manifest::default(), None)),
            Some((data, v)) => Ok((Manifest::decode(store.url(), &data)?, Some(v))),
        }
    }

    /// CAS: replaces the manifest read at `expected`; `false` if it moved since.
    pub fn write_if(&self, store: &dyn ObjectStore, expected: Option<&Version>) -> Result<bool> {
        store.put_if(MANIFEST_KEY, &self.encode(), expected)
    }

    pub fn has_pack(&self, name: &str) -> bool {
        self.packs.iter().any(|p| p.name == name)
    }
}
