//! Tests of push, fetch and the remote format, plus fixtures they share: small
//! table histories built in a `MemStore` (real prolly trees, root values and
//! commits) and remotes in temporary directories.

mod chunks;
mod compact;
mod crash;
mod integrity;
mod props;
mod push_fetch;
mod s3;

use super::{chunk_refs, idx_key, pack_key, FileStore, ObjectStore, PackIndex, Progress, Remote};
use crate::codec::{encode_key, encode_row, store_value, Cell, KeyKind};
use crate::commit::{Column, Commit, RootValue, TableEntry, TableSchema};
use crate::prolly;
use crate::store::{hash_of, ChunkStore, Hash, MemStore};
use std::collections::BTreeMap;

/// Rows of the one test table: id -> text; a text longer than 1 KiB becomes a blob.
pub(super) type Rows = BTreeMap<i64, String>;

pub(super) fn rows(n: i64) -> Rows {
    (0..n).map(|i| (i, format!("row number {i}"))).collect()
}

fn schema() -> TableSchema {
    let col = |name: &str, type_name: &str| Column {
        not_null: name == "id",
        ..Column::new(name, type_name)
    };
    TableSchema::new(
        vec![col("id", "bigint"), col("v", "text")],
        vec!["id".into()],
    )
}

pub(super) fn tree(s: &mut MemStore, rows: &Rows) -> Hash {
    let mut entries = Vec::with_capacity(rows.len());
    for (id, v) in rows {
        let key = encode_key(&[KeyKind::Int], &[&id.to_string()]).unwrap();
        let value = store_value(s, encode_row(&[Cell::Text(v.clone())])).unwrap();
        entries.push((key, value));
    }
    prolly::build(s, entries).unwrap()
}

/// Writes a commit of `rows` with `parents`; `msg` makes otherwise equal commits differ.
pub(super) fn commit(s: &mut MemStore, rows: &Rows, parents: Vec<Hash>, msg: &str) -> Hash {
    let t = tree(s, rows);
    let mut root = RootValue::default();
    root.tables.insert(
        "public.t".into(),
        TableEntry {
            schema: schema(),
            tree: t,
            sequences: vec![],
        },
    );
    let root = root.write(s).unwrap();
    Commit {
        root,
        parents,
        author: "test".into(),
        message: msg.into(),
        timestamp_us: 1_700_000_000_000_000,
    }
    .write(s)
    .unwrap()
}

/// Every chunk reachable from `head` in `s`, with its bytes; panics on a missing one.
pub(super) fn closure(s: &dyn ChunkStore, head: Hash) -> BTreeMap<Hash, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![head];
    while let Some(h) = todo.pop() {
        if out.contains_key(&h) {
            continue;
        }
        let data = s
            .get(&h)
            .unwrap_or_else(|e| panic!("closure of {head}: {e}"));
        todo.extend(chunk_refs(&h, &data).unwrap());
        out.insert(h, data.to_vec());
    }
    out
}

/// Every chunk in every pack the manifest lists, read straight from the packs
/// (whole-object reads, independent of fetch) and checked against its hash.
pub(super) fn remote_chunks<O: ObjectStore>(r: &Remote<O>) -> BTreeMap<Hash, Vec<u8>> {
    let m = r.read_manifest().unwrap();
    let mut out = BTreeMap::new();
    for p in &m.packs {
        let (pack, _) = r.store().get(&pack_key(&p.name)).unwrap().unwrap();
        let (idx_bytes, _) = r.store().get(&idx_key(&p.name)).unwrap().unwrap();
        let idx = PackIndex::decode(r.url(), p, &idx_bytes).unwrap();
        assert_eq!(
            hash_of(&pack),
            idx.pack_hash,
            "pack hash in the idx trailer"
        );
        for e in idx.entries() {
            let data = &pack[e.offset as usize..e.offset as usize + e.len as usize];
            assert_eq!(hash_of(data), e.hash, "chunk hash in pack {}", p.name);
            out.insert(e.hash, data.to_vec());
        }
    }
    out
}

/// Asserts the remote's closure invariant: every chunk referenced by a listed
/// chunk is listed too, and every ref's head is listed. Returns the chunk count.
pub(super) fn assert_closed<O: ObjectStore>(r: &Remote<O>) -> usize {
    let chunks = remote_chunks(r);
    for (h, data) in &chunks {
        for child in chunk_refs(h, data).unwrap() {
            assert!(
                chunks.contains_key(&child),
                "{h} refers to {child}, not on the remote"
            );
        }
    }
    for (branch, head) in r.read_manifest().unwrap().refs {
        assert!(
            chunks.contains_key(&head),
            "head of {branch} not on the remote"
        );
    }
    chunks.len()
}

pub(super) fn temp_remote() -> (tempfile::TempDir, Remote<FileStore>) {
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::new(FileStore::new(dir.path().join("remote")));
    (dir, remote)
}

pub(super) fn quiet() -> impl FnMut(Progress) {
    |_| {}
}

#[test]
fn file_store_conformance() {
    let dirs = std::cell::RefCell::new(Vec::new());
    super::testsuite::run_all(&mut || {
        let d = tempfile::tempdir().unwrap();
        let s: Box<dyn ObjectStore> = Box::new(FileStore::new(d.path().join("store")));
        dirs.borrow_mut().push(d);
        s
    });
}
