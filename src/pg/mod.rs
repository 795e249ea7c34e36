//! PostgreSQL glue: every SQL entry point, SPI access, triggers and error reports.
//! The only place that touches pgrx; everything below it is pure Rust.
//!
//! SQL names are chosen in `api.sql`: thin SQL wrappers with explicit volatility,
//! defaults, grants and pinned settings call the internal `vc._*` Rust functions.

/// Where a tracked table's record was made, for the table OID `$relid` (an SQL
/// expression): `<cluster's system identifier>/<database OID>/<table OID>`. A dump and
/// restore changes it (another cluster, or another database), whatever OIDs the
/// restore hands out: the record's attribute numbers and storage are then another
/// database's (docs/ARCHITECTURE.md, pg_dump). A macro, so that the statements using
/// it stay static text.
macro_rules! recorded_here {
    ($relid:literal) => {
        concat!(
            "pg_catalog.format('%s/%s/%s', (SELECT system_identifier FROM pg_catalog.pg_control_system()), \
             (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()), ",
            $relid,
            ")"
        )
    };
}

pub mod api;
pub mod catalog;
pub mod checkout;
pub mod constraints;
pub mod copy;
pub mod definition;
pub mod error;
pub mod keylog;
pub mod merging;
pub mod namespace;
pub mod progress;
pub mod refs;
pub mod replication;
pub mod rows;
pub mod s3;
pub mod spi;
pub mod sql;
pub mod storage;
pub mod store;
pub mod tracking;
pub mod types;
pub mod worker;

pgrx::extension_sql_file!("schema.sql", name = "vc_schema", bootstrap);
pgrx::extension_sql_file!("api.sql", name = "vc_api", finalize);
mod tests;

/// Runs when the library is loaded (at server start with `shared_preload_libraries`).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx appends a Rust backtrace to the DETAIL of every error that crosses our code
    // when RUST_BACKTRACE is set in the server's environment. Users should see the
    // error, not our stack: backtraces of library code are off (panics still print
    // theirs to the server log when RUST_BACKTRACE asks for it).
    // SAFETY: PostgreSQL backends are single-threaded; nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    // SAFETY: plain read of a postmaster global.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        progress::init();
        replication::init();
        worker::init();
    }
    replication::primary::init_callbacks();
    storage::init();
    s3::init();
}
