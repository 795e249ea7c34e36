//! Multi-server test harness: each [`Cluster`] is a real, independent PostgreSQL 15
//! server (own data directory, own port) with the installed `pgvc` extension preloaded.
//! Tests in `tests/*.rs` start as many as they need; dropping a `Cluster` stops it and
//! removes its files, also when the test panicked.

mod cluster;
mod dirs;
/// The moto S3 test server fixture, shared with the crate's own tests.
#[path = "../../src/remote/moto.rs"]
#[allow(dead_code)]
pub mod moto;
mod query;

pub use cluster::Cluster;
pub use dirs::{wait_for, RemoteDir, S3Remote, TestRemote};
pub use query::{query_scalar, query_strings};
