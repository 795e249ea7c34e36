//! The SQL functions, one file per feature. Each `#[pg_extern]` here is an internal
//! `vc._name` function; the public `vc.name` wrapper is declared in `../api.sql`.

mod backup;
mod branch;
pub mod commit;
pub(crate) mod inspect;
pub mod merge;
pub mod remote;
pub mod reset;
mod storage;
mod tag;
pub mod track;
