//! The key-logging trigger in native code: what each tracked table's statement
//! triggers run to append the keys a statement changed to its key log `vc.log_<id>`.
//!
//! Each table's trigger function `vc.trg_<id>()` is a C-language function bound to
//! `_log_keys_wrapper` (`sql::create_log_trigger_function`); the triggers and their
//! names stay as they were with the PL/pgSQL body this replaces. Per statement it:
//! - finds its key log from its own name (`trg_<id>` in schema `vc` -> `vc.log_<id>`);
//! - checks INSERT on the log for the current user, as the PL/pgSQL `INSERT` did (the
//!   log grants INSERT to PUBLIC; nobody gains a right);
//! - maps the log's columns to the table's by name and refuses any type difference (a
//!   log made for another table cannot be written with this one's values);
//! - reads the transition tables with a read pointer of its own, and inserts the key
//!   of every row with `heap_insert` (the log has no index, no trigger, no constraint
//!   but NOT NULL, which a primary key keeps): no executor start-up, no plan, no SPI.
//!
//! An UPDATE logs each new key, and an old key only when no new row has the same key
//! bytes: a key the statement did not change is logged once, not twice (the set of
//! keys logged is the same: old ∪ new).

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;
use std::ffi::{CStr, CString};

use super::error::{VcError, VcResult};
use pgrx::PgSqlErrorCode as Code;

/// New keys remembered to skip unchanged old keys of an UPDATE, at most (16 bytes
/// each: memory stays bounded; past it, old keys are logged as well, which only costs
/// log rows).
const DEDUP_MAX: usize = 1 << 20;

#[pg_trigger]
fn _log_keys<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    // SAFETY: called by the trigger manager, so the TriggerData is valid for the call.
    super::error::run(|| unsafe { log_keys(trigger.trigger_data()) });
    Ok(None)
}

fn internal(msg: impl Into<String>) -> VcError {
    VcError::new(Code::ERRCODE_TRIGGERED_ACTION_EXCEPTION, msg.into())
        .hint("SELECT vc.untrack(table) and then vc.track(table) reinstalls pgvc's triggers")
}

/// One key column: the table's attribute number and how its datums are laid out.
struct KeyCol {
    /// The log's attribute (0-based) this key column fills.
    log_index: usize,
    attnum: i32,
    byval: bool,
    len: i16,
}

unsafe fn log_keys(td: &pg_sys::TriggerData) -> VcResult<()> {
    // SAFETY (whole function): the pointers come from the trigger manager and stay
    // valid for the call; relations are opened and closed here; every palloc is in the
    // trigger's per-call memory context.
    unsafe {
        let event = td.tg_event;
        let level_statement = event & pg_sys::TRIGGER_EVENT_ROW == 0;
        let after = event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER;
        if !level_statement || !after {
            return Err(internal(
                "pgvc's key logging must run AFTER ... FOR EACH STATEMENT",
            ));
        }
        let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
        let trig = &*td.tg_trigger;
        let vc = pg_sys::get_namespace_oid(c"vc".as_ptr(), false);
        if pg_sys::get_func_namespace(trig.tgfoid) != vc {
            return Err(internal("pgvc's key-logging function is not in schema vc"));
        }
        let fname = pg_sys::get_func_name(trig.tgfoid);
        if fname.is_null() {
            return Err(internal("pgvc's key-logging function has no name"));
        }
        let fname = CStr::from_ptr(fname).to_string_lossy().into_owned();
        let Some(id) = fname.strip_prefix("trg_") else {
            return Err(internal(format!(
                "pgvc's key-logging function vc.{fname} is not named trg_<id>"
            )));
        };
        let logname = CString::new(format!("log_{id}")).expect("no NUL in a name");
        let log_relid = pg_sys::get_relname_relid(logname.as_ptr(), vc);
        if log_relid == pg_sys::InvalidOid {
            return Err(internal(format!("the key log vc.log_{id} is missing")));
        }
        if pg_sys::pg_class_aclcheck(log_relid, pg_sys::GetUserId(), pg_sys::ACL_INSERT as _)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            return Err(VcError::new(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied for table vc.log_{id}"),
            ));
        }
        let table = td.tg_relation;
        let tdesc = (*table).rd_att;
        let log = pg_sys::table_open(log_relid, pg_sys::RowExclusiveLock as _);
        let class = &*(*log).rd_rel;
        if class.relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
            || class.relam != pg_sys::HEAP_TABLE_AM_OID
        {
            pg_sys::table_close(log, pg_sys::RowExclusiveLock as _);
            return Err(internal(format!(
                "the key log vc.log_{id} is not a heap table"
            )));
        }
        let ldesc = (*log).rd_att;
        let cols = match key_columns(tdesc, ldesc) {
            Ok(c) => c,
            Err(e) => {
                pg_sys::table_close(log, pg_sys::RowExclusiveLock as _);
                return Err(e);
            }
        };
        let cid = pg_sys::GetCurrentCommandId(true);
        let bistate = pg_sys::GetBulkInsertState();
        // One slot per attribute of the log, dropped ones NULL.
        let natts = (*ldesc).natts as usize;
        let mut writer = Writer {
            log,
            ldesc,
            cid,
            bistate,
            at: cols.iter().map(|c| c.log_index).collect(),
            values: vec![pg_sys::Datum::from(0usize); natts],
            nulls: vec![true; natts],
            slots: Vec::new(),
            filled: 0,
        };
        let ins = op == pg_sys::TRIGGER_EVENT_INSERT;
        let del = op == pg_sys::TRIGGER_EVENT_DELETE;
        let upd = op == pg_sys::TRIGGER_EVENT_UPDATE;
        let mut seen: Option<HashSet<[u8; 16]>> = upd.then(HashSet::new);
        if (ins || upd) && !td.tg_newtable.is_null() {
            scan(td.tg_newtable, tdesc, &cols, &mut |key| {
                writer.insert(key);
                if let Some(s) = seen.as_mut() {
                    if s.len() < DEDUP_MAX {
                        s.insert(image(key, &cols));
                    }
                }
            });
        }
        if (del || upd) && !td.tg_oldtable.is_null() {
            scan(td.tg_oldtable, tdesc, &cols, &mut |key| {
                if seen
                    .as_ref()
                    .is_some_and(|s| s.contains(&image(key, &cols)))
                {
                    return;
                }
                writer.insert(key);
            });
        }
        writer.finish();
        pg_sys::FreeBulkInsertState(bistate);
        pg_sys::table_close(log, pg_sys::NoLock as _);
        Ok(())
    }
}

/// The table's key columns in the log's column order, matched by name; the types must
/// be the same (type and modifier), or the log is not this table's.
unsafe fn key_columns(tdesc: pg_sys::TupleDesc, ldesc: pg_sys::TupleDesc) -> VcResult<Vec<KeyCol>> {
    // SAFETY: both descriptors are valid for the call; attrs has natts entries.
    unsafe {
        let tattrs = (*tdesc).attrs.as_slice((*tdesc).natts as usize);
        let lattrs = (*ldesc).attrs.as_slice((*ldesc).natts as usize);
        let mut out = Vec::new();
        for (log_index, la) in lattrs.iter().enumerate().filter(|(_, a)| !a.attisdropped) {
            let name = CStr::from_ptr(la.attname.data.as_ptr());
            let Some((i, ta)) = tattrs
                .iter()
                .enumerate()
                .find(|(_, a)| !a.attisdropped && CStr::from_ptr(a.attname.data.as_ptr()) == name)
            else {
                return Err(internal(format!(
                    "the key log names a column {name:?} the table does not have"
                )));
            };
            if ta.atttypid != la.atttypid || ta.atttypmod != la.atttypmod {
                return Err(internal(format!(
                    "the key log's column {name:?} has another type than the table's"
                )));
            }
            out.push(KeyCol {
                log_index,
                attnum: i as i32 + 1,
                byval: ta.attbyval,
                len: ta.attlen,
            });
        }
        if out.is_empty() {
            return Err(internal("the key log has no columns"));
        }
        Ok(out)
    }
}

/// Calls `f` with the key datums of every row of a transition table, read with a read
/// pointer of its own (other triggers may read the same table). Rows with a NULL key
/// column (none, under a primary key) are skipped.
unsafe fn scan(
    ts: *mut pg_sys::Tuplestorestate,
    tdesc: pg_sys::TupleDesc,
    cols: &[KeyCol],
    f: &mut dyn FnMut(&[pg_sys::Datum]),
) {
    // SAFETY: the tuplestore and descriptor are valid for the call; the slot is made
    // and dropped here; read pointer 0 is selected again afterwards.
    unsafe {
        let slot = pg_sys::MakeSingleTupleTableSlot(tdesc, &pg_sys::TTSOpsMinimalTuple);
        let ptr = pg_sys::tuplestore_alloc_read_pointer(ts, pg_sys::EXEC_FLAG_REWIND as _);
        pg_sys::tuplestore_select_read_pointer(ts, ptr);
        pg_sys::tuplestore_rescan(ts);
        let mut key = vec![pg_sys::Datum::from(0usize); cols.len()];
        'rows: while pg_sys::tuplestore_gettupleslot(ts, true, false, slot) {
            for (j, c) in cols.iter().enumerate() {
                let mut isnull = false;
                key[j] = pg_sys::slot_getattr(slot, c.attnum, &mut isnull);
                if isnull {
                    continue 'rows;
                }
            }
            f(&key);
        }
        pg_sys::tuplestore_select_read_pointer(ts, 0);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
    }
}

/// A digest of the bytes of a key's datums (as stored: two keys with equal bytes are
/// equal). 16 bytes of BLAKE3 keep the UPDATE set small whatever the keys' size.
/// Images of up to 15 bytes (one integer key) are kept as they are, with their length
/// in the last byte; longer ones as 15 bytes of their BLAKE3 hash, marked 0xff.
fn image(key: &[pg_sys::Datum], cols: &[KeyCol]) -> [u8; 16] {
    let bytes = image_bytes(key, cols);
    let mut out = [0u8; 16];
    if bytes.len() < 16 {
        out[..bytes.len()].copy_from_slice(&bytes);
        out[15] = bytes.len() as u8;
    } else {
        out[..15].copy_from_slice(&blake3::hash(&bytes).as_bytes()[..15]);
        out[15] = 0xff;
    }
    out
}

fn image_bytes(key: &[pg_sys::Datum], cols: &[KeyCol]) -> Vec<u8> {
    let mut out = Vec::new();
    for (d, c) in key.iter().zip(cols) {
        // SAFETY: `d` is a datum of a column laid out as `c` says (from its tuple
        // descriptor), valid while the slot holds its row.
        unsafe {
            if c.byval {
                out.extend_from_slice(&d.value().to_ne_bytes());
                continue;
            }
            let p = d.cast_mut_ptr::<u8>();
            let len = match c.len {
                -1 => pgrx::varlena::varsize_any(p as *const pg_sys::varlena),
                -2 => CStr::from_ptr(p as *const std::ffi::c_char)
                    .to_bytes()
                    .len(),
                n => n as usize,
            };
            out.extend_from_slice(&(len as u64).to_ne_bytes());
            out.extend_from_slice(std::slice::from_raw_parts(p, len));
        }
    }
    out
}

/// Keys per `heap_multi_insert` (one WAL record per page of them, not one per key).
const INSERT_BATCH: usize = 1000;

struct Writer {
    log: pg_sys::Relation,
    ldesc: pg_sys::TupleDesc,
    cid: pg_sys::CommandId,
    bistate: pg_sys::BulkInsertState,
    /// The log attribute (0-based) of each key column.
    at: Vec<usize>,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// Heap-tuple slots of the log, each holding a formed key tuple of its own (made
    /// as needed, up to INSERT_BATCH), and how many are filled.
    slots: Vec<*mut pg_sys::TupleTableSlot>,
    filled: usize,
}

impl Writer {
    fn insert(&mut self, key: &[pg_sys::Datum]) {
        for (&i, &d) in self.at.iter().zip(key) {
            self.values[i] = d;
            self.nulls[i] = false;
        }
        // SAFETY: the log is open under RowExclusiveLock; values match its descriptor
        // (key_columns checked the types). heap_form_tuple copies the datums, so the
        // slot's tuple outlives the transition row it came from; the slot frees it
        // when it is stored over or dropped.
        unsafe {
            let tup = pg_sys::heap_form_tuple(
                self.ldesc,
                self.values.as_mut_ptr(),
                self.nulls.as_mut_ptr(),
            );
            if self.filled == self.slots.len() {
                self.slots.push(pg_sys::MakeSingleTupleTableSlot(
                    self.ldesc,
                    &pg_sys::TTSOpsHeapTuple,
                ));
            }
            pg_sys::ExecStoreHeapTuple(tup, self.slots[self.filled], true);
        }
        self.filled += 1;
        if self.filled == INSERT_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.filled == 0 {
            return;
        }
        // SAFETY: the first `filled` slots hold formed tuples of the log's descriptor.
        unsafe {
            pg_sys::heap_multi_insert(
                self.log,
                self.slots.as_mut_ptr(),
                self.filled as _,
                self.cid,
                0,
                self.bistate,
            );
        }
        self.filled = 0;
    }

    /// Inserts what is batched and frees the slots.
    fn finish(mut self) {
        self.flush();
        for s in self.slots.drain(..) {
            // SAFETY: made by MakeSingleTupleTableSlot above, dropped once.
            unsafe { pg_sys::ExecDropSingleTupleTableSlot(s) };
        }
    }
}
