//! Tracking: start and stop recording a table's changes (`vc.track` / `vc.untrack`,
//! whose SQL entry points are in `api/track.rs`), and checking that it still records.
//!
//! Tracking installs, per table: a key log `vc.log_<oid>` (the primary-key columns
//! only, no index: appends are cheap and `vc.commit()` de-duplicates), a trigger
//! function and statement-level AFTER triggers with transition tables, so a
//! multi-row statement costs one INSERT ... SELECT into the log, not a round trip
//! per row; and a TRUNCATE trigger that marks the table for a full comparison.

use super::catalog::{relation_name, table_schema, tracked_by_relid, Tracked};
use super::error::{VcError, VcResult};
use super::spi::{exec, one_row, query, Arg};
use super::sql::{self, QualName};
use crate::codec::Cell;
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode as Code;

/// Column types whose values are cluster-specific identifiers: their text would not
/// mean the same thing on another cluster, so versioning them would corrupt data.
const REFUSED_TYPES: &[&str] = &[
    "tid",
    "xid",
    "xid8",
    "cid",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regclass",
    "regtype",
    "regrole",
    "regnamespace",
    "regconfig",
    "regdictionary",
    "regcollation",
    "pg_lsn",
    "txid_snapshot",
    "pg_snapshot",
];

fn check_trackable(relid: Oid, name: &str) -> VcResult<()> {
    // Rows are encoded from their text output; only UTF-8 text is the same bytes on
    // every cluster (and only UTF-8 is valid MessagePack str).
    let enc = query("SELECT pg_catalog.getdatabaseencoding()", vec![], &[])?;
    if !matches!(enc.first().and_then(|r| r.first()), Some(Cell::Text(e)) if e == "UTF8") {
        return Err(VcError::new(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            "pgvc needs a database with encoding UTF8",
        )
        .hint("create the database with ENCODING 'UTF8' and load the data there"));
    }
    let row = one_row(
        "SELECT c.relkind::text, c.relpersistence::text, c.relispartition, n.nspname::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        vec![Arg::Oid(relid)],
    )?
    .ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("table {name} does not exist"),
        )
    })?;
    let (kind, persistence, partition, nsp) = (
        row[0].text()?,
        row[1].text()?,
        row[2].bool()?,
        row[3].text()?,
    );
    let refuse = |msg: String, hint: &str| {
        Err(VcError::new(Code::ERRCODE_WRONG_OBJECT_TYPE, msg).hint(hint.to_string()))
    };
    if kind != "r" && kind != "p" {
        return refuse(
            format!("{name} is not a table"),
            "only ordinary and partitioned tables can be tracked",
        );
    }
    if persistence == "t" {
        return refuse(
            format!("{name} is a temporary table"),
            "temporary tables vanish with the session; track a permanent table",
        );
    }
    if partition {
        return refuse(
            format!("{name} is a partition"),
            "track the partitioned parent table instead",
        );
    }
    if nsp == "vc" || nsp.starts_with("pg_") || nsp == "information_schema" {
        return refuse(
            format!("{name} belongs to a system or pgvc schema"),
            "track user tables only",
        );
    }
    if tracked_by_relid(relid)?.is_some() {
        return Err(VcError::new(
            Code::ERRCODE_DUPLICATE_OBJECT,
            format!("table {name} is already tracked"),
        )
        .hint("SELECT vc.untrack(...) first to start over"));
    }
    let bad = one_row(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
         JOIN pg_type b ON b.oid = COALESCE(NULLIF(t.typbasetype, 0), t.oid) \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
           AND (b.typname = ANY($2) OR e.typname = ANY($2) OR t.typtype = 'p') LIMIT 1",
        vec![
            Arg::Oid(relid),
            Arg::TextArray(REFUSED_TYPES.iter().map(|s| Some(s.to_string())).collect()),
        ],
    )?;
    if let Some(r) = bad {
        return Err(VcError::new(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "column {} of {name} has type {} which pgvc cannot version",
                r[0].text()?,
                r[1].text()?
            ),
        )
        .hint("its values are identifiers local to this cluster; store them as text or bigint instead"));
    }
    Ok(())
}

/// (Re)creates the key log `vc.log_<id>` for the table's current primary key and the
/// trigger function that fills it. Without a primary key the function logs nothing:
/// the table is then compared in full (docs/SCHEMA.md).
fn create_log(relid: Oid, oid: &sql::LogId) -> VcResult<()> {
    let schema = table_schema(relid)?;
    // Names and types as this database's catalog gives them (format_type).
    let mut cols = Vec::new();
    for c in schema.key_columns() {
        cols.push((c.name.clone(), sql::SqlType::resolve(&c.type_name)?));
    }
    // (DROP ... IF EXISTS of a missing log would print a NOTICE on every vc.track().)
    let has_log = query(
        "SELECT 1 FROM pg_class WHERE relnamespace = 'vc'::regnamespace AND relname = $1",
        vec![Arg::Text(Some(sql::log_name(oid)))],
        &[],
    )?;
    if !has_log.is_empty() {
        exec(sql::drop_log(oid), vec![])?;
    }
    exec(sql::create_log(oid, &cols), vec![])?;
    // Writers of the table append to its key log as themselves: INSERT only. The
    // columns are NOT NULL, so what another role appends can cost a lookup at the next
    // commit, never a failed or wrong one (reading or deleting the log stays with
    // pgvc's owner). A SECURITY DEFINER function with a pinned search_path instead
    // cost ~20% of single-row write throughput.
    for g in sql::log_grants(oid) {
        exec(g, vec![])?;
    }
    exec(
        sql::create_log_trigger_function(oid, &schema.primary_key, native_library()?.as_deref()),
        vec![],
    )?;
    exec(sql::revoke_trigger_function(oid), vec![])?;
    Ok(())
}

/// The library of pgvc's own C functions (`probin` of `vc._log_keys`), when the key
/// logs' trigger functions can be native: creating a C-language function takes a
/// superuser, and pgvc's functions run as the extension's owner (`spi::with_spi`).
fn native_library() -> VcResult<Option<String>> {
    // SAFETY: reads of backend state and a syscache lookup.
    if !unsafe { pgrx::pg_sys::superuser_arg(pgrx::pg_sys::GetUserId()) } {
        return Ok(None);
    }
    super::spi::one_text(
        "SELECT probin FROM pg_catalog.pg_proc \
         WHERE oid = pg_catalog.to_regprocedure('vc._log_keys()')",
        vec![],
    )
}

/// After `ALTER TABLE` of a tracked table (called by the `vc_on_alter` event trigger):
/// when the primary key's columns (names or types) changed, the key log is rebuilt
/// for it, and the next commit compares the whole table. Other DDL keeps the log and
/// what it holds: whether the committed tree still holds the rows is decided at the
/// next commit (docs/SCHEMA.md).
pub fn retrack(relid: Oid) -> VcResult<()> {
    let Some(t) = tracked_by_relid(relid)? else {
        return Ok(());
    };
    let schema = table_schema(relid)?;
    let logged = query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         WHERE c.relnamespace = 'vc'::regnamespace AND c.relname = $1 \
           AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        vec![Arg::Text(Some(sql::log_name(&t.log_id())))],
        &[],
    )?;
    let key: Vec<(String, String)> = schema
        .key_columns()
        .iter()
        .map(|c| (c.name.clone(), c.type_name.clone()))
        .collect();
    let logged: Vec<(String, String)> = logged
        .iter()
        .map(|r| {
            let t = |i: usize| match r.get(i) {
                Some(Cell::Text(t)) => t.clone(),
                _ => String::new(),
            };
            (t(0), t(1))
        })
        .collect();
    if !key.is_empty() && key == logged {
        return Ok(());
    }
    create_log(relid, &t.log_id())?;
    exec(
        "UPDATE vc.tracked SET full_scan = true WHERE relid = $1",
        vec![Arg::Oid(relid)],
    )?;
    Ok(())
}

/// Tracking installs triggers on the table: the caller needs the TRIGGER privilege on
/// it (as `CREATE TRIGGER` would), whatever pgvc's own rights.
fn require_trigger_right(relid: Oid, name: &str, what: &str) -> VcResult<()> {
    if crate::pg::spi::caller_may(relid, "TRIGGER")? {
        return Ok(());
    }
    Err(VcError::new(
        Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied: {what} needs the TRIGGER privilege on {name}"),
    )
    .hint(format!(
        "GRANT TRIGGER ON {name} TO <role>, or run it as the table's owner"
    )))
}

pub fn track(relid: Oid) -> VcResult<()> {
    track_as(relid, None)
}

/// `track`, with the identity `id` the table has in history (a table a checkout
/// creates from a commit), or a new one.
pub fn track_as(relid: Oid, id: Option<u64>) -> VcResult<()> {
    let name = relation_name(relid)?;
    require_trigger_right(relid, &name, "vc.track()")?;
    check_trackable(relid, &name)?;
    // The table's identity (docs/SCHEMA.md): new, so that a table dropped and made
    // again under the same name is another table in history. It names the key log.
    let id = id.filter(|i| *i != 0).unwrap_or_else(|| {
        crate::repo::schema::new_table_id(&format!("{name}@{}", crate::pg::progress::now_us()))
    });
    let oid = sql::LogId::Table(id);
    create_log(relid, &oid)?;
    install_triggers(&QualName::parse("table name", &name)?, &oid)?;
    for part in partitions(relid)? {
        install_triggers(&part, &oid)?;
    }
    exec(
        concat!(
            "INSERT INTO vc.tracked (relid, log_table, full_scan, table_id, recorded_at) \
             VALUES ($1, $2, true, $3, ",
            recorded_here!("$1::oid"),
            ")"
        ),
        vec![
            Arg::Oid(relid),
            Arg::Text(Some(sql::log_name(&oid))),
            Arg::Int8(id as i64),
        ],
    )?;
    Ok(())
}

/// The tracking triggers of table `oid`, on `table` (the table itself or one of its
/// partitions: a statement that names a partition fires only that partition's
/// statement triggers, so each partition logs its own direct writes into the
/// parent's key log).
fn install_triggers(table: &QualName, oid: &sql::LogId) -> VcResult<()> {
    // The guard: standbys and fenced servers refuse writes (skipped in replica role,
    // which the apply of replicated commits uses).
    for stmt in sql::create_tracking_triggers(table, oid) {
        exec(stmt, vec![])?;
    }
    Ok(())
}

/// Every partition below a partitioned table, at any depth (empty for a plain table).
fn partitions(relid: Oid) -> VcResult<Vec<QualName>> {
    let rows = query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_partition_tree($1) p \
         JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE p.relid <> $1 ORDER BY 1",
        vec![Arg::Oid(relid)],
        &[],
    )?;
    rows.into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Cell::Text(t)) => Some(QualName::parse("partition name", &t)),
            _ => None,
        })
        .collect()
}

/// Checks that the table and every partition carry pgvc's triggers exactly as
/// `vc.track()` made them: the three key-logging triggers (right events, transition
/// tables, function), the TRUNCATE marker and the write guard, enabled, for every
/// column, with no WHEN clause. Partitions attached or created after `vc.track()`
/// have none; a table owner may drop, disable or replace any of them, and tracking
/// would silently stop. With `install`, puts them back. Returns whether any relation
/// was missing one: its unlogged writes are then found by comparing the whole table.
pub fn tracking_damaged(t: &Tracked, install: bool) -> VcResult<bool> {
    let oid = u32::from(t.relid);
    // Repaired with another table in this call: its keys went with the old log, and
    // the caller's record of it (full_scan) predates the repair.
    if REPAIRED.with(|s| s.borrow_mut().remove(&oid)) {
        return Ok(true);
    }
    if INTACT.with(|s| s.borrow().contains(&oid)) {
        return Ok(false);
    }
    // A record made under another OID: the database was restored from a dump (which
    // keeps the key log, trigger function and triggers, named by the table's identity,
    // but not the attribute numbers and storage the record holds). A key log named
    // otherwise than the table's identity says: made by pgvc 0.1 (by OID).
    let moved = one_row(
        concat!(
            "SELECT log_table <> $2 OR recorded_at IS DISTINCT FROM ",
            recorded_here!("relid::oid"),
            " FROM vc.tracked WHERE relid = $1"
        ),
        vec![
            Arg::Oid(t.relid),
            Arg::Text(Some(sql::log_name(&t.log_id()))),
        ],
    )?
    .map(|r| r[0].bool())
    .transpose()?
    .unwrap_or(false);
    if moved {
        if !install {
            return Ok(true);
        }
        repair_restored()?;
        return Ok(true);
    }
    let damaged = check_triggers(t, install)?;
    if !damaged {
        remember_intact(oid);
    }
    Ok(damaged)
}

/// After a restore or an upgrade from 0.1, every tracked table at once (a legacy log
/// named by OID may have the name another table's log needs): a key log, trigger
/// function and triggers named by the table's identity for each that lacks them, then
/// the legacy logs and functions go; each record is made anew and each table compared
/// in full once.
fn repair_restored() -> VcResult<()> {
    let moved: Vec<(Tracked, String, bool)> = super::catalog::tracked_tables()?
        .into_iter()
        .map(|t| {
            let row = one_row(
                concat!(
                    "SELECT log_table, recorded_at IS DISTINCT FROM ",
                    recorded_here!("relid::oid"),
                    " FROM vc.tracked WHERE relid = $1"
                ),
                vec![Arg::Oid(t.relid)],
            )?;
            let (stored, restored) = match row {
                Some(r) => (r[0].text()?, r[1].bool()?),
                None => (String::new(), false),
            };
            Ok((t, stored, restored))
        })
        .collect::<VcResult<Vec<_>>>()?
        .into_iter()
        .filter(|(t, stored, restored)| *restored || *stored != sql::log_name(&t.log_id()))
        .collect();
    for (t, stored, _) in &moved {
        if *stored != sql::log_name(&t.log_id()) {
            create_log(t.relid, &t.log_id())?;
        }
        check_triggers(t, true)?;
        REPAIRED.with(|s| s.borrow_mut().insert(u32::from(t.relid)));
    }
    let tracked = super::catalog::tracked_tables()?;
    for (t, stored, _) in &moved {
        forget_dumped_log(t, stored, &tracked)?;
    }
    Ok(())
}

/// After a restore or an upgrade: a key log and trigger function no tracked table is
/// named by any more go, and the record of the table is made anew (its attribute
/// numbers and storage are this database's now); the table is compared in full once.
fn forget_dumped_log(t: &Tracked, stored: &str, tracked: &[Tracked]) -> VcResult<()> {
    let old = sql::LogId::from_log_name(stored);
    // The old name may be another tracked table's: its log and function stay.
    let taken = match &old {
        Some(o) => tracked.iter().any(|x| x.log_id() == *o),
        None => true,
    };
    if let Some(old) = old.filter(|_| !taken) {
        let has = |name: String| -> VcResult<bool> {
            Ok(one_row(
                "SELECT 1 FROM pg_class WHERE relnamespace = 'vc'::regnamespace AND relname = $1",
                vec![Arg::Text(Some(name))],
            )?
            .is_some())
        };
        if has(sql::log_name(&old))? {
            exec(sql::drop_log(&old), vec![])?;
        }
        let has_fn = one_row(
            "SELECT 1 FROM pg_proc WHERE pronamespace = 'vc'::regnamespace AND proname = $1",
            vec![Arg::Text(Some(sql::trigger_function_name(&old)))],
        )?;
        if has_fn.is_some() {
            exec(sql::drop_trigger_function(&old), vec![])?;
        }
    }
    exec(
        concat!(
            "UPDATE vc.tracked SET log_table = $2, full_scan = true, attnums = NULL, tags = NULL, \
             storage = NULL, recorded_at = ",
            recorded_here!("relid::oid"),
            " WHERE relid = $1"
        ),
        vec![
            Arg::Oid(t.relid),
            Arg::Text(Some(sql::log_name(&t.log_id()))),
        ],
    )?;
    Ok(())
}

thread_local! {
    /// Tracked tables whose triggers (and their partitions') were found intact since
    /// this backend last processed a relcache invalidation. Dropping, disabling or
    /// creating a trigger, and attaching or creating a partition, invalidate the
    /// relation's relcache entry in every backend before the change can be seen, so a
    /// table stays in this set only while nothing that matters can have changed: the
    /// catalog query runs once per change, not at every commit.
    static INTACT: std::cell::RefCell<std::collections::HashSet<u32>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
    static CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tables a repair (`repair_restored`) made anew, not yet read since: their next
    /// read is a full comparison whatever the caller's record says. (Kept across an
    /// aborted transaction, it costs one needless full comparison, never a missed row.)
    static REPAIRED: std::cell::RefCell<std::collections::HashSet<u32>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

/// Any relcache invalidation forgets every table (cheap, and safe whatever the relid).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn forget_intact(_arg: pgrx::pg_sys::Datum, _relid: Oid) {
    INTACT.with(|s| s.borrow_mut().clear());
}

fn remember_intact(oid: u32) {
    if !CALLBACK.with(|c| c.replace(true)) {
        // SAFETY: registers a plain function for this backend's life (once).
        unsafe {
            pgrx::pg_sys::CacheRegisterRelcacheCallback(
                Some(forget_intact),
                pgrx::pg_sys::Datum::from(0usize),
            )
        };
    }
    INTACT.with(|s| s.borrow_mut().insert(oid));
}

fn check_triggers(t: &Tracked, install: bool) -> VcResult<bool> {
    let oid = t.log_id();
    let rows = query(
        "SELECT format('%I.%I', n.nspname, c.relname) \
         FROM (SELECT $1::regclass AS rel UNION ALL \
               SELECT p.relid FROM pg_partition_tree($1) p WHERE p.relid <> $1) r \
         JOIN pg_class c ON c.oid = r.rel JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (SELECT count(*) FROM pg_trigger g \
                WHERE g.tgrelid = r.rel AND g.tgenabled IN ('O', 'A') AND g.tgqual IS NULL \
                  AND pg_catalog.cardinality(g.tgattr::int2[]) = 0 AND ( \
                  (g.tgname = 'vc_track_insert' AND g.tgtype = 4 AND g.tgfoid = to_regprocedure($2) \
                   AND g.tgnewtable = 'vc_new' AND g.tgoldtable IS NULL) OR \
                  (g.tgname = 'vc_track_update' AND g.tgtype = 16 AND g.tgfoid = to_regprocedure($2) \
                   AND g.tgnewtable = 'vc_new' AND g.tgoldtable = 'vc_old') OR \
                  (g.tgname = 'vc_track_delete' AND g.tgtype = 8 AND g.tgfoid = to_regprocedure($2) \
                   AND g.tgnewtable IS NULL AND g.tgoldtable = 'vc_old') OR \
                  (g.tgname = 'vc_track_truncate' AND g.tgtype = 32 \
                   AND g.tgfoid = 'vc._on_truncate()'::regprocedure) OR \
                  (g.tgname = 'vc_guard' AND g.tgtype = 62 AND g.tgfoid = 'vc._guard()'::regprocedure))) <> 5 \
         ORDER BY 1",
        vec![
            Arg::Oid(t.relid),
            Arg::Text(Some(format!("vc.{}()", sql::trigger_function_name(&oid)))),
        ],
        &[],
    )?;
    let mut damaged = Vec::new();
    for r in rows {
        if let Some(Cell::Text(name)) = r.into_iter().next() {
            damaged.push(QualName::parse("table name", &name)?);
        }
    }
    if install {
        for rel in &damaged {
            // Only those present (IF EXISTS would print a NOTICE for each missing one).
            let present = query(
                "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal",
                vec![Arg::Text(Some(rel.to_string()))],
                &[],
            )?;
            for name in sql::TRACKING_TRIGGERS {
                if present
                    .iter()
                    .any(|r| matches!(r.first(), Some(Cell::Text(n)) if n == name))
                {
                    exec(sql::drop_trigger(name, rel), vec![])?;
                }
            }
            install_triggers(rel, &oid)?;
        }
    }
    Ok(!damaged.is_empty())
}

pub fn untrack(relid: Oid) -> VcResult<()> {
    let name = relation_name(relid)?;
    require_trigger_right(relid, &name, "vc.untrack()")?;
    if tracked_by_relid(relid)?.is_none() {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("table {name} is not tracked"),
        )
        .hint("SELECT relid::regclass FROM vc.tracked lists the tracked tables"));
    };
    let mut tables = partitions(relid)?;
    tables.push(QualName::parse("table name", &name)?);
    for table in &tables {
        for stmt in sql::drop_tracking_triggers(table) {
            exec(stmt, vec![])?;
        }
    }
    // Row owners are a rule of tracked tables (vc.set_row_owner).
    for stmt in sql::drop_row_owner_triggers(&QualName::parse("table name", &name)?) {
        exec(stmt, vec![])?;
    }
    // By the stored name: a 0.1 table's log is named by its OID until its first commit.
    let stored = one_row(
        "SELECT log_table FROM vc.tracked WHERE relid = $1",
        vec![Arg::Oid(relid)],
    )?
    .map(|r| r[0].text())
    .transpose()?;
    if let Some(oid) = stored.as_deref().and_then(sql::LogId::from_log_name) {
        exec(sql::drop_trigger_function(&oid), vec![])?;
        exec(sql::drop_log(&oid), vec![])?;
    }
    exec(
        "DELETE FROM vc.tracked WHERE relid = $1",
        vec![Arg::Oid(relid)],
    )?;
    Ok(())
}
