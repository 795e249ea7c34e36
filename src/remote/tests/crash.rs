//! Crash safety: a push that dies at any step leaves the remote serving its previous
//! state, readers ignore unlisted packs, and no object appears half-written under
//! its final name. Failures are injected with `Failing`, a `FileStore` wrapper.

use super::*;
use crate::remote::{ObjectWriter, RemoteError, Result, Version, MANIFEST_KEY};
use std::io;

/// Where the injected failure strikes.
#[derive(Clone, Copy, PartialEq)]
enum Fail {
    /// The streamed pack write fails once this many bytes were written.
    StreamAfter(u64),
    /// Writing the idx fails (after the pack was finished).
    Idx,
    /// The manifest CAS fails (after pack and idx were written).
    Manifest,
}

struct Failing {
    inner: FileStore,
    fail: Fail,
}

fn injected(url: &str, key: &str) -> RemoteError {
    RemoteError::io(url, key, "write", io::Error::other("injected failure"))
}

impl ObjectStore for Failing {
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
        if self.fail == Fail::Idx && key.ends_with(".idx") {
            return Err(injected(self.url(), key));
        }
        self.inner.put(key, data)
    }
    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>> {
        let inner = self.inner.put_stream()?;
        match self.fail {
            Fail::StreamAfter(limit) => Ok(Box::new(FailingWriter {
                inner,
                limit,
                fail_next: false,
            })),
            // The pack's writer also writes its idx (`finish_then_put`).
            Fail::Idx => Ok(Box::new(FailingWriter {
                inner,
                limit: u64::MAX,
                fail_next: true,
            })),
            Fail::Manifest => Ok(inner),
        }
    }
    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool> {
        if self.fail == Fail::Manifest {
            return Err(injected(self.url(), key));
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

struct FailingWriter {
    inner: Box<dyn ObjectWriter>,
    limit: u64,
    /// `finish_then_put` puts the object in place, then fails to write the next.
    fail_next: bool,
}

impl ObjectWriter for FailingWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        if self.inner.written() + data.len() as u64 > self.limit {
            return Err(injected("(test)", "(a new object)"));
        }
        self.inner.write_all(data)
    }
    fn written(&self) -> u64 {
        self.inner.written()
    }
    fn finish(self: Box<Self>, key: &str) -> Result<()> {
        self.inner.finish(key)
    }
    fn finish_then_put(self: Box<Self>, key: &str, next_key: &str, next: &[u8]) -> Result<()> {
        if self.fail_next {
            self.inner.finish(key)?;
            return Err(injected("(test)", next_key));
        }
        self.inner.finish_then_put(key, next_key, next)
    }
}

/// A remote at c1, plus c2 (one row changed) in the local store.
fn setup() -> (tempfile::TempDir, Remote<FileStore>, MemStore, Hash, Hash) {
    let (d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(2000), vec![], "c1");
    let c2 = commit(&mut s, &rows(2100), vec![c1], "c2");
    remote
        .push(&s, "main", c1, false, None, &mut quiet())
        .unwrap();
    (d, remote, s, c1, c2)
}

/// The remote still serves exactly c1, as a fresh reader sees it.
fn serves(remote: &Remote<FileStore>, head: Hash, s: &MemStore) {
    let fresh = Remote::new(remote.store().clone());
    assert_eq!(fresh.list_refs().unwrap()["main"], head);
    let mut got = MemStore::new();
    let f = fresh.fetch(&mut got, "main", &mut quiet()).unwrap();
    assert_eq!(f.head, head);
    assert_eq!(closure(&got, head), closure(s, head));
    assert_closed(&fresh);
}

#[test]
fn died_after_the_pack_before_the_manifest() {
    let (_d, remote, s, c1, c2) = setup();
    let manifest = remote.store().get(MANIFEST_KEY).unwrap().unwrap().0;
    // Steps 1 and 2 only: the process "dies" before the manifest CAS.
    let prep = remote
        .prepare(&s, "main", c2, false, None, &mut quiet())
        .unwrap()
        .unwrap();
    let orphan = prep.pack.unwrap().name;
    assert!(
        remote.store().get(&pack_key(&orphan)).unwrap().is_some(),
        "pack written"
    );
    assert!(
        remote.store().get(&idx_key(&orphan)).unwrap().is_some(),
        "idx written"
    );
    assert_eq!(
        remote.store().get(MANIFEST_KEY).unwrap().unwrap().0,
        manifest,
        "manifest untouched"
    );
    serves(&remote, c1, &s);
    let m = remote.read_manifest().unwrap();
    assert!(!m.has_pack(&orphan), "readers ignore the unlisted pack");
    assert_eq!(remote.index(&m).unwrap().entries(), closure(&s, c1).len());
    // Retrying the push writes the same content-named pack and lists it.
    let out = remote
        .push(&s, "main", c2, false, None, &mut quiet())
        .unwrap();
    assert_eq!(out.pack, Some(orphan));
    serves(&remote, c2, &s);
}

#[test]
fn died_while_writing_the_pack_leaves_no_final_object() {
    for fail in [
        Fail::StreamAfter(4000),
        Fail::StreamAfter(5),
        Fail::Idx,
        Fail::Manifest,
    ] {
        let (_d, remote, s, c1, c2) = setup();
        let before = remote.store().list("").unwrap();
        let failing = Remote::new(Failing {
            inner: remote.store().clone(),
            fail,
        });
        let err = failing
            .push(&s, "main", c2, false, None, &mut quiet())
            .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        let after = remote.store().list("").unwrap();
        match fail {
            // The pack never reached its final name; the temp file was removed.
            Fail::StreamAfter(_) => {
                assert_eq!(after, before);
                assert_eq!(hidden_files(&remote), 1, "only the lock file remains");
            }
            // The pack is durable but nothing lists it.
            Fail::Idx => assert_eq!(after.len(), before.len() + 1),
            Fail::Manifest => assert_eq!(after.len(), before.len() + 2),
        }
        serves(&remote, c1, &s);
    }
}

#[test]
fn killed_writer_leaves_only_a_hidden_temp_file() {
    let (_d, remote, s, c1, _) = setup();
    let before = remote.store().list("").unwrap();
    let mut w = remote.store().put_stream().unwrap();
    w.write_all(b"PGVCPACK half a pack").unwrap();
    // SIGKILL runs no destructors: forget the writer instead of dropping it.
    std::mem::forget(w);
    assert_eq!(remote.store().list("").unwrap(), before);
    assert_eq!(
        hidden_files(&remote),
        2,
        "the lock file and the stray temp file"
    );
    serves(&remote, c1, &s);
}

/// Files whose names start with a dot under the remote's root (never objects).
fn hidden_files(remote: &Remote<FileStore>) -> usize {
    std::fs::read_dir(remote.store().root())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

/// A writer stuck holding the remote's lock (a hung filesystem, a stopped process)
/// delays a compare-and-swap by at most its lock wait, then fails clearly; released,
/// the next one goes through.
#[test]
fn a_held_lock_times_out_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).with_lock_wait(std::time::Duration::from_millis(150));
    assert!(store.put_if("refs", b"one", None).unwrap());
    let holder = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(".lock"))
        .unwrap();
    holder.lock().unwrap();
    let current = store.get("refs").unwrap().map(|(_, v)| v);
    let started = std::time::Instant::now();
    let err = store.put_if("refs", b"two", current.as_ref()).unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(150),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(2), "{waited:?}");
    assert!(err.to_string().contains("held the remote's lock"), "{err}");
    assert_eq!(store.get("refs").unwrap().unwrap().0, b"one");
    drop(holder);
    assert!(store.put_if("refs", b"two", current.as_ref()).unwrap());
}

/// Finding 7: a backup's refs move together. An interrupted mirror (here the manifest
/// swap fails) leaves every ref as it was; a completed one sets them all at once and
/// removes the refs under its prefixes that the new map lacks.
#[test]
fn a_mirror_moves_every_ref_in_one_swap_or_none() {
    let (d, remote, s, c1, c2) = setup();
    let before = BTreeMap::from([
        ("heads/main".to_string(), c1),
        ("heads/old".to_string(), c1),
        ("working/main".to_string(), c1),
    ]);
    remote
        .mirror(&s, &["heads/", "tags/", "working/"], &before, &mut quiet())
        .unwrap();
    let after = BTreeMap::from([
        ("heads/main".to_string(), c2),
        ("tags/v1".to_string(), c1),
        ("working/main".to_string(), c2),
    ]);
    let failing = Remote::new(Failing {
        inner: remote.store().clone(),
        fail: Fail::Manifest,
    });
    failing
        .mirror(&s, &["heads/", "tags/", "working/"], &after, &mut quiet())
        .unwrap_err();
    let refs = remote.list_refs().unwrap();
    assert_eq!(refs.get("heads/main"), Some(&c1));
    assert_eq!(refs.get("working/main"), Some(&c1));
    assert_eq!(refs.get("heads/old"), Some(&c1));
    assert!(!refs.contains_key("tags/v1"));
    serves(&remote, c1, &s);

    let out = remote
        .mirror(&s, &["heads/", "tags/", "working/"], &after, &mut quiet())
        .unwrap();
    assert_eq!(out.removed, vec!["heads/old".to_string()]);
    let refs = remote.list_refs().unwrap();
    // `main` (outside the prefixes) is left alone.
    assert_eq!(refs.get("main"), Some(&c1));
    for (n, h) in &after {
        assert_eq!(refs.get(n), Some(h), "{n}");
    }
    assert_eq!(refs.len(), after.len() + 1);
    assert_closed(&remote);
    // Again: nothing to do, nothing written.
    let objects = remote.store().list("").unwrap();
    let again = remote
        .mirror(&s, &["heads/", "tags/", "working/"], &after, &mut quiet())
        .unwrap();
    assert!(again.up_to_date);
    assert_eq!(remote.store().list("").unwrap(), objects);
    drop(d);
}

#[test]
fn a_pack_writer_dropped_unfinished_leaves_nothing() {
    let (_d, remote, s, c1, _) = setup();
    let before = remote.store().list("").unwrap();
    let mut w = crate::remote::PackWriter::new(remote.store()).unwrap();
    for i in 0..1000u32 {
        let data = format!("chunk {i}").into_bytes();
        w.add(crate::store::hash_of(&data), &data).unwrap();
    }
    // An error elsewhere in the push: the writer goes away without finish().
    drop(w);
    assert_eq!(remote.store().list("").unwrap(), before);
    assert_eq!(hidden_files(&remote), 1, "only the lock file remains");
    serves(&remote, c1, &s);
}

/// Small packs are written inline at `finish`, larger ones by the writer's thread:
/// in both modes the pack and its idx hold every chunk at its offset, and one chunk
/// that does not hash to its name fails the pack, named, leaving nothing behind.
#[test]
fn a_pack_writer_checks_and_writes_inline_and_threaded() {
    use crate::remote::{PackIndex, PackWriter};
    for n in [3u32, 63, 64, 65, 1000] {
        let (_d, remote) = temp_remote();
        let chunks: Vec<(Hash, Vec<u8>)> = (0..n)
            .map(|i| {
                let data = format!("chunk {i} of {n}").into_bytes();
                (crate::store::hash_of(&data), data)
            })
            .collect();
        let mut w = PackWriter::new(remote.store()).unwrap();
        for (h, data) in &chunks {
            w.add_unverified(*h, data.clone().into()).unwrap();
        }
        let pack = w.finish().unwrap();
        assert_eq!(pack.chunks, u64::from(n));
        let idx = remote.store().get(&idx_key(&pack.name)).unwrap().unwrap().0;
        let index = PackIndex::decode(remote.url(), &pack, &idx).unwrap();
        let bytes = remote
            .store()
            .get(&pack_key(&pack.name))
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(bytes.len() as u64, pack.bytes);
        for (h, data) in &chunks {
            let e = index.get(h).expect("listed");
            let at = e.offset as usize;
            assert_eq!(&bytes[at..at + e.len as usize], data.as_slice(), "n={n}");
        }
        // One damaged chunk, early or last.
        for bad in [0, n as usize - 1] {
            let before = remote.store().list("").unwrap();
            let mut w = PackWriter::new(remote.store()).unwrap();
            let mut failed = None;
            for (i, (h, data)) in chunks.iter().enumerate() {
                let mut data = data.clone();
                if i == bad {
                    data.push(b'!');
                }
                if let Err(e) = w.add_unverified(*h, data.into()) {
                    failed = Some(e);
                    break;
                }
            }
            let err = match failed {
                Some(e) => e,
                None => w.finish().unwrap_err(),
            };
            match err {
                RemoteError::Local(crate::store::StoreError::Corrupt { hash, .. }) => {
                    assert_eq!(hash, chunks[bad].0, "n={n}")
                }
                other => panic!("n={n}: expected the damaged chunk named, got {other}"),
            }
            assert_eq!(
                remote.store().list("").unwrap(),
                before,
                "n={n}: nothing left"
            );
            assert_eq!(hidden_files(&remote), 0, "n={n}: no temporary file left");
        }
    }
}
