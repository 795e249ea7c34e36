//! The repository layer: policy the glue asks, as pure functions (no pgrx, no SQL).
//!
//! - `refs`: branch moves as compare-and-swap operations that return what moved, and
//!   ref resolution, over any ref storage (the glue implements `Refs` on `vc.refs`);
//! - `worktree`: the working-set plan (how each table's changes are read, the
//!   comparison of live rows with a tree, what a checkout creates, rewrites or
//!   refuses, whether a root makes a commit);
//! - `gc`: marking what roots reach and what a collection may delete (with the rule
//!   that keeps every kept chunk's references);
//! - `replication`: the replication role and fencing epoch state machine;
//! - `merge`: three-way merge of trees and root values, cell by cell, and the merge
//!   base of two commits (docs/BRANCHES.md);
//! - `schema`: versioned table definitions (identities that survive renames, when a
//!   tree stays valid across a change, the `ALTER TABLE` steps of a checkout).

pub mod gc;
pub mod merge;
pub mod refs;
pub mod replication;
pub mod schema;
pub mod worktree;
