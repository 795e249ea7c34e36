//! What readers verify: corrupt, truncated or missing packs, a corrupt idx or
//! manifest are errors naming the remote and the chunk or object, never panics
//! and never bad data. Also fencing with the epoch, and I/O errors.

use super::*;
use crate::remote::{RemoteError, MANIFEST_KEY};
use std::fs;

/// A remote holding one commit; returns the pack's path and the head's idx entry.
fn pushed() -> (
    tempfile::TempDir,
    Remote<FileStore>,
    Hash,
    std::path::PathBuf,
) {
    let (d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(500), vec![], "c1");
    remote
        .push(&s, "main", c1, false, None, &mut quiet())
        .unwrap();
    let name = remote.read_manifest().unwrap().packs[0].name.clone();
    let path = remote.store().root().join(pack_key(&name));
    (d, remote, c1, path)
}

fn fresh(remote: &Remote<FileStore>) -> Remote<FileStore> {
    Remote::new(remote.store().clone())
}

#[test]
fn flipped_byte_names_the_chunk() {
    let (_d, remote, c1, path) = pushed();
    let m = remote.read_manifest().unwrap();
    let entry = remote.index(&m).unwrap().locate(&c1).unwrap().1;
    let mut bytes = fs::read(&path).unwrap();
    bytes[entry.offset as usize + 3] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    let mut local = MemStore::new();
    let err = fresh(&remote)
        .fetch(&mut local, "main", &mut quiet())
        .unwrap_err();
    match &err {
        RemoteError::CorruptChunk { chunk, url, .. } => {
            assert_eq!((chunk, url.as_str()), (&c1, remote.url()))
        }
        other => panic!("expected CorruptChunk, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&c1.to_hex()) && msg.contains(remote.url()),
        "{msg}"
    );
    assert!(
        local.is_empty(),
        "the head is read first: nothing was stored"
    );
}

#[test]
fn flipped_byte_deep_in_the_pack() {
    let (_d, remote, _, path) = pushed();
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    fs::write(&path, bytes).unwrap();
    let mut local = MemStore::new();
    let err = fresh(&remote)
        .fetch(&mut local, "main", &mut quiet())
        .unwrap_err();
    assert!(matches!(err, RemoteError::CorruptChunk { .. }), "{err}");
    // Chunks verified before the bad one may be stored; they are valid (the
    // caller's transaction discards them anyway).
    assert!(local.len() < 500);
}

#[test]
fn truncated_pack_is_an_error() {
    let (_d, remote, _, path) = pushed();
    let len = fs::metadata(&path).unwrap().len();
    for keep in [len - 1, len / 2, 12, 0] {
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(keep)
            .unwrap();
        let err = fresh(&remote)
            .fetch(&mut MemStore::new(), "main", &mut quiet())
            .unwrap_err();
        match &err {
            RemoteError::CorruptChunk { detail, .. } => {
                assert!(detail.contains("truncated"), "{err}")
            }
            other => panic!("expected CorruptChunk, got {other}"),
        }
    }
}

#[test]
fn missing_pack_or_idx_is_an_error() {
    let (_d, remote, c1, path) = pushed();
    fs::remove_file(&path).unwrap();
    let err = fresh(&remote)
        .fetch(&mut MemStore::new(), "main", &mut quiet())
        .unwrap_err();
    match &err {
        RemoteError::MissingChunk { chunk, detail, .. } => {
            assert_eq!(*chunk, c1);
            assert!(detail.contains(".pack is missing"), "{err}");
        }
        other => panic!("expected MissingChunk, got {other}"),
    }
    let name = remote.read_manifest().unwrap().packs[0].name.clone();
    fs::remove_file(remote.store().root().join(idx_key(&name))).unwrap();
    let err = fresh(&remote)
        .fetch(&mut MemStore::new(), "main", &mut quiet())
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::NotFound { ref key, .. } if key.ends_with(".idx")),
        "{err}"
    );
}

#[test]
fn corrupt_idx_and_manifest_are_errors() {
    let (_d, remote, _, _) = pushed();
    let name = remote.read_manifest().unwrap().packs[0].name.clone();
    let idx_path = remote.store().root().join(idx_key(&name));
    let good = fs::read(&idx_path).unwrap();
    let mut bad = good.clone();
    bad[20] ^= 1;
    fs::write(&idx_path, &bad).unwrap();
    let err = fresh(&remote)
        .fetch(&mut MemStore::new(), "main", &mut quiet())
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::CorruptObject { ref key, .. } if key.ends_with(".idx")),
        "{err}"
    );
    fs::write(&idx_path, &good).unwrap();

    let m_path = remote.store().root().join(MANIFEST_KEY);
    fs::write(&m_path, b"\xc1 not msgpack").unwrap();
    let err = fresh(&remote).list_refs().unwrap_err();
    assert!(
        err.to_string().contains(remote.url()) && err.to_string().contains("manifest"),
        "{err}"
    );
    let future = super::super::Manifest {
        format: 2,
        ..Default::default()
    };
    fs::write(&m_path, future.encode()).unwrap();
    let err = fresh(&remote).list_refs().unwrap_err();
    assert!(matches!(err, RemoteError::Unsupported { .. }), "{err}");
}

#[test]
fn idx_decode_rejects_bad_shapes() {
    let (_d, remote, _, _) = pushed();
    let p = remote.read_manifest().unwrap().packs[0].clone();
    let good = remote.store().get(&idx_key(&p.name)).unwrap().unwrap().0;
    assert!(PackIndex::decode(remote.url(), &p, &good).is_ok());
    let wrong_size = crate::remote::PackRef {
        bytes: p.bytes + 1,
        ..p.clone()
    };
    assert!(PackIndex::decode(remote.url(), &wrong_size, &good).is_err());
    let wrong_count = crate::remote::PackRef {
        chunks: p.chunks - 1,
        ..p.clone()
    };
    assert!(PackIndex::decode(remote.url(), &wrong_count, &good).is_err());
    for cut in [0, 5, 12, good.len() - 1] {
        assert!(PackIndex::decode(remote.url(), &p, &good[..cut]).is_err());
    }
}

#[test]
fn epoch_fences_stale_writers() {
    let (_d, remote) = temp_remote();
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(10), vec![], "c1");
    let c2 = commit(&mut s, &rows(11), vec![c1], "c2");
    let c3 = commit(&mut s, &rows(12), vec![c2], "c3");
    assert_eq!(remote.epoch().unwrap(), 0);
    remote
        .push(&s, "main", c1, false, Some(0), &mut quiet())
        .unwrap();
    // Promotion: the epoch moves by CAS; a second bump from the same epoch loses.
    assert_eq!(remote.bump_epoch(0).unwrap(), 1);
    assert!(matches!(
        remote.bump_epoch(0),
        Err(RemoteError::Fenced {
            expected: 0,
            actual: 1,
            ..
        })
    ));
    let err = remote
        .push(&s, "main", c2, false, Some(0), &mut quiet())
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
        "{err}"
    );
    assert!(err.to_string().contains(remote.url()), "{err}");
    assert_eq!(remote.list_refs().unwrap()["main"], c1);
    remote
        .push(&s, "main", c2, false, Some(1), &mut quiet())
        .unwrap();

    // Fenced between the walk and the manifest swap: the CAS catches it.
    let prep = remote
        .prepare(&s, "main", c3, false, Some(1), &mut quiet())
        .unwrap()
        .unwrap();
    assert_eq!(remote.bump_epoch(1).unwrap(), 2);
    let err = remote
        .publish(&s, "main", c3, false, Some(1), prep)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            RemoteError::Fenced {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(remote.list_refs().unwrap()["main"], c2);
    // Without an expected epoch nothing is fenced.
    remote
        .push(&s, "main", c3, false, None, &mut quiet())
        .unwrap();
    assert_eq!(remote.epoch().unwrap(), 2);
}

#[test]
fn unwritable_remote_is_an_error_not_a_panic() {
    // Tests run as root, which ignores permission bits: use a file where the
    // remote's directory should be instead.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, b"not a directory").unwrap();
    let remote = Remote::new(FileStore::new(file.join("remote")));
    let mut s = MemStore::new();
    let c1 = commit(&mut s, &rows(10), vec![], "c1");
    let err = remote
        .push(&s, "main", c1, false, None, &mut quiet())
        .unwrap_err();
    assert!(matches!(err, RemoteError::Io { .. }), "{err}");
    assert!(err.to_string().contains(remote.url()), "{err}");
    let err = remote.list_refs().unwrap_err();
    assert!(
        matches!(err, RemoteError::Io { ref key, .. } if key == MANIFEST_KEY),
        "{err}"
    );
    let err = remote.store().put_if(MANIFEST_KEY, b"x", None).unwrap_err();
    assert!(err.to_string().contains(remote.url()), "{err}");
    assert!(remote.store().put_stream().is_err());
}
