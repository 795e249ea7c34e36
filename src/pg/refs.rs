//! Refs and HEAD: the branch table `vc.refs`, the current branch in `vc.head`, and
//! resolution of the ref syntax (`main`, `HEAD~2`, `HEAD^`, a hash prefix).

use super::error::{invalid, VcError, VcResult};
use super::spi::{exec, one_text, query, Arg};
use crate::codec::Cell;
use crate::commit::{nth_ancestor, parse_ref, refspec_hash_prefix, Commit};
use crate::store::{kind, ChunkStore, Hash};
use pgrx::PgSqlErrorCode as Code;

/// The current branch; with `lock`, row-locks HEAD so committers serialize.
pub fn current_branch(lock: bool) -> VcResult<String> {
    let sql = if lock {
        "SELECT branch FROM vc.head FOR UPDATE"
    } else {
        "SELECT branch FROM vc.head"
    };
    one_text(sql, vec![])?.ok_or_else(|| invalid("vc.head is empty; reinstall pgvc"))
}

pub fn ref_hash(name: &str) -> VcResult<Option<Hash>> {
    let rows = query(
        "SELECT hash FROM vc.refs WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
        &[true],
    )?;
    Ok(
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Cell::Bytes(b)) => Hash::from_slice(&b),
            _ => None,
        },
    )
}

/// Moves branch `name` from `old` to `new` (compare-and-swap); creates it when `old`
/// is None. A concurrent move is a serialization failure, never a silent overwrite.
/// Returns the move, for replication.
pub fn set_branch(name: &str, old: Option<Hash>, new: Hash) -> VcResult<Moved> {
    let n = match old {
        Some(old) => exec(
            "UPDATE vc.refs SET hash = $3 WHERE name = $1 AND hash = $2",
            vec![
                Arg::Text(Some(name.to_string())),
                Arg::Bytea(Some(old.as_bytes().to_vec())),
                Arg::Bytea(Some(new.as_bytes().to_vec())),
            ],
        )?,
        None => exec(
            "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'branch', $2) ON CONFLICT DO NOTHING",
            vec![
                Arg::Text(Some(name.to_string())),
                Arg::Bytea(Some(new.as_bytes().to_vec())),
            ],
        )?,
    };
    if n != 1 {
        return Err(VcError::new(
            Code::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!("branch \"{name}\" was moved by a concurrent transaction"),
        )
        .hint("retry the operation"));
    }
    Ok(Moved {
        branch: name.to_string(),
        new,
    })
}

/// A branch that moved (by `set_branch`, in the current transaction). The caller hands
/// it to replication (`replication::branch_moved`), which pushes it on a primary: refs
/// know nothing of replication.
#[must_use = "hand the move to replication::branch_moved"]
pub struct Moved {
    pub branch: String,
    pub new: Hash,
}

/// The commit at the tip of the current branch, if it has one.
pub fn head_commit() -> VcResult<Option<Hash>> {
    ref_hash(&current_branch(false)?)
}

fn unknown_ref(spec: &str) -> VcError {
    VcError::new(
        Code::ERRCODE_UNDEFINED_OBJECT,
        format!("ref \"{spec}\" does not name a branch, tag or commit"),
    )
    .hint("list commits with SELECT * FROM vc.log(), branches with SELECT name FROM vc.refs")
}

fn by_prefix(store: &dyn ChunkStore, spec: &str, prefix: &str) -> VcResult<Option<Hash>> {
    let (lo, hi) = refspec_hash_prefix(prefix);
    let rows = query(
        "SELECT hash FROM vc.chunks WHERE hash >= $1 AND hash <= $2 AND get_byte(data, 0) = $3 LIMIT 2",
        vec![
            Arg::Bytea(Some(lo.to_vec())),
            Arg::Bytea(Some(hi.to_vec())),
            Arg::Int8(kind::COMMIT as i64),
        ],
        &[true],
    )?;
    let hashes: Vec<Hash> = rows
        .into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Cell::Bytes(b)) => Hash::from_slice(&b),
            _ => None,
        })
        .collect();
    match hashes.as_slice() {
        [] => Ok(None),
        [h] => {
            Commit::read(store, h)?;
            Ok(Some(*h))
        }
        _ => Err(VcError::new(
            Code::ERRCODE_AMBIGUOUS_PARAMETER,
            format!("ref \"{spec}\" is ambiguous: several commits start with {prefix}"),
        )
        .hint("give more hex digits of the hash")),
    }
}

/// Resolves a ref to a commit hash.
pub fn resolve(store: &dyn ChunkStore, spec: &str) -> VcResult<Hash> {
    let parsed = parse_ref(spec)?;
    let base = if parsed.base == "HEAD" {
        let branch = current_branch(false)?;
        ref_hash(&branch)?.ok_or_else(|| {
            VcError::new(
                Code::ERRCODE_UNDEFINED_OBJECT,
                format!("HEAD has no commits yet (branch \"{branch}\" is unborn)"),
            )
            .hint("track a table and run SELECT vc.commit('message') first")
        })?
    } else if let Some(h) = ref_hash(&parsed.base)? {
        h
    } else if crate::commit::looks_like_hash_prefix(&parsed.base) {
        by_prefix(store, spec, &parsed.base.to_ascii_lowercase())?
            .ok_or_else(|| unknown_ref(spec))?
    } else {
        return Err(unknown_ref(spec));
    };
    Ok(nth_ancestor(store, base, &parsed.steps, spec)?)
}

/// Records where a remote's branch was last seen (`origin/main`).
pub fn set_tracking_ref(remote: &str, branch: &str, h: Hash) -> VcResult<()> {
    exec(
        "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'remote', $2) \
         ON CONFLICT (name) DO UPDATE SET hash = excluded.hash WHERE vc.refs.kind = 'remote'",
        vec![
            Arg::Text(Some(format!("{remote}/{branch}"))),
            Arg::Bytea(Some(h.as_bytes().to_vec())),
        ],
    )?;
    Ok(())
}
