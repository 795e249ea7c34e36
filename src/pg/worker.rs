//! The pgvc background worker (needs `shared_preload_libraries = 'pgvc'`). It serves
//! the database named by `vc.database` and, every second, runs the backups that are
//! due (`vc.backup_schedule`). The work itself is `vc._run_schedule()`, PL/pgSQL that
//! runs each sync in its own subtransaction and records its error on the backup's row,
//! so an expected failure (an unwritable target, a full disk) is logged and retried at
//! the next interval, never a crash of the worker. The replication issue extends this
//! loop.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::ffi::CString;
use std::time::Duration;

pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// How long the worker sleeps between looks at the schedule.
const TICK: Duration = Duration::from_secs(1);
/// Wait before the postmaster restarts a worker that exited with an error (for
/// instance when `vc.database` names no database): long enough not to flood the log.
const RESTART_AFTER: Duration = Duration::from_secs(10);

#[derive(Copy, Clone, Default)]
pub struct WorkerState {
    pid: i32,
    started_us: i64,
    last_tick_us: i64,
    ticks: u64,
    /// 0 waiting for the extension, 1 running.
    ready: bool,
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
    pg_shmem_init!(STATE);
    BackgroundWorkerBuilder::new("pgvc worker")
        .set_type("pgvc worker")
        .set_function("pgvc_worker_main")
        .set_library("pgvc")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgvc_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".into());
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    {
        let mut s = STATE.exclusive();
        // SAFETY: plain read of a backend global.
        *s = WorkerState {
            pid: unsafe { pg_sys::MyProcPid },
            started_us: now_us(),
            ..WorkerState::default()
        };
    }
    log!("pgvc worker started in database \"{db}\"");
    while BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration file is what SIGHUP asks for.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let ready = BackgroundWorker::transaction(|| {
            // Waiting for CREATE EXTENSION is normal: say nothing until then.
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgvc')",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if installed {
                // Errors of individual syncs are caught and recorded inside.
                let _ = Spi::run("SELECT vc._run_schedule()");
            }
            installed
        });
        let mut s = STATE.exclusive();
        s.ready = ready;
        s.ticks += 1;
        s.last_tick_us = now_us();
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
    let db = DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".into());
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
