//! References between chunks: what a chunk points at, so push and fetch can walk
//! from a commit to everything it needs.
//!
//! COMMIT -> its root value and parents; ROOT -> each table's tree; internal NODE
//! -> its children; leaf NODE -> the blobs of out-of-line values (`0x01` + hash);
//! BLOB -> nothing. An unknown kind is an error, not "no references": skipping
//! the references of a chunk written by a newer pgvc would silently break the
//! remote's closure invariant.

use crate::commit::{decode_tagged, Commit, RootValue};
use crate::prolly::Node;
use crate::store::{kind, Chunk, Hash, Result, StoreError};

/// Leaf value tag of an out-of-line row (see `codec::row`).
const OUT_OF_LINE: u8 = 0x01;

/// The chunks `data` (the chunk named `hash`) refers to, in a fixed order.
/// Malformed chunks are `StoreError::Corrupt` naming `hash`.
pub fn chunk_refs(hash: &Hash, data: &[u8]) -> Result<Vec<Hash>> {
    match data.first() {
        Some(&kind::COMMIT) => {
            let c: Commit = decode_tagged(kind::COMMIT, hash, data)?;
            let mut out = Vec::with_capacity(1 + c.parents.len());
            out.push(c.root);
            out.extend(c.parents);
            Ok(out)
        }
        Some(&kind::ROOT) => {
            let r: RootValue = decode_tagged(kind::ROOT, hash, data)?;
            Ok(r.tables.values().map(|t| t.tree).collect())
        }
        Some(&kind::NODE) | Some(&kind::SIZED_NODE) => node_refs(hash, data),
        Some(&kind::BLOB) => Ok(Vec::new()),
        Some(k) => Err(StoreError::corrupt(
            *hash,
            format!("unknown chunk kind {k}"),
        )),
        None => Err(StoreError::corrupt(*hash, "empty chunk")),
    }
}

fn node_refs(hash: &Hash, data: &[u8]) -> Result<Vec<Hash>> {
    let node = Node::decode(*hash, Chunk::from(data))?;
    let mut out = Vec::new();
    for i in 0..node.len() {
        let v = node.value(i);
        if !node.is_leaf() {
            // decode() checked internal values are 32-byte hashes.
            out.push(Hash::from_slice(v).expect("32-byte child hash"));
        } else if v.first() == Some(&OUT_OF_LINE) {
            let h = Hash::from_slice(&v[1..]).ok_or_else(|| {
                StoreError::corrupt(*hash, format!("entry {i}: bad blob reference"))
            })?;
            out.push(h);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prolly::encode_node;
    use crate::store::hash_of;

    fn refs(data: &[u8]) -> Result<Vec<Hash>> {
        chunk_refs(&hash_of(data), data)
    }

    #[test]
    fn every_kind() {
        let (a, b, c) = (hash_of(b"a"), hash_of(b"b"), hash_of(b"c"));
        let commit = Commit {
            root: a,
            parents: vec![b, c],
            author: "t".into(),
            message: "m".into(),
            timestamp_us: 1,
        };
        assert_eq!(refs(&commit.encode()).unwrap(), vec![a, b, c]);

        let internal = encode_node(
            crate::prolly::Chunking::CURRENT,
            1,
            &[
                (b"k1".to_vec(), b.0.to_vec()),
                (b"k2".to_vec(), c.0.to_vec()),
            ],
        );
        assert_eq!(refs(&internal).unwrap(), vec![b, c]);

        let mut blob_ref = vec![OUT_OF_LINE];
        blob_ref.extend_from_slice(&a.0);
        let leaf = encode_node(
            crate::prolly::Chunking::CURRENT,
            0,
            &[(b"1".to_vec(), vec![0x00, 0x90]), (b"2".to_vec(), blob_ref)],
        );
        assert_eq!(refs(&leaf).unwrap(), vec![a]);
        assert_eq!(refs(&[kind::BLOB, 1, 2]).unwrap(), vec![]);

        let root = RootValue::default();
        assert!(refs(&root.encode()).unwrap().is_empty());
    }

    #[test]
    fn malformed_is_corrupt() {
        let bad_blob = encode_node(
            crate::prolly::Chunking::CURRENT,
            0,
            &[(b"1".to_vec(), vec![OUT_OF_LINE, 1, 2])],
        );
        for data in [
            bad_blob,
            vec![],
            vec![99, 1],
            vec![kind::COMMIT, 0xc1],
            vec![kind::ROOT],
            vec![kind::NODE, 0],
        ] {
            match refs(&data) {
                Err(StoreError::Corrupt { hash, .. }) => assert_eq!(hash, hash_of(&data)),
                other => panic!("{data:?}: expected Corrupt, got {other:?}"),
            }
        }
    }
}
