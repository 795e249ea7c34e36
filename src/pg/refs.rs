//! Refs and HEAD: the branch table `vc.refs`, the current branch in `vc.head`, and
//! resolution of the ref syntax (`main`, `HEAD~2`, `HEAD^`, a hash prefix): the
//! adapter of the repository layer's `Refs` (`crate::repo::refs`), which holds the rules.

use super::error::{invalid, VcError, VcResult};
use super::spi::{exec, one_text, query, Arg};
pub use crate::repo::refs::Moved;
use crate::repo::refs::{move_branch, Refs};
use crate::store::{kind, ChunkStore, Hash};

/// `vc.refs` and `vc.head` as the repository layer's ref storage. A swap is one
/// UPDATE (or INSERT) conditioned on the old hash, in the caller's transaction.
pub struct PgRefs;

impl Refs for PgRefs {
    type Error = VcError;

    fn head_branch(&self) -> VcResult<String> {
        current_branch(false)
    }

    /// A tag names its tag commit (`vc.tag`), whose one parent is the commit tagged:
    /// ref syntax reads the tagged commit.
    fn get(&self, name: &str) -> VcResult<Option<Hash>> {
        let rows = query(
            "SELECT hash, kind FROM vc.refs WHERE name = $1",
            vec![Arg::Text(Some(name.to_string()))],
            &[true, false],
        )?;
        let tag = matches!(
            rows.first().and_then(|r| r.get(1)),
            Some(crate::codec::Cell::Text(k)) if k == "tag"
        );
        let Some(h) = super::spi::first_column_hashes(rows).into_iter().next() else {
            return Ok(None);
        };
        if tag {
            return Ok(Some(tagged_commit(&super::store::PgStore::new(), h)?));
        }
        Ok(Some(h))
    }

    fn swap(&mut self, name: &str, old: Option<Hash>, new: Hash) -> VcResult<bool> {
        let n = match old {
            Some(old) => exec(
                "UPDATE vc.refs SET hash = $3 WHERE name = $1 AND hash = $2 AND kind = 'branch'",
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
        Ok(n == 1)
    }

    fn commits_between(&self, lo: &[u8; 32], hi: &[u8; 32], limit: usize) -> VcResult<Vec<Hash>> {
        let rows = query(
            "SELECT hash FROM vc.chunks WHERE hash >= $1 AND hash <= $2 AND get_byte(data, 0) = $3 LIMIT $4",
            vec![
                Arg::Bytea(Some(lo.to_vec())),
                Arg::Bytea(Some(hi.to_vec())),
                Arg::Int8(kind::COMMIT as i64),
                Arg::Int8(limit as i64),
            ],
            &[true],
        )?;
        Ok(super::spi::first_column_hashes(rows))
    }
}

/// The current branch; with `lock`, row-locks HEAD so committers serialize.
/// No row (a fresh install) means `main`; locking writes the row first.
pub fn current_branch(lock: bool) -> VcResult<String> {
    if !lock {
        return Ok(one_text("SELECT branch FROM vc.head", vec![])?.unwrap_or_else(|| "main".into()));
    }
    super::spi::exec(
        "INSERT INTO vc.head VALUES (true, 'main') ON CONFLICT (singleton) DO NOTHING",
        vec![],
    )?;
    one_text("SELECT branch FROM vc.head FOR UPDATE", vec![])?
        .ok_or_else(|| invalid("vc.head is empty; reinstall pgvc"))
}

/// Makes `branch` the current branch.
pub fn set_head(branch: &str) -> VcResult<()> {
    super::spi::exec(
        "INSERT INTO vc.head VALUES (true, $1) ON CONFLICT (singleton) DO UPDATE SET branch = EXCLUDED.branch",
        vec![super::spi::Arg::Text(Some(branch.to_string()))],
    )?;
    Ok(())
}

pub fn ref_hash(name: &str) -> VcResult<Option<Hash>> {
    PgRefs.get(name)
}

/// Moves branch `name` from `old` to `new` (compare-and-swap); creates it when `old`
/// is None. A concurrent move is a serialization failure, never a silent overwrite.
/// Returns the move: the caller hands it to `replication::primary::branch_moved`.
pub fn set_branch(name: &str, old: Option<Hash>, new: Hash) -> VcResult<Moved> {
    let moved = move_branch(&mut PgRefs, name, old, new)?;
    if let Some(old) = old {
        note_if_not_descendant(old, new)?;
    }
    Ok(moved)
}

/// A ref that moves from `old` to anything but a descendant of it (back, sideways)
/// may leave chunks that nothing reaches: tell the collector. Looks back at most
/// `DESCENDANT_WALK` commits from `new` (a follower applying several commits at once
/// is a descendant; further back is taken as not, which only costs a needless look).
fn note_if_not_descendant(old: Hash, new: Hash) -> VcResult<()> {
    if old == new {
        return Ok(());
    }
    let store = super::store::PgStore::new();
    let mut todo = vec![new];
    let mut seen = 0;
    while let Some(h) = todo.pop() {
        if h == old {
            return Ok(());
        }
        seen += 1;
        if seen > DESCENDANT_WALK {
            break;
        }
        match crate::commit::Commit::read(&store, &h) {
            Ok(c) => todo.extend(c.parents),
            Err(_) => break,
        }
    }
    super::storage::note_orphans()
}

/// Commits looked at to tell whether a ref moved forward.
const DESCENDANT_WALK: usize = 256;

/// The commit at the tip of the current branch, if it has one.
pub fn head_commit() -> VcResult<Option<Hash>> {
    crate::repo::refs::head_commit(&PgRefs)
}

/// Resolves a ref to a commit hash.
pub fn resolve(store: &dyn ChunkStore, spec: &str) -> VcResult<Hash> {
    crate::repo::refs::resolve(&PgRefs, store, spec)
}

/// Records where a remote's branch was last seen (`origin/main`).
pub fn set_tracking_ref(remote: &str, branch: &str, h: Hash) -> VcResult<()> {
    if let Some(old) = PgRefs.get(&format!("{remote}/{branch}"))? {
        note_if_not_descendant(old, h)?;
    }
    let n = exec(
        "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'remote', $2) \
         ON CONFLICT (name) DO UPDATE SET hash = excluded.hash WHERE vc.refs.kind = 'remote'",
        vec![
            Arg::Text(Some(format!("{remote}/{branch}"))),
            Arg::Bytea(Some(h.as_bytes().to_vec())),
        ],
    )?;
    if n == 0 {
        // A branch or tag holds the name: it would shadow what the remote has.
        return Err(super::error::VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("cannot record {remote}/{branch}: a branch or tag of that name exists here"),
        )
        .hint(
            "rename or delete that branch or tag: the remote-tracking ref must not be shadowed",
        ));
    }
    Ok(())
}

/// The commit a tag commit (`vc.tag`) tags: its one parent.
pub fn tagged_commit(store: &dyn ChunkStore, tag: Hash) -> VcResult<Hash> {
    let c = crate::commit::Commit::read(store, &tag)?;
    match c.parents.as_slice() {
        [target] => Ok(*target),
        _ => Err(super::error::VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("tag commit {} does not name one commit", tag.to_hex()),
        )
        .hint("vc.tag() makes tags; delete this one with vc.tag_delete() and tag again")),
    }
}
