//! `vc.reset(ref)`: hard reset. The tracked tables become exactly their state at
//! `ref` and the current branch points there; uncommitted changes are discarded.
//!
//! All checks run before the first row is touched, writers are locked out for the
//! duration (EXCLUSIVE lock: readers go on), and it is one transaction: a failure
//! leaves everything as it was. Only the rows that differ are rewritten: the tree diff
//! HEAD -> target plus the keys changed in the working set, so the cost follows the
//! size of the change, not of the table.

use crate::commit::{Commit, RootValue};
use crate::pg::api::track::tracking_damaged;
use crate::pg::catalog::{
    live_plan, restore_sequences, sequence_names, table_schema, tracked_tables, Plan,
};
use crate::pg::checkout::{create_table, load_rows};
use crate::pg::error::{null_arg, run, VcError, VcResult};
use crate::pg::refs::{current_branch, ref_hash, resolve, set_branch};
use crate::pg::rows::{logged_key_bytes, working_changes, write_rows};
use crate::pg::spi::{exec, one_text, with_replica_role, with_spi, Arg};
use crate::pg::sql;
use crate::pg::store::PgStore;
use crate::prolly::{self, diff};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use std::collections::BTreeSet;

/// Rows rewritten per batch by a reset.
const REWRITE_BATCH: usize = 5000;

pub fn reset(spec: &str) -> VcResult<()> {
    crate::pg::replication::refuse_on_standby("vc.reset()")?;
    let store = PgStore::new();
    let branch = current_branch(true)?;
    let head = ref_hash(&branch)?;
    let target = resolve(&store, spec)?;
    let target_root = RootValue::read(&store, &Commit::read(&store, &target)?.root)?;
    checkout_root(&store, head, &target_root, spec)?;
    if head != Some(target) {
        set_branch(&branch, head, target)?;
    }
    Ok(())
}

/// Makes the live tracked tables exactly `target` (rows, sequences), given that the
/// current branch is at `head`: rewrites only the rows that differ from the target
/// (the tree diff head -> target plus uncommitted changes), creates and tracks the
/// target's tables that do not exist here, and leaves tracked tables that the target
/// lacks as they are. All checks run before the first change. `what` names the
/// target in messages. Does not move any ref.
pub fn checkout_root(
    store: &PgStore,
    head: Option<crate::store::Hash>,
    target: &RootValue,
    what: &str,
) -> VcResult<()> {
    let head_root = match head {
        Some(h) => RootValue::read(store, &Commit::read(store, &h)?.root)?,
        None => RootValue::default(),
    };
    let tracked = tracked_tables()?;
    let mut create = Vec::new();
    for (name, entry) in &target.tables {
        // Names in a commit are untrusted: refuse a malformed one before using it.
        sql::QualName::parse_user("table name", name)?;
        if !tracked.iter().any(|t| &t.name == name) {
            if one_text(
                "SELECT to_regclass($1)::text",
                vec![Arg::Text(Some(name.clone()))],
            )?
            .is_some()
            {
                return Err(VcError::new(
                    Code::ERRCODE_DUPLICATE_TABLE,
                    format!("{what} contains table {name}, which exists here but is not tracked"),
                )
                .hint("vc.track() it (then commit or reset), or drop or rename it"));
            }
            create.push((name.clone(), entry.clone()));
        }
    }
    // Check every schema before changing anything.
    let mut plans = Vec::new();
    for t in &tracked {
        let Some(entry) = target.tables.get(&t.name) else {
            pgrx::notice!("pgvc: {} is not in {what}; left as it is", t.name);
            continue;
        };
        let live = table_schema(t.relid)?;
        if live != entry.schema {
            return Err(VcError::new(
                Code::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "the columns or primary key of {} differ from {what}",
                    t.name
                ),
            )
            .hint(
                "ALTER the table to the committed definition first (compare with \\d and vc.log)",
            ));
        }
        let (_, plan) = live_plan(t)?;
        exec(sql::lock_exclusive(&plan.table), vec![])?;
        plans.push((t.clone(), plan, entry.clone()));
    }
    // Writes below must not fire user triggers (a "last_updated" trigger would alter
    // restored rows), FK checks (rows arrive in key order, not dependency order) or our
    // own key log.
    with_replica_role(|| {
        apply_all(store, &plans, &head_root)?;
        for (name, entry) in &create {
            let sequences = create_table(name, entry)?;
            // Load before tracking: the rows need not pass through the tracking
            // triggers' transition tables. The plan comes from the table just created
            // (its catalog), not from the commit.
            let relid = crate::pg::catalog::relid_of(name)?;
            let mut plan = Plan::new(name, &table_schema(relid)?)?;
            plan.owner = crate::pg::catalog::table_owner(relid)?;
            load_rows(store, &plan, entry.tree)?;
            crate::pg::api::track::track(relid)?;
            restore_sequences(plan.owner, &sequences, &entry.sequences)?;
            exec(
                "UPDATE vc.tracked SET full_scan = false WHERE relid = $1",
                vec![Arg::Oid(relid)],
            )?;
        }
        Ok(())
    })
}

type TablePlan = (crate::pg::catalog::Tracked, Plan, crate::commit::TableEntry);

fn apply_all(store: &PgStore, plans: &[TablePlan], head_root: &RootValue) -> VcResult<()> {
    for (t, plan, entry) in plans {
        let old = head_root.tables.get(&t.name);
        let full = t.full_scan
            || old.is_none_or(|o| o.schema != entry.schema)
            || tracking_damaged(t, true)?
            || crate::pg::rows::log_too_long(t)?;
        let head_tree = old.map(|o| o.tree);
        // The keys to rewrite: those changed since HEAD (just the logged keys, no need
        // to compare values: rewriting an unchanged row is harmless) and those that
        // differ between HEAD and the target.
        let mut rewrite: BTreeSet<Vec<u8>> = if full {
            working_changes(store, t, plan, head_tree, true, false)?
                .into_iter()
                .map(|c| c.key)
                .collect()
        } else {
            logged_key_bytes(t, plan)?.into_iter().collect()
        };
        let base = head_tree.unwrap_or_else(prolly::empty_root);
        if base != entry.tree {
            for d in diff(store, base, entry.tree) {
                rewrite.insert(d?.key);
            }
        }
        // Rewriting a table needs the caller's own rights to write it.
        if !rewrite.is_empty() {
            for privilege in ["INSERT", "UPDATE", "DELETE"] {
                if !crate::pg::spi::caller_may(t.relid, privilege)? {
                    return Err(crate::pg::api::commit::denied_table(
                        "rewriting its rows",
                        &t.name,
                        privilege,
                    ));
                }
            }
        }
        // Rewrite in batches, reading the target rows as we go: memory stays flat.
        let mut target = prolly::Lookup::new(store, entry.tree);
        let mut rows = Vec::with_capacity(REWRITE_BATCH);
        for k in rewrite {
            let v = match target.get(&k)? {
                Some(v) => Some(crate::codec::load_value(store, &v)?),
                None => None,
            };
            rows.push((k, v));
            if rows.len() == REWRITE_BATCH {
                write_rows(plan, &rows, false)?;
                rows.clear();
            }
        }
        write_rows(plan, &rows, false)?;
        exec(sql::clear_log(u32::from(t.relid)), vec![])?;
        exec(
            "UPDATE vc.tracked SET full_scan = false WHERE relid = $1",
            vec![Arg::Oid(t.relid)],
        )?;
        restore_sequences(plan.owner, &sequence_names(t.relid)?, &entry.sequences)?;
    }
    Ok(())
}

#[pg_extern(name = "_reset", volatile)]
fn vc_reset(r#ref: Option<&str>) {
    run(|| {
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| reset(spec))
    })
}
