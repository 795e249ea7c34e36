//! Replication between real clusters: a primary pushing on commit, standbys applying
//! in their background worker, promotion, fencing of the old primary (killed with
//! SIGKILL), rejoin, push failures and bad settings.

use pgvc_cluster_tests::{query_scalar, wait_for, Cluster, RemoteDir, S3Remote, TestRemote};
use postgres::Client;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const PRIMARY: &[&str] = &[
    "vc.replicate_to_remote = 'origin'",
    "vc.replication_interval = 100",
];
const STANDBY: &[&str] = &[
    "vc.read_replica_remote = 'origin'",
    "vc.replication_interval = 100",
];

/// A primary with table `acct` (1000 rows, balance 100 each) committed and pushed.
fn primary(remote: &dyn TestRemote) -> (Cluster, Client) {
    let p = Cluster::start_for(remote, PRIMARY);
    let mut d = p.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL, note text);
         INSERT INTO acct SELECT g, 100, 'n' || g FROM generate_series(1, 1000) g;
         CREATE TABLE events (id bigserial PRIMARY KEY, what text);
         SELECT vc.track('acct'); SELECT vc.track('events');
         SELECT vc.commit('init');",
        remote.url()
    ))
    .unwrap();
    (p, d)
}

fn standby(remote: &dyn TestRemote) -> (Cluster, Client) {
    let s = Cluster::start_for(remote, STANDBY);
    let mut d = s.connect();
    d.batch_execute("CREATE EXTENSION pgvc").unwrap();
    d.batch_execute(&format!("SELECT vc.clone('{}')", remote.url()))
        .unwrap();
    (s, d)
}

fn head(d: &mut Client) -> String {
    query_scalar(d, "SELECT vc.hashof('main')")
}

fn rows(d: &mut Client, table: &str) -> String {
    query_scalar(
        d,
        &format!("SELECT coalesce(string_agg(x::text, ',' ORDER BY x::text), '') FROM {table} x"),
    )
}

fn status(d: &mut Client, col: &str) -> String {
    query_scalar(
        d,
        &format!("SELECT coalesce({col}::text, '<null>') FROM vc.replication_status() WHERE branch = 'main'"),
    )
}

/// Waits until the standby's main is at `want`.
fn caught_up(s: &mut Client, want: &str) {
    let got = wait_for(s, "SELECT coalesce(vc.hashof('main'), '')", want, 30);
    assert_eq!(
        got,
        want,
        "standby did not catch up; status: {}",
        status(s, "last_error")
    );
}

fn sqlstate(d: &mut Client, sql: &str) -> (String, String) {
    let e = d.batch_execute(sql).expect_err(sql);
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// ALTER SYSTEM (value None: RESET) and reload.
fn set_conf(d: &mut Client, name: &str, value: Option<&str>) {
    match value {
        Some(v) => d.batch_execute(&format!("ALTER SYSTEM SET {name} = '{v}'")),
        None => d.batch_execute(&format!("ALTER SYSTEM RESET {name}")),
    }
    .unwrap();
    d.batch_execute("SELECT pg_reload_conf()").unwrap();
    // Backends (and the worker) read the file at their next command or latch.
    thread::sleep(Duration::from_millis(300));
}

/// The head of `main` on the remote, read by a fetch (reads only).
fn remote_head(d: &mut Client) -> String {
    query_scalar(d, "SELECT commit_hash FROM vc.fetch('origin', 'main')")
}

#[test]
fn commits_replicate_and_the_standby_is_read_only() {
    replicate_read_only(&RemoteDir::new("repl-basic"));
}

/// The same through a bucket of a real S3-compatible server.
#[test]
fn commits_replicate_through_a_bucket_and_the_standby_is_read_only() {
    replicate_read_only(&S3Remote::new("repl-basic"));
}

fn replicate_read_only(remote: &dyn TestRemote) {
    let (p, mut dp) = primary(remote);
    // The standby's config names the remote before anything is cloned: it waits.
    let s = Cluster::start_for(remote, STANDBY);
    let mut ds = s.connect();
    ds.batch_execute("CREATE EXTENSION pgvc").unwrap();
    let waiting = wait_for(
        &mut ds,
        "SELECT coalesce(last_error LIKE 'waiting%', false)::text FROM vc.replication_status()",
        "true",
        10,
    );
    assert_eq!(waiting, "true", "{}", status(&mut ds, "last_error"));
    assert_eq!(status(&mut ds, "role"), "standby");
    ds.batch_execute(&format!("SELECT vc.clone('{}')", remote.url()))
        .unwrap();
    caught_up(&mut ds, &head(&mut dp));

    // Updates, deletes, inserts; many small commits and one large one.
    dp.batch_execute(
        "UPDATE acct SET balance = balance + 1 WHERE id % 10 = 0; SELECT vc.commit('upd');
         DELETE FROM acct WHERE id > 990; SELECT vc.commit('del');",
    )
    .unwrap();
    for i in 0..20 {
        dp.batch_execute(&format!(
            "INSERT INTO events (what) VALUES ('e{i}'); SELECT vc.commit('small {i}');"
        ))
        .unwrap();
    }
    dp.batch_execute(
        "INSERT INTO acct SELECT g, 7, repeat('x', 50) FROM generate_series(5000, 55000) g;
         SELECT vc.commit('large');",
    )
    .unwrap();
    // Synchronous replication: the remote has the commit when vc.commit returns.
    let h = head(&mut dp);
    assert_eq!(remote_head(&mut dp), h);
    caught_up(&mut ds, &h);
    assert_eq!(rows(&mut ds, "acct"), rows(&mut dp, "acct"));
    assert_eq!(rows(&mut ds, "events"), rows(&mut dp, "events"));
    assert_eq!(
        query_scalar(&mut ds, "SELECT vc.root_hash()"),
        query_scalar(&mut dp, "SELECT vc.root_hash()")
    );
    // Owned sequences follow the commits.
    assert_eq!(
        query_scalar(&mut ds, "SELECT last_value::text FROM events_id_seq"),
        "20"
    );
    assert_eq!(status(&mut ds, "last_error"), "<null>");
    assert_eq!(status(&mut ds, "remote_head"), h);
    assert_ne!(status(&mut ds, "lag_ms"), "<null>");

    // Writes to tracked tables, and commits, are refused on the standby.
    for sql in [
        "INSERT INTO acct VALUES (-1, 0, 'x')",
        "UPDATE acct SET balance = 0",
        "DELETE FROM events",
        "TRUNCATE acct",
    ] {
        let (code, msg) = sqlstate(&mut ds, sql);
        assert_eq!(code, "25006", "{sql}: {msg}");
        assert!(msg.contains("standby"), "{msg}");
    }
    let (code, _) = sqlstate(&mut ds, "SELECT vc.commit('nope', allow_empty => true)");
    assert_eq!(code, "25006");
    assert_eq!(rows(&mut ds, "acct"), rows(&mut dp, "acct"));
    // Untracked tables stay writable.
    ds.batch_execute("CREATE TABLE scratch (x int); INSERT INTO scratch VALUES (1)")
        .unwrap();

    // A commit rolled back, or undone by ROLLBACK TO SAVEPOINT, never reaches the remote.
    dp.batch_execute(
        "BEGIN; INSERT INTO events (what) VALUES ('ghost'); SELECT vc.commit('ghost'); ROLLBACK;
         BEGIN; SAVEPOINT a; INSERT INTO events (what) VALUES ('ghost2'); SELECT vc.commit('ghost2');
         ROLLBACK TO SAVEPOINT a; COMMIT;",
    )
    .unwrap();
    assert_eq!(remote_head(&mut dp), h);
    assert_eq!(head(&mut dp), h);
    // Two commits in one transaction: the last one is pushed at COMMIT.
    dp.batch_execute(
        "BEGIN; INSERT INTO events (what) VALUES ('t1'); SELECT vc.commit('t1');
         INSERT INTO events (what) VALUES ('t2'); SELECT vc.commit('t2'); COMMIT;",
    )
    .unwrap();
    let h2 = head(&mut dp);
    assert_eq!(remote_head(&mut dp), h2);
    caught_up(&mut ds, &h2);

    // A table tracked later on the primary is created (and guarded) on the standby.
    dp.batch_execute(
        "CREATE TABLE later (k text PRIMARY KEY, n int DEFAULT 3); INSERT INTO later (k) VALUES ('a'), ('b');
         SELECT vc.track('later'); SELECT vc.commit('a new table');",
    )
    .unwrap();
    caught_up(&mut ds, &head(&mut dp));
    assert_eq!(rows(&mut ds, "later"), "(a,3),(b,3)");
    let (code, _) = sqlstate(&mut ds, "INSERT INTO later VALUES ('c', 1)");
    assert_eq!(code, "25006");

    // A reset to an older commit is pushed as a forced update, and followed.
    dp.batch_execute("SELECT vc.reset('HEAD~3')").unwrap();
    let h3 = head(&mut dp);
    assert_eq!(remote_head(&mut dp), h3);
    caught_up(&mut ds, &h3);
    assert_eq!(rows(&mut ds, "events"), rows(&mut dp, "events"));
    assert_eq!(status(&mut dp, "role"), "primary");
    assert_eq!(status(&mut dp, "last_error"), "<null>");
    drop(p);
}

#[test]
fn a_reader_on_the_standby_never_sees_half_a_commit() {
    reader_sees_whole_commits(&RemoteDir::new("repl-atomic"));
}

/// The same through a bucket of a real S3-compatible server.
#[test]
fn a_reader_on_a_standby_through_a_bucket_never_sees_half_a_commit() {
    reader_sees_whole_commits(&S3Remote::new("repl-atomic"));
}

fn reader_sees_whole_commits(remote: &dyn TestRemote) {
    let (_p, mut dp) = primary(remote);
    let (_s, mut ds) = standby(remote);
    caught_up(&mut ds, &head(&mut dp));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let mut r = _s.connect();
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let v = query_scalar(
                    &mut r,
                    "SELECT sum(balance)::text || '/' || count(*)::text FROM acct",
                );
                seen.lock().unwrap().push(v);
                n += 1;
            }
            n
        })
    };
    // Each commit moves money between many rows: the sum is constant at every commit.
    for i in 0..8 {
        dp.batch_execute(&format!(
            "UPDATE acct SET balance = balance + CASE WHEN id % 2 = {} THEN 5 ELSE -5 END;
             SELECT vc.commit('transfer {i}');",
            i % 2
        ))
        .unwrap();
        caught_up(&mut ds, &head(&mut dp));
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 10, "the reader ran only {reads} times");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|v| v == "100000/1000"),
        "a reader saw a partial commit: {:?}",
        seen.iter()
            .filter(|v| *v != "100000/1000")
            .take(5)
            .collect::<Vec<_>>()
    );
}

#[test]
fn failover_fences_the_old_primary_which_then_rejoins() {
    failover(&RemoteDir::new("repl-failover"));
}

/// The same story through a bucket of a real S3-compatible server.
#[test]
fn failover_through_a_bucket_fences_the_old_primary_which_then_rejoins() {
    failover(&S3Remote::new("repl-failover"));
}

fn failover(remote: &dyn TestRemote) {
    let (mut p, mut dp) = primary(remote);
    let (mut s, mut ds) = standby(remote);
    caught_up(&mut ds, &head(&mut dp));

    // A stream of commits on the primary, killed in the middle of it.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let acked = acked.clone();
        let mut w = p.connect();
        thread::spawn(move || {
            for i in 0.. {
                let r = w.query_one(
                    "WITH ins AS (INSERT INTO events (what) VALUES ($1)) SELECT 1",
                    &[&format!("w{i}")],
                );
                if r.is_err() {
                    return i;
                }
                match w.query_one("SELECT vc.commit($1)", &[&format!("w{i}")]) {
                    Ok(row) => acked.lock().unwrap().push(row.get::<_, String>(0)),
                    Err(_) => return i,
                }
            }
            unreachable!()
        })
    };
    let start = Instant::now();
    while acked.lock().unwrap().len() < 15 && start.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_millis(20));
    }
    p.kill_postmaster();
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 15);

    // Promote the standby: every commit the primary's clients saw succeed is there.
    let epoch = query_scalar(&mut ds, "SELECT vc.promote()::text");
    assert_eq!(epoch, "1");
    assert_eq!(status(&mut ds, "role"), "primary");
    let log = query_scalar(&mut ds, "SELECT string_agg(commit_hash, ',') FROM vc.log()");
    for h in &acked {
        assert!(
            log.contains(h.as_str()),
            "acknowledged commit {h} is missing after promotion"
        );
    }
    // Whole commits only: the rows are exactly those of the head commit.
    assert_eq!(
        query_scalar(&mut ds, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    // The new primary takes writes and pushes them with the new epoch.
    ds.batch_execute(
        "INSERT INTO events (what) VALUES ('after promotion'); SELECT vc.commit('new primary');",
    )
    .unwrap();
    let new_head = head(&mut ds);
    assert_eq!(remote_head(&mut ds), new_head);

    // Meanwhile the old primary comes back, first without replication configured,
    // and makes a commit the remote never sees.
    p.append_conf(&["vc.replicate_to_remote = ''".to_string()]);
    p.restart();
    let mut dp = p.connect();
    dp.batch_execute("INSERT INTO events (what) VALUES ('lost'); SELECT vc.commit('lost');")
        .unwrap();
    let lost = head(&mut dp);
    // Configured as a primary again, it finds the epoch moved and fences itself.
    set_conf(&mut dp, "vc.replicate_to_remote", Some("origin"));
    let fenced = wait_for(
        &mut dp,
        "SELECT role FROM vc.replication_status() LIMIT 1",
        "fenced",
        20,
    );
    assert_eq!(fenced, "fenced", "{}", status(&mut dp, "last_error"));
    // Its commits are kept on a branch.
    assert_eq!(
        query_scalar(&mut dp, "SELECT vc.hashof('fenced/1/main')"),
        lost
    );
    assert_eq!(remote_head(&mut dp), new_head);
    let (code, msg) = sqlstate(&mut dp, "INSERT INTO events (what) VALUES ('split brain')");
    assert_eq!(code, "25006", "{msg}");
    assert!(msg.contains("fenced"), "{msg}");
    // Rejoin: the old primary becomes a standby of the new one.
    dp.batch_execute("SELECT vc.rejoin('origin')").unwrap();
    assert_eq!(status(&mut dp, "role"), "standby");
    assert_eq!(head(&mut dp), new_head);
    assert_eq!(rows(&mut dp, "events"), rows(&mut ds, "events"));
    ds.batch_execute("INSERT INTO events (what) VALUES ('replicated back'); SELECT vc.commit('to the old primary');")
        .unwrap();
    caught_up(&mut dp, &head(&mut ds));

    // Roles survive restarts whatever the configuration files say.
    p.restart();
    s.restart();
    let mut dp = p.connect();
    let mut ds = s.connect();
    assert_eq!(status(&mut dp, "role"), "standby");
    assert_eq!(status(&mut ds, "role"), "primary");
    ds.batch_execute(
        "INSERT INTO events (what) VALUES ('after restart'); SELECT vc.commit('after restart');",
    )
    .unwrap();
    caught_up(&mut dp, &head(&mut ds));
}

#[test]
fn a_failed_push_is_retried_until_delivered() {
    let remote = RemoteDir::new("repl-retry");
    let (p, mut dp) = primary(&remote);
    let before = remote_head(&mut dp);
    remote.set_writable(false);
    for i in 0..5 {
        dp.batch_execute(&format!(
            "INSERT INTO events (what) VALUES ('r{i}'); SELECT vc.commit('while unwritable {i}');"
        ))
        .unwrap();
    }
    let h = head(&mut dp);
    assert_eq!(remote_head(&mut dp), before, "nothing reached the remote");
    let err = status(&mut dp, "last_error");
    assert!(
        err.contains("ermission denied") || err.contains("Permission"),
        "{err}"
    );
    assert_eq!(
        query_scalar(&mut dp, "SELECT count(*)::text FROM vc.log()"),
        "6"
    );
    // The worker keeps retrying (with backoff), then delivers everything.
    remote.set_writable(true);
    let got = wait_for(
        &mut dp,
        "SELECT coalesce(remote_head, '') FROM vc.replication_status()",
        &h,
        30,
    );
    assert_eq!(got, h, "{}", status(&mut dp, "last_error"));
    assert_eq!(remote_head(&mut dp), h);
    assert_eq!(status(&mut dp, "last_error"), "<null>");

    // The pack is written during vc.commit(), the remote's ref moves at COMMIT: when
    // only that last step fails, the transaction stays committed and the worker
    // delivers it later.
    dp.batch_execute(
        "BEGIN; INSERT INTO events (what) VALUES ('late'); SELECT vc.commit('published late');",
    )
    .unwrap();
    let chmod_root = |mode: &str| {
        let ok = Command::new("chmod")
            .args([mode, remote.0.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    chmod_root("a-w");
    dp.batch_execute("COMMIT").unwrap();
    let late = head(&mut dp);
    assert_eq!(
        query_scalar(&mut dp, "SELECT message FROM vc.log() LIMIT 1"),
        "published late"
    );
    let err = status(&mut dp, "last_error");
    assert!(err.contains("Permission denied"), "{err}");
    chmod_root("u+w");
    let got = wait_for(
        &mut dp,
        "SELECT coalesce(remote_head, '') FROM vc.replication_status()",
        &late,
        30,
    );
    assert_eq!(got, late, "{}", status(&mut dp, "last_error"));
    assert_eq!(remote_head(&mut dp), late);

    // Asynchronous mode: the worker pushes right after the commit.
    set_conf(&mut dp, "vc.async_replication", Some("on"));
    dp.batch_execute("INSERT INTO events (what) VALUES ('async'); SELECT vc.commit('async');")
        .unwrap();
    let h = head(&mut dp);
    let got = wait_for(
        &mut dp,
        "SELECT coalesce(remote_head, '') FROM vc.replication_status()",
        &h,
        10,
    );
    assert_eq!(got, h);
    // vc.sync() on a primary with nothing to push moves nothing.
    assert_eq!(query_scalar(&mut dp, "SELECT vc.sync()::text"), "0");
    drop(p);
}

/// Finding 6: the publish at COMMIT took the remote's lock with no deadline while
/// holding the transaction's locks (HEAD's among them), and cancel could not reach it.
/// Now it waits `vc.publish_timeout`, the client is warned, and the worker delivers
/// once the lock is free.
#[test]
fn a_stuck_remote_lock_does_not_hang_commit() {
    let remote = RemoteDir::new("repl-stuck-lock");
    let (p, mut dp) = primary(&remote);
    set_conf(&mut dp, "vc.publish_timeout", Some("300"));
    let mut dp = p.connect();
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(remote.0.join(".lock"))
        .unwrap();
    holder.lock().unwrap();
    dp.batch_execute("BEGIN; INSERT INTO events (what) VALUES ('stuck'); SELECT vc.commit('while the lock is held');")
        .unwrap();
    let started = Instant::now();
    dp.batch_execute("COMMIT").unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "COMMIT took {took:?}");
    let h = head(&mut dp);
    let err = status(&mut dp, "last_error");
    assert!(err.contains("lock"), "{err}");
    // Other sessions are not stuck behind HEAD's lock.
    let mut other = p.connect();
    other
        .batch_execute("INSERT INTO events (what) VALUES ('next'); SELECT vc.commit('next');")
        .unwrap();
    let h2 = head(&mut other);
    assert_ne!(h, h2);
    drop(holder);
    let got = wait_for(
        &mut dp,
        "SELECT coalesce(remote_head, '') FROM vc.replication_status()",
        &h2,
        30,
    );
    assert_eq!(got, h2, "{}", status(&mut dp, "last_error"));
    assert_eq!(remote_head(&mut dp), h2);
    drop(p);
}

/// Finding 9: a second standby promoted after the first read the remote's new epoch
/// and raised it again, fencing the new primary without the refusal the docs promise.
#[test]
fn a_second_promotion_is_refused_until_the_standby_synced() {
    second_promotion(&RemoteDir::new("repl-two-promotions"));
}

/// The same through a bucket of a real S3-compatible server.
#[test]
fn a_second_promotion_through_a_bucket_is_refused_until_the_standby_synced() {
    second_promotion(&S3Remote::new("repl-two-promotions"));
}

fn second_promotion(remote: &dyn TestRemote) {
    let (p, mut dp) = primary(remote);
    let (s1, mut d1) = standby(remote);
    let (s2, mut d2) = standby(remote);
    let h = head(&mut dp);
    caught_up(&mut d1, &h);
    caught_up(&mut d2, &h);
    // s2 stops polling: it keeps following the old epoch.
    set_conf(&mut d2, "vc.replication_interval", Some("3600000"));
    drop(p);
    let e1 = query_scalar(&mut d1, "SELECT vc.promote()::text");
    let (state, msg) = sqlstate(&mut d2, "SELECT vc.promote()");
    assert_eq!(state, "55000", "{msg}");
    assert!(msg.contains("another server was promoted"), "{msg}");
    // The first promotion stands: s1 is primary and takes commits that reach the remote.
    d1.batch_execute("INSERT INTO events (what) VALUES ('after'); SELECT vc.commit('on s1');")
        .unwrap();
    let h1 = head(&mut d1);
    assert_eq!(remote_head(&mut d1), h1);
    assert_eq!(status(&mut d1, "role"), "primary");
    // Deliberately, after syncing: s2 follows the new epoch, then may take over.
    d2.batch_execute("SELECT vc.sync()").unwrap();
    let e2 = query_scalar(&mut d2, "SELECT vc.promote()::text");
    assert_eq!(e2.parse::<u64>().unwrap(), e1.parse::<u64>().unwrap() + 1);
    drop(s1);
    drop(s2);
}

/// Finding 9: the write guard ran unqualified SQL under the writer's search_path, so
/// a writer could shadow a function it calls and write to a standby's tables.
#[test]
fn the_guard_ignores_the_writers_search_path() {
    let remote = RemoteDir::new("repl-guard-path");
    let (_p, mut dp) = primary(&remote);
    let (s, mut ds) = standby(&remote);
    caught_up(&mut ds, &head(&mut dp));
    ds.batch_execute(
        "CREATE ROLE app LOGIN; GRANT ALL ON acct TO app; GRANT CREATE ON DATABASE postgres TO app;",
    )
    .unwrap();
    let mut app = s.connect_as("app");
    app.batch_execute(
        "CREATE SCHEMA evil;
         CREATE FUNCTION evil.current_database() RETURNS name LANGUAGE sql AS $$ SELECT 'elsewhere'::name $$;
         SET search_path = evil, pg_catalog, public;",
    )
    .unwrap();
    let (state, msg) = sqlstate(&mut app, "INSERT INTO public.acct VALUES (5000, 1, 'x')");
    assert_eq!(state, "25006", "{msg}");
    assert_eq!(
        query_scalar(&mut ds, "SELECT count(*)::text FROM acct WHERE id = 5000"),
        "0"
    );
}

#[test]
fn the_standby_survives_a_missing_remote_and_bad_settings() {
    let remote = RemoteDir::new("repl-survive");
    let (mut p, mut dp) = primary(&remote);
    let (s, mut ds) = standby(&remote);
    caught_up(&mut ds, &head(&mut dp));
    let pid = query_scalar(&mut ds, "SELECT pid::text FROM vc.worker_status()");

    // A setting naming no remote: a clear error in the status, no crash loop.
    set_conf(&mut ds, "vc.read_replica_remote", Some("nosuch"));
    let err = wait_for(
        &mut ds,
        "SELECT coalesce(last_error LIKE '%remote \"nosuch\" does not exist%', false)::text FROM vc.replication_status() LIMIT 1",
        "true",
        10,
    );
    assert_eq!(err, "true", "{}", status(&mut ds, "last_error"));
    let (code, _) = sqlstate(&mut ds, "SELECT vc.sync()");
    assert_eq!(code, "42704");
    // Both roles at once is refused.
    set_conf(&mut ds, "vc.read_replica_remote", Some("origin"));
    set_conf(&mut ds, "vc.replicate_to_remote", Some("origin"));
    let err = wait_for(
        &mut ds,
        "SELECT coalesce(last_error LIKE '%both%', false)::text FROM vc.replication_status() LIMIT 1",
        "true",
        10,
    );
    assert_eq!(err, "true");
    set_conf(&mut ds, "vc.replicate_to_remote", None);

    // The remote disappears for a while (the primary is down meanwhile: it would
    // start a new remote there), then comes back with new commits.
    p.kill_postmaster();
    let moved = remote.0.with_extension("away");
    std::fs::rename(&remote.0, &moved).unwrap();
    thread::sleep(Duration::from_millis(800));
    assert_ne!(status(&mut ds, "last_error"), "<null>");
    std::fs::rename(&moved, &remote.0).unwrap();
    p.restart();
    let mut dp = p.connect();
    dp.batch_execute("INSERT INTO events (what) VALUES ('back'); SELECT vc.commit('back');")
        .unwrap();
    caught_up(&mut ds, &head(&mut dp));
    assert_eq!(status(&mut ds, "last_error"), "<null>");
    assert_eq!(
        query_scalar(&mut ds, "SELECT pid::text FROM vc.worker_status()"),
        pid
    );
    assert!(
        !s.log_tail().contains("terminated by signal"),
        "{}",
        s.log_tail()
    );
}

#[test]
fn a_standby_made_from_a_backup_follows_schema_changes() {
    standby_from_a_backup(&RemoteDir::new("repl-backup"));
}

/// The same with the remote and the backup in buckets of a real S3-compatible server.
#[test]
fn a_standby_made_from_a_backup_in_a_bucket_follows_schema_changes() {
    standby_from_a_backup(&S3Remote::new("repl-backup"));
}

/// The backup is a sibling of `remote`: of the same kind.
fn standby_from_a_backup(remote: &dyn TestRemote) {
    let backup = remote.sibling("repl-backup-bk");
    let (_p, mut dp) = primary(remote);
    dp.batch_execute(&format!(
        "SELECT vc.backup_add('bk', '{}'); SELECT * FROM vc.backup_sync('bk');",
        backup.url()
    ))
    .unwrap();
    // A new server restores the backup, then is configured as a standby.
    let s = Cluster::start_for(remote, &[]);
    let mut ds = s.connect();
    ds.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.backup_restore('{}'); SELECT vc.remote_add('origin', '{}');",
        backup.url(),
        remote.url()
    ))
    .unwrap();
    dp.batch_execute(
        "UPDATE acct SET note = 'after backup' WHERE id < 10; SELECT vc.commit('after backup');",
    )
    .unwrap();
    set_conf(&mut ds, "vc.read_replica_remote", Some("origin"));
    set_conf(&mut ds, "vc.replication_interval", Some("100"));
    caught_up(&mut ds, &head(&mut dp));
    assert_eq!(rows(&mut ds, "acct"), rows(&mut dp, "acct"));

    // A column added upstream is applied with its rows, with no hand work.
    dp.batch_execute("ALTER TABLE acct ADD COLUMN flag boolean; UPDATE acct SET flag = true WHERE id = 1; SELECT vc.commit('schema change');")
        .unwrap();
    caught_up(&mut ds, &head(&mut dp));
    assert_eq!(rows(&mut ds, "acct"), rows(&mut dp, "acct"));
    assert_eq!(status(&mut ds, "last_error"), "<null>");
    assert_eq!(
        query_scalar(&mut ds, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
}

#[test]
fn without_preloading_replication_says_what_is_missing() {
    let c = Cluster::start_without_pgvc();
    let mut d = c.connect();
    d.batch_execute("CREATE EXTENSION pgvc").unwrap();
    assert_eq!(
        query_scalar(&mut d, "SELECT role || ': ' || last_error FROM vc.replication_status()"),
        "none: replication needs pgvc in shared_preload_libraries: add shared_preload_libraries = 'pgvc' and restart"
    );
    for sql in [
        "SELECT vc.sync()",
        "SELECT vc.promote()",
        "SELECT vc.rejoin('origin')",
    ] {
        let (code, msg) = sqlstate(&mut d, sql);
        assert_eq!(code, "55000", "{sql}: {msg}");
        assert!(msg.contains("shared_preload_libraries"), "{msg}");
    }
    // Version control itself works, with writes allowed.
    d.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); SELECT vc.track('t'); SELECT vc.commit('c'); INSERT INTO t VALUES (2);")
        .unwrap();
}

/// Finding 2 on the standby: what arrives from the remote is untrusted. A new table
/// whose default would run a function that, on the standby, belongs to an unprivileged
/// role (who may also write the remote) is refused by the worker: the error is
/// recorded, nothing of that commit is applied, and the standby resumes once fixed.
#[test]
fn the_standby_refuses_a_commit_that_would_run_an_unprivileged_roles_code() {
    let remote = RemoteDir::new("repl-foreign");
    let (_p, mut dp) = primary(&remote);
    let (_s, mut ds) = standby(&remote);
    caught_up(&mut ds, &head(&mut dp));
    // On the standby, public.stamp() belongs to mallory, who is no superuser.
    ds.batch_execute(
        "CREATE ROLE mallory LOGIN;
         CREATE FUNCTION public.stamp() RETURNS int LANGUAGE sql AS 'SELECT 1';
         ALTER FUNCTION public.stamp() OWNER TO mallory;",
    )
    .unwrap();
    let before = head(&mut ds);
    let acct = rows(&mut ds, "acct");
    dp.batch_execute(
        "CREATE FUNCTION public.stamp() RETURNS int LANGUAGE sql AS 'SELECT 7';
         CREATE TABLE stamped (id int PRIMARY KEY, v int DEFAULT public.stamp());
         INSERT INTO stamped (id) VALUES (1), (2);
         SELECT vc.track('stamped');
         UPDATE acct SET balance = 0 WHERE id = 1;
         SELECT vc.commit('stamped');",
    )
    .unwrap();
    let err = wait_for(
        &mut ds,
        "SELECT coalesce(last_error LIKE '%would run code of role mallory%', false)::text FROM vc.replication_status()",
        "true",
        15,
    );
    assert_eq!(err, "true", "{}", status(&mut ds, "last_error"));
    // Nothing of that commit is applied: no table, no row change, HEAD where it was.
    assert_eq!(head(&mut ds), before);
    assert_eq!(
        query_scalar(
            &mut ds,
            "SELECT coalesce(to_regclass('public.stamped')::text, '<none>')"
        ),
        "<none>"
    );
    assert_eq!(rows(&mut ds, "acct"), acct);
    // The worker keeps retrying without crashing; a superuser owning the function
    // lets it through.
    ds.batch_execute("ALTER FUNCTION public.stamp() OWNER TO CURRENT_USER")
        .unwrap();
    caught_up(&mut ds, &head(&mut dp));
    assert_eq!(rows(&mut ds, "stamped"), rows(&mut dp, "stamped"));
    assert_eq!(rows(&mut ds, "acct"), rows(&mut dp, "acct"));
}

/// Branches named by a `vc.replicate_heads` pattern replicate; a merge on the primary
/// (a two-parent commit) reaches the standby; a listed branch the remote lacks is an
/// error on its own status row while the others keep following.
#[test]
fn patterns_follow_branches_and_a_missing_branch_stops_only_itself() {
    let remote = RemoteDir::new("repl-patterns");
    let (_p, mut dp) = {
        let p = Cluster::start_for(
            &remote,
            &[PRIMARY, &["vc.replicate_heads = 'main, release/*'"]].concat(),
        );
        let mut d = p.connect();
        d.batch_execute(&format!(
            "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
             CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL, note text);
             INSERT INTO acct SELECT g, 100, 'n' || g FROM generate_series(1, 100) g;
             SELECT vc.track('acct'); SELECT vc.commit('init');",
            remote.url()
        ))
        .unwrap();
        (p, d)
    };
    let s = Cluster::start_for(
        &remote,
        &[STANDBY, &["vc.replicate_heads = 'main, release/*, nosuch'"]].concat(),
    );
    let mut ds = s.connect();
    ds.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    // A release branch, changed there; main changed too; then merged into main.
    dp.batch_execute(
        "SELECT vc.branch('release/1'); SELECT vc.checkout('release/1');
         UPDATE acct SET note = 'release' WHERE id <= 5; SELECT vc.commit('on release');
         SELECT vc.checkout('main');
         UPDATE acct SET balance = 0 WHERE id > 95; SELECT vc.commit('on main');",
    )
    .unwrap();
    let release = query_scalar(&mut dp, "SELECT vc.hashof('release/1')");
    let merged = query_scalar(
        &mut dp,
        "SELECT commit_hash FROM vc.merge('release/1') WHERE NOT fast_forward AND conflicts = 0",
    );
    assert_eq!(merged, head(&mut dp));
    caught_up(&mut ds, &merged);
    assert_eq!(rows(&mut ds, "acct"), rows(&mut dp, "acct"));
    assert_eq!(
        query_scalar(
            &mut ds,
            "SELECT array_length(parents, 1)::text FROM vc.log() LIMIT 1"
        ),
        "2"
    );
    let got = wait_for(
        &mut ds,
        "SELECT coalesce(vc.hashof('release/1'), '')",
        &release,
        30,
    );
    assert_eq!(got, release);
    // The missing branch: its own row says so; main's row has no error.
    let missing = wait_for(
        &mut ds,
        "SELECT coalesce(last_error LIKE '%has no branch nosuch%', false)::text FROM vc.replication_status() WHERE branch = 'nosuch'",
        "true",
        30,
    );
    assert_eq!(missing, "true");
    assert_eq!(status(&mut ds, "last_error"), "<null>");
    // And main goes on following.
    dp.batch_execute("UPDATE acct SET balance = 1 WHERE id = 1; SELECT vc.commit('more')")
        .unwrap();
    let h = head(&mut dp);
    caught_up(&mut ds, &h);
    // A branch no entry names is not pushed (it stays on the primary).
    dp.batch_execute("SELECT vc.branch('scratch')").unwrap();
    let refs = query_scalar(
        &mut dp,
        "SELECT string_agg(branch, ',' ORDER BY branch) FROM vc.fetch('origin')",
    );
    assert_eq!(refs, "main,release/1");
}
