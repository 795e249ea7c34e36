//! SQL entry points of replication (wrapped by `api.sql`): status, sync, promote,
//! rejoin, the worker's tick, and the write guard of tracked tables.

use super::primary::{open_remote, push_all};
use super::standby::{apply_all, rejoin, Applied};
use super::{current, lock, not_loaded, record_error, snapshot, Role};
use crate::pg::error::{null_arg, run, VcError, VcResult};
use crate::pg::refs::ref_hash;
use crate::pg::spi::with_spi;
use crate::repo::replication::{may_promote, promote as promote_step, PromoteRefused};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

fn require_loaded() -> VcResult<()> {
    if crate::pg::progress::enabled() {
        Ok(())
    } else {
        Err(not_loaded())
    }
}

type StatusRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn status() -> VcResult<Vec<StatusRow>> {
    if !crate::pg::progress::enabled() {
        return Ok(vec![(
            "none".into(),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(not_loaded().message + ": add shared_preload_libraries = 'pgvc' and restart"),
        )]);
    }
    let cfg = current()?;
    let snap = snapshot();
    let error = cfg.problem.clone().or(snap.error.clone());
    let epoch = cfg.epoch.or(snap.epoch_seen).map(|e| e as i64);
    let heads: Vec<Option<String>> = if cfg.role == Role::None {
        vec![None]
    } else {
        // The literal entries, and the branches patterns match here or on the remote.
        let mut names = cfg.local_heads()?;
        names.extend(crate::repo::replication::followed(
            &cfg.heads,
            snap.remote_heads.iter().map(|(n, _)| n.as_str()),
        ));
        names.sort();
        names.dedup();
        names.into_iter().map(Some).collect()
    };
    let mut rows = Vec::new();
    for b in heads {
        let local = match &b {
            Some(b) => ref_hash(b)?.map(|h| h.to_hex()),
            None => None,
        };
        let remote_head = b.as_ref().and_then(|b| {
            snap.remote_heads
                .iter()
                .find(|(n, _)| n == b)
                .map(|(_, h)| h.to_hex())
        });
        let row_error = match &b {
            Some(b) if error.is_none() && snap.missing.contains(b) => Some(format!(
                "remote \"{}\" has no branch {b} (yet): push it from the primary, or fix vc.replicate_heads",
                cfg.remote.as_deref().unwrap_or_default()
            )),
            _ => error.clone(),
        };
        rows.push((
            cfg.role.name().to_string(),
            cfg.remote.clone(),
            b,
            local,
            remote_head,
            epoch,
            snap.last_sync_us,
            snap.lag_ms,
            row_error,
        ));
    }
    Ok(rows)
}

#[pg_extern(name = "_replication_status", volatile)]
#[allow(clippy::type_complexity)]
fn vc_replication_status() -> TableIterator<
    'static,
    (
        name!(role, String),
        name!(remote, Option<String>),
        name!(branch, Option<String>),
        name!(local_head, Option<String>),
        name!(remote_head, Option<String>),
        name!(epoch, Option<i64>),
        name!(last_sync_us, Option<i64>),
        name!(lag_ms, Option<i64>),
        name!(last_error, Option<String>),
    ),
> {
    TableIterator::new(run(|| with_spi(status)))
}

fn not_replicating(what: &str) -> VcError {
    VcError::new(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("{what}: this server is neither a primary nor a standby"),
    )
    .hint("set vc.replicate_to_remote (primary) or vc.read_replica_remote (standby) in postgresql.conf and SELECT pg_reload_conf()")
}

fn config_problem(p: &str) -> VcError {
    VcError::new(Code::ERRCODE_INVALID_PARAMETER_VALUE, p.to_string())
        .hint("fix postgresql.conf and SELECT pg_reload_conf()")
}

/// Push now (primary) or pull now (standby); the number of branches moved.
fn sync() -> VcResult<i64> {
    require_loaded()?;
    let cfg = current()?;
    if let Some(p) = &cfg.problem {
        return Err(config_problem(p));
    }
    lock()?;
    match cfg.role {
        Role::Primary => Ok(push_all(&cfg)? as i64),
        Role::Standby => match apply_all(&cfg)? {
            Applied::Moved(n) => Ok(n as i64),
            Applied::WaitingForClone => Err(waiting_for_clone(&cfg)),
        },
        Role::Fenced => Err(fenced_error(&cfg)),
        Role::None => Err(not_replicating("vc.sync() has nothing to do")),
    }
}

fn waiting_for_clone(cfg: &super::Config) -> VcError {
    VcError::new(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "this standby has no clone yet: nothing to apply the remote's commits to",
    )
    .hint(format!(
        "SELECT vc.clone('<url of remote {}>') first",
        cfg.remote.as_deref().unwrap_or_default()
    ))
}

fn fenced_error(cfg: &super::Config) -> VcError {
    VcError::new(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "this server is fenced: another server was promoted to primary",
    )
    .hint(format!(
        "SELECT vc.rejoin('{}') makes it a standby of the new primary",
        cfg.remote.as_deref().unwrap_or("origin")
    ))
}

#[pg_extern(name = "_sync", volatile)]
fn vc_sync() -> i64 {
    run(|| with_spi(sync))
}

fn promote_refused(e: PromoteRefused, cfg: &super::Config) -> VcError {
    match e {
        PromoteRefused::AlreadyPrimary => VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "this server is already the primary",
        )
        .hint("vc.promote() runs on a standby"),
        PromoteRefused::Fenced => fenced_error(cfg),
        PromoteRefused::NotReplicating => not_replicating("vc.promote() needs a standby"),
        PromoteRefused::NotSynced => VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "this standby has not synced with its remote yet, so it cannot tell whether another server was promoted",
        )
        .hint("SELECT vc.sync() first, then vc.promote()"),
        // Promoting this one too would fence the new primary silently. After a round
        // (or vc.sync()) this standby follows the new epoch, and promoting it then is
        // a deliberate switchover.
        PromoteRefused::AnotherPromoted { followed, remote } => VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "another server was promoted: the remote's epoch moved from {followed} to {remote} since this standby last synced"
            ),
        )
        .hint("check vc.replication_status() on the other servers; to promote this one anyway, SELECT vc.sync() first, then vc.promote()"),
    }
}

fn promote() -> VcResult<i64> {
    require_loaded()?;
    let cfg = current()?;
    if let Some(p) = &cfg.problem {
        return Err(config_problem(p));
    }
    may_promote(cfg.role).map_err(|e| promote_refused(e, &cfg))?;
    lock()?;
    // The epoch this standby has been following against the remote's (see
    // repo::replication::promote).
    let remote = open_remote(&cfg)?;
    let seen = remote.epoch()?;
    let next = promote_step(cfg.role, cfg.epoch, seen).map_err(|e| promote_refused(e, &cfg))?;
    // Everything the remote has, first: a promoted standby starts from the last
    // commit the old primary published.
    if let Applied::WaitingForClone = apply_all(&cfg)? {
        return Err(waiting_for_clone(&cfg));
    }
    // The CAS expects the epoch checked above: a promotion that won meanwhile makes
    // it fail (Fenced), never overwritten.
    let epoch = remote.bump_epoch(seen)?;
    debug_assert_eq!(epoch, next);
    let name = cfg.remote.clone().unwrap_or_default();
    super::store_role(Role::Primary, &name, epoch)?;
    super::record_epoch(epoch);
    super::record_success(None);
    Ok(epoch as i64)
}

#[pg_extern(name = "_promote", volatile)]
fn vc_promote() -> i64 {
    run(|| with_spi(promote))
}

fn do_rejoin(remote: &str) -> VcResult<String> {
    require_loaded()?;
    let cfg = current()?;
    if let Some(p) = &cfg.problem {
        return Err(config_problem(p));
    }
    // The remote must exist (open_remote says so otherwise).
    let mut target = cfg.clone();
    target.remote = Some(remote.to_string());
    let r = open_remote(&target)?;
    // Rejoining reads the remote and points this server's replication at it for good
    // (the stored role wins over postgresql.conf): the caller's own file access.
    crate::pg::spi::require_file_access("pg_read_server_files", r.url())?;
    let remote_epoch = r.epoch()?;
    if cfg.role == Role::Primary
        && cfg.remote.as_deref() == Some(remote)
        && cfg.epoch.is_none_or(|e| e >= remote_epoch)
    {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "this server is the current primary of remote \"{remote}\" (epoch {remote_epoch})"
            ),
        )
        .hint("rejoin a fenced or stale server; to switch roles, promote a standby first"));
    }
    lock()?;
    if crate::pg::checkout::has_uncommitted()? {
        return Err(VcError::new(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "rejoin refused: there are uncommitted changes (see vc.status())",
        )
        .hint("commit them (the commit stays here and is kept on a fenced/ branch by rejoin) or discard them with vc.reset()"));
    }
    rejoin(&cfg, remote)
}

#[pg_extern(name = "_rejoin", volatile)]
fn vc_rejoin(remote: Option<&str>) -> String {
    run(|| {
        let remote = remote.ok_or_else(|| null_arg("remote"))?;
        with_spi(|| do_rejoin(remote))
    })
}

/// One round of the worker: 'idle', 'ok', 'waiting' or 'fenced'. Errors propagate
/// to `vc._replication_tick()`, which records them.
fn tick() -> VcResult<String> {
    let cfg = current()?;
    if let Some(p) = &cfg.problem {
        return Err(config_problem(p));
    }
    Ok(match cfg.role {
        Role::None => "idle".into(),
        Role::Fenced => "fenced".into(),
        Role::Primary => {
            lock()?;
            push_all(&cfg)?;
            "ok".into()
        }
        Role::Standby => {
            lock()?;
            match apply_all(&cfg)? {
                Applied::Moved(_) => "ok".into(),
                // A state, not an error worth logging: shown in the status only.
                Applied::WaitingForClone => {
                    record_error(&format!(
                        "waiting: nothing cloned yet; SELECT vc.clone('<url of remote {}>')",
                        cfg.remote.as_deref().unwrap_or_default()
                    ));
                    "waiting".into()
                }
            }
        }
    })
}

#[pg_extern(name = "_replicate", volatile)]
fn vc_replicate() -> String {
    run(|| with_spi(tick))
}

/// Records an error caught by `vc._replication_tick()`; true when it is new (the
/// worker logs new errors once, not at every retry).
#[pg_extern(name = "_replication_failed", volatile)]
fn vc_replication_failed(message: Option<&str>) -> bool {
    record_error(message.unwrap_or("unknown error"))
}

/// Statement trigger on `vc.replication`: its row is cached per process (the write
/// guard reads it on every statement); a write makes every process read it again.
#[pg_trigger]
fn _replication_changed<'a>(
    _trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    super::replication_written();
    Ok(None)
}

/// `BEFORE ... FOR EACH STATEMENT` trigger on tracked tables: refuses writes on a
/// standby or a fenced server. The worker's apply runs in replica role, which skips it.
#[pg_trigger]
fn _guard<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    if !crate::pg::progress::enabled() {
        return Ok(None);
    }
    // One cached-plan read of vc.replication per statement.
    let cfg = run(|| crate::pg::spi::with_spi_anywhere(current));
    if matches!(cfg.role, Role::Standby | Role::Fenced) {
        let table = trigger.table_name().unwrap_or_default();
        let remote = cfg.remote.unwrap_or_default();
        let e = if cfg.role == Role::Fenced {
            VcError::new(
                Code::ERRCODE_READ_ONLY_SQL_TRANSACTION,
                format!("cannot write to {table}: this server is fenced (another server was promoted to primary)"),
            )
            .hint(format!("write on the new primary; SELECT vc.rejoin('{remote}') makes this server its standby"))
        } else {
            VcError::new(
                Code::ERRCODE_READ_ONLY_SQL_TRANSACTION,
                format!("cannot write to {table}: tracked tables are read-only on a standby of remote \"{remote}\""),
            )
            .hint("write on the primary; SELECT vc.promote() makes this server the primary")
        };
        e.raise();
    }
    Ok(None)
}
