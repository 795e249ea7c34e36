//! Backups between real clusters: everything (branches, tags, uncommitted changes,
//! sequences) comes back; incremental syncs; verify finds damage; restore refuses a
//! damaged backup before touching anything.

use pgvc_cluster_tests::{query_scalar, wait_for, Cluster, RemoteDir, S3Remote, TestRemote};
use postgres::Client;
use std::path::PathBuf;
use std::process::Command;

fn db(c: &Cluster) -> Client {
    let mut d = c.connect();
    d.batch_execute("CREATE EXTENSION pgvc").unwrap();
    d
}

fn state(d: &mut Client) -> String {
    d.batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        .unwrap();
    query_scalar(
        d,
        "SELECT concat_ws(E'\\n',
           (SELECT string_agg(x::text, ',' ORDER BY x.id) FROM acct x),
           (SELECT string_agg(x::text, ',' ORDER BY x.id) FROM notes x),
           (SELECT string_agg(format('%s %s/%s/%s', table_name, inserted, updated, deleted), ',' ORDER BY table_name) FROM vc.status()),
           (SELECT string_agg(commit_hash || message, ',') FROM vc.log()),
           (SELECT string_agg(kind || ':' || name || '=' || encode(hash, 'hex'), ',' ORDER BY name) FROM vc.refs),
           (SELECT branch FROM vc.head),
           (SELECT last_value::text FROM notes_id_seq))",
    )
}

#[test]
fn restore_gives_back_everything_including_uncommitted_changes() {
    restore_everything(&RemoteDir::new("full"));
}

/// The same through a bucket of a real S3-compatible server.
#[test]
fn restore_from_a_bucket_gives_back_everything() {
    restore_everything(&S3Remote::new("full"));
}

fn restore_everything(dir: &dyn TestRemote) {
    let conf = dir.conf();
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    let a = Cluster::start_with(&conf);
    let mut da = db(&a);
    da.batch_execute(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, 100 FROM generate_series(1, 1000) g;
         CREATE TABLE notes (id serial PRIMARY KEY, body text);
         INSERT INTO notes (body) VALUES ('first'), ('second');
         SELECT vc.track('acct'); SELECT vc.track('notes'); SELECT vc.commit('open');
         INSERT INTO vc.refs SELECT 'v1', 'tag', hash FROM vc.refs WHERE name = 'main';
         UPDATE acct SET balance = 50 WHERE id <= 10; SELECT vc.commit('fees');
         INSERT INTO vc.refs SELECT 'feature', 'branch', hash FROM vc.refs WHERE name = 'main';
         -- uncommitted work:
         UPDATE acct SET balance = 0 WHERE id = 1000; DELETE FROM acct WHERE id = 999;
         INSERT INTO notes (body) VALUES ('draft');
         SELECT vc.backup_add('nightly', '{}');",
        dir.url()
    ))
    .unwrap();
    let synced = query_scalar(
        &mut da,
        "SELECT chunks_written::text FROM vc.backup_sync('nightly')",
    );
    assert_ne!(synced, "0");
    assert_eq!(
        query_scalar(
            &mut da,
            "SELECT coalesce((last_sync_commit = vc.hashof('HEAD'))::text, 'none') FROM vc.backups()"
        ),
        "true"
    );
    let b = Cluster::start_with(&conf);
    let mut dbb = db(&b);
    dbb.batch_execute(&format!("SELECT vc.backup_restore('{}')", dir.url()))
        .unwrap();
    assert_eq!(state(&mut dbb), state(&mut da));
    assert!(
        state(&mut dbb).contains("public.acct 0/1/1"),
        "{}",
        state(&mut dbb)
    );
    // A restored database is a normal one: commit the restored working set.
    query_scalar(&mut dbb, "SELECT vc.commit('after restore')");
    assert_eq!(
        query_scalar(&mut dbb, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    // Restore refuses a database with versioned tables unless forced.
    let e = dbb
        .batch_execute(&format!("SELECT vc.backup_restore('{}')", dir.url()))
        .unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "55000");
    dbb.batch_execute(&format!(
        "SELECT vc.backup_restore('{}', force => true)",
        dir.url()
    ))
    .unwrap();
    assert_eq!(state(&mut dbb), state(&mut da));
}

#[test]
fn syncs_are_incremental_and_verify_finds_damage() {
    let dir = RemoteDir::new("incr");
    let a = Cluster::start();
    let mut da = db(&a);
    da.batch_execute(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, g FROM generate_series(1, 20000) g;
         SELECT vc.track('acct'); SELECT vc.commit('open');
         SELECT vc.backup_add('b', '{}');",
        dir.url()
    ))
    .unwrap();
    da.batch_execute("SELECT * FROM vc.backup_sync('b')")
        .unwrap();
    let files = dir.files();
    // Nothing changed: nothing written, not even a file.
    assert_eq!(
        query_scalar(
            &mut da,
            "SELECT format('%s/%s', chunks_written, bytes_written) FROM vc.backup_sync('b')"
        ),
        "0/0"
    );
    assert_eq!(dir.files(), files);
    // A small uncommitted change writes a few chunks only.
    da.batch_execute("UPDATE acct SET balance = -1 WHERE id = 777")
        .unwrap();
    let n: i64 = query_scalar(
        &mut da,
        "SELECT chunks_written::text FROM vc.backup_sync('b')",
    )
    .parse()
    .unwrap();
    assert!((1..=10).contains(&n), "{n} chunks for a one-row change");
    assert_eq!(
        query_scalar(&mut da, "SELECT ok::text FROM vc.backup_verify('b')"),
        "true"
    );
    let checked: i64 = query_scalar(
        &mut da,
        "SELECT chunks_checked::text FROM vc.backup_verify('b')",
    )
    .parse()
    .unwrap();
    assert!(checked > 10, "{checked}");
    // Damage: flip a byte in the big pack of the first sync, delete the newest pack
    // (it holds the current working set).
    let mut packs: Vec<PathBuf> = dir
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    assert!(packs.len() >= 2);
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let big = packs.last().unwrap().clone();
    let newest = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap()
        .clone();
    assert_ne!(newest, big);
    let mut data = std::fs::read(&big).unwrap();
    let i = data.len() / 2;
    data[i] ^= 1;
    std::fs::write(&big, data).unwrap();
    std::fs::remove_file(&newest).unwrap();
    let row = da
        .query_one("SELECT ok, problems FROM vc.backup_verify('b')", &[])
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    let problems: Vec<String> = row.get(1);
    assert!(
        problems.iter().any(|p| p.contains("corrupt")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("missing")),
        "{problems:?}"
    );
    // Restore from the damaged backup fails before creating any table.
    let b = Cluster::start();
    let mut dbb = db(&b);
    assert!(dbb
        .batch_execute(&format!("SELECT vc.backup_restore('{}')", dir.url()))
        .is_err());
    assert_eq!(
        query_scalar(
            &mut dbb,
            "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    assert_eq!(
        query_scalar(&mut dbb, "SELECT count(*)::text FROM vc.refs"),
        "0"
    );
}

/// A cluster whose worker runs, with table `acct` (100 rows) committed and backup
/// `name` added (not scheduled).
fn worker_with_backup(name: &str, target: &dyn TestRemote) -> (Cluster, Client) {
    let a = Cluster::start_for(target, &[]);
    let mut da = db(&a);
    assert_eq!(
        wait_for(
            &mut da,
            "SELECT state FROM vc.worker_status()",
            "running",
            20
        ),
        "running"
    );
    da.batch_execute(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, 1 FROM generate_series(1, 100) g;
         SELECT vc.track('acct'); SELECT vc.commit('open');
         SELECT vc.backup_add('{name}', '{}');",
        target.url()
    ))
    .unwrap();
    (a, da)
}

#[test]
fn the_worker_runs_scheduled_backups_and_shows_their_errors() {
    scheduled_backups(&RemoteDir::new("sched"));
}

/// The same with backups in buckets of a real S3-compatible server.
#[test]
fn the_worker_runs_scheduled_backups_to_a_bucket_and_shows_their_errors() {
    scheduled_backups(&S3Remote::new("sched"));
}

fn scheduled_backups(good: &dyn TestRemote) {
    let (_a, mut da) = worker_with_backup("often", good);
    da.batch_execute("SELECT vc.backup_schedule('often', interval '1 second')")
        .unwrap();
    assert_eq!(
        wait_for(
            &mut da,
            "SELECT coalesce((last_sync_commit = vc.hashof('HEAD'))::text, 'none') FROM vc.backups()",
            "true",
            20
        ),
        "true"
    );
    // A new commit reaches the backup by itself.
    da.batch_execute("UPDATE acct SET balance = 2 WHERE id = 1; SELECT vc.commit('two')")
        .unwrap();
    assert_eq!(
        wait_for(
            &mut da,
            "SELECT coalesce((last_sync_commit = vc.hashof('HEAD'))::text, 'none') FROM vc.backups()",
            "true",
            20
        ),
        "true"
    );
    assert_eq!(
        query_scalar(&mut da, "SELECT ok::text FROM vc.backup_verify('often')"),
        "true"
    );
    // An unwritable target: the error is visible, and the worker keeps going.
    // (file://, a read-only directory; s3://, a bucket deleted after the add, which
    // checks it: both named in the error by their tag.)
    let broken = good.sibling("sched-broken");
    da.batch_execute(&format!(
        "SELECT vc.backup_add('broken', '{}')",
        broken.url()
    ))
    .unwrap();
    broken.set_writable(false);
    da.batch_execute("SELECT vc.backup_schedule('broken', interval '1 second')")
        .unwrap();
    assert_eq!(
        wait_for(
            &mut da,
            "SELECT (last_error IS NOT NULL)::text FROM vc.backup_status() WHERE name = 'broken'",
            "true",
            20
        ),
        "true"
    );
    let err = query_scalar(
        &mut da,
        "SELECT last_error FROM vc.backup_status() WHERE name = 'broken'",
    );
    assert!(err.contains("sched-broken"), "{err}");
    assert_eq!(
        query_scalar(&mut da, "SELECT state FROM vc.worker_status()"),
        "running"
    );
    // Fixed: the next attempt succeeds and clears the error.
    broken.set_writable(true);
    assert_eq!(
        wait_for(&mut da, "SELECT (last_error IS NULL AND last_sync_at IS NOT NULL)::text FROM vc.backup_status() WHERE name = 'broken'", "true", 20),
        "true"
    );
    // Stopping the schedule.
    da.batch_execute("SELECT vc.backup_schedule('broken', NULL)")
        .unwrap();
    assert_eq!(
        query_scalar(
            &mut da,
            "SELECT (every IS NULL)::text FROM vc.backup_status() WHERE name = 'broken'"
        ),
        "true"
    );
}

#[test]
fn a_sync_killed_midway_leaves_the_previous_backup_restorable() {
    sync_killed_midway(&RemoteDir::new("kill"));
}

/// The same to a bucket of a real S3-compatible server: killed in the middle of the
/// multipart upload of the pack.
#[test]
fn a_sync_to_a_bucket_killed_midway_leaves_the_previous_backup_restorable() {
    sync_killed_midway(&S3Remote::new("kill"));
}

fn sync_killed_midway(dir: &dyn TestRemote) {
    let a = Cluster::start_for(dir, &[]);
    let mut da = db(&a);
    da.batch_execute(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL, note text);
         INSERT INTO acct SELECT g, 1, 'x' FROM generate_series(1, 100) g;
         CREATE TABLE notes (id serial PRIMARY KEY, body text);
         SELECT vc.track('acct'); SELECT vc.track('notes'); SELECT vc.commit('small');
         SELECT vc.backup_add('b', '{}'); SELECT * FROM vc.backup_sync('b');",
        dir.url()
    ))
    .unwrap();
    let before = state(&mut da);
    let packs_before = dir.pack_count();
    // A large uncommitted change whose sync takes a while, killed while it writes.
    da.batch_execute(
        "INSERT INTO acct SELECT g, 2, (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 12) WHERE g > 0)
         FROM generate_series(101, 300000) g;",
    )
    .unwrap();
    let pid = query_scalar(&mut da, "SELECT pg_backend_pid()::text");
    let syncer = std::thread::spawn(move || {
        da.batch_execute("SELECT * FROM vc.backup_sync('b')")
            .is_err()
    });
    // The working set goes out in packs of 8 MiB, each listed as it lands, the refs
    // moving only at the end: once one has landed, the sync is midway. (Not
    // `writing()`: to a bucket those packs are single PUTs, not observable in
    // flight; the only multipart upload is the compaction after the refs moved.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while dir.pack_count() <= packs_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    assert!(syncer.join().unwrap());
    let b = Cluster::start_for(dir, &[]);
    let mut dbb = db(&b);
    dbb.batch_execute(&format!("SELECT vc.backup_restore('{}')", dir.url()))
        .unwrap();
    assert_eq!(state(&mut dbb), before);
    assert_eq!(
        query_scalar(
            &mut dbb,
            &format!("SELECT ok::text FROM vc.backup_verify('{}')", dir.url())
        ),
        "true"
    );
}

#[test]
fn a_sync_during_transfers_is_one_consistent_snapshot() {
    let dir = RemoteDir::new("snap");
    let a = Cluster::start();
    let mut da = db(&a);
    da.batch_execute(&format!(
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, 100 FROM generate_series(1, 20000) g;
         CREATE TABLE notes (id serial PRIMARY KEY, body text);
         SELECT vc.track('acct'); SELECT vc.commit('open');
         SELECT vc.backup_add('b', '{}');",
        dir.url()
    ))
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|seed| {
            let mut w = a.connect();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let from = (n * 7919 + seed * 13) % 20000 + 1;
                    let to = (n * 104729 + seed * 7) % 20000 + 1;
                    w.batch_execute(&format!(
                        "BEGIN; UPDATE acct SET balance = balance - 1 WHERE id = {from};
                         UPDATE acct SET balance = balance + 1 WHERE id = {to}; COMMIT;"
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        da.batch_execute("SELECT * FROM vc.backup_sync('b')")
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let b = Cluster::start();
    let mut dbb = db(&b);
    dbb.batch_execute(&format!("SELECT vc.backup_restore('{}')", dir.url()))
        .unwrap();
    assert_eq!(
        query_scalar(&mut dbb, "SELECT sum(balance)::text FROM acct"),
        "2000000"
    );
    assert_ne!(
        query_scalar(
            &mut dbb,
            "SELECT count(*)::text FROM acct WHERE balance <> 100"
        ),
        "0",
        "the restored state includes transfers made before the last sync"
    );
}

/// Finding 8: a scheduled sync that kills the worker (the OOM killer, here SIGKILL
/// while the sync waits on the backup's lock) was retried as soon as the worker came
/// back, in a loop. Now the attempt is committed before the sync starts; the next look
/// finds it unfinished, counts a failure, says so, and backs off.
#[test]
fn a_sync_that_kills_the_worker_is_backed_off_not_looped() {
    let target = RemoteDir::new("sched-killed");
    let (a, mut da) = worker_with_backup("killer", &target);
    // The sync will wait on this lock (at its manifest swap) until killed.
    std::fs::create_dir_all(&target.0).unwrap();
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target.0.join(".lock"))
        .unwrap();
    // The server (OS user postgres) must be able to open it too.
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres", target.0.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success());
    holder.lock().unwrap();
    da.batch_execute("SELECT vc.backup_schedule('killer', interval '2 seconds')")
        .unwrap();
    assert_eq!(
        wait_for(
            &mut da,
            "SELECT (attempt_started_at IS NOT NULL)::text FROM vc.backups",
            "true",
            20
        ),
        "true"
    );
    let pid = query_scalar(&mut da, "SELECT pid::text FROM vc.worker_status()");
    let ok = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(ok.success());
    // The postmaster ends every backend (this session's too) and restarts; then the
    // worker comes back (10 s later).
    let mut da = a.reconnect_after_crash(da);
    let seen = wait_for(
        &mut da,
        "SELECT coalesce(last_error LIKE '%did not finish%', false)::text FROM vc.backups",
        "true",
        60,
    );
    assert_eq!(seen, "true");
    assert_eq!(
        query_scalar(&mut da, "SELECT (failures >= 1)::text FROM vc.backups"),
        "true"
    );
    // Backed off: the next try waits 2 s * 2^failures after the last one.
    assert_eq!(
        query_scalar(
            &mut da,
            "SELECT (next_sync_at >= last_attempt_at + interval '4 seconds')::text FROM vc.backup_status()"
        ),
        "true"
    );
    // Once the cause is gone, the schedule recovers by itself.
    drop(holder);
    assert_eq!(
        wait_for(
            &mut da,
            "SELECT coalesce((last_sync_commit = vc.hashof('HEAD') AND failures = 0)::text, 'false') FROM vc.backups",
            "true",
            120
        ),
        "true"
    );
}
