//! Long operations can be cancelled: `pg_cancel_backend()` stops a commit, push,
//! clone or restore of 10^6 rows within a second, and nothing is left half-done
//! (each runs in its caller's transaction; the remote's refs move last).

use pgvc_cluster_tests::{query_scalar, Cluster, RemoteDir};
use postgres::Client;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `sql` on `victim` in a thread, cancels it from `admin` after `after`, and
/// returns (SQLSTATE, time from the cancel to the error).
fn cancel_after(c: &Cluster, db: &str, sql: &str, after: Duration) -> (String, Duration) {
    let mut victim = c.connect_db(db);
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let sql = sql.to_string();
    let runner = thread::spawn(move || {
        let r = victim.batch_execute(&sql);
        (r, Instant::now())
    });
    thread::sleep(after);
    let mut admin = c.connect_db(db);
    let sent = Instant::now();
    let ok: bool = admin
        .query_one("SELECT pg_cancel_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    let (r, ended) = runner.join().unwrap();
    assert!(
        ok,
        "the backend was done before the cancel: {:?}",
        r.as_ref().err().map(|e| e.to_string())
    );
    let e = r.expect_err("the operation finished before the cancel reached it");
    let state = e
        .as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| e.to_string());
    (state, ended.saturating_duration_since(sent))
}

fn count(db: &mut Client, sql: &str) -> String {
    query_scalar(db, sql)
}

#[test]
fn long_operations_stop_within_a_second_and_leave_nothing() {
    let c = Cluster::start();
    let remote = RemoteDir::new("cancel");
    let backup = RemoteDir::new("cancel-backup");
    let mut d = c.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc;
         CREATE TABLE big (id int PRIMARY KEY, v text, n int);
         SELECT vc.track('big');
         INSERT INTO big SELECT g, md5(g::text), g % 97 FROM generate_series(1, 1000000) g;
         SELECT vc.remote_add('origin', '{}');
         SELECT vc.backup_add('b', '{}');",
        remote.url(),
        backup.url()
    ))
    .unwrap();

    // Commit: nothing committed, the changes still pending.
    let (state, took) = cancel_after(
        &c,
        "postgres",
        "SELECT vc.commit('big')",
        Duration::from_millis(300),
    );
    assert_eq!(state, "57014");
    assert!(
        took < Duration::from_secs(1),
        "commit stopped after {took:?}"
    );
    assert_eq!(count(&mut d, "SELECT count(*)::text FROM vc.refs"), "0");
    assert_eq!(
        count(&mut d, "SELECT inserted::text FROM vc.status()"),
        "1000000"
    );
    d.batch_execute("SELECT vc.commit('big')").unwrap();

    // Push (about 0.3 s here, so cancelled early): the remote's branch is not there, or
    // (a cancel that lands after the manifest swap) is the whole pushed commit; the
    // swap is one compare-and-swap, never half a push.
    let head = count(&mut d, "SELECT vc.hashof('main')");
    let (state, took) = cancel_after(
        &c,
        "postgres",
        "SELECT vc.push('origin')",
        Duration::from_millis(30),
    );
    assert_eq!(state, "57014");
    assert!(took < Duration::from_secs(1), "push stopped after {took:?}");
    let there = count(
        &mut d,
        "SELECT coalesce(string_agg(commit_hash, ','), '') FROM vc.fetch('origin')",
    );
    assert!(there.is_empty() || there == head, "{there}");
    d.batch_execute("SELECT vc.push('origin')").unwrap();

    // Clone into another database: nothing created there.
    d.batch_execute("CREATE DATABASE other").unwrap();
    let mut o = c.connect_db("other");
    o.batch_execute("CREATE EXTENSION pgvc").unwrap();
    let (state, took) = cancel_after(
        &c,
        "other",
        &format!("SELECT vc.clone('{}')", remote.url()),
        Duration::from_millis(300),
    );
    assert_eq!(state, "57014");
    assert!(
        took < Duration::from_secs(1),
        "clone stopped after {took:?}"
    );
    assert_eq!(count(&mut o, "SELECT count(*)::text FROM vc.tracked"), "0");
    assert_eq!(count(&mut o, "SELECT count(*)::text FROM vc.chunks"), "0");
    assert_eq!(
        count(&mut o, "SELECT coalesce(to_regclass('big')::text, 'none')"),
        "none"
    );

    // Backup sync, then restore into the other database.
    d.batch_execute("SELECT * FROM vc.backup_sync('b')")
        .unwrap();
    let (state, took) = cancel_after(
        &c,
        "other",
        &format!("SELECT vc.backup_restore('{}')", backup.url()),
        Duration::from_millis(300),
    );
    assert_eq!(state, "57014");
    assert!(
        took < Duration::from_secs(1),
        "restore stopped after {took:?}"
    );
    assert_eq!(count(&mut o, "SELECT count(*)::text FROM vc.tracked"), "0");
    assert_eq!(count(&mut o, "SELECT count(*)::text FROM vc.refs"), "0");
    drop(o);
    drop(d);
}
