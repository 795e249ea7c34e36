//! Branches (docs/BRANCHES.md): `vc.branch`, `vc.branch_delete`, `vc.branches`,
//! `vc.active_branch` and `vc.checkout`. The naming rules are the repository
//! layer's (`repo::refs::branch_name_problem`); a checkout is the machinery of
//! `vc.reset` (`checkout::checkout_root`: only the rows that differ are rewritten,
//! all in the caller's transaction) followed by a move of HEAD.

use crate::commit::{Commit, RootValue};
use crate::pg::catalog::tracked_tables;
use crate::pg::error::{invalid, null_arg, run, VcError, VcResult};
use crate::pg::refs::{current_branch, ref_hash, resolve, set_branch, set_head};
use crate::pg::spi::{exec, query_values, with_spi, Arg, Value};
use crate::pg::store::PgStore;
use crate::repo::refs::branch_name_problem;
use crate::store::Hash;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

/// The kind of ref `name` is (`branch`, `tag`, `remote`), if it exists.
fn kind_of(name: &str) -> VcResult<Option<String>> {
    let rows = query_values(
        "SELECT kind FROM vc.refs WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    rows.first().map(|r| r[0].text()).transpose()
}

/// An existing branch named `name`, or an error that says what it is instead.
fn existing_branch(name: &str, what: &str) -> VcResult<Hash> {
    match kind_of(name)?.as_deref() {
        Some("branch") => Ok(ref_hash(name)?.expect("a branch row has a hash")),
        Some(other) => Err(VcError::new(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "\"{name}\" is a {} ref, not a branch",
                if other == "remote" {
                    "remote-tracking"
                } else {
                    other
                }
            ),
        )
        .hint(format!(
            "{what} takes a branch; SELECT vc.branch('<new name>', '{name}') makes one there"
        ))),
        None => Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("branch \"{name}\" does not exist"),
        )
        .hint("SELECT name FROM vc.branches() lists them")),
    }
}

/// `vc.branch(name, start_point)`: a new branch at `start_point`; its commit hash.
pub fn branch(name: &str, start: &str) -> VcResult<String> {
    crate::pg::replication::refuse_on_standby("vc.branch()")?;
    if let Some(why) = branch_name_problem(name) {
        return Err(invalid(format!("invalid branch name \"{name}\": {why}"))
            .hint("use letters, digits, - _ . and / between parts, e.g. 'feature/prices'"));
    }
    // Remote-tracking refs are <remote>/<branch>: a branch may not look like one.
    if let Some((first, _)) = name.split_once('/') {
        let clash = query_values(
            "SELECT 1 FROM vc.remotes WHERE name = $1",
            vec![Arg::Text(Some(first.to_string()))],
        )?;
        if !clash.is_empty() {
            return Err(invalid(format!(
                "invalid branch name \"{name}\": it starts with the name of remote \"{first}\", as that remote's tracking refs do"
            ))
            .hint("pick a name that does not start with a remote's name and a slash"));
        }
    }
    if kind_of(name)?.is_some() {
        return Err(VcError::new(
            Code::ERRCODE_DUPLICATE_OBJECT,
            format!("a ref named \"{name}\" already exists"),
        )
        .hint("pick another name, or delete the branch first with vc.branch_delete()"));
    }
    let store = PgStore::new();
    let target = resolve(&store, start)?;
    crate::pg::replication::primary::branch_moved(set_branch(name, None, target)?)?;
    Ok(target.to_hex())
}

/// `vc.branch_delete(name, force)`.
pub fn branch_delete(name: &str, force: bool) -> VcResult<()> {
    crate::pg::replication::refuse_on_standby("vc.branch_delete()")?;
    let current = current_branch(true)?;
    let tip = existing_branch(name, "vc.branch_delete()")?;
    if name == current {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot delete branch \"{name}\": it is the current branch"),
        )
        .hint("SELECT vc.checkout('<another branch>') first"));
    }
    if !force {
        let store = PgStore::new();
        let merged = match ref_hash(&current)? {
            Some(head) => crate::remote::is_ancestor(&store, tip, head)?,
            None => false,
        };
        if !merged {
            return Err(VcError::new(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "branch \"{name}\" is not merged into \"{current}\": deleting it would lose its commits"
                ),
            )
            .hint("merge it first, or pass force => true to delete it anyway"));
        }
    }
    exec(
        "DELETE FROM vc.refs WHERE name = $1 AND kind = 'branch'",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    // Its commits may now be unreachable: the collector may look.
    crate::pg::storage::note_orphans()
}

/// `vc.checkout(branch, force)`: the tracked tables become the branch's state (rows,
/// definitions, sequences) and HEAD names it, in one transaction.
pub fn checkout(name: &str, force: bool) -> VcResult<()> {
    crate::pg::replication::refuse_on_standby("vc.checkout()")?;
    let current = current_branch(true)?;
    crate::pg::api::merge::refuse_during_merge("vc.checkout()")?;
    let target = existing_branch(name, "vc.checkout()")?;
    // HEAD is every session's: moving it needs the right to read every tracked table
    // (as a commit does), force or not.
    let tracked = tracked_tables()?;
    for t in &tracked {
        if !crate::pg::spi::caller_may(t.relid, "SELECT")? {
            return Err(crate::pg::error::denied_table(
                "checkout", &t.name, "SELECT",
            ));
        }
    }
    // On a primary, commits on a branch that is not replicated would stay here.
    let cfg = crate::pg::replication::current()?;
    if cfg.role == crate::pg::replication::Role::Primary && !cfg.replicates(name) {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot check out \"{name}\" on a primary: the branch is not replicated"),
        )
        .hint("add it to vc.replicate_heads (and reload), or check out a replicated branch"));
    }
    // Writers are locked out before the working set is judged, so that no change
    // committed in between is discarded unasked (the locks checkout_root takes again).
    for t in &tracked {
        if crate::pg::checkout::caller_may_write(t.relid)? {
            let q = crate::pg::sql::QualName::parse("table name", &t.name)?;
            exec(crate::pg::sql::lock_exclusive(&q), vec![])?;
        }
    }
    if !force && crate::pg::checkout::has_uncommitted()? {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot check out \"{name}\": the tracked tables have uncommitted changes"),
        )
        .hint("commit them with vc.commit(), or pass force => true to discard them"));
    }
    if name == current && !force {
        return Ok(());
    }
    let store = PgStore::new();
    let head = ref_hash(&current)?;
    let target_root = RootValue::read(&store, &Commit::read(&store, &target)?.root)?;
    crate::pg::checkout::checkout_root(
        &store,
        head,
        &target_root,
        name,
        crate::pg::types::NewLabels::Refuse,
    )?;
    set_head(name)
}

#[pg_extern(name = "_branch", volatile)]
fn vc_branch(name: Option<&str>, start_point: Option<&str>) -> String {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        let start = start_point.ok_or_else(|| null_arg("start_point"))?;
        with_spi(|| branch(name, start))
    })
}

#[pg_extern(name = "_branch_delete", volatile)]
fn vc_branch_delete(name: Option<&str>, force: Option<bool>) {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        let force = force.ok_or_else(|| null_arg("force"))?;
        with_spi(|| branch_delete(name, force))
    })
}

#[pg_extern(name = "_checkout", volatile)]
fn vc_checkout(branch: Option<&str>, force: Option<bool>) {
    run(|| {
        let branch = branch.ok_or_else(|| null_arg("branch"))?;
        let force = force.ok_or_else(|| null_arg("force"))?;
        with_spi(|| checkout(branch, force))
    })
}

#[pg_extern(name = "_active_branch", volatile)]
fn vc_active_branch() -> String {
    run(|| with_spi(|| current_branch(false)))
}

#[pg_extern(name = "_branches", volatile)]
fn vc_branches() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(commit_hash, String),
        name!(is_current, bool),
        name!(upstream, Option<String>),
    ),
> {
    let rows = run(|| {
        with_spi(|| {
            let current = current_branch(false)?;
            let rows = query_values(
                "SELECT r.name, encode(r.hash, 'hex'), r.kind, \
                   (SELECT min(u.name) FROM vc.refs u WHERE r.kind = 'branch' AND u.kind = 'remote' \
                      AND substr(u.name, strpos(u.name, '/') + 1) = r.name) \
                 FROM vc.refs r WHERE r.kind IN ('branch', 'remote') ORDER BY r.kind, r.name",
                vec![],
            )?;
            rows.into_iter()
                .map(|r| {
                    let name = r[0].text()?;
                    let is_current = r[2].text()? == "branch" && name == current;
                    let upstream = match &r[3] {
                        Value::Null => None,
                        v => Some(v.text()?),
                    };
                    Ok((name, r[1].text()?, is_current, upstream))
                })
                .collect::<VcResult<Vec<_>>>()
        })
    });
    TableIterator::new(rows)
}
