//! pgvc: Git-style version control and replication for ordinary PostgreSQL tables.
//!
//! Layers, dependencies pointing down only (see docs/ARCHITECTURE.md):
//! `pg` (pgrx glue: SQL functions, SPI, triggers) -> `codec` (row encoding) ->
//! `commit` (commits, root values, refs) -> `prolly` (trees) -> `store` (chunks);
//! `remote` (file:// remotes: packs, manifest, push/fetch) sits beside `commit`;
//! `repo` (policy as pure functions: the replication role/epoch state machine) above.
//! Everything but `pg` is pure Rust, testable without a server.

pub mod codec;
pub mod commit;
pub mod prolly;
pub mod remote;
pub mod repo;
pub mod store;

mod pg;

::pgrx::pg_module_magic!(name, version);

/// Required by `cargo pgrx test`; must be visible at the crate root.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // The worker serves the test database, so replication roles apply there.
        vec![
            "shared_preload_libraries = 'pgvc'",
            "vc.database = 'pgrx_tests'",
        ]
    }
}
