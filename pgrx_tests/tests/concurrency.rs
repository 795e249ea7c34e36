//! Concurrent sessions: commits serialize, no commit misses a row committed before it,
//! rows of transactions still in flight land in a later commit, and a rolled back
//! commit leaves no trace.

use pgvc_cluster_tests::{query_scalar, Cluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn setup(c: &Cluster) -> postgres::Client {
    let mut db = c.connect();
    db.batch_execute(
        "CREATE EXTENSION pgvc;
         CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, 100 FROM generate_series(1, 200) g;
         SELECT vc.track('acct');
         SELECT vc.commit('open accounts');",
    )
    .unwrap();
    db
}

#[test]
fn two_committers_serialize_into_a_line() {
    let c = Cluster::start();
    let mut a = setup(&c);
    let mut b = c.connect();
    a.batch_execute("BEGIN; UPDATE acct SET balance = 1 WHERE id = 1; SELECT vc.commit('from a');")
        .unwrap();
    // B's commit must wait for A's transaction (HEAD is row-locked), then build on it.
    let port_b = thread::spawn(move || {
        b.batch_execute("UPDATE acct SET balance = 2 WHERE id = 2")
            .unwrap();
        let h = query_scalar(&mut b, "SELECT vc.commit('from b')");
        (h, b)
    });
    thread::sleep(Duration::from_millis(500));
    assert!(!port_b.is_finished(), "B committed while A held HEAD");
    a.batch_execute("COMMIT").unwrap();
    let (hb, mut b) = port_b.join().unwrap();
    let ha = query_scalar(&mut b, "SELECT vc.hashof('HEAD~1')");
    assert_eq!(query_scalar(&mut b, "SELECT vc.hashof('HEAD')"), hb);
    assert_eq!(
        query_scalar(&mut b, "SELECT message FROM vc.log('HEAD~1') LIMIT 1"),
        "from a"
    );
    assert_ne!(ha, hb);
    assert_eq!(
        query_scalar(&mut b, "SELECT count(*)::text FROM vc.log()"),
        "3"
    );
    assert_eq!(
        query_scalar(&mut b, "SELECT string_agg(balance::text, ',' ORDER BY id) FROM vc.as_of(NULL::acct, 'HEAD') WHERE id <= 2"),
        "1,2"
    );
}

#[test]
fn rows_in_flight_belong_to_a_later_commit() {
    let c = Cluster::start();
    let mut a = setup(&c);
    let mut w = c.connect();
    w.batch_execute(
        "BEGIN; INSERT INTO acct VALUES (1000, 7); UPDATE acct SET balance = 0 WHERE id = 5;",
    )
    .unwrap();
    a.batch_execute("UPDATE acct SET balance = 50 WHERE id = 6")
        .unwrap();
    query_scalar(&mut a, "SELECT vc.commit('without the open transaction')");
    let in_head = |db: &mut postgres::Client, r: &str| {
        query_scalar(
            db,
            &format!("SELECT count(*)::text FROM vc.as_of(NULL::acct, '{r}') WHERE id = 1000"),
        )
    };
    assert_eq!(in_head(&mut a, "HEAD"), "0");
    assert_eq!(
        query_scalar(
            &mut a,
            "SELECT balance::text FROM vc.as_of(NULL::acct, 'HEAD') WHERE id = 6"
        ),
        "50"
    );
    w.batch_execute("COMMIT").unwrap();
    assert_eq!(
        query_scalar(
            &mut a,
            "SELECT (inserted || '/' || updated) FROM vc.status()"
        ),
        "1/1"
    );
    query_scalar(&mut a, "SELECT vc.commit('the rest')");
    assert_eq!(in_head(&mut a, "HEAD"), "1");
    assert_eq!(
        query_scalar(
            &mut a,
            "SELECT balance::text FROM vc.as_of(NULL::acct, 'HEAD') WHERE id = 5"
        ),
        "0"
    );
}

#[test]
fn commits_during_a_stream_of_transfers_lose_nothing() {
    let c = Cluster::start();
    let mut a = setup(&c);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|seed| {
            let mut db = c.connect();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let from = (n * 7 + seed * 13) % 200 + 1;
                    let to = (n * 11 + seed * 3) % 200 + 1;
                    // Transfers keep the sum constant; some also insert a row.
                    db.batch_execute(&format!(
                        "BEGIN; UPDATE acct SET balance = balance - 1 WHERE id = {from};
                         UPDATE acct SET balance = balance + 1 WHERE id = {to};
                         INSERT INTO acct VALUES ({}, 0) ON CONFLICT DO NOTHING; COMMIT;",
                        10_000 + seed * 100_000 + n
                    ))
                    .unwrap();
                }
                n
            })
        })
        .collect();
    let mut commits = 0;
    for _ in 0..15 {
        thread::sleep(Duration::from_millis(100));
        let r = a.batch_execute("SELECT vc.commit('snapshot')");
        if r.is_ok() {
            commits += 1;
            // Every commit is a consistent snapshot: transfers keep the sum.
            assert_eq!(
                query_scalar(
                    &mut a,
                    "SELECT sum(balance)::text FROM vc.as_of(NULL::acct, 'HEAD')"
                ),
                "20000"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let done: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        commits >= 5 && done > 20,
        "commits {commits}, transactions {done}"
    );
    a.batch_execute("SELECT vc.commit('final')").unwrap();
    // Nothing changed since the last commit is missing from it.
    assert_eq!(
        query_scalar(&mut a, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    let diff = query_scalar(
        &mut a,
        "SELECT count(*)::text FROM ((SELECT * FROM acct EXCEPT SELECT * FROM vc.as_of(NULL::acct, 'HEAD'))
         UNION ALL (SELECT * FROM vc.as_of(NULL::acct, 'HEAD') EXCEPT SELECT * FROM acct)) d",
    );
    assert_eq!(diff, "0");
}

#[test]
fn non_utf8_databases_are_refused() {
    let c = Cluster::start();
    let mut db = c.connect();
    db.batch_execute(
        "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    )
    .unwrap();
    let mut l = c.connect_db("latin");
    l.batch_execute("CREATE EXTENSION pgvc; CREATE TABLE t (id int PRIMARY KEY, v text)")
        .unwrap();
    let e = l.batch_execute("SELECT vc.track('t')").unwrap_err();
    let e = e.as_db_error().expect("a server error");
    assert_eq!(e.code().code(), "0A000");
    assert!(e.message().contains("UTF8"), "{}", e.message());
}
