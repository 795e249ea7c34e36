//! The S3 store against a real S3-compatible server (moto): the `ObjectStore`
//! conformance suite, conditional writes as the server enforces them, large
//! multipart uploads, and errors that name the bucket without credentials.

use super::super::moto::Moto;
use super::super::s3::{credentials_from_file, Credentials, S3Options, S3Store, MULTIPART_ABOVE};
use super::super::{ObjectStore, RemoteError};
use std::sync::atomic::{AtomicU32, Ordering};

fn options(m: &Moto) -> S3Options {
    S3Options {
        endpoint: Some(m.endpoint()),
        ..test_options()
    }
}

/// Region, path style, test credentials and a 10 s timeout; no endpoint.
fn test_options() -> S3Options {
    S3Options {
        endpoint: None,
        region: Some("us-east-1".into()),
        force_path_style: true,
        credentials: Some(Credentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing-secret".into(),
            session_token: None,
        }),
        timeout: std::time::Duration::from_secs(10),
    }
}

fn store(m: &Moto, bucket: &str, prefix: &str) -> S3Store {
    let url = format!("s3://{bucket}/{prefix}");
    S3Store::new(&url, bucket, prefix, &options(m)).expect("an S3 store")
}

#[test]
fn s3_store_conformance() {
    let m = Moto::start();
    m.create_bucket("pgvc-suite");
    let n = AtomicU32::new(0);
    super::super::testsuite::run_all(&mut || {
        // A fresh, empty store for each check: its own prefix in one bucket.
        let p = format!("suite/{}", n.fetch_add(1, Ordering::Relaxed));
        Box::new(store(&m, "pgvc-suite", &p)) as Box<dyn ObjectStore>
    });
}

#[test]
fn the_server_refuses_a_stale_conditional_write() {
    let m = Moto::start();
    m.create_bucket("pgvc-cas");
    let s = store(&m, "pgvc-cas", "db1");
    // The probe pgvc runs before trusting a server: moto passes it.
    s.probe_conditional_writes()
        .expect("moto honours If-Match and If-None-Match");
    assert!(s.put_if("manifest", b"one", None).unwrap());
    let (_, v1) = s.get("manifest").unwrap().unwrap();
    assert!(s.put_if("manifest", b"two", Some(&v1)).unwrap());
    // The stale ETag: refused by the server itself (412), nothing written.
    assert!(!s.put_if("manifest", b"three", Some(&v1)).unwrap());
    assert_eq!(s.get("manifest").unwrap().unwrap().0, b"two");
    // A probe's object does not stay behind.
    assert!(s.list("probe/").unwrap().is_empty());
}

#[test]
fn large_streams_go_up_in_parts_and_appear_whole() {
    let m = Moto::start();
    m.create_bucket("pgvc-big");
    let s = store(&m, "pgvc-big", "");
    let size = MULTIPART_ABOVE as usize + (3 << 20) + 17;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = s.put_stream().unwrap();
    for chunk in data.chunks(1 << 20) {
        w.write_all(chunk).unwrap();
    }
    assert!(
        s.list("").unwrap().is_empty(),
        "nothing visible before finish"
    );
    w.finish("packs/big.pack").unwrap();
    let (got, _) = s.get("packs/big.pack").unwrap().unwrap();
    assert_eq!(got.len(), size);
    assert!(got == data, "the object is exactly what was streamed");
    assert_eq!(
        s.get_range("packs/big.pack", (size - 10) as u64, 100)
            .unwrap(),
        &data[size - 10..]
    );
}

#[test]
fn errors_name_the_bucket_and_hide_credentials() {
    let m = Moto::start();
    let s = store(&m, "no-such-bucket", "x");
    let e = s
        .put("manifest", b"x")
        .expect_err("a missing bucket is an error");
    let text = e.to_string();
    assert!(matches!(e, RemoteError::Store { .. }), "{e:?}");
    assert!(text.contains("no-such-bucket"), "{text}");
    assert!(!text.contains("testing-secret"), "{text}");
    // A server that is gone: an error within the timeouts, not a hang.
    let mut m = m;
    let s = store(&m, "pgvc-gone", "x");
    m.kill();
    let started = std::time::Instant::now();
    assert!(s.get("manifest").is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

#[test]
fn credentials_files_are_read_by_profile() {
    let text = "# comment\n[default]\naws_access_key_id = AKIA1\naws_secret_access_key=s1\n\
                [other]\naws_access_key_id=AKIA2\naws_secret_access_key = s2\naws_session_token = t2\n";
    let d = credentials_from_file(text, "default").unwrap();
    assert_eq!(
        (d.access_key_id.as_str(), d.secret_access_key.as_str()),
        ("AKIA1", "s1")
    );
    assert_eq!(d.session_token, None);
    let o = credentials_from_file(text, "other").unwrap();
    assert_eq!(o.session_token.as_deref(), Some("t2"));
    assert!(credentials_from_file(text, "missing").is_none());
    assert!(
        !format!("{o:?}").contains("s2"),
        "Debug never shows the secret"
    );
}

/// The shared chunk-store suite over an S3 remote, with chunks flushed into packs
/// (whose index and range reads then go to the server).
#[test]
fn s3_chunk_store_conformance() {
    let m = Moto::start();
    m.create_bucket("pgvc-chunks");
    let n = AtomicU32::new(0);
    crate::store::testsuite::run_all(&mut || {
        let p = format!("chunks/{}", n.fetch_add(1, Ordering::Relaxed));
        crate::remote::RemoteChunkStore::new(store(&m, "pgvc-chunks", &p))
            .with_flush_threshold(4000)
    });
}

/// The server killed in the middle of a push: the remote keeps its old state (its
/// manifest still names the old head), and once the server is back a retry
/// completes. moto keeps its data in memory, so "back" is a new, empty server given
/// the bucket's objects as they were before the push.
#[test]
fn a_push_cut_off_by_the_server_leaves_the_remote_as_it_was() {
    use crate::remote::{Remote, MANIFEST_KEY};
    use crate::store::MemStore;
    let mut m = Moto::start();
    m.create_bucket("pgvc-cut");
    let mut local = MemStore::default();
    let c1 = super::commit(&mut local, &super::rows(2000), vec![], "one");
    let c2 = super::commit(&mut local, &super::rows(6000), vec![c1], "two");
    let remote = Remote::new(store(&m, "pgvc-cut", "r"));
    remote
        .push(&local, "main", c1, false, None, &mut |_| {})
        .unwrap();
    let s = store(&m, "pgvc-cut", "r");
    let before: Vec<(String, Vec<u8>)> = s
        .list("")
        .unwrap()
        .into_iter()
        .map(|k| {
            let v = s.get(&k).unwrap().unwrap().0;
            (k, v)
        })
        .collect();
    // Kill the server as the push starts (at its first progress report).
    let killed = std::cell::Cell::new(false);
    let mut kill = |_: crate::remote::Progress| {
        if !killed.replace(true) {
            m.kill();
        }
    };
    let r = remote.push(&local, "main", c2, false, None, &mut kill);
    assert!(killed.get(), "the push reported progress before it wrote");
    assert!(r.is_err(), "a push to a dead server fails");
    // The server comes back with what it held before the push: the manifest still
    // names the first commit, and a retry completes.
    let m2 = Moto::start();
    m2.create_bucket("pgvc-cut");
    let s2 = store(&m2, "pgvc-cut", "r");
    for (k, v) in &before {
        s2.put(k, v).unwrap();
    }
    let remote2 = Remote::new(store(&m2, "pgvc-cut", "r"));
    assert_eq!(remote2.list_refs().unwrap().get("main"), Some(&c1));
    assert!(s2.get(MANIFEST_KEY).unwrap().is_some());
    remote2
        .push(&local, "main", c2, false, None, &mut |_| {})
        .unwrap();
    assert_eq!(remote2.list_refs().unwrap().get("main"), Some(&c2));
    assert_eq!(super::closure(&local, c2), super::remote_chunks(&remote2));
}

/// A port where connections are accepted and held open, never answered.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            match c {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
    });
    port
}

/// A server that accepts connections and never answers: every request gives up at
/// its timeout (with its retries), rather than hanging the backend.
#[test]
fn a_server_that_never_answers_times_out() {
    let port = silent_server();
    let opts = S3Options {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        timeout: std::time::Duration::from_secs(1),
        ..test_options()
    };
    let s = S3Store::new("s3://slow/x", "slow", "x", &opts).unwrap();
    let started = std::time::Instant::now();
    let e = s.get("manifest").expect_err("no answer is an error");
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_secs(1), "{took:?}");
    assert!(
        took < std::time::Duration::from_secs(30),
        "gave up in {took:?}"
    );
    assert!(e.to_string().contains("slow"), "{e}");
}

/// Counts the requests a store receives (reads, writes, lists), by wrapping it.
struct Counting<O> {
    inner: O,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Conditional reads the server answered "unchanged" (`304`).
    unchanged: std::sync::atomic::AtomicU64,
}

impl<O: ObjectStore> Counting<O> {
    fn new(inner: O) -> Counting<O> {
        Counting {
            inner,
            requests: Default::default(),
            unchanged: Default::default(),
        }
    }
}

impl<O: ObjectStore> Counting<O> {
    fn count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    fn tick(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl<O: ObjectStore> ObjectStore for Counting<O> {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn get(&self, key: &str) -> crate::remote::Result<Option<(Vec<u8>, crate::remote::Version)>> {
        self.tick();
        self.inner.get(key)
    }
    fn get_if_changed(
        &self,
        key: &str,
        known: &crate::remote::Version,
    ) -> crate::remote::Result<crate::remote::Reread> {
        self.tick();
        let r = self.inner.get_if_changed(key, known)?;
        if r == crate::remote::Reread::Unchanged {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> crate::remote::Result<Vec<u8>> {
        self.tick();
        self.inner.get_range(key, offset, len)
    }
    fn put(&self, key: &str, data: &[u8]) -> crate::remote::Result<()> {
        self.tick();
        self.inner.put(key, data)
    }
    fn put_stream(&self) -> crate::remote::Result<Box<dyn crate::remote::ObjectWriter>> {
        // One upload (a PUT, or a multipart upload of a few parts for a big pack).
        self.tick();
        Ok(Box::new(CountingWriter {
            inner: self.inner.put_stream()?,
            requests: self.requests.clone(),
        }))
    }
    fn put_if(
        &self,
        key: &str,
        data: &[u8],
        expected: Option<&crate::remote::Version>,
    ) -> crate::remote::Result<bool> {
        self.tick();
        self.inner.put_if(key, data, expected)
    }
    fn list(&self, prefix: &str) -> crate::remote::Result<Vec<String>> {
        self.tick();
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> crate::remote::Result<()> {
        self.tick();
        self.inner.delete(key)
    }
    fn list_aged(&self, prefix: &str) -> crate::remote::Result<Vec<crate::remote::ObjectInfo>> {
        self.tick();
        self.inner.list_aged(prefix)
    }
    fn sweep_temporaries(&self, before_ms: u64) -> crate::remote::Result<u64> {
        self.inner.sweep_temporaries(before_ms)
    }
}

/// A streamed upload that counts the object `finish_then_put` puts after it.
struct CountingWriter {
    inner: Box<dyn crate::remote::ObjectWriter>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl crate::remote::ObjectWriter for CountingWriter {
    fn write_all(&mut self, data: &[u8]) -> crate::remote::Result<()> {
        self.inner.write_all(data)
    }
    fn written(&self) -> u64 {
        self.inner.written()
    }
    fn finish(self: Box<Self>, key: &str) -> crate::remote::Result<()> {
        self.inner.finish(key)
    }
    fn finish_then_put(
        self: Box<Self>,
        key: &str,
        next_key: &str,
        next: &[u8],
    ) -> crate::remote::Result<()> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.finish_then_put(key, next_key, next)
    }
}

/// Requests per push and per fetch do not grow with the number of chunks: a history
/// of 100 times more rows costs the same handful of requests (one pack, one index,
/// the manifest), and a fetch reads packs by coalesced ranges.
#[test]
fn requests_per_push_and_fetch_do_not_grow_with_the_chunks() {
    use crate::remote::Remote;
    use crate::store::MemStore;
    let m = Moto::start();
    m.create_bucket("pgvc-count");
    let mut counts = Vec::new();
    for (i, n) in [(0, 500i64), (1, 50_000)] {
        let mut local = MemStore::default();
        let head = super::commit(&mut local, &super::rows(n), vec![], "rows");
        let chunks = super::closure(&local, head).len();
        let prefix = format!("count/{i}");
        let r = Remote::new(Counting::new(store(&m, "pgvc-count", &prefix)));
        r.push(&local, "main", head, false, None, &mut |_| {})
            .unwrap();
        let pushed = r.store().count();
        let mut other = MemStore::default();
        let r2 = Remote::new(Counting::new(store(&m, "pgvc-count", &prefix)));
        r2.fetch(&mut other, "main", &mut |_| {}).unwrap();
        let fetched = r2.store().count();
        assert_eq!(super::closure(&other, head).len(), chunks);
        counts.push((chunks, pushed, fetched));
    }
    let (small, big) = (counts[0], counts[1]);
    assert!(
        big.0 > 50 * small.0,
        "the big history has far more chunks: {counts:?}"
    );
    assert!(
        big.1 <= small.1 + 2,
        "push requests grew with the chunks: {counts:?}"
    );
    // (A fetch reads the packs by ranges coalesced over neighbouring chunks: a few
    // more ranges for 50 times the chunks, bounded by bytes, not chunks.)
    assert!(
        big.2 <= small.2 + 8,
        "fetch requests grew with the chunks: {counts:?}"
    );
}

/// The server answers a conditional read of an unchanged object with `304` (no
/// body), and a changed or removed one as such.
#[test]
fn a_conditional_read_is_answered_unchanged_changed_or_absent() {
    use crate::remote::Reread;
    let m = Moto::start();
    m.create_bucket("pgvc-cond");
    let s = store(&m, "pgvc-cond", "p");
    assert!(s.put_if("manifest", b"one", None).unwrap());
    let (_, v1) = s.get("manifest").unwrap().unwrap();
    assert_eq!(
        s.get_if_changed("manifest", &v1).unwrap(),
        Reread::Unchanged
    );
    assert!(s.put_if("manifest", b"two", Some(&v1)).unwrap());
    let Reread::Changed(data, v2) = s.get_if_changed("manifest", &v1).unwrap() else {
        panic!("a changed object reads as changed");
    };
    assert_eq!((data.as_slice(), v2 != v1), (&b"two"[..], true));
    assert_eq!(
        s.get_if_changed("manifest", &v2).unwrap(),
        Reread::Unchanged
    );
    s.delete("manifest").unwrap();
    assert_eq!(s.get_if_changed("manifest", &v2).unwrap(), Reread::Absent);
}

/// A standby's idle poll is one request, answered `304`: once the manifest has been
/// read, reading it again while nobody pushes moves no manifest bytes; a push is
/// seen at the next poll.
#[test]
fn an_idle_poll_is_one_conditional_get() {
    use crate::remote::Remote;
    use crate::store::MemStore;
    let m = Moto::start();
    m.create_bucket("pgvc-poll");
    let mut local = MemStore::default();
    let c1 = super::commit(&mut local, &super::rows(300), vec![], "one");
    let c2 = super::commit(&mut local, &super::rows(400), vec![c1], "two");
    let primary = Remote::new(store(&m, "pgvc-poll", "r"));
    primary
        .push(&local, "main", c1, false, None, &mut |_| {})
        .unwrap();
    let standby = Remote::new(Counting::new(store(&m, "pgvc-poll", "r")));
    assert_eq!(standby.list_refs().unwrap().get("main"), Some(&c1));
    let before = standby.store().count();
    for _ in 0..20 {
        assert_eq!(standby.list_refs().unwrap().get("main"), Some(&c1));
    }
    let c = standby.store();
    assert_eq!(c.count() - before, 20, "one request per poll");
    assert_eq!(c.unchanged.load(Ordering::Relaxed), 20, "each answered 304");
    primary
        .push(&local, "main", c2, false, None, &mut |_| {})
        .unwrap();
    assert_eq!(standby.list_refs().unwrap().get("main"), Some(&c2));
    assert_eq!(c.unchanged.load(Ordering::Relaxed), 20);
}

/// A deadline bounds every request, whatever its own timeout: a server that never
/// answers holds the caller until the deadline, not for the request timeout and its
/// retries; once the deadline is lifted, requests have their own timeout again.
#[test]
fn a_deadline_cuts_off_a_silent_server() {
    let port = silent_server();
    let opts = S3Options {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        timeout: std::time::Duration::from_secs(20),
        ..test_options()
    };
    let s = S3Store::new("s3://slow/x", "slow", "x", &opts).unwrap();
    let remote = crate::remote::Remote::new(s);
    let started = std::time::Instant::now();
    let e = {
        let _d = remote.deadline(std::time::Duration::from_millis(400));
        remote.read_manifest().expect_err("no answer is an error")
    };
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(400), "{took:?}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "gave up in {took:?}"
    );
    assert!(e.to_string().contains("deadline"), "{e}");
    assert!(e.to_string().contains("bucket slow"), "{e}");
    // Streamed uploads too.
    let mut w = remote.store().put_stream().unwrap();
    w.write_all(b"pack").unwrap();
    let started = std::time::Instant::now();
    {
        let _d = remote.deadline(std::time::Duration::from_millis(300));
        assert!(w.finish("packs/p.pack").is_err());
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Two primaries push to one `s3://` branch at the same moment, round after round:
/// exactly one wins every time (the manifest's conditional write), the other is
/// refused as not a fast-forward, and the remote holds the winner's whole history.
#[test]
fn two_pushers_racing_on_one_branch_have_one_winner_every_time() {
    use crate::remote::{Remote, RemoteError};
    use crate::store::MemStore;
    use std::sync::{Arc, Barrier};
    let m = Moto::start();
    m.create_bucket("pgvc-race");
    // One local store holds both sides' commits (each side pushes only its own).
    let mut local = MemStore::default();
    let mut base = super::commit(&mut local, &super::rows(200), vec![], "base");
    Remote::new(store(&m, "pgvc-race", "r"))
        .push(&local, "main", base, false, None, &mut |_| {})
        .unwrap();
    for round in 0..20i64 {
        // Each side commits on top of the remote's head, with different rows.
        let sides: Vec<crate::store::Hash> = (0..2i64)
            .map(|side| {
                let rows = super::rows(200 + round * 3 + side + 1);
                super::commit(&mut local, &rows, vec![base], "racer")
            })
            .collect();
        let barrier = Arc::new(Barrier::new(2));
        let local = &local;
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = sides
                .iter()
                .map(|c| {
                    let barrier = barrier.clone();
                    let remote = Remote::new(store(&m, "pgvc-race", "r"));
                    scope.spawn(move || {
                        // Both read the manifest before either writes.
                        let _ = remote.read_manifest();
                        barrier.wait();
                        remote.push(local, "main", *c, false, None, &mut |_| {})
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..2).filter(|i| results[*i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let w = winners[0];
        assert!(
            matches!(results[1 - w], Err(RemoteError::NonFastForward { .. })),
            "round {round}: the loser is refused as behind: {:?}",
            results[1 - w]
        );
        let remote = Remote::new(store(&m, "pgvc-race", "r"));
        assert_eq!(remote.list_refs().unwrap().get("main"), Some(&sides[w]));
        let mut fetched = MemStore::default();
        remote.fetch(&mut fetched, "main", &mut |_| {}).unwrap();
        assert_eq!(
            super::closure(&fetched, sides[w]),
            super::closure(local, sides[w])
        );
        base = sides[w];
    }
}

/// An incremental push is a diff against the remote's head: one changed row of a
/// 50,000-row history sends the changed path (a few chunks) in four requests (the
/// manifest, the pack, its index, the swap), whatever the remote's indexes hold: no
/// lookup per chunk, no index loaded. A fetch then has exactly the new head's closure.
#[test]
fn an_incremental_push_is_a_diff_against_the_remote_head() {
    use crate::remote::Remote;
    use crate::store::MemStore;
    let m = Moto::start();
    m.create_bucket("pgvc-diff");
    let mut local = MemStore::default();
    let mut rows = super::rows(50_000);
    let c1 = super::commit(&mut local, &rows, vec![], "one");
    Remote::new(store(&m, "pgvc-diff", "r"))
        .push(&local, "main", c1, false, None, &mut |_| {})
        .unwrap();
    rows.insert(25_000, "changed".into());
    let c2 = super::commit(&mut local, &rows, vec![c1], "two");
    let r = Remote::new(Counting::new(store(&m, "pgvc-diff", "r")));
    let out = r
        .push(&local, "main", c2, false, None, &mut |_| {})
        .unwrap();
    assert_eq!(r.store().count(), 4, "manifest, pack, index, swap");
    // The commit, its root value, and one node per level of the tree.
    assert!(out.chunks <= 8, "sent {} chunks", out.chunks);
    let mut fetched = MemStore::default();
    Remote::new(store(&m, "pgvc-diff", "r"))
        .fetch(&mut fetched, "main", &mut |_| {})
        .unwrap();
    assert_eq!(super::closure(&fetched, c2), super::closure(&local, c2));
}

/// A server that ignores conditional writes (the proxy hides `If-Match` and
/// `If-None-Match` from moto) fails the probe with a clear error; the same server
/// honouring them passes it.
#[test]
fn a_store_that_ignores_conditional_writes_is_refused() {
    use crate::remote::moto::Proxy;
    let m = Moto::start();
    m.create_bucket("pgvc-nocas");
    let proxy = Proxy::start(m.port);
    let opts = S3Options {
        endpoint: Some(proxy.endpoint()),
        ..test_options()
    };
    let s = S3Store::new("s3://pgvc-nocas/p", "pgvc-nocas", "p", &opts).unwrap();
    s.probe_conditional_writes().expect("moto honours them");
    proxy.ignore_conditional_writes();
    let e = s.probe_conditional_writes().expect_err("refused");
    assert!(
        e.to_string().contains("does not honour conditional writes"),
        "{e}"
    );
    assert!(e.to_string().contains("pgvc-nocas"), "{e}");
    // And the remote was never used unsafely: a stale replace really went through.
    assert!(s.put_if("k", b"1", None).unwrap());
    assert!(
        s.put_if("k", b"2", None).unwrap(),
        "the server ignores If-None-Match"
    );
}

/// Credentials the server does not accept: an error that says the server refused
/// them and names the bucket and the operation, never the secret; no retry loop.
#[test]
fn wrong_credentials_are_a_clear_error() {
    let m = Moto::start_checking_credentials(1);
    m.create_bucket("pgvc-creds");
    let s = store(&m, "pgvc-creds", "p");
    let started = std::time::Instant::now();
    let e = s.put_if("manifest", b"x", None).expect_err("refused");
    let text = e.to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{text}"
    );
    assert!(text.contains("pgvc-creds"), "{text}");
    assert!(text.contains("conditionally write"), "{text}");
    assert!(
        text.contains("InvalidAccessKeyId") || text.contains("403") || text.contains("Forbidden"),
        "{text}"
    );
    assert!(!text.contains("testing-secret-key"), "{text}");
    let e = s.get("manifest").expect_err("refused");
    assert!(e.to_string().contains("pgvc-creds"), "{e}");
}
