//! Content-addressed chunk storage for pgvc.
//!
//! Everything pgvc persists (prolly-tree nodes, blobs, roots, commits) is an
//! immutable byte chunk named by the BLAKE3 hash of its bytes. This module owns
//! the [`Hash`] type, the [`ChunkStore`] trait every backend implements, the
//! error type shared by all storage code, an in-memory store for tests, and a
//! backend-agnostic conformance [`testsuite`]. Invariant: a chunk stored under
//! hash `h` always has `hash_of(bytes) == h`; chunks are never mutated.

mod chunk_store;
mod error;
mod hash;
mod mem;
mod overlay;
pub mod testsuite;

pub use chunk_store::{verify, Chunk, ChunkStore};
pub use error::{Result, StoreError};
pub use hash::{hash_of, Hash};
pub use mem::MemStore;
pub use overlay::{Layered, Overlay};

/// The first byte of every chunk says what it is, so a chunk can be
/// interpreted (or rejected) without outside context.
pub mod kind {
    /// A prolly-tree node (leaf or internal) of a tree cut by the `Flat` rule
    /// (pgvc 0.1 and 0.2 trees; also the empty tree, whatever the rule).
    pub const NODE: u8 = 1;
    /// An out-of-line large value.
    pub const BLOB: u8 = 2;
    /// A working-set / branch root record.
    pub const ROOT: u8 = 3;
    /// A commit object.
    pub const COMMIT: u8 = 4;
    /// A prolly-tree node of a tree cut by the `Weibull` rule (`prolly::Chunking`):
    /// the same layout as `NODE`. A reader that knows only `NODE` refuses it
    /// rather than edit the tree with the wrong rule.
    pub const SIZED_NODE: u8 = 5;
}
