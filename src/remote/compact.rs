//! Compaction and pruning: keep what a remote operation costs bounded by the size of
//! the change, not by the length of the history.
//!
//! Every push adds a pack. **Compaction** merges packs into one with one index and
//! swaps the manifest to it by the same compare-and-swap as a ref move: the merged
//! pack holds every chunk of the packs it replaces, so the manifest's chunks are the
//! same set and stay closed under references. The replaced packs are not deleted at
//! once: a *tombstone* object (`retired/<ms>-<merged>`: the replaced names, written
//! before the swap) keeps them for a grace period, so a reader that listed them keeps
//! reading; a reader that still loses a race (a pack gone under it) re-reads the
//! manifest and retries (`fetch`). A push walked against the old manifest still
//! publishes: the tombstones show that the new manifest *covers* every pack it relied
//! on (`Remote::covers`). Tombstones live outside the manifest, so the manifest every
//! commit reads and writes stays the size of the live pack list.
//!
//! Which packs merge ([`plan`]): packs have a level by size (doublings of 64 KiB);
//! when `fan_in` packs share a level they merge into one, at least `fan_in` times
//! bigger, hence log2(fan_in) levels higher. A remote then lists fewer than `fan_in`
//! packs per level, O(log size) in all, and each byte is rewritten O(log size) times
//! over its life, whatever the pattern of pushes.
//!
//! **Pruning** deletes, after a grace period: retired packs (then their tombstone),
//! packs and indexes no manifest lists (interrupted pushes, pushes whose transaction
//! rolled back, compactions that lost a race), and the backend's temporary files. The grace period protects a push that wrote its pack but has not
//! yet swapped the manifest: it must be longer than any push takes.

use super::manifest::Manifest;
use super::object::{now_ms, ObjectInfo, ObjectStore};
use super::pack::{idx_key, pack_key, PackRef, PackWriter};
use super::{Remote, RemoteError, Result, MAX_CAS_ATTEMPTS};
use crate::store::{hash_of, Hash};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// How many packs of one level a compaction merges (default).
pub const DEFAULT_FAN_IN: usize = 8;

/// Packs smaller than this are all of level 0.
pub const LEVEL_UNIT: u64 = 64 << 10;

/// Bytes read from a pack per range read while merging.
const READ_RUN: u64 = 8 << 20;

/// Prefix of the tombstones of compactions.
pub const RETIRED_PREFIX: &str = "retired/";

/// A compaction's tombstone: `names` were replaced by `into` at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub into: String,
    pub names: Vec<String>,
    pub at_ms: u64,
}

fn tombstone_key(at_ms: u64, into: &str) -> String {
    format!("{RETIRED_PREFIX}{at_ms:013}-{into}")
}

/// The time in a tombstone's key (None: not one of ours; treated as expired).
fn tombstone_time(key: &str) -> Option<u64> {
    key.strip_prefix(RETIRED_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

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
            let (m, _) = self.manifest()?;
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
        writer.finish()
    }

    /// The manifest swap of a compaction: `merged` in place of `merging`, after a
    /// tombstone naming them. `false` if one of them is no longer listed (the
    /// tombstone then names packs another compaction retired, or still-listed ones:
    /// pruning never deletes a listed pack, so it is harmless).
    fn swap_in(&self, merging: &[PackRef], merged: &PackRef) -> Result<bool> {
        let at_ms = now_ms();
        let stone = Tombstone {
            into: merged.name.clone(),
            names: merging
                .iter()
                .map(|p| p.name.clone())
                .filter(|n| *n != merged.name)
                .collect(),
            at_ms,
        };
        let mut data = Vec::new();
        rmp_serde::encode::write_named(&mut data, &stone).expect("msgpack of a tombstone");
        self.store()
            .put(&tombstone_key(at_ms, &merged.name), &data)?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = self.manifest()?;
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
            if m.write_if(self.store(), version.as_ref())? {
                return Ok(true);
            }
        }
        Err(self.contended())
    }

    /// The tombstones on the remote, oldest first (unreadable ones skipped: a
    /// tombstone only ever delays a deletion).
    pub fn tombstones(&self) -> Result<Vec<(String, Tombstone)>> {
        let mut out = Vec::new();
        for key in self.store().list(RETIRED_PREFIX)? {
            if let Some((data, _)) = self.store().get(&key)? {
                if let Ok(t) = rmp_serde::from_slice::<Tombstone>(&data) {
                    out.push((key, t));
                }
            }
        }
        Ok(out)
    }

    /// Whether manifest `m` still has every chunk of pack `name`: listed, or retired
    /// (by a tombstone) into a pack it covers, through any number of compactions. A
    /// push walked against an older manifest may publish on `m` when it covers every
    /// pack the walk relied on. Reads the tombstones only when `name` is not listed.
    pub fn covers(&self, m: &Manifest, names: &[&str]) -> Result<bool> {
        if names.iter().all(|n| m.has_pack(n)) {
            return Ok(true);
        }
        let stones = self.tombstones()?;
        // Covered: listed, or named by any tombstone whose merged pack is covered.
        fn covered(m: &Manifest, stones: &[(String, Tombstone)], name: &str, depth: usize) -> bool {
            m.has_pack(name)
                || (depth > 0
                    && stones.iter().any(|(_, t)| {
                        t.names.iter().any(|x| x == name) && covered(m, stones, &t.into, depth - 1)
                    }))
        }
        Ok(names.iter().all(|n| covered(m, &stones, n, stones.len())))
    }

    /// Deletes what no reader needs any more: packs retired (by a tombstone) more than
    /// `retired_grace_ms` ago, unless listed again, then their tombstone; and, when
    /// `unlisted_grace_ms` is given, packs and indexes no manifest lists and no young
    /// tombstone names, and the backend's temporary files, older than it (which must
    /// exceed the longest push: a push's pack is unlisted until its manifest swap).
    pub fn prune(
        &self,
        retired_grace_ms: u64,
        unlisted_grace_ms: Option<u64>,
    ) -> Result<PruneOutcome> {
        let now = now_ms();
        let cutoff = now.saturating_sub(retired_grace_ms);
        let mut out = PruneOutcome::default();
        let (m, _) = self.manifest()?;
        // A tombstone's time is in its key: only expired ones are read (and the young
        // ones when unlisted objects are swept, to spare the packs they name).
        let keys = self.store().list(RETIRED_PREFIX)?;
        let expired = |k: &String| tombstone_time(k).is_none_or(|t| t <= cutoff);
        let read = |k: &String| -> Result<Option<Tombstone>> {
            Ok(match self.store().get(k)? {
                Some((data, _)) => rmp_serde::from_slice::<Tombstone>(&data).ok(),
                None => None,
            })
        };
        // One listing of the packs serves both steps.
        let listed: Vec<ObjectInfo> = if unlisted_grace_ms.is_some() || keys.iter().any(expired) {
            self.store().list_aged("packs/")?
        } else {
            Vec::new()
        };
        let sizes: std::collections::HashMap<&str, u64> =
            listed.iter().map(|o| (o.key.as_str(), o.bytes)).collect();
        // 1. Expired tombstones: their packs (indexes first, so no index ever names a
        // missing pack), then the tombstones.
        let mut young: HashSet<String> = HashSet::new();
        let (mut idxs, mut packs, mut done) = (Vec::new(), Vec::new(), Vec::new());
        for key in &keys {
            if !expired(key) {
                if unlisted_grace_ms.is_some() {
                    if let Some(t) = read(key)? {
                        young.extend(t.names);
                    }
                }
                continue;
            }
            for name in read(key)?.map(|t| t.names).unwrap_or_default() {
                if m.has_pack(&name) {
                    continue;
                }
                for (k, list) in [(idx_key(&name), &mut idxs), (pack_key(&name), &mut packs)] {
                    if let Some(bytes) = sizes.get(k.as_str()) {
                        out.objects += 1;
                        out.bytes += bytes;
                        list.push(k);
                    }
                }
            }
            done.push(key.clone());
        }
        self.store().delete_many(&idxs)?;
        self.store().delete_many(&packs)?;
        self.store().delete_many(&done)?;
        // 2. Unlisted objects and temporaries past their grace.
        if let Some(grace) = unlisted_grace_ms {
            let unlisted_cutoff = now.saturating_sub(grace);
            let mut doomed: Vec<ObjectInfo> = Vec::new();
            let deleted: HashSet<&str> = idxs.iter().chain(&packs).map(String::as_str).collect();
            for o in listed.iter().filter(|o| !deleted.contains(o.key.as_str())) {
                let Some(name) = o
                    .key
                    .strip_prefix("packs/")
                    .and_then(|k| k.strip_suffix(".pack").or_else(|| k.strip_suffix(".idx")))
                else {
                    continue;
                };
                if m.has_pack(name) || young.contains(name) || o.modified_ms > unlisted_cutoff {
                    continue;
                }
                doomed.push(o.clone());
            }
            // Indexes before packs, so no index ever names a missing pack.
            doomed.sort_by_key(|o| (!o.key.ends_with(".idx"), o.key.clone()));
            let (idxs, packs): (Vec<ObjectInfo>, Vec<ObjectInfo>) =
                doomed.into_iter().partition(|o| o.key.ends_with(".idx"));
            for batch in [idxs, packs] {
                out.objects += batch.len() as u64;
                out.bytes += batch.iter().map(|o| o.bytes).sum::<u64>();
                let keys: Vec<String> = batch.into_iter().map(|o| o.key).collect();
                self.store().delete_many(&keys)?;
            }
            out.temporaries = self.store().sweep_temporaries(unlisted_cutoff)?;
        }
        Ok(out)
    }
}
