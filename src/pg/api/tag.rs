//! Tags (docs/BRANCHES.md): `vc.tag`, `vc.tag_delete`, `vc.tags`.
//!
//! A tag is a ref of kind `tag` naming a *tag commit*: a commit whose one parent is
//! the commit tagged, with the same root, the tagger as author and the tag's message
//! (empty for none). Being a commit, it travels with everything that moves history
//! (push, fetch, clone, backups, gc) unchanged; ref syntax reads a tag as the commit
//! it tags (`pg::refs::PgRefs::get`).

use crate::commit::Commit;
use crate::pg::error::{invalid, null_arg, run, VcError, VcResult};
use crate::pg::progress::now_us;
use crate::pg::refs::{resolve, tagged_commit};
use crate::pg::spi::{exec, query_values, with_spi, Arg};
use crate::pg::store::PgStore;
use crate::repo::refs::branch_name_problem;
use crate::store::{ChunkStore, Hash};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

/// Refuses a name that cannot be a tag's: the branch rules (both live in `vc.refs`),
/// and not the start of a remote's tracking refs.
pub fn check_ref_name(name: &str, what: &str) -> VcResult<()> {
    if let Some(why) = branch_name_problem(name) {
        let why = why.replace("branch name", &format!("{what} name"));
        return Err(invalid(format!("invalid {what} name \"{name}\": {why}"))
            .hint("use letters, digits, - _ . and / between parts, e.g. 'v1.2'"));
    }
    Ok(())
}

/// Makes the tag commit for `target` (not yet named by any ref).
pub fn tag_commit(store: &PgStore, target: Hash, message: &str, tagger: String) -> VcResult<Hash> {
    let c = Commit::read(store, &target)?;
    let tag = Commit {
        root: c.root,
        parents: vec![target],
        author: tagger,
        message: message.to_string(),
        timestamp_us: now_us(),
    };
    let mut s = store;
    let h = tag.write(&mut s)?;
    store.flush()?;
    Ok(h)
}

/// `vc.tag(name, ref, message)`: the tagged commit's hash.
pub fn tag(name: &str, spec: &str, message: Option<&str>) -> VcResult<String> {
    crate::pg::replication::refuse_on_standby("vc.tag()")?;
    check_ref_name(name, "tag")?;
    if let Some((first, _)) = name.split_once('/') {
        let clash = query_values(
            "SELECT 1 FROM vc.remotes WHERE name = $1",
            vec![Arg::Text(Some(first.to_string()))],
        )?;
        if !clash.is_empty() {
            return Err(invalid(format!(
                "invalid tag name \"{name}\": it starts with the name of remote \"{first}\", as that remote's tracking refs do"
            ))
            .hint("pick a name that does not start with a remote's name and a slash"));
        }
    }
    let exists = query_values(
        "SELECT kind FROM vc.refs WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    if let Some(r) = exists.first() {
        return Err(VcError::new(
            Code::ERRCODE_DUPLICATE_OBJECT,
            format!("a {} named \"{name}\" already exists", r[0].text()?),
        )
        .hint("tags do not move: pick another name, or vc.tag_delete() the old tag first"));
    }
    if message.is_some_and(|m| m.trim().is_empty()) {
        return Err(invalid("tag message must not be empty").hint("omit it for a tag without one"));
    }
    let store = PgStore::new();
    let target = resolve(&store, spec)?;
    let tagger = crate::pg::spi::caller_name()?;
    let h = tag_commit(&store, target, message.unwrap_or(""), tagger)?;
    exec(
        "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'tag', $2)",
        vec![
            Arg::Text(Some(name.to_string())),
            Arg::Bytea(Some(h.as_bytes().to_vec())),
        ],
    )?;
    Ok(target.to_hex())
}

/// `vc.tag_delete(name)`.
pub fn tag_delete(name: &str) -> VcResult<()> {
    crate::pg::replication::refuse_on_standby("vc.tag_delete()")?;
    let n = exec(
        "DELETE FROM vc.refs WHERE name = $1 AND kind = 'tag'",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    if n == 0 {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("tag \"{name}\" does not exist"),
        )
        .hint("SELECT name FROM vc.tags() lists them"));
    }
    crate::pg::storage::note_orphans()
}

/// One row of `vc.tags()`.
type TagRow = (String, String, Option<String>, String, i64);

fn tags(store: &dyn ChunkStore) -> VcResult<Vec<TagRow>> {
    let rows = query_values(
        "SELECT name, encode(hash, 'hex') FROM vc.refs WHERE kind = 'tag' ORDER BY name",
        vec![],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let h = Hash::from_hex(&r[1].text()?).ok_or_else(|| {
            VcError::new(
                Code::ERRCODE_DATA_CORRUPTED,
                "vc.refs holds a malformed hash",
            )
        })?;
        let c = Commit::read(store, &h)?;
        let target = tagged_commit(store, h)?;
        let message = Some(c.message).filter(|m| !m.is_empty());
        out.push((
            r[0].text()?,
            target.to_hex(),
            message,
            c.author,
            c.timestamp_us,
        ));
    }
    Ok(out)
}

#[pg_extern(name = "_tag", volatile)]
fn vc_tag(name: Option<&str>, r#ref: Option<&str>, message: Option<&str>) -> String {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| tag(name, spec, message))
    })
}

#[pg_extern(name = "_tag_delete", volatile)]
fn vc_tag_delete(name: Option<&str>) {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        with_spi(|| tag_delete(name))
    })
}

#[pg_extern(name = "_tags", volatile)]
fn vc_tags() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(commit_hash, String),
        name!(message, Option<String>),
        name!(tagger, String),
        name!(tagged_us, i64),
    ),
> {
    let rows = run(|| with_spi(|| tags(&PgStore::new())));
    TableIterator::new(rows)
}
