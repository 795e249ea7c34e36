//! The repository layer: policy the glue asks, as pure functions (no pgrx, no SQL).
//!
//! - `refs`: branch moves as compare-and-swap operations that return what moved, and
//!   ref resolution, over any ref storage (the glue implements `Refs` on `vc.refs`);
//! - `worktree`: the working-set plan (how each table's changes are read, the
//!   comparison of live rows with a tree, what a checkout creates, rewrites or
//!   refuses, whether a root makes a commit);
//! - `replication`: the replication role and fencing epoch state machine.

pub mod refs;
pub mod replication;
pub mod worktree;
