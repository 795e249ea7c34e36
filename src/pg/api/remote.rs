//! Remotes from SQL: `vc.remote_add/remove/remotes`, `vc.push`, `vc.fetch`, `vc.pull`,
//! `vc.clone`. The transfer itself is `crate::remote`; here are names, permissions,
//! remote-tracking refs (`origin/main`, kind 'remote') and applying pulled commits to
//! the live tables.
//!
//! A `file://` URL gives server file access: adding one needs superuser or
//! `pg_write_server_files`, reading from one (fetch, pull, clone) superuser or
//! `pg_read_server_files`, pushing to one superuser or `pg_write_server_files`,
//! checked here whatever EXECUTE grants say.

use crate::commit::{Commit, RootValue};
use crate::pg::catalog::tracked_tables;
use crate::pg::error::{invalid, null_arg, run, VcError, VcResult};
use crate::pg::progress::Tracker;
use crate::pg::refs::{current_branch, ref_hash, set_branch};
use crate::pg::spi::{exec, one_text, query, with_spi, Arg};
use crate::pg::store::PgStore;
use crate::remote::{is_ancestor, open, parse_url, Progress, Remote, RemoteUrl};
use crate::store::Hash;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use std::time::{Duration, Instant};

/// NOTICEs about a long transfer come at most this often.
const NOTICE_EVERY: Duration = Duration::from_secs(3);

fn check_name(name: &str) -> VcResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("invalid remote name \"{name}\""))
            .hint("use letters, digits, '_', '-' or '.', at most 63 characters, e.g. 'origin'"))
    }
}

fn remote_url(name: &str) -> VcResult<String> {
    one_text(
        "SELECT url FROM vc.remotes WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
    )?
    .ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("remote \"{name}\" does not exist"),
        )
        .hint("add it with SELECT vc.remote_add('origin', 'file:///path')")
    })
}

pub fn open_remote(url: &str, role: &str) -> VcResult<Remote<Box<dyn crate::remote::ObjectStore>>> {
    match parse_url(url)? {
        RemoteUrl::File(_) => crate::pg::spi::require_file_access(role, url)?,
        s3 @ RemoteUrl::S3 { .. } => {
            // The server's credentials: a bucket an administrator registered may be
            // used by the roles pgvc's functions allow; any other only by them.
            let registered = crate::pg::spi::one_bool(
                "SELECT EXISTS (SELECT 1 FROM vc.remotes WHERE url = $1 UNION ALL SELECT 1 FROM vc.backups WHERE url = $1)",
                vec![Arg::Text(Some(s3.to_string()))],
            )?;
            if !registered {
                crate::pg::spi::require_role(
                    "pgvc_admin",
                    &format!("using {s3}, which is not a registered remote or backup,"),
                )?;
            }
        }
    }
    Ok(open(url)?)
}

/// A progress callback that publishes to `vc.progress()` and raises a NOTICE at most
/// every few seconds.
pub fn notifier<'a>(what: &'static str, tracker: &'a Tracker) -> impl FnMut(Progress) + 'a {
    let mut last = Instant::now();
    move |p: Progress| {
        // pg_cancel_backend() and statement_timeout stop a long transfer here.
        pgrx::check_for_interrupts!();
        tracker.update(&p);
        if last.elapsed() >= NOTICE_EVERY {
            last = Instant::now();
            let total = match (p.chunks_total, p.bytes_total) {
                (Some(c), Some(b)) => format!(" of {c} chunks, {:.1} MB", b as f64 / 1e6),
                _ => String::new(),
            };
            pgrx::notice!(
                "pgvc {what}: {} chunks, {:.1} MB done{total}",
                p.chunks_done,
                p.bytes_done as f64 / 1e6
            );
        }
    }
}

/// Registers `name -> url` in `table` (`vc.remotes` or `vc.backups`; `what` names the
/// kind in messages) after checking the name, the URL and the caller's file access.
pub fn add_location(backups: bool, what: &str, name: &str, url: &str) -> VcResult<()> {
    check_name(name)?;
    if !backups {
        // A remote's tracking refs are <name>/<branch>: a branch already named so
        // would shadow them.
        let clash = crate::pg::spi::query_values(
            "SELECT name FROM vc.refs WHERE kind IN ('branch', 'tag') AND left(name, length($1) + 1) = $1 || '/' LIMIT 1",
            vec![Arg::Text(Some(name.to_string()))],
        )?;
        if let Some(row) = clash.first() {
            return Err(invalid(format!(
                "remote name \"{name}\" clashes with branch or tag \"{}\": the remote's tracking refs would be named like it",
                row[0].text()?
            ))
            .hint("pick another remote name, or rename the branch (vc.branch() a new one, vc.branch_delete() the old)"));
        }
    }
    let parsed = parse_url(url)?;
    if let s3 @ RemoteUrl::S3 { .. } = &parsed {
        // The server's credentials write there: for superusers and pgvc_admin only.
        crate::pg::spi::require_role("pgvc_admin", &format!("adding the s3:// {what} {s3}"))?;
        // A server that ignores conditional writes would let two writers both move
        // a branch: refused now, before anything is written there.
        crate::remote::open_s3(s3, None)?.probe_conditional_writes()?;
    }
    // Refuse what cannot be used now rather than at the first transfer.
    open_remote(url, "pg_write_server_files")?;
    let n = exec(
        crate::pg::sql::add_location(backups),
        vec![
            Arg::Text(Some(name.to_string())),
            Arg::Text(Some(parsed.to_string())),
        ],
    )?;
    if n == 0 {
        return Err(VcError::new(
            Code::ERRCODE_DUPLICATE_OBJECT,
            format!("{what} \"{name}\" already exists"),
        )
        .hint(format!("remove it first with SELECT vc.{what}_remove(...)")));
    }
    Ok(())
}

pub fn remote_add(name: &str, url: &str) -> VcResult<()> {
    add_location(false, "remote", name, url)
}

pub fn remote_remove(name: &str) -> VcResult<()> {
    remote_url(name)?;
    exec(
        "DELETE FROM vc.remotes WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    let removed = exec(
        "DELETE FROM vc.refs WHERE kind = 'remote' AND starts_with(name, $1 || '/')",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    if removed > 0 {
        crate::pg::storage::note_orphans()?;
    }
    Ok(())
}

/// Points the remote-tracking ref `<remote>/<branch>` at `h`.
pub fn push(remote: &str, branch: Option<&str>, force: bool) -> VcResult<String> {
    crate::pg::replication::refuse_when_fenced("vc.push()")?;
    let url = remote_url(remote)?;
    let r = open_remote(&url, "pg_write_server_files")?;
    let branch = match branch {
        Some(b) => b.to_string(),
        None => current_branch(false)?,
    };
    if let Some(gone) = branch.strip_prefix(':') {
        return delete_remote_ref(remote, &r, gone);
    }
    let store = PgStore::new();
    let tracker = Tracker::start("push");
    // A tag alone.
    if let Some(tag) = local_tags()?.into_iter().find(|(n, _)| *n == branch) {
        push_tag(&r, &store, &tag.0, tag.1, force, &tracker)?;
        return Ok(crate::pg::refs::tagged_commit(&store, tag.1)?.to_hex());
    }
    let head = ref_hash(&branch)?.ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("branch \"{branch}\" has no commits to push"),
        )
        .hint("commit first with SELECT vc.commit('message')")
    })?;
    let out = r.push(
        &store,
        &branch,
        head,
        force,
        None,
        &mut notifier("push", &tracker),
    )?;
    if !out.up_to_date {
        pgrx::notice!(
            "pgvc push: {} chunks, {:.1} MB sent to {url}",
            out.chunks,
            out.bytes as f64 / 1e6
        );
    }
    crate::pg::refs::set_tracking_ref(remote, &branch, head)?;
    // Tags go along: each the remote lacks that tags a commit of the pushed history
    // (one that differs there is left, with a notice; pushing the tag by name replaces
    // it with force). The branch is pushed already: a tag that fails is a notice.
    let theirs = r.list_refs()?;
    for (name, h) in local_tags()? {
        match theirs.get(&format!("tags/{name}")) {
            Some(t) if *t == h => {}
            Some(_) => {
                pgrx::notice!("pgvc push: {remote} has another tag named \"{name}\"; left as it is")
            }
            None => {
                let tagged = crate::pg::refs::tagged_commit(&store, h)?;
                if !is_ancestor(&store, tagged, head)? {
                    continue;
                }
                if let Err(e) = push_tag(&r, &store, &name, h, false, &tracker) {
                    pgrx::notice!("pgvc push: tag \"{name}\" was not pushed: {}", e.message);
                }
            }
        }
    }
    crate::pg::storage::maintain(&r, &format!("remote {remote}"), &r.read_manifest()?)?;
    Ok(head.to_hex())
}

/// Fetches one branch (or all) of a remote into the local store and the
/// remote-tracking refs; returns the (branch, head) pairs fetched.
pub fn fetch(remote: &str, branch: Option<&str>) -> VcResult<Vec<(String, Hash)>> {
    let url = remote_url(remote)?;
    let r = open_remote(&url, "pg_read_server_files")?;
    let listed = r.list_refs()?;
    let branches: Vec<String> = match branch {
        Some(b) => vec![b.to_string()],
        None => listed.keys().cloned().collect(),
    };
    let mut store = PgStore::new();
    let mut out = Vec::new();
    let mut tags = Vec::new();
    let tracker = Tracker::start("fetch");
    for b in branches {
        if let Some(tag) = b.strip_prefix("tags/") {
            // A tag is taken once: one that exists here is kept as it is.
            let local = crate::pg::spi::query_values(
                "SELECT kind, encode(hash, 'hex') FROM vc.refs WHERE name = $1",
                vec![Arg::Text(Some(tag.to_string()))],
            )?;
            let remote_hash = listed.get(&b).copied();
            if let Some(l) = local.first() {
                if Some(l[1].text()?) != remote_hash.map(|h| h.to_hex()) {
                    pgrx::notice!(
                        "pgvc fetch: kept the local {} \"{tag}\"; {remote} has a different tag of that name",
                        l[0].text()?
                    );
                }
                continue;
            }
            // A name a tag made here could not have: not valid, or shaped like a
            // remote's tracking refs (it would shadow them).
            let shadows = match tag.split_once('/') {
                Some((first, _)) => !crate::pg::spi::query_values(
                    "SELECT 1 FROM vc.remotes WHERE name = $1",
                    vec![Arg::Text(Some(first.to_string()))],
                )?
                .is_empty(),
                None => false,
            };
            if crate::repo::refs::branch_name_problem(tag).is_some() || shadows {
                pgrx::notice!(
                    "pgvc fetch: skipped {remote}'s tag \"{tag}\": not a valid tag name here"
                );
                continue;
            }
            let f = r.fetch(&mut store, &b, &mut notifier("fetch", &tracker))?;
            tags.push((tag.to_string(), f.head));
            continue;
        }
        let f = r.fetch(&mut store, &b, &mut notifier("fetch", &tracker))?;
        out.push((b, f.head));
    }
    store.flush()?;
    for (b, h) in &out {
        crate::pg::refs::set_tracking_ref(remote, b, *h)?;
    }
    for (t, h) in tags {
        // Read as a tag commit before it is named: a ref must tag one commit.
        let Ok(target) = crate::pg::refs::tagged_commit(&store, h) else {
            pgrx::notice!(
                "pgvc fetch: skipped {remote}'s tag \"{t}\": it does not name one commit"
            );
            continue;
        };
        exec(
            "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'tag', $2)",
            vec![
                Arg::Text(Some(t.clone())),
                Arg::Bytea(Some(h.as_bytes().to_vec())),
            ],
        )?;
        out.push((format!("tags/{t}"), target));
    }
    Ok(out)
}

/// `vc.push(remote, ':name')`: deletes the remote's branch `name` (or, when it has no
/// such branch, its tag `name`) and the local tracking ref; returns the commit it
/// named. A branch this server replicates to that remote is refused: its standbys
/// follow it.
fn delete_remote_ref(
    remote: &str,
    r: &Remote<Box<dyn crate::remote::ObjectStore>>,
    name: &str,
) -> VcResult<String> {
    if name.is_empty() {
        return Err(
            invalid("nothing to delete: ':' must be followed by a branch or tag name").hint(
                "SELECT vc.push('origin', ':old-branch') deletes branch old-branch on origin",
            ),
        );
    }
    let cfg = crate::pg::replication::current()?;
    if cfg.role == crate::pg::replication::Role::Primary
        && cfg.remote.as_deref() == Some(remote)
        && cfg.replicates(name)
    {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot delete \"{name}\" on {remote}: this primary replicates it there, and standbys follow it"),
        )
        .hint("remove it from vc.replicate_heads (and reload) first"));
    }
    let refs = r.list_refs()?;
    let key = if refs.contains_key(name) {
        name.to_string()
    } else if refs.contains_key(&format!("tags/{name}")) {
        format!("tags/{name}")
    } else {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("remote \"{remote}\" has no branch or tag \"{name}\""),
        )
        .hint(format!(
            "SELECT branch FROM vc.fetch('{remote}') lists what it has"
        )));
    };
    let epoch = match cfg.role {
        crate::pg::replication::Role::Primary if cfg.remote.as_deref() == Some(remote) => cfg.epoch,
        _ => None,
    };
    let Some(old) = r.delete_ref(&key, epoch)? else {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("remote \"{remote}\" has no branch or tag \"{name}\" any more"),
        ));
    };
    let removed = exec(
        "DELETE FROM vc.refs WHERE kind = 'remote' AND name = $1",
        vec![Arg::Text(Some(format!("{remote}/{name}")))],
    )?;
    if removed > 0 {
        crate::pg::storage::note_orphans()?;
    }
    Ok(old.to_hex())
}

/// Pushes local tag `name` to `r` as `tags/<name>`, unless the remote has it; a
/// different tag of that name there is refused unless `force`. Whether it sent it.
fn push_tag(
    r: &Remote<Box<dyn crate::remote::ObjectStore>>,
    store: &PgStore,
    name: &str,
    tag: Hash,
    force: bool,
    tracker: &Tracker,
) -> VcResult<bool> {
    let key = format!("tags/{name}");
    match r.list_refs()?.get(&key) {
        Some(h) if *h == tag => return Ok(false),
        Some(_) if !force => {
            return Err(VcError::new(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("push refused: the remote has another tag named \"{name}\""),
            )
            .hint(
                "tags do not move: delete it there first, or push with force => true to replace it",
            ))
        }
        _ => {}
    }
    // Forced only when asked: a tag another writer made meanwhile is not replaced.
    r.push(
        store,
        &key,
        tag,
        force,
        None,
        &mut notifier("push", tracker),
    )?;
    Ok(true)
}

/// The local tags, by name.
fn local_tags() -> VcResult<Vec<(String, Hash)>> {
    let rows = query(
        "SELECT name, hash FROM vc.refs WHERE kind = 'tag' ORDER BY name",
        vec![],
        &[false, true],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match (r.first(), r.get(1)) {
            (Some(crate::codec::Cell::Text(n)), Some(crate::codec::Cell::Bytes(b))) => {
                Hash::from_slice(b).map(|h| (n.clone(), h))
            }
            _ => None,
        })
        .collect())
}

/// True when the working set has uncommitted changes.
pub fn pull(remote: &str, branch: Option<&str>) -> VcResult<String> {
    crate::pg::replication::refuse_on_standby("vc.pull()")?;
    let local_branch = current_branch(true)?;
    crate::pg::api::merge::refuse_during_merge("vc.pull()")?;
    let branch = branch
        .map(str::to_string)
        .unwrap_or_else(|| local_branch.clone());
    if crate::pg::checkout::has_uncommitted()? {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pull refused: there are uncommitted changes (see vc.status())",
        )
        .hint("commit them with vc.commit(), or discard them with vc.reset()"));
    }
    if branch.starts_with("tags/") {
        return Err(invalid(format!("pull takes a branch, not tag \"{branch}\""))
            .hint("SELECT vc.fetch(remote) takes the remote's tags; SELECT * FROM vc.merge('<tag>') merges one"));
    }
    let fetched = fetch(remote, Some(&branch))?;
    let Some(&(_, theirs)) = fetched.first() else {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("remote \"{remote}\" has no branch \"{branch}\""),
        ));
    };
    let store = PgStore::new();
    let ours = ref_hash(&local_branch)?;
    if ours == Some(theirs) {
        return Ok(theirs.to_hex());
    }
    if let Some(o) = ours {
        if is_ancestor(&store, theirs, o)? {
            pgrx::notice!(
                "pgvc pull: {local_branch} is ahead of {remote}/{branch}; nothing to pull"
            );
            return Ok(o.to_hex());
        }
        if !is_ancestor(&store, o, theirs)? {
            // Diverged: a three-way merge, as vc.merge() makes it (the tables are
            // locked and clean: checked above and in merge_into's checkout).
            let label = format!("{remote}/{branch}");
            crate::pg::api::merge::prepare_live_tables("pull", "pull")?;
            let out = crate::pg::spi::with_snapshot(|| {
                crate::pg::api::merge::merge_into(&store, &local_branch, theirs, &label, None)
            })?;
            return Ok(match out.commit {
                Some(c) => c.to_hex(),
                None => {
                    pgrx::warning!(
                        "pgvc pull: merging {label} left {} conflict(s) and {} violation(s); {local_branch} stays at its commit until they are resolved and committed",
                        out.conflicts,
                        out.violations
                    );
                    o.to_hex()
                }
            });
        }
    }
    let target = RootValue::read(&store, &Commit::read(&store, &theirs)?.root)?;
    crate::pg::checkout::checkout_root(
        &store,
        ours,
        &target,
        &format!("{remote}/{branch}"),
        crate::pg::types::NewLabels::Refuse,
    )?;
    crate::pg::replication::primary::branch_moved(set_branch(&local_branch, ours, theirs)?)?;
    Ok(theirs.to_hex())
}

pub fn clone(url: &str, branch: &str) -> VcResult<String> {
    if let Some(why) = crate::repo::refs::branch_name_problem(branch) {
        return Err(invalid(format!("cannot clone \"{branch}\": {why}"))
            .hint("name one of the remote's branches, e.g. 'main'"));
    }
    if !tracked_tables()?.is_empty() {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "clone refused: this database already tracks tables",
        )
        .hint("clone into a database where pgvc is installed and nothing is tracked"));
    }
    let existing = query(
        "SELECT 1 FROM vc.refs WHERE kind <> 'remote' LIMIT 1",
        vec![],
        &[],
    )?;
    if !existing.is_empty() {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "clone refused: this database already has commits",
        )
        .hint("clone into a fresh database (CREATE DATABASE ...; CREATE EXTENSION pgvc)"));
    }
    let origin_exists = one_text("SELECT url FROM vc.remotes WHERE name = 'origin'", vec![])?;
    if origin_exists.is_none() {
        remote_add("origin", url)?;
    }
    let fetched = fetch("origin", None)?;
    let Some((_, head)) = fetched.iter().find(|(b, _)| b == branch) else {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("the remote {url} has no branch \"{branch}\""),
        )
        .hint(format!(
            "its branches: {}",
            fetched
                .iter()
                .map(|(b, _)| b.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let store = PgStore::new();
    let target = RootValue::read(&store, &Commit::read(&store, head)?.root)?;
    crate::pg::checkout::checkout_root(
        &store,
        None,
        &target,
        &format!("origin/{branch}"),
        crate::pg::types::NewLabels::Refuse,
    )?;
    // The epoch the clone was taken at: a standby made by this clone knows from the
    // start which promotion it follows (vc.promote() compares).
    let url = remote_url("origin")?;
    crate::pg::replication::store_epoch(open_remote(&url, "pg_read_server_files")?.epoch()?)?;
    crate::pg::refs::set_head(branch)?;
    crate::pg::replication::primary::branch_moved(set_branch(branch, None, *head)?)?;
    Ok(head.to_hex())
}

#[pg_extern(name = "_remote_add", volatile)]
fn vc_remote_add(name: Option<&str>, url: Option<&str>) {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        let url = url.ok_or_else(|| null_arg("url"))?;
        with_spi(|| remote_add(name, url))
    })
}

#[pg_extern(name = "_remote_remove", volatile)]
fn vc_remote_remove(name: Option<&str>) {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        with_spi(|| remote_remove(name))
    })
}

#[pg_extern(name = "_push", volatile)]
fn vc_push(remote: Option<&str>, branch: Option<&str>, force: Option<bool>) -> String {
    run(|| {
        let remote = remote.ok_or_else(|| null_arg("remote"))?;
        with_spi(|| push(remote, branch, force.unwrap_or(false)))
    })
}

#[pg_extern(name = "_fetch", volatile)]
fn vc_fetch(
    remote: Option<&str>,
    branch: Option<&str>,
) -> TableIterator<'static, (name!(branch, String), name!(commit_hash, String))> {
    let rows = run(|| {
        let remote = remote.ok_or_else(|| null_arg("remote"))?;
        with_spi(|| {
            Ok(fetch(remote, branch)?
                .into_iter()
                .map(|(b, h)| (b, h.to_hex()))
                .collect::<Vec<_>>())
        })
    });
    TableIterator::new(rows)
}

#[pg_extern(name = "_pull", volatile)]
fn vc_pull(remote: Option<&str>, branch: Option<&str>) -> String {
    run(|| {
        let remote = remote.ok_or_else(|| null_arg("remote"))?;
        with_spi(|| pull(remote, branch))
    })
}

#[pg_extern(name = "_clone", volatile)]
fn vc_clone(url: Option<&str>, branch: Option<&str>) -> String {
    run(|| {
        let url = url.ok_or_else(|| null_arg("url"))?;
        let branch = branch.ok_or_else(|| null_arg("branch"))?;
        with_spi(|| clone(url, branch))
    })
}
