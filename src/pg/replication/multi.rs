//! Several primaries on one remote branch (`vc.multi_primary`, docs/BRANCHES.md):
//! the worker's answer to a remote head another primary pushed. It fetches that head
//! and either takes it (this server has nothing the remote lacks) or merges it
//! (`repo::merge`) into a commit with both heads as parents, deciding conflicting rows
//! by each table's `vc.set_conflict_policy`; the checked-out branch's live tables move
//! with it. `primary::push_all` then pushes the result on top of the remote's head.
//!
//! The worker never makes a user wait for long: it takes the tables' locks with a short
//! `lock_timeout` (a round that cannot get them fails and is retried), and waits,
//! reporting why, while the checked-out branch has uncommitted changes a merge would
//! have to rewrite.

use super::primary::SharedRemote;
use super::Config;
use crate::codec::store_value;
use crate::commit::{Commit, RootValue};
use crate::pg::error::{VcError, VcResult};
use crate::pg::refs::current_branch;
use crate::pg::spi::{exec, query_values, Arg};
use crate::pg::store::PgStore;
use crate::prolly;
use crate::remote::is_ancestor;
use crate::repo::merge::{merge_bases, merge_roots_from, Conflict};
use crate::store::Hash;
use pgrx::PgSqlErrorCode as Code;
use std::collections::BTreeMap;

/// Rows by key (encoded; `None`: absent).
type KeyedRows = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What a reconcile did.
pub enum Reconciled {
    /// The branch's new local head, to push (the remote's own head when taken).
    Head(Hash),
    /// Nothing moved; why, for `vc.replication_status()`.
    Waiting(String),
}

/// A conflicting row's fate under its table's policy.
#[derive(Clone, PartialEq, Eq)]
enum Policy {
    Fail,
    Ours,
    Theirs,
    Newest,
    /// A function (base, ours, theirs jsonb) -> jsonb, by its regprocedure text.
    Function(String),
}

/// The conflict policy of each tracked table, by the name its commits use.
fn policies() -> VcResult<BTreeMap<String, Policy>> {
    let tracked = crate::pg::catalog::tracked_tables()?;
    let mut out = BTreeMap::new();
    for t in tracked {
        let p = query_values(
            "SELECT conflict_policy FROM vc.tracked WHERE relid = $1",
            vec![Arg::Oid(t.relid)],
        )?;
        let policy = match p.first().map(|r| r[0].text()).transpose()?.as_deref() {
            Some("ours") => Policy::Ours,
            Some("theirs") => Policy::Theirs,
            Some("newest") => Policy::Newest,
            Some(f) if f.ends_with("(jsonb,jsonb,jsonb)") => Policy::Function(f.to_string()),
            _ => Policy::Fail,
        };
        out.insert(t.name, policy);
    }
    Ok(out)
}

/// Brings local branch `b` (at `ours`) together with the remote's head of it.
pub fn reconcile(cfg: &Config, remote: &SharedRemote, b: &str, ours: Hash) -> VcResult<Reconciled> {
    let remote_name = cfg.remote.as_deref().unwrap_or_default();
    if let Some(m) = crate::pg::merging::state()? {
        if m.branch == b {
            return Ok(Reconciled::Waiting(format!(
                "branch {b} has an unfinished vc.merge of {}: it takes what remote \"{remote_name}\" has once that is committed or aborted",
                m.theirs_name
            )));
        }
    }
    let mut store = PgStore::new();
    let theirs = remote.fetch(&mut store, b, &mut |_| {})?.head;
    store.flush()?;
    let store = store;
    let read_root = |h: Hash| -> VcResult<RootValue> {
        Ok(RootValue::read(&store, &Commit::read(&store, &h)?.root)?)
    };
    let ours_root = read_root(ours)?;
    let (head, target) = if is_ancestor(&store, ours, theirs)? {
        // Nothing here the remote lacks: take its head.
        (theirs, read_root(theirs)?)
    } else {
        let bases = merge_bases(&store, ours, theirs)?;
        let Some(&base) = bases.first() else {
            return Ok(Reconciled::Waiting(format!(
                "branch {b} here and on remote \"{remote_name}\" share no history: nothing is merged"
            )));
        };
        let theirs_commit = Commit::read(&store, &theirs)?;
        let ours_commit = Commit::read(&store, &ours)?;
        let mut s = &store;
        let mut m = merge_roots_from(
            &mut s,
            &read_root(base)?,
            &ours_root,
            &RootValue::read(&store, &theirs_commit.root)?,
            bases.len() > 1,
        )?;
        if !m.schema_conflicts.is_empty() {
            let what: Vec<String> = m
                .schema_conflicts
                .iter()
                .map(|c| format!("{}: {}", c.table, c.reason))
                .collect();
            return Ok(Reconciled::Waiting(format!(
                "branch {b} conflicts with remote \"{remote_name}\" in definitions ({}): merge it by hand with SELECT vc.pull('{remote_name}')",
                what.join("; ")
            )));
        }
        // Conflicting rows, by their tables' policies; the merged tree holds ours.
        let policies = policies()?;
        // The newer side, with the hash breaking a tie: every primary decides alike.
        let theirs_newer = (theirs_commit.timestamp_us, theirs) > (ours_commit.timestamp_us, ours);
        let mut unresolved: BTreeMap<String, usize> = BTreeMap::new();
        // Per table, the rows to put in place of ours: theirs, or a function's choice.
        let mut take: BTreeMap<String, KeyedRows> = BTreeMap::new();
        let decided = m.conflicts.len();
        for c in std::mem::take(&mut m.conflicts) {
            match policies.get(&c.table).cloned().unwrap_or(Policy::Fail) {
                Policy::Fail => *unresolved.entry(c.table.clone()).or_default() += 1,
                Policy::Ours => {}
                Policy::Theirs => take.entry(c.table.clone()).or_default().push((c.key, c.theirs)),
                Policy::Newest if theirs_newer => {
                    take.entry(c.table.clone()).or_default().push((c.key, c.theirs))
                }
                Policy::Newest => {}
                Policy::Function(f) => match decide_by_function(&m.root, &f, &c)? {
                    Ok(row) => take.entry(c.table.clone()).or_default().push((c.key, row)),
                    Err(why) => {
                        return Ok(Reconciled::Waiting(format!(
                            "branch {b}: the conflict function of {} failed ({why}): automatic sync of {b} stops",
                            c.table
                        )))
                    }
                },
            }
        }
        if !unresolved.is_empty() {
            let what: Vec<String> = unresolved
                .iter()
                .map(|(t, n)| format!("{n} in {t}"))
                .collect();
            return Ok(Reconciled::Waiting(format!(
                "branch {b} conflicts with remote \"{remote_name}\" ({} rows; conflict policy 'fail'): automatic sync of {b} stops; SELECT vc.pull('{remote_name}') records the conflicts to resolve, or choose a policy with vc.set_conflict_policy()",
                what.join(", ")
            )));
        }
        for (table, rows) in take {
            let entry = m.root.tables.get_mut(&table).ok_or_else(|| {
                VcError::new(
                    Code::ERRCODE_INTERNAL_ERROR,
                    format!("merged root lacks {table}"),
                )
            })?;
            let mut edits = Vec::with_capacity(rows.len());
            for (key, row) in rows {
                let mut w = &store;
                let v = match row {
                    Some(row) => Some(store_value(&mut w, row)?),
                    None => None,
                };
                edits.push((key, v));
            }
            let mut w = &store;
            entry.tree = prolly::apply_edits(&mut w, entry.tree, edits)?;
        }
        let mut w = &store;
        let root = m.root.write(&mut w)?;
        let commit = Commit {
            root,
            parents: vec![ours, theirs],
            author: "pgvc".into(),
            message: format!("Merge {remote_name}/{b} into {b} (several primaries)"),
            timestamp_us: crate::pg::progress::now_us(),
        };
        let h = commit.write(&mut w)?;
        store.flush()?;
        // (The multi-primary benchmark counts these.)
        pgrx::log!(
            "pgvc: merged {remote_name}/{b} into {b}: {decided} conflicting rows decided by policy"
        );
        (h, m.root)
    };
    if current_branch(false)? == b {
        if let Some(why) = apply_live(&store, ours, &target, b, remote_name)? {
            return Ok(Reconciled::Waiting(why));
        }
    }
    // Not handed to branch_moved: the round pushes it right after.
    let _pushed_next = crate::pg::refs::set_branch(b, Some(ours), head)?;
    Ok(Reconciled::Head(head))
}

/// The row a conflict function keeps for conflict `c` (encoded; `None`: the row goes),
/// or why it could not decide. The function gets the three versions as jsonb rows
/// (NULL where absent) and runs as the table's owner; the row it returns must keep the
/// conflict's key.
fn decide_by_function(
    merged: &RootValue,
    f: &str,
    c: &Conflict,
) -> VcResult<Result<Option<Vec<u8>>, String>> {
    let Some(entry) = merged.tables.get(&c.table) else {
        return Ok(Err(format!("{} is not in the merge", c.table)));
    };
    let relid = crate::pg::catalog::relid_of(&c.table)?;
    let mut plan = crate::pg::sql::Plan::new(&c.table, &entry.schema)?;
    plan.owner = crate::pg::catalog::table_owner(relid)?;
    // The function as the catalog names it now (it may have been dropped since), run
    // only if the table's owner or a superuser owns it: a function someone else put
    // in its place (with CREATE on that schema) must not run with the owner's rights.
    let named = query_values(
        "SELECT n.nspname::text, p.proname::text, \
                (p.proowner = c.relowner OR (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner)) \
                AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, pg_class c \
         WHERE p.oid = to_regprocedure($1) AND c.oid = $2",
        vec![Arg::Text(Some(f.to_string())), Arg::Oid(relid)],
    )?;
    let Some(n) = named.first() else {
        return Ok(Err(format!("function {f} does not exist")));
    };
    if !n[2].bool()? {
        return Ok(Err(format!(
            "function {f} is owned by neither the table's owner nor a superuser"
        )));
    }
    let func = crate::pg::sql::QualName {
        schema: n[0].text()?,
        name: n[1].text()?,
    };
    let json = |row: &Option<Vec<u8>>| -> VcResult<Option<String>> {
        row.as_ref()
            .map(|r| crate::pg::rows::row_jsonb(&plan, &c.key, r))
            .transpose()
    };
    let args = vec![
        Arg::Text(json(&c.base)?),
        Arg::Text(json(&c.ours)?),
        Arg::Text(json(&c.theirs)?),
    ];
    // In a subtransaction, with a time limit: a function that fails or hangs leaves
    // the branch waiting, never the worker stuck or every branch stopped.
    let call = crate::pg::sql::call_conflict_function(&func);
    let saved = crate::pg::spi::one_text("SELECT current_setting('statement_timeout')", vec![])?;
    let attempt = std::panic::AssertUnwindSafe(|| {
        let run = || {
            exec("SELECT set_config('statement_timeout', '5s', true)", vec![])?;
            crate::pg::spi::as_owner(plan.owner, || crate::pg::spi::query(call, args, &[]))
        };
        match run() {
            Ok(rows) => rows,
            Err(e) => e.raise(),
        }
    });
    let outcome = crate::pg::sql::in_subtransaction_catching(None, attempt);
    if let Some(v) = saved {
        exec(
            "SELECT set_config('statement_timeout', $1, true)",
            vec![Arg::Text(Some(v))],
        )?;
    }
    let out = match outcome {
        Ok(rows) => rows,
        Err(why) => return Ok(Err(why)),
    };
    let chosen = match out.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(crate::codec::Cell::Text(t)) if t != "null" => t,
        _ => return Ok(Ok(None)),
    };
    let (key, row) = crate::pg::rows::row_from_jsonb(&plan, &chosen)?;
    if key != c.key {
        return Ok(Err(format!("{f} returned a row with another key")));
    }
    Ok(Ok(Some(row)))
}

/// Moves the live tables of the checked-out branch from `ours` to `target`, or says why
/// not now. Never waits for a writer: the tables are locked with NOWAIT (a table in
/// use means the next round), so neither the worker nor a committing session (a
/// synchronous merge) holds anyone up or waits in a cycle. With the locks held, the
/// working set is judged on a fresh snapshot (a writer that committed while the merge
/// was computed is seen: its change is not rewritten). The rewrite runs in a
/// subtransaction: a row the tables refuse (a unique or NOT NULL constraint, a CHECK)
/// rolls it back whole and leaves the branch waiting, with the reason.
fn apply_live(
    store: &PgStore,
    ours: Hash,
    target: &RootValue,
    b: &str,
    remote_name: &str,
) -> VcResult<Option<String>> {
    const LOCK_NOT_AVAILABLE: &[Code] = &[Code::ERRCODE_LOCK_NOT_AVAILABLE];
    let tables = crate::pg::catalog::tracked_tables()?;
    let lock = std::panic::AssertUnwindSafe(|| {
        for t in &tables {
            // (Only what the caller may write: a committing session must not hold other
            // tables locked; a table it may not rewrite is refused by the rewrite.)
            if crate::pg::checkout::caller_may_write(t.relid)? {
                let q = crate::pg::sql::QualName::parse("table name", &t.name)?;
                exec(crate::pg::sql::lock_exclusive_nowait(&q), vec![])?;
            }
        }
        Ok::<(), VcError>(())
    });
    match crate::pg::sql::in_subtransaction_catching(Some(LOCK_NOT_AVAILABLE), lock) {
        Ok(r) => r?,
        Err(_) => {
            return Ok(Some(format!(
                "branch {b}: a tracked table is in use; what remote \"{remote_name}\" has is taken next round"
            )))
        }
    }
    crate::pg::spi::with_latest_snapshot(|| {
        if crate::pg::checkout::has_uncommitted()? {
            return Ok(Some(format!(
                "branch {b} waits for the uncommitted changes here to be committed before it takes what remote \"{remote_name}\" has"
            )));
        }
        let rewrite = std::panic::AssertUnwindSafe(|| {
            let run = || {
                crate::pg::checkout::checkout_root(
                    store,
                    Some(ours),
                    target,
                    &format!("the merge with {remote_name}/{b}"),
                    crate::pg::types::NewLabels::Add,
                )
            };
            match run() {
                Ok(added) => added,
                Err(e) => e.raise(),
            }
        });
        match crate::pg::sql::in_subtransaction_catching(None, rewrite) {
            Ok(false) => Ok(None),
            Ok(true) => {
                // New enum labels are usable once committed: the next round applies.
                crate::pg::worker::wake();
                Ok(Some(format!(
                    "branch {b}: enum labels added for what remote \"{remote_name}\" has; applied next round"
                )))
            }
            Err(why) => Ok(Some(format!(
                "branch {b}: the tables here refused what remote \"{remote_name}\" has ({why}); fix the rows, or merge by hand with SELECT vc.pull('{remote_name}')"
            ))),
        }
    })
}
