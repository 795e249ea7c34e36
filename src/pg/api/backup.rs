//! Backups: a remote that receives everything, so that a restore gives back exactly
//! the database's versioned state at the moment of the sync, uncommitted changes
//! included.
//!
//! Layout in the backup's manifest refs: `heads/<branch>` and `tags/<tag>` for every
//! branch and tag, and `working/<current branch>` for the working set: a commit whose
//! parent is HEAD and whose root holds the live tables (HEAD's trees plus the
//! uncommitted changes, written straight to the backup as they are built, so the local
//! store is untouched and memory stays flat whatever the size) with their sequences. Its timestamp is HEAD's, so a sync with nothing changed makes
//! exactly the same chunks and writes nothing. The whole sync reads one snapshot.

use crate::codec::Cell;
use crate::commit::{Commit, RootValue};
use crate::pg::api::commit::table_entry;
use crate::pg::api::remote::{add_location, notifier, open_remote};
use crate::pg::catalog::tracked_tables;
use crate::pg::checkout::checkout_root;
use crate::pg::error::{null_arg, run, VcError, VcResult};
use crate::pg::progress::Tracker;
use crate::pg::refs::current_branch;
use crate::pg::spi::{exec, one_text, query, with_snapshot, with_spi, Arg};
use crate::pg::store::PgStore;
use crate::remote::{chunk_refs, RemoteChunkStore};
use crate::store::{ChunkStore, Hash, Layered};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use std::collections::{BTreeMap, HashSet};

/// The refs a backup mirrors: branches, tags, and the working set.
const BACKUP_PREFIXES: [&str; 3] = ["heads/", "tags/", "working/"];

fn backup_url(name: &str) -> VcResult<String> {
    one_text(
        "SELECT url FROM vc.backups WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
    )?
    .ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("backup \"{name}\" does not exist"),
        )
        .hint("add it with SELECT vc.backup_add('nightly', 'file:///path')")
    })
}

pub fn backup_add(name: &str, url: &str) -> VcResult<()> {
    add_location(true, "backup", name, url)
}

/// Every branch and tag: (kind, name, commit).
fn local_refs() -> VcResult<Vec<(String, String, Hash)>> {
    let rows = query(
        "SELECT kind, name, hash FROM vc.refs WHERE kind IN ('branch', 'tag') ORDER BY kind, name",
        vec![],
        &[false, false, true],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match (&r[0], &r[1], &r[2]) {
            (Cell::Text(k), Cell::Text(n), Cell::Bytes(h)) => {
                Some((k.clone(), n.clone(), Hash::from_slice(h)?))
            }
            _ => None,
        })
        .collect())
}

/// Writes the working set's commit into `overlay` and returns it.
fn working_commit<T: ChunkStore>(
    store: &PgStore,
    overlay: &Layered<'_, T>,
    head: Option<Hash>,
) -> VcResult<Hash> {
    let (head_root, ts) = match head {
        Some(h) => {
            let c = Commit::read(store, &h)?;
            (RootValue::read(store, &c.root)?, c.timestamp_us)
        }
        None => (RootValue::default(), 0),
    };
    // During an unfinished merge the key logs count from the merged root.
    let head_root = match crate::pg::merging::state()? {
        Some(m) => RootValue::read(store, &m.merged)?,
        None => head_root,
    };
    let mut root = RootValue::default();
    let tracked = tracked_tables()?;
    let relids: Vec<_> = tracked.iter().map(|t| t.relid).collect();
    root.types = crate::pg::types::collect(&relids)?;
    let retyped = crate::repo::schema::retyped(&head_root.types, &root.types);
    for t in &tracked {
        let entry = table_entry(
            overlay,
            t,
            super::commit::parent_entry(&head_root, t),
            false,
            &retyped,
        )?;
        root.tables.insert(t.name.clone(), entry);
    }
    let mut w = overlay;
    let root_hash = root.write(&mut w)?;
    let commit = Commit {
        root: root_hash,
        parents: head.into_iter().collect(),
        author: "pgvc".into(),
        message: "working set".into(),
        timestamp_us: ts,
    };
    Ok(commit.write(&mut w)?)
}

pub fn backup_sync(name: &str) -> VcResult<(i64, i64)> {
    let url = backup_url(name)?;
    let r = open_remote(&url, "pg_write_server_files")?;
    with_snapshot(|| {
        let store = PgStore::new();
        let branch = current_branch(false)?;
        let refs = local_refs()?;
        let head = refs
            .iter()
            .find(|(k, n, _)| k == "branch" && *n == branch)
            .map(|r| r.2);
        let mut targets: BTreeMap<String, Hash> = refs
            .iter()
            .map(|(k, n, h)| {
                (
                    format!("{}/{n}", if k == "branch" { "heads" } else { "tags" }),
                    *h,
                )
            })
            .collect();
        let tracker = Tracker::start("backup sync");
        let mut report = notifier("backup sync", &tracker);
        // 1. Every chunk of the branches and tags the backup lacks, in one pack listed
        //    without moving a ref: the working set built next reuses their subtrees.
        let roots: Vec<Hash> = targets.values().copied().collect();
        let (base, _) = crate::remote::Manifest::read(r.store())?;
        // Diffed against the branches and tags the backup holds (its working set's
        // trees were built straight into the backup, not here).
        let mut heads = base.clone();
        heads.refs.retain(|name, _| !name.starts_with("working/"));
        let known = crate::remote::known_heads(&store, &heads)?;
        let (pack, sent) = r.write_missing(&store, &roots, &known, &base, &mut report)?;
        if let Some(p) = &pack {
            r.add_pack(p)?;
        }
        // 2. The working set, its new chunks sent to the backup as they are made (in
        //    packs of a few MB, each closed under references: trees are written bottom
        //    up, over subtrees step 1 sent), so memory stays flat for any table size.
        let spill = Layered::new(
            &store,
            RemoteChunkStore::from_remote(crate::pg::api::remote::open_remote(
                &url,
                "pg_write_server_files",
            )?),
        );
        let working = working_commit(&store, &spill, head)?;
        let mut top = spill.into_top();
        top.flush()?;
        let (spilled_chunks, spilled_bytes) = top.flushed();
        targets.insert(format!("working/{branch}"), working);
        // 3. Every ref in one manifest swap: an interrupted sync leaves the previous
        //    backup whole, never new heads beside an old working set. Branches and
        //    tags deleted here, and the working set of a branch no longer current, go.
        let out = r.mirror(&store, &BACKUP_PREFIXES, &targets, &mut report)?;
        crate::pg::storage::maintain(&r, &format!("backup {name}"), &r.read_manifest()?)?;
        let chunks = (sent.chunks_done + spilled_chunks + out.chunks) as i64;
        let bytes = (sent.bytes_done + spilled_bytes + out.bytes) as i64;
        exec(
            "UPDATE vc.backups SET last_sync_at = now(), last_sync_commit = $2 WHERE name = $1",
            vec![
                Arg::Text(Some(name.to_string())),
                Arg::Text(head.map(|h| h.to_hex())),
            ],
        )?;
        Ok((chunks, bytes))
    })
}

pub fn backup_restore(url: &str, force: bool) -> VcResult<()> {
    let r = open_remote(url, "pg_read_server_files")?;
    let refs = r.list_refs()?;
    let working: Vec<(&String, &Hash)> = refs
        .iter()
        .filter(|(n, _)| n.starts_with("working/"))
        .collect();
    if working.is_empty() {
        return Err(VcError::new(
            Code::ERRCODE_DATA_CORRUPTED,
            format!("{url} is not a pgvc backup (no working set)"),
        )
        .hint(
            "restore from a URL written by vc.backup_sync(), or clone a remote with vc.clone()",
        ));
    }
    let tracked = tracked_tables()?;
    let has_commits = !query("SELECT 1 FROM vc.refs LIMIT 1", vec![], &[])?.is_empty();
    if (!tracked.is_empty() || has_commits) && !force {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "restore refused: this database already has versioned tables or history",
        )
        .hint("restore into a fresh database, or pass force => true to replace them"));
    }
    // Fetch everything first: a damaged backup fails here, before any table is touched.
    let mut store = PgStore::new();
    let mut fetched = BTreeMap::new();
    let tracker = Tracker::start("backup restore");
    let mut report = notifier("backup restore", &tracker);
    for name in refs.keys() {
        let f = r.fetch(&mut store, name, &mut report)?;
        fetched.insert(name.clone(), f.head);
    }
    store.flush()?;
    let (branch, working_hash) = choose_working_set(&store, &fetched)?;
    if force {
        // Replacing drops the tracked tables: only their owners (or a superuser) may.
        for t in &tracked {
            if !crate::pg::spi::caller_owns(t.relid)? {
                return Err(VcError::new(
                    Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "permission denied: restore with force drops {}, which only its owner may",
                        t.name
                    ),
                )
                .hint("run it as the tables' owner or a superuser"));
            }
        }
        for t in &tracked {
            crate::pg::tracking::untrack(t.relid)?;
            exec(
                crate::pg::sql::drop_table(&crate::pg::sql::QualName::parse(
                    "table name",
                    &t.name,
                )?),
                vec![],
            )?;
        }
        exec("DELETE FROM vc.refs", vec![])?;
    }
    let w = Commit::read(&store, &working_hash)?;
    for (name, h) in &fetched {
        let (kind, local) = match name.split_once('/') {
            Some(("heads", b)) => ("branch", b),
            Some(("tags", t)) => ("tag", t),
            _ => continue,
        };
        // HEAD is the working set's parent, whatever the branch ref says (see
        // choose_working_set): the tables and HEAD always come from one moment.
        let h = match (kind, w.parents.first()) {
            ("branch", Some(p)) if local == branch => p,
            _ => h,
        };
        exec(
            "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, $2, $3)",
            vec![
                Arg::Text(Some(local.to_string())),
                Arg::Text(Some(kind.to_string())),
                Arg::Bytea(Some(h.as_bytes().to_vec())),
            ],
        )?;
    }
    if let (Some(p), false) = (
        w.parents.first(),
        fetched.contains_key(&format!("heads/{branch}")),
    ) {
        exec(
            "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'branch', $2)",
            vec![
                Arg::Text(Some(branch.clone())),
                Arg::Bytea(Some(p.as_bytes().to_vec())),
            ],
        )?;
    }
    crate::pg::refs::set_head(&branch)?;
    let target = RootValue::read(&store, &w.root)?;
    checkout_root(
        &store,
        None,
        &target,
        &format!("backup {url}"),
        crate::pg::types::NewLabels::Refuse,
    )?;
    // Tables whose restored rows differ from HEAD show as uncommitted changes.
    let head_root = match w.parents.first() {
        Some(h) => RootValue::read(&store, &Commit::read(&store, h)?.root)?,
        None => RootValue::default(),
    };
    for t in tracked_tables()? {
        let same = head_root.tables.get(&t.name).map(|e| (&e.schema, e.tree))
            == target.tables.get(&t.name).map(|e| (&e.schema, e.tree));
        if !same {
            exec(
                "UPDATE vc.tracked SET full_scan = true WHERE relid = $1",
                vec![Arg::Oid(t.relid)],
            )?;
        }
    }
    Ok(())
}

/// The working set to restore, and its branch.
///
/// A backup written by `vc.backup_sync()` holds one working set, whose parent is its
/// branch's head: all refs move in one swap. One written by an older pgvc, whose refs
/// moved one at a time, may hold several (the current branch changed between syncs)
/// or a working set older than its branch's head (a sync interrupted in between).
/// Such a backup stays restorable: a working set whose parent is its branch's head is
/// preferred, the newest of them (working sets carry their HEAD's timestamp); the
/// branch is then restored at that parent, so HEAD and the tables come from the same
/// moment and later commits record the right rows.
fn choose_working_set(
    store: &PgStore,
    fetched: &BTreeMap<String, Hash>,
) -> VcResult<(String, Hash)> {
    let mut best: Option<(bool, i64, String, Hash)> = None;
    for (name, h) in fetched {
        let Some(branch) = name.strip_prefix("working/") else {
            continue;
        };
        let w = Commit::read(store, h)?;
        let consistent =
            fetched.get(&format!("heads/{branch}")).copied() == w.parents.first().copied();
        let key = (consistent, w.timestamp_us, branch.to_string(), *h);
        if best.as_ref().is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
            best = Some(key);
        }
    }
    let (consistent, _, branch, h) = best.ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_DATA_CORRUPTED,
            "the backup has no working set",
        )
    })?;
    if !consistent {
        pgrx::notice!(
            "pgvc: the backup's working set of branch {branch} was taken before its last commit there; branch {branch} is restored at the working set's parent"
        );
    }
    Ok((branch, h))
}

/// Problems listed by `vc.backup_verify` (the rest are counted): a deleted pack can
/// make thousands of chunks missing.
const MAX_PROBLEMS: usize = 1000;

/// Reads every chunk reachable from the backup's refs, verifying each.
pub fn backup_verify(name_or_url: &str) -> VcResult<(bool, i64, Vec<String>)> {
    let url = if name_or_url.contains("://") {
        name_or_url.to_string()
    } else {
        backup_url(name_or_url)?
    };
    let r = open_remote(&url, "pg_read_server_files")?;
    let refs = r.list_refs()?;
    let store = RemoteChunkStore::from_remote(r);
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    let mut todo: Vec<(Hash, String)> =
        refs.iter().map(|(n, h)| (*h, format!("ref {n}"))).collect();
    while let Some((h, from)) = todo.pop() {
        if !seen.insert(h) {
            continue;
        }
        match store.get(&h) {
            Ok(data) => match chunk_refs(&h, &data) {
                Ok(children) => {
                    todo.extend(children.into_iter().map(|c| (c, format!("chunk {h}"))))
                }
                Err(e) => problems.push(format!("chunk {h} (from {from}): {e}")),
            },
            Err(e) => problems.push(format!("chunk {h} (from {from}): {e}")),
        }
    }
    let ok = problems.is_empty();
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(format!("... and {more} more"));
    }
    Ok((ok, seen.len() as i64, problems))
}

#[pg_extern(name = "_backup_add", volatile)]
fn vc_backup_add(name: Option<&str>, url: Option<&str>) {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        let url = url.ok_or_else(|| null_arg("url"))?;
        with_spi(|| backup_add(name, url))
    })
}

#[pg_extern(name = "_backup_remove", volatile)]
fn vc_backup_remove(name: Option<&str>) {
    run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        with_spi(|| {
            backup_url(name)?;
            exec(
                "DELETE FROM vc.backups WHERE name = $1",
                vec![Arg::Text(Some(name.to_string()))],
            )?;
            Ok(())
        })
    })
}

#[pg_extern(name = "_backup_sync", volatile)]
fn vc_backup_sync(
    name: Option<&str>,
) -> TableIterator<'static, (name!(chunks_written, i64), name!(bytes_written, i64))> {
    let row = run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        with_spi(|| backup_sync(name))
    });
    TableIterator::new(vec![row])
}

#[pg_extern(name = "_backup_restore", volatile)]
fn vc_backup_restore(url: Option<&str>, force: Option<bool>) {
    run(|| {
        let url = url.ok_or_else(|| null_arg("url"))?;
        with_spi(|| backup_restore(url, force.unwrap_or(false)))
    })
}

#[pg_extern(name = "_backup_verify", volatile)]
fn vc_backup_verify(
    name_or_url: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(chunks_checked, i64),
        name!(problems, Vec<String>),
    ),
> {
    let row = run(|| {
        let n = name_or_url.ok_or_else(|| null_arg("name_or_url"))?;
        with_spi(|| backup_verify(n))
    });
    TableIterator::new(vec![row])
}
