//! Read-only views of history and the working set: log, status, diff, hashof,
//! root_hash and the rows behind `vc.as_of()`.

use crate::codec::{cell_to_json, decode_key, decode_row, load_value, Cell, JsonKind};
use crate::commit::{log, Commit, RootValue, TableEntry, TableSchema};
use crate::pg::catalog::{relation_name, table_schema, tracked_tables};
use crate::pg::error::{null_arg, run, VcError, VcResult};
use crate::pg::refs::resolve;
use crate::pg::rows::{for_each_working_change, working_changes};
use crate::pg::spi::{with_snapshot, with_spi, Arg};
use crate::pg::sql::Plan;
use crate::pg::store::PgStore;
use crate::prolly::{self, diff};
use crate::store::Hash;
use pgrx::prelude::*;
use pgrx::JsonB;
use pgrx::PgSqlErrorCode as Code;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

fn root_of(store: &PgStore, commit: &Hash) -> VcResult<RootValue> {
    Ok(RootValue::read(store, &Commit::read(store, commit)?.root)?)
}

#[pg_extern(name = "_log", volatile)]
fn vc_log(
    r#ref: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(commit_hash, String),
        name!(parents, Vec<String>),
        name!(author, String),
        name!(message, String),
        name!(committed_us, i64),
    ),
> {
    let rows = run(|| {
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| {
            let store = PgStore::new();
            let head = resolve(&store, spec)?;
            Ok(log(&store, &head)?
                .into_iter()
                .map(|(h, c)| {
                    (
                        h.to_hex(),
                        c.parents.iter().map(|p| p.to_hex()).collect(),
                        c.author,
                        c.message,
                        c.timestamp_us,
                    )
                })
                .collect::<Vec<_>>())
        })
    });
    TableIterator::new(rows)
}

#[pg_extern(name = "_hashof", volatile)]
fn vc_hashof(r#ref: Option<&str>) -> String {
    run(|| {
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| Ok(resolve(&PgStore::new(), spec)?.to_hex()))
    })
}

#[pg_extern(name = "_root_hash", volatile)]
fn vc_root_hash(r#ref: Option<&str>) -> String {
    run(|| {
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| {
            let store = PgStore::new();
            let c = resolve(&store, spec)?;
            let root = Commit::read(&store, &c)?.root;
            Ok(RootValue::read(&store, &root)?.content_hash().to_hex())
        })
    })
}

/// The root value the working set is judged against: HEAD's (an empty one before
/// the first commit), or during an unfinished merge the merged root the live tables
/// were moved to (so `vc.status()` shows what changed since the merge, and
/// `vc.diff('HEAD', 'WORKING')` everything the merge commit will hold).
fn head_root(store: &PgStore) -> VcResult<RootValue> {
    crate::pg::merging::working_base(store)
}

#[pg_extern(name = "_status", volatile)]
fn vc_status() -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(inserted, i64),
        name!(updated, i64),
        name!(deleted, i64),
        name!(schema_changes, i64),
    ),
> {
    let rows = run(|| {
        with_spi(|| {
            with_snapshot(|| {
                let store = PgStore::new();
                let head = head_root(&store)?;
                let mut out = Vec::new();
                let tracked = tracked_tables()?;
                for t in &tracked {
                    if !may_see_rows(t.relid)? {
                        continue;
                    }
                    let old = crate::pg::api::commit::parent_entry(&head, t);
                    let (live, mode) = crate::pg::definition::live_and_mode(t, old, false)?;
                    let name = t.committed_name.clone().unwrap_or(t.name.clone());
                    let was: Vec<(String, &TableSchema)> =
                        old.iter().map(|e| (name.clone(), &e.schema)).collect();
                    let schema_changes = crate::repo::schema::schema_changes(
                        &was,
                        &[(t.name.clone(), &live.schema)],
                    )
                    .len() as i64;
                    let plan = live.plan;
                    // Counted as found: flat memory even when the whole table differs.
                    let (mut i, mut u, mut d) = (0i64, 0i64, 0i64);
                    for_each_working_change(&store, t, &plan, mode, false, &mut |c| {
                        match (&c.before, &c.after) {
                            (None, Some(_)) => i += 1,
                            (Some(_), Some(_)) => u += 1,
                            (Some(_), None) => d += 1,
                            (None, None) => {}
                        }
                        Ok(())
                    })?;
                    if i + u + d + schema_changes > 0 {
                        out.push((t.name.clone(), i, u, d, schema_changes));
                    }
                }
                // Tables in HEAD that are no longer tracked: all their rows leave.
                for (name, e) in &head.tables {
                    let still = tracked
                        .iter()
                        .any(|t| t.committed_name.as_ref().unwrap_or(&t.name) == name);
                    if !still && may_read(name)? {
                        let n = prolly::count(&store, e.tree)? as i64;
                        out.push((name.clone(), 0, 0, n, 1));
                    }
                }
                Ok(out)
            })
        })
    });
    TableIterator::new(rows)
}

/// One side of a diff: per table, schema and a way to get its rows.
struct Side {
    tables: BTreeMap<String, (TableSchema, Hash)>,
}

fn side_of_root(root: &RootValue) -> Side {
    Side {
        tables: root
            .tables
            .iter()
            .map(|(n, e): (&String, &TableEntry)| (n.clone(), (e.schema.clone(), e.tree)))
            .collect(),
    }
}

/// Where a value the server renders goes: a diff row, its key, before or after
/// object, a column, and the value's type and text.
struct Fixup {
    row: usize,
    slot: Slot,
    column: String,
    type_name: String,
    text: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Key,
    Before,
    After,
}

/// Renders a cell as `to_jsonb` would; a value of a `Server` kind is registered in
/// `fix` (to be rendered by `render_on_server`) and is its text until then.
fn cell_json(
    cell: &Cell,
    kind: JsonKind,
    ty: &str,
    column: &str,
    at: (usize, Slot),
    fix: &mut Vec<Fixup>,
) -> Value {
    if let (JsonKind::Server, Cell::Text(t)) = (kind, cell) {
        fix.push(Fixup {
            row: at.0,
            slot: at.1,
            column: column.to_string(),
            type_name: ty.to_string(),
            text: t.clone(),
        });
    }
    cell_to_json(cell, kind)
}

/// The key as a JSON object and, given an encoded row, the whole row as one, with the
/// column names of `naming` where it has the same column (a diff across a rename
/// compares under the new names). `at` is the diff row; values the server renders go
/// to `fix`.
fn row_json(
    schema: &TableSchema,
    name: &str,
    key: &[u8],
    row: Option<&[u8]>,
    naming: Option<&TableSchema>,
    at: (usize, Slot),
    fix: &mut Vec<Fixup>,
) -> VcResult<(Value, Option<Value>)> {
    let plan = Plan::new(name, schema)?;
    let named = |c: &str| -> String {
        let col = schema.columns.iter().find(|x| x.name == c);
        match (col, naming) {
            (Some(col), Some(n)) => n
                .columns
                .iter()
                .find(|x| crate::repo::schema::same_column(col, x))
                .map_or(c.to_string(), |x| x.name.clone()),
            _ => c.to_string(),
        }
    };
    let key_texts = match plan.keyless {
        true => Vec::new(),
        false => decode_key(&plan.key_kinds, key)?,
    };
    let mut key_obj = Map::new();
    for (i, t) in key_texts.iter().enumerate() {
        let col = named(&plan.key_cols[i]);
        let v = cell_json(
            &Cell::Text(t.clone()),
            plan.key_json[i],
            &plan.key_types[i],
            &col,
            (at.0, Slot::Key),
            fix,
        );
        key_obj.insert(col, v);
    }
    let Some(row) = row else {
        return Ok((Value::Object(key_obj), None));
    };
    let cells = decode_row(row)?;
    let mut full = Map::new();
    for col in &schema.columns {
        let out = named(&col.name);
        if let Some(i) = plan.key_cols.iter().position(|k| k == &col.name) {
            let t = Cell::Text(key_texts[i].clone());
            let v = cell_json(&t, plan.key_json[i], &plan.key_types[i], &out, at, fix);
            full.insert(out, v);
        } else if let Some(i) = plan.value_cols.iter().position(|k| k == &col.name) {
            let cell = cells.get(i).cloned().unwrap_or(Cell::Null);
            let v = cell_json(
                &cell,
                plan.value_json[i],
                &plan.value_types[i],
                &out,
                at,
                fix,
            );
            full.insert(out, v);
        }
    }
    Ok((Value::Object(key_obj), Some(Value::Object(full))))
}

/// A key and versions of its row (encoded, `None` where absent).
pub(crate) type Versions = (Vec<u8>, Vec<Option<Vec<u8>>>);

/// Rows of table `name` (encoded in `schema`) as jsonb, the way `vc.diff` shows them:
/// for each key, the key and each of its versions (`None` where absent).
pub(crate) fn render_rows(
    schema: &TableSchema,
    name: &str,
    items: Vec<Versions>,
) -> VcResult<Vec<(JsonB, Vec<Option<JsonB>>)>> {
    // Two versions per diff row (before and after), as many rows as it takes.
    let mut out: Vec<DiffRow> = Vec::new();
    let mut fix = Vec::new();
    let mut spans = Vec::with_capacity(items.len());
    for (key, versions) in &items {
        let first = out.len();
        let mut key_json = None;
        for pair in versions.chunks(2) {
            let at = out.len();
            let mut side = |v: Option<&Vec<u8>>, slot| -> VcResult<Option<JsonB>> {
                let (k, row) = row_json(
                    schema,
                    name,
                    key,
                    v.map(|v| v.as_slice()),
                    None,
                    (at, slot),
                    &mut fix,
                )?;
                key_json.get_or_insert(k);
                Ok(row.map(JsonB))
            };
            let before = side(pair[0].as_ref(), Slot::Before)?;
            let after = match pair.get(1) {
                Some(v) => side(v.as_ref(), Slot::After)?,
                None => None,
            };
            let key = JsonB(key_json.clone().unwrap_or(Value::Null));
            out.push((name.to_string(), String::new(), key, before, after));
        }
        spans.push((first, versions.len()));
    }
    render_on_server(&mut out, fix)?;
    let mut rendered = Vec::with_capacity(items.len());
    for (first, n) in spans {
        let key = JsonB(out.get(first).map_or(Value::Null, |r| r.2 .0.clone()));
        let mut versions = Vec::with_capacity(n);
        for i in 0..n {
            let row = &mut out[first + i / 2];
            versions.push(if i % 2 == 0 {
                row.3.take()
            } else {
                row.4.take()
            });
        }
        rendered.push((key, versions));
    }
    Ok(rendered)
}

/// Renders the registered values with the server's own `to_jsonb`, one statement per
/// type, and puts them in place. A domain is rendered as its base type (`to_jsonb`
/// does that itself, and its check is not run on history). A type whose input could
/// run code of a role other than a superuser (a domain check or a function reached
/// through a composite or range) keeps its text, as does a batch the server cannot
/// read (a value a changed type no longer accepts).
fn render_on_server(out: &mut [DiffRow], fix: Vec<Fixup>) -> VcResult<()> {
    let mut by_type: BTreeMap<String, Vec<Fixup>> = BTreeMap::new();
    for f in fix {
        by_type.entry(f.type_name.clone()).or_default().push(f);
    }
    for (ty, fixes) in by_type {
        let Some(render) = render_type(&ty)? else {
            continue;
        };
        let texts: Vec<Option<String>> = fixes.iter().map(|f| Some(f.text.clone())).collect();
        let stmt = crate::pg::sql::to_jsonb_batch(&render);
        let rendered = crate::pg::sql::in_subtransaction(move || {
            crate::pg::spi::query(stmt, vec![Arg::TextArray(texts)], &[])
        });
        let Some(Ok(rows)) = rendered else {
            continue;
        };
        for (f, r) in fixes.iter().zip(rows) {
            let Some(Cell::Text(json)) = r.into_iter().next() else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&json) else {
                continue;
            };
            let row = &mut out[f.row];
            let target = match f.slot {
                Slot::Key => Some(&mut row.2 .0),
                Slot::Before => row.3.as_mut().map(|j| &mut j.0),
                Slot::After => row.4.as_mut().map(|j| &mut j.0),
            };
            if let Some(Value::Object(m)) = target {
                m.insert(f.column.clone(), v);
            }
        }
    }
    Ok(())
}

/// The type `vc.diff` casts a value of type `ty` to before `to_jsonb`: its base type
/// for a domain; None when that type is unknown here or could run another role's
/// code.
fn render_type(ty: &str) -> VcResult<Option<crate::pg::sql::SqlType>> {
    let Ok(t) = crate::pg::sql::SqlType::resolve(ty) else {
        return Ok(None);
    };
    let base = crate::pg::spi::one_row(
        "WITH RECURSIVE d(oid, typmod, depth) AS (            SELECT t.oid, t.typtypmod, 0 FROM pg_type t WHERE t.oid = to_regtype($1)            UNION ALL            SELECT b.typbasetype, b.typtypmod, d.depth + 1 FROM d JOIN pg_type b ON b.oid = d.oid            WHERE b.typtype = 'd')          SELECT d.oid, format_type(d.oid, NULLIF(d.typmod, -1)) FROM d ORDER BY depth DESC LIMIT 1",
        vec![Arg::Text(Some(t.to_string()))],
    )?;
    let Some(base) = base else { return Ok(None) };
    let (oid, name) = (base[0].oid()?, base[1].text()?);
    if crate::pg::catalog::type_runs_foreign_code(oid)? {
        return Ok(None);
    }
    Ok(crate::pg::sql::SqlType::resolve(&name).ok())
}

type DiffRow = (String, String, JsonB, Option<JsonB>, Option<JsonB>);

/// Entry of one table's diff: key, before (tree value), after (tree value or, for
/// the working set, an encoded row).
struct RawDiff {
    key: Vec<u8>,
    before: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
}

/// Whether the caller may see the rows of the table `name` (from a commit): the live,
/// tracked table of that name (a table made later under an old name is not its
/// history), readable by the caller (`may_see_rows`); superusers see everything.
pub(crate) fn may_read(name: &str) -> VcResult<bool> {
    if crate::pg::sql::QualName::parse("table name", name).is_err() {
        return Ok(false);
    }
    let rel = crate::pg::spi::one_value(
        "SELECT t.relid FROM vc.tracked t WHERE t.relid = to_regclass($1)",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    match rel {
        Some(r) => may_see_rows(r.oid()?),
        None => caller_is_superuser(),
    }
}

fn caller_is_superuser() -> VcResult<bool> {
    crate::pg::spi::one_bool(
        "SELECT rolsuper FROM pg_roles WHERE oid = $1",
        vec![Arg::Oid(crate::pg::spi::caller())],
    )
}

/// Whether the caller may see the rows of the live table `relid` through history: SELECT
/// on it, and, where row-level security is on, no policy would hide rows from it (its
/// owner, a superuser or a BYPASSRLS role): history shows whole tables.
pub(crate) fn may_see_rows(relid: pgrx::pg_sys::Oid) -> VcResult<bool> {
    crate::pg::spi::one_bool(
        "SELECT r.rolsuper OR (has_table_privilege(r.oid, c.oid, 'SELECT') \
                 AND (NOT c.relrowsecurity OR c.relowner = r.oid OR r.rolbypassrls)) \
         FROM pg_roles r, pg_class c WHERE r.oid = $1 AND c.oid = $2",
        vec![Arg::Oid(crate::pg::spi::caller()), Arg::Oid(relid)],
    )
}

fn diff_rows(
    store: &PgStore,
    from: &RootValue,
    to: Option<&RootValue>,
    only: Option<&str>,
) -> VcResult<Vec<DiffRow>> {
    let mut from_side = side_of_root(from);
    let mut fix = Vec::new();
    let head;
    let (to_side, working) = match to {
        Some(r) => (side_of_root(r), None),
        None => {
            head = head_root(store)?;
            let mut tables = BTreeMap::new();
            let mut changes = BTreeMap::new();
            for t in tracked_tables()? {
                if !may_see_rows(t.relid)? {
                    continue;
                }
                let old = crate::pg::api::commit::parent_entry(&head, &t);
                let (live, mode) = crate::pg::definition::live_and_mode(&t, old, false)?;
                let (schema, plan) = (live.schema, live.plan);
                let ch = working_changes(store, &t, &plan, mode, false)?;
                let tree = old.map(|o| o.tree).unwrap_or_else(prolly::empty_root);
                tables.insert(t.name.clone(), (schema, tree));
                changes.insert(t.name.clone(), ch);
            }
            (Side { tables }, Some(changes))
        }
    };
    // A table renamed between the two sides is compared under its new name (found by
    // its identity).
    let renamed: Vec<(String, String)> = from_side
        .tables
        .iter()
        .filter(|(n, (s, _))| s.id != 0 && !to_side.tables.contains_key(*n))
        .filter_map(|(n, (s, _))| {
            to_side
                .tables
                .iter()
                .find(|(m, (t, _))| t.id == s.id && !from.tables.contains_key(*m))
                .map(|(m, _)| (n.clone(), m.clone()))
        })
        .collect();
    for (old, new) in renamed {
        if let Some(v) = from_side.tables.remove(&old) {
            from_side.tables.insert(new, v);
        }
    }
    let names: BTreeSet<&String> = from_side
        .tables
        .keys()
        .chain(to_side.tables.keys())
        .collect();
    let mut out = Vec::new();
    if let Some(o) = only {
        if !may_read(o)? {
            return Err(VcError::new(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied: the history of {o} needs SELECT on it"),
            )
            .hint("a role sees the history of the tables it may read"));
        }
    }
    for name in names {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        // History shows rows: only of tables the caller may read now.
        if !may_read(name)? {
            continue;
        }
        let empty = prolly::empty_root();
        let (fs, ft) = from_side
            .tables
            .get(name)
            .map(|(s, t)| (Some(s), *t))
            .unwrap_or((None, empty));
        let (ts, tt) = to_side
            .tables
            .get(name)
            .map(|(s, t)| (Some(s), *t))
            .unwrap_or((None, empty));
        // The tree-level difference, then (for the working set) the live changes on top.
        let mut raw: BTreeMap<Vec<u8>, RawDiff> = BTreeMap::new();
        let mut after_encoded: BTreeSet<Vec<u8>> = BTreeSet::new();
        if ft != tt {
            for e in diff(store, ft, tt) {
                let e = e?;
                raw.insert(
                    e.key.clone(),
                    RawDiff {
                        key: e.key,
                        before: e.before,
                        after: e.after,
                    },
                );
            }
        }
        if let Some(ch) = working.as_ref().and_then(|w| w.get(name)) {
            for c in ch {
                let before = match raw.get(&c.key) {
                    Some(r) => r.before.clone(),
                    None if fs.is_some() => prolly::get(store, ft, &c.key)?,
                    None => None,
                };
                after_encoded.insert(c.key.clone());
                raw.insert(
                    c.key.clone(),
                    RawDiff {
                        key: c.key.clone(),
                        before,
                        after: c.after.clone(),
                    },
                );
            }
        }
        for r in raw.into_values() {
            let enc = after_encoded.contains(&r.key);
            let before_row = match &r.before {
                Some(b) => Some(load_value(store, b)?),
                None => None,
            };
            let after_row = match &r.after {
                Some(a) if enc => Some(a.clone()),
                Some(a) => Some(load_value(store, a)?),
                None => None,
            };
            if before_row == after_row {
                continue;
            }
            let (kind, key_schema) = match (&before_row, &after_row) {
                (None, _) => ("added", ts.or(fs)),
                (_, None) => ("removed", fs.or(ts)),
                _ => ("modified", ts.or(fs)),
            };
            let key_schema = key_schema.expect("a side has the table");
            let at = out.len();
            // A table without a primary key: the row is its own key (docs/SCHEMA.md).
            let (key_schema, key_row) = match (key_schema.primary_key.is_empty(), &after_row) {
                (false, _) => (key_schema, None),
                (true, Some(a)) => (ts.unwrap_or(key_schema), Some(a.as_slice())),
                (true, None) => (fs.unwrap_or(key_schema), before_row.as_deref()),
            };
            let (key, full) = row_json(
                key_schema,
                name,
                &r.key,
                key_row,
                ts,
                (at, Slot::Key),
                &mut fix,
            )?;
            let key = full.unwrap_or(key);
            let before = match (&before_row, fs) {
                (Some(b), Some(s)) => {
                    row_json(s, name, &r.key, Some(b), ts, (at, Slot::Before), &mut fix)?.1
                }
                _ => None,
            };
            let after = match (&after_row, ts) {
                (Some(a), Some(s)) => {
                    row_json(s, name, &r.key, Some(a), ts, (at, Slot::After), &mut fix)?.1
                }
                _ => None,
            };
            out.push((
                name.clone(),
                kind.to_string(),
                JsonB(key),
                before.map(JsonB),
                after.map(JsonB),
            ));
        }
    }
    render_on_server(&mut out, fix)?;
    Ok(out)
}

fn is_working(s: &str) -> bool {
    s == "WORKING"
}

/// The definitions of the tracked tables the caller may read: of a commit's root, or
/// (`None`) of the live tables, versioned against HEAD.
fn definitions(store: &PgStore, root: Option<&RootValue>) -> VcResult<Vec<(String, TableSchema)>> {
    let mut out = Vec::new();
    match root {
        Some(r) => {
            for (name, e) in &r.tables {
                if may_read(name)? {
                    out.push((name.clone(), e.schema.clone()));
                }
            }
        }
        None => {
            let head = head_root(store)?;
            for t in tracked_tables()? {
                if !may_see_rows(t.relid)? {
                    continue;
                }
                let old = crate::pg::api::commit::parent_entry(&head, &t);
                let live = crate::pg::definition::live(&t, old)?;
                out.push((t.name.clone(), live.schema));
            }
        }
    }
    Ok(out)
}

/// The definition changes between two refs (either may be `WORKING`), for the tables
/// the caller may read.
fn schema_changes_between(
    store: &PgStore,
    from: &str,
    to: &str,
) -> VcResult<Vec<crate::repo::schema::SchemaChange>> {
    let side = |s: &str| -> VcResult<Vec<(String, TableSchema)>> {
        if is_working(s) {
            definitions(store, None)
        } else {
            definitions(store, Some(&root_of(store, &resolve(store, s)?)?))
        }
    };
    let (a, b) = (side(from)?, side(to)?);
    let a: Vec<(String, &TableSchema)> = a.iter().map(|(n, s)| (n.clone(), s)).collect();
    let b: Vec<(String, &TableSchema)> = b.iter().map(|(n, s)| (n.clone(), s)).collect();
    Ok(crate::repo::schema::schema_changes(&a, &b))
}

#[allow(clippy::type_complexity)]
#[pg_extern(name = "_schema_diff", volatile)]
fn vc_schema_diff(
    from_ref: Option<&str>,
    to_ref: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(change, String),
        name!(before, Option<String>),
        name!(after, Option<String>),
    ),
> {
    let rows = run(|| {
        let from = from_ref.ok_or_else(|| null_arg("from_ref"))?;
        let to = to_ref.ok_or_else(|| null_arg("to_ref"))?;
        with_spi(|| {
            with_snapshot(|| {
                let store = PgStore::new();
                Ok(schema_changes_between(&store, from, to)?
                    .into_iter()
                    .map(|c| (c.table, c.change.to_string(), c.before, c.after))
                    .collect::<Vec<_>>())
            })
        })
    });
    TableIterator::new(rows)
}

// pgrx reads the column names from this signature, so it cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(name = "_diff", volatile)]
fn vc_diff(
    from_ref: Option<&str>,
    to_ref: Option<&str>,
    table_name: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(diff_type, String),
        name!(key, JsonB),
        name!(before, Option<JsonB>),
        name!(after, Option<JsonB>),
    ),
> {
    let rows = run(|| {
        let from = from_ref.ok_or_else(|| null_arg("from_ref"))?;
        let to = to_ref.ok_or_else(|| null_arg("to_ref"))?;
        with_spi(|| {
            with_snapshot(|| {
                let store = PgStore::new();
                if let Some(t) = table_name {
                    let known = tracked_tables()?.iter().any(|x| x.name == t);
                    let in_head = head_root(&store)?.tables.contains_key(t);
                    if !known && !in_head {
                        return Err(VcError::new(
                            Code::ERRCODE_UNDEFINED_TABLE,
                            format!("table \"{t}\" is not tracked"),
                        )
                        .hint("use the schema-qualified name, e.g. 'public.items'"));
                    }
                }
                let root =
                    |s: &str| -> VcResult<RootValue> { root_of(&store, &resolve(&store, s)?) };
                // Definition changes first, one row each (diff_type 'schema'): the
                // key names the change, before and after describe it.
                let mut out: Vec<DiffRow> = Vec::new();
                if !(is_working(from) && is_working(to)) {
                    for c in schema_changes_between(&store, from, to)? {
                        if table_name.is_some_and(|t| t != c.table) {
                            continue;
                        }
                        out.push((
                            c.table,
                            "schema".to_string(),
                            JsonB(serde_json::json!({ "change": c.change })),
                            c.before.map(|b| JsonB(serde_json::Value::String(b))),
                            c.after.map(|a| JsonB(serde_json::Value::String(a))),
                        ));
                    }
                }
                let rows = match (is_working(from), is_working(to)) {
                    (true, true) => Ok(Vec::new()),
                    (false, true) => diff_rows(&store, &root(from)?, None, table_name),
                    (false, false) => diff_rows(&store, &root(from)?, Some(&root(to)?), table_name),
                    (true, false) => {
                        let rows = diff_rows(&store, &root(to)?, None, table_name)?;
                        Ok(rows
                            .into_iter()
                            .map(|(t, k, key, b, a)| {
                                let k = match k.as_str() {
                                    "added" => "removed",
                                    "removed" => "added",
                                    _ => "modified",
                                };
                                (t, k.to_string(), key, a, b)
                            })
                            .collect())
                    }
                }?;
                out.extend(rows);
                Ok(out)
            })
        })
    });
    TableIterator::new(rows)
}

/// Composite-literal text of one row, in the live table's column order.
fn record_literal(values: &[Option<String>]) -> String {
    let mut s = String::from("(");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        if let Some(v) = v {
            s.push('"');
            for ch in v.chars() {
                if ch == '"' || ch == '\\' {
                    s.push('\\');
                }
                s.push(ch);
            }
            s.push('"');
        }
    }
    s.push(')');
    s
}

fn cell_text(c: Cell) -> Option<String> {
    match c {
        Cell::Null => None,
        Cell::Text(t) => Some(t),
        Cell::Bytes(b) => Some(
            cell_to_json(&Cell::Bytes(b), crate::codec::JsonKind::Text)
                .as_str()
                .unwrap_or("")
                .to_string(),
        ),
    }
}

/// The columns of `schema` (the live table's, versioned: in logical order) in the
/// table's attribute order, as its row type has them.
fn attribute_order(
    relid: pgrx::pg_sys::Oid,
    schema: &TableSchema,
) -> VcResult<Vec<crate::commit::Column>> {
    let physical = table_schema(relid)?;
    Ok(physical
        .columns
        .iter()
        .filter_map(|p| schema.columns.iter().find(|c| c.name == p.name).cloned())
        .collect())
}

#[pg_extern(name = "_as_of_rows", volatile)]
fn vc_as_of_rows(
    typ: Option<pgrx::pg_sys::Oid>,
    r#ref: Option<&str>,
) -> SetOfIterator<'static, String> {
    let rows = run(|| {
        let typ = typ.ok_or_else(|| null_arg("tbl"))?;
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| {
            let relid = crate::pg::spi::one_value(
                "SELECT typrelid FROM pg_type WHERE oid = $1",
                vec![Arg::Oid(typ)],
            )?
            .map(|v| v.oid())
            .transpose()?
            .unwrap_or(pgrx::pg_sys::Oid::INVALID);
            if relid == pgrx::pg_sys::Oid::INVALID {
                return Err(VcError::new(
                    Code::ERRCODE_WRONG_OBJECT_TYPE,
                    "vc.as_of needs a table's row type",
                )
                .hint("call it as SELECT * FROM vc.as_of(NULL::schema.table, 'HEAD~1')"));
            }
            let name = relation_name(relid)?;
            if !may_read(&name)? {
                return Err(VcError::new(
                    Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied: the history of {name} needs SELECT on it (and, under row-level security, no policy hiding rows from you)"),
                )
                .hint("a role sees the history of the tracked tables it may read whole"));
            }
            // The rows are cast to the table's row type by the caller's query: the
            // functions that cast runs (domain checks) must not be another role's.
            if let Some((object, role)) =
                crate::pg::catalog::foreign_code(relid, crate::pg::spi::caller(), true)?
            {
                return Err(VcError::new(
                    Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("vc.as_of on {name} would run code of role {role} ({object}) with your rights"),
                )
                .hint(format!("run it as {role} (SET ROLE), or read the rows with vc.diff()")));
            }
            let store = PgStore::new();
            let commit = resolve(&store, spec)?;
            let root = root_of(&store, &commit)?;
            // The table's entry at that commit: by its identity (it may have had
            // another name then), else by name.
            let tracked = crate::pg::catalog::tracked_by_relid(relid)?;
            let by_id = tracked.as_ref().and_then(|t| {
                let head = head_root(&store).ok()?;
                let id = t.table_id.or_else(|| {
                    crate::pg::api::commit::parent_entry(&head, t)
                        .map(|e| e.schema.id)
                        .filter(|i| *i != 0)
                })?;
                root.tables.values().find(|e| e.schema.id == id)
            });
            let entry = by_id.or_else(|| root.tables.get(&name)).ok_or_else(|| {
                VcError::new(
                    Code::ERRCODE_UNDEFINED_TABLE,
                    format!("table {name} is not in commit {commit} ({spec})"),
                )
                .hint("it was not tracked at that commit; see SELECT * FROM vc.log()")
            })?;
            // Today's columns, with their identities: a column renamed since is read
            // from its old name, one added since is NULL.
            let live = match &tracked {
                Some(t) => crate::pg::definition::live(t, Some(entry))?.schema,
                None => table_schema(relid)?,
            };
            let then_name = |c: &crate::commit::Column| -> Option<String> {
                entry
                    .schema
                    .columns
                    .iter()
                    .find(|x| crate::repo::schema::same_column(x, c))
                    .map(|x| x.name.clone())
            };
            let plan = Plan::new(&name, &entry.schema)?;
            // In the live table's attribute order (the row type's).
            let cols = attribute_order(relid, &live)?;
            let mut out = Vec::new();
            for e in prolly::iter(&store, entry.tree) {
                let (k, v) = e?;
                let keys = match plan.keyless {
                    true => Vec::new(),
                    false => decode_key(&plan.key_kinds, &k)?,
                };
                let cells = decode_row(&load_value(&store, &v)?)?;
                let values: Vec<Option<String>> = cols
                    .iter()
                    .map(|c| {
                        let n = then_name(c)?;
                        if let Some(i) = plan.key_cols.iter().position(|x| x == &n) {
                            Some(keys[i].clone())
                        } else if let Some(i) = plan.value_cols.iter().position(|x| x == &n) {
                            cell_text(cells.get(i).cloned().unwrap_or(Cell::Null))
                        } else {
                            None
                        }
                    })
                    .collect();
                out.push(record_literal(&values));
            }
            Ok(out)
        })
    });
    SetOfIterator::new(rows)
}
