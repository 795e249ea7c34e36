//! Storage from SQL: `vc.gc()`, `vc.remote_compact()`, `vc.remote_gc()`,
//! `vc.backup_compact()`, `vc.backup_gc()` and `vc.storage()`. The work is in
//! `crate::pg::storage` (local) and `crate::remote` (compaction, pruning).
//!
//! Compacting or pruning a `file://` remote writes and deletes server files: it needs
//! superuser or `pg_write_server_files`, whatever EXECUTE grants say.

use crate::pg::api::remote::open_remote;
use crate::pg::error::{invalid, null_arg, run, VcError, VcResult};
use crate::pg::spi::{one_text, query_values, with_spi, Arg, Value};
use crate::pg::storage;
use crate::remote::{Manifest, ObjectStore, Remote};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

/// The URL of remote or backup `name`.
fn location(backup: bool, name: &str) -> VcResult<(String, String)> {
    let (sql, what) = if backup {
        ("SELECT url FROM vc.backups WHERE name = $1", "backup")
    } else {
        ("SELECT url FROM vc.remotes WHERE name = $1", "remote")
    };
    let url = one_text(sql, vec![Arg::Text(Some(name.to_string()))])?.ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("{what} \"{name}\" does not exist"),
        )
        .hint(format!("list them with SELECT * FROM vc.{what}s()"))
    })?;
    Ok((url, format!("{what} {name}")))
}

fn compact(backup: bool, name: &str) -> VcResult<(i64, i64, i64)> {
    let (url, loc) = location(backup, name)?;
    let r = open_remote(&url, "pg_write_server_files")?;
    let out = storage::compact(&r, &loc)?;
    Ok((out.packs_merged as i64, out.chunks as i64, out.bytes as i64))
}

fn interval_ms(grace: &pgrx::datum::Interval) -> VcResult<u64> {
    let us = grace.micros()
        + i64::from(grace.days()) * 86_400_000_000
        + i64::from(grace.months()) * 30 * 86_400_000_000;
    if us < 0 {
        return Err(invalid(format!("grace period {grace} is negative"))
            .hint("give how long unlisted packs must have existed, e.g. interval '1 hour'"));
    }
    Ok((us / 1000) as u64)
}

fn prune(backup: bool, name: &str, grace: &pgrx::datum::Interval) -> VcResult<(i64, i64, i64)> {
    let ms = interval_ms(grace)?;
    let (url, loc) = location(backup, name)?;
    let r = open_remote(&url, "pg_write_server_files")?;
    let out = storage::prune(&r, &loc, ms)?;
    Ok((out.objects as i64, out.bytes as i64, out.temporaries as i64))
}

#[pg_extern(name = "_gc", volatile)]
fn vc_gc() -> TableIterator<'static, (name!(chunks, i64), name!(bytes, i64), name!(reachable, i64))>
{
    let out = run(|| with_spi(storage::gc));
    TableIterator::once((out.chunks, out.bytes, out.reachable))
}

#[pg_extern(name = "_verify", volatile)]
fn vc_verify() -> TableIterator<'static, (name!(refs, i64), name!(chunks, i64))> {
    TableIterator::once(run(|| with_spi(storage::verify)))
}

/// The worker's periodic look (`vc.gc_check_interval`): NULL when it did not collect.
#[pg_extern(name = "_auto_gc", volatile)]
fn vc_auto_gc() -> Option<i64> {
    run(|| with_spi(storage::auto_gc)).map(|o| o.chunks)
}

#[pg_extern(name = "_remote_compact", volatile)]
fn vc_remote_compact(
    remote: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(packs_merged, i64),
        name!(chunks, i64),
        name!(bytes, i64),
    ),
> {
    TableIterator::once(run(|| {
        let name = remote.ok_or_else(|| null_arg("remote"))?;
        with_spi(|| compact(false, name))
    }))
}

#[pg_extern(name = "_backup_compact", volatile)]
fn vc_backup_compact(
    name: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(packs_merged, i64),
        name!(chunks, i64),
        name!(bytes, i64),
    ),
> {
    TableIterator::once(run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        with_spi(|| compact(true, name))
    }))
}

#[pg_extern(name = "_remote_gc", volatile)]
fn vc_remote_gc(
    remote: Option<&str>,
    grace: Option<pgrx::datum::Interval>,
) -> TableIterator<
    'static,
    (
        name!(objects, i64),
        name!(bytes, i64),
        name!(temporaries, i64),
    ),
> {
    TableIterator::once(run(|| {
        let name = remote.ok_or_else(|| null_arg("remote"))?;
        let grace = grace.ok_or_else(|| null_arg("grace"))?;
        with_spi(|| prune(false, name, &grace))
    }))
}

#[pg_extern(name = "_backup_gc", volatile)]
fn vc_backup_gc(
    name: Option<&str>,
    grace: Option<pgrx::datum::Interval>,
) -> TableIterator<
    'static,
    (
        name!(objects, i64),
        name!(bytes, i64),
        name!(temporaries, i64),
    ),
> {
    TableIterator::once(run(|| {
        let name = name.ok_or_else(|| null_arg("name"))?;
        let grace = grace.ok_or_else(|| null_arg("grace"))?;
        with_spi(|| prune(true, name, &grace))
    }))
}

/// One row of `vc.storage()`.
#[derive(Default)]
struct Row {
    location: String,
    /// Chunks (local) or packs listed (remote, backup).
    objects: Option<i64>,
    bytes: Option<i64>,
    chunks: Option<i64>,
    reachable_share: Option<f64>,
    retired: Option<i64>,
    problem: Option<String>,
}

/// One row for a remote or backup: its manifest's packs (without reading any index).
fn remote_row<O: ObjectStore>(location: String, r: &Remote<O>) -> Row {
    match Manifest::read(r.store()) {
        Ok((m, _)) => Row {
            location,
            objects: Some(m.packs.len() as i64),
            bytes: Some(m.packs.iter().map(|p| p.bytes as i64).sum()),
            chunks: Some(m.packs.iter().map(|p| p.chunks as i64).sum()),
            retired: r
                .tombstones()
                .ok()
                .map(|t| t.iter().map(|(_, t)| t.names.len() as i64).sum()),
            ..Row::default()
        },
        Err(e) => Row {
            location,
            problem: Some(e.to_string()),
            ..Row::default()
        },
    }
}

fn storage_rows() -> VcResult<Vec<Row>> {
    let mut out = Vec::new();
    let local = query_values(
        "SELECT count(*), pg_total_relation_size('vc.chunks'), \
                (SELECT kept FROM vc.maintenance WHERE location = 'local' AND what = 'gc'), \
                EXISTS (SELECT 1 FROM vc.maintenance WHERE location = 'local' AND what = 'orphaned') \
         FROM vc.chunks",
        vec![],
    )?;
    let row = local.into_iter().next().unwrap_or_default();
    let count = row.first().map(|v| v.int()).transpose()?.unwrap_or(0);
    let bytes = row.get(1).map(|v| v.int()).transpose()?.unwrap_or(0);
    let kept = match row.get(2) {
        Some(Value::Null) | None => None,
        Some(v) => Some(v.int()?),
    };
    let orphaned = row.get(3).map(|v| v.bool()).transpose()?.unwrap_or(true);
    out.push(Row {
        location: "local".into(),
        objects: Some(count),
        bytes: Some(bytes),
        chunks: Some(count),
        // Known after a gc: every chunk was reachable then, and chunks written since
        // came with the ref moves that reach them, unless a ref moved back or went
        // (then at least the share kept by the last gc: only a mark knows better).
        reachable_share: kept.map(|k| {
            if count == 0 || !orphaned {
                1.0
            } else {
                (k as f64 / count as f64).min(1.0)
            }
        }),
        ..Row::default()
    });
    // Reading a remote's manifest is reading a server file.
    let may_read = crate::pg::spi::one_bool(
        "SELECT pg_has_role($1, 'pg_read_server_files', 'MEMBER') OR (SELECT rolsuper FROM pg_roles WHERE oid = $1)",
        vec![Arg::Oid(crate::pg::spi::caller())],
    )?;
    for (backup, sql) in [
        (false, "SELECT name, url FROM vc.remotes ORDER BY name"),
        (true, "SELECT name, url FROM vc.backups ORDER BY name"),
    ] {
        for r in query_values(sql, vec![])? {
            let name = r[0].text()?;
            let url = r[1].text()?;
            let location = format!("{} {name}", if backup { "backup" } else { "remote" });
            if !may_read {
                out.push(Row {
                    location,
                    problem: Some("reading it needs superuser or pg_read_server_files".into()),
                    ..Row::default()
                });
                continue;
            }
            match crate::remote::open(&url) {
                Ok(rem) => out.push(remote_row(location, &rem)),
                Err(e) => out.push(Row {
                    location,
                    problem: Some(e.to_string()),
                    ..Row::default()
                }),
            }
        }
    }
    Ok(out)
}

/// When a maintenance ran, and the objects and bytes it freed or merged.
type LastRun = (
    Option<pgrx::datum::TimestampWithTimeZone>,
    Option<i64>,
    Option<i64>,
);

/// The last run of each kind of maintenance of `location`: gc, compact, prune.
fn last_runs(location: &str) -> VcResult<[LastRun; 3]> {
    let mut out = [(None, None, None); 3];
    for r in query_values(
        "SELECT what, extract(epoch FROM at)::float8 * 1e6, objects, bytes FROM vc.maintenance WHERE location = $1",
        vec![Arg::Text(Some(location.to_string()))],
    )? {
        let i = match r[0].text()?.as_str() {
            "gc" => 0,
            "compact" => 1,
            "prune" => 2,
            _ => continue, // the sweep clock and the orphan note are not runs shown here
        };
        let at_us: f64 = r[1].text()?.parse().unwrap_or(0.0);
        // Unix microseconds -> PostgreSQL's epoch (2000-01-01).
        let pg_us = at_us as i64 - 946_684_800_000_000;
        out[i] = (
            pgrx::datum::TimestampWithTimeZone::try_from(pg_us).ok(),
            Some(r[2].int()?),
            Some(r[3].int()?),
        );
    }
    Ok(out)
}

#[pg_extern(name = "_storage", volatile)]
#[allow(clippy::type_complexity)]
fn vc_storage() -> TableIterator<
    'static,
    (
        name!(location, String),
        name!(objects, Option<i64>),
        name!(bytes, Option<i64>),
        name!(chunks, Option<i64>),
        name!(reachable_share, Option<f64>),
        name!(retired_packs, Option<i64>),
        name!(last_gc_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(last_compact_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(last_prune_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(last_freed_objects, Option<i64>),
        name!(last_freed_bytes, Option<i64>),
        name!(problem, Option<String>),
    ),
> {
    let rows = run(|| {
        with_spi(|| {
            let mut out = Vec::new();
            for r in storage_rows()? {
                let [gc, compact, prune] = last_runs(&r.location)?;
                // What was freed: by the last gc (local) or prune (remote, backup).
                let freed = if r.location == "local" { gc } else { prune };
                out.push((
                    r.location,
                    r.objects,
                    r.bytes,
                    r.chunks,
                    r.reachable_share,
                    r.retired,
                    gc.0,
                    compact.0,
                    prune.0,
                    freed.1,
                    freed.2,
                    r.problem,
                ));
            }
            Ok(out)
        })
    });
    TableIterator::new(rows)
}
