//! Moving rows between live tables and trees: reading the changed rows of a tracked
//! table (from its key log, or by a full sorted scan), and writing rows back.

use super::catalog::Tracked;
use super::error::VcResult;
use super::spi::{as_owner, exec, query, Arg, Cursor};
use super::sql;
use super::sql::Plan;
use crate::codec::{
    decode_key, decode_row, encode_key, encode_row, keyless_key, number_copies, Cell,
};
use crate::repo::worktree::{compare_full, compare_keys, read_mode, ReadMode};
use crate::store::ChunkStore;
use pgrx::pg_sys;
use std::collections::{HashSet, VecDeque};

/// Rows fetched per round trip: big enough to amortise SPI, small enough for flat memory.
const BATCH: i64 = 5000;

pub use crate::repo::worktree::Change;

/// Splits a fetched row (key columns then value columns) into encoded key and row.
/// A keyless table's row gets the key of copy 0 (`Scan` numbers the copies).
pub fn encode_fetched(plan: &Plan, mut row: Vec<Cell>) -> VcResult<(Vec<u8>, Vec<u8>)> {
    let mut values = row.split_off(plan.key_cols.len());
    // Past the padded columns, trailing NULLs are left out (docs/SCHEMA.md).
    while values.len() > plan.padded && values.last() == Some(&Cell::Null) {
        values.pop();
    }
    if plan.keyless {
        let row = encode_row(&values);
        return Ok((keyless_key(&row, 0), row));
    }
    let texts: Vec<&str> = row
        .iter()
        .map(|c| match c {
            Cell::Text(t) => t.as_str(),
            _ => "",
        })
        .collect();
    Ok((encode_key(&plan.key_kinds, &texts)?, encode_row(&values)))
}

/// A full scan of a table in encoded-key order, streamed in batches.
/// When the SQL order of the key cannot match the encoded order (see
/// `Plan::sql_order_matches`), the scan is read whole and sorted in memory: so is a
/// table without a primary key, whose identical rows are then numbered as copies.
pub struct Scan<'p> {
    plan: &'p Plan,
    cursor: Cursor,
    buf: VecDeque<Vec<Cell>>,
    done: bool,
    sorted: Option<std::vec::IntoIter<(Vec<u8>, Vec<u8>)>>,
}

impl<'p> Scan<'p> {
    pub fn open(plan: &'p Plan) -> VcResult<Scan<'p>> {
        let cursor = as_owner(plan.owner, || {
            Cursor::open(sql::scan(plan), vec![], plan.raw_mask())
        })?;
        let mut scan = Scan {
            plan,
            cursor,
            buf: VecDeque::new(),
            done: false,
            sorted: None,
        };
        if !plan.sql_order_matches() {
            let mut all = Vec::new();
            for e in scan.by_ref() {
                all.push(e?);
            }
            all.sort_by(|a, b| a.0.cmp(&b.0));
            if plan.keyless {
                number_copies(&mut all);
            }
            scan.sorted = Some(all.into_iter());
        }
        Ok(scan)
    }
}

impl Iterator for Scan<'_> {
    type Item = VcResult<(Vec<u8>, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(sorted) = &mut self.sorted {
            return sorted.next().map(Ok);
        }
        if self.buf.is_empty() && !self.done {
            pgrx::check_for_interrupts!();
            let cursor = &mut self.cursor;
            match as_owner(self.plan.owner, || Ok(cursor.fetch(BATCH))) {
                Ok(rows) => self.buf.extend(rows),
                Err(e) => return Some(Err(e)),
            }
            self.done = self.buf.is_empty();
        }
        let row = self.buf.pop_front()?;
        Some(encode_fetched(self.plan, row))
    }
}

/// Distinct primary keys (as output text) recorded in a table's key log. With
/// `consume`, the log rows read are deleted in the same statement, so exactly the
/// keys we process leave the log; rows logged by transactions still in flight are
/// invisible to that statement and stay for a later commit.
pub fn logged_keys(t: &Tracked, plan: &Plan, consume: bool) -> VcResult<Vec<Vec<String>>> {
    let rows = query(
        sql::read_log(&t.log_id(), &plan.key_cols, consume),
        vec![],
        &[],
    )?;
    if consume {
        truncate_emptied_log(t, rows.len() as u64)?;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in rows {
        // Key logs are NOT NULL: a key that is not all text is an oversized row
        // (see `sql::read_log`), which cannot name a row.
        let k: Option<Vec<String>> = r
            .into_iter()
            .map(|c| match c {
                Cell::Text(t) => Some(t),
                _ => None,
            })
            .collect();
        if let Some(k) = k.filter(|k| k.len() == plan.key_cols.len()) {
            if seen.insert(k.clone()) {
                out.push(k);
            }
        }
    }
    Ok(out)
}

/// Rows a commit must have emptied from a key log before it truncates the log.
const TRUNCATE_AFTER: u64 = 1000;

/// After a commit emptied `n` rows from a key log: DELETE leaves them dead, and every
/// later read of the log scans their pages until a vacuum. A log emptied of many rows
/// is truncated instead (a new, empty file) when no other transaction uses it: the
/// lock is conditional, so a writer is never waited for, and it is held off only for
/// the rest of this commit. (A few dead rows of small commits are pruned as the log's
/// pages are read, and vacuumed by autovacuum.)
pub fn truncate_emptied_log(t: &Tracked, n: u64) -> VcResult<()> {
    // Only in READ COMMITTED can a statement see what committed after the transaction
    // began (the emptiness check below needs that); otherwise leave it to vacuum.
    // SAFETY: plain read of a backend global.
    let read_committed = unsafe { pg_sys::XactIsoLevel } == pg_sys::XACT_READ_COMMITTED as i32;
    if n < TRUNCATE_AFTER || !read_committed {
        return Ok(());
    }
    let oid = t.log_id();
    let Some(row) = super::spi::one_row(sql::log_is_empty(&oid), vec![])? else {
        return Ok(());
    };
    let relid = match row.get(1) {
        Some(super::spi::Value::Oid(o)) => *o,
        _ => return Ok(()),
    };
    // Rows another transaction appended and committed since our DELETE stay: only an
    // empty log is truncated, checked under the lock and with a snapshot taken then
    // (TRUNCATE is not MVCC-safe: the commit's own snapshot, pinned before the DELETE,
    // would not see rows committed since, and truncating them would lose their keys).
    if super::spi::try_lock_exclusive(relid)
        && super::spi::with_latest_snapshot(|| {
            super::spi::one_bool(sql::log_is_empty(&oid), vec![])
        })?
    {
        exec(sql::truncate_log(&oid), vec![])?;
    }
    Ok(())
}

/// Keys read from a log at most; past this, the table is compared in full (streaming,
/// flat memory) instead. Bounds memory whatever was appended to the log, by writers or
/// by any role that may append to it.
pub const MAX_LOGGED_KEYS: i64 = 500_000;

/// Whether the key log holds too many keys to read (see [`MAX_LOGGED_KEYS`]).
pub fn log_too_long(t: &Tracked) -> VcResult<bool> {
    match super::spi::one_value(
        sql::log_longer_than(&t.log_id()),
        vec![Arg::Int8(MAX_LOGGED_KEYS)],
    )? {
        Some(v) => v.bool(),
        None => Ok(false),
    }
}

/// The encoded keys recorded in a table's key log (read only), sorted, distinct.
pub fn logged_key_bytes(t: &Tracked, plan: &Plan) -> VcResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for k in logged_keys(t, plan, false)? {
        let refs: Vec<&str> = k.iter().map(|s| s.as_str()).collect();
        out.push(encode_key(&plan.key_kinds, &refs)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The live rows for the given keys: `(encoded key, Some(encoded row))` for rows that
/// exist, `(encoded key, None)` for keys with no row. Sorted by key.
/// `(encoded key, encoded row or None)`, sorted by key.
pub type KeyedRows = Vec<(Vec<u8>, Option<Vec<u8>>)>;

pub fn live_rows(plan: &Plan, keys: &[Vec<String>]) -> VcResult<KeyedRows> {
    let sql = sql::rows_by_key(plan)?;
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(BATCH as usize) {
        let args = (0..plan.key_cols.len())
            .map(|i| Arg::TextArray(batch.iter().map(|k| Some(k[i].clone())).collect()))
            .collect();
        let mut found = HashSet::new();
        let rows = as_owner(plan.owner, || query(sql.clone(), args, &plan.raw_mask()))?;
        for row in rows {
            let (k, v) = encode_fetched(plan, row)?;
            found.insert(k.clone());
            out.push((k, Some(v)));
        }
        for k in batch {
            let refs: Vec<&str> = k.iter().map(|s| s.as_str()).collect();
            let enc = encode_key(&plan.key_kinds, &refs)?;
            if !found.contains(&enc) {
                out.push((enc, None));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// How to read a tracked table's working changes against its entry in a commit
/// (`committed`), whose tree holds the live rows as encoded now if `carries`
/// (`definition::live`): the facts gathered here, the rule in
/// `repo::worktree::read_mode`. With `repair`, missing tracking triggers are put back
/// (for a commit or a checkout, which then compare in full once).
pub fn read_mode_of(
    t: &Tracked,
    keyless: bool,
    carries: bool,
    committed: Option<&crate::commit::TableEntry>,
    repair: bool,
) -> VcResult<ReadMode> {
    let damaged = super::tracking::tracking_damaged(t, repair)?;
    read_mode(committed, carries, t.full_scan, damaged, keyless, || {
        log_too_long(t)
    })
}

/// The working set's changes, read as `mode` says.
pub fn working_changes(
    store: &dyn ChunkStore,
    t: &Tracked,
    plan: &Plan,
    mode: ReadMode,
    consume: bool,
) -> VcResult<Vec<Change>> {
    let mut out = Vec::new();
    for_each_working_change(store, t, plan, mode, consume, &mut |c| {
        out.push(c);
        Ok(())
    })?;
    Ok(out)
}

/// `working_changes`, handing each change to `f` as it is found: a full comparison of
/// a big table then runs in flat memory (`vc.status()` only counts). With `consume`
/// (a commit), the keys read leave the key log (all of it for a full comparison).
pub fn for_each_working_change(
    store: &dyn ChunkStore,
    t: &Tracked,
    plan: &Plan,
    mode: ReadMode,
    consume: bool,
    f: &mut dyn FnMut(Change) -> VcResult<()>,
) -> VcResult<()> {
    match mode {
        ReadMode::Full { base, .. } => {
            if consume {
                let n = exec(sql::clear_log(&t.log_id()), vec![])?;
                truncate_emptied_log(t, n)?;
            }
            compare_full(store, base, Scan::open(plan)?, f)
        }
        ReadMode::Log { base } => {
            let keys = logged_keys(t, plan, consume)?;
            compare_keys(store, base, live_rows(plan, &keys)?, f)
        }
    }
}

/// Replaces the rows at `keys` by `rows` (key bytes -> Some(encoded row) to write,
/// None to leave deleted). Triggers are expected to be disabled by the caller
/// (`session_replication_role = replica`).
///
/// With `fresh`, the table is known not to hold these keys (a table being loaded), and
/// the DELETE is skipped.
pub fn write_rows(plan: &Plan, rows: &[(Vec<u8>, Option<Vec<u8>>)], fresh: bool) -> VcResult<()> {
    let nk = plan.key_cols.len();
    let writable: Vec<usize> = (0..plan.value_cols.len())
        .filter(|&i| !plan.value_generated[i])
        .collect();
    let del = sql::delete_by_key(plan)?;
    let ins = sql::insert_rows(plan, &writable)?;
    for batch in rows.chunks(BATCH as usize) {
        let mut key_texts: Vec<Vec<String>> = Vec::with_capacity(batch.len());
        for (k, _) in batch {
            key_texts.push(match plan.keyless {
                true => Vec::new(),
                false => decode_key(&plan.key_kinds, k)?,
            });
        }
        if plan.keyless && !fresh {
            return Err(super::error::VcError::new(
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "rows of a table without a primary key are replaced by content (write_keyless)",
            ));
        }
        if !fresh {
            let args = (0..nk)
                .map(|i| Arg::TextArray(key_texts.iter().map(|k| Some(k[i].clone())).collect()))
                .collect();
            as_owner(plan.owner, || exec(del.clone(), args))?;
        }
        let mut key_cols: Vec<Vec<Option<String>>> = vec![Vec::new(); nk];
        let mut val_text: Vec<Vec<Option<String>>> = vec![Vec::new(); writable.len()];
        let mut val_raw: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); writable.len()];
        let mut n = 0;
        for ((_, row), kt) in batch.iter().zip(&key_texts) {
            let Some(row) = row else { continue };
            n += 1;
            let cells = decode_row(row)?;
            for (i, k) in kt.iter().enumerate() {
                key_cols[i].push(Some(k.clone()));
            }
            for (j, &i) in writable.iter().enumerate() {
                match cells.get(i).cloned().unwrap_or(Cell::Null) {
                    Cell::Null => {
                        val_text[j].push(None);
                        val_raw[j].push(None);
                    }
                    Cell::Text(t) => val_text[j].push(Some(t)),
                    Cell::Bytes(b) => val_raw[j].push(Some(b)),
                }
            }
        }
        if n == 0 {
            continue;
        }
        let mut args: Vec<Arg> = key_cols.into_iter().map(Arg::TextArray).collect();
        for (j, &i) in writable.iter().enumerate() {
            args.push(if plan.value_raw[i] {
                Arg::ByteaArray(std::mem::take(&mut val_raw[j]))
            } else {
                Arg::TextArray(std::mem::take(&mut val_text[j]))
            });
        }
        as_owner(plan.owner, || exec(ins.clone(), args))?;
    }
    Ok(())
}

/// Makes a table without a primary key hold exactly `copies` copies of each row in
/// `rows` (encoded rows, distinct): every live row equal to one of them (each column's
/// text output, or bytes for `bytea`) is deleted, then the copies are inserted.
/// Triggers are expected to be disabled by the caller.
pub fn write_keyless(plan: &Plan, rows: &[(Vec<u8>, u32)]) -> VcResult<()> {
    let del = sql::delete_equal_rows(plan)?;
    for batch in rows.chunks(BATCH as usize) {
        let n = plan.value_cols.len();
        let mut nulls: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(batch.len()); n];
        let mut texts: Vec<Vec<Option<String>>> = vec![Vec::new(); n];
        let mut raws: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); n];
        let mut inserts: KeyedRows = Vec::new();
        for (row, copies) in batch {
            let cells = decode_row(row)?;
            for i in 0..n {
                let cell = cells.get(i).cloned().unwrap_or(Cell::Null);
                nulls[i].push(Some(i32::from(cell == Cell::Null).to_string()));
                match (plan.value_raw[i], cell) {
                    (true, Cell::Bytes(b)) => raws[i].push(Some(b)),
                    (true, _) => raws[i].push(Some(Vec::new())),
                    (false, Cell::Text(t)) => texts[i].push(Some(t)),
                    (false, _) => texts[i].push(Some(String::new())),
                }
            }
            for _ in 0..*copies {
                inserts.push((Vec::new(), Some(row.clone())));
            }
        }
        let mut args = Vec::with_capacity(2 * n);
        for i in 0..n {
            args.push(Arg::TextArray(std::mem::take(&mut nulls[i])));
            args.push(match plan.value_raw[i] {
                true => Arg::ByteaArray(std::mem::take(&mut raws[i])),
                false => Arg::TextArray(std::mem::take(&mut texts[i])),
            });
        }
        as_owner(plan.owner, || exec(del.clone(), args))?;
        write_rows(plan, &inserts, true)?;
    }
    Ok(())
}

/// One encoded row of a table (key and row as a tree holds them) as jsonb text, the
/// way `to_jsonb` renders a row of the table; read as the table's owner.
pub fn row_jsonb(plan: &Plan, key: &[u8], row: &[u8]) -> VcResult<String> {
    let cells = decode_row(row)?;
    let mut args: Vec<Arg> = decode_key(&plan.key_kinds, key)?
        .into_iter()
        .map(|k| Arg::TextArray(vec![Some(k)]))
        .collect();
    for i in 0..plan.value_cols.len() {
        let cell = cells.get(i).cloned().unwrap_or(Cell::Null);
        args.push(if plan.value_raw[i] {
            Arg::ByteaArray(vec![match cell {
                Cell::Bytes(b) => Some(b),
                _ => None,
            }])
        } else {
            Arg::TextArray(vec![match cell {
                Cell::Text(t) => Some(t),
                _ => None,
            }])
        });
    }
    let sql = sql::row_as_jsonb(plan)?;
    let rows = as_owner(plan.owner, || query(sql, args, &[]))?;
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(Cell::Text(t)) => Ok(t),
        _ => Err(super::error::VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "a row rendered as no jsonb",
        )),
    }
}

/// A row of the table given as jsonb (its columns by name), encoded as the table's
/// rows are: (key, row). Read as the table's owner.
pub fn row_from_jsonb(plan: &Plan, json: &str) -> VcResult<(Vec<u8>, Vec<u8>)> {
    let sql = sql::row_from_jsonb(plan);
    let rows = as_owner(plan.owner, || {
        query(
            sql,
            vec![Arg::Text(Some(json.to_string()))],
            &plan.raw_mask(),
        )
    })?;
    let row = rows.into_iter().next().ok_or_else(|| {
        super::error::VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "jsonb_populate_record returned no row",
        )
    })?;
    encode_fetched(plan, row)
}
