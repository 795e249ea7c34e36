//! Merge (docs/BRANCHES.md): `vc.merge`, `vc.conflicts`, `vc.violations`,
//! `vc.resolve` and `vc.merge_abort`.
//!
//! The merge itself is the repository layer's (`repo::merge::merge_roots`, a pure
//! function of three root values whose cost follows the two diffs). This file moves
//! the live tables to its result with the checkout machinery (only the rows that
//! differ from ours are written), and keeps the state of a merge that needs decisions
//! in `vc.merge_state` and `vc.merge_conflicts`, in the caller's transaction: a merge
//! with conflicts is not an error that rolls everything back.

use crate::commit::{Commit, RootValue, TableSchema};
use crate::pg::catalog::tracked_tables;
use crate::pg::error::{invalid, null_arg, run, VcError, VcResult};
use crate::pg::refs::{current_branch, ref_hash, resolve, set_branch};
use crate::pg::spi::{exec, query, query_values, with_snapshot, with_spi, Arg};
use crate::pg::sql::{Ident, QualName};
use crate::pg::store::PgStore;
use crate::prolly;
use crate::repo::merge::{merge_bases, merge_roots_from, reencode_value};
use crate::store::Hash;
use pgrx::prelude::*;
use pgrx::JsonB;
use pgrx::PgSqlErrorCode as Code;

/// Rows `vc.violations()` lists per foreign key (and `vc.commit()` looks for).
const ORPHANS_SHOWN: i64 = 1000;

pub use crate::pg::merging::{refuse_during_merge, state, MergeState};

/// What `vc.merge` reports.
pub struct Outcome {
    pub commit: Option<Hash>,
    pub fast_forward: bool,
    pub conflicts: i64,
    pub violations: i64,
}

/// `vc.merge(ref, message)`.
pub fn merge(spec: &str, message: Option<&str>) -> VcResult<Outcome> {
    crate::pg::replication::refuse_on_standby("vc.merge()")?;
    if message.is_some_and(|m| m.trim().is_empty()) {
        return Err(invalid("merge message must not be empty")
            .hint("omit it for \"Merge <ref> into <branch>\""));
    }
    let branch = current_branch(true)?;
    refuse_during_merge("vc.merge()")?;
    prepare_live_tables("vc.merge()", "merge")?;
    let store = PgStore::new();
    let theirs = resolve(&store, spec)?;
    with_snapshot(|| merge_into(&store, &branch, theirs, spec, message))
}

/// Checks the caller may move the live tables, locks out their writers, and refuses
/// uncommitted changes (`verb` names the operation in the messages).
pub fn prepare_live_tables(what: &str, verb: &str) -> VcResult<()> {
    let tracked = tracked_tables()?;
    for t in &tracked {
        if !crate::pg::spi::caller_may(t.relid, "SELECT")? {
            return Err(crate::pg::error::denied_table(verb, &t.name, "SELECT"));
        }
    }
    for t in &tracked {
        if crate::pg::checkout::caller_may_write(t.relid)? {
            let q = QualName::parse("table name", &t.name)?;
            exec(crate::pg::sql::lock_exclusive(&q), vec![])?;
        }
    }
    if crate::pg::checkout::has_uncommitted()? {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{what} refused: the tracked tables have uncommitted changes"),
        )
        .hint("commit them with vc.commit(), or discard them with vc.reset()"));
    }
    Ok(())
}

/// Merges commit `theirs` (named `label`) into `branch`, whose tables are locked and
/// clean: a fast-forward, a merge commit, or an unfinished merge with its decisions
/// recorded.
pub fn merge_into(
    store: &PgStore,
    branch: &str,
    theirs: Hash,
    label: &str,
    message: Option<&str>,
) -> VcResult<Outcome> {
    let head = ref_hash(branch)?;
    let up_to_date = |h: Hash| Outcome {
        commit: Some(h),
        fast_forward: false,
        conflicts: 0,
        violations: 0,
    };
    let theirs_root = RootValue::read(store, &Commit::read(store, &theirs)?.root)?;
    let fast_forward = |store: &PgStore| -> VcResult<Outcome> {
        crate::pg::checkout::checkout_root(
            store,
            head,
            &theirs_root,
            label,
            crate::pg::types::NewLabels::Refuse,
        )?;
        crate::pg::replication::primary::branch_moved(set_branch(branch, head, theirs)?)?;
        Ok(Outcome {
            commit: Some(theirs),
            fast_forward: true,
            conflicts: 0,
            violations: 0,
        })
    };
    let Some(ours) = head else {
        return fast_forward(store);
    };
    if ours == theirs || crate::remote::is_ancestor(store, theirs, ours)? {
        pgrx::notice!("pgvc merge: \"{branch}\" already contains {label}; nothing to merge");
        return Ok(up_to_date(ours));
    }
    if crate::remote::is_ancestor(store, ours, theirs)? {
        return fast_forward(store);
    }
    let bases = merge_bases(store, ours, theirs)?;
    let Some(&base) = bases.first() else {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot merge {label} into \"{branch}\": they share no history"),
        )
        .hint("merge branches that start from a common commit"));
    };
    let read_root = |h: Hash| -> VcResult<RootValue> {
        Ok(RootValue::read(store, &Commit::read(store, &h)?.root)?)
    };
    let (base_root, ours_root) = (read_root(base)?, read_root(ours)?);
    let mut s = store;
    let mut m = merge_roots_from(
        &mut s,
        &base_root,
        &ours_root,
        &theirs_root,
        bases.len() > 1,
    )?;
    if !m.schema_conflicts.is_empty() {
        let detail: Vec<String> = m
            .schema_conflicts
            .iter()
            .map(|c| format!("{}: {}", c.table, c.reason))
            .collect();
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot merge {label} into \"{branch}\": {} definition conflict(s); nothing was changed",
                detail.len()
            ),
        )
        .detail(detail.join("\n"))
        .hint("make the definitions agree on one side (vc.schema_diff() shows them), commit, and merge again"));
    }
    // The live tables move to the merged root; a row of theirs that a unique
    // constraint refuses is left at ours and recorded.
    let refused = crate::pg::checkout::collecting_refused(|| {
        crate::pg::checkout::checkout_root(
            store,
            head,
            &m.root,
            label,
            crate::pg::types::NewLabels::Refuse,
        )
    })?;
    let mut unique = Vec::new();
    for r in refused {
        let entry = m
            .root
            .tables
            .get_mut(&r.table)
            .expect("a refused row's table is merged");
        // Each side's row, in the merged definition (it may have changed).
        let schema = entry.schema.clone();
        let value_in = |side: &RootValue| -> VcResult<Option<Vec<u8>>> {
            let Some(e) = side.tables.get(&r.table) else {
                return Ok(None);
            };
            let Some(v) = prolly::Lookup::new(store, e.tree).get(&r.key)? else {
                return Ok(None);
            };
            let mut w = store;
            reencode_value(&mut w, v, &e.schema, &schema)?
                .map(Some)
                .ok_or_else(|| {
                    VcError::new(
                        Code::ERRCODE_INTERNAL_ERROR,
                        format!(
                            "a row of {} cannot be carried into the merged definition",
                            r.table
                        ),
                    )
                })
        };
        let ours_value = value_in(&ours_root)?;
        let theirs_value = value_in(&theirs_root)?;
        let mut w = store;
        entry.tree = prolly::apply_edits(
            &mut w,
            entry.tree,
            vec![(r.key.clone(), ours_value.clone())],
        )?;
        unique.push((r, ours_value, theirs_value));
    }
    let mut w = store;
    let merged = m.root.write(&mut w)?;
    store.flush()?;
    // The tables whose rows differ from ours: foreign keys from or to them may break.
    let changed: Vec<Option<String>> = m
        .root
        .tables
        .iter()
        .filter(|(n, e)| ours_root.tables.get(*n).map(|o| o.tree) != Some(e.tree))
        .map(|(n, _)| Some(n.clone()))
        .collect();
    let message = match message {
        Some(m) => m.to_string(),
        None => format!("Merge {label} into {branch}"),
    };
    exec(
        "INSERT INTO vc.merge_state (branch, ours, theirs, theirs_name, merged, message, changed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            Arg::Text(Some(branch.to_string())),
            Arg::Bytea(Some(ours.as_bytes().to_vec())),
            Arg::Bytea(Some(theirs.as_bytes().to_vec())),
            Arg::Text(Some(label.to_string())),
            Arg::Bytea(Some(merged.as_bytes().to_vec())),
            Arg::Text(Some(message)),
            Arg::TextArray(changed),
        ],
    )?;
    let insert = "INSERT INTO vc.merge_conflicts (table_name, key, kind, constraint_name, base, ours, theirs) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let bytes = |v: Option<Vec<u8>>| Arg::Bytea(v);
    let conflicts = m.conflicts.len() as i64;
    for c in std::mem::take(&mut m.conflicts) {
        exec(
            insert,
            vec![
                Arg::Text(Some(c.table)),
                Arg::Bytea(Some(c.key)),
                Arg::Text(Some("conflict".into())),
                Arg::Text(None),
                bytes(c.base),
                bytes(c.ours),
                bytes(c.theirs),
            ],
        )?;
    }
    let load = |v: Option<Vec<u8>>| -> VcResult<Option<Vec<u8>>> {
        Ok(match v {
            Some(v) => Some(crate::codec::load_value(store, &v)?),
            None => None,
        })
    };
    let mut violations = unique.len() as i64;
    for (r, o, t) in unique {
        exec(
            insert,
            vec![
                Arg::Text(Some(r.table)),
                Arg::Bytea(Some(r.key)),
                Arg::Text(Some("unique".into())),
                Arg::Text(Some(r.message)),
                Arg::Bytea(None),
                bytes(load(o)?),
                bytes(load(t)?),
            ],
        )?;
    }
    violations += foreign_key_violations(&state()?.expect("just recorded"), 1)?.len() as i64;
    if conflicts == 0 && violations == 0 {
        let hash = crate::pg::api::commit::commit_merge()?;
        return Ok(Outcome {
            commit: Some(hash),
            fast_forward: false,
            conflicts: 0,
            violations: 0,
        });
    }
    pgrx::notice!(
        "pgvc merge: {conflicts} conflict(s) and {violations} constraint violation(s) to resolve; see vc.conflicts() and vc.violations(), then SELECT vc.commit('...'), or SELECT vc.merge_abort()"
    );
    Ok(Outcome {
        commit: None,
        fast_forward: false,
        conflicts,
        violations,
    })
}

/// One foreign-key violation: table, constraint, key and row (jsonb text).
pub struct Orphan {
    pub table: String,
    pub constraint: String,
    pub key: String,
    pub row: String,
}

/// Rows the merge's foreign keys find no referenced row for, now (at most `limit`
/// per foreign key): fixed with ordinary SQL, they are gone.
pub fn foreign_key_violations(s: &MergeState, limit: i64) -> VcResult<Vec<Orphan>> {
    let mut out = Vec::new();
    if s.changed.is_empty() {
        return Ok(out);
    }
    // The foreign keys of tracked tables from or to a changed table, found now (a
    // dump and restore changes their OIDs; a key dropped since checks nothing).
    let fks = query_values(
        "SELECT c.oid FROM pg_constraint c JOIN vc.tracked t ON t.relid::oid = c.conrelid \
         WHERE c.contype = 'f' AND EXISTS (SELECT 1 FROM unnest($1::text[]) n \
           WHERE to_regclass(n) IN (c.conrelid, c.confrelid)) ORDER BY c.oid",
        vec![Arg::TextArray(
            s.changed.iter().cloned().map(Some).collect(),
        )],
    )?;
    for fk in fks {
        let oid = fk[0].oid()?;
        let oid = &oid;
        let rows = query_values(
            "SELECT c.conname::text, c.conrelid::regclass::text, c.confrelid::regclass::text, c.conrelid \
             FROM pg_constraint c WHERE c.oid = $1 AND c.contype = 'f'",
            vec![Arg::Oid(*oid)],
        )?;
        // A foreign key dropped since the merge checks nothing.
        let Some(r) = rows.first() else { continue };
        let (name, child, parent) = (r[0].text()?, r[1].text()?, r[2].text()?);
        let cols = |sql: &'static str| -> VcResult<Vec<Ident>> {
            query_values(sql, vec![Arg::Oid(*oid)])?
                .iter()
                .map(|r| Ok(Ident::new(&r[0].text()?)))
                .collect()
        };
        let (child_cols, parent_cols) = (
            cols("SELECT a.attname::text FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY u(n, i) \
                  JOIN pg_attribute a ON a.attnum = u.n WHERE c.oid = $1 AND a.attrelid = c.conrelid ORDER BY u.i")?,
            cols("SELECT a.attname::text FROM pg_constraint c, unnest(c.confkey) WITH ORDINALITY u(n, i) \
                  JOIN pg_attribute a ON a.attnum = u.n WHERE c.oid = $1 AND a.attrelid = c.confrelid ORDER BY u.i")?,
        );
        let child_rel = r[3].oid()?;
        let key = crate::pg::catalog::table_schema(child_rel)?.primary_key;
        let equality = query_values(
            "SELECT n.nspname::text, o.oprname::text FROM pg_constraint c, \
               unnest(c.conpfeqop) WITH ORDINALITY u(op, i) \
               JOIN pg_operator o ON o.oid = u.op JOIN pg_namespace n ON n.oid = o.oprnamespace \
             WHERE c.oid = $1 ORDER BY u.i",
            vec![Arg::Oid(*oid)],
        )?
        .iter()
        .map(|r| Ok((r[0].text()?, r[1].text()?)))
        .collect::<VcResult<Vec<_>>>()?;
        // The referencing table's owner reads both sides: it must be able to.
        let readable = crate::pg::spi::one_bool(
            "SELECT has_table_privilege(c.relowner, p.oid, 'SELECT') \
                    AND (NOT p.relrowsecurity OR p.relowner = c.relowner \
                         OR (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE oid = c.relowner)) \
             FROM pg_class c, pg_class p WHERE c.oid = $1 AND p.oid = to_regclass($2)",
            vec![Arg::Oid(child_rel), Arg::Text(Some(parent.clone()))],
        )?;
        if !readable {
            return Err(VcError::new(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "cannot check foreign key {name} of {child} after the merge: the owner of {child} cannot read every row of {parent}"
                ),
            )
            .hint(format!("GRANT SELECT ON {parent} to the owner of {child} (row security off for it), or drop the foreign key")));
        }
        let sql = crate::pg::sql::foreign_key_orphans(
            &QualName::parse("table name", &child)?,
            &child_cols,
            &QualName::parse("table name", &parent)?,
            &parent_cols,
            &equality,
            &key,
        )?;
        // Read as the referencing table's owner (whose foreign key it is), never as
        // pgvc's owner: comparing values can run code of the types' owners.
        let owner = crate::pg::catalog::table_owner(child_rel)?;
        let found = crate::pg::spi::as_owner(owner, || query_values(sql, vec![Arg::Int8(limit)]))?;
        for o in found {
            out.push(Orphan {
                table: child.clone(),
                constraint: name.clone(),
                key: o[0].text()?,
                row: o[1].text()?,
            });
        }
    }
    Ok(out)
}

/// Refuses to finish the merge `s` while decisions remain (what `vc.commit()` checks).
pub fn refuse_unfinished(s: &MergeState) -> VcResult<()> {
    let open = query_values(
        "SELECT count(*) FILTER (WHERE kind = 'conflict'), count(*) FILTER (WHERE kind <> 'conflict') \
         FROM vc.merge_conflicts",
        vec![],
    )?;
    let (conflicts, unique) = (open[0][0].int()?, open[0][1].int()?);
    let orphans = foreign_key_violations(s, 1)?.len() as i64;
    if conflicts + unique + orphans > 0 {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot commit the merge of \"{}\": {conflicts} conflict(s) and {} constraint violation(s) remain",
                s.theirs_name,
                unique + orphans
            ),
        )
        .hint("see vc.conflicts() and vc.violations(); resolve with vc.resolve() or fix the rows with SQL, or SELECT vc.merge_abort()"));
    }
    Ok(())
}

/// The definition a recorded row of `table` is encoded in: the merged root's.
fn merged_schema(store: &PgStore, s: &MergeState, table: &str) -> VcResult<TableSchema> {
    let root = RootValue::read(store, &s.merged)?;
    root.tables
        .get(table)
        .map(|e| e.schema.clone())
        .ok_or_else(|| {
            VcError::new(
                Code::ERRCODE_DATA_CORRUPTED,
                format!("the merge records rows of {table}, which its result lacks"),
            )
        })
}

/// A recorded row of the merge, decoded.
struct Recorded {
    table: String,
    key: Vec<u8>,
    kind: String,
    detail: Option<String>,
    rows: [Option<Vec<u8>>; 3],
}

fn recorded(table: Option<&str>) -> VcResult<Vec<Recorded>> {
    let rows = query(
        "SELECT table_name, key, kind, constraint_name, base, ours, theirs FROM vc.merge_conflicts \
         WHERE $1::text IS NULL OR table_name = $1 ORDER BY table_name, key",
        vec![Arg::Text(table.map(str::to_string))],
        &[false, true, false, false, true, true, true],
    )?;
    use crate::codec::Cell;
    let text = |c: &Cell| match c {
        Cell::Text(t) => Some(t.clone()),
        _ => None,
    };
    let bytes = |c: &Cell| match c {
        Cell::Bytes(b) => Some(b.clone()),
        _ => None,
    };
    Ok(rows
        .into_iter()
        .map(|r| Recorded {
            table: text(&r[0]).unwrap_or_default(),
            key: bytes(&r[1]).unwrap_or_default(),
            kind: text(&r[2]).unwrap_or_default(),
            detail: text(&r[3]),
            rows: [bytes(&r[4]), bytes(&r[5]), bytes(&r[6])],
        })
        .collect())
}

/// The recorded rows as jsonb: key and base, ours, theirs.
type Rendered = (String, JsonB, [Option<JsonB>; 3], Option<String>, String);

fn render(store: &PgStore, s: &MergeState, recs: Vec<Recorded>) -> VcResult<Vec<Rendered>> {
    let mut out = Vec::new();
    let mut by_table: std::collections::BTreeMap<String, Vec<Recorded>> = Default::default();
    for r in recs {
        by_table.entry(r.table.clone()).or_default().push(r);
    }
    for (table, recs) in by_table {
        // Rows of a table the caller may not read are not shown.
        if !crate::pg::api::inspect::may_read(&table)? {
            continue;
        }
        let schema = merged_schema(store, s, &table)?;
        let items = recs
            .iter()
            .map(|r| (r.key.clone(), r.rows.to_vec()))
            .collect();
        let rendered = crate::pg::api::inspect::render_rows(&schema, &table, items)?;
        for (r, (key, mut rows)) in recs.into_iter().zip(rendered) {
            let theirs = rows.pop().flatten();
            let ours = rows.pop().flatten();
            let base = rows.pop().flatten();
            out.push((table.clone(), key, [base, ours, theirs], r.detail, r.kind));
        }
    }
    Ok(out)
}

fn require_merge() -> VcResult<MergeState> {
    state()?.ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no merge is in progress",
        )
        .hint("SELECT * FROM vc.merge('<branch>') starts one")
    })
}

/// `vc.resolve(table, strategy, key)`: the number of rows resolved.
pub fn resolve_rows(table: &str, strategy: &str, key: Option<&serde_json::Value>) -> VcResult<i64> {
    crate::pg::replication::refuse_on_standby("vc.resolve()")?;
    let take_theirs = match strategy {
        "ours" => false,
        "theirs" => true,
        other => {
            return Err(invalid(format!("unknown strategy \"{other}\"")).hint(
                "use 'ours' (keep the row as the live table has it) or 'theirs' (take the merged branch's row)",
            ))
        }
    };
    current_branch(true)?;
    let s = require_merge()?;
    let store = PgStore::new();
    // The table as the merge names it (schema-qualified, as vc.conflicts() shows it).
    let name = match query_values(
        "SELECT DISTINCT table_name FROM vc.merge_conflicts WHERE table_name = $1",
        vec![Arg::Text(Some(table.to_string()))],
    ) {
        Ok(rows) if !rows.is_empty() => rows[0][0].text()?,
        _ => {
            return Err(VcError::new(
                Code::ERRCODE_UNDEFINED_OBJECT,
                format!("the merge has nothing to resolve in table \"{table}\""),
            )
            .hint("name the table as vc.conflicts() and vc.violations() show it, schema-qualified (e.g. 'public.items')"))
        }
    };
    let recs = recorded(Some(&name))?;
    let chosen: Vec<Recorded> = match key {
        None => recs,
        Some(want) => {
            let keys = render(
                &store,
                &s,
                recs.iter()
                    .map(|r| Recorded {
                        table: r.table.clone(),
                        key: r.key.clone(),
                        kind: r.kind.clone(),
                        detail: None,
                        rows: [None, None, None],
                    })
                    .collect(),
            )?;
            let mut picked = Vec::new();
            for (r, k) in recs.into_iter().zip(keys) {
                if &k.1 .0 == want {
                    picked.push(r);
                }
            }
            if picked.is_empty() {
                return Err(VcError::new(
                    Code::ERRCODE_UNDEFINED_OBJECT,
                    format!("the merge has nothing to resolve in {name} for key {want}"),
                )
                .hint("use the key exactly as vc.conflicts() or vc.violations() shows it"));
            }
            picked
        }
    };
    let relid = crate::pg::catalog::relid_of(&name)?;
    // Deciding a row is writing it, whichever side is kept: the caller must be able to
    // see the table's rows (row security included: the rows are written as the table's
    // owner) and write them.
    if !crate::pg::api::inspect::may_see_rows(relid)? {
        return Err(crate::pg::error::denied_table(
            "vc.resolve()",
            &name,
            "SELECT (with no row security policy hiding rows)",
        ));
    }
    for privilege in ["INSERT", "UPDATE", "DELETE"] {
        if !crate::pg::spi::caller_may(relid, privilege)? {
            return Err(crate::pg::error::denied_table(
                "vc.resolve()",
                &name,
                privilege,
            ));
        }
    }
    if take_theirs {
        let schema = merged_schema(&store, &s, &name)?;
        let mut plan = crate::pg::sql::Plan::new(&name, &schema)?;
        plan.owner = crate::pg::catalog::table_owner(relid)?;
        if plan.keyless {
            return Err(VcError::new(
                Code::ERRCODE_INTERNAL_ERROR,
                "a table without a primary key has no conflicts to resolve",
            ));
        }
        let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = chosen
            .iter()
            .map(|r| (r.key.clone(), r.rows[2].clone()))
            .collect();
        // Written as any writer's change: the key log records it for vc.commit().
        crate::pg::rows::write_rows(&plan, &rows, false)?;
    }
    for r in &chosen {
        exec(
            "DELETE FROM vc.merge_conflicts WHERE table_name = $1 AND key = $2",
            vec![
                Arg::Text(Some(r.table.clone())),
                Arg::Bytea(Some(r.key.clone())),
            ],
        )?;
    }
    Ok(chosen.len() as i64)
}

/// `vc.merge_abort()`: the live tables go back to ours, the merge state is dropped.
pub fn merge_abort() -> VcResult<()> {
    crate::pg::replication::refuse_on_standby("vc.merge_abort()")?;
    let branch = current_branch(true)?;
    let s = require_merge()?;
    let store = PgStore::new();
    let head = ref_hash(&branch)?;
    let ours_root = RootValue::read(&store, &Commit::read(&store, &s.ours)?.root)?;
    // checkout_root judges the working set against the merged root, and ends the merge.
    crate::pg::checkout::checkout_root(
        &store,
        head,
        &ours_root,
        "the state before the merge",
        crate::pg::types::NewLabels::Refuse,
    )?;
    Ok(())
}

#[pg_extern(name = "_merge", volatile)]
fn vc_merge(
    r#ref: Option<&str>,
    message: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(commit_hash, Option<String>),
        name!(fast_forward, bool),
        name!(conflicts, i64),
        name!(violations, i64),
    ),
> {
    let o = run(|| {
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| merge(spec, message))
    });
    TableIterator::once((
        o.commit.map(|h| h.to_hex()),
        o.fast_forward,
        o.conflicts,
        o.violations,
    ))
}

#[allow(clippy::type_complexity)]
#[pg_extern(name = "_conflicts", volatile)]
fn vc_conflicts() -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(key, JsonB),
        name!(base, Option<JsonB>),
        name!(ours, Option<JsonB>),
        name!(theirs, Option<JsonB>),
    ),
> {
    let rows = run(|| {
        with_spi(|| {
            let Some(s) = state()? else {
                return Ok(Vec::new());
            };
            let store = PgStore::new();
            let recs = recorded(None)?
                .into_iter()
                .filter(|r| r.kind == "conflict")
                .collect();
            Ok(render(&store, &s, recs)?
                .into_iter()
                .map(|(t, k, [b, o, th], _, _)| (t, k, b, o, th))
                .collect())
        })
    });
    TableIterator::new(rows)
}

#[pg_extern(name = "_violations", volatile)]
fn vc_violations() -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(violation_type, String),
        name!(constraint_detail, String),
        name!(key, JsonB),
        name!(row, Option<JsonB>),
    ),
> {
    let rows = run(|| {
        with_spi(|| {
            let Some(s) = state()? else {
                return Ok(Vec::new());
            };
            let store = PgStore::new();
            let recs = recorded(None)?
                .into_iter()
                .filter(|r| r.kind != "conflict")
                .collect();
            let mut out: Vec<_> = render(&store, &s, recs)?
                .into_iter()
                .map(|(t, k, [_, _, theirs], detail, kind)| {
                    (t, kind, detail.unwrap_or_default(), k, theirs)
                })
                .collect();
            for o in foreign_key_violations(&s, ORPHANS_SHOWN)? {
                if !crate::pg::api::inspect::may_read(&o.table)? {
                    continue;
                }
                let json = |t: &str| -> VcResult<serde_json::Value> {
                    serde_json::from_str(t).map_err(|e| {
                        VcError::new(Code::ERRCODE_INTERNAL_ERROR, format!("bad jsonb text: {e}"))
                    })
                };
                out.push((
                    o.table.clone(),
                    "foreign key".to_string(),
                    o.constraint.clone(),
                    JsonB(json(&o.key)?),
                    Some(JsonB(json(&o.row)?)),
                ));
            }
            Ok(out)
        })
    });
    TableIterator::new(rows)
}

#[pg_extern(name = "_resolve", volatile)]
fn vc_resolve(table_name: Option<&str>, strategy: Option<&str>, key: Option<JsonB>) -> i64 {
    run(|| {
        let table = table_name.ok_or_else(|| null_arg("table_name"))?;
        let strategy = strategy.ok_or_else(|| null_arg("strategy"))?;
        with_spi(|| resolve_rows(table, strategy, key.as_ref().map(|k| &k.0)))
    })
}

#[pg_extern(name = "_merge_abort", volatile)]
fn vc_merge_abort() {
    run(|| with_spi(merge_abort))
}

/// Refuses a table that is not tracked, or that the caller does not own (`what` names
/// the setting in the message).
fn require_tracked_and_owned(relid: pg_sys::Oid, name: &str, what: &str) -> VcResult<()> {
    let tracked = query_values(
        "SELECT 1 FROM vc.tracked WHERE relid = $1",
        vec![Arg::Oid(relid)],
    )?;
    if tracked.is_empty() {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("table {name} is not tracked"),
        )
        .hint(format!("SELECT vc.track('{name}') first")));
    }
    if !crate::pg::spi::caller_owns(relid)? {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: only the owner of {name} may set its {what}"),
        )
        .hint("run it as the table's owner or a superuser"));
    }
    Ok(())
}

/// `vc.set_conflict_policy(tbl, policy)`: how the worker of one of several primaries
/// (`vc.multi_primary`) decides rows both sides changed; the previous policy.
pub fn set_conflict_policy(relid: pg_sys::Oid, policy: &str) -> VcResult<String> {
    let name = crate::pg::catalog::relation_name(relid)?;
    let fixed = ["fail", "ours", "theirs", "newest"].contains(&policy);
    // Otherwise a function (base jsonb, ours jsonb, theirs jsonb) RETURNS jsonb, which
    // the worker calls as the table's owner: who must be allowed to.
    let stored = if fixed {
        policy.to_string()
    } else {
        let f = query_values(
            "SELECT format('%I.%I(jsonb,jsonb,jsonb)', n.nspname, p.proname), \
                    p.prorettype = 'jsonb'::regtype, \
                    has_function_privilege(c.relowner, p.oid, 'EXECUTE') \
                    AND (p.proowner = c.relowner OR (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner)) \
                    AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, pg_class c \
             WHERE p.oid = to_regprocedure($1 || '(jsonb, jsonb, jsonb)') AND c.oid = $2",
            vec![Arg::Text(Some(policy.to_string())), Arg::Oid(relid)],
        )
        .unwrap_or_default();
        let Some(f) = f.first() else {
            return Err(invalid(format!("unknown conflict policy \"{policy}\"")).hint(
                "use 'fail' (stop and report), 'ours', 'theirs', 'newest' (the side whose commit is newer), or the schema-qualified name of a function (base jsonb, ours jsonb, theirs jsonb) RETURNS jsonb",
            ));
        };
        if !f[1].bool()? {
            return Err(invalid(format!("conflict function {policy} must return jsonb"))
                .hint("it gets base, ours and theirs as jsonb rows (NULL where absent) and returns the row to keep (NULL: none)"));
        }
        if !f[2].bool()? {
            return Err(VcError::new(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("{policy} cannot be the conflict function of {name}: the worker calls it as the table's owner, who must own it (or a superuser must) and may execute it, outside a temporary schema"),
            )
            .hint("make the table's owner own the function (ALTER FUNCTION ... OWNER TO), in a permanent schema"));
        }
        f[0].text()?
    };
    require_tracked_and_owned(relid, &name, "conflict policy")?;
    let old = query_values(
        "SELECT conflict_policy FROM vc.tracked WHERE relid = $1",
        vec![Arg::Oid(relid)],
    )?;
    exec(
        "UPDATE vc.tracked SET conflict_policy = $2 WHERE relid = $1",
        vec![Arg::Oid(relid), Arg::Text(Some(stored))],
    )?;
    old[0][0].text()
}

#[pg_extern(name = "_set_conflict_policy", volatile)]
fn vc_set_conflict_policy(tbl: Option<pg_sys::Oid>, policy: Option<&str>) -> String {
    run(|| {
        let tbl = tbl.ok_or_else(|| null_arg("tbl"))?;
        let policy = policy.ok_or_else(|| null_arg("policy"))?;
        with_spi(|| set_conflict_policy(tbl, policy))
    })
}

/// `vc.set_row_owner(tbl, owner_column)`: rows of `tbl` may be written on this server
/// only when `owner_column` holds `vc.server_name` (a row trigger refuses the others
/// at the statement); NULL removes the rule.
pub fn set_row_owner(relid: pg_sys::Oid, column: Option<&str>) -> VcResult<()> {
    let name = crate::pg::catalog::relation_name(relid)?;
    require_tracked_and_owned(relid, &name, "row owners")?;
    if let Some(c) = column {
        let exists = crate::pg::spi::one_bool(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 \
                            AND attnum > 0 AND NOT attisdropped)",
            vec![Arg::Oid(relid), Arg::Text(Some(c.to_string()))],
        )?;
        if !exists {
            return Err(VcError::new(
                Code::ERRCODE_UNDEFINED_COLUMN,
                format!("table {name} has no column \"{c}\""),
            )
            .hint("name the column that holds each row's owning server (vc.server_name)"));
        }
    }
    if column.is_some() && !crate::pg::progress::enabled() {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "row owners need pgvc in shared_preload_libraries (vc.server_name is defined there)",
        )
        .hint("add pgvc to shared_preload_libraries and restart"));
    }
    let table = QualName::parse("table name", &name)?;
    for stmt in crate::pg::sql::drop_row_owner_triggers(&table) {
        exec(stmt, vec![])?;
    }
    if let Some(c) = column {
        for stmt in crate::pg::sql::create_row_owner_triggers(&table, c) {
            exec(stmt, vec![])?;
        }
    }
    exec(
        "UPDATE vc.tracked SET owner_column = $2 WHERE relid = $1",
        vec![Arg::Oid(relid), Arg::Text(column.map(str::to_string))],
    )?;
    Ok(())
}

#[pg_extern(name = "_set_row_owner", volatile)]
fn vc_set_row_owner(tbl: Option<pg_sys::Oid>, owner_column: Option<&str>) {
    run(|| {
        let tbl = tbl.ok_or_else(|| null_arg("tbl"))?;
        with_spi(|| set_row_owner(tbl, owner_column))
    })
}
