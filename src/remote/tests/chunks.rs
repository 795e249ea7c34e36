//! `RemoteChunkStore`: the shared chunk-store suite over a file remote (with chunks
//! still buffered, and flushed after every put so reads go to the packs), chunks
//! crossing between stores only by flush, corruption reported as `Corrupt`,
//! concurrent and interleaved flushes that keep each other's changes, and the
//! closure rule writers must keep for push to stay correct.

use super::*;
use crate::remote::{
    ObjectWriter, RemoteChunkStore, RemoteError, Result, Version, DEFAULT_FLUSH_THRESHOLD,
};
use crate::store::StoreError;
use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

fn store_at(dir: &std::path::Path) -> RemoteChunkStore<FileStore> {
    RemoteChunkStore::new(FileStore::new(dir.join("remote")))
}

/// Distinct filler chunks: `i` picks the content, `len` the size.
fn chunk(i: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new()
        .update(&i.to_be_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn suite(threshold: usize) {
    let dirs = std::cell::RefCell::new(Vec::new());
    crate::store::testsuite::run_all(&mut || {
        let d = tempfile::tempdir().unwrap();
        let s = store_at(d.path()).with_flush_threshold(threshold);
        dirs.borrow_mut().push(d);
        s
    });
}

/// Chunks stay buffered (the suite never reaches 8 MiB): reads come from memory.
#[test]
fn conformance_buffered() {
    suite(DEFAULT_FLUSH_THRESHOLD);
}

/// Flushes whenever 1000 bytes are buffered: the idempotence, large-chunk and
/// many-chunk checks then read through the index and range reads (about 300
/// flushes; flushing after every put means 2000 flushes of fsyncs, ~20 s). The
/// small checks stay buffered; `small_chunks_through_a_pack` covers them.
#[test]
fn conformance_flushing() {
    suite(1000);
}

#[test]
fn small_chunks_through_a_pack() {
    let d = tempfile::tempdir().unwrap();
    let mut w = store_at(d.path()).with_flush_threshold(0);
    let empty = w.put(Vec::new()).unwrap();
    let tiny = w.put(b"t".to_vec()).unwrap();
    assert_eq!(w.pending_chunks(), 0, "flushed at once");
    assert_eq!(w.remote().read_manifest().unwrap().packs.len(), 2);
    let r = store_at(d.path());
    assert!(r.get(&empty).unwrap().is_empty());
    assert_eq!(&*r.get(&tiny).unwrap(), b"t");
    let absent = hash_of(b"absent");
    assert_eq!(
        r.has_many(&[tiny, absent, empty]).unwrap(),
        [true, false, true]
    );
    assert!(matches!(r.get(&absent), Err(StoreError::Missing(h)) if h == absent));
}

#[test]
fn flushed_chunks_are_visible_to_a_second_store() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(50), vec![], "c1");
    remote
        .push(&s, "main", c1, false, None, &mut quiet())
        .unwrap();
    let before = remote.read_manifest().unwrap();

    let mut a = RemoteChunkStore::new(remote.store().clone());
    let b = RemoteChunkStore::new(remote.store().clone());
    assert!(b.has(&c1).unwrap(), "pushed chunks are listed");
    let hs: Vec<Hash> = (0..100).map(|i| a.put(chunk(i, 200)).unwrap()).collect();
    assert_eq!(a.put(chunk(0, 200)).unwrap(), hs[0]);
    assert_eq!(a.put(s.get(&c1).unwrap().to_vec()).unwrap(), c1);
    assert_eq!(
        (a.pending_chunks(), a.pending_bytes()),
        (100, 100 * 200),
        "repeated puts and chunks the remote lists are not buffered"
    );
    assert!(a.has(&hs[0]).unwrap() && a.has(&c1).unwrap());

    assert!(!b.has(&hs[0]).unwrap(), "not visible before the flush");
    match b.get(&hs[1]) {
        Err(StoreError::Missing(h)) => assert_eq!(h, hs[1]),
        other => panic!("expected Missing, got {other:?}"),
    }

    let pack = a.flush().unwrap().expect("a new pack");
    assert_eq!(pack.chunks, 100);
    assert_eq!((a.pending_chunks(), a.pending_bytes()), (0, 0));
    assert_eq!(a.flush().unwrap(), None, "nothing left to flush");
    let after = remote.read_manifest().unwrap();
    assert_eq!(
        (&after.refs, after.epoch),
        (&before.refs, before.epoch),
        "refs untouched"
    );
    assert_eq!(after.packs[..1], before.packs[..]);
    assert_eq!(after.packs[1], pack);

    // `b` loaded its index before the flush: the miss makes it look again.
    assert_eq!(b.has_many(&hs).unwrap(), vec![true; 100]);
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(&*b.get(h).unwrap(), &chunk(i as u64, 200)[..]);
    }
    let c = RemoteChunkStore::new(remote.store().clone());
    assert_eq!(&*c.get(&hs[99]).unwrap(), &chunk(99, 200)[..]);
    // Putting flushed chunks again writes nothing.
    a.put(chunk(5, 200)).unwrap();
    assert_eq!(a.pending_chunks(), 0);
}

#[test]
fn put_flushes_at_the_threshold() {
    let d = tempfile::tempdir().unwrap();
    let mut s = store_at(d.path()).with_flush_threshold(4096);
    let hs: Vec<Hash> = (0..200)
        .map(|i| {
            let h = s.put(chunk(i, 100)).unwrap();
            assert!(s.pending_bytes() < 4096, "buffer stays under the threshold");
            h
        })
        .collect();
    // 41 chunks of 100 bytes reach 4096: four packs, 36 chunks still buffered.
    assert_eq!(s.remote().read_manifest().unwrap().packs.len(), 4);
    assert_eq!(s.pending_chunks(), 200 - 4 * 41);
    let other = store_at(d.path());
    let seen = other.has_many(&hs).unwrap();
    assert_eq!(seen.iter().filter(|&&b| b).count(), 4 * 41);
    s.flush().unwrap();
    assert_eq!(other.has_many(&hs).unwrap(), vec![true; 200]);
}

/// One flushed pack of 10 chunks; returns the store, the hashes, and the pack's path.
fn flushed(d: &tempfile::TempDir) -> (RemoteChunkStore<FileStore>, Vec<Hash>, std::path::PathBuf) {
    let mut s = store_at(d.path());
    let hs = (0..10).map(|i| s.put(chunk(i, 1000)).unwrap()).collect();
    let pack = s.flush().unwrap().unwrap();
    let path = d.path().join("remote").join(pack_key(&pack.name));
    (s, hs, path)
}

#[test]
fn flipped_byte_in_the_pack_is_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let (s, hs, path) = flushed(&d);
    let m = s.remote().read_manifest().unwrap();
    let entry = s.remote().index(&m).unwrap().locate(&hs[3]).unwrap().1;
    let mut bytes = fs::read(&path).unwrap();
    bytes[entry.offset as usize + 7] ^= 0x10;
    fs::write(&path, bytes).unwrap();

    let fresh = store_at(d.path());
    match fresh.get(&hs[3]) {
        Err(StoreError::Corrupt { hash, detail }) => {
            assert_eq!(hash, hs[3]);
            assert!(
                detail.contains(s.url()) && detail.contains("packs/"),
                "{detail}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(fresh.has(&hs[3]).unwrap(), "still listed, only unreadable");
    assert_eq!(&*fresh.get(&hs[2]).unwrap(), &chunk(2, 1000)[..]);
}

#[test]
fn truncated_missing_and_bad_idx_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let (s, hs, path) = flushed(&d);
    let m = s.remote().read_manifest().unwrap();
    let index = s.remote().index(&m).unwrap();
    let last = *hs
        .iter()
        .max_by_key(|h| index.locate(h).unwrap().1.offset)
        .unwrap();
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    match store_at(d.path()).get(&last) {
        Err(StoreError::Corrupt { hash, detail }) => {
            assert_eq!(hash, last);
            assert!(detail.contains("truncated"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    fs::remove_file(&path).unwrap();
    match store_at(d.path()).get(&hs[0]) {
        Err(StoreError::Backend(msg)) => assert!(
            msg.contains(s.url()) && msg.contains(".pack") && msg.contains(&hs[0].to_hex()),
            "{msg}"
        ),
        other => panic!("expected Backend, got {other:?}"),
    }

    let idx = path.with_extension("idx");
    let mut bytes = fs::read(&idx).unwrap();
    bytes[20] ^= 1;
    fs::write(&idx, bytes).unwrap();
    match store_at(d.path()).has(&hs[0]) {
        Err(StoreError::Backend(msg)) => {
            assert!(msg.contains(s.url()) && msg.contains(".idx"), "{msg}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[test]
fn concurrent_flushes_all_land() {
    const ROUNDS: u64 = 10;
    const PER: u64 = 20;
    let d = tempfile::tempdir().unwrap();
    let barrier = Barrier::new(2);
    let names: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let (dir, barrier) = (d.path(), &barrier);
                scope.spawn(move || {
                    let mut s = store_at(dir);
                    let mut names = Vec::new();
                    for r in 0..ROUNDS {
                        for i in 0..PER {
                            s.put(chunk(t << 32 | r << 16 | i, 100)).unwrap();
                        }
                        // Both flush at once, so their CASes race.
                        barrier.wait();
                        names.push(s.flush().unwrap().unwrap().name);
                    }
                    names
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let reader = store_at(d.path());
    let listed: HashSet<String> = reader
        .remote()
        .read_manifest()
        .unwrap()
        .packs
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(listed.len(), (2 * ROUNDS) as usize);
    assert_eq!(listed, names.into_iter().collect::<HashSet<_>>());
    for t in 0..2u64 {
        for r in 0..ROUNDS {
            for i in 0..PER {
                let data = chunk(t << 32 | r << 16 | i, 100);
                assert_eq!(&*reader.get(&hash_of(&data)).unwrap(), &data[..]);
            }
        }
    }
}

/// A `FileStore` that runs `interfere` (once) just before its first CAS, so that
/// CAS is lost deterministically.
struct Interfering {
    inner: FileStore,
    interfere: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    cas_calls: AtomicUsize,
}

impl ObjectStore for Interfering {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)
    }
    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>> {
        self.inner.put_stream()
    }
    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool> {
        self.cas_calls.fetch_add(1, Ordering::Relaxed);
        let interfere = self.interfere.lock().unwrap().take();
        if let Some(f) = interfere {
            f();
        }
        self.inner.put_if(key, data, expected)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn list_aged(&self, prefix: &str) -> Result<Vec<crate::remote::ObjectInfo>> {
        self.inner.list_aged(prefix)
    }
    fn sweep_temporaries(&self, before_ms: u64) -> Result<u64> {
        self.inner.sweep_temporaries(before_ms)
    }
}

#[test]
fn lost_cas_keeps_the_other_writers_refs_and_packs() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(100), vec![], "c1");
    let pusher = Remote::new(remote.store().clone());
    let store = Interfering {
        inner: remote.store().clone(),
        interfere: Mutex::new(Some(Box::new(move || {
            pusher
                .push(&s, "main", c1, false, None, &mut quiet())
                .unwrap();
        }))),
        cas_calls: AtomicUsize::new(0),
    };
    let mut w = RemoteChunkStore::new(store);
    // A BLOB (no references), so the remote stays closed and `assert_closed` can decode it.
    let mut blob = vec![crate::store::kind::BLOB];
    blob.extend(chunk(1, 500));
    let h = w.put(blob).unwrap();
    let pack = w.flush().unwrap().unwrap();

    let cas_calls = w.remote().store().cas_calls.load(Ordering::Relaxed);
    assert_eq!(cas_calls, 2, "the first CAS was lost and retried");
    let m = remote.read_manifest().unwrap();
    assert_eq!(m.refs.get("main"), Some(&c1), "the push's ref is kept");
    assert_eq!(m.packs.len(), 2, "the push's pack and ours");
    assert_eq!(m.packs[1], pack);
    assert!(w.has(&c1).unwrap() && w.has(&h).unwrap());
    assert_eq!(assert_closed(&remote), closure(&w, c1).len() + 1);
}

/// Copies the closure of `head` from `src` into `dst`, every chunk after the
/// chunks it references, calling `after` after each put.
fn put_bottom_up(
    src: &MemStore,
    head: Hash,
    dst: &mut RemoteChunkStore<FileStore>,
    after: &mut dyn FnMut(&RemoteChunkStore<FileStore>),
) {
    let mut done = HashSet::new();
    let mut stack = vec![(head, false)];
    while let Some((h, children_done)) = stack.pop() {
        if done.contains(&h) {
            continue;
        }
        let data = src.get(&h).unwrap();
        if children_done {
            dst.put(data.to_vec()).unwrap();
            done.insert(h);
            after(dst);
        } else {
            stack.push((h, true));
            stack.extend(
                chunk_refs(&h, &data)
                    .unwrap()
                    .into_iter()
                    .map(|c| (c, false)),
            );
        }
    }
}

#[test]
fn bottom_up_puts_keep_the_remote_closed_and_push_trusts_it() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let mut r = rows(2000);
    r.insert(7, "x".repeat(3000)); // a blob
    let c1 = commit(&mut s, &r, vec![], "c1");
    r.insert(5000, "new".into());
    let c2 = commit(&mut s, &r, vec![c1], "c2");

    // A small threshold, so many flushes happen in the middle of the walk.
    let mut w = RemoteChunkStore::new(remote.store().clone()).with_flush_threshold(16 << 10);
    let mut flushes = 0;
    put_bottom_up(&s, c2, &mut w, &mut |w| {
        if w.pending_chunks() == 0 {
            flushes += 1;
            assert_closed(w.remote());
        }
    });
    w.flush().unwrap();
    assert!(flushes >= 3, "only {flushes} flushes");
    assert_eq!(assert_closed(&remote), closure(&s, c2).len());

    let out = remote
        .push(&s, "main", c2, false, None, &mut quiet())
        .unwrap();
    assert_eq!(
        (out.chunks, out.pack),
        (0, None),
        "push skips what is listed"
    );
    let mut local = MemStore::new();
    let fetched = Remote::new(remote.store().clone())
        .fetch(&mut local, "main", &mut quiet())
        .unwrap();
    assert_eq!(fetched.head, c2);
    assert_eq!(closure(&local, c2), closure(&s, c2));
}

/// What the closure rule prevents: a parent flushed without its children makes
/// push skip them, and a fetch then fails (it never returns partial data).
#[test]
fn parent_flushed_before_children_breaks_later_pushes() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(100), vec![], "c1");
    let mut w = RemoteChunkStore::new(remote.store().clone());
    w.put(s.get(&c1).unwrap().to_vec()).unwrap();
    w.flush().unwrap();

    let out = remote
        .push(&s, "main", c1, false, None, &mut quiet())
        .unwrap();
    assert_eq!(out.chunks, 0, "push trusted the listed commit's closure");
    let err = Remote::new(remote.store().clone())
        .fetch(&mut MemStore::new(), "main", &mut quiet())
        .unwrap_err();
    assert!(matches!(err, RemoteError::MissingChunk { .. }), "{err}");
}
