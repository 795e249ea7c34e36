//! Prolly trees: content-defined B-trees over a `ChunkStore`.
//!
//! A tree maps opaque byte keys (compared bytewise; callers supply
//! memcomparable encodings) to opaque byte values. Leaves (level 0) hold
//! sorted `(key, value)` pairs; internal nodes hold `(last key of child,
//! child hash)`. Node boundaries are chosen by content (`chunker`), so a
//! given entry set always yields the same root hash regardless of edit
//! history. That makes equality a hash compare, lets `apply_edits` reuse
//! untouched subtrees, and lets `diff` skip equal subtrees unread.
//!
//! Errors: read paths return `store::Result`; `build` and `apply_edits` can
//! additionally reject unsorted input, so they return [`ProllyError`], which
//! wraps `StoreError` via `From`.

mod build;
mod chunker;
mod cursor;
mod diff;
mod edit;
mod lookup;
mod node;
mod prefetch;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
mod tests;

pub use build::{build, Builder};
pub use chunker::{Chunking, MAX_NODE, MIN_NODE, TARGET_NODE};
pub use cursor::{count, depth, get, iter, iter_from, Iter};
pub use diff::{diff, Diff, DiffEntry};
pub use edit::{apply_edits, Edit};
pub use lookup::Lookup;
pub use node::{encode_node, entry_size, is_node_tag, load, Node};
pub use prefetch::Prefetching;

use crate::store::{hash_of, Hash, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProllyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Input to `build`/`apply_edits` was not strictly ascending by key;
    /// `index` counts entries (or edits) consumed before the bad one.
    #[error("keys are not strictly ascending (at input position {index})")]
    Unsorted { index: usize },
}

/// Root hash of the empty tree (an empty leaf), without touching a store.
pub fn empty_root() -> Hash {
    hash_of(&encode_node(Chunking::Flat, 0, &[]))
}
