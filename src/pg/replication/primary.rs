//! The primary side: push on every movement of a replicated branch, retry from the
//! worker, and fence this server when the remote's epoch moved past ours.
//!
//! Synchronous pushes are split in two (see `docs/REPLICATION.md`): the pack is
//! written inside the statement that moved the branch (queries allowed), the manifest
//! swap happens in the commit callback (no queries, must not raise).

use super::{current, record_error, record_remote_head, record_success, Config, Role};
use crate::commit::Commit;
use crate::pg::error::{VcError, VcResult};
use crate::pg::refs::set_tracking_ref;
use crate::pg::refs::{current_branch, ref_hash};
use crate::pg::spi::{exec, one_text, Arg};
use crate::pg::store::PgStore;
use crate::remote::{is_ancestor, open_with, ObjectStore, Prepared, Remote, RemoteError};
use crate::repo::replication::{primary_step, PrimaryStep};
use crate::store::{ChunkStore, Hash};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode as Code;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// How far back the commit callback may find the remote's head below the pushed one
/// (commits by concurrent transactions); further is left to the worker.
const MAX_CHAIN: usize = 10_000;

/// A remote opened once per process (see `REMOTES`).
pub type SharedRemote = Rc<Remote<Box<dyn ObjectStore>>>;

struct Pending {
    /// The subtransaction that prepared it: dropped if that one rolls back.
    subxact: pg_sys::SubTransactionId,
    remote: SharedRemote,
    branch: String,
    head: Hash,
    epoch: u64,
    acceptable: HashSet<Option<Hash>>,
    prep: Prepared,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    /// Wake the worker when this transaction commits (async mode, or a failed prepare).
    static WAKE: RefCell<bool> = const { RefCell::new(false) };
    /// Remotes opened by this process, by URL: each keeps its cache of pack indexes,
    /// so a push or fetch reads only the indexes of packs added since the last one.
    static REMOTES: RefCell<HashMap<String, SharedRemote>> =
        RefCell::new(HashMap::new());
}

/// Registers the transaction callbacks; once per process, from `_PG_init`.
pub fn init_callbacks() {
    // SAFETY: registering process-lifetime callbacks with static functions.
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT => {
            // Nothing here may raise: the transaction is already committed.
            let _ = std::panic::catch_unwind(|| super::end_of_transaction(true));
            let _ = std::panic::catch_unwind(publish_pending);
        }
        XACT_EVENT_ABORT | XACT_EVENT_PREPARE | XACT_EVENT_PARALLEL_ABORT => {
            let _ = std::panic::catch_unwind(|| {
                // A prepared transaction's write becomes visible at COMMIT PREPARED,
                // which no callback of ours sees: bumping at PREPARE is the best we
                // can do (a reader between the two may keep the old role until the
                // next write of vc.replication; 2PC on it is not expected).
                super::end_of_transaction(event == XACT_EVENT_PREPARE);
                PENDING.with(|p| p.borrow_mut().clear());
                WAKE.with(|w| *w.borrow_mut() = false);
            });
        }
        _ => {}
    }
}

unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    let _ = std::panic::catch_unwind(|| {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            match event {
                SUBXACT_EVENT_ABORT_SUB => p.retain(|x| x.subxact != my),
                SUBXACT_EVENT_COMMIT_SUB => {
                    for x in p.iter_mut().filter(|x| x.subxact == my) {
                        x.subxact = parent;
                    }
                }
                _ => {}
            }
        })
    });
}

/// The commit callback: publishes the last prepared push of each branch.
fn publish_pending() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    let mut wake = WAKE.with(|w| std::mem::take(&mut *w.borrow_mut()));
    let mut done: HashSet<String> = HashSet::new();
    for p in pending.into_iter().rev() {
        if !done.insert(p.branch.clone()) {
            continue; // an earlier push of the same branch, superseded
        }
        let published = {
            let _deadline = p.remote.deadline(publish_timeout());
            p.remote
                .publish_expecting(&p.branch, p.head, Some(p.epoch), &p.acceptable, &p.prep)
        };
        match published {
            Ok(true) => {
                record_remote_head(&p.branch, Some(p.head));
                record_success(None);
            }
            // The remote moved elsewhere meanwhile, or another server was promoted:
            // the commit is not on the remote, and the client must hear it. The
            // worker's next round sorts it out (pushes, or fences this server).
            Ok(false) if super::MULTI_PRIMARY.get() => {
                // Another primary pushed between the upload and COMMIT: merged and
                // pushed by the worker.
                pgrx::notice!(
                    "pgvc: another primary pushed {} first; the background worker merges and pushes this commit",
                    p.branch
                );
                wake = true;
            }
            Ok(false) => {
                let msg = format!(
                    "push of {} at COMMIT found the remote's branch moved by another writer",
                    p.branch
                );
                record_error(&msg);
                pgrx::warning!(
                    "pgvc: the transaction has committed here, but the remote does not have its commit: {msg}; the background worker retries (see vc.replication_status())"
                );
                wake = true;
            }
            Err(RemoteError::Fenced { .. }) => {
                let msg = format!(
                    "push of {} at COMMIT refused: another server was promoted (the remote's epoch moved)",
                    p.branch
                );
                record_error(&msg);
                pgrx::warning!(
                    "pgvc: the transaction has committed here, but the remote does not have its commit: {msg}; this server will be fenced (see vc.replication_status())"
                );
                wake = true;
            }
            Err(e) => {
                let msg = format!("push of {} failed: {e}", p.branch);
                record_error(&msg);
                // Like synchronous replication's cancel warning: the client learns
                // that its committed transaction is not on the remote yet. (A WARNING
                // cannot abort anything: the transaction is already committed.)
                pgrx::warning!(
                    "pgvc: the transaction has committed here, but the remote does not have its commit yet: {msg}; the background worker retries (see vc.replication_status())"
                );
                wake = true;
            }
        }
    }
    if wake {
        crate::pg::worker::wake();
    }
}

/// `vc.publish_timeout`: how long each step of a synchronous push at COMMIT (the
/// upload while the commit is made, the ref update once it is committed) may wait
/// for the remote: its lock on `file://`, its answers on `s3://`.
fn publish_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(super::PUBLISH_TIMEOUT_MS.get().max(10) as u64)
}

/// Opens the remote a replication role names (no file-access check: the superuser
/// who configured replication granted it).
fn open_named(name: &str) -> VcResult<SharedRemote> {
    let url = one_text(
        "SELECT url FROM vc.remotes WHERE name = $1",
        vec![Arg::Text(Some(name.to_string()))],
    )?
    .ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("replication remote \"{name}\" does not exist"),
        )
        .hint(format!(
            "add it with SELECT vc.remote_add('{name}', 'file:///path'), or fix the setting and SELECT pg_reload_conf()"
        ))
    })?;
    if let Some(r) = REMOTES.with(|m| m.borrow().get(&url).cloned()) {
        return Ok(r);
    }
    // A COMMIT publishes holding its transaction's locks: it waits for the remote's
    // lock only so long, then leaves the push to the worker.
    let r = Rc::new(open_with(&url, publish_timeout())?);
    REMOTES.with(|m| m.borrow_mut().insert(url, r.clone()));
    Ok(r)
}

pub fn open_remote(cfg: &Config) -> VcResult<SharedRemote> {
    open_named(cfg.remote.as_deref().unwrap_or_default())
}

/// Whether moving the remote's `branch` from `theirs` to `ours` must be forced, or an
/// error when `theirs` is a commit this server never had (someone else pushes there).
pub(super) fn needs_force(
    store: &PgStore,
    branch: &str,
    theirs: Option<Hash>,
    ours: Hash,
) -> VcResult<bool> {
    let Some(t) = theirs else { return Ok(false) };
    if is_ancestor(store, t, ours)? {
        return Ok(false);
    }
    if store.has(&t)? {
        return Ok(true); // ours, rewritten here (a reset to an older commit)
    }
    Err(VcError::new(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "the remote's branch \"{branch}\" is at commit {}, which this primary never had: another server pushes to this remote",
            &t.to_hex()[..12]
        ),
    )
    .hint("make sure one primary pushes to each remote; if this server is stale, SELECT vc.rejoin('<remote>')"))
}

/// The remote's epoch is below ours: it was replaced or restored from an old copy.
/// Pushing would hand history to a remote other standbys may not follow: refuse.
fn epoch_went_back(cfg: &Config, remote_epoch: u64, ours: u64) -> VcError {
    VcError::new(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "remote \"{}\" is at epoch {remote_epoch}, below this primary's {ours}: it was replaced or restored from an older copy",
            cfg.remote.as_deref().unwrap_or_default()
        ),
    )
    .hint("restore the remote's directory, or point the remote at a new empty location and UPDATE vc.replication SET epoch = NULL to start a new history there")
}

/// Called whenever a branch moves (`refs::set_branch`), inside the moving statement.
pub fn branch_moved(moved: crate::pg::refs::Moved) -> VcResult<()> {
    let (branch, new) = (moved.branch.as_str(), moved.new);
    if !crate::pg::progress::enabled() {
        return Ok(());
    }
    let cfg = current()?;
    if cfg.role != Role::Primary || !cfg.replicates(branch) {
        return Ok(());
    }
    if super::ASYNC.get() {
        WAKE.with(|w| *w.borrow_mut() = true);
        return Ok(());
    }
    let prepared = match prepare(&cfg, branch, new) {
        // Several primaries, and another pushed first: merged here, in this
        // transaction, when that goes quickly; then the merge is what COMMIT publishes.
        Err(Prep::Beaten) => match merge_beaten(&cfg, branch, new) {
            Some(merged) => prepare(&cfg, branch, merged),
            None => Ok(None),
        },
        other => other,
    };
    match prepared {
        Ok(Some(p)) => PENDING.with(|v| v.borrow_mut().push(p)),
        Ok(None) => {}
        Err(Prep::Beaten) => {
            pgrx::notice!(
                "pgvc: another primary pushed {branch} again; this commit stays here and the background worker merges and pushes it (see vc.replication_status())"
            );
            WAKE.with(|w| *w.borrow_mut() = true);
        }
        Err(Prep::Fenced(epoch)) => {
            fence(&cfg, epoch)?;
            pgrx::warning!(
                "pgvc: this server was fenced: the remote's epoch is now {epoch} (another server was promoted); the commit is kept here on branch fenced/{epoch}/{branch}"
            );
        }
        Err(Prep::Failed(msg)) => {
            // The commit stays; the worker retries with backoff.
            pgrx::warning!("pgvc: the commit is kept here but not replicated yet: {msg}; the background worker retries (see vc.replication_status())");
            record_error(&msg);
            WAKE.with(|w| *w.borrow_mut() = true);
        }
        Err(Prep::Pg(e)) => return Err(e),
    }
    Ok(())
}

enum Prep {
    Fenced(u64),
    Failed(String),
    /// Several primaries: the remote's head is not an ancestor of the new one.
    Beaten,
    Pg(VcError),
}

/// Several primaries, synchronous mode: merges what another primary pushed into the
/// commit just made (`multi::reconcile`: the live tables move, the branch moves to the
/// merge), inside a subtransaction with a short `lock_timeout`, so that COMMIT publishes
/// the merge. `None` when that cannot be done quickly (a lock held, a conflict the
/// policy leaves to a person, uncommitted changes): the commit stays, a NOTICE says why,
/// and the worker delivers.
fn merge_beaten(cfg: &Config, branch: &str, new: Hash) -> Option<Hash> {
    let saved = one_text("SELECT current_setting('lock_timeout')", vec![])
        .ok()
        .flatten();
    let attempt = std::panic::AssertUnwindSafe(|| {
        let run = || -> VcResult<Hash> {
            exec("SELECT set_config('lock_timeout', '250ms', true)", vec![])?;
            let remote = open_remote(cfg)?;
            // The remote may not hold the commit (and HEAD) for longer than a publish.
            let _deadline = remote.deadline(publish_timeout());
            match super::multi::reconcile(cfg, &remote, branch, new)? {
                super::multi::Reconciled::Head(h) => Ok(h),
                super::multi::Reconciled::Waiting(why) => Err(VcError::new(
                    Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    why,
                )),
            }
        };
        match run() {
            Ok(h) => h,
            // Raised, so that the subtransaction takes back whatever it did.
            Err(e) => e.raise(),
        }
    });
    let outcome = crate::pg::sql::in_subtransaction_catching(None, attempt);
    if let Some(v) = saved {
        let _ = exec(
            "SELECT set_config('lock_timeout', $1, true)",
            vec![Arg::Text(Some(v))],
        );
    }
    let why = match outcome {
        Ok(h) => return Some(h),
        Err(message) => message,
    };
    pgrx::notice!(
        "pgvc: another primary pushed {branch} first, and merging it here now did not work out ({why}); this commit stays here and the background worker merges and pushes it"
    );
    WAKE.with(|w| *w.borrow_mut() = true);
    None
}

impl From<VcError> for Prep {
    fn from(e: VcError) -> Prep {
        Prep::Pg(e)
    }
}

fn prepare(cfg: &Config, branch: &str, new: Hash) -> Result<Option<Pending>, Prep> {
    let failed = |e: RemoteError| match e {
        RemoteError::Fenced { actual, .. } => Prep::Fenced(actual),
        e => Prep::Failed(format!("push of {branch} failed: {e}")),
    };
    let remote = match open_remote(cfg) {
        Ok(r) => r,
        Err(e) => return Err(Prep::Failed(e.message)),
    };
    // A slow remote must not hold the commit: past the deadline the worker delivers.
    let held = remote.clone();
    let _deadline = held.deadline(publish_timeout());
    // Read once: its epoch decides below, and the push walks against it.
    let (manifest, version) = remote.manifest().map_err(failed)?;
    let epoch = match primary_step(cfg.epoch, manifest.epoch) {
        PrimaryStep::Push(e) => e,
        PrimaryStep::Adopt(e) => {
            super::store_epoch(e)?;
            e
        }
        PrimaryStep::Fence(e) => return Err(Prep::Fenced(e)),
        PrimaryStep::EpochWentBack { remote, ours } => {
            return Err(Prep::Failed(epoch_went_back(cfg, remote, ours).message))
        }
    };
    let store = PgStore::new();
    let theirs = manifest.refs.get(branch).copied();
    let base = (manifest, version);
    if let (true, Some(t)) = (cfg.multi_primary, theirs) {
        if !is_ancestor(&store, t, new).map_err(VcError::from)? {
            return Err(Prep::Beaten);
        }
    }
    let force = match needs_force(&store, branch, theirs, new) {
        Ok(f) => f,
        Err(e) => return Err(Prep::Failed(e.message)),
    };
    let Some(prep) = remote
        .prepare_from(&store, branch, new, force, Some(epoch), base, &mut |_| {})
        .map_err(failed)?
    else {
        return Ok(None);
    };
    // The remote heads the publish may replace: the base head, and (when not forced)
    // the commits between it and the new head that concurrent committers may have
    // published first.
    let base = prep.base.refs.get(branch).copied();
    let mut acceptable: HashSet<Option<Hash>> = HashSet::from([base]);
    if !force {
        let mut h = new;
        for _ in 0..MAX_CHAIN {
            if Some(h) == base {
                break;
            }
            acceptable.insert(Some(h));
            match Commit::read(&store, &h)
                .map_err(VcError::from)?
                .parents
                .first()
            {
                Some(p) => h = *p,
                None => break,
            }
        }
    }
    Ok(Some(Pending {
        // SAFETY: plain read of the current subtransaction id.
        subxact: unsafe { pg_sys::GetCurrentSubTransactionId() },
        remote,
        branch: branch.to_string(),
        head: new,
        epoch,
        acceptable,
        prep,
    }))
}

/// Fences this server: the remote's epoch is `epoch`, past ours. Keeps each
/// replicated branch's head that the remote lacks on `fenced/<epoch>/<branch>`.
pub fn fence(cfg: &Config, epoch: u64) -> VcResult<()> {
    let remote_name = cfg.remote.clone().unwrap_or_default();
    // What the remote holds (unknown if unreadable: then every head is kept).
    let on_remote = open_remote(cfg)
        .and_then(|r| Ok(r.index(&r.read_manifest()?)?))
        .ok();
    for b in &cfg.local_heads()? {
        let Some(h) = ref_hash(b)? else { continue };
        if on_remote.as_ref().is_some_and(|idx| idx.contains(&h)) {
            continue;
        }
        keep_on_branch(&format!("fenced/{epoch}/{b}"), h)?;
    }
    // The epoch shown from now on is the one that fenced this server.
    super::store_role(Role::Fenced, &remote_name, epoch)?;
    let msg = format!(
        "fenced: remote \"{remote_name}\" moved to epoch {epoch} (another server was promoted); commits it lacks are kept on branches fenced/{epoch}/*; SELECT vc.rejoin('{remote_name}') makes this server a standby"
    );
    record_error(&msg);
    pgrx::log!("pgvc: {msg}");
    Ok(())
}

/// Points branch `name` at `h`, creating it or moving it.
pub fn keep_on_branch(name: &str, h: Hash) -> VcResult<()> {
    exec(
        "INSERT INTO vc.refs (name, kind, hash) VALUES ($1, 'branch', $2) \
         ON CONFLICT (name) DO UPDATE SET hash = excluded.hash",
        vec![
            Arg::Text(Some(name.to_string())),
            Arg::Bytea(Some(h.as_bytes().to_vec())),
        ],
    )?;
    Ok(())
}

/// One round of the primary: fence if the epoch moved, else push every replicated
/// branch whose remote head differs from ours. Returns the number of branches pushed.
pub fn push_all(cfg: &Config) -> VcResult<u64> {
    let remote = open_remote(cfg)?;
    let manifest = remote.read_manifest()?;
    super::record_epoch(manifest.epoch);
    let epoch = match primary_step(cfg.epoch, manifest.epoch) {
        PrimaryStep::Push(e) => e,
        PrimaryStep::Adopt(e) => {
            super::store_epoch(e)?;
            e
        }
        PrimaryStep::Fence(e) => {
            fence(cfg, e)?;
            return Ok(0);
        }
        PrimaryStep::EpochWentBack { remote, ours } => {
            return Err(epoch_went_back(cfg, remote, ours))
        }
    };
    // Compaction and pruning of the remote when due (decided from the manifest just
    // read: nothing more is read otherwise), before the HEAD lock below: commits go on
    // meanwhile. A failure is reported, never a reason to stop replicating.
    let location = format!("remote {}", cfg.remote.as_deref().unwrap_or_default());
    if let Err(e) = crate::pg::storage::maintain(&*remote, &location, &manifest) {
        pgrx::warning!("pgvc: maintenance of {location} failed: {}", e.message);
    }
    let store = PgStore::new();
    let mut pushed = 0;
    // Most rounds find nothing to do: look without locking (a row lock per round would
    // cost a transaction id and WAL).
    let mut behind = false;
    let heads = cfg.local_heads()?;
    for b in &heads {
        let theirs = manifest.refs.get(b).copied();
        let ours = ref_hash(b)?;
        behind |= ours.is_some() && ours != theirs;
        record_remote_head(b, theirs);
    }
    if !behind {
        record_success(None);
        return Ok(0);
    }
    // Hold the HEAD lock: no commit moves a branch while we compare and push.
    current_branch(true)?;
    let mut waiting = Vec::new();
    for b in &heads {
        let theirs = manifest.refs.get(b).copied();
        let Some(mut ours) = ref_hash(b)? else {
            continue;
        };
        if theirs == Some(ours) {
            record_remote_head(b, theirs);
            continue;
        }
        // Several primaries: what another pushed is merged here first (or taken, when
        // this server has nothing new), then pushed on top of it.
        if let (true, Some(t)) = (cfg.multi_primary, theirs) {
            if !is_ancestor(&store, t, ours)? {
                match super::multi::reconcile(cfg, &remote, b, ours)? {
                    super::multi::Reconciled::Head(h) => ours = h,
                    super::multi::Reconciled::Waiting(why) => {
                        waiting.push(why);
                        continue;
                    }
                }
                if manifest.refs.get(b) == Some(&ours) {
                    set_tracking_ref(cfg.remote.as_deref().unwrap_or_default(), b, ours)?;
                    record_remote_head(b, Some(ours));
                    continue;
                }
            }
        }
        let force = needs_force(&store, b, theirs, ours)?;
        match remote.push(&store, b, ours, force, Some(epoch), &mut |_| {}) {
            Ok(_) => {}
            Err(RemoteError::Fenced { actual, .. }) => {
                fence(cfg, actual)?;
                return Ok(pushed);
            }
            // Another primary pushed meanwhile: merged in the next round.
            Err(RemoteError::NonFastForward { .. }) if cfg.multi_primary => {
                crate::pg::worker::wake();
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        set_tracking_ref(cfg.remote.as_deref().unwrap_or_default(), b, ours)?;
        record_remote_head(b, Some(ours));
        pushed += 1;
    }
    if !waiting.is_empty() {
        record_error(&waiting.join("; "));
        return Ok(pushed);
    }
    record_success(None);
    Ok(pushed)
}
