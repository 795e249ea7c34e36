//! Push and fetch end to end: round trips, incremental cost, fast-forward rules,
//! concurrent pushers, progress reports.

use super::*;
use crate::remote::push::Published;
use crate::remote::{RemoteError, PROGRESS_EVERY};
use crate::store::StoreError;
use std::collections::HashSet;
use std::sync::{Arc, Barrier};

/// A history c1 <- c2 where c2 changes one row; rows 0..3000 plus two blobs.
fn history(s: &mut MemStore) -> (Rows, Hash, Hash) {
    let mut r = rows(3000);
    r.insert(5000, "x".repeat(3000));
    r.insert(5001, "y".repeat(5000));
    let c1 = commit(s, &r, vec![], "c1");
    let mut r2 = r.clone();
    r2.insert(1234, "changed".into());
    let c2 = commit(s, &r2, vec![c1], "c2");
    (r2, c1, c2)
}

#[test]
fn push_to_empty_then_fetch_into_empty() {
    let (_d, remote) = temp_remote();
    let mut local = MemStore::new();
    let (_, _, c2) = history(&mut local);
    let want = closure(&local, c2);
    let out = remote
        .push(&local, "main", c2, false, None, &mut quiet())
        .unwrap();
    assert_eq!(
        out.chunks as usize,
        want.len(),
        "every reachable chunk is sent once"
    );
    assert_eq!(
        out.bytes as usize,
        want.values().map(Vec::len).sum::<usize>()
    );
    assert!(!out.up_to_date);
    assert_eq!(
        remote.list_refs().unwrap(),
        BTreeMap::from([("main".to_string(), c2)])
    );
    assert_eq!(assert_closed(&remote), want.len());

    let mut other = MemStore::new();
    let f = remote.fetch(&mut other, "main", &mut quiet()).unwrap();
    assert_eq!((f.head, f.chunks as usize), (c2, want.len()));
    assert_eq!(
        closure(&other, c2),
        want,
        "fetched chunks equal the pushed ones"
    );
    assert_eq!(other.len(), want.len(), "nothing else is fetched");

    // Pushing the same head again writes nothing at all.
    let objects = remote.store().list("").unwrap();
    let again = remote
        .push(&local, "main", c2, false, None, &mut quiet())
        .unwrap();
    assert!(again.up_to_date);
    assert_eq!((again.chunks, again.bytes, again.pack), (0, 0, None));
    assert_eq!(remote.store().list("").unwrap(), objects);
    // Fetching again stores nothing new.
    let f = remote.fetch(&mut other, "main", &mut quiet()).unwrap();
    assert_eq!(f.chunks, 0);
}

#[test]
fn incremental_push_and_fetch_send_only_new_chunks() {
    let (_d, remote) = temp_remote();
    let mut local = MemStore::new();
    let (_, c1, c2) = history(&mut local);
    remote
        .push(&local, "main", c1, false, None, &mut quiet())
        .unwrap();
    let mut other = MemStore::new();
    remote.fetch(&mut other, "main", &mut quiet()).unwrap();

    let out = remote
        .push(&local, "main", c2, false, None, &mut quiet())
        .unwrap();
    let old = closure(&local, c1);
    let new: Vec<_> = closure(&local, c2)
        .into_keys()
        .filter(|h| !old.contains_key(h))
        .collect();
    let root = RootValue::read(&local, &Commit::read(&local, &c2).unwrap().root).unwrap();
    let depth = prolly::depth(&local, root.tables["public.t"].tree).unwrap();
    assert!(depth >= 2, "the test tree has internal nodes");
    // One commit, one root value and one node per tree level.
    assert_eq!(out.chunks as usize, depth + 2);
    assert_eq!(out.chunks as usize, new.len());
    assert_eq!(remote.read_manifest().unwrap().packs.len(), 2);

    let f = remote.fetch(&mut other, "main", &mut quiet()).unwrap();
    assert_eq!((f.head, f.chunks as usize), (c2, new.len()));
    assert_eq!(closure(&other, c2), closure(&local, c2));
    assert_closed(&remote);
}

#[test]
fn non_fast_forward_is_refused_and_force_accepted() {
    let (_d, remote) = temp_remote();
    let mut a = MemStore::new();
    let base = commit(&mut a, &rows(50), vec![], "base");
    remote
        .push(&a, "main", base, false, None, &mut quiet())
        .unwrap();
    let mut b = MemStore::new();
    remote.fetch(&mut b, "main", &mut quiet()).unwrap();
    let ca = commit(&mut a, &rows(60), vec![base], "a");
    let cb = commit(&mut b, &rows(70), vec![base], "b");
    remote
        .push(&a, "main", ca, false, None, &mut quiet())
        .unwrap();

    let err = remote
        .push(&b, "main", cb, false, None, &mut quiet())
        .unwrap_err();
    assert!(matches!(err, RemoteError::NonFastForward { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(remote.url()) && msg.contains("main"), "{msg}");
    assert!(
        msg.contains("pull first, or push with force => true"),
        "{msg}"
    );
    // Going backwards is not a fast-forward either, even with the head at hand.
    let back = remote.push(&a, "main", base, false, None, &mut quiet());
    assert!(matches!(back, Err(RemoteError::NonFastForward { .. })));
    assert_eq!(
        remote.list_refs().unwrap()["main"],
        ca,
        "a refused push changes nothing"
    );

    let forced = remote
        .push(&b, "main", cb, true, None, &mut quiet())
        .unwrap();
    assert!(forced.chunks > 0);
    assert_eq!(remote.list_refs().unwrap()["main"], cb);
    assert_closed(&remote);
}

#[test]
fn racing_pushes_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote");
    let mut seed = MemStore::new();
    let base = commit(&mut seed, &rows(200), vec![], "base");
    Remote::new(FileStore::new(&path))
        .push(&seed, "main", base, false, None, &mut quiet())
        .unwrap();
    for round in 0..3 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                let head = remote_head(&path);
                std::thread::spawn(move || {
                    // Each thread: its own store instance and local history.
                    let remote = Remote::new(FileStore::new(&path));
                    let mut local = MemStore::new();
                    remote.fetch(&mut local, "main", &mut quiet()).unwrap();
                    let mine = commit(
                        &mut local,
                        &rows(300 + i),
                        vec![head],
                        &format!("{round}/{i}"),
                    );
                    barrier.wait();
                    (
                        mine,
                        remote.push(&local, "main", mine, false, None, &mut quiet()),
                    )
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results
            .iter()
            .filter(|r| r.1.is_ok())
            .map(|r| r.0)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, r) in &results {
            if let Err(e) = r {
                assert!(matches!(e, RemoteError::NonFastForward { .. }), "{e}");
            }
        }
        assert_eq!(remote_head(&path), winners[0]);
        assert_closed(&Remote::new(FileStore::new(&path)));
    }
}

fn remote_head(path: &std::path::Path) -> Hash {
    Remote::new(FileStore::new(path)).list_refs().unwrap()["main"]
}

#[test]
fn lost_cas_is_retried_when_still_a_fast_forward() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(100), vec![], "c1");
    let c2 = commit(&mut s, &rows(101), vec![c1], "c2");
    let d1 = commit(&mut s, &rows(102), vec![], "d1");
    // Walk and write the pack for main, then let another push move the manifest.
    let prep = remote
        .prepare(&s, "main", c2, false, None, &mut quiet())
        .unwrap()
        .unwrap();
    remote
        .push(&s, "dev", d1, false, None, &mut quiet())
        .unwrap();
    let pack = prep.pack.clone().unwrap().name;
    match remote.publish(&s, "main", c2, false, None, prep).unwrap() {
        Published::Done(out) => assert_eq!(out.pack, Some(pack.clone())),
        Published::Restart => panic!("no pack was dropped: no restart"),
    }
    let m = remote.read_manifest().unwrap();
    assert_eq!((m.refs["main"], m.refs["dev"]), (c2, d1));
    assert!(m.has_pack(&pack) && m.packs.len() == 2, "both packs listed");
    assert_closed(&remote);
}

#[test]
fn progress_is_reported_every_thousand_chunks() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    // Each commit: a commit, a root value and a one-leaf tree, all distinct.
    let mut head = commit(&mut s, &rows(1), vec![], "0");
    for i in 1..800 {
        head = commit(&mut s, &Rows::from([(i, "v".into())]), vec![head], "");
    }
    let total = closure(&s, head).len() as u64;
    assert!(total > 2 * PROGRESS_EVERY);
    for fetch in [false, true] {
        let mut reports = Vec::new();
        let mut cb = |p: Progress| reports.push(p);
        if fetch {
            remote.fetch(&mut MemStore::new(), "main", &mut cb).unwrap();
        } else {
            remote.push(&s, "main", head, false, None, &mut cb).unwrap();
        }
        let done: Vec<u64> = reports.iter().map(|p| p.chunks_done).collect();
        assert!(
            done.windows(2).all(|w| w[1] - w[0] <= PROGRESS_EVERY),
            "{done:?}"
        );
        assert_eq!(*done.last().unwrap(), total, "the last report is the total");
        assert!(reports
            .windows(2)
            .all(|w| w[0].bytes_done <= w[1].bytes_done));
    }
}

#[test]
fn branches_and_bad_heads() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(10), vec![], "c1");
    assert!(matches!(
        remote.fetch(&mut MemStore::new(), "main", &mut quiet()),
        Err(RemoteError::NoSuchBranch { .. })
    ));
    remote
        .push(&s, "main", c1, false, None, &mut quiet())
        .unwrap();
    // A second branch at a head the remote has costs no pack.
    let out = remote
        .push(&s, "feature/x", c1, false, None, &mut quiet())
        .unwrap();
    assert_eq!((out.chunks, out.pack), (0, None));
    assert_eq!(remote.list_refs().unwrap().len(), 2);
    assert_eq!(remote.read_manifest().unwrap().packs.len(), 1);
    let root = Commit::read(&s, &c1).unwrap().root;
    let not_a_commit = remote.push(&s, "main", root, true, None, &mut quiet());
    assert!(
        matches!(not_a_commit, Err(RemoteError::Local(_))),
        "{not_a_commit:?}"
    );
    let absent = crate::store::hash_of(b"absent");
    assert!(matches!(
        remote.push(&s, "main", absent, true, None, &mut quiet()),
        Err(RemoteError::Local(_))
    ));
    for bad in ["", "a\nb"] {
        assert!(matches!(
            remote.push(&s, bad, c1, false, None, &mut quiet()),
            Err(RemoteError::BadBranch { .. })
        ));
    }
    assert_eq!(remote.list_refs().unwrap()["main"], c1);
}

/// A remote at c1 (epoch 0) with c2's pack prepared but not published.
fn c2_prepared_over_c1() -> (
    tempfile::TempDir,
    Remote<FileStore>,
    MemStore,
    Hash,
    Hash,
    crate::remote::Prepared,
) {
    let (d, remote) = temp_remote();
    let mut local = MemStore::new();
    let (_, c1, c2) = history(&mut local);
    remote
        .push(&local, "main", c1, false, Some(0), &mut quiet())
        .unwrap();
    let prep = remote
        .prepare(&local, "main", c2, false, Some(0), &mut quiet())
        .unwrap()
        .expect("c2 is new");
    (d, remote, local, c1, c2, prep)
}

/// The two-step push used at COMMIT: prepare (pack written, no manifest change), then
/// publish only while the remote's head is an acceptable one and the epoch holds.
#[test]
fn prepare_then_publish_expecting() {
    let (_d, remote, local, c1, c2, prep) = c2_prepared_over_c1();
    // Prepared but not published: readers still see c1.
    assert_eq!(remote.list_refs().unwrap()["main"], c1);
    assert!(prep.pack.is_some());
    // A head outside the acceptable set is left alone.
    let only_none: HashSet<Option<Hash>> = HashSet::from([None]);
    assert!(!remote
        .publish_expecting("main", c2, Some(0), &only_none, &prep)
        .unwrap());
    assert_eq!(remote.list_refs().unwrap()["main"], c1);
    let ok: HashSet<Option<Hash>> = HashSet::from([Some(c1)]);
    assert!(remote
        .publish_expecting("main", c2, Some(0), &ok, &prep)
        .unwrap());
    assert_eq!(remote.list_refs().unwrap()["main"], c2);
    // Publishing again is a no-op success; the fetched history is complete.
    assert!(remote
        .publish_expecting("main", c2, Some(0), &ok, &prep)
        .unwrap());
    let mut copy = MemStore::new();
    remote.fetch(&mut copy, "main", &mut quiet()).unwrap();
    assert_eq!(closure(&copy, c2), closure(&local, c2));
}

#[test]
fn publish_expecting_is_refused_after_an_epoch_bump() {
    let (_d, remote, local, c1, c2, prep) = c2_prepared_over_c1();
    // A standby is promoted between the prepare and the publish.
    assert_eq!(remote.bump_epoch(0).unwrap(), 1);
    let ok: HashSet<Option<Hash>> = HashSet::from([Some(c1)]);
    let err = remote
        .publish_expecting("main", c2, Some(0), &ok, &prep)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteError::Fenced {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(remote.list_refs().unwrap()["main"], c1);
    // And a prepare against the new epoch is refused up front.
    assert!(matches!(
        remote.prepare(&local, "main", c2, false, Some(0), &mut quiet()),
        Err(RemoteError::Fenced { .. })
    ));
}

/// A diff walk meets a head this store lacks (a backup's working set, built straight
/// into the backup): it is skipped when the remote has it, and an error when nobody
/// does.
#[test]
fn a_diff_walk_skips_what_only_the_remote_has() {
    let (_d, remote) = temp_remote();
    let mut local = MemStore::new();
    let c1 = commit(&mut local, &rows(500), vec![], "one");
    remote
        .push(&local, "main", c1, false, None, &mut quiet())
        .unwrap();
    // Another writer puts c2 on the remote; this store never had it.
    let mut other = MemStore::new();
    let c2 = commit(&mut other, &rows(700), vec![], "elsewhere");
    remote
        .push(&other, "other", c2, false, None, &mut quiet())
        .unwrap();
    assert!(!local.has(&c2).unwrap());
    let m = remote.read_manifest().unwrap();
    let c3 = commit(&mut local, &rows(600), vec![c1], "three");
    let (pack, sent) = remote
        .write_missing(&local, &[c3, c2], &[c1], &m, &mut quiet())
        .unwrap();
    assert!(pack.is_some());
    assert!(sent.chunks_done > 0);
    // A head nobody has is an error, never a pack that lacks it.
    let mut ghost = MemStore::new();
    let c4 = commit(&mut ghost, &rows(10), vec![], "ghost");
    match remote.write_missing(&local, &[c4], &[c1], &m, &mut quiet()) {
        Err(crate::remote::RemoteError::Local(crate::store::StoreError::Missing(h))) => {
            assert_eq!(h, c4)
        }
        other => panic!("expected Missing, got {:?}", other.map(|(p, _)| p)),
    }
}

/// A prepared pack left waiting longer than `PREPARED_MAX_AGE_MS` is not published:
/// automatic pruning may have deleted it as unlisted debris meanwhile, so the publish
/// declines and a full push (by the worker) takes over. The remote stays as it was.
#[test]
fn a_stale_prepared_pack_is_not_published() {
    use crate::remote::PREPARED_MAX_AGE_MS;
    let (_d, remote) = temp_remote();
    let mut local = MemStore::new();
    let c1 = commit(&mut local, &rows(100), vec![], "one");
    remote
        .push(&local, "main", c1, false, None, &mut quiet())
        .unwrap();
    let c2 = commit(&mut local, &rows(120), vec![c1], "two");
    let mut prep = remote
        .prepare(&local, "main", c2, false, None, &mut quiet())
        .unwrap()
        .unwrap();
    let acceptable = std::collections::HashSet::from([Some(c1)]);
    prep.prepared_at_ms -= PREPARED_MAX_AGE_MS + 1000;
    assert!(!remote
        .publish_expecting("main", c2, None, &acceptable, &prep)
        .unwrap());
    assert_eq!(remote.list_refs().unwrap().get("main"), Some(&c1));
    prep.prepared_at_ms += PREPARED_MAX_AGE_MS + 1000;
    assert!(remote
        .publish_expecting("main", c2, None, &acceptable, &prep)
        .unwrap());
    assert_eq!(remote.list_refs().unwrap().get("main"), Some(&c2));
}

/// A deleted ref is gone from the manifest (once), the others stay, and a push makes
/// it again.
#[test]
fn a_ref_is_deleted_by_cas() {
    let (_d, remote) = temp_remote();
    let mut local = MemStore::new();
    let (_, c1, c2) = history(&mut local);
    remote
        .push(&local, "main", c2, false, None, &mut quiet())
        .unwrap();
    remote
        .push(&local, "old", c1, false, None, &mut quiet())
        .unwrap();
    assert_eq!(remote.delete_ref("old", None).unwrap(), Some(c1));
    assert_eq!(remote.delete_ref("old", None).unwrap(), None);
    assert_eq!(
        remote.list_refs().unwrap(),
        BTreeMap::from([("main".to_string(), c2)])
    );
    // A fenced writer cannot delete.
    assert!(matches!(
        remote.delete_ref("main", Some(7)),
        Err(RemoteError::Fenced { .. })
    ));
    remote
        .push(&local, "old", c1, false, None, &mut quiet())
        .unwrap();
    assert_eq!(remote.list_refs().unwrap().get("old"), Some(&c1));
}

/// A store whose copy of one chunk is damaged: verified reads say so (as `PgStore`
/// and the remote store do); unverified reads hand the damaged bytes out.
struct Damaged {
    inner: MemStore,
    bad: Hash,
    bytes: Vec<u8>,
}

impl ChunkStore for Damaged {
    fn get(&self, h: &Hash) -> crate::store::Result<crate::store::Chunk> {
        if *h == self.bad {
            return Err(StoreError::corrupt(*h, "damaged"));
        }
        self.inner.get(h)
    }
    fn has(&self, h: &Hash) -> crate::store::Result<bool> {
        self.inner.has(h)
    }
    fn put(&mut self, data: Vec<u8>) -> crate::store::Result<Hash> {
        self.inner.put(data)
    }
    fn get_many_unverified(
        &self,
        hs: &[Hash],
    ) -> crate::store::Result<Vec<Option<crate::store::Chunk>>> {
        let mut out = self.inner.get_many(hs)?;
        for (c, h) in out.iter_mut().zip(hs) {
            if *h == self.bad {
                *c = Some(self.bytes.clone().into());
            }
        }
        Ok(out)
    }
}

#[test]
fn a_damaged_local_chunk_fails_the_push_and_publishes_nothing() {
    let mut base = MemStore::new();
    let (_, c1, c2) = history(&mut base);
    // Chunks c2 has and c1 lacks: sent by both a full and an incremental push.
    let old = closure(&base, c1);
    let all: Vec<Hash> = closure(&base, c2)
        .into_keys()
        .filter(|h| !old.contains_key(h))
        .collect();
    let c2_root = crate::commit::Commit::read(&base, &c2).unwrap().root;
    let leaf = all
        .iter()
        .copied()
        .find(|h| {
            let d = base.get(h).unwrap();
            d.first().is_some_and(|t| crate::prolly::is_node_tag(*t)) && d.get(1) == Some(&0)
        })
        .expect("a leaf");
    // A flipped byte, and the bytes of another chunk (whose references differ).
    let mut flipped = base.get(&leaf).unwrap().to_vec();
    *flipped.last_mut().unwrap() ^= 1;
    let other = base.get(&c2_root).unwrap().to_vec();
    for (bad, bytes) in [(leaf, flipped), (leaf, other.clone()), (c2, other)] {
        for known_first in [false, true] {
            let (_d, remote) = temp_remote();
            let mut inner = MemStore::new();
            history(&mut inner);
            if known_first {
                remote
                    .push(&inner, "main", c1, false, None, &mut quiet())
                    .unwrap();
            }
            let before = remote.store().list("").unwrap();
            let damaged = Damaged {
                inner,
                bad,
                bytes: bytes.clone(),
            };
            let err = remote
                .push(&damaged, "main", c2, false, None, &mut quiet())
                .unwrap_err();
            match &err {
                RemoteError::Local(StoreError::Corrupt { hash, .. }) => assert_eq!(*hash, bad),
                other => panic!("expected the damaged chunk named, got {other}"),
            }
            let (m, _) = crate::remote::Manifest::read(remote.store()).unwrap();
            let want = known_first.then_some(c1);
            assert_eq!(m.refs.get("main").copied(), want, "the ref did not move");
            let after = remote.store().list("").unwrap();
            assert_eq!(after, before, "no pack left behind");
        }
    }
}
