//! Compaction and pruning: keep what a remote operation costs bounded by the size of
//! the change, not by the length of the history.
//!
//! Every push adds a pack. **Compaction** merges packs into one with one index and
//! swaps the manifest to it by the same compare-and-swap as a ref move: the merged
//! pack holds every chunk of the packs it replaces, so the manifest's chunks are the
//! same set and stay closed under references. The replaced packs are not deleted at
//! once: the manifest lists them as `retired` (with the time and the pack that holds
//! their chunks now) for a grace period, so a reader that listed them keeps reading;
//! a reader that still loses a race (a pack gone under it) re-reads the manifest and
//! retries (`fetch`). A push walked against the old manifest still publishes: the new
//! manifest *covers* every pack it relied on (`Manifest::covers`).
//!
//! Which packs merge ([`plan`]): packs have a level by size (doublings of 64 KiB);
//! when `fan_in` packs share a level they merge into one, at least `fan_in` times
//! bigger, hence log2(fan_in) levels higher. A remote then lists fewer than `fan_in`
//! packs per level, O(log size) in all, and each byte is rewritten O(log size) times
//! over its life, whatever the pattern of pushes.
//!
//! **Pruning** deletes, after a grace period: retired packs (then drops them from the
//! manifest, by CAS), packs and indexes no manifest lists (interrupted pushes, pushes
//! whose transaction rolled back, compactions that lost a race), and the backend's
//! temporary files. The grace period protects a push that wrote its pack but has not
//! yet swapped the manifest: it must be longer than any push takes.

use super::manifest::{Manifest, Retired};
use super::object::{now_ms, ObjectInfo, ObjectStore};
use super::pack::{pack_key, PackRef, PackWriter, HEADER_LEN};
use super::{Remote, RemoteError, Result, MAX_CAS_ATTEMPTS};
use crate::store::{hash_of, Hash};
use std::collections::HashSet;

/// How many packs of one level a compaction merges (default).
pub const DEFAULT_FAN_IN: usize = 8;

/// Packs smaller than this are all of level 0.
pub const LEVEL_UNIT: u64 = 64 << 10;

/// Bytes read from a pack per range read while merging.
const READ_RUN: u64 = 8 << 20;

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Packs replaced (0: nothing to do).
    pub packs_merged: u64,
    /// The merged pack.
    pub pack: Option<String>,
    pub chunks: u64,
    pub bytes: u64,
}

/// What a prune deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Objects deleted (each pack and each index counts).
    pub objects: u64,
    pub bytes: u64,
    /// Temporary files of interrupted writes deleted.
    pub temporaries: u64,
}

/// The level of a pack of `bytes`: 0 below [`LEVEL_UNIT`], then one more per doubling.
pub fn level(bytes: u64) -> u32 {
    (bytes / LEVEL_UNIT).checked_ilog2().map_or(0, |l| l + 1)
}

/// The packs (indexes into `sizes`) a compaction merges, or None: all the packs of the
/// lowest level that holds at least `fan_in` of them. The merged pack is at least
/// `fan_in` times bigger, so it lands log2(fan_in) levels or more higher: each byte
/// is rewritten about log(total size) / log(fan_in) times over its life, and a
/// remote lists fewer than `fan_in` packs per level.
pub fn plan(sizes: &[u64], fan_in: usize) -> Option<Vec<usize>> {
    let fan_in = fan_in.max(2);
    let mut by_level: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, s) in sizes.iter().enumerate() {
        by_level.entry(level(*s)).or_default().push(i);
    }
    by_level.into_values().find(|v| v.len() >= fan_in)
}

impl<O: ObjectStore> Remote<O> {
    /// Merges packs while some level holds `fan_in` of them (see [`plan`]).
    /// Safe against concurrent pushes, fetches and other compactions: the merged
    /// pack is durable before the manifest swap; a lost swap is retried while the
    /// packs it merges are still listed, and otherwise abandoned (its unlisted pack
    /// deleted at once: nothing can have listed it).
    pub fn compact(&self, fan_in: usize) -> Result<CompactOutcome> {
        let mut done = CompactOutcome::default();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (m, _) = Manifest::read(self.store())?;
            let sizes: Vec<u64> = m.packs.iter().map(|p| p.bytes).collect();
            let Some(picked) = plan(&sizes, fan_in) else {
                return Ok(done);
            };
            let merging: Vec<PackRef> = picked.iter().map(|&i| m.packs[i].clone()).collect();
            let merged = match self.merge(&merging) {
                // Compacted and pruned by another server meanwhile: plan again.
                Err(e) if super::fetch::pack_gone(&e) => continue,
                other => other?,
            };
            if self.swap_in(&merging, &merged)? {
                // A merge may fill the next level: go on until no level is full.
                done.packs_merged += merging.len() as u64;
                done.pack = Some(merged.name.clone());
                done.chunks += merged.chunks;
                done.bytes += merged.bytes;
                continue;
            }
            // Another compaction replaced some of them. Our pack is left to pruning,
            // never deleted here: packs are named by their content, so another
            // compaction of the same packs wrote (and may be listing) the same name.
        }
        if done.packs_merged > 0 {
            return Ok(done);
        }
        Err(self.contended())
    }

    /// Writes one pack holding every chunk of `packs` (each chunk once, verified).
    fn merge(&self, packs: &[PackRef]) -> Result<PackRef> {
        let manifest = Manifest {
            packs: packs.to_vec(),
            ..Manifest::default()
        };
        let index = self.index(&manifest)?;
        let mut writer = PackWriter::new(self.store())?;
        let mut seen: HashSet<Hash> = HashSet::new();
        for p in packs {
            let idx = index
                .pack(&p.name)
                .expect("the index of a pack just loaded");
            let mut entries = idx.entries().to_vec();
            entries.sort_by_key(|e| e.offset);
            let key = pack_key(&p.name);
            // Sequential range reads of the whole pack.
            let mut at = 0;
            while at < entries.len() {
                let start = entries[at].offset;
                let mut end = at;
                while end < entries.len()
                    && entries[end].offset + u64::from(entries[end].len) - start <= READ_RUN
                {
                    end += 1;
                }
                let end = end.max(at + 1);
                let stop = entries[end - 1].offset + u64::from(entries[end - 1].len);
                let buf = self.store().get_range(&key, start, stop - start)?;
                for e in &entries[at..end] {
                    let from = (e.offset - start) as usize;
                    let Some(data) = buf.get(from..from + e.len as usize) else {
                        let msg = format!("pack {key} ends before the chunk (truncated)");
                        return Err(RemoteError::corrupt_chunk(self.url(), e.hash, msg));
                    };
                    if hash_of(data) != e.hash {
                        let msg = format!("its bytes in pack {key} hash differently");
                        return Err(RemoteError::corrupt_chunk(self.url(), e.hash, msg));
                    }
                    if seen.insert(e.hash) {
                        writer.add(e.hash, data)?;
                    }
                }
                at = end;
            }
        }
        debug_assert!(writer.data_bytes() + HEADER_LEN > 0);
        writer.finish(self.store())
    }

    /// The manifest swap of a compaction: `merged` in place of `merging` (which
    /// become retired). `false` if one of them is no longer listed.
    fn swap_in(&self, merging: &[PackRef], merged: &PackRef) -> Result<bool> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = Manifest::read(self.store())?;
            if !merging.iter().all(|p| m.has_pack(&p.name)) {
                return Ok(false);
            }
            let gone: HashSet<&str> = merging.iter().map(|p| p.name.as_str()).collect();
            let at = m
                .packs
                .iter()
                .position(|p| gone.contains(p.name.as_str()))
                .expect("checked above");
            m.packs.retain(|p| !gone.contains(p.name.as_str()));
            if !m.has_pack(&merged.name) {
                m.packs.insert(at.min(m.packs.len()), merged.clone());
            }
            let when = now_ms();
            for p in merging {
                if p.name != merged.name {
                    m.retired.push(Retired {
                        name: p.name.clone(),
                        into: merged.name.clone(),
                        at_ms: when,
                    });
                }
            }
            if m.write_if(self.store(), version.as_ref())? {
                return Ok(true);
            }
        }
        Err(self.contended())
    }

    /// Deletes what no reader needs any more: retired packs replaced more than
    /// `retired_grace_ms` ago (dropped from the manifest first; a reader that loses
    /// this race retries), and unlisted packs, indexes and the backend's temporary
    /// files older than `unlisted_grace_ms` (which must exceed the longest push: a
    /// push's pack is unlisted until its manifest swap).
    pub fn prune(&self, retired_grace_ms: u64, unlisted_grace_ms: u64) -> Result<PruneOutcome> {
        let now = now_ms();
        let cutoff = now.saturating_sub(retired_grace_ms);
        let unlisted_cutoff = now.saturating_sub(unlisted_grace_ms);
        let mut out = PruneOutcome::default();
        // 1. Retired packs past the grace period leave the manifest (one CAS).
        let mut expired: Vec<String> = Vec::new();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = Manifest::read(self.store())?;
            let before = m.retired.len();
            expired = m
                .retired
                .iter()
                .filter(|r| r.at_ms <= cutoff)
                .map(|r| r.name.clone())
                .collect();
            m.retired.retain(|r| r.at_ms > cutoff);
            if m.retired.len() == before || m.write_if(self.store(), version.as_ref())? {
                break;
            }
        }
        // 2. Every pack or index no manifest lists or retires, old enough. (Expired
        // retired packs are unlisted now.)
        let (m, _) = Manifest::read(self.store())?;
        let keep: HashSet<&str> = m
            .packs
            .iter()
            .map(|p| p.name.as_str())
            .chain(m.retired.iter().map(|r| r.name.as_str()))
            .collect();
        let mut doomed: Vec<ObjectInfo> = Vec::new();
        for o in self.store().list_aged("packs/")? {
            let Some(name) = o
                .key
                .strip_prefix("packs/")
                .and_then(|k| k.strip_suffix(".pack").or_else(|| k.strip_suffix(".idx")))
            else {
                continue;
            };
            if keep.contains(name) {
                continue;
            }
            // Expired retired packs go whatever their file times say.
            if o.modified_ms > unlisted_cutoff && !expired.iter().any(|e| e == name) {
                continue;
            }
            doomed.push(o);
        }
        // Indexes before packs, so no index ever names a missing pack.
        doomed.sort_by_key(|o| (!o.key.ends_with(".idx"), o.key.clone()));
        for o in doomed {
            self.store().delete(&o.key)?;
            out.objects += 1;
            out.bytes += o.bytes;
        }
        out.temporaries = self.store().sweep_temporaries(unlisted_cutoff)?;
        Ok(out)
    }
}
