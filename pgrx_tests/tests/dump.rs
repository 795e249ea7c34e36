//! pg_dump and pg_restore keep pgvc's state: a database dumped (custom format) and
//! restored into a fresh cluster has the same history, a clean status, tracks changes
//! and commits.

use pgvc_cluster_tests::{query_scalar, query_strings, Cluster, RemoteDir};
use std::process::Command;

fn run(program: &str, args: &[&str]) {
    let out = Command::new(format!("/usr/lib/postgresql/15/bin/{program}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dump_and_restore_keep_history_and_tracking() {
    let remote = RemoteDir::new("dump");
    let a = Cluster::start();
    let mut da = a.connect();
    da.batch_execute(&format!(
        "CREATE EXTENSION pgvc;
         CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, m mood, dropped int);
         ALTER TABLE items DROP COLUMN dropped;
         INSERT INTO items (name, m) VALUES ('apple', 'sad'), ('pear', 'happy');
         CREATE TABLE other (k text PRIMARY KEY, v int);
         INSERT INTO other VALUES ('a', 1);
         SELECT vc.track('items'); SELECT vc.track('other');
         SELECT vc.commit('one');
         UPDATE items SET name = 'green apple' WHERE id = 1; SELECT vc.commit('two');
         SELECT vc.remote_add('origin', '{}'); SELECT vc.push();",
        remote.url()
    ))
    .unwrap();
    let log = |d: &mut postgres::Client| {
        query_strings(
            d,
            "SELECT commit_hash, message, vc.root_hash(commit_hash) FROM vc.log()",
        )
    };
    let before = log(&mut da);
    let names = |d: &mut postgres::Client| {
        query_scalar(
            d,
            "SELECT string_agg(format('%s %s %s', relid, log_table, \
                (SELECT string_agg(DISTINCT p.proname, ',') FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid \
                 WHERE g.tgrelid = relid AND g.tgname LIKE 'vc_track_%')), '; ' ORDER BY relid::text) FROM vc.tracked",
        )
    };
    let names_before = names(&mut da);
    let dir = tempfile_dir();
    let file = format!("{dir}/pgvc.dump");
    let port_a = a.port().to_string();
    run(
        "pg_dump",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port_a,
            "-U",
            "postgres",
            "-Fc",
            "-f",
            &file,
            "postgres",
        ],
    );
    let b = Cluster::start();
    let port_b = b.port().to_string();
    let mut db0 = b.connect();
    db0.batch_execute("CREATE DATABASE restored").unwrap();
    run(
        "pg_restore",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port_b,
            "-U",
            "postgres",
            "-d",
            "restored",
            "--exit-on-error",
            &file,
        ],
    );
    let mut db = b.connect_db("restored");
    assert_eq!(log(&mut db), before, "history after restore");
    // Key logs and trigger functions are named by the tables' identities, which the
    // dump kept: the restored triggers call functions that exist, filling the logs.
    assert_eq!(names(&mut db), names_before, "tracking names after restore");
    assert!(names_before.contains("log_t"), "{names_before}");
    assert_eq!(
        query_scalar(&mut db, "SELECT count(*)::text FROM vc.status()"),
        "0",
        "status after restore"
    );
    assert_eq!(
        query_scalar(
            &mut db,
            "SELECT string_agg(name, ',' ORDER BY name) FROM vc.remotes()"
        ),
        "origin"
    );
    // Changes are tracked, and commit.
    db.batch_execute(
        "UPDATE items SET m = 'happy' WHERE id = 1; INSERT INTO other VALUES ('b', 2)",
    )
    .unwrap();
    assert_eq!(
        query_scalar(
            &mut db,
            "SELECT string_agg(format('%s %s/%s/%s', table_name, inserted, updated, deleted), '; ' ORDER BY table_name) FROM vc.status()"
        ),
        "public.items 0/1/0; public.other 1/0/0"
    );
    db.batch_execute("SELECT vc.commit('after the restore')")
        .unwrap();
    assert_eq!(
        query_scalar(&mut db, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    // The same change on the source gives the same content hash.
    da.batch_execute("UPDATE items SET m = 'happy' WHERE id = 1; INSERT INTO other VALUES ('b', 2); SELECT vc.commit('same');")
        .unwrap();
    assert_eq!(
        query_scalar(&mut db, "SELECT vc.root_hash('HEAD')"),
        query_scalar(&mut da, "SELECT vc.root_hash('HEAD')")
    );
    // Nothing of the dumped tracking is left behind: one key log per tracked table.
    assert_eq!(
        query_scalar(
            &mut db,
            "SELECT count(*)::text FROM pg_class WHERE relnamespace = 'vc'::regnamespace AND relname LIKE 'log\\_%'"
        ),
        "2"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory the `postgres` OS user may write (pg_dump writes the file as the
/// caller; the test may run as root or as postgres).
fn tempfile_dir() -> String {
    let d = std::env::temp_dir().join(format!("pgvc-dump-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.to_string_lossy().into_owned()
}
