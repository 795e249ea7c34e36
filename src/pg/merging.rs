//! The state of an unfinished merge (`vc.merge_state`), read by everything that
//! judges or moves the working set (commit, status, diff, checkout, backups): during
//! a merge the working set counts from the merged root. The merge itself is
//! `api::merge`.

use super::error::{VcError, VcResult};
use super::spi::{exec, query_values, Value};
use super::store::PgStore;
use crate::commit::{Commit, RootValue};
use crate::store::Hash;
use pgrx::PgSqlErrorCode as Code;

/// An unfinished merge (`vc.merge_state`).
pub struct MergeState {
    pub branch: String,
    pub ours: Hash,
    pub theirs: Hash,
    pub theirs_name: String,
    pub merged: Hash,
    pub message: String,
    /// The tables whose rows the merge changed (names in the merged root).
    pub changed: Vec<String>,
}

fn hash_of(v: &Value) -> VcResult<Hash> {
    Hash::from_hex(&v.text()?).ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_DATA_CORRUPTED,
            "vc.merge_state holds a malformed hash",
        )
    })
}

/// The unfinished merge, if any.
pub fn state() -> VcResult<Option<MergeState>> {
    let rows = query_values(
        "SELECT branch, encode(ours, 'hex'), encode(theirs, 'hex'), theirs_name, \
                encode(merged, 'hex'), message, array_to_json(changed)::text \
         FROM vc.merge_state",
        vec![],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let changed: Vec<String> = serde_json::from_str(&r[6].text()?).map_err(|e| {
        VcError::new(
            Code::ERRCODE_DATA_CORRUPTED,
            format!("vc.merge_state.changed: {e}"),
        )
    })?;
    Ok(Some(MergeState {
        branch: r[0].text()?,
        ours: hash_of(&r[1])?,
        theirs: hash_of(&r[2])?,
        theirs_name: r[3].text()?,
        merged: hash_of(&r[4])?,
        message: r[5].text()?,
        changed,
    }))
}

/// Ends the unfinished merge (its decisions are made or dropped).
pub fn end() -> VcResult<()> {
    exec("DELETE FROM vc.merge_conflicts", vec![])?;
    exec("DELETE FROM vc.merge_state", vec![])?;
    Ok(())
}

/// Refuses `what` while a merge is unfinished.
pub fn refuse_during_merge(what: &str) -> VcResult<()> {
    if let Some(s) = state()? {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "{what} refused: the merge of \"{}\" into \"{}\" is not finished",
                s.theirs_name, s.branch
            ),
        )
        .hint("resolve what vc.conflicts() and vc.violations() list and SELECT vc.commit('...'), or SELECT vc.merge_abort()"));
    }
    Ok(())
}

/// The root value the working set is judged against: HEAD's, or during a merge the
/// merged root the live tables were moved to.
pub fn working_base(store: &PgStore) -> VcResult<RootValue> {
    if let Some(s) = state()? {
        return Ok(RootValue::read(store, &s.merged)?);
    }
    match crate::pg::refs::head_commit()? {
        Some(h) => Ok(RootValue::read(store, &Commit::read(store, &h)?.root)?),
        None => Ok(RootValue::default()),
    }
}
