//! Commits, root values and ref syntax: the versioned-state layer above the prolly trees.
//!
//! A **root value** maps each tracked table's schema-qualified name to its schema, the
//! root of its prolly tree and the values of its owned sequences. A **commit** names a
//! root value, its parents, an author, a message and a timestamp. Both are chunks
//! (`kind::ROOT`, `kind::COMMIT` + MessagePack), so commits form a Merkle DAG and the
//! hash of a root value is equal wherever the content is equal.
//!
//! Invariants: encodings are deterministic (BTreeMap order, no OIDs, no clocks except
//! the commit's own timestamp); decoding never panics on foreign bytes.

mod ancestry;
mod refspec;
mod value;

pub use ancestry::{log, nth_ancestor};
pub use refspec::{looks_like_hash_prefix, parse_ref, refspec_hash_prefix, RefSpec, Step};
pub use value::{
    Column, ConstraintDef, ConstraintKind, IndexDef, IndexKey, RootValue, SequenceState,
    TableEntry, TableSchema, TypeDef, FORMAT_VERSION,
};

use crate::store::{kind, ChunkStore, Hash, StoreError};
use serde::{Deserialize, Serialize};

/// One commit object. `parents` are in the order given at creation (first parent =
/// the branch that was committed on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub root: Hash,
    pub parents: Vec<Hash>,
    pub author: String,
    pub message: String,
    /// Microseconds since the Unix epoch, UTC.
    pub timestamp_us: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chunk {0} is not a commit")]
    NotACommit(Hash),
    #[error("chunk {0} is not a root value")]
    NotARoot(Hash),
    #[error("invalid ref \"{0}\": {1}")]
    BadRef(String, String),
    #[error("ref \"{0}\" goes back further than the history: {1} has no such ancestor")]
    NoAncestor(String, Hash),
}

pub type Result<T> = std::result::Result<T, CommitError>;

/// Encodes `value` as a chunk of kind `tag`.
pub(crate) fn encode_tagged<T: Serialize>(tag: u8, value: &T) -> Vec<u8> {
    let mut out = vec![tag];
    // Serializing plain structs of strings, ints and byte arrays cannot fail.
    rmp_serde::encode::write_named(&mut out, value).expect("msgpack encoding of a plain struct");
    out
}

pub(crate) fn decode_tagged<T: for<'de> Deserialize<'de>>(
    tag: u8,
    hash: &Hash,
    data: &[u8],
) -> std::result::Result<T, StoreError> {
    match data.split_first() {
        Some((t, rest)) if *t == tag => {
            rmp_serde::from_slice(rest).map_err(|e| StoreError::Corrupt {
                hash: *hash,
                detail: e.to_string(),
            })
        }
        _ => Err(StoreError::Corrupt {
            hash: *hash,
            detail: format!("expected chunk kind {tag}"),
        }),
    }
}

impl Commit {
    pub fn encode(&self) -> Vec<u8> {
        encode_tagged(kind::COMMIT, self)
    }

    pub fn write(&self, store: &mut dyn ChunkStore) -> Result<Hash> {
        Ok(store.put(self.encode())?)
    }

    /// Reads the commit `hash`; a chunk of another kind is `NotACommit`.
    pub fn read(store: &dyn ChunkStore, hash: &Hash) -> Result<Commit> {
        let data = store.get(hash)?;
        if data.first() != Some(&kind::COMMIT) {
            return Err(CommitError::NotACommit(*hash));
        }
        Ok(decode_tagged(kind::COMMIT, hash, &data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn commit_round_trip_and_kind_check() {
        let mut s = MemStore::default();
        let root = RootValue::default().write(&mut s).unwrap();
        let c = Commit {
            root,
            parents: vec![],
            author: "alice".into(),
            message: "first".into(),
            timestamp_us: 1_700_000_000_000_000,
        };
        let h = c.write(&mut s).unwrap();
        assert_eq!(Commit::read(&s, &h).unwrap(), c);
        assert!(matches!(
            Commit::read(&s, &root),
            Err(CommitError::NotACommit(_))
        ));
        // Same content, same hash.
        assert_eq!(c.write(&mut s).unwrap(), h);
    }

    #[test]
    fn corrupt_commit_is_an_error_not_a_panic() {
        let mut s = MemStore::default();
        let h = s.put(vec![kind::COMMIT, 0xc1, 0xff, 0x00]).unwrap();
        assert!(Commit::read(&s, &h).is_err());
    }
}
