//! `vc.commit()`: turn the working set into a commit on the current branch.
//!
//! Committers serialize on the row lock of `vc.head`. For each tracked table we read
//! only the keys its log recorded since the last commit (consuming exactly those log
//! rows in one statement), fetch the live rows for them and apply the changes to the
//! parent's tree. A table's first commit, a TRUNCATE or a schema change rebuild the
//! table's tree from a sorted full scan instead. Everything happens in the caller's
//! transaction: a rollback leaves no commit, no ref move and no chunk.

use crate::codec::store_value;
use crate::commit::{Commit, RootValue, TableEntry};
use crate::pg::catalog::{owned_sequences, tracked_tables, Tracked};
use crate::pg::error::{invalid, null_arg, run, VcError, VcResult};
use crate::pg::progress::now_us;
use crate::pg::refs::{current_branch, ref_hash, set_branch};
use crate::pg::rows::{working_changes, Scan};
use crate::pg::spi::{exec, with_snapshot, with_spi, Arg};
use crate::pg::sql::Plan;
use crate::pg::store::PgStore;
use crate::prolly::{apply_edits, Builder};
use crate::repo::worktree::{commit_outcome, CommitOutcome, ReadMode};
use crate::store::{ChunkStore, Hash};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

/// Builds a table's tree from a full scan, streaming (flat memory).
pub fn build_from_scan<S>(store: &S, plan: &Plan) -> VcResult<Hash>
where
    for<'a> &'a S: ChunkStore,
{
    let mut tree_store = store;
    let mut blob_store = store;
    let mut b = Builder::new(&mut tree_store);
    for row in Scan::open(plan)? {
        let (k, row) = row?;
        b.push(k, store_value(&mut blob_store, row)?)?;
    }
    Ok(b.finish()?)
}

/// The table's entry for a new root: its tree after the working changes, written to
/// `store`. With `consume` (a commit) the key log is emptied of the keys read; without
/// (a backup of the working set) nothing but `store` changes.
/// `retyped` names the user types whose values print differently than in the commit
/// compared with (`repo::schema::retyped`): a table using one is compared in full.
pub fn table_entry<S>(
    store: &S,
    t: &Tracked,
    old: Option<&TableEntry>,
    consume: bool,
    retyped: &std::collections::BTreeSet<String>,
) -> VcResult<TableEntry>
where
    for<'a> &'a S: ChunkStore,
{
    let (live, mut mode) = crate::pg::definition::live_and_mode(t, old, consume)?;
    if crate::repo::schema::uses_types(&live.schema, retyped) {
        mode = ReadMode::Full {
            reason: crate::repo::worktree::FullReason::SchemaChanged,
            base: old.map(|o| o.tree),
        };
    }
    let (schema, plan) = (live.schema, live.plan);
    let tree = match mode {
        ReadMode::Full { .. } => {
            if consume {
                let n = exec(crate::pg::sql::clear_log(&t.log_id()), vec![])?;
                crate::pg::rows::truncate_emptied_log(t, n)?;
                exec(
                    "UPDATE vc.tracked SET full_scan = false WHERE relid = $1 AND full_scan",
                    vec![Arg::Oid(t.relid)],
                )?;
            }
            build_from_scan(store, &plan)?
        }
        ReadMode::Log { base } => {
            let reader: &dyn ChunkStore = &store;
            let changes = working_changes(reader, t, &plan, mode, consume)?;
            let mut blobs = store;
            let mut edits = Vec::with_capacity(changes.len());
            for c in changes {
                let v = match c.after {
                    Some(row) => Some(store_value(&mut blobs, row)?),
                    None => None,
                };
                edits.push((c.key, v));
            }
            let mut s = store;
            apply_edits(&mut s, base, edits)?
        }
    };
    if consume {
        crate::pg::definition::record(t.relid, &schema, &t.name)?;
    }
    Ok(TableEntry {
        schema,
        tree,
        sequences: owned_sequences(t.relid)?,
    })
}

pub use crate::pg::definition::parent_entry;

pub fn commit(message: &str, author: Option<&str>, allow_empty: bool) -> VcResult<String> {
    if message.trim().is_empty() {
        return Err(invalid("commit message must not be empty")
            .hint("say what changed, e.g. SELECT vc.commit('add spring prices')"));
    }
    let author = match author {
        Some(a) if !a.trim().is_empty() => a.to_string(),
        Some(_) => {
            return Err(invalid("author must not be empty").hint("omit it to use current_user"))
        }
        None => crate::pg::spi::caller_name()?,
    };
    crate::pg::replication::refuse_on_standby("vc.commit()")?;
    let branch = current_branch(true)?;
    // Taken after the HEAD lock, so it sees the previous committer's ref move.
    with_snapshot(|| commit_locked(&branch, message, author, allow_empty))
}

fn commit_locked(
    branch: &str,
    message: &str,
    author: String,
    allow_empty: bool,
) -> VcResult<String> {
    let store = PgStore::new();
    let parent = ref_hash(branch)?;
    // An unfinished merge: the working set counts from the merged root, and the
    // commit has both heads as parents, once nothing is left to decide.
    let merging = crate::pg::merging::state()?;
    if let Some(m) = &merging {
        if m.branch != branch || parent != Some(m.ours) {
            return Err(VcError::new(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "the merge of \"{}\" began on \"{}\" at another commit than HEAD now names",
                    m.theirs_name, m.branch
                ),
            )
            .hint("SELECT vc.merge_abort(), then merge again"));
        }
        crate::pg::api::merge::refuse_unfinished(m)?;
    }
    let parent_root = match (&merging, parent) {
        (Some(m), _) => RootValue::read(&store, &m.merged)?,
        (None, Some(p)) => RootValue::read(&store, &Commit::read(&store, &p)?.root)?,
        (None, None) => RootValue::default(),
    };
    let mut root = RootValue::default();
    let tracked = tracked_tables()?;
    // The user types the tables use travel with them (docs/SCHEMA.md).
    let relids: Vec<_> = tracked.iter().map(|t| t.relid).collect();
    root.types = crate::pg::types::collect(&relids)?;
    let retyped = crate::repo::schema::retyped(&parent_root.types, &root.types);
    for t in &tracked {
        // A commit reads every tracked table: the caller must be allowed to.
        if !crate::pg::spi::caller_may(t.relid, "SELECT")? {
            return Err(crate::pg::error::denied_table("commit", &t.name, "SELECT"));
        }
        let entry = table_entry(&store, t, parent_entry(&parent_root, t), true, &retyped)?;
        root.tables.insert(t.name.clone(), entry);
    }
    if merging.is_none()
        && commit_outcome(parent, &parent_root, &root, allow_empty)
            == CommitOutcome::NothingToCommit
    {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "nothing to commit: no tracked table changed",
        )
        .hint("change rows of a tracked table, vc.track() a table, or pass allow_empty => true"));
    }
    let mut s = &store;
    let root_hash = root.write(&mut s)?;
    let commit = Commit {
        root: root_hash,
        parents: parent
            .into_iter()
            .chain(merging.as_ref().map(|m| m.theirs))
            .collect(),
        author,
        message: message.to_string(),
        timestamp_us: now_us(),
    };
    let hash = commit.write(&mut s)?;
    store.flush()?;
    if merging.is_some() {
        crate::pg::merging::end()?;
    }
    crate::pg::replication::primary::branch_moved(set_branch(branch, parent, hash)?)?;
    Ok(hash.to_hex())
}

/// The commit of a merge with nothing left to decide, with the merge's message, by
/// the caller (HEAD is locked).
pub fn commit_merge() -> VcResult<Hash> {
    let m = crate::pg::merging::state()?.expect("a merge is recorded");
    let author = crate::pg::spi::caller_name()?;
    let hex = commit_locked(&m.branch, &m.message, author, true)?;
    Ok(Hash::from_hex(&hex).expect("a commit hash"))
}

#[pg_extern(name = "_commit", volatile)]
fn vc_commit(message: Option<&str>, author: Option<&str>, allow_empty: Option<bool>) -> String {
    run(|| {
        let message = message.ok_or_else(|| null_arg("message"))?;
        with_spi(|| commit(message, author, allow_empty.unwrap_or(false)))
    })
}
