//! Fetch: bring a remote branch's head and every chunk it reaches that the local
//! store lacks.
//!
//! The walk goes breadth first so each level asks the local store once
//! (`has_many`, one query for a Postgres store) and reads the chunks it lacks
//! grouped by pack, sorted by offset, with neighbouring chunks merged into one
//! range read (few round trips on S3). Every chunk is verified against its hash
//! before it is used or stored: a corrupt, truncated or missing chunk is an error
//! naming the remote and the chunk. Chunks verified before such an error may
//! already be in the local store; the caller runs fetch in a transaction, which
//! the error aborts, and even without one such chunks are valid and harmless
//! (nothing refers to them until a ref is moved).

use super::manifest::Manifest;
use super::object::ObjectStore;
use super::pack::{pack_key, IdxEntry};
use super::walk::chunk_refs;
use super::{Progress, Remote, RemoteError, Result, PROGRESS_EVERY};
use crate::store::{hash_of, kind, ChunkStore, Hash};
use std::collections::{BTreeMap, HashSet};

/// Neighbouring chunks closer than this are read together (the gap is read too).
const MAX_GAP: u64 = 64 << 10;
/// Target size of one merged range read.
const MAX_RUN: u64 = 8 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOutcome {
    pub head: Hash,
    /// Chunks stored locally (those the local store lacked).
    pub chunks: u64,
    pub bytes: u64,
}

impl<O: ObjectStore> Remote<O> {
    /// Copies the remote's `branch` head and everything it reaches into `local`.
    /// Moving a local ref to `head` is the caller's business.
    pub fn fetch(
        &self,
        local: &mut dyn ChunkStore,
        branch: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<FetchOutcome> {
        self.check_branch(branch)?;
        let mut attempts = 0;
        loop {
            let (manifest, _) = self.manifest()?;
            self.trim_cache(&manifest);
            match self.fetch_listed(&manifest, local, branch, progress) {
                // A pack this manifest lists was deleted under us (compacted, then
                // pruned): if the manifest moved on, walk again from it. Chunks stored
                // so far are valid and skipped.
                Err(e) if attempts < 10 && pack_gone(&e) => {
                    attempts += 1;
                    if self.manifest()?.0.packs == manifest.packs {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    fn fetch_listed(
        &self,
        manifest: &Manifest,
        local: &mut dyn ChunkStore,
        branch: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<FetchOutcome> {
        let head = *manifest
            .refs
            .get(branch)
            .ok_or_else(|| RemoteError::NoSuchBranch {
                url: self.url().to_string(),
                branch: branch.to_string(),
            })?;
        let index = self.membership(manifest)?;
        let mut seen = HashSet::new();
        let mut frontier = vec![head];
        let mut report = Progress::default();
        while !frontier.is_empty() {
            frontier.retain(|h| seen.insert(*h));
            let have = local.has_many(&frontier)?;
            let mut by_pack: BTreeMap<String, Vec<IdxEntry>> = BTreeMap::new();
            for (h, _) in frontier.iter().zip(have).filter(|(_, have)| !have) {
                let (pack, entry) = index.locate(h)?.ok_or_else(|| RemoteError::MissingChunk {
                    url: self.url().to_string(),
                    chunk: *h,
                    detail: "no pack listed in the manifest holds it".into(),
                })?;
                by_pack.entry(pack.name).or_default().push(entry);
            }
            let mut next = Vec::new();
            for (pack, mut entries) in by_pack {
                entries.sort_by_key(|e| e.offset);
                for run in runs(&entries) {
                    for (entry, data) in self.read_run(&pack, run)? {
                        if entry.hash == head && data.first() != Some(&kind::COMMIT) {
                            let msg = format!("the head of {branch} is not a commit");
                            return Err(RemoteError::corrupt_chunk(self.url(), head, msg));
                        }
                        let refs = chunk_refs(&entry.hash, &data).map_err(|e| {
                            RemoteError::corrupt_chunk(self.url(), entry.hash, e.to_string())
                        })?;
                        report.chunks_done += 1;
                        report.bytes_done += data.len() as u64;
                        local.put(data)?;
                        next.extend(refs);
                        if report.chunks_done % PROGRESS_EVERY == 0 {
                            progress(report);
                        }
                    }
                }
            }
            frontier = next;
        }
        progress(report);
        Ok(FetchOutcome {
            head,
            chunks: report.chunks_done,
            bytes: report.bytes_done,
        })
    }

    /// Reads a run of offset-sorted entries of one pack with one range read and
    /// returns each chunk's verified bytes.
    fn read_run(&self, pack: &str, run: &[IdxEntry]) -> Result<Vec<(IdxEntry, Vec<u8>)>> {
        let first = run[0];
        let start = first.offset;
        let end = run
            .iter()
            .map(|e| e.offset + u64::from(e.len))
            .max()
            .unwrap_or(start);
        let key = pack_key(pack);
        let buf = self
            .store
            .get_range(&key, start, end - start)
            .map_err(|e| match e {
                RemoteError::NotFound { url, key } => RemoteError::MissingChunk {
                    url,
                    chunk: first.hash,
                    detail: format!("its pack {key} is missing"),
                },
                other => other,
            })?;
        let mut out = Vec::with_capacity(run.len());
        for e in run {
            let at = (e.offset - start) as usize;
            let Some(data) = buf.get(at..at + e.len as usize) else {
                let msg = format!("pack {key} ends before the chunk (truncated)");
                return Err(RemoteError::corrupt_chunk(self.url(), e.hash, msg));
            };
            if hash_of(data) != e.hash {
                let msg = format!(
                    "its bytes in pack {key} at offset {} hash differently",
                    e.offset
                );
                return Err(RemoteError::corrupt_chunk(self.url(), e.hash, msg));
            }
            out.push((*e, data.to_vec()));
        }
        Ok(out)
    }
}

/// Whether `e` says a listed pack or index is not there (deleted after it was listed).
pub(crate) fn pack_gone(e: &RemoteError) -> bool {
    match e {
        RemoteError::NotFound { key, .. } => key.starts_with("packs/"),
        RemoteError::MissingChunk { detail, .. } => detail.starts_with("its pack"),
        _ => false,
    }
}

/// Splits offset-sorted entries into runs worth one range read each.
fn runs(entries: &[IdxEntry]) -> Vec<&[IdxEntry]> {
    let mut out = Vec::new();
    let mut begin = 0;
    for i in 1..=entries.len() {
        let split = i == entries.len() || {
            let prev_end = entries[i - 1].offset + u64::from(entries[i - 1].len);
            let gap = entries[i].offset.saturating_sub(prev_end);
            let size = entries[i].offset + u64::from(entries[i].len) - entries[begin].offset;
            gap > MAX_GAP || size > MAX_RUN
        };
        if split {
            out.push(&entries[begin..i]);
            begin = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hash_of;

    fn e(offset: u64, len: u32) -> IdxEntry {
        IdxEntry {
            hash: hash_of(&offset.to_be_bytes()),
            offset,
            len,
        }
    }

    #[test]
    fn runs_merge_neighbours_and_cap_size() {
        let lens = |es: &[IdxEntry]| runs(es).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(&[]), Vec::<usize>::new());
        assert_eq!(lens(&[e(12, 10), e(22, 10), e(32, 5)]), vec![3]);
        assert_eq!(lens(&[e(12, 10), e(22 + MAX_GAP + 1, 10)]), vec![1, 1]);
        let big = (MAX_RUN / 2) as u32;
        assert_eq!(
            lens(&[
                e(12, big),
                e(12 + u64::from(big), big),
                e(12 + 2 * u64::from(big), 1)
            ]),
            vec![2, 1]
        );
        assert_eq!(lens(&[e(12, u32::MAX)]), vec![1]);
    }
}
