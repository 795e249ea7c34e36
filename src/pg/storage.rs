//! Keeping storage bounded: garbage collection of `vc.chunks`, compaction and pruning
//! of remotes and backups, their settings, and the record of what each did
//! (`vc.maintenance`, shown by `vc.storage()`).
//!
//! **GC and writers.** Every transaction that writes chunks, or skips fetching
//! chunks because `vc.chunks` has them, first locks `vc.gc_lock` in ROW EXCLUSIVE
//! mode (`writing_chunks`, from `PgStore`). `vc.gc()` marks from the refs without
//! any lock, lists the chunks, then takes that lock in SHARE ROW EXCLUSIVE mode
//! (conditionally, retrying: it never queues in front of writers), which waits out
//! every writer in flight and holds new ones. It then marks again from the refs as
//! they are now and from every chunk written since its listing, and deletes the
//! chunks of its listing that neither mark reached (`repo::gc`). Commits block only
//! for that second, incremental step. It all runs in one transaction: SIGKILL at any
//! point rolls it back.

use super::error::{VcError, VcResult};
use super::spi::{exec, query, Arg, Cursor};
use crate::codec::Cell;
use crate::remote::{compaction_plan, CompactOutcome, ObjectStore, PruneOutcome, Remote};
use crate::repo::gc::{doomed, mark};
use crate::store::{Hash, StoreError};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode as Code;
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub static AUTO_COMPACT: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static FAN_IN: GucSetting<i32> = GucSetting::<i32>::new(crate::remote::DEFAULT_FAN_IN as i32);
pub static RETIRED_GRACE_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
pub static AUTO_GC: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static GC_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(0.25);
pub static GC_CHECK_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);

/// Unlisted packs and temporary files younger than this are left alone by automatic
/// pruning: a push's pack is unlisted until its manifest swap.
pub const UNLISTED_GRACE_MS: u64 = 3_600_000;
// A prepared pack waits for its publish at most this long; it must not be pruned
// as unlisted debris meanwhile.
const _: () = assert!(UNLISTED_GRACE_MS > 2 * crate::remote::PREPARED_MAX_AGE_MS);
/// How long `vc.gc()` keeps trying to get between writers before it gives up.
const GC_LOCK_DEADLINE: Duration = Duration::from_secs(30);
/// Chunk hashes read per fetch while listing `vc.chunks`.
const LIST_BATCH: i64 = 50_000;
/// Chunks deleted per statement.
const DELETE_BATCH: usize = 5_000;

/// Registers the settings (at library load, in every process).
pub fn init() {
    let flags = GucFlags::SUPERUSER_ONLY;
    GucRegistry::define_bool_guc(
        c"vc.auto_compact",
        c"Compact remotes and backups automatically.",
        c"The primary's worker, vc.push() and vc.backup_sync() merge packs when a level holds vc.compact_fan_in of them, and delete packs retired longer than vc.retired_pack_grace.",
        &AUTO_COMPACT,
        GucContext::Sighup,
        flags,
    );
    GucRegistry::define_int_guc(
        c"vc.compact_fan_in",
        c"Packs of one size level that a compaction merges into one.",
        c"",
        &FAN_IN,
        2,
        64,
        GucContext::Sighup,
        flags,
    );
    GucRegistry::define_int_guc(
        c"vc.retired_pack_grace",
        c"How long packs replaced by a compaction stay on the remote for readers that listed them.",
        c"",
        &RETIRED_GRACE_MS,
        0,
        i32::MAX,
        GucContext::Sighup,
        flags | GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"vc.auto_gc",
        c"Let the background worker run vc.gc() when garbage may have piled up.",
        c"",
        &AUTO_GC,
        GucContext::Sighup,
        flags,
    );
    GucRegistry::define_float_guc(
        c"vc.gc_threshold",
        c"Estimated unreachable share of vc.chunks above which the worker runs vc.gc().",
        c"The estimate is 1 - (chunks reachable at the last gc) / (chunks now).",
        &GC_THRESHOLD,
        0.01,
        0.99,
        GucContext::Sighup,
        flags,
    );
    GucRegistry::define_int_guc(
        c"vc.gc_check_interval",
        c"How often the background worker estimates the garbage in vc.chunks.",
        c"",
        &GC_CHECK_MS,
        1000,
        i32::MAX,
        GucContext::Sighup,
        flags | GucFlags::UNIT_MS,
    );
}

/// `vc.gc_lock`, looked up in the catalog caches (no query).
fn gc_lock_relid() -> VcResult<pg_sys::Oid> {
    // SAFETY: catalog cache lookups by name; `missing_ok` returns InvalidOid.
    let relid = unsafe {
        let ns = pg_sys::get_namespace_oid(c"vc".as_ptr(), true);
        if ns == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(c"gc_lock".as_ptr(), ns)
        }
    };
    if relid == pg_sys::InvalidOid {
        return Err(VcError::new(
            Code::ERRCODE_UNDEFINED_TABLE,
            "vc.gc_lock is missing; reinstall pgvc",
        ));
    }
    Ok(relid)
}

/// Called before a transaction writes chunks or trusts that `vc.chunks` has some:
/// holds off a concurrent `vc.gc()` until this transaction ends. (Taking a lock this
/// transaction already holds is a local hash lookup.)
pub fn writing_chunks() -> Result<(), StoreError> {
    let relid = gc_lock_relid().map_err(|e| StoreError::Backend(e.message))?;
    // SAFETY: a table lock held to the end of the transaction, as LOCK TABLE takes.
    unsafe { pg_sys::LockRelationOid(relid, pg_sys::RowExclusiveLock as i32) };
    Ok(())
}

thread_local! {
    static FLUSHES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// After chunks were written: every 32nd time in a process, if `vc.chunks` has more
/// than doubled since its statistics were taken, ANALYZE it (skipping it when someone
/// else is). pgvc's lookups by hash run from kept plans; one planned while the table
/// was a page or two is a sequential scan, and stays one until the statistics change:
/// a soak of 1-row commits spent ~44% of its time scanning `vc.chunks` in
/// `is_ancestor -> has_chunk` before this.
pub fn chunks_written() -> VcResult<()> {
    let n = FLUSHES.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    if n % 32 != 1 {
        return Ok(());
    }
    let grew = super::spi::one_bool(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int8 > 2 * c.relpages + 8 \
         FROM pg_class c WHERE c.oid = 'vc.chunks'::regclass",
        vec![],
    )?;
    if grew {
        exec("ANALYZE (SKIP_LOCKED) vc.chunks", vec![])?;
    }
    Ok(())
}

/// What `vc.gc()` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcOutcome {
    pub chunks: i64,
    pub bytes: i64,
    pub reachable: i64,
}

fn fetch_many(hs: &[Hash]) -> VcResult<Vec<(Hash, Vec<u8>)>> {
    let rows = query(
        "SELECT hash, data FROM vc.chunks WHERE hash = ANY($1)",
        vec![Arg::ByteaArray(
            hs.iter().map(|h| Some(h.as_bytes().to_vec())).collect(),
        )],
        &[true, true],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut it = r.into_iter();
        if let (Some(Cell::Bytes(h)), Some(Cell::Bytes(d))) = (it.next(), it.next()) {
            if let Some(h) = Hash::from_slice(&h) {
                out.push((h, d));
            }
        }
    }
    Ok(out)
}

/// Every commit a ref of any kind names (branches, tags, remote-tracking refs), and
/// what an unfinished merge holds (both heads and the merged root).
fn ref_roots() -> VcResult<Vec<Hash>> {
    let rows = query(
        "SELECT hash FROM vc.refs UNION ALL \
         SELECT h FROM vc.merge_state, LATERAL (VALUES (ours), (theirs), (merged)) v(h)",
        vec![],
        &[true],
    )?;
    Ok(super::spi::first_column_hashes(rows))
}

/// Every chunk hash in `vc.chunks`, read in batches.
fn list_chunks(mut f: impl FnMut(Hash)) -> VcResult<()> {
    let mut c = Cursor::open("SELECT hash FROM vc.chunks", vec![], vec![true])?;
    loop {
        pgrx::check_for_interrupts!();
        let rows = c.fetch(LIST_BATCH);
        if rows.is_empty() {
            return Ok(());
        }
        for r in rows {
            if let Some(Cell::Bytes(b)) = r.into_iter().next() {
                if let Some(h) = Hash::from_slice(&b) {
                    f(h);
                }
            }
        }
    }
}

/// Takes `vc.gc_lock` in SHARE ROW EXCLUSIVE mode, trying without waiting (a waiting
/// request would hold every new writer behind it) until `GC_LOCK_DEADLINE`.
fn lock_out_writers() -> VcResult<()> {
    let relid = gc_lock_relid()?;
    let start = Instant::now();
    loop {
        // SAFETY: a conditional table lock, held to the end of the transaction.
        if unsafe {
            pg_sys::ConditionalLockRelationOid(relid, pg_sys::ShareRowExclusiveLock as i32)
        } {
            return Ok(());
        }
        if start.elapsed() > GC_LOCK_DEADLINE {
            return Err(VcError::new(
                Code::ERRCODE_LOCK_NOT_AVAILABLE,
                "vc.gc() found no moment without a transaction writing chunks",
            )
            .hint("a long clone, pull or commit is running; retry vc.gc() when it is done"));
        }
        pgrx::check_for_interrupts!();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes the chunks of `vc.chunks` that no ref reaches (see the module comment).
pub fn gc() -> VcResult<GcOutcome> {
    let started = super::spi::one_value("SELECT clock_timestamp()::text", vec![])?
        .map(|v| v.text())
        .transpose()?
        .unwrap_or_default();
    let mut marked: HashSet<Hash> = HashSet::new();
    let mut fetch = |hs: &[Hash]| fetch_many(hs);
    // 1. Mark from the refs, without holding anything.
    mark(ref_roots()?, &mut marked, &mut fetch)?;
    // 2. The candidates: what exists now and was not reached.
    let mut candidates: HashSet<Hash> = HashSet::new();
    list_chunks(|h| {
        if !marked.contains(&h) {
            candidates.insert(h);
        }
    })?;
    // 3. No writer in flight from here on.
    lock_out_writers()?;
    // 4. Mark again from the refs as they are now and from every chunk written since
    // the listing (a writer may have reused a candidate).
    let mut written = Vec::new();
    list_chunks(|h| {
        if !marked.contains(&h) && !candidates.contains(&h) {
            written.push(h);
        }
    })?;
    let mut roots = ref_roots()?;
    roots.extend(written);
    mark(roots, &mut marked, &mut fetch)?;
    // 5. Delete.
    let gone = doomed(&candidates, &marked);
    let mut out = GcOutcome {
        reachable: marked.len() as i64,
        ..GcOutcome::default()
    };
    for batch in gone.chunks(DELETE_BATCH) {
        pgrx::check_for_interrupts!();
        let rows = super::spi::query_values(
            "DELETE FROM vc.chunks WHERE hash = ANY($1) RETURNING pg_column_size(data)::int8",
            vec![Arg::ByteaArray(
                batch.iter().map(|h| Some(h.as_bytes().to_vec())).collect(),
            )],
        )?;
        out.chunks += rows.len() as i64;
        for r in rows {
            out.bytes += r.first().map(|v| v.int()).transpose()?.unwrap_or(0);
        }
    }
    // Every chunk left is marked (what was listed and not marked is gone).
    record("local", "gc", out.chunks, out.bytes, Some(out.reachable))?;
    // Orphaning noted before this gc's first mark is dealt with.
    exec(
        "DELETE FROM vc.maintenance WHERE location = 'local' AND what = 'orphaned' AND at < $1::timestamptz",
        vec![Arg::Text(Some(started))],
    )?;
    Ok(out)
}

/// `vc.verify()`: reads every chunk every ref reaches, checking it is there and hashes
/// to its name. Returns (refs, chunks read).
pub fn verify() -> VcResult<(i64, i64)> {
    let roots = ref_roots()?;
    let mut marked = HashSet::new();
    let n = mark(roots.iter().copied(), &mut marked, &mut |hs: &[Hash]| {
        fetch_many(hs)
    })?;
    Ok((roots.len() as i64, n as i64))
}

/// Notes that a ref moved in a way that may leave chunks unreachable (a branch moved
/// other than by one new commit, remote-tracking refs removed or forced): the worker's
/// next look may collect.
pub fn note_orphans() -> VcResult<()> {
    exec(
        "INSERT INTO vc.maintenance (location, what, at, objects, bytes) \
         VALUES ('local', 'orphaned', clock_timestamp(), 1, 0) \
         ON CONFLICT (location, what) DO UPDATE SET at = clock_timestamp(), \
           objects = vc.maintenance.objects + 1",
        vec![],
    )?;
    Ok(())
}

/// Records a maintenance run for `location` ('local', 'remote <name>', 'backup
/// <name>'): `what` is 'gc', 'compact' or 'prune'; for a gc, `kept` is the number of
/// chunks left (the baseline of the worker's garbage estimate).
pub fn record(
    location: &str,
    what: &str,
    objects: i64,
    bytes: i64,
    kept: Option<i64>,
) -> VcResult<()> {
    exec(
        "INSERT INTO vc.maintenance AS m (location, what, at, objects, bytes, kept) \
         VALUES ($1, $2, now(), $3, $4, CASE WHEN $6 THEN $5 END) \
         ON CONFLICT (location, what) DO UPDATE SET at = now(), objects = excluded.objects, \
           bytes = excluded.bytes, kept = excluded.kept",
        vec![
            Arg::Text(Some(location.to_string())),
            Arg::Text(Some(what.to_string())),
            Arg::Int8(objects),
            Arg::Int8(bytes),
            Arg::Int8(kept.unwrap_or(0)),
            Arg::Bool(kept.is_some()),
        ],
    )?;
    Ok(())
}

/// The worker's periodic look: runs `gc()` when the estimated unreachable share of
/// `vc.chunks` passes `vc.gc_threshold`. Returns what it freed, if it ran.
pub fn auto_gc() -> VcResult<Option<GcOutcome>> {
    if !AUTO_GC.get() {
        return Ok(None);
    }
    let row = super::spi::one_row(
        "SELECT (SELECT count(*) FROM vc.chunks), \
                (SELECT kept FROM vc.maintenance WHERE location = 'local' AND what = 'gc'), \
                EXISTS (SELECT 1 FROM vc.maintenance WHERE location = 'local' AND what = 'orphaned')",
        vec![],
    )?
    .unwrap_or_default();
    let orphaned = row.get(2).map(|v| v.bool()).transpose()?.unwrap_or(false);
    let total = row.first().map(|v| v.int()).transpose()?.unwrap_or(0);
    let reachable = match row.get(1) {
        Some(super::spi::Value::Null) | None => None,
        Some(v) => Some(v.int()?),
    };
    let due = match reachable {
        // Never collected: collect once there is something to look at.
        None => total > 0,
        // Growth with no ref moved back or removed is new history, not garbage.
        Some(r) => orphaned && total > 0 && 1.0 - (r as f64 / total as f64) > GC_THRESHOLD.get(),
    };
    if !due {
        return Ok(None);
    }
    Ok(Some(gc()?))
}

thread_local! {
    /// When this process last swept a remote for unlisted objects (per URL).
    static LAST_SWEEP: std::cell::RefCell<std::collections::HashMap<String, Instant>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// How often automatic maintenance prunes a remote after pushes: deletes packs
/// retired past their grace (a listing of the tombstones) and sweeps unlisted
/// objects older than `UNLISTED_GRACE_MS` (a listing of every pack).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Automatic maintenance of a remote after a push to it (by the primary's worker,
/// `vc.push()`, a backup sync): compaction when a level is full (decided from `m`,
/// without reading anything); then, right after a compaction, deletion of packs
/// retired longer than `vc.retired_pack_grace`, and at most once a minute per remote
/// (whichever session or worker pushes: `vc.maintenance` notes the last) that and a
/// sweep of unlisted objects older than an hour. A push itself lists nothing: on S3
/// a listing costs more than a read, and a busy primary pushes at every commit.
pub fn maintain<O: ObjectStore>(
    remote: &Remote<O>,
    location: &str,
    m: &crate::remote::Manifest,
) -> VcResult<()> {
    if !AUTO_COMPACT.get() {
        return Ok(());
    }
    let fan_in = FAN_IN.get().max(2) as usize;
    let sizes: Vec<u64> = m.packs.iter().map(|p| p.bytes).collect();
    let compacted =
        compaction_plan(&sizes, fan_in).is_some() && compact(remote, location)?.packs_merged > 0;
    let url = remote.url().to_string();
    let mut sweep = LAST_SWEEP.with(|l| {
        l.borrow()
            .get(&url)
            .is_none_or(|t| t.elapsed() >= SWEEP_EVERY)
    });
    if sweep {
        // The sweep's note is written in the caller's transaction: a session that swept
        // and stays in its transaction holds the row. Claiming the sweep by a
        // transaction-scoped advisory lock first (never waited for) keeps everyone else
        // from queueing behind it; they skip the sweep instead.
        sweep = super::spi::one_bool(
            "SELECT pg_try_advisory_xact_lock(1885828707, hashtext($1)) AND NOT EXISTS (\
               SELECT 1 FROM vc.maintenance WHERE location = $1 \
               AND what = 'sweep' AND at > clock_timestamp() - make_interval(secs => $2::int))",
            vec![
                Arg::Text(Some(location.to_string())),
                Arg::Int8(SWEEP_EVERY.as_secs() as i64),
            ],
        )?;
        LAST_SWEEP.with(|l| l.borrow_mut().insert(url, Instant::now()));
    }
    if !sweep && !compacted {
        return Ok(());
    }
    let grace = RETIRED_GRACE_MS.get().max(0) as u64;
    let out = remote.prune(grace, sweep.then_some(UNLISTED_GRACE_MS))?;
    if sweep {
        record(
            location,
            "sweep",
            out.objects as i64,
            out.bytes as i64,
            None,
        )?;
    }
    if out.objects > 0 || out.temporaries > 0 {
        record(
            location,
            "prune",
            out.objects as i64,
            out.bytes as i64,
            None,
        )?;
    }
    Ok(())
}

/// `vc.remote_compact()`: merges packs while a level is full.
pub fn compact<O: ObjectStore>(remote: &Remote<O>, location: &str) -> VcResult<CompactOutcome> {
    let out = remote.compact(FAN_IN.get().max(2) as usize)?;
    if out.packs_merged > 0 {
        record(
            location,
            "compact",
            out.packs_merged as i64,
            out.bytes as i64,
            None,
        )?;
    }
    Ok(out)
}

/// `vc.remote_gc()`: deletes packs retired longer than `vc.retired_pack_grace` (or
/// `unlisted_grace_ms`, if shorter), and unlisted packs and temporary files older than
/// `unlisted_grace_ms`.
pub fn prune<O: ObjectStore>(
    remote: &Remote<O>,
    location: &str,
    unlisted_grace_ms: u64,
) -> VcResult<PruneOutcome> {
    let retired = RETIRED_GRACE_MS.get().max(0) as u64;
    let out = remote.prune(retired.min(unlisted_grace_ms), Some(unlisted_grace_ms))?;
    record(
        location,
        "prune",
        out.objects as i64,
        out.bytes as i64,
        None,
    )?;
    Ok(out)
}
