//! The pgvc background worker (needs `shared_preload_libraries = 'pgvc'`). It serves
//! the database named by `vc.database` and, every second, runs the backups that are
//! due (`vc.backup_schedule`), in two transactions: `vc._claim_due_backups()` records
//! and commits the attempts first, then `vc._run_backup()` syncs each in its own
//! subtransaction and records its error on the backup's row. An expected failure (an
//! unwritable target, a full disk) is logged and retried with backoff; a sync that
//! never ends (the worker killed by the OOM killer) is found at the next look by its
//! committed attempt and backed off too, never retried in a crash loop.
//!
//! Every `vc.gc_check_interval` it estimates the garbage in `vc.chunks` and runs
//! `vc.gc()` past `vc.gc_threshold` (`vc.auto_gc`); a primary's replication round also
//! compacts and prunes the remote when due (`vc.auto_compact`).
//!
//! It also replicates (`docs/REPLICATION.md`): every `vc.replication_interval`, or at
//! once when a commit wakes it (by setting its latch), it runs
//! `vc._replication_tick()`: a standby applies what the remote has, a primary pushes
//! what the remote lacks. A failed round is retried with exponential backoff and its
//! error is logged once, not at every retry.

use crate::pg::progress::now_us;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// `vc.replication_interval`: how often the worker runs a replication round.
pub static INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);

pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// How often the backup schedule is looked at.
const TICK: Duration = Duration::from_secs(1);
/// Backoff after a failed replication round: from the interval, doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Wait before the postmaster restarts a worker that exited with an error (for
/// instance when `vc.database` names no database): long enough not to flood the log.
const RESTART_AFTER: Duration = Duration::from_secs(10);

#[derive(Copy, Clone, Default)]
pub struct WorkerState {
    pid: i32,
    /// Address of the worker's latch (`MyLatch`, in its PGPROC in shared memory), 0
    /// when it is not running. Setting a latch that a later process inherited only
    /// wakes that process spuriously, where a signal to a stale pid could reach any
    /// process the postmaster started since.
    latch: usize,
    started_us: i64,
    last_tick_us: i64,
    ticks: u64,
    /// 0 waiting for the extension, 1 running.
    ready: bool,
    /// Set by `wake()`: a commit asks for a replication round now.
    wake: bool,
}

// SAFETY: plain-old-data.
unsafe impl PGRXSharedMemory for WorkerState {}

// SAFETY: a name unique to pgvc.
static STATE: PgLwLock<WorkerState> = unsafe { PgLwLock::new(c"pgvc_worker_state") };

/// Called from `_PG_init` while the postmaster loads preloaded libraries.
pub fn init() {
    GucRegistry::define_string_guc(
        c"vc.database",
        c"Database served by the pgvc background worker.",
        c"The worker runs scheduled backups (and, later, replication) in this database.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"vc.replication_interval",
        c"How often the worker polls the remote (standby) or checks pushes (primary).",
        c"",
        &INTERVAL_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY | GucFlags::UNIT_MS,
    );
    pg_shmem_init!(STATE);
    BackgroundWorkerBuilder::new("pgvc worker")
        .set_type("pgvc worker")
        .set_function("pgvc_worker_main")
        .set_library("pgvc")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

/// The database the worker serves (`vc.database`).
pub fn database() -> String {
    DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".into())
}

/// Sets the worker's latch (from any backend; harmless when it is not running).
pub fn wake() {
    if !crate::pg::progress::enabled() {
        return;
    }
    let latch = {
        let mut s = STATE.exclusive();
        s.wake = true;
        s.latch
    };
    if latch != 0 {
        // SAFETY: the address of a PGPROC's latch in shared memory, mapped at the same
        // address in every backend; PGPROCs are never freed, only reused, and setting
        // a reused one is a harmless spurious wakeup.
        unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
    }
}

fn take_wake_request() -> bool {
    std::mem::take(&mut STATE.exclusive().wake)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgvc_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = database();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    {
        let mut s = STATE.exclusive();
        // SAFETY: plain read of a backend global.
        *s = WorkerState {
            pid: unsafe { pg_sys::MyProcPid },
            // SAFETY: plain read of a backend global (the PGPROC latch once connected).
            latch: unsafe { pg_sys::MyLatch } as usize,
            started_us: now_us(),
            ..WorkerState::default()
        };
    }
    log!("pgvc worker started in database \"{db}\"");
    let mut next_schedule = Instant::now();
    // The next look at the garbage in vc.chunks (vc.gc_check_interval).
    let mut next_gc_check = Instant::now() + Duration::from_secs(5);
    // The last replication round, and the pause a failure asked for.
    let mut last_round: Option<Instant> = None;
    let mut backoff: Option<Duration> = None;
    let mut last_logged = String::new();
    loop {
        // Read the interval each time: a reload may have changed it.
        let interval = Duration::from_millis(INTERVAL_MS.get().max(10) as u64);
        let next_replication =
            last_round.map_or_else(Instant::now, |t| t + backoff.unwrap_or(interval));
        let now = Instant::now();
        let due = next_schedule.min(next_replication);
        let wait = due
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration file is what SIGHUP asks for.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            continue; // recompute the schedule with the new settings
        }
        let now = Instant::now();
        // The latch is set by many things (catalog invalidations, signals); only a
        // commit's wake() request runs a round early, and not during a backoff.
        let woken = take_wake_request() && backoff.is_none();
        let run_schedule = now >= next_schedule;
        let run_replication = now >= next_replication || woken;
        if !run_schedule && !run_replication {
            continue;
        }
        let ready_before = STATE.share().ready;
        if ready_before && run_schedule {
            // Attempts are committed before any sync starts (see the module doc).
            let due: Vec<String> = BackgroundWorker::transaction(|| {
                Spi::get_one::<Vec<String>>("SELECT vc._claim_due_backups()")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            });
            for name in due {
                // Errors of individual syncs are caught and recorded inside.
                BackgroundWorker::transaction(|| {
                    let _ =
                        Spi::run_with_args("SELECT vc._run_backup($1)", &[name.as_str().into()]);
                });
            }
        }
        let outcome = BackgroundWorker::transaction(|| {
            // Waiting for CREATE EXTENSION is normal: say nothing until then.
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgvc')",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            let mut tick = None;
            if installed && run_replication {
                tick = Spi::get_one::<String>("SELECT vc._replication_tick()")
                    .ok()
                    .flatten();
            }
            (installed, tick)
        });
        let (ready, tick) = outcome;
        if ready && Instant::now() >= next_gc_check {
            next_gc_check = Instant::now()
                + Duration::from_millis(crate::pg::storage::GC_CHECK_MS.get().max(1000) as u64);
            // Its own transaction: a failed collection (no moment between writers) is
            // logged and tried again at the next look.
            BackgroundWorker::transaction(|| {
                if let Err(e) = Spi::get_one::<i64>("SELECT vc._auto_gc_tick()") {
                    log!("pgvc gc: {e}");
                }
            });
        }
        if run_schedule {
            next_schedule = now + TICK;
        }
        if run_replication {
            last_round = Some(now);
            match tick.as_deref() {
                Some(t) if t.starts_with("error: ") => {
                    let b = backoff.map_or(interval, |b| (b * 2).min(MAX_BACKOFF));
                    backoff = Some(b.max(interval));
                    if t != last_logged {
                        log!("pgvc replication: {}", &t[7..]);
                        last_logged = t.to_string();
                    }
                }
                _ => {
                    backoff = None;
                    last_logged.clear();
                }
            }
        }
        let mut s = STATE.exclusive();
        s.ready = ready;
        s.ticks += 1;
        s.last_tick_us = now_us();
    }
    {
        let mut s = STATE.exclusive();
        s.latch = 0;
        s.pid = 0;
    }
    log!("pgvc worker stopping");
}

#[pg_extern(name = "_worker_status", volatile)]
#[allow(clippy::type_complexity)]
fn vc_worker_status() -> TableIterator<
    'static,
    (
        name!(pid, Option<i32>),
        name!(database, String),
        name!(state, String),
        name!(started_us, Option<i64>),
        name!(last_tick_us, Option<i64>),
    ),
> {
    let db = database();
    if !crate::pg::progress::enabled() {
        return TableIterator::new(vec![(
            None,
            db,
            "not loaded: add pgvc to shared_preload_libraries".to_string(),
            None,
            None,
        )]);
    }
    let s = *STATE.share();
    let state = match (s.pid, s.ready) {
        (0, _) => "starting",
        (_, false) => "waiting for CREATE EXTENSION pgvc",
        (_, true) => "running",
    };
    TableIterator::new(vec![(
        (s.pid != 0).then_some(s.pid),
        db,
        state.to_string(),
        (s.started_us != 0).then_some(s.started_us),
        (s.last_tick_us != 0).then_some(s.last_tick_us),
    )])
}
