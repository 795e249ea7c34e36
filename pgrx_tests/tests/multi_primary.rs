//! Several primaries on one remote branch (`vc.multi_primary`, docs/BRANCHES.md): three
//! real clusters writing at once, with overlapping keys, converge to one commit and one
//! `root_hash` under each automatic conflict policy, losing no non-conflicting change;
//! under `fail` the conflict stops that branch's sync until it is resolved by hand.

use pgvc_cluster_tests::{query_scalar, Cluster, RemoteDir, TestRemote};
use postgres::Client;
use std::thread;
use std::time::{Duration, Instant};

const MULTI: &[&str] = &[
    "vc.replicate_to_remote = 'origin'",
    "vc.replication_interval = 100",
    "vc.multi_primary = on",
];

/// Three primaries of `remote`: the first makes table kv (keys 1..10) and commits, the
/// other two clone it; every one sets `policy` on kv.
fn three(remote: &dyn TestRemote, policy: &str) -> Vec<(Cluster, Client)> {
    let mut out = Vec::new();
    for i in 0..3 {
        let c = Cluster::start_for(remote, MULTI);
        let mut d = c.connect();
        d.batch_execute("CREATE EXTENSION pgvc").unwrap();
        if i == 0 {
            d.batch_execute(&format!(
                "SELECT vc.remote_add('origin', '{}');
                 CREATE TABLE kv (k int PRIMARY KEY, v text, who int);
                 INSERT INTO kv SELECT g, 'init', 0 FROM generate_series(1, 10) g;
                 SELECT vc.track('kv'); SELECT vc.commit('init');",
                remote.url()
            ))
            .unwrap();
        } else {
            d.batch_execute(&format!("SELECT vc.clone('{}')", remote.url()))
                .unwrap();
        }
        if policy.contains('.') {
            // A conflict function: the row with the greater v (the same on every
            // server, and symmetric: every primary decides alike).
            d.batch_execute(
                "CREATE FUNCTION public.pick(b jsonb, o jsonb, t jsonb) RETURNS jsonb
                 LANGUAGE sql IMMUTABLE AS $$
                   SELECT CASE WHEN o IS NULL THEN t WHEN t IS NULL THEN o
                               WHEN (o ->> 'v') >= (t ->> 'v') THEN o ELSE t END $$",
            )
            .unwrap();
        }
        d.batch_execute(&format!("SELECT vc.set_conflict_policy('kv', '{policy}')"))
            .unwrap();
        out.push((c, d));
    }
    out
}

/// Each server, at once: `rounds` transactions, each inserting a key of its own and
/// updating one of the five shared keys, then committing.
fn write_at_once(servers: &[(Cluster, Client)], rounds: usize) {
    let mut handles = Vec::new();
    for (i, (c, _)) in servers.iter().enumerate() {
        let mut d = c.connect();
        handles.push(thread::spawn(move || {
            for n in 0..rounds {
                let shared = n % 5 + 1;
                d.batch_execute(&format!(
                    "BEGIN;
                     INSERT INTO kv VALUES ({}, 'own', {i});
                     UPDATE kv SET v = 's{i}-{n}', who = {i} WHERE k = {shared};
                     SELECT vc.commit('server {i} round {n}');
                     COMMIT;",
                    1000 * (i + 1) + n
                ))
                .unwrap();
                thread::sleep(Duration::from_millis(15));
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
}

/// Waits until the three servers' main and root_hash agree; returns them.
fn converge(servers: &mut [(Cluster, Client)], secs: u64) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let heads: Vec<String> = servers
            .iter_mut()
            .map(|(_, d)| query_scalar(d, "SELECT vc.hashof('main') || ' ' || vc.root_hash()"))
            .collect();
        if heads.iter().all(|h| *h == heads[0]) {
            let (h, r) = heads[0].split_once(' ').unwrap();
            return (h.to_string(), r.to_string());
        }
        if Instant::now() > deadline {
            let errors: Vec<String> = servers
                .iter_mut()
                .map(|(_, d)| {
                    query_scalar(
                        d,
                        "SELECT coalesce(string_agg(last_error, '; '), '<none>') FROM vc.replication_status()",
                    )
                })
                .collect();
            panic!("no convergence in {secs} s: heads {heads:?}; errors {errors:?}");
        }
        thread::sleep(Duration::from_millis(300));
    }
}

fn converges_under(policy: &str, tag: &str) {
    let remote = RemoteDir::new(tag);
    let mut servers = three(&remote, policy);
    write_at_once(&servers, 20);
    let (head, root) = converge(&mut servers, 90);
    for (_, d) in servers.iter_mut() {
        // No change that did not conflict is lost: every server's own keys, everywhere.
        let live = query_scalar(d, "SELECT count(*)::text FROM kv WHERE k >= 1000");
        if live != "60" {
            panic!(
                "live {live}; committed {}; status {}; missing {}",
                query_scalar(d, "SELECT count(*)::text FROM vc.as_of(NULL::kv, 'HEAD') WHERE k >= 1000"),
                query_scalar(d, "SELECT coalesce(string_agg(format('%s %s %s %s', table_name, inserted, updated, deleted), ';'), '-') FROM vc.status()"),
                query_scalar(d, "SELECT coalesce(string_agg(g::text, ','), '-') FROM (SELECT 1000 * s + n AS g FROM generate_series(1, 3) s, generate_series(0, 19) n) x WHERE g NOT IN (SELECT k FROM kv)"),
            );
        }
        // The live tables are what the converged commit holds.
        assert_eq!(
            query_scalar(d, "SELECT count(*)::text FROM vc.status()"),
            "0"
        );
        assert_eq!(query_scalar(d, "SELECT vc.hashof('main')"), head);
        assert_eq!(query_scalar(d, "SELECT vc.root_hash()"), root);
    }
    // The shared keys hold one server's last write each, the same everywhere.
    let shared: Vec<String> = servers
        .iter_mut()
        .map(|(_, d)| {
            query_scalar(
                d,
                "SELECT string_agg(format('%s=%s', k, v), ',' ORDER BY k) FROM kv WHERE k <= 5",
            )
        })
        .collect();
    assert!(shared.iter().all(|s| *s == shared[0]), "{shared:?}");
    assert!(!shared[0].contains("init"), "{}", shared[0]);
    // The history holds merges (two parents) made by the servers' workers.
    let (_, d) = &mut servers[0];
    let merges = query_scalar(
        d,
        "SELECT count(*)::text FROM vc.log() WHERE array_length(parents, 1) = 2",
    );
    assert_ne!(merges, "0");
}

#[test]
fn three_primaries_converge_under_newest() {
    converges_under("newest", "multi-newest");
}

#[test]
fn three_primaries_converge_under_ours() {
    converges_under("ours", "multi-ours");
}

#[test]
fn three_primaries_converge_under_a_function() {
    converges_under("public.pick", "multi-function");
}

#[test]
fn three_primaries_converge_under_theirs() {
    converges_under("theirs", "multi-theirs");
}

/// Under `fail`, a conflicting row stops the branch's sync on the server that finds
/// it (status says so); `vc.pull()` there records the conflict, it is resolved and
/// committed, and the servers converge.
#[test]
fn a_conflict_under_fail_stops_sync_until_resolved() {
    let remote = RemoteDir::new("multi-fail");
    let mut servers = three(&remote, "fail");
    // Server 1 commits its change in a transaction it keeps open (its worker cannot take
    // server 0's commit meanwhile); server 0 commits and pushes the same row first.
    let mut d1 = servers[1].0.connect();
    d1.batch_execute("BEGIN; UPDATE kv SET v = 'one' WHERE k = 1; SELECT vc.commit('one')")
        .unwrap();
    let (_, d0) = &mut servers[0];
    d0.batch_execute("UPDATE kv SET v = 'zero' WHERE k = 1; SELECT vc.commit('zero')")
        .unwrap();
    d1.batch_execute("COMMIT").unwrap();
    // One of the two finds the other's row against its own: its status says so.
    let stopped = |servers: &mut Vec<(Cluster, Client)>| {
        servers.iter_mut().take(2).any(|(_, d)| {
            query_scalar(
                d,
                "SELECT coalesce(bool_or(last_error LIKE '%conflict policy ''fail''%'), false)::text FROM vc.replication_status()",
            ) == "true"
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stopped(&mut servers) {
        assert!(Instant::now() < deadline, "no server reported the conflict");
        thread::sleep(Duration::from_millis(200));
    }
    // Resolved by hand where it stopped: pull records it, theirs is taken, committed.
    for (_, d) in servers.iter_mut().take(2) {
        let e = query_scalar(
            d,
            "SELECT coalesce(bool_or(last_error LIKE '%conflict policy ''fail''%'), false)::text FROM vc.replication_status()",
        );
        if e == "true" {
            d.batch_execute("SELECT vc.pull('origin')").unwrap();
            assert_eq!(
                query_scalar(d, "SELECT count(*)::text FROM vc.conflicts()"),
                "1"
            );
            d.batch_execute(
                "SELECT vc.resolve('public.kv', 'theirs'); SELECT vc.commit('resolved by hand')",
            )
            .unwrap();
        }
    }
    let (_, _) = converge(&mut servers, 60);
    let values: Vec<String> = servers
        .iter_mut()
        .map(|(_, d)| query_scalar(d, "SELECT v FROM kv WHERE k = 1"))
        .collect();
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
}

/// Row owners: each server writes the rows it owns, receives the others', and is
/// refused, at the statement, a write to a row another server owns.
#[test]
fn each_primary_writes_only_the_rows_it_owns() {
    let remote = RemoteDir::new("multi-owners");
    let mut servers = Vec::new();
    for (i, name) in ["east", "west"].iter().enumerate() {
        let conf: Vec<&str> = MULTI
            .iter()
            .copied()
            .chain([if *name == "east" {
                "vc.server_name = 'east'"
            } else {
                "vc.server_name = 'west'"
            }])
            .collect();
        let c = Cluster::start_for(&remote, &conf);
        let mut d = c.connect();
        d.batch_execute("CREATE EXTENSION pgvc").unwrap();
        if i == 0 {
            d.batch_execute(&format!(
                "SELECT vc.remote_add('origin', '{}');
                 CREATE TABLE stock (sku int PRIMARY KEY, site text NOT NULL, qty int);
                 INSERT INTO stock VALUES (1, 'east', 10), (2, 'west', 20);
                 SELECT vc.track('stock'); SELECT vc.commit('init');",
                remote.url()
            ))
            .unwrap();
        } else {
            d.batch_execute(&format!("SELECT vc.clone('{}')", remote.url()))
                .unwrap();
        }
        d.batch_execute("SELECT vc.set_row_owner('stock', 'site')")
            .unwrap();
        servers.push((c, d));
    }
    {
        let (_, east) = &mut servers[0];
        east.batch_execute("UPDATE stock SET qty = 11 WHERE sku = 1; SELECT vc.commit('east')")
            .unwrap();
        let e = east
            .batch_execute("UPDATE stock SET qty = 0 WHERE sku = 2")
            .expect_err("east wrote west's row");
        assert_eq!(e.as_db_error().unwrap().code().code(), "42501");
    }
    {
        let (_, west) = &mut servers[1];
        west.batch_execute("UPDATE stock SET qty = 21 WHERE sku = 2; SELECT vc.commit('west')")
            .unwrap();
        let e = west
            .batch_execute("DELETE FROM stock WHERE sku = 1")
            .expect_err("west deleted east's row");
        assert_eq!(e.as_db_error().unwrap().code().code(), "42501");
    }
    converge(&mut servers, 60);
    for (_, d) in servers.iter_mut() {
        assert_eq!(
            query_scalar(
                d,
                "SELECT string_agg(format('%s=%s', sku, qty), ',' ORDER BY sku) FROM stock"
            ),
            "1=11,2=21"
        );
    }
}

/// Synchronous mode keeps its meaning with several primaries: a commit another
/// primary beat to the remote is merged in its own transaction, and when COMMIT
/// returns the remote has the merge (server 1's worker is kept off: nothing else
/// delivers).
#[test]
fn a_beaten_commit_is_on_the_remote_merged_when_commit_returns() {
    let remote = RemoteDir::new("multi-sync");
    let c0 = Cluster::start_for(&remote, MULTI);
    let mut d0 = c0.connect();
    d0.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE TABLE kv (k int PRIMARY KEY, v text);
         INSERT INTO kv SELECT g, 'init' FROM generate_series(1, 10) g;
         SELECT vc.track('kv'); SELECT vc.commit('init');",
        remote.url()
    ))
    .unwrap();
    let slow: Vec<&str> = MULTI
        .iter()
        .map(|l| {
            if l.starts_with("vc.replication_interval") {
                "vc.replication_interval = 3600000"
            } else {
                l
            }
        })
        .collect();
    let c1 = Cluster::start_for(&remote, &slow);
    let (mut d1, notices) = c1.connect_collecting_notices();
    d1.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    d0.batch_execute("UPDATE kv SET v = 'zero' WHERE k = 1; SELECT vc.commit('zero')")
        .unwrap();
    d1.batch_execute("UPDATE kv SET v = 'one' WHERE k = 2; SELECT vc.commit('one')")
        .unwrap();
    // Merged in the commit's own transaction, not left to the worker.
    assert!(
        !notices
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("background worker")),
        "{:?}",
        notices.lock().unwrap()
    );
    let head1 = query_scalar(&mut d1, "SELECT vc.hashof('main')");
    assert_eq!(
        query_scalar(
            &mut d1,
            "SELECT array_length(parents, 1)::text FROM vc.log() LIMIT 1"
        ),
        "2"
    );
    assert_eq!(
        query_scalar(
            &mut d0,
            "SELECT commit_hash FROM vc.fetch('origin', 'main')"
        ),
        head1
    );
    assert_eq!(
        query_scalar(
            &mut d1,
            "SELECT string_agg(format('%s=%s', k, v), ',' ORDER BY k) FROM kv WHERE k <= 2"
        ),
        "1=zero,2=one"
    );
    assert_eq!(
        query_scalar(&mut d1, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
}
