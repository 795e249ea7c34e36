//! Replication: a primary pushes every movement of a replicated branch to a remote,
//! standbys apply what the remote has, `vc.promote()` raises the remote's epoch and
//! the old primary fences itself. Design: `docs/REPLICATION.md`.
//!
//! This file: the settings, the role of this server, and the status kept in shared
//! memory. `primary.rs` pushes (at commit and from the worker), `standby.rs` applies,
//! `sql.rs` holds the SQL functions.

pub mod multi;
pub mod primary;
pub mod sql;
pub mod standby;

use crate::pg::error::{VcError, VcResult};
pub use crate::pg::progress::now_us;
use crate::pg::spi::{exec, query, Arg};
use crate::store::Hash;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::ffi::CString;

pub static REPLICATE_TO: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ASYNC: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static READ_REPLICA_OF: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static HEADS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"main"));
/// How long a synchronous publish (at COMMIT, holding the transaction's locks) waits
/// for the remote's lock before leaving the push to the worker.
pub static PUBLISH_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(5000);
/// Several primaries share the remote's branches (docs/BRANCHES.md): a push the remote
/// refuses because another primary pushed first is merged and pushed again.
pub static MULTI_PRIMARY: GucSetting<bool> = GucSetting::<bool>::new(false);
/// This server's name among several primaries: rows of a table with row owners
/// (`vc.set_row_owner`) may be written here only when their owner column holds it.
pub static SERVER_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Registers the settings and the shared status; from `_PG_init` when preloaded.
pub fn init() {
    GucRegistry::define_string_guc(
        c"vc.replicate_to_remote",
        c"Remote that every commit of a replicated branch is pushed to (primary).",
        c"Empty: this server does not push on commit.",
        &REPLICATE_TO,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_bool_guc(
        c"vc.async_replication",
        c"Push commits from the background worker instead of at COMMIT.",
        c"off: a commit's push has completed when COMMIT returns; on: the worker pushes it within milliseconds.",
        &ASYNC,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"vc.read_replica_remote",
        c"Remote this server follows as a read-only standby.",
        c"Empty: this server is not a standby (unless vc.rejoin() made it one).",
        &READ_REPLICA_OF,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"vc.replicate_heads",
        c"Comma-separated branches that are replicated.",
        c"A primary pushes them, a standby follows them.",
        &HEADS,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_int_guc(
        c"vc.publish_timeout",
        c"How long each step of a synchronous push at COMMIT waits for the remote (its lock, or its answers); past it the worker delivers and the client is warned.",
        c"",
        &PUBLISH_TIMEOUT_MS,
        10,
        600_000,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY | GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"vc.multi_primary",
        c"Several primaries share the remote's branches: the worker merges what the others pushed.",
        c"off: one primary per remote (another writer's push is an error); on: a refused push is fetched, merged (vc.set_conflict_policy decides conflicting rows) and pushed again.",
        &MULTI_PRIMARY,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"vc.server_name",
        c"This server's name among several primaries (row ownership).",
        c"A table with row owners (vc.set_row_owner) takes writes here only of rows whose owner column holds this name.",
        &SERVER_NAME,
        GucContext::Suset,
        GucFlags::default(),
    );
    pg_shmem_init!(STATUS);
}

pub use crate::repo::replication::Role;

/// What this server does, from `vc.replication` and the settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub remote: Option<String>,
    /// The fencing epoch this server believes in (None: not known yet).
    pub epoch: Option<u64>,
    pub heads: Vec<String>,
    /// `vc.multi_primary` (meaningful for a primary).
    pub multi_primary: bool,
    /// A setting that prevents replication, said in words (the role is then `none`).
    pub problem: Option<String>,
}

fn guc_text(g: &GucSetting<Option<CString>>) -> Option<String> {
    g.get()
        .and_then(|c| c.into_string().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The followed branches, or what is wrong with `vc.replicate_heads`.
pub fn heads() -> Result<Vec<String>, String> {
    let raw = guc_text(&HEADS).unwrap_or_default();
    let heads: Vec<String> = raw
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if heads.is_empty() {
        return Err("vc.replicate_heads is empty: name at least one branch, e.g. 'main'".into());
    }
    for h in &heads {
        if h.len() > 200 || h.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "vc.replicate_heads: \"{h}\" is not a branch name or pattern"
            ));
        }
    }
    Ok(heads)
}

impl Config {
    /// Whether `branch` is replicated (named by `vc.replicate_heads`, or matched by
    /// one of its patterns).
    pub fn replicates(&self, branch: &str) -> bool {
        self.heads
            .iter()
            .any(|h| crate::repo::replication::head_matches(h, branch))
    }

    /// The local branches replicated (and every literal entry, present or not).
    pub fn local_heads(&self) -> VcResult<Vec<String>> {
        if !self.heads.iter().any(|h| h.contains('*')) {
            return Ok(self.heads.clone());
        }
        let names = crate::pg::spi::query_values(
            "SELECT name FROM vc.refs WHERE kind = 'branch' ORDER BY name",
            vec![],
        )?
        .iter()
        .map(|r| r[0].text())
        .collect::<VcResult<Vec<String>>>()?;
        Ok(crate::repo::replication::followed(
            &self.heads,
            names.iter().map(String::as_str),
        ))
    }

    /// The remote's branches (in its manifest `refs`) replicated, and every literal
    /// entry, present or not.
    /// A remote name a pattern matches is followed only when it is a valid branch name
    /// and no tag or remote-tracking ref holds it here.
    pub fn remote_heads(
        &self,
        refs: &std::collections::BTreeMap<String, Hash>,
    ) -> VcResult<Vec<String>> {
        if !self.heads.iter().any(|h| h.contains('*')) {
            return Ok(self.heads.clone());
        }
        let others: std::collections::HashSet<String> = crate::pg::spi::query_values(
            "SELECT name FROM vc.refs WHERE kind <> 'branch'",
            vec![],
        )?
        .iter()
        .map(|r| r[0].text())
        .collect::<VcResult<_>>()?;
        Ok(crate::repo::replication::followed(
            &self.heads,
            refs.keys().map(String::as_str).filter(|n| {
                crate::repo::refs::branch_name_problem(n).is_none() && !others.contains(*n)
            }),
        ))
    }
}

thread_local! {
    /// Whether this backend's database is the one the worker serves (fixed for the
    /// life of a backend: `vc.database` needs a restart).
    static SERVED: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
}

/// Is this the database the worker serves (the only one that replicates)?
fn in_served_database() -> VcResult<bool> {
    if let Some(v) = SERVED.with(|s| s.get().copied()) {
        return Ok(v);
    }
    let served = crate::pg::worker::database();
    let here = crate::pg::spi::one_text(
        "SELECT pg_catalog.current_database()::pg_catalog.text",
        vec![],
    )?;
    let v = here.as_deref() == Some(served.as_str());
    SERVED.with(|s| {
        let _ = s.set(v);
    });
    Ok(v)
}

/// The row of `vc.replication`: (role override, remote, epoch).
type Stored = (Option<String>, Option<String>, Option<u64>);

thread_local! {
    /// `vc.replication` as last read, with the generation it was read at. The write
    /// guard runs on every statement that writes a tracked table: it reads the row
    /// only when another transaction changed it since (or this one is changing it).
    static STORED: std::cell::RefCell<Option<(u64, Stored)>> = const { std::cell::RefCell::new(None) };
    /// This transaction wrote `vc.replication` (set by its trigger).
    static WROTE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Called by the statement trigger on `vc.replication`.
pub fn replication_written() {
    WROTE.with(|w| w.set(true));
}

/// From the transaction callbacks: a committed write of `vc.replication` makes every
/// process read it again (the generation moves after the commit is visible, so a
/// reader that cached the old row cached it under an older generation).
pub fn end_of_transaction(committed: bool) {
    if WROTE.with(|w| w.replace(false)) && committed && crate::pg::progress::enabled() {
        STATUS.exclusive().generation += 1;
    }
}

fn stored() -> VcResult<Stored> {
    // The generation is read before the row, never after.
    let generation = STATUS.share().generation;
    let writing = WROTE.with(|w| w.get());
    if !writing {
        let hit = STORED.with(|c| match &*c.borrow() {
            Some((g, s)) if *g == generation => Some(s.clone()),
            _ => None,
        });
        if let Some(s) = hit {
            return Ok(s);
        }
    }
    let s = read_stored()?;
    if !writing {
        STORED.with(|c| *c.borrow_mut() = Some((generation, s.clone())));
    }
    Ok(s)
}

fn read_stored() -> VcResult<Stored> {
    let rows = query(
        "SELECT role, remote, epoch::pg_catalog.text FROM vc.replication",
        vec![],
        &[],
    )?;
    let text = |c: &crate::codec::Cell| match c {
        crate::codec::Cell::Text(t) => Some(t.clone()),
        _ => None,
    };
    Ok(match rows.first() {
        Some(r) => (
            text(&r[0]),
            text(&r[1]),
            text(&r[2]).and_then(|e| e.parse().ok()),
        ),
        None => (None, None, None),
    })
}

/// The current configuration.
pub fn current() -> VcResult<Config> {
    let mut cfg = Config {
        role: Role::None,
        remote: None,
        epoch: None,
        heads: Vec::new(),
        multi_primary: false,
        problem: None,
    };
    if !crate::pg::progress::enabled() || !in_served_database()? {
        return Ok(cfg);
    }
    let (role, remote, epoch) = stored()?;
    cfg.epoch = epoch;
    cfg.multi_primary = MULTI_PRIMARY.get();
    match heads() {
        Ok(h) => cfg.heads = h,
        Err(p) => cfg.problem = Some(p),
    }
    let to = guc_text(&REPLICATE_TO);
    let of = guc_text(&READ_REPLICA_OF);
    if let Some(r) = role {
        cfg.role = match r.as_str() {
            "primary" => Role::Primary,
            "standby" => Role::Standby,
            _ => Role::Fenced,
        };
        cfg.remote = remote;
    } else if of.is_some() && to.is_some() {
        cfg.problem = Some(
            "both vc.read_replica_remote and vc.replicate_to_remote are set: a server is a standby or a primary, not both; clear one and SELECT pg_reload_conf()".into(),
        );
    } else if let Some(of) = of {
        cfg.role = Role::Standby;
        cfg.remote = Some(of);
    } else if let Some(to) = to {
        cfg.role = Role::Primary;
        cfg.remote = Some(to);
    }
    if cfg.problem.is_some() && cfg.role != Role::Fenced {
        cfg.role = Role::None;
    }
    Ok(cfg)
}

/// Stores a role decided by promote, rejoin or fencing (it then wins over the
/// configuration file, across restarts).
pub fn store_role(role: Role, remote: &str, epoch: u64) -> VcResult<()> {
    exec(
        "UPDATE vc.replication SET role = $1, remote = $2, epoch = $3, changed_at = now()",
        vec![
            Arg::Text(Some(role.name().to_string())),
            Arg::Text(Some(remote.to_string())),
            Arg::Int8(epoch as i64),
        ],
    )?;
    Ok(())
}

pub fn store_epoch(epoch: u64) -> VcResult<()> {
    exec(
        "UPDATE vc.replication SET epoch = $1 WHERE epoch IS DISTINCT FROM $1",
        vec![Arg::Int8(epoch as i64)],
    )?;
    Ok(())
}

/// Serializes the replication work of this database (worker ticks, sync, promote,
/// rejoin) for the rest of the transaction.
///
/// A lock on pgvc's own table, not an advisory lock: any role can take any advisory
/// lock key and so stall the worker and `vc.promote()`. SHARE ROW EXCLUSIVE conflicts
/// with itself and with writes of `vc.replication`; PUBLIC, which may only read that
/// table, can take no lock that conflicts with it.
pub fn lock() -> VcResult<()> {
    exec(
        "LOCK TABLE vc.replication IN SHARE ROW EXCLUSIVE MODE",
        vec![],
    )?;
    Ok(())
}

pub fn not_loaded() -> VcError {
    VcError::new(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "replication needs pgvc in shared_preload_libraries",
    )
    .hint("add shared_preload_libraries = 'pgvc' to postgresql.conf and restart the server")
}

/// Refuses `what` (a function that moves a branch) on a standby.
pub fn refuse_on_standby(what: &str) -> VcResult<()> {
    if !crate::pg::progress::enabled() {
        return Ok(());
    }
    let cfg = current()?;
    if cfg.role == Role::Standby {
        return Err(VcError::new(
            Code::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!(
                "{what} is not allowed on a standby: this server follows remote \"{}\"",
                cfg.remote.unwrap_or_default()
            ),
        )
        .hint("run it on the primary; SELECT vc.promote() makes this server the primary"));
    }
    Ok(())
}

/// Refuses `what` (a push) on a fenced server: another server was promoted, and
/// whatever this one pushes would fork or overwrite the new primary's history.
pub fn refuse_when_fenced(what: &str) -> VcResult<()> {
    if !crate::pg::progress::enabled() {
        return Ok(());
    }
    let cfg = current()?;
    if cfg.role == Role::Fenced {
        let remote = cfg.remote.unwrap_or_default();
        return Err(VcError::new(
            Code::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!("{what} is not allowed: this server is fenced (another server was promoted to primary of remote \"{remote}\")"),
        )
        .hint(format!("SELECT vc.rejoin('{remote}') makes this server a standby of the new primary; its own commits are kept on the fenced/... branches")));
    }
    Ok(())
}

// ---- Shared status -------------------------------------------------------------

const MAX_BRANCHES: usize = 8;
const ERROR_LEN: usize = 480;

#[derive(Copy, Clone)]
pub struct Slot {
    name: [u8; 64],
    name_len: u8,
    remote_head: [u8; 32],
    known: bool,
    /// The remote lacks this followed branch (a standby's last round found).
    missing: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            name: [0; 64],
            name_len: 0,
            remote_head: [0; 32],
            known: false,
            missing: false,
        }
    }
}

#[derive(Copy, Clone)]
pub struct Status {
    epoch_seen: i64,
    last_sync_us: i64,
    lag_ms: i64,
    error: [u8; ERROR_LEN],
    error_len: u16,
    error_us: i64,
    slots: [Slot; MAX_BRANCHES],
    /// Bumped by every committed write of `vc.replication` (see `stored`).
    generation: u64,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            epoch_seen: -1,
            last_sync_us: 0,
            lag_ms: -1,
            error: [0; ERROR_LEN],
            error_len: 0,
            error_us: 0,
            slots: [Slot::default(); MAX_BRANCHES],
            generation: 0,
        }
    }
}

// SAFETY: plain-old-data, no pointers.
unsafe impl PGRXSharedMemory for Status {}

// SAFETY: a name unique to pgvc.
static STATUS: PgLwLock<Status> = unsafe { PgLwLock::new(c"pgvc_replication_status") };

/// Records an error (shown by `vc.replication_status()`); true when it differs from
/// the previous one (the caller logs it then, once).
pub fn record_error(msg: &str) -> bool {
    if !crate::pg::progress::enabled() {
        return false;
    }
    let mut s = STATUS.exclusive();
    let bytes = msg.as_bytes();
    let mut n = bytes.len().min(ERROR_LEN);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    let changed = s.error[..s.error_len as usize] != bytes[..n];
    s.error[..n].copy_from_slice(&bytes[..n]);
    s.error_len = n as u16;
    s.error_us = now_us();
    changed
}

/// A successful sync (standby) or push (primary); `lag_ms` for an applied commit.
pub fn record_success(lag_ms: Option<i64>) {
    if !crate::pg::progress::enabled() {
        return;
    }
    let mut s = STATUS.exclusive();
    s.error_len = 0;
    s.last_sync_us = now_us();
    if let Some(l) = lag_ms {
        s.lag_ms = l;
    }
}

pub fn record_epoch(epoch: u64) {
    if crate::pg::progress::enabled() {
        STATUS.exclusive().epoch_seen = epoch as i64;
    }
}

/// Remembers the remote head last seen for `branch`.
pub fn record_remote_head(branch: &str, head: Option<Hash>) {
    if !crate::pg::progress::enabled() || branch.len() > 64 {
        return;
    }
    let mut s = STATUS.exclusive();
    let idx = s
        .slots
        .iter()
        .position(|sl| sl.name_len > 0 && &sl.name[..sl.name_len as usize] == branch.as_bytes())
        .or_else(|| s.slots.iter().position(|sl| sl.name_len == 0));
    let Some(i) = idx else { return };
    let slot = &mut s.slots[i];
    slot.name[..branch.len()].copy_from_slice(branch.as_bytes());
    slot.name_len = branch.len() as u8;
    slot.known = head.is_some();
    slot.missing = false;
    if let Some(h) = head {
        slot.remote_head.copy_from_slice(h.as_bytes());
    }
}

/// Notes that the remote lacks followed branch `branch` (its status row says so; the
/// other branches go on following).
pub fn record_missing(branch: &str) {
    record_remote_head(branch, None);
    if !crate::pg::progress::enabled() || branch.len() > 64 {
        return;
    }
    let mut s = STATUS.exclusive();
    if let Some(slot) = s
        .slots
        .iter_mut()
        .find(|sl| sl.name_len > 0 && &sl.name[..sl.name_len as usize] == branch.as_bytes())
    {
        slot.missing = true;
    }
}

/// A copy of the status, for `vc.replication_status()`.
pub struct Snapshot {
    pub epoch_seen: Option<u64>,
    pub last_sync_us: Option<i64>,
    pub lag_ms: Option<i64>,
    pub error: Option<String>,
    pub remote_heads: Vec<(String, Hash)>,
    /// Followed branches the remote lacked at the last look.
    pub missing: Vec<String>,
}

pub fn snapshot() -> Snapshot {
    let s = *STATUS.share();
    Snapshot {
        epoch_seen: (s.epoch_seen >= 0).then_some(s.epoch_seen as u64),
        last_sync_us: (s.last_sync_us > 0).then_some(s.last_sync_us),
        lag_ms: (s.lag_ms >= 0).then_some(s.lag_ms),
        error: (s.error_len > 0)
            .then(|| String::from_utf8_lossy(&s.error[..s.error_len as usize]).into_owned()),
        remote_heads: s
            .slots
            .iter()
            .filter(|sl| sl.name_len > 0 && sl.known)
            .filter_map(|sl| {
                Some((
                    String::from_utf8_lossy(&sl.name[..sl.name_len as usize]).into_owned(),
                    Hash::from_slice(&sl.remote_head)?,
                ))
            })
            .collect(),
        missing: s
            .slots
            .iter()
            .filter(|sl| sl.name_len > 0 && sl.missing)
            .map(|sl| String::from_utf8_lossy(&sl.name[..sl.name_len as usize]).into_owned())
            .collect(),
    }
}
