//! The repository layer: policy the glue asks, as pure functions (no pgrx, no
//! storage). Today it holds the replication role and fencing epoch state machine
//! (`replication`); refs and working-set plans are to follow it here (see
//! docs/ARCHITECTURE.md, Layers).

pub mod replication;
