//! PostgreSQL glue: every SQL entry point, SPI access, triggers and error reports.
//! The only place that touches pgrx; everything below it is pure Rust.
//!
//! SQL names are chosen in `api.sql`: thin SQL wrappers with explicit volatility,
//! defaults, grants and pinned settings call the internal `vc._*` Rust functions.

pub mod api;
pub mod catalog;
pub mod error;
pub mod refs;
pub mod rows;
pub mod spi;
pub mod store;

pgrx::extension_sql_file!("schema.sql", name = "vc_schema", bootstrap);
pgrx::extension_sql_file!("api.sql", name = "vc_api", finalize);
mod tests;
