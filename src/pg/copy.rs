//! Bulk loading through PostgreSQL's own COPY FROM machinery (`BeginCopyFrom` with a
//! data-source callback, then `CopyFrom`), as `pg_restore` loads a table: rows go in
//! with `table_multi_insert` batches, parsed by each type's input function from COPY
//! text format, with defaults, generated columns and CHECK constraints applied as a
//! COPY applies them.
//!
//! Used only for a table pgvc has just created in this transaction (a clone, a restore,
//! a checkout that creates a table): no triggers, no indexes yet, no policies. The rows
//! come from a commit: they are data, never SQL. Each is written as one line of COPY
//! text (`codec::copytext`), every field escaped, so no value can end a field, a line
//! or the data early. The caller prepares each block of lines before it switches to
//! the table's owner: the callback only copies bytes, and nothing of pgvc's (no query,
//! no chunk read) runs with the owner's rights or under settings the owner's code may
//! have changed during the COPY.

use super::error::{VcError, VcResult};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};

/// The block the data-source callback hands out, for the duration of one `copy_into`.
struct Source {
    data: *const u8,
    len: usize,
    at: usize,
}

thread_local! {
    /// The `Source` of the COPY running now (the callback has no argument of its own).
    static SOURCE: Cell<*mut Source> = const { Cell::new(std::ptr::null_mut()) };
}

/// Clears `SOURCE` however `copy_into` leaves (an ERROR unwinds through here too).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        SOURCE.with(|s| s.set(std::ptr::null_mut()));
    }
}

/// `copy_data_source_cb`: hands COPY the next bytes of the block, at most `maxread`;
/// 0 at the end.
#[pg_guard]
unsafe extern "C-unwind" fn read_source(
    out: *mut c_void,
    _minread: c_int,
    maxread: c_int,
) -> c_int {
    let src = SOURCE.with(|s| s.get());
    if src.is_null() {
        return 0;
    }
    // SAFETY: `copy_into` set SOURCE to a Source (and its block) that outlive the
    // CopyFrom call that invokes this callback, and nothing else touches it meanwhile.
    let src = unsafe { &mut *src };
    let n = (src.len - src.at).min(maxread.max(0) as usize);
    // SAFETY: COPY's buffer holds at least `maxread` bytes; n <= maxread and
    // at + n <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(src.data.add(src.at), out as *mut u8, n);
    }
    src.at += n;
    n as c_int
}

/// Loads `block` (whole lines of COPY text) into table `relid` with COPY FROM, columns
/// `columns` in this order. The caller runs this as the table's owner; INSERT on the
/// listed columns is checked for that role, as COPY checks it. Returns the rows loaded.
pub fn copy_into(relid: pg_sys::Oid, columns: &[String], block: &[u8]) -> VcResult<u64> {
    let names: Vec<CString> = columns
        .iter()
        .map(|c| CString::new(c.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            VcError::new(
                PgSqlErrorCode::ERRCODE_INVALID_NAME,
                "a column name holds a NUL byte",
            )
        })?;
    if names.is_empty() {
        // COPY reads an empty column list as every column.
        return Err(VcError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "pgvc: a COPY load needs its columns",
        ));
    }
    let mut src = Source {
        data: block.as_ptr(),
        len: block.len(),
        at: 0,
    };
    let installed = Installed;
    SOURCE.with(|s| s.set(&mut src));
    // SAFETY: the relation is opened and closed here, under RowExclusiveLock as COPY
    // takes it; the parse state, lists and strings are palloc'd in the current memory
    // context, which outlives the calls; SOURCE points at `src` for the whole CopyFrom.
    let loaded = unsafe {
        let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as _);
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let item = pg_sys::addRangeTableEntryForRelation(
            pstate,
            rel,
            pg_sys::RowExclusiveLock as _,
            std::ptr::null_mut(),
            false,
            false,
        );
        let rte = (*item).p_rte;
        (*rte).requiredPerms = pg_sys::ACL_INSERT as _;
        let mut attnames: *mut pg_sys::List = std::ptr::null_mut();
        for n in &names {
            let attnum = pg_sys::get_attnum(relid, n.as_ptr());
            if attnum <= 0 {
                pg_sys::table_close(rel, pg_sys::RowExclusiveLock as _);
                return Err(VcError::new(
                    PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                    format!("pgvc: column {n:?} of the table being loaded does not exist"),
                ));
            }
            (*rte).insertedCols = pg_sys::bms_add_member(
                (*rte).insertedCols,
                i32::from(attnum) - pg_sys::FirstLowInvalidHeapAttributeNumber,
            );
            let s = pg_sys::makeString(pg_sys::pstrdup(n.as_ptr()));
            attnames = pg_sys::lappend(attnames, s as *mut c_void);
        }
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);
        // The lines are in the database's encoding: no conversion.
        let encoding = pg_sys::makeString(pg_sys::pstrdup(pg_sys::GetDatabaseEncodingName()));
        let option = pg_sys::makeDefElem(
            pg_sys::pstrdup(c"encoding".as_ptr()),
            encoding as *mut pg_sys::Node,
            -1,
        );
        let options = pg_sys::lappend(std::ptr::null_mut(), option as *mut c_void);
        let cstate = pg_sys::BeginCopyFrom(
            pstate,
            rel,
            std::ptr::null_mut(),
            std::ptr::null(),
            false,
            Some(read_source),
            attnames,
            options,
        );
        let n = pg_sys::CopyFrom(cstate);
        pg_sys::EndCopyFrom(cstate);
        pg_sys::free_parsestate(pstate);
        pg_sys::table_close(rel, pg_sys::NoLock as _);
        pg_sys::CommandCounterIncrement();
        n
    };
    drop(installed);
    Ok(loaded)
}
