//! Thin SPI layer: run a statement or stream a cursor, reading every column as the
//! type's *output function* text (`SPI_getvalue`), or raw bytes for `bytea` columns.
//!
//! We read text through the output function rather than `::text` casts because some
//! casts differ from output (`bool::text` is `true`, output is `t`; `char(n)::text`
//! trims) and keys must encode identically on every path. Result tables are freed
//! batch by batch, so a cursor over a big table runs in flat memory.
//!
//! Every function here must run inside an SPI connection (`Spi::connect*`).

use super::error::{VcError, VcResult};
use super::sql::Sql;
use crate::codec::Cell;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::IntoDatum;
use std::ffi::{CStr, CString};

/// A statement argument.
pub enum Arg {
    Text(Option<String>),
    Bytea(Option<Vec<u8>>),
    TextArray(Vec<Option<String>>),
    ByteaArray(Vec<Option<Vec<u8>>>),
    Int8(i64),
    Oid(pg_sys::Oid),
    Bool(bool),
}

struct Params {
    types: Vec<pg_sys::Oid>,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<std::ffi::c_char>,
}

fn params(args: Vec<Arg>) -> Params {
    let mut p = Params {
        types: Vec::new(),
        values: Vec::new(),
        nulls: Vec::new(),
    };
    for a in args {
        let (ty, d) = match a {
            Arg::Text(v) => (pg_sys::TEXTOID, v.into_datum()),
            Arg::Bytea(v) => (pg_sys::BYTEAOID, v.into_datum()),
            Arg::TextArray(v) => (pg_sys::TEXTARRAYOID, v.into_datum()),
            Arg::ByteaArray(v) => (pg_sys::BYTEAARRAYOID, v.into_datum()),
            Arg::Int8(v) => (pg_sys::INT8OID, v.into_datum()),
            Arg::Oid(v) => (pg_sys::OIDOID, v.into_datum()),
            Arg::Bool(v) => (pg_sys::BOOLOID, v.into_datum()),
        };
        p.types.push(ty);
        p.nulls
            .push(if d.is_some() { b' ' as _ } else { b'n' as _ });
        p.values.push(d.unwrap_or(pg_sys::Datum::from(0usize)));
    }
    p
}

fn sql_error(sql: &str, code: i32) -> VcError {
    VcError::new(
        pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pgvc internal statement failed (SPI code {code}): {sql}"),
    )
}

/// Copies the rows of the current `SPI_tuptable` into Rust, one `read(tuple, desc,
/// column number)` per value, and frees it.
///
/// # Safety
/// Call right after a successful SPI execute/fetch: `SPI_tuptable` is then null or a
/// valid table owned by the current SPI connection. `read` must copy what it keeps.
unsafe fn take_rows<T>(
    mut read: impl FnMut(pg_sys::HeapTuple, pg_sys::TupleDesc, i32) -> T,
) -> Vec<Vec<T>> {
    let tt = pg_sys::SPI_tuptable;
    if tt.is_null() {
        return Vec::new();
    }
    let n = (*tt).numvals as usize;
    let desc = (*tt).tupdesc;
    let natts = (*desc).natts;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let tuple = *(*tt).vals.add(i);
        out.push((1..=natts).map(|fnum| read(tuple, desc, fnum)).collect());
    }
    pg_sys::SPI_freetuptable(tt);
    out
}

/// The current result's value at `fnum` as output-function text.
///
/// # Safety
/// A tuple and descriptor of the current `SPI_tuptable`.
unsafe fn output_text(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    fnum: i32,
) -> Option<String> {
    let p = pg_sys::SPI_getvalue(tuple, desc, fnum);
    if p.is_null() {
        return None;
    }
    let t = CStr::from_ptr(p).to_string_lossy().into_owned();
    pg_sys::pfree(p.cast());
    Some(t)
}

/// Copies the rows of the current `SPI_tuptable` into Rust and frees it. Columns whose
/// `raw` flag is set are read as bytea bytes, the others as output-function text.
fn take_tuptable(raw: &[bool]) -> Vec<Vec<Cell>> {
    // SAFETY: called right after a successful SPI execute/fetch (see `take_rows`);
    // every value is copied out.
    unsafe {
        take_rows(|tuple, desc, fnum| {
            if raw.get(fnum as usize - 1).copied().unwrap_or(false) {
                let mut isnull = false;
                let d = pg_sys::SPI_getbinval(tuple, desc, fnum, &mut isnull);
                // Borrowed, then copied in one go: pgrx's `Vec<u8>` conversion copies
                // byte by byte (a fifth of a backup sync's CPU in perf).
                match <&[u8]>::from_datum(d, isnull) {
                    Some(b) => Cell::Bytes(b.to_vec()),
                    None => Cell::Null,
                }
            } else {
                output_text(tuple, desc, fnum).map_or(Cell::Null, Cell::Text)
            }
        })
    }
}

thread_local! {
    /// The snapshot every statement uses inside `with_snapshot`, if any.
    static PINNED: std::cell::Cell<Option<pg_sys::Snapshot>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every statement (and cursor) reading one snapshot, taken now.
///
/// Under READ COMMITTED each SPI statement would otherwise see a newer snapshot, so a
/// commit that claims keys in one statement and reads their rows in the next could
/// include half of a transaction that committed in between. With one snapshot, a
/// commit holds exactly the transactions that committed before it started; later ones
/// stay in the key log for the next commit. Our own writes stay visible (each
/// statement still advances the command id).
pub fn with_snapshot<T>(f: impl FnOnce() -> VcResult<T>) -> VcResult<T> {
    struct Reset(Option<pg_sys::Snapshot>);
    impl Drop for Reset {
        fn drop(&mut self) {
            // On an ERROR unwind the transaction abort releases the snapshot; we only
            // put back the one pinned before (if this call was nested).
            PINNED.with(|p| p.set(self.0));
        }
    }
    // SAFETY: inside a transaction; the registered copy outlives its uses below and is
    // unregistered on the normal path (abort cleans up on the error path).
    let snap = unsafe { pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot()) };
    let guard = Reset(PINNED.with(|p| p.replace(Some(snap))));
    let out = f();
    drop(guard);
    // SAFETY: registered above, not yet unregistered.
    unsafe { pg_sys::UnregisterSnapshot(snap) };
    out
}

/// The hashes in the first column of `rows` (bytea read raw); other values skipped.
pub fn first_column_hashes(rows: Vec<Vec<Cell>>) -> Vec<crate::store::Hash> {
    rows.into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Cell::Bytes(b)) => crate::store::Hash::from_slice(&b),
            _ => None,
        })
        .collect()
}

/// Runs `f` with no pinned snapshot: each statement sees everything committed before
/// it starts (READ COMMITTED), even inside `with_snapshot`. For checks made under a
/// lock that keeps writers out, where an older snapshot would miss their rows.
pub fn with_latest_snapshot<T>(f: impl FnOnce() -> VcResult<T>) -> VcResult<T> {
    struct Reset(Option<pg_sys::Snapshot>);
    impl Drop for Reset {
        fn drop(&mut self) {
            PINNED.with(|p| p.set(self.0));
        }
    }
    let _guard = Reset(PINNED.with(|p| p.replace(None)));
    f()
}

/// Plans kept for the backend's life, by statement text and parameter types: pgvc runs
/// the same few statements (fetch a chunk, insert chunks, read a key log...) thousands
/// of times per call, and planning each time cost more than running them. PostgreSQL's
/// plan cache re-plans a kept plan when a table it uses changes.
const MAX_KEPT_PLANS: usize = 1000;

thread_local! {
    static PLANS: std::cell::RefCell<std::collections::HashMap<PlanKey, KeptPlan>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

type PlanKey = (String, Vec<pg_sys::Oid>);

struct KeptPlan {
    ptr: usize,
    /// Statements running this plan now. A plan in use is never freed: a statement of
    /// ours can run user code (a domain check, a generated column) that calls pgvc
    /// again, and that inner call may fill the cache while the outer one is iterating.
    in_use: u32,
}

/// A plan for one execution: kept ones stay in the cache, marked in use until dropped.
struct Plan {
    ptr: pg_sys::SPIPlanPtr,
    kept: Option<PlanKey>,
}

impl Drop for Plan {
    fn drop(&mut self) {
        match self.kept.take() {
            // Bookkeeping only, so also while an ERROR unwinds.
            Some(key) => PLANS.with(|p| {
                if let Some(e) = p.borrow_mut().get_mut(&key) {
                    e.in_use = e.in_use.saturating_sub(1);
                }
            }),
            None if !std::thread::panicking() => {
                // SAFETY: an unkept plan prepared by us and used only by the caller.
                unsafe { pg_sys::SPI_freeplan(self.ptr) };
            }
            None => {}
        }
    }
}

/// Utility statements (DDL) are planned once and not kept: they run once per table.
fn is_utility(sql: &str) -> bool {
    let head = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        head.as_str(),
        "CREATE" | "DROP" | "ALTER" | "REVOKE" | "GRANT" | "LOCK" | "SET"
    )
}

/// A statement's plan, prepared once and kept. `generic`: one plan for any
/// parameters (`CURSOR_OPT_GENERIC_PLAN`, `Sql::plan_once`).
fn prepared(sql: &str, c: &CString, types: &mut [pg_sys::Oid], generic: bool) -> VcResult<Plan> {
    let key = (sql.to_string(), types.to_vec());
    let hit = PLANS.with(|p| {
        p.borrow_mut().get_mut(&key).map(|e| {
            e.in_use += 1;
            e.ptr
        })
    });
    if let Some(ptr) = hit {
        return Ok(Plan {
            ptr: ptr as pg_sys::SPIPlanPtr,
            kept: Some(key),
        });
    }
    // SAFETY: plain SPI calls on a NUL-terminated statement and a types array of the
    // declared length.
    let ptr = unsafe {
        let options = if generic {
            pg_sys::CURSOR_OPT_GENERIC_PLAN as i32
        } else {
            0
        };
        pg_sys::SPI_prepare_cursor(c.as_ptr(), types.len() as i32, types.as_mut_ptr(), options)
    };
    if ptr.is_null() {
        // SAFETY: plain read of a global set by SPI_prepare.
        return Err(sql_error(sql, unsafe { pg_sys::SPI_result }));
    }
    // One statement, never more: whatever went into the text, it cannot have ended a
    // statement and started another.
    // SAFETY: a valid plan just prepared; the list belongs to it.
    let statements = unsafe {
        let list = pg_sys::SPI_plan_get_plan_sources(ptr);
        if list.is_null() {
            0
        } else {
            (*list).length
        }
    };
    if statements != 1 {
        // SAFETY: our unkept plan, not used after this.
        unsafe { pg_sys::SPI_freeplan(ptr) };
        return Err(VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pgvc refused to run a statement text that holds {statements} statements"),
        ));
    }
    if is_utility(sql) {
        return Ok(Plan { ptr, kept: None });
    }
    // SAFETY: moves the plan to a long-lived context; it is freed only when evicted
    // from the cache while no statement uses it.
    unsafe { pg_sys::SPI_keepplan(ptr) };
    PLANS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() >= MAX_KEPT_PLANS {
            p.retain(|_, e| {
                if e.in_use > 0 {
                    return true;
                }
                // SAFETY: a kept plan referenced only from this cache, not running.
                unsafe { pg_sys::SPI_freeplan(e.ptr as pg_sys::SPIPlanPtr) };
                false
            });
        }
        p.insert(
            key.clone(),
            KeptPlan {
                ptr: ptr as usize,
                in_use: 1,
            },
        );
    });
    Ok(Plan {
        ptr,
        kept: Some(key),
    })
}

/// Number of plans kept now (for tests).
#[cfg(any(test, feature = "pg_test"))]
fn kept_plans() -> usize {
    PLANS.with(|p| p.borrow().len())
}

/// Runs `f` in a memory context deleted right after: parameter arrays (megabytes for a
/// chunk flush) and detoasted values would otherwise pile up in the SPI procedure
/// context until the SQL function returns, and a big commit runs thousands of
/// statements. Results are copied into Rust memory before the context goes.
fn in_temp_context<T>(f: impl FnOnce() -> T) -> T {
    let mut ctx = pgrx::PgMemoryContexts::new("pgvc statement");
    // SAFETY: a context we just created; nothing allocated in it escapes `f` (every
    // result is copied into Rust-owned memory), and dropping `ctx` deletes it.
    unsafe { ctx.switch_to(|_| f()) }
}

/// SPI calls return with the SPI procedure context current; what we allocate next
/// (detoasted values, output-function strings) must go to our statement context.
fn back_to(ctx: pg_sys::MemoryContext) {
    // SAFETY: `ctx` is the live statement context captured by the caller.
    unsafe { pg_sys::MemoryContextSwitchTo(ctx) };
}

/// Runs a statement (any kind), returning its rows (if any) read as described above.
pub fn query(sql: impl Into<Sql>, args: Vec<Arg>, raw: &[bool]) -> VcResult<Vec<Vec<Cell>>> {
    let sql = sql.into();
    in_temp_context(|| query_here(sql.as_str(), sql.planned_once(), args, raw))
}

fn query_here(sql: &str, generic: bool, args: Vec<Arg>, raw: &[bool]) -> VcResult<Vec<Vec<Cell>>> {
    execute_here(sql, generic, args)?;
    Ok(take_tuptable(raw))
}

/// Runs a statement, leaving its rows in `SPI_tuptable` for the caller to take.
fn execute_here(sql: &str, generic: bool, args: Vec<Arg>) -> VcResult<()> {
    // SAFETY: plain read of a backend global.
    let ctx = unsafe { pg_sys::CurrentMemoryContext };
    let mut p = params(args);
    let c = CString::new(sql).expect("no NUL in internal SQL");
    let plan = prepared(sql, &c, &mut p.types, generic)?;
    let rc = match PINNED.with(|p| p.get()) {
        // SAFETY: the plan is valid (kept for the backend's life, or freshly prepared
        // and freed below); the arrays have one entry per parameter.
        Some(snap) => unsafe {
            pg_sys::SPI_execute_snapshot(
                plan.ptr,
                p.values.as_mut_ptr(),
                p.nulls.as_ptr(),
                snap,
                std::ptr::null_mut(),
                false,
                true,
                0,
            )
        },
        // SAFETY: as above.
        None => unsafe {
            pg_sys::SPI_execute_plan(plan.ptr, p.values.as_mut_ptr(), p.nulls.as_ptr(), false, 0)
        },
    };
    if rc < 0 {
        return Err(sql_error(sql, rc));
    }
    back_to(ctx);
    Ok(())
}

/// A value read by its SQL type (catalog reads; row encoding reads output text).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Oid(pg_sys::Oid),
    /// text, name, varchar, "char", and any other type by its output function.
    Text(String),
}

impl Value {
    fn wrong(&self, want: &str) -> VcError {
        VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pgvc read {self:?} where its statement yields {want}"),
        )
    }

    pub fn bool(&self) -> VcResult<bool> {
        match self {
            Value::Bool(b) => Ok(*b),
            other => Err(other.wrong("a boolean")),
        }
    }

    pub fn int(&self) -> VcResult<i64> {
        match self {
            Value::Int(i) => Ok(*i),
            other => Err(other.wrong("an integer")),
        }
    }

    pub fn oid(&self) -> VcResult<pg_sys::Oid> {
        match self {
            Value::Oid(o) => Ok(*o),
            other => Err(other.wrong("an oid")),
        }
    }

    pub fn text(&self) -> VcResult<String> {
        match self {
            Value::Text(t) => Ok(t.clone()),
            other => Err(other.wrong("text")),
        }
    }

    /// NULL as None, else the value.
    pub fn opt(&self) -> Option<&Value> {
        (*self != Value::Null).then_some(self)
    }
}

/// Runs a statement and reads every column by its type (`Value`): booleans, integers
/// and OIDs as such, never by parsing their text.
pub fn query_values(sql: impl Into<Sql>, args: Vec<Arg>) -> VcResult<Vec<Vec<Value>>> {
    let sql = sql.into();
    in_temp_context(|| {
        execute_here(sql.as_str(), sql.planned_once(), args)?;
        Ok(take_values())
    })
}

/// Copies the rows of the current `SPI_tuptable` into `Value`s by column type, and
/// frees it.
fn take_values() -> Vec<Vec<Value>> {
    // SAFETY: right after a successful SPI execute (see `take_rows`); every value is
    // copied out.
    unsafe {
        take_rows(|tuple, desc, fnum| {
            let mut isnull = false;
            let d = pg_sys::SPI_getbinval(tuple, desc, fnum, &mut isnull);
            if isnull {
                return Value::Null;
            }
            let v = match pg_sys::SPI_gettypeid(desc, fnum) {
                pg_sys::BOOLOID => bool::from_datum(d, false).map(Value::Bool),
                pg_sys::INT8OID => i64::from_datum(d, false).map(Value::Int),
                pg_sys::INT4OID => i32::from_datum(d, false).map(|v| Value::Int(v.into())),
                pg_sys::INT2OID => i16::from_datum(d, false).map(|v| Value::Int(v.into())),
                pg_sys::OIDOID
                | pg_sys::REGCLASSOID
                | pg_sys::REGTYPEOID
                | pg_sys::REGPROCEDUREOID
                | pg_sys::REGNAMESPACEOID
                | pg_sys::REGROLEOID => pg_sys::Oid::from_datum(d, false).map(Value::Oid),
                _ => output_text(tuple, desc, fnum).map(Value::Text),
            };
            v.unwrap_or(Value::Null)
        })
    }
}

/// A boolean the statement always returns (one row, one column, NULL as false).
pub fn one_bool(sql: impl Into<Sql>, args: Vec<Arg>) -> VcResult<bool> {
    match one_value(sql, args)? {
        None | Some(Value::Null) => Ok(false),
        Some(v) => v.bool(),
    }
}

/// The first row of `query_values`, if any.
pub fn one_row(sql: impl Into<Sql>, args: Vec<Arg>) -> VcResult<Option<Vec<Value>>> {
    Ok(query_values(sql, args)?.into_iter().next())
}

/// The first column of the first row, if any row.
pub fn one_value(sql: impl Into<Sql>, args: Vec<Arg>) -> VcResult<Option<Value>> {
    Ok(one_row(sql, args)?.and_then(|r| r.into_iter().next()))
}

/// Runs a statement for its effect; returns the number of rows processed.
pub fn exec(sql: impl Into<Sql>, args: Vec<Arg>) -> VcResult<u64> {
    query(sql, args, &[])?;
    // SAFETY: plain read of a global set by the statement above.
    Ok(unsafe { pg_sys::SPI_processed })
}

/// First column of the first row as text, if any.
pub fn one_text(sql: impl Into<Sql>, args: Vec<Arg>) -> VcResult<Option<String>> {
    Ok(query(sql, args, &[])?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|c| match c {
            Cell::Text(t) => Some(t),
            _ => None,
        }))
}

/// A server-side cursor, fetched in batches; closed on drop.
pub struct Cursor {
    portal: pg_sys::Portal,
    raw: Vec<bool>,
}

impl Cursor {
    pub fn open(sql: impl Into<Sql>, args: Vec<Arg>, raw: Vec<bool>) -> VcResult<Cursor> {
        let sql = sql.into();
        // The portal copies the parameters it needs.
        in_temp_context(|| Cursor::open_here(sql.as_str(), args, raw))
    }

    fn open_here(sql: &str, args: Vec<Arg>, raw: Vec<bool>) -> VcResult<Cursor> {
        let mut p = params(args);
        let c = CString::new(sql).expect("no NUL in internal SQL");
        let pinned = PINNED.with(|p| p.get());
        // SAFETY: as in `query`; the portal is owned by the transaction and closed in
        // Drop. A read-only cursor runs on the active snapshot, which we set to the
        // pinned one for the duration of the open (the portal keeps its own copy).
        let portal = unsafe {
            if let Some(snap) = pinned {
                pg_sys::PushActiveSnapshot(snap);
            }
            let portal = pg_sys::SPI_cursor_open_with_args(
                std::ptr::null(),
                c.as_ptr(),
                p.types.len() as i32,
                p.types.as_mut_ptr(),
                p.values.as_mut_ptr(),
                p.nulls.as_ptr(),
                pinned.is_some(),
                0,
            );
            if pinned.is_some() {
                pg_sys::PopActiveSnapshot();
            }
            portal
        };
        if portal.is_null() {
            return Err(sql_error(sql, -1));
        }
        Ok(Cursor { portal, raw })
    }

    /// The next up to `n` rows; empty when done.
    pub fn fetch(&mut self, n: i64) -> Vec<Vec<Cell>> {
        in_temp_context(|| {
            // SAFETY: plain read of a backend global.
            let ctx = unsafe { pg_sys::CurrentMemoryContext };
            // SAFETY: the portal is open (closed only in Drop).
            unsafe { pg_sys::SPI_cursor_fetch(self.portal, true, n as _) };
            back_to(ctx);
            take_tuptable(&self.raw)
        })
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        // During an ERROR unwind the transaction abort closes portals itself, and
        // calling back into PostgreSQL there is not allowed.
        if !std::thread::panicking() {
            // SAFETY: the portal is still open: nothing else closes it.
            unsafe { pg_sys::SPI_cursor_close(self.portal) };
        }
    }
}

thread_local! {
    /// The role that called the pgvc function now running (None outside one).
    static CALLER: std::cell::Cell<Option<pg_sys::Oid>> = const { std::cell::Cell::new(None) };
}

/// The role that called the pgvc function now running: privileges on user tables and
/// file access are checked against it, never against pgvc's owner.
pub fn caller() -> pg_sys::Oid {
    // SAFETY: plain read of backend state (outside an entry point: the current user).
    CALLER
        .with(|c| c.get())
        .unwrap_or_else(|| unsafe { pg_sys::GetUserId() })
}

/// Settings that make row encoding a pure function of the values (text output of
/// dates, intervals, floats, bytea, money) and names schema-qualified. Pinned for the
/// duration of every pgvc function, whoever calls it and however (the SQL wrappers set
/// them too; a role allowed to call an internal function directly gets them as well).
const PINNED_SETTINGS: [(&std::ffi::CStr, &std::ffi::CStr); 7] = [
    (c"DateStyle", c"ISO, YMD"),
    (c"IntervalStyle", c"postgres"),
    (c"TimeZone", c"UTC"),
    (c"extra_float_digits", c"3"),
    (c"bytea_output", c"hex"),
    (c"lc_monetary", c"C"),
    (c"search_path", c"pg_catalog, pg_temp"),
];

/// Runs `f` inside an SPI connection: the body of a pgvc SQL function.
///
/// The body runs as the extension's owner (`SECURITY_LOCAL_USERID_CHANGE`), which owns
/// pgvc's tables; what the caller may do is checked against the caller (`caller()`):
/// the EXECUTE grants on pgvc's functions (the pgvc roles), SELECT or write rights on
/// each user table an operation reads or writes, file access for `file://` remotes.
/// User tables themselves are read and written as their owners (`as_owner`).
/// Settings are pinned for the duration (`PINNED_SETTINGS`).
///
/// Refused inside a security-restricted operation: pgvc reads and writes user tables as
/// their owners in one (`as_owner`), and the owner's code (a domain check, a generated
/// column) must not call back into pgvc there.
pub fn with_spi<T>(f: impl FnOnce() -> VcResult<T>) -> VcResult<T> {
    // SAFETY: plain read of backend state.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        return Err(VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "pgvc functions cannot run inside a security-restricted operation",
        )
        .hint("a table's own code (domain checks, generated columns, triggers) cannot call pgvc while pgvc reads or writes that table"));
    }
    Spi::connect_mut(|_client| {
        if CALLER.with(|c| c.get()).is_some() {
            // Called from inside another pgvc function (through SQL): already set up.
            return f();
        }
        let owner = extension_owner()?;
        let flags = pg_sys::SECURITY_LOCAL_USERID_CHANGE;
        switched(owner, flags, &PINNED_SETTINGS, true, |caller| {
            struct Forget;
            impl Drop for Forget {
                fn drop(&mut self) {
                    CALLER.with(|c| c.set(None));
                }
            }
            CALLER.with(|c| c.set(Some(caller)));
            let _forget = Forget;
            f()
        })
    })
}

/// The role that owns the pgvc extension (and so its tables). Read once per backend and
/// per installation of the extension (a new CREATE EXTENSION has a new OID).
fn extension_owner() -> VcResult<pg_sys::Oid> {
    thread_local! {
        static OWNER: std::cell::Cell<Option<(pg_sys::Oid, pg_sys::Oid)>> =
            const { std::cell::Cell::new(None) };
    }
    // SAFETY: a catalog index lookup by name; missing_ok, so it does not raise.
    let ext = unsafe { pg_sys::get_extension_oid(c"pgvc".as_ptr(), true) };
    if let Some((e, owner)) = OWNER.with(|o| o.get()) {
        if e == ext {
            return Ok(owner);
        }
    }
    let owner = one_value(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE oid = $1",
        vec![Arg::Oid(ext)],
    )?
    .map(|v| v.oid())
    .transpose()?
    .ok_or_else(|| {
        VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the pgvc extension is not installed in this database",
        )
    })?;
    OWNER.with(|o| o.set(Some((ext, owner))));
    Ok(owner)
}

/// Whether the calling role has `privilege` ("SELECT", "INSERT, UPDATE, DELETE", ...:
/// all of them) on relation `relid`.
pub fn caller_may(relid: pg_sys::Oid, privilege: &str) -> VcResult<bool> {
    // A superuser has every privilege: no query (commits check every tracked table).
    // SAFETY: a syscache lookup of a role by OID.
    if unsafe { pg_sys::superuser_arg(caller()) } {
        return Ok(true);
    }
    one_bool(
        "SELECT pg_catalog.has_table_privilege($1, $2, $3)",
        vec![
            Arg::Oid(caller()),
            Arg::Oid(relid),
            Arg::Text(Some(privilege.to_string())),
        ],
    )
}

/// Whether the calling role owns relation `relid` (is a member of its owner) or is a
/// superuser: what ALTER TABLE and DROP TABLE need.
pub fn caller_owns(relid: pg_sys::Oid) -> VcResult<bool> {
    one_bool(
        "SELECT r.rolsuper OR pg_has_role(r.oid, c.relowner, 'USAGE') \
         FROM pg_roles r, pg_class c WHERE r.oid = $1 AND c.oid = $2",
        vec![Arg::Oid(caller()), Arg::Oid(relid)],
    )
}

/// File access for `file://` remotes, checked against the caller's own membership.
pub fn require_file_access(role: &str, url: &str) -> VcResult<()> {
    require_membership(
        role,
        format!("permission denied for remote {url}: file:// remotes need superuser or {role}"),
    )
}

/// Refuses a caller that is neither a superuser nor a member of `role`, saying
/// `what` it tried.
pub fn require_role(role: &str, what: &str) -> VcResult<()> {
    require_membership(
        role,
        format!("permission denied: {what} needs superuser or {role}"),
    )
}

/// The caller's own membership of `role` (or superuser): pgvc's functions run as
/// its owner, so the caller's rights are asked for by OID. `message` if not.
fn require_membership(role: &str, message: String) -> VcResult<()> {
    let ok = one_bool(
        "SELECT pg_has_role($2, $1, 'MEMBER') OR (SELECT rolsuper FROM pg_roles WHERE oid = $2)",
        vec![Arg::Text(Some(role.to_string())), Arg::Oid(caller())],
    )?;
    if ok {
        return Ok(());
    }
    Err(VcError::new(
        pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
    )
    .hint(format!("GRANT {role} TO <role>, as a superuser")))
}

/// The calling role's name.
pub fn caller_name() -> VcResult<String> {
    Ok(one_text(
        "SELECT pg_catalog.pg_get_userbyid($1)::text",
        vec![Arg::Oid(caller())],
    )?
    .unwrap_or_default())
}

/// `with_spi` without the check, for the write guard (a trigger on user tables, which
/// may fire inside any operation).
pub fn with_spi_anywhere<T>(f: impl FnOnce() -> VcResult<T>) -> VcResult<T> {
    Spi::connect_mut(|_client| f())
}

/// Runs `f` with `session_replication_role = replica` (user triggers, FK checks and
/// pgvc's own key logging off), then puts the previous value back. On error the
/// transaction (or subtransaction) abort restores it.
pub fn with_replica_role<T>(f: impl FnOnce() -> VcResult<T>) -> VcResult<T> {
    let saved = one_text("SELECT current_setting('session_replication_role')", vec![])?
        .unwrap_or_else(|| "origin".into());
    exec(
        "SELECT set_config('session_replication_role', 'replica', true)",
        vec![],
    )?;
    let out = f()?;
    exec(
        "SELECT set_config('session_replication_role', $1, true)",
        vec![Arg::Text(Some(saved))],
    )?;
    Ok(out)
}

/// Runs `f` as `owner` (the owner of the user table it reads or writes) in a
/// security-restricted context, as PostgreSQL runs VACUUM, ANALYZE and REINDEX.
///
/// A table's owner controls code that reading and writing it may run: domain checks
/// on key casts, CHECK constraints, generated columns, triggers enabled ALWAYS. Run
/// with the caller's rights, that code would act as whoever called pgvc (a superuser,
/// the worker); run here, it has the owner's rights and cannot change role, create
/// temporary objects or leave settings behind (`NewGUCNestLevel`). `row_security` is
/// off: a policy the owner forces on the table makes the read fail instead of
/// silently returning fewer rows (a commit would record the rest as deleted).
///
/// On an ERROR the (sub)transaction abort restores the user and the settings.
/// Takes an ACCESS EXCLUSIVE lock on `relid` if no other transaction holds any lock
/// on it (never waits); held to the end of the transaction.
pub fn try_lock_exclusive(relid: pg_sys::Oid) -> bool {
    // SAFETY: a conditional table lock, as LOCK TABLE ... NOWAIT takes.
    unsafe { pg_sys::ConditionalLockRelationOid(relid, pg_sys::AccessExclusiveLock as i32) }
}

pub fn as_owner<T>(owner: pg_sys::Oid, f: impl FnOnce() -> VcResult<T>) -> VcResult<T> {
    if owner == pg_sys::InvalidOid {
        return Err(VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "pgvc: reading a table without knowing its owner",
        ));
    }
    switched(
        owner,
        pg_sys::SECURITY_RESTRICTED_OPERATION,
        &[(c"row_security", c"off")],
        false,
        |_| f(),
    )
}

/// Runs `f` as `user`, with `flags` added to the security context and `settings` set
/// for its duration (a new GUC nest level); then puts back the user, the context and
/// the settings. `f` gets the user it replaced. With `keep_sets`, a plain `SET` made
/// inside survives (as for a function with SET clauses); without, every setting made
/// inside is undone (as VACUUM undoes what index functions set). On an ERROR the
/// (sub)transaction abort restores the user id and the nest level.
fn switched<T>(
    user: pg_sys::Oid,
    flags: u32,
    settings: &[(&std::ffi::CStr, &std::ffi::CStr)],
    keep_sets: bool,
    f: impl FnOnce(pg_sys::Oid) -> T,
) -> T {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_ctx: std::ffi::c_int = 0;
    // SAFETY: backend state saved here and restored below.
    let nest = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(user, saved_ctx | flags as std::ffi::c_int);
        let nest = pg_sys::NewGUCNestLevel();
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        nest
    };
    let out = f(saved_user);
    // SAFETY: restores exactly what was saved above.
    unsafe {
        pg_sys::AtEOXact_GUC(keep_sets, nest);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx);
    }
    out
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    /// Finding 5: when the cache was full it freed every kept plan, including one a
    /// statement of ours was still running (user code it ran can call pgvc again).
    #[pg_test]
    fn a_running_plan_survives_a_full_cache() {
        with_spi(|| {
            let sql = "SELECT 424242::int8";
            let c = CString::new(sql).unwrap();
            let held = prepared(sql, &c, &mut [], true)?;
            for i in 0..MAX_KEPT_PLANS + 10 {
                query_here(&format!("SELECT {i}::int8 + 1"), false, vec![], &[])?;
            }
            assert!(kept_plans() <= MAX_KEPT_PLANS);
            let still = PLANS.with(|p| {
                p.borrow()
                    .get(&(sql.to_string(), vec![]))
                    .map(|e| e.ptr == held.ptr as usize)
            });
            assert_eq!(still, Some(true), "the plan in use stays kept");
            drop(held);
            // Released: the next eviction may free it.
            let in_use =
                PLANS.with(|p| p.borrow().get(&(sql.to_string(), vec![])).map(|e| e.in_use));
            assert_eq!(in_use, Some(0));
            assert_eq!(
                query(sql, vec![], &[])?,
                vec![vec![Cell::Text("424242".into())]]
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}", e.message));
    }

    /// A statement text holding two statements is refused before it runs.
    #[pg_test]
    fn two_statements_are_refused() {
        with_spi(|| {
            let e = query_here(
                "SELECT 1; CREATE TABLE public.not_created (x int)",
                true,
                vec![],
                &[],
            )
            .unwrap_err();
            assert!(e.message.contains("holds 2 statements"), "{}", e.message);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT to_regclass('public.not_created')::text").unwrap(),
            None
        );
    }
}
