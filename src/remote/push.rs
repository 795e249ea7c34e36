//! Push: send a branch head and every chunk it reaches that the remote lacks.
//!
//! Order of writes, which is what makes a crash at any point harmless:
//! 1. the pack, streamed, made durable under its final name;
//! 2. its idx, durable;
//! 3. the manifest, by compare-and-swap, listing the pack and moving the ref.
//!
//! Until step 3 nothing refers to the new objects and readers ignore them; after
//! it, every chunk the new manifest reaches is durable. A lost CAS is retried with
//! the same pack as long as the push is still a fast-forward: the pack holds the
//! chunks missing from the manifest it was walked against, and a later manifest
//! still has all of those as long as it covers each of its packs (listed, or retired
//! into a listed pack by a compaction's tombstone). If a pack was pruned since, the push starts
//! over.

use super::manifest::Manifest;
use super::object::{ObjectStore, Version};
use super::pack::{PackRef, PackWriter};
use super::walk::chunk_refs;
use super::{Progress, Remote, RemoteError, Result, MAX_CAS_ATTEMPTS, PROGRESS_EVERY};
use crate::commit::{Commit, CommitError};
use crate::store::{Chunk, ChunkStore, Hash, StoreError};
use std::collections::HashSet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Chunks written to the remote (in the new pack).
    pub chunks: u64,
    /// Bytes of chunk data written.
    pub bytes: u64,
    /// The new pack, if any chunk had to be sent.
    pub pack: Option<String>,
    /// The remote's branch already pointed at the pushed head: nothing was done.
    pub up_to_date: bool,
}

/// How long a prepared pack may wait for its publish. It is unlisted until then, and
/// automatic pruning deletes unlisted packs older than its grace (an hour): a publish
/// older than this is left to a full push instead of listing a pack that may be gone.
pub const PREPARED_MAX_AGE_MS: u64 = 20 * 60 * 1000;

/// What `prepare` wrote: a durable pack that no manifest lists yet.
pub struct Prepared {
    /// When the pack was written (Unix milliseconds).
    pub prepared_at_ms: u64,
    pub base: Manifest,
    pub version: Option<Version>,
    pub pack: Option<PackRef>,
    pub chunks: u64,
    pub bytes: u64,
}

/// Chunks read from the local store per request during a walk: one SPI call each
/// from `vc.chunks` (about 2 MB at the mean chunk size).
const GET_BATCH: usize = 512;

pub(crate) enum Published {
    Done(PushOutcome),
    /// The manifest lost a pack our walk relied on: walk again.
    Restart,
}

impl<O: ObjectStore> Remote<O> {
    /// Makes the remote's `branch` point at `new_head`, sending the chunks it lacks.
    ///
    /// Refused with `NonFastForward` unless the remote's current head is an
    /// ancestor of `new_head` in `local` (a head `local` does not have is not), or
    /// `force`. With `expected_epoch`, refused with `Fenced` if the remote's epoch
    /// differs, checked again at every manifest swap.
    pub fn push(
        &self,
        local: &dyn ChunkStore,
        branch: &str,
        new_head: Hash,
        force: bool,
        expected_epoch: Option<u64>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PushOutcome> {
        self.check_branch(branch)?;
        commit_of(local, &new_head)?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let prep = match self.prepare(local, branch, new_head, force, expected_epoch, progress)
            {
                // A listed pack was pruned under the walk (after a compaction): again.
                Err(e) if super::fetch::pack_gone(&e) => continue,
                other => other?,
            };
            let Some(prep) = prep else {
                return Ok(PushOutcome {
                    up_to_date: true,
                    ..PushOutcome::default()
                });
            };
            match self.publish(local, branch, new_head, force, expected_epoch, prep)? {
                Published::Done(outcome) => return Ok(outcome),
                Published::Restart => continue,
            }
        }
        Err(self.contended())
    }

    /// Steps 1 and 2: checks, then writes the pack of missing chunks. `None` when
    /// the remote's branch is already at `new_head`.
    pub fn prepare(
        &self,
        local: &dyn ChunkStore,
        branch: &str,
        new_head: Hash,
        force: bool,
        expected_epoch: Option<u64>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Option<Prepared>> {
        let base = Manifest::read(&self.store)?;
        self.prepare_from(
            local,
            branch,
            new_head,
            force,
            expected_epoch,
            base,
            progress,
        )
    }

    /// `prepare` against a manifest the caller has just read (and its version): a
    /// synchronous push reads it once per commit, to check its epoch and to walk.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare_from(
        &self,
        local: &dyn ChunkStore,
        branch: &str,
        new_head: Hash,
        force: bool,
        expected_epoch: Option<u64>,
        (base, version): (Manifest, Option<Version>),
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Option<Prepared>> {
        self.trim_cache(&base);
        self.check_epoch(&base, expected_epoch)?;
        let old = base.refs.get(branch).copied();
        if old == Some(new_head) {
            return Ok(None);
        }
        if !force {
            self.check_fast_forward(local, branch, old, new_head)?;
        }
        // The remote's head of the branch, when it is an ancestor of ours (checked
        // above unless forced; an ancestor is in this store): the push is a diff
        // against it. A forced push of another line is looked up instead: a diff
        // would walk that line's history past the old head.
        let known: Vec<Hash> = match old {
            Some(o) if !force || is_ancestor(local, o, new_head)? => vec![o],
            _ => Vec::new(),
        };
        let (pack, report) = self.write_missing(local, &[new_head], &known, &base, progress)?;
        Ok(Some(Prepared {
            prepared_at_ms: super::now_ms(),
            base,
            version,
            pack,
            chunks: report.chunks_done,
            bytes: report.bytes_done,
        }))
    }

    /// Step 1 (and 2): one pack of every chunk below `roots` that the remote, as
    /// `base` lists it, lacks; durable, listed by no manifest yet. `None` when nothing
    /// is missing.
    ///
    /// `known`: commits the remote has (heads `base` lists) that `local` has too.
    /// With none, every chunk is looked up in the remote's pack indexes. With some,
    /// the walk is a diff against them instead (`Diff`): what they reach is on the
    /// remote (closure), so no index is read at all, and an incremental push costs
    /// requests for its pack, not lookups per chunk. A chunk the remote holds only
    /// through other heads may then be sent again: bytes, never a hole.
    pub fn write_missing(
        &self,
        local: &dyn ChunkStore,
        roots: &[Hash],
        known: &[Hash],
        base: &Manifest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Option<PackRef>, Progress)> {
        let mut out = PackOut {
            store: &self.store,
            writer: None,
            report: Progress::default(),
            progress,
        };
        let walked = self.walk_missing(&mut out, local, roots, known, base);
        if let Err(e) = walked {
            // The pack thread may have found a chunk corrupt that the walk then
            // stumbled over: report the cause.
            let found = out.writer.take().and_then(PackWriter::abandon);
            return Err(found.unwrap_or(e));
        }
        (out.progress)(out.report);
        let report = out.report;
        let pack = out.writer.map(PackWriter::finish).transpose()?;
        Ok((pack, report))
    }

    /// `write_missing`'s walk: every missing chunk into `out`'s pack.
    fn walk_missing(
        &self,
        out: &mut PackOut<'_, O>,
        local: &dyn ChunkStore,
        roots: &[Hash],
        known: &[Hash],
        base: &Manifest,
    ) -> Result<()> {
        if known.is_empty() {
            // Level by level, so each level's chunks are read in batches. Closure:
            // what the remote has, it has with everything below, so it is skipped
            // with its subtree.
            let index = self.membership(base)?;
            let mut seen = HashSet::new();
            let mut front: Vec<Hash> = roots.to_vec();
            while !front.is_empty() {
                let mut todo = Vec::new();
                for h in front {
                    if seen.insert(h) && !index.contains(&h)? {
                        todo.push(h);
                    }
                }
                let mut next = Vec::new();
                for batch in todo.chunks(GET_BATCH) {
                    for (h, data) in batch.iter().zip(local.get_many_unverified(batch)?) {
                        let data = data.ok_or(RemoteError::Local(StoreError::Missing(*h)))?;
                        next.extend(out.send(*h, data)?);
                    }
                }
                front = next;
            }
        } else {
            let mut diff = Diff::new(known);
            let mut sent = HashSet::new();
            let mut index = None;
            let mut front: Vec<Hash> = roots.to_vec();
            while !front.is_empty() {
                diff.advance(local, &front)?;
                let todo: Vec<Hash> = front
                    .into_iter()
                    .filter(|h| !diff.has(h) && sent.insert(*h))
                    .collect();
                let mut next = Vec::new();
                for batch in todo.chunks(GET_BATCH) {
                    for (h, data) in batch.iter().zip(local.get_many_unverified(batch)?) {
                        if let Some(data) = data {
                            next.extend(out.send(*h, data)?);
                            continue;
                        }
                        // Not here: it must be on the remote already (a backup's
                        // working set is built straight into the backup), so look.
                        let index = match &index {
                            Some(i) => i,
                            None => index.insert(self.membership(base)?),
                        };
                        if !index.contains(h)? {
                            return Err(RemoteError::Local(StoreError::Missing(*h)));
                        }
                    }
                }
                front = next;
            }
        }
        Ok(())
    }

    /// Lists `pack` in the manifest (compare-and-swap, retried on a lost race), moving
    /// no ref. The pack must be closed under references against the manifest it was
    /// written for (what `write_missing` makes): chunks then become visible to readers
    /// and to later pushes, which skip them.
    pub fn add_pack(&self, pack: &PackRef) -> Result<()> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut m, version) = Manifest::read(&self.store)?;
            if m.has_pack(&pack.name) {
                return Ok(());
            }
            m.packs.push(pack.clone());
            if m.write_if(&self.store, version.as_ref())? {
                return Ok(());
            }
        }
        Err(self.contended())
    }

    /// Step 3: the manifest CAS, retried while the push stays valid.
    pub(crate) fn publish(
        &self,
        local: &dyn ChunkStore,
        branch: &str,
        new_head: Hash,
        force: bool,
        expected_epoch: Option<u64>,
        prep: Prepared,
    ) -> Result<Published> {
        let outcome = PushOutcome {
            chunks: prep.chunks,
            bytes: prep.bytes,
            pack: prep.pack.as_ref().map(|p| p.name.clone()),
            up_to_date: false,
        };
        let (mut current, mut version) = (prep.base.clone(), prep.version);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut next = current.clone();
            next.refs.insert(branch.to_string(), new_head);
            if let Some(p) = &prep.pack {
                if !next.has_pack(&p.name) {
                    next.packs.push(p.clone());
                }
            }
            if next.write_if(&self.store, version.as_ref())? {
                return Ok(Published::Done(outcome));
            }
            let (fresh, v) = Manifest::read(&self.store)?;
            self.check_epoch(&fresh, expected_epoch)?;
            let names: Vec<&str> = prep.base.packs.iter().map(|p| p.name.as_str()).collect();
            if !self.covers(&fresh, &names)? {
                return Ok(Published::Restart);
            }
            let head = fresh.refs.get(branch).copied();
            if head == Some(new_head) {
                // Someone pushed the same head; our pack is an unlisted orphan.
                return Ok(Published::Done(outcome));
            }
            if !force {
                self.check_fast_forward(local, branch, head, new_head)?;
            }
            (current, version) = (fresh, v);
        }
        Err(self.contended())
    }

    fn check_fast_forward(
        &self,
        local: &dyn ChunkStore,
        branch: &str,
        old: Option<Hash>,
        new_head: Hash,
    ) -> Result<()> {
        match old {
            Some(old) if !is_ancestor(local, old, new_head)? => Err(RemoteError::NonFastForward {
                url: self.url().to_string(),
                branch: branch.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// The heads `m` lists that `local` has: what a walk may diff against
/// (`Remote::write_missing`'s `known`).
pub fn known_heads(local: &dyn ChunkStore, m: &Manifest) -> Result<Vec<Hash>> {
    let mut out = Vec::new();
    for h in m.refs.values() {
        if !out.contains(h) && local.has(h)? {
            out.push(*h);
        }
    }
    Ok(out)
}

/// The pack being written, and the progress of the walk.
struct PackOut<'a, O: ObjectStore> {
    store: &'a O,
    writer: Option<PackWriter>,
    report: Progress,
    progress: &'a mut dyn FnMut(Progress),
}

impl<O: ObjectStore> PackOut<'_, O> {
    /// Adds chunk `h` to the pack; returns what it refers to. `data` comes unchecked
    /// from `get_many_unverified`: the pack's thread hashes every chunk anyway (for the
    /// idx trailer), and checks it against `h` there, on the other core, before it is
    /// written; a mismatch fails the pack. The references read here are only followed
    /// (read-only) until then.
    fn send(&mut self, h: Hash, data: Chunk) -> Result<Vec<Hash>> {
        let refs = chunk_refs(&h, &data)?;
        let w = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(PackWriter::new(self.store)?),
        };
        self.report.chunks_done += 1;
        self.report.bytes_done += data.len() as u64;
        w.add_unverified(h, data)?;
        if self.report.chunks_done.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.report);
        }
        Ok(refs)
    }
}

/// What a push may skip: the chunks reachable from commits the remote has, found by
/// walking their trees level by level beside the new ones, and only where they
/// differ. Level by level, the new side's frontier is compared with the old side's:
/// an old node equal to a new one is shared with everything below it (skipped on
/// both sides); an old node that is not is opened, so that the children a changed
/// new node shares with it are recognised one level down. An unchanged region costs
/// nothing; a change costs the nodes on its paths, on both sides. Old commits are
/// opened to their root value only: their parents are on the remote, and their
/// history is not walked.
struct Diff {
    /// Old chunks seen so far: on the remote.
    seen: HashSet<Hash>,
    front: Vec<Hash>,
}

impl Diff {
    fn new(known: &[Hash]) -> Diff {
        Diff {
            seen: known.iter().copied().collect(),
            front: known.to_vec(),
        }
    }

    fn has(&self, h: &Hash) -> bool {
        self.seen.contains(h)
    }

    /// Opens the old frontier's nodes that differ from every node of the new
    /// frontier `new`; their children become the old frontier.
    fn advance(&mut self, local: &dyn ChunkStore, new: &[Hash]) -> Result<()> {
        let new: HashSet<&Hash> = new.iter().collect();
        let open: Vec<Hash> = std::mem::take(&mut self.front)
            .into_iter()
            .filter(|h| !new.contains(h))
            .collect();
        let mut next = Vec::new();
        // Verified reads: what these say is on the remote is not sent, so a corrupt
        // chunk here would leave a hole there.
        for batch in open.chunks(GET_BATCH) {
            for (h, data) in batch.iter().zip(local.get_many(batch)?) {
                // A remote head whose chunks this store lacks below it (a backup's
                // working set, built straight into the backup): nothing to learn there.
                let Some(data) = data else { continue };
                let refs = chunk_refs(h, &data)?;
                let refs = match data.first() {
                    Some(&crate::store::kind::COMMIT) => refs.into_iter().take(1).collect(),
                    _ => refs,
                };
                for c in refs {
                    if self.seen.insert(c) {
                        next.push(c);
                    }
                }
            }
        }
        self.front = next;
        Ok(())
    }
}

fn commit_of(local: &dyn ChunkStore, h: &Hash) -> Result<Commit> {
    Commit::read(local, h).map_err(|e| match e {
        CommitError::Store(s) => RemoteError::Local(s),
        other => RemoteError::Local(StoreError::corrupt(*h, other.to_string())),
    })
}

/// Is `old` `new` or one of its ancestors in `local`? A commit `local` lacks
/// cannot be one (local stores are closed under references).
pub fn is_ancestor(local: &dyn ChunkStore, old: Hash, new: Hash) -> Result<bool> {
    if !local.has(&old)? {
        return Ok(false);
    }
    let mut seen = HashSet::new();
    let mut todo = vec![new];
    while let Some(h) = todo.pop() {
        if h == old {
            return Ok(true);
        }
        if seen.insert(h) {
            todo.extend(commit_of(local, &h)?.parents);
        }
    }
    Ok(false)
}

impl<O: ObjectStore> Remote<O> {
    /// Step 3 without a local store (for a commit callback, where no query can run):
    /// moves `branch` to `new_head` only while the remote's head is one of
    /// `acceptable` (`None` = the branch does not exist) and the epoch is
    /// `expected_epoch`. `Ok(false)` when the remote moved elsewhere, or a pack the
    /// walk relied on was dropped: the caller leaves the push to a full retry.
    pub fn publish_expecting(
        &self,
        branch: &str,
        new_head: Hash,
        expected_epoch: Option<u64>,
        acceptable: &HashSet<Option<Hash>>,
        prep: &Prepared,
    ) -> Result<bool> {
        if super::now_ms().saturating_sub(prep.prepared_at_ms) > PREPARED_MAX_AGE_MS {
            // The pack may have been pruned as unlisted debris meanwhile.
            return Ok(false);
        }
        let (mut current, mut version) = (prep.base.clone(), prep.version.clone());
        for _ in 0..MAX_CAS_ATTEMPTS {
            self.check_epoch(&current, expected_epoch)?;
            let head = current.refs.get(branch).copied();
            if head == Some(new_head) {
                return Ok(true);
            }
            let names: Vec<&str> = prep.base.packs.iter().map(|p| p.name.as_str()).collect();
            if !acceptable.contains(&head) || !self.covers(&current, &names)? {
                return Ok(false);
            }
            let mut next = current.clone();
            next.refs.insert(branch.to_string(), new_head);
            if let Some(p) = &prep.pack {
                if !next.has_pack(&p.name) {
                    next.packs.push(p.clone());
                }
            }
            if next.write_if(&self.store, version.as_ref())? {
                return Ok(true);
            }
            (current, version) = Manifest::read(&self.store)?;
        }
        Err(self.contended())
    }
}
