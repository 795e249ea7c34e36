//! `vc.track(regclass)` / `vc.untrack(regclass)`: the SQL entry points of tracking
//! (`src/pg/tracking.rs`); refused on a standby, whose tracked tables are the
//! primary's.

use crate::pg::error::{null_arg, run};
use crate::pg::spi::with_spi;
use crate::pg::tracking::{retrack, track, untrack};
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;

#[pg_extern(name = "_track", volatile)]
fn vc_track(tbl: Option<Oid>) {
    run(|| {
        with_spi(|| {
            let tbl = tbl.ok_or_else(|| null_arg("tbl"))?;
            // A standby's tracked tables are the primary's (its apply tracks new ones).
            crate::pg::replication::refuse_on_standby("vc.track()")?;
            track(tbl)
        })
    })
}

#[pg_extern(name = "_retrack", volatile)]
fn vc_retrack(tbl: Option<Oid>) {
    run(|| with_spi(|| retrack(tbl.ok_or_else(|| null_arg("tbl"))?)))
}

#[pg_extern(name = "_untrack", volatile)]
fn vc_untrack(tbl: Option<Oid>) {
    run(|| {
        with_spi(|| {
            let tbl = tbl.ok_or_else(|| null_arg("tbl"))?;
            crate::pg::replication::refuse_on_standby("vc.untrack()")?;
            untrack(tbl)
        })
    })
}
