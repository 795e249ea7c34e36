//! Compaction and pruning: the packs a remote lists stay few, every ref stays
//! readable, and pushes, fetches and other compactions racing with them lose nothing.

use super::*;
use crate::remote::{compaction_plan, Manifest, ObjectInfo, Version};
use crate::remote::{ObjectWriter, Result};
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// `n` commits of a growing table, each pushed (one pack each) to `main`.
fn history(remote: &Remote<impl ObjectStore>, n: i64) -> (MemStore, Vec<Hash>) {
    let mut s = MemStore::new();
    let mut heads = Vec::new();
    let mut data = rows(50);
    for i in 0..n {
        data.insert(1000 + i, format!("commit {i}"));
        let parents = heads.last().copied().into_iter().collect();
        let h = commit(&mut s, &data, parents, &format!("c{i}"));
        remote
            .push(&s, "main", h, false, None, &mut quiet())
            .unwrap();
        heads.push(h);
    }
    (s, heads)
}

/// Fetches `main` into a new store and checks it has the whole history.
fn fetch_all(remote: &Remote<impl ObjectStore>, head: Hash, expected: &MemStore) {
    let mut fresh = MemStore::new();
    let out = remote.fetch(&mut fresh, "main", &mut quiet()).unwrap();
    assert_eq!(out.head, head);
    assert_eq!(closure(&fresh, head), closure(expected, head));
}

/// Pushes `sizes`, compacting whenever the plan says so (to the end, as `compact`
/// does); returns the bytes rewritten and the most packs listed at once.
fn simulate(sizes: &[u64], fan_in: usize) -> (u64, usize) {
    let mut packs: Vec<u64> = Vec::new();
    let (mut rewritten, mut most) = (0u64, 0usize);
    for s in sizes {
        packs.push(*s);
        while let Some(picked) = compaction_plan(&packs, fan_in) {
            assert!(picked.len() >= fan_in);
            let merged: u64 = picked.iter().map(|&i| packs[i]).sum();
            rewritten += merged;
            for i in picked.into_iter().rev() {
                packs.remove(i);
            }
            packs.push(merged);
        }
        most = most.max(packs.len());
    }
    (rewritten, most)
}

proptest! {
    /// Whatever the sizes pushed: fewer than `fan_in` packs per level, and each byte
    /// rewritten about log(total) / log(fan_in) times, not once per push (a
    /// compaction's cost per push does not grow with the history).
    #[test]
    fn the_plan_keeps_few_packs_and_rewrites_each_byte_log_times(
        sizes in proptest::collection::vec(prop_oneof![1u64..10_000, 10_000u64..5_000_000], 1..600),
        fan_in in 2usize..12,
    ) {
        let pushed: u64 = sizes.iter().sum();
        let (rewritten, most) = simulate(&sizes, fan_in);
        let levels = crate::remote::pack_level(pushed) as usize + 1;
        prop_assert!(most <= (fan_in - 1) * levels + 1, "{} packs, {} levels", most, levels);
        // Below LEVEL_UNIT everything is level 0: bytes there merge up to
        // log_fan_in(LEVEL_UNIT) extra times.
        let per_byte = levels as u64 + 17;
        prop_assert!(rewritten <= pushed * per_byte, "rewrote {} of {} pushed", rewritten, pushed);
    }
}

#[test]
fn compaction_merges_packs_and_keeps_every_chunk() {
    let (_d, remote) = temp_remote();
    let (s, heads) = history(&remote, 40);
    let before = remote_chunks(&remote);
    assert_eq!(remote.read_manifest().unwrap().packs.len(), 40);
    let out = remote.compact(8).unwrap();
    assert!(out.packs_merged >= 8, "{out:?}");
    let m = remote.read_manifest().unwrap();
    assert!(m.packs.len() < 8, "{} packs", m.packs.len());
    let retired: usize = remote
        .tombstones()
        .unwrap()
        .iter()
        .map(|(_, t)| t.names.len())
        .sum();
    assert_eq!(retired as u64, out.packs_merged);
    // The same chunks, closed under references, every ref readable.
    assert_eq!(remote_chunks(&remote), before);
    assert_closed(&remote);
    fetch_all(&remote, *heads.last().unwrap(), &s);
    // Nothing to do now.
    assert_eq!(remote.compact(8).unwrap().packs_merged, 0);
}

#[test]
fn prune_deletes_retired_and_unlisted_packs_only_after_the_grace_period() {
    let (d, remote) = temp_remote();
    let (s, heads) = history(&remote, 20);
    remote.compact(4).unwrap();
    // An orphan: a pack written by a push that never published.
    let mut other = MemStore::new();
    let orphan_head = commit(&mut other, &rows(3), vec![], "orphan");
    let m = remote.read_manifest().unwrap();
    let (orphan, _) = remote
        .write_missing(&other, &[orphan_head], &[], &m, &mut quiet())
        .unwrap();
    let orphan = orphan.unwrap();
    // A temporary file of an interrupted write.
    let tmp = d.path().join("remote/.tmp-stream-1-1");
    std::fs::write(&tmp, b"partial").unwrap();
    let files = |r: &Remote<FileStore>| r.store().list("packs/").unwrap().len();
    let all = files(&remote);
    // Within the grace period nothing goes.
    let out = remote.prune(3_600_000, Some(3_600_000)).unwrap();
    assert_eq!(out.objects, 0);
    assert_eq!(files(&remote), all);
    assert!(tmp.exists());
    // Past it: retired packs, the orphan and the temporary file go; listed ones stay.
    let out = remote.prune(0, Some(0)).unwrap();
    let m = remote.read_manifest().unwrap();
    assert!(remote.tombstones().unwrap().is_empty());
    assert_eq!(files(&remote), 2 * m.packs.len());
    assert!(out.objects >= 2 && out.bytes > 0, "{out:?}");
    assert_eq!(out.temporaries, 1);
    assert!(!tmp.exists());
    assert!(!remote
        .store()
        .list("packs/")
        .unwrap()
        .iter()
        .any(|k| k.contains(&orphan.name)));
    assert_closed(&remote);
    fetch_all(&remote, *heads.last().unwrap(), &s);
}

#[test]
fn a_push_walked_before_a_compaction_still_publishes() {
    let (_d, remote) = temp_remote();
    let (mut s, heads) = history(&remote, 10);
    let mut data = rows(50);
    data.insert(5000, "late".into());
    let late = commit(&mut s, &data, vec![*heads.last().unwrap()], "late");
    let prep = remote
        .prepare(&s, "main", late, false, None, &mut quiet())
        .unwrap()
        .unwrap();
    // Every pack the walk relied on is compacted away (and retired) meanwhile.
    assert!(remote.compact(2).unwrap().packs_merged >= 2);
    let mut acceptable = std::collections::HashSet::new();
    acceptable.insert(Some(*heads.last().unwrap()));
    assert!(remote
        .publish_expecting("main", late, None, &acceptable, &prep)
        .unwrap());
    assert_closed(&remote);
    fetch_all(&remote, late, &s);
}

/// A store that runs `before_range` once, before the first range read of a pack:
/// the reader has listed the packs and loaded their indexes by then.
struct Meddling {
    inner: FileStore,
    before_range: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl ObjectStore for Meddling {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = self.before_range.lock().unwrap().take();
        if let Some(f) = f {
            f();
        }
        self.inner.get_range(key, offset, len)
    }
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)
    }
    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>> {
        self.inner.put_stream()
    }
    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool> {
        self.inner.put_if(key, data, expected)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn list_aged(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list_aged(prefix)
    }
    fn sweep_temporaries(&self, before_ms: u64) -> Result<u64> {
        self.inner.sweep_temporaries(before_ms)
    }
}

#[test]
fn a_fetch_whose_packs_are_pruned_under_it_retries_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote");
    let writer = Remote::new(FileStore::new(&path));
    let (s, heads) = history(&writer, 12);
    let w2 = Remote::new(FileStore::new(&path));
    let reader = Remote::new(Meddling {
        inner: FileStore::new(&path),
        before_range: Mutex::new(Some(Box::new(move || {
            // Compacted and pruned with no grace at all: the worst case.
            assert!(w2.compact(2).unwrap().packs_merged >= 2);
            w2.prune(0, Some(0)).unwrap();
        }))),
    });
    fetch_all(&reader, *heads.last().unwrap(), &s);
}

/// Two compacting servers, a pusher and a fetcher on one remote at once, many
/// rounds: every round ends with a closed remote whose head fetches whole.
#[test]
fn compactions_race_pushes_fetches_and_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote");
    let pusher = Remote::new(FileStore::new(&path));
    let (mut s, mut heads) = history(&pusher, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (path, stop) = (path.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let r = Remote::new(FileStore::new(&path));
            let mut merged = 0;
            while !stop.load(Ordering::Relaxed) {
                merged += r.compact(3).unwrap().packs_merged;
                // Retired packs go after half a second; a push's unlisted pack is young.
                r.prune(500, Some(60_000)).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            merged
        }));
    }
    let fetcher = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let r = Remote::new(FileStore::new(&path));
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut local = MemStore::new();
                let out = r.fetch(&mut local, "main", &mut quiet()).unwrap();
                closure(&local, out.head);
                n += 1;
            }
            n
        })
    };
    let mut data = rows(50);
    for i in 0..60 {
        data.insert(10_000 + i, format!("racing {i}"));
        let h = commit(
            &mut s,
            &data,
            vec![*heads.last().unwrap()],
            &format!("r{i}"),
        );
        pusher
            .push(&s, "main", h, false, None, &mut quiet())
            .unwrap();
        heads.push(h);
    }
    stop.store(true, Ordering::Relaxed);
    let merged: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let fetches = fetcher.join().unwrap();
    assert!(merged > 0 && fetches > 0);
    let m: Manifest = pusher.read_manifest().unwrap();
    assert_eq!(m.refs["main"], *heads.last().unwrap());
    assert_closed(&pusher);
    fetch_all(&pusher, *heads.last().unwrap(), &s);
}

/// The index cache forgets packs compacted away, and never holds more than its limit.
#[test]
fn the_index_cache_stays_bounded() {
    let (_d, remote) = temp_remote();
    let (_s, _heads) = history(&remote, 20);
    let mut local = MemStore::new();
    remote.fetch(&mut local, "main", &mut quiet()).unwrap();
    let before = remote.cached_index_bytes();
    assert!(before > 0);
    remote.compact(4).unwrap();
    remote.prune(0, Some(3_600_000)).unwrap();
    let mut local = MemStore::new();
    remote.fetch(&mut local, "main", &mut quiet()).unwrap();
    let m = remote.read_manifest().unwrap();
    let listed: u64 = m.packs.iter().map(|p| p.chunks).sum();
    assert!(
        remote.cached_index_bytes() <= listed * 48,
        "only listed packs stay"
    );
    // A limit below one index: nothing is kept, and fetches still work.
    let small = Remote::new(FileStore::new(remote.store().root())).with_index_cache_limit(10);
    let mut local = MemStore::new();
    small.fetch(&mut local, "main", &mut quiet()).unwrap();
    assert_eq!(small.cached_index_bytes(), 0);
}

/// Range-read lookups in an index find exactly its entries.
#[test]
fn lookups_by_range_reads_find_every_entry_and_nothing_else() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let big = commit(&mut s, &rows(60_000), vec![], "big");
    remote
        .push(&s, "main", big, false, None, &mut quiet())
        .unwrap();
    let m = remote.read_manifest().unwrap();
    let index = remote.index(&m).unwrap();
    let mut n = 0;
    for p in &m.packs {
        for e in index.pack(&p.name).unwrap().entries() {
            assert_eq!(remote.lookup(p, &e.hash).unwrap(), Some(*e));
            n += 1;
        }
        for i in 0..500u32 {
            assert_eq!(remote.lookup(p, &hash_of(&i.to_be_bytes())).unwrap(), None);
        }
    }
    assert!(n > 300, "{n} entries");
}

/// A push from a fresh connection to a remote with a long history loads no big index:
/// it looks up the few chunks it walks by range reads, and the remote stays whole.
#[test]
fn a_fresh_push_loads_no_big_index() {
    let (_d, remote) = temp_remote();
    let (mut s, heads) = history(&remote, 30);
    remote.compact(2).unwrap();
    let fresh = Remote::new(FileStore::new(remote.store().root())).with_lazy_index_above(50);
    let mut data = rows(50);
    data.insert(99_999, "from a fresh connection".into());
    let h = commit(&mut s, &data, vec![*heads.last().unwrap()], "fresh");
    let out = fresh
        .push(&s, "main", h, false, None, &mut quiet())
        .unwrap();
    assert!(out.chunks > 0 && out.chunks < 10, "{out:?}");
    assert_eq!(fresh.cached_index_bytes(), 0, "no index was loaded");
    assert_closed(&remote);
    fetch_all(&remote, h, &s);
}

/// A fetch from a fresh connection of a few new chunks reads no big index either; a
/// fetch of many chunks (a clone) loads it after a few lookups.
#[test]
fn a_fresh_fetch_of_a_few_chunks_loads_no_big_index() {
    let (_d, remote) = temp_remote();
    let (mut s, heads) = history(&remote, 30);
    remote.compact(2).unwrap();
    // A reader that has everything but the newest commit.
    let mut local = MemStore::new();
    remote.fetch(&mut local, "main", &mut quiet()).unwrap();
    let mut data = rows(50);
    data.insert(77_777, "new".into());
    let h = commit(&mut s, &data, vec![*heads.last().unwrap()], "new");
    remote
        .push(&s, "main", h, false, None, &mut quiet())
        .unwrap();
    let fresh = Remote::new(FileStore::new(remote.store().root())).with_lazy_index_above(50);
    let out = fresh.fetch(&mut local, "main", &mut quiet()).unwrap();
    assert_eq!(out.head, h);
    assert!(out.chunks < 10, "{out:?}");
    // Only the new push's small pack was loaded.
    assert!(
        fresh.cached_index_bytes() < 50 * 48,
        "{} bytes of indexes",
        fresh.cached_index_bytes()
    );
    assert_eq!(closure(&local, h), closure(&s, h));
    // A clone: thousands of lookups, so the index is loaded after a few.
    let clone = Remote::new(FileStore::new(remote.store().root())).with_lazy_index_above(50);
    fetch_all(&clone, h, &s);
    assert!(clone.cached_index_bytes() > 0);
}
