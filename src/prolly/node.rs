//! Prolly-tree node encoding: the only place that knows the byte layout.
//!
//! Layout: `[kind][level u8][count varint]([key len varint][key]
//! [value len varint][value])*`, varints LEB128. The kind tag is `kind::NODE` or
//! `kind::SIZED_NODE`, after the tree's `Chunking`; the empty tree is always
//! `NODE`. Encoding is deterministic
//! (minimal varints, entries in the given order), so equal nodes have equal
//! hashes. `Node::decode` checks everything a reader relies on (tag, bounds,
//! minimal varints, strictly ascending keys, internal values of exactly 32
//! bytes, non-empty internal nodes, no trailing bytes) and reports violations
//! as `StoreError::Corrupt`; nothing here panics on bad input.

use super::chunker::Chunking;
use crate::store::{kind, Chunk, ChunkStore, Hash, Result, StoreError};

pub(crate) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a minimal LEB128 varint; `None` on truncation, overflow or an
/// overlong encoding (which would give one node two byte forms).
fn read_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *data.get(*pos)?;
        *pos += 1;
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return None;
            }
            return Some(v);
        }
    }
    None
}

/// Encoded size of one entry; the chunker measures nodes in these units.
pub fn entry_size(key_len: usize, value_len: usize) -> usize {
    varint_len(key_len as u64) + key_len + varint_len(value_len as u64) + value_len
}

/// The kind tag of a node of a tree cut by `chunking`.
fn tag_of(chunking: Chunking) -> u8 {
    match chunking {
        Chunking::Flat => kind::NODE,
        Chunking::Weibull => kind::SIZED_NODE,
    }
}

/// Is this chunk's kind tag a tree node's (of either rule)?
pub fn is_node_tag(tag: u8) -> bool {
    tag == kind::NODE || tag == kind::SIZED_NODE
}

/// Encode a node of a tree cut by `chunking`. Callers guarantee keys are strictly
/// ascending and, for `level > 0`, values are 32-byte child hashes. The empty
/// tree (a leaf without entries) is tagged `NODE` whatever the rule: there is one
/// empty tree.
pub fn encode_node(chunking: Chunking, level: u8, entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let body: usize = entries
        .iter()
        .map(|(k, v)| entry_size(k.len(), v.len()))
        .sum();
    let mut out = Vec::with_capacity(2 + varint_len(entries.len() as u64) + body);
    out.push(if entries.is_empty() && level == 0 {
        kind::NODE
    } else {
        tag_of(chunking)
    });
    out.push(level);
    put_varint(&mut out, entries.len() as u64);
    for (k, v) in entries {
        put_varint(&mut out, k.len() as u64);
        out.extend_from_slice(k);
        put_varint(&mut out, v.len() as u64);
        out.extend_from_slice(v);
    }
    out
}

/// Byte ranges of one entry inside the chunk.
#[derive(Clone, Copy, Debug)]
struct Span {
    key: (usize, usize),
    value: (usize, usize),
}

/// A decoded node that borrows nothing: it keeps the chunk and offsets, so
/// keys and values are read in place without copying.
#[derive(Clone, Debug)]
pub struct Node {
    hash: Hash,
    data: Chunk,
    level: u8,
    chunking: Chunking,
    spans: Vec<Span>,
}

impl Node {
    pub fn decode(hash: Hash, data: Chunk) -> Result<Node> {
        let bad = |d: &str| StoreError::corrupt(hash, format!("node: {d}"));
        if data.len() < 3 {
            return Err(bad("shorter than a header"));
        }
        let chunking = match data[0] {
            kind::NODE => Chunking::Flat,
            kind::SIZED_NODE => Chunking::Weibull,
            other => return Err(bad(&format!("kind tag {other} is not a tree node's"))),
        };
        let level = data[1];
        let mut pos = 2;
        let count = read_varint(&data, &mut pos).ok_or_else(|| bad("bad entry count"))?;
        // Every entry takes at least two bytes; this bounds the allocation.
        if count > ((data.len() - pos) / 2) as u64 {
            return Err(bad("entry count exceeds chunk size"));
        }
        if level > 0 && count == 0 {
            return Err(bad("internal node without children"));
        }
        let mut spans: Vec<Span> = Vec::with_capacity(count as usize);
        for i in 0..count {
            let key = read_field(&data, &mut pos).ok_or_else(|| bad("truncated key"))?;
            let value = read_field(&data, &mut pos).ok_or_else(|| bad("truncated value"))?;
            if level > 0 && value.1 - value.0 != 32 {
                return Err(bad(&format!("child {i} is not a 32-byte hash")));
            }
            if let Some(prev) = spans.last() {
                if data[prev.key.0..prev.key.1] >= data[key.0..key.1] {
                    return Err(bad(&format!("key {i} is not above its predecessor")));
                }
            }
            spans.push(Span { key, value });
        }
        if pos != data.len() {
            return Err(bad("trailing bytes"));
        }
        if chunking == Chunking::Weibull && level == 0 && count == 0 {
            return Err(bad("the empty tree is tagged NODE"));
        }
        Ok(Node {
            hash,
            data,
            level,
            chunking,
            spans,
        })
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    /// The rule the node's tree was cut by. The empty tree says `Flat` but has no
    /// rule of its own: edits to it build with `Chunking::CURRENT`.
    pub fn chunking(&self) -> Chunking {
        self.chunking
    }

    pub fn is_leaf(&self) -> bool {
        self.level == 0
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The encoded chunk.
    pub fn bytes(&self) -> &Chunk {
        &self.data
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i].key;
        &self.data[a..b]
    }

    pub fn value(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i].value;
        &self.data[a..b]
    }

    /// Child hash of entry `i` of an internal node.
    pub(crate) fn child(&self, i: usize) -> Hash {
        // decode() guarantees internal values are exactly 32 bytes.
        Hash::from_slice(self.value(i)).expect("internal node values are 32 bytes")
    }

    /// Index of the first entry whose key is >= `key` (`len()` if none). For
    /// an internal node this is the child whose range may contain `key`.
    pub fn search(&self, key: &[u8]) -> usize {
        self.spans
            .partition_point(|s| &self.data[s.key.0..s.key.1] < key)
    }

    /// Encoded size of entry `i` (chunker units).
    pub fn entry_size(&self, i: usize) -> usize {
        entry_size(self.key(i).len(), self.value(i).len())
    }
}

fn read_field(data: &[u8], pos: &mut usize) -> Option<(usize, usize)> {
    let len = usize::try_from(read_varint(data, pos)?).ok()?;
    let start = *pos;
    let end = start.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    *pos = end;
    Some((start, end))
}

/// Fetch and decode a node. The empty tree is known without a store: a table that
/// one side of a diff lacks (added, dropped or renamed) is compared with it, and no
/// store need hold it.
pub fn load<S: ChunkStore + ?Sized>(store: &S, hash: Hash) -> Result<Node> {
    if hash == super::empty_root() {
        return Node::decode(hash, encode_node(Chunking::Flat, 0, &[]).into());
    }
    Node::decode(hash, store.get(&hash)?)
}

/// Fetch a node that must sit at `level` (a child of a level+1 node).
pub(crate) fn load_at<S: ChunkStore + ?Sized>(store: &S, hash: Hash, level: u8) -> Result<Node> {
    at_level(load(store, hash)?, level)
}

/// Decode a node read by the caller that must sit at `level`.
pub(crate) fn decode_at(hash: Hash, data: Chunk, level: u8) -> Result<Node> {
    at_level(Node::decode(hash, data)?, level)
}

fn at_level(n: Node, level: u8) -> Result<Node> {
    let hash = n.hash();
    if n.level() != level {
        return Err(StoreError::corrupt(
            hash,
            format!("node has level {} where {level} was expected", n.level()),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hash_of;

    fn dec(bytes: Vec<u8>) -> Result<Node> {
        Node::decode(hash_of(&bytes), bytes.into())
    }

    #[test]
    fn round_trip() {
        let entries = vec![
            (b"".to_vec(), b"empty key".to_vec()),
            (b"a".to_vec(), vec![]),
            (b"b".to_vec(), vec![7u8; 300]),
            (vec![0xff; 200], b"v".to_vec()),
        ];
        let bytes = encode_node(crate::prolly::Chunking::CURRENT, 0, &entries);
        let n = dec(bytes.clone()).unwrap();
        assert_eq!((n.level(), n.len()), (0, 4));
        for (i, (k, v)) in entries.iter().enumerate() {
            assert_eq!((n.key(i), n.value(i)), (&k[..], &v[..]));
        }
        assert_eq!(&n.bytes()[..], &bytes[..]);
        assert_eq!(n.search(b"a"), 1);
        assert_eq!(n.search(b"aa"), 2);
        assert_eq!(n.search(&[0xff; 201]), 4);
        let internal = vec![(b"k".to_vec(), hash_of(b"c").0.to_vec())];
        let n = dec(encode_node(crate::prolly::Chunking::CURRENT, 3, &internal)).unwrap();
        assert_eq!((n.level(), n.child(0)), (3, hash_of(b"c")));
        assert!(dec(encode_node(crate::prolly::Chunking::CURRENT, 0, &[]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 16383, 16384, u64::MAX] {
            let mut out = vec![];
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_varint(&[0x80, 0x00], &mut 0), None, "overlong");
        assert_eq!(read_varint(&[0xff; 11], &mut 0), None, "overflow");
        assert_eq!(read_varint(&[0x80], &mut 0), None, "truncated");
    }

    fn assert_corrupt(bytes: Vec<u8>, why: &str) {
        match dec(bytes) {
            Err(StoreError::Corrupt { .. }) => {}
            other => panic!("{why}: expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn malformed_is_corrupt() {
        let good = encode_node(
            crate::prolly::Chunking::CURRENT,
            0,
            &[
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
            ],
        );
        for cut in 0..good.len() {
            assert_corrupt(good[..cut].to_vec(), &format!("truncated at {cut}"));
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_corrupt(trailing, "trailing byte");
        let mut tag = good.clone();
        tag[0] = kind::BLOB;
        assert_corrupt(tag, "wrong kind");
        assert_corrupt(
            encode_node(
                crate::prolly::Chunking::CURRENT,
                0,
                &[(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])],
            ),
            "unsorted",
        );
        assert_corrupt(
            encode_node(
                crate::prolly::Chunking::CURRENT,
                0,
                &[(b"a".to_vec(), vec![]), (b"a".to_vec(), vec![])],
            ),
            "dup",
        );
        assert_corrupt(
            encode_node(
                crate::prolly::Chunking::CURRENT,
                1,
                &[(b"a".to_vec(), vec![1; 31])],
            ),
            "short child hash",
        );
        assert_corrupt(
            encode_node(crate::prolly::Chunking::CURRENT, 1, &[]),
            "empty internal",
        );
        assert_corrupt(
            vec![kind::NODE, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],
            "huge count",
        );
        // Garbage of every small shape must never panic.
        let mut x = 12345u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    if i == 0 {
                        kind::NODE
                    } else {
                        (x >> 16) as u8
                    }
                })
                .collect();
            let _ = dec(bytes);
        }
    }
}
