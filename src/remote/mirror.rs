//! Mirror: make a set of refs of a remote exactly a given map, in one manifest swap.
//!
//! A backup holds several refs that only make sense together: every branch and tag,
//! and the working set (a commit whose parent is the current branch's head). Pushed
//! one by one, an interrupted sync would leave new heads beside an old working set,
//! and a restore would set HEAD from one and the tables from the other. Here every
//! chunk the new refs reach that the remote lacks goes into one pack (written and
//! made durable first, as for a push), then one compare-and-swap of the manifest sets
//! all the refs under the mirrored prefixes at once: those in the map are set, the
//! others (deleted branches and tags, the working set of a branch no longer current)
//! are removed. Refs outside the prefixes are left alone.

use super::manifest::Manifest;
use super::object::ObjectStore;
use super::{Progress, Remote, Result, MAX_CAS_ATTEMPTS};
use crate::store::{ChunkStore, Hash};
use std::collections::BTreeMap;

/// What a mirror wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorOutcome {
    pub chunks: u64,
    pub bytes: u64,
    /// Refs under the prefixes that were removed.
    pub removed: Vec<String>,
    /// Nothing changed: every ref was already as given.
    pub up_to_date: bool,
}

impl<O: ObjectStore> Remote<O> {
    /// Sets the refs under `prefixes` to exactly `refs` (whose names must all start
    /// with one of them), forced, in one manifest swap. `local` must hold every chunk
    /// the new heads reach that the remote lacks.
    pub fn mirror(
        &self,
        local: &dyn ChunkStore,
        prefixes: &[&str],
        refs: &BTreeMap<String, Hash>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<MirrorOutcome> {
        for name in refs.keys() {
            self.check_branch(name)?;
            debug_assert!(prefixes.iter().any(|p| name.starts_with(p)));
        }
        let under = |n: &str| prefixes.iter().any(|p| n.starts_with(p));
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (base, version) = Manifest::read(self.store())?;
            let mut next = base.clone();
            next.refs.retain(|n, _| !under(n));
            next.refs.extend(refs.iter().map(|(n, h)| (n.clone(), *h)));
            let removed: Vec<String> = base
                .refs
                .keys()
                .filter(|n| under(n) && !refs.contains_key(*n))
                .cloned()
                .collect();
            if next.refs == base.refs {
                return Ok(MirrorOutcome {
                    up_to_date: true,
                    ..MirrorOutcome::default()
                });
            }
            // Step 1: one pack of everything missing below every new head.
            let roots: Vec<Hash> = refs.values().copied().collect();
            let known = super::push::known_heads(local, &base)?;
            let (pack, report) = self.write_missing(local, &roots, &known, &base, progress)?;
            // Step 2: one swap. Lost to another writer: the pack (complete against the
            // manifest walked) is listed by a later attempt or stays an unlisted orphan.
            if let Some(p) = &pack {
                next.packs.push(p.clone());
            }
            if next.write_if(self.store(), version.as_ref())? {
                return Ok(MirrorOutcome {
                    chunks: report.chunks_done,
                    bytes: report.bytes_done,
                    removed,
                    up_to_date: false,
                });
            }
        }
        Err(self.contended())
    }
}
