//! Storage that stays bounded: garbage collection of `vc.chunks` online and under
//! SIGKILL, compaction and pruning of remotes and backups (also under SIGKILL), and
//! clone and restore from what they leave.

use pgvc_cluster_tests::{query_scalar, Cluster, RemoteDir};
use postgres::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The one value `sql` returns, as text.
fn q(d: &mut Client, sql: &str) -> String {
    query_scalar(d, &format!("SELECT ({sql})::text"))
}

fn rows(d: &mut Client, table: &str) -> String {
    q(
        d,
        &format!(
            "SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {table} x"
        ),
    )
}

/// `vc.verify()` reads every chunk every ref reaches: (refs, chunks).
fn verify(d: &mut Client) -> (i64, i64) {
    let r = d
        .query_one("SELECT refs, chunks FROM vc.verify()", &[])
        .unwrap();
    (r.get(0), r.get(1))
}

fn gc(d: &mut Client) -> (i64, i64, i64) {
    let r = d
        .query_one("SELECT chunks, bytes, reachable FROM vc.gc()", &[])
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

fn chunks(d: &mut Client) -> i64 {
    q(d, "SELECT count(*) FROM vc.chunks").parse().unwrap()
}

/// Makes garbage: fetches every branch of remote `r` (its chunks and the
/// remote-tracking refs arrive), then forgets the remote (the refs go, the chunks stay,
/// reachable from nothing).
fn fetch_and_forget(d: &mut Client, url: &str) {
    d.batch_execute(&format!(
        "SELECT vc.remote_add('r', '{url}'); SELECT * FROM vc.fetch('r'); SELECT vc.remote_remove('r');"
    ))
    .unwrap();
}

/// A second cluster committing to its own table and pushing to `remote`.
fn upstream(remote: &RemoteDir, rows: i64) -> (Cluster, Client) {
    let b = Cluster::start();
    let mut db = b.connect();
    db.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE TABLE up (id int PRIMARY KEY, v text);
         INSERT INTO up SELECT g, md5(g::text) FROM generate_series(1, {rows}) g;
         SELECT vc.track('up'); SELECT vc.commit('up'); SELECT vc.push('origin');",
        remote.url()
    ))
    .unwrap();
    (b, db)
}

#[test]
fn gc_frees_what_nothing_reaches_and_nothing_else() {
    let remote = RemoteDir::new("gc-free");
    let (_b, mut db) = upstream(&remote, 20_000);
    let a = Cluster::start();
    let mut d = a.connect();
    d.batch_execute(
        "CREATE EXTENSION pgvc;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g;
         SELECT vc.track('t'); SELECT vc.commit('one');
         UPDATE t SET v = v || '!' WHERE id % 10 = 0; SELECT vc.commit('two');",
    )
    .unwrap();
    let before = verify(&mut d);
    let root = q(&mut d, "SELECT vc.root_hash('main')");
    let live = chunks(&mut d);
    fetch_and_forget(&mut d, &remote.url());
    let with_garbage = chunks(&mut d);
    assert!(with_garbage > live);
    let (freed, bytes, reachable) = gc(&mut d);
    assert_eq!(freed, with_garbage - live, "exactly the fetched chunks go");
    assert!(bytes > 0);
    assert_eq!(reachable, live);
    assert_eq!(chunks(&mut d), live);
    assert_eq!(
        verify(&mut d),
        before,
        "every ref reads whole, nothing reachable went"
    );
    assert_eq!(q(&mut d, "SELECT vc.root_hash('main')"), root);
    assert_eq!(q(&mut d, "SELECT count(*) FROM vc.log()"), "2");
    // Nothing more to free; the storage view says what the last gc did.
    assert_eq!(gc(&mut d).0, 0);
    assert_eq!(
        q(&mut d, "SELECT format('%s %s', reachable_share, last_gc_at IS NOT NULL) FROM vc.storage() WHERE location = 'local'"),
        "1 t"
    );
    // The same chunks fetched again after the gc are whole (nothing half-deleted).
    db.batch_execute(
        "UPDATE up SET v = 'x' WHERE id = 1; SELECT vc.commit('more'); SELECT vc.push('origin');",
    )
    .unwrap();
    d.batch_execute(&format!(
        "SELECT vc.remote_add('r', '{}'); SELECT * FROM vc.fetch('r');",
        remote.url()
    ))
    .unwrap();
    verify(&mut d);
    assert_eq!(
        q(&mut d, "SELECT vc.hashof('r/main')"),
        q(&mut db, "SELECT vc.hashof('main')")
    );
}

/// GC online: commits on one session, fetches that keep re-creating and dropping
/// garbage on another, and vc.gc() in a loop on a third. Every ref reads whole at the
/// end, and a final gc keeps exactly what the refs reach.
#[test]
fn gc_during_commits_and_fetches_loses_nothing() {
    let remote = RemoteDir::new("gc-online");
    let (_b, mut db) = upstream(&remote, 5_000);
    let a = Cluster::start();
    let mut d = a.connect();
    d.batch_execute(
        "CREATE EXTENSION pgvc;
         CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 2000) g;
         SELECT vc.track('t'); SELECT vc.commit('start');",
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let committer = {
        let (mut c, stop) = (a.connect(), stop.clone());
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                c.batch_execute(&format!(
                    "UPDATE t SET n = n + 1 WHERE id = {}; SELECT vc.commit('c{n}');",
                    n % 2000 + 1
                ))
                .unwrap();
            }
            n
        })
    };
    let fetcher = {
        let (mut c, stop, url) = (a.connect(), stop.clone(), remote.url());
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                fetch_and_forget(&mut c, &url);
                n += 1;
                // Garbage a gc could free (a fetch right away revives what it finds).
                thread::sleep(Duration::from_millis(100));
            }
            n
        })
    };
    let collector = {
        let (mut c, stop) = (a.connect(), stop.clone());
        thread::spawn(move || {
            let (mut runs, mut freed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                freed += gc(&mut c).0;
                runs += 1;
            }
            (runs, freed)
        })
    };
    // Upstream keeps moving so fetches bring new chunks too.
    let until = Instant::now() + Duration::from_secs(8);
    let mut k = 0;
    while Instant::now() < until {
        k += 1;
        db.batch_execute(&format!(
            "UPDATE up SET v = 'u{k}' WHERE id = {}; SELECT vc.commit('u{k}'); SELECT vc.push('origin');",
            k % 5000 + 1
        ))
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let commits = committer.join().unwrap();
    let fetches = fetcher.join().unwrap();
    let (runs, freed) = collector.join().unwrap();
    assert!(
        commits > 10 && fetches > 2 && runs > 2 && freed > 0,
        "commits {commits}, fetches {fetches}, gc runs {runs}, freed {freed}"
    );
    // Every ref whole; history complete; the table's rows are the last commit's.
    let (refs, reachable) = verify(&mut d);
    assert!(refs >= 1);
    assert_eq!(
        q(&mut d, "SELECT count(*) FROM vc.log()"),
        (commits + 1).to_string()
    );
    assert_eq!(q(&mut d, "SELECT count(*) FROM vc.status()"), "0");
    assert_eq!(q(&mut d, "SELECT sum(n) FROM t"), commits.to_string());
    assert_eq!(
        q(&mut d, "SELECT sum(n) FROM vc.as_of(NULL::t, 'HEAD')"),
        commits.to_string()
    );
    // A final gc keeps exactly the reachable set, and it is still whole.
    let (_, _, kept) = gc(&mut d);
    assert_eq!(kept, reachable);
    assert_eq!(chunks(&mut d), reachable);
    assert_eq!(verify(&mut d).1, reachable);
}

/// SIGKILL of the backend running vc.gc() at several points (the whole server
/// restarts): every ref reads whole afterwards, and a gc then completes.
#[test]
fn sigkill_during_gc_leaves_every_ref_readable() {
    let remote = RemoteDir::new("gc-kill");
    let (_b, _db) = upstream(&remote, 200_000);
    let a = Cluster::start();
    let mut d = a.connect();
    d.batch_execute(
        "CREATE EXTENSION pgvc;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
         SELECT vc.track('t'); SELECT vc.commit('one');
         UPDATE t SET v = v || '.' WHERE id % 3 = 0; SELECT vc.commit('two');",
    )
    .unwrap();
    let root = q(&mut d, "SELECT vc.root_hash('main')");
    let (_, reachable) = verify(&mut d);
    // How long a gc of that much garbage takes here: the kills land inside it.
    fetch_and_forget(&mut d, &remote.url());
    let t = Instant::now();
    assert!(gc(&mut d).0 > 0);
    let took = t.elapsed();
    let mut hits = 0;
    for frac in [0.05, 0.4, 0.8] {
        fetch_and_forget(&mut d, &remote.url());
        let mut victim = a.connect();
        let pid: i32 = victim
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        let runner = thread::spawn(move || victim.batch_execute("SELECT * FROM vc.gc()"));
        thread::sleep(took.mul_f64(frac));
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        let outcome = runner.join().unwrap();
        hits += usize::from(killed && outcome.is_err());
        d = a.reconnect_after_crash(d);
        assert_eq!(
            verify(&mut d).1,
            reachable,
            "after a kill at {frac} of a gc"
        );
        assert_eq!(q(&mut d, "SELECT vc.root_hash('main')"), root);
    }
    assert!(
        hits >= 2,
        "only {hits} kills landed inside a gc of {took:?}"
    );
    // Whatever the kills interrupted, a gc now leaves exactly what the refs reach.
    let (_, _, kept) = gc(&mut d);
    assert_eq!(kept, reachable);
    assert_eq!(chunks(&mut d), reachable);
    assert_eq!(verify(&mut d).1, reachable);
}

/// Objects in the remote: every file but the backend's own lock.
fn files(r: &RemoteDir) -> usize {
    r.files()
        .iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .count()
}

fn packs_listed(d: &mut Client, location: &str) -> i64 {
    q(
        d,
        &format!("SELECT objects FROM vc.storage() WHERE location = '{location}'"),
    )
    .parse()
    .unwrap()
}

/// Pushes and backup syncs without automatic compaction pile up packs; compaction
/// merges them, pruning deletes what it replaced, and a clone and a restore from what
/// is left give the same rows and hashes. With automatic compaction on, pushes keep
/// the count down by themselves.
#[test]
fn compacted_and_pruned_remotes_and_backups_clone_and_restore_identically() {
    let remote = RemoteDir::new("compact-remote");
    let backup = RemoteDir::new("compact-backup");
    let a = Cluster::start_with(&["vc.auto_compact = off", "vc.retired_pack_grace = 0"]);
    let mut d = a.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}'); SELECT vc.backup_add('bk', '{}');
         CREATE TABLE t (id int PRIMARY KEY, v text, big text);
         INSERT INTO t SELECT g, 'v' || g, NULL FROM generate_series(1, 3000) g;
         SELECT vc.track('t'); SELECT vc.commit('base'); SELECT vc.push('origin');",
        remote.url(),
        backup.url()
    ))
    .unwrap();
    for i in 0..30 {
        d.batch_execute(&format!(
            "UPDATE t SET v = 'c{i}', big = repeat('x', 3000) WHERE id % 30 = {i};
             SELECT vc.commit('c{i}'); SELECT vc.push('origin'); SELECT * FROM vc.backup_sync('bk');"
        ))
        .unwrap();
    }
    assert!(packs_listed(&mut d, "remote origin") >= 31);
    let bk_packs = packs_listed(&mut d, "backup bk");
    assert!(bk_packs >= 30, "{bk_packs}");
    // Compact both; prune with no grace.
    let merged: i64 = q(
        &mut d,
        "SELECT packs_merged FROM vc.remote_compact('origin')",
    )
    .parse()
    .unwrap();
    assert!(merged >= 8);
    let listed = packs_listed(&mut d, "remote origin");
    assert!(listed < 8, "{listed} packs after compaction");
    assert!(
        q(&mut d, "SELECT packs_merged FROM vc.backup_compact('bk')")
            .parse::<i64>()
            .unwrap()
            >= 8
    );
    let pruned: i64 = q(
        &mut d,
        "SELECT objects FROM vc.remote_gc('origin', interval '0')",
    )
    .parse()
    .unwrap();
    assert!(pruned >= 16, "{pruned}");
    q(
        &mut d,
        "SELECT objects FROM vc.backup_gc('bk', interval '0')",
    );
    assert_eq!(
        files(&remote) as i64,
        2 * listed + 1,
        "packs, indexes and the manifest"
    );
    assert_eq!(
        q(
            &mut d,
            "SELECT retired_packs FROM vc.storage() WHERE location = 'remote origin'"
        ),
        "0"
    );
    let root = q(&mut d, "SELECT vc.root_hash('main')");
    let data = rows(&mut d, "t");
    // Clone and restore from what is left.
    let c = Cluster::start();
    let mut dc = c.connect();
    dc.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    assert_eq!(q(&mut dc, "SELECT vc.root_hash('main')"), root);
    assert_eq!(rows(&mut dc, "t"), data);
    assert_eq!(q(&mut dc, "SELECT count(*) FROM vc.log()"), "31");
    verify(&mut dc);
    dc.batch_execute("CREATE DATABASE restored").unwrap();
    let mut dr = c.connect_db("restored");
    dr.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.backup_restore('{}')",
        backup.url()
    ))
    .unwrap();
    assert_eq!(q(&mut dr, "SELECT vc.root_hash('main')"), root);
    assert_eq!(rows(&mut dr, "t"), data);
    verify(&mut dr);
    // Automatic compaction: pushes keep the remote at a few packs per level.
    d.batch_execute("ALTER SYSTEM SET vc.auto_compact = on")
        .unwrap();
    d.batch_execute("SELECT pg_reload_conf()").unwrap();
    thread::sleep(Duration::from_millis(300));
    for i in 0..40 {
        d.batch_execute(&format!(
            "UPDATE t SET v = 'a{i}' WHERE id = {}; SELECT vc.commit('a{i}'); SELECT vc.push('origin');",
            i + 1
        ))
        .unwrap();
    }
    let listed = packs_listed(&mut d, "remote origin");
    assert!(listed < 16, "{listed} packs with automatic compaction");
    assert!(files(&remote) < 60, "{} files", files(&remote));
    dc.batch_execute("SELECT vc.pull('origin')").unwrap();
    assert_eq!(rows(&mut dc, "t"), rows(&mut d, "t"));
}

/// SIGKILL of a backend in the middle of a compaction: the remote stays whole (the
/// manifest swap is the only change readers see), and compaction and pruning then
/// finish the job.
#[test]
fn sigkill_during_compaction_leaves_the_remote_whole() {
    let remote = RemoteDir::new("compact-kill");
    let a = Cluster::start_with(&["vc.auto_compact = off", "vc.retired_pack_grace = 0"]);
    let mut d = a.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
         SELECT vc.track('t'); SELECT vc.commit('base'); SELECT vc.push('origin');",
        remote.url()
    ))
    .unwrap();
    for i in 0..24 {
        d.batch_execute(&format!(
            "UPDATE t SET v = md5(v || '{i}') WHERE id % 24 = {i}; SELECT vc.commit('c{i}'); SELECT vc.push('origin');"
        ))
        .unwrap();
    }
    let root = q(&mut d, "SELECT vc.root_hash('main')");
    for delay_ms in [5u64, 40, 150] {
        let mut victim = a.connect();
        let pid: i32 = victim
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        let runner = thread::spawn(move || {
            victim.batch_execute("SELECT * FROM vc.remote_compact('origin')")
        });
        thread::sleep(Duration::from_millis(delay_ms));
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        let _ = runner.join().unwrap();
        d = a.reconnect_after_crash(d);
        // Whole: a fresh clone reads every chunk of the head.
        let c = Cluster::start();
        let mut dc = c.connect();
        dc.batch_execute(&format!(
            "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
            remote.url()
        ))
        .unwrap();
        assert_eq!(
            q(&mut dc, "SELECT vc.root_hash('main')"),
            root,
            "after a kill at {delay_ms} ms"
        );
    }
    q(
        &mut d,
        "SELECT packs_merged FROM vc.remote_compact('origin')",
    );
    q(
        &mut d,
        "SELECT objects FROM vc.remote_gc('origin', interval '0')",
    );
    let listed = packs_listed(&mut d, "remote origin");
    assert_eq!(
        files(&remote) as i64,
        2 * listed + 1,
        "orphans of killed compactions pruned"
    );
    let c = Cluster::start();
    let mut dc = c.connect();
    dc.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    assert_eq!(q(&mut dc, "SELECT vc.root_hash('main')"), root);
}

/// Two servers compacting one remote at once, while one of them pushes and a third
/// fetches: every round leaves a remote that clones whole.
#[test]
fn two_servers_compact_one_remote_at_once() {
    let remote = RemoteDir::new("compact-two");
    let conf = &["vc.auto_compact = off", "vc.retired_pack_grace = 0"];
    let a = Cluster::start_with(conf);
    let b = Cluster::start_with(conf);
    let mut da = a.connect();
    da.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
         SELECT vc.track('t'); SELECT vc.commit('base'); SELECT vc.push('origin');",
        remote.url()
    ))
    .unwrap();
    let mut db = b.connect();
    db.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}');",
        remote.url()
    ))
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut compactors = Vec::new();
    for c in [&a, &b] {
        let (mut d, stop) = (c.connect(), stop.clone());
        compactors.push(thread::spawn(move || {
            let mut merged = 0i64;
            while !stop.load(Ordering::Relaxed) {
                merged += q(
                    &mut d,
                    "SELECT packs_merged FROM vc.remote_compact('origin')",
                )
                .parse::<i64>()
                .unwrap();
                q(
                    &mut d,
                    "SELECT objects FROM vc.remote_gc('origin', interval '1 hour')",
                );
                thread::sleep(Duration::from_millis(5));
            }
            merged
        }));
    }
    let fetcher = {
        let (mut d, stop) = (b.connect(), stop.clone());
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                d.batch_execute("SELECT * FROM vc.fetch('origin')").unwrap();
                n += 1;
            }
            n
        })
    };
    for i in 0..80 {
        da.batch_execute(&format!(
            "UPDATE t SET v = 'r{i}' WHERE id = {}; SELECT vc.commit('r{i}'); SELECT vc.push('origin');",
            i * 7 % 2000 + 1
        ))
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let merged: i64 = compactors.into_iter().map(|t| t.join().unwrap()).sum();
    let fetches = fetcher.join().unwrap();
    assert!(
        merged > 0 && fetches > 0,
        "merged {merged}, fetches {fetches}"
    );
    db.batch_execute("SELECT vc.pull('origin')").unwrap();
    assert_eq!(
        q(&mut db, "SELECT vc.root_hash('main')"),
        q(&mut da, "SELECT vc.root_hash('main')")
    );
    assert_eq!(rows(&mut db, "t"), rows(&mut da, "t"));
    verify(&mut db);
    let c = Cluster::start();
    let mut dc = c.connect();
    dc.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    assert_eq!(rows(&mut dc, "t"), rows(&mut da, "t"));
    assert_eq!(q(&mut dc, "SELECT count(*) FROM vc.log()"), "81");
}

/// The worker collects by itself, but only when a ref moved in a way that can leave
/// garbage: a busy primary whose chunks only grow by new history is left alone.
#[test]
fn the_worker_collects_when_refs_leave_garbage_and_not_for_new_history() {
    let remote = RemoteDir::new("gc-auto");
    let (_b, _db) = upstream(&remote, 20_000);
    let a = Cluster::start_with(&["vc.gc_check_interval = 1000", "vc.gc_threshold = 0.1"]);
    let mut d = a.connect();
    d.batch_execute(
        "CREATE EXTENSION pgvc;
         CREATE TABLE t (id int PRIMARY KEY, v int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 3000) g;
         SELECT vc.track('t'); SELECT vc.commit('one');",
    )
    .unwrap();
    let gcs = |d: &mut Client| {
        q(
            d,
            "SELECT count(*) FROM vc.maintenance WHERE location = 'local' AND what = 'gc'",
        )
    };
    let last_gc = |d: &mut Client| {
        q(d, "SELECT coalesce(max(at)::text, '') FROM vc.maintenance WHERE location = 'local' AND what = 'gc'")
    };
    // The first look collects once (nothing known yet).
    let deadline = Instant::now() + Duration::from_secs(20);
    while gcs(&mut d) == "0" && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    let first = last_gc(&mut d);
    assert!(!first.is_empty(), "the worker never collected");
    // New history only: the chunk count grows far past the threshold, no gc.
    for i in 0..40 {
        d.batch_execute(&format!(
            "UPDATE t SET v = {i} + 1 WHERE id % 40 = {i}; SELECT vc.commit('c{i}');"
        ))
        .unwrap();
    }
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        last_gc(&mut d),
        first,
        "collected although nothing became garbage"
    );
    // Garbage: fetched, then the remote removed. The worker collects it.
    let before = chunks(&mut d);
    fetch_and_forget(&mut d, &remote.url());
    assert!(chunks(&mut d) > before);
    let deadline = Instant::now() + Duration::from_secs(20);
    while chunks(&mut d) > before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        chunks(&mut d),
        before,
        "the worker did not collect the garbage"
    );
    assert_ne!(last_gc(&mut d), first);
    verify(&mut d);
}

/// Automatic maintenance after a push prunes and sweeps the remote for unlisted
/// debris (a pack left by an interrupted push) at most once a minute per remote,
/// whichever session pushes: sessions that push once each no longer list the remote
/// each time.
/// Debris older than the grace is removed by the first push, kept by the pushes of
/// new sessions within the period, and removed again once it has passed.
#[test]
fn automatic_sweeps_run_once_per_period_whichever_session_pushes() {
    let remote = RemoteDir::new("sweep-period");
    let a = Cluster::start();
    let mut d = a.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g;
         SELECT vc.track('t'); SELECT vc.commit('one');",
        remote.url()
    ))
    .unwrap();
    // Debris: an unlisted pack two hours old, as a push killed before its manifest
    // swap leaves.
    let plant = |n: u32| {
        let p = remote
            .0
            .join(format!("packs/{}.pack", format!("{n:02}").repeat(32)));
        std::fs::write(&p, b"debris").unwrap();
        let ok = std::process::Command::new("touch")
            .args(["-d", "2 hours ago", p.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(ok.success());
        p
    };
    let push_in_a_new_session = |i: u32| {
        let mut s = a.connect();
        s.batch_execute(&format!(
            "UPDATE t SET v = 'x{i}' WHERE id = {i}; SELECT vc.commit('c{i}'); SELECT vc.push();"
        ))
        .unwrap();
    };
    // The first push sweeps (nothing to find yet) and notes it.
    d.batch_execute("SELECT vc.push()").unwrap();
    let sweeps = "SELECT count(*) FROM vc.maintenance WHERE what = 'sweep' \
                  AND location = 'remote origin' AND at > now() - interval '1 minute'";
    assert_eq!(q(&mut d, sweeps), "1");
    let first = plant(1);
    for i in 1..4 {
        push_in_a_new_session(i);
    }
    assert!(
        first.exists(),
        "pushes of new sessions within the period do not sweep again"
    );
    // The period passes: the next push, whichever session makes it, sweeps.
    d.batch_execute(
        "UPDATE vc.maintenance SET at = at - interval '2 minutes' WHERE what = 'sweep'",
    )
    .unwrap();
    push_in_a_new_session(4);
    assert!(
        !first.exists(),
        "the next push after the period swept the debris"
    );
    assert_eq!(q(&mut d, sweeps), "1");
    let second = plant(2);
    push_in_a_new_session(5);
    assert!(second.exists(), "and the period starts again");
    // Nothing pushed was touched: a clone has every commit.
    let b = Cluster::start();
    let mut db = b.connect();
    db.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    assert_eq!(rows(&mut db, "t"), rows(&mut d, "t"));
}
