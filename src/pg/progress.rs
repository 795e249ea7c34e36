//! Progress of long transfers (push, fetch, clone, pull), visible to other sessions
//! through `vc.progress()`. One slot per backend in shared memory, so it needs
//! `shared_preload_libraries = 'pgvc'`; without it, transfers still report by NOTICE.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};

/// More concurrent transfers than this are not shown (they still run).
const SLOTS: usize = 64;

#[derive(Copy, Clone, Default)]
pub struct Slot {
    pid: i32,
    op: u8,
    chunks_done: u64,
    bytes_done: u64,
    chunks_total: i64,
    bytes_total: i64,
    started_us: i64,
    updated_us: i64,
}

#[derive(Copy, Clone)]
pub struct Slots([Slot; SLOTS]);

impl Default for Slots {
    fn default() -> Self {
        Slots([Slot::default(); SLOTS])
    }
}

// SAFETY: plain-old-data, no pointers: valid in shared memory.
unsafe impl PGRXSharedMemory for Slots {}

// SAFETY: the name is unique to pgvc.
static PROGRESS: PgLwLock<Slots> = unsafe { PgLwLock::new(c"pgvc_progress") };
/// Set in the postmaster when preloaded (inherited by every backend it forks).
static ENABLED: AtomicBool = AtomicBool::new(false);

const OPS: [&str; 7] = [
    "",
    "push",
    "fetch",
    "pull",
    "clone",
    "backup sync",
    "backup restore",
];

/// Called from `_PG_init` while the postmaster loads preloaded libraries.
pub fn init() {
    pg_shmem_init!(PROGRESS);
    ENABLED.store(true, Ordering::Relaxed);
}

/// True in a server that preloaded pgvc (shared memory and the worker exist).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn my_pid() -> i32 {
    // SAFETY: plain read of a backend global.
    unsafe { pg_sys::MyProcPid }
}

/// This backend's slot while a transfer runs; cleared on drop (also on error).
pub struct Tracker {
    index: Option<usize>,
}

impl Tracker {
    pub fn start(op: &str) -> Tracker {
        if !ENABLED.load(Ordering::Relaxed) {
            return Tracker { index: None };
        }
        let code = OPS.iter().position(|o| *o == op).unwrap_or(0) as u8;
        let pid = my_pid();
        let mut slots = PROGRESS.exclusive();
        let index = slots
            .0
            .iter()
            .position(|s| s.pid == pid)
            .or_else(|| slots.0.iter().position(|s| s.pid == 0));
        if let Some(i) = index {
            let now = now_us();
            slots.0[i] = Slot {
                pid,
                op: code,
                chunks_total: -1,
                bytes_total: -1,
                started_us: now,
                updated_us: now,
                ..Slot::default()
            };
        }
        Tracker { index }
    }

    pub fn update(&self, p: &crate::remote::Progress) {
        let Some(i) = self.index else { return };
        let mut slots = PROGRESS.exclusive();
        let s = &mut slots.0[i];
        s.chunks_done = p.chunks_done;
        s.bytes_done = p.bytes_done;
        s.chunks_total = p.chunks_total.map_or(-1, |v| v as i64);
        s.bytes_total = p.bytes_total.map_or(-1, |v| v as i64);
        s.updated_us = now_us();
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(i) = self.index {
            PROGRESS.exclusive().0[i] = Slot::default();
        }
    }
}

type Row = (i32, String, i64, i64, Option<i64>, Option<i64>, i64, i64);

#[pg_extern(name = "_progress", volatile)]
#[allow(clippy::type_complexity)]
fn vc_progress() -> TableIterator<
    'static,
    (
        name!(pid, i32),
        name!(operation, String),
        name!(chunks_done, i64),
        name!(bytes_done, i64),
        name!(chunks_total, Option<i64>),
        name!(bytes_total, Option<i64>),
        name!(started_us, i64),
        name!(updated_us, i64),
    ),
> {
    if !ENABLED.load(Ordering::Relaxed) {
        crate::pg::error::VcError::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "vc.progress() needs pgvc in shared_preload_libraries",
        )
        .hint("add shared_preload_libraries = 'pgvc' to postgresql.conf and restart; transfers report by NOTICE meanwhile")
        .raise();
    }
    let rows: Vec<Row> = PROGRESS
        .share()
        .0
        .iter()
        .filter(|s| s.pid != 0)
        .map(|s| {
            (
                s.pid,
                OPS[s.op as usize % OPS.len()].to_string(),
                s.chunks_done as i64,
                s.bytes_done as i64,
                (s.chunks_total >= 0).then_some(s.chunks_total),
                (s.bytes_total >= 0).then_some(s.bytes_total),
                s.started_us,
                s.updated_us,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Microseconds since the Unix epoch (commit timestamps, status times).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
