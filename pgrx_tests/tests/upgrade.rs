//! `ALTER EXTENSION pgvc UPDATE` from the previous release: a server runs pgvc 0.1.0
//! (built from the git tag by `scripts/build-previous.sh`, in a private copy of
//! PostgreSQL), commits history and pushes it; the same data directory is then started
//! with this build and updated. History, the root hashes of old commits, remotes,
//! schema changes and replication must all still work.

use pgvc_cluster_tests::{query_scalar, query_strings, wait_for, Cluster, RemoteDir};
use postgres::Client;
use std::path::PathBuf;

/// The bin directory of the PostgreSQL copy that runs the previous release.
fn previous_bin() -> PathBuf {
    let bin = std::env::var("PGVC_PREVIOUS_BIN").unwrap_or_else(|_| {
        panic!(
            "PGVC_PREVIOUS_BIN is not set: run PGVC_PREVIOUS_BIN=$(scripts/build-previous.sh) \
             cargo test ..., or make test, which does"
        )
    });
    let bin = PathBuf::from(bin);
    assert!(
        bin.join("postgres").exists(),
        "no postgres in {}",
        bin.display()
    );
    bin
}

fn strings(d: &mut Client, sql: &str) -> Vec<Vec<Option<String>>> {
    query_strings(d, sql)
}

/// Every commit of the history with its root hash, newest first.
fn history(d: &mut Client) -> Vec<Vec<Option<String>>> {
    strings(
        d,
        "SELECT commit_hash, message, vc.root_hash(commit_hash) FROM vc.log()",
    )
}

fn rows(d: &mut Client) -> String {
    query_scalar(
        d,
        "SELECT coalesce(string_agg(to_jsonb(x)::text, ';' ORDER BY x.id), '') FROM items x",
    )
}

/// What the extension defines in schema `vc`: functions (signature, result,
/// settings, body, rights), tables and their columns, and the event triggers.
fn catalog(d: &mut Client) -> Vec<Vec<Option<String>>> {
    strings(
        d,
        "SELECT 'function', p.oid::regprocedure::text, pg_get_function_result(p.oid), \
                p.proconfig::text, CASE WHEN l.lanname = 'c' THEN p.prosrc ELSE md5(p.prosrc) END, \
                p.proacl::text, p.prosecdef::text, p.provolatile::text, p.proisstrict::text \
         FROM pg_proc p LEFT JOIN pg_language l ON l.oid = p.prolang \
         WHERE p.pronamespace = 'vc'::regnamespace AND p.proname NOT LIKE 'trg\\_%' \
         UNION ALL \
         SELECT 'column', c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod), \
                a.attnotnull::text, pg_get_expr(ad.adbin, ad.adrelid), c.relacl::text, NULL, NULL, NULL \
         FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum \
         WHERE c.relnamespace = 'vc'::regnamespace AND c.relkind = 'r' AND c.relname NOT LIKE 'log\\_%' \
         UNION ALL \
         SELECT 'event trigger', evtname, evtevent, evttags::text, evtfoid::regproc::text, evtenabled::text, NULL, NULL, NULL \
         FROM pg_event_trigger \
         UNION ALL \
         SELECT 'dumped', c::regclass::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
         FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'pgvc' \
         ORDER BY 1, 2",
    )
}

#[test]
fn an_update_from_the_previous_release_keeps_everything() {
    let old = previous_bin();
    let remote = RemoteDir::new("upgrade");
    let mut a = Cluster::launch_with_bin(Some(old), true, &[]);
    let mut d = a.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc;
         CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(8,2), note text);
         INSERT INTO items (name, price) VALUES ('apple', 1.5), ('pear', NULL), ('fig', 3);
         SELECT vc.track('items'); SELECT vc.commit('one');
         UPDATE items SET price = 2 WHERE id = 2; SELECT vc.commit('two');
         INSERT INTO items (name) VALUES ('kiwi'); SELECT vc.commit('three');
         SELECT vc.remote_add('origin', '{}'); SELECT vc.push();",
        remote.url()
    ))
    .unwrap();
    assert_eq!(
        query_scalar(
            &mut d,
            "SELECT extversion FROM pg_extension WHERE extname = 'pgvc'"
        ),
        "0.1.0"
    );
    let before = history(&mut d);
    let before_rows = rows(&mut d);
    assert_eq!(before.len(), 3);
    drop(d);

    // The same data directory under this build, then the update.
    a.restart_with_bin(None);
    let mut d = a.connect();
    d.batch_execute("ALTER EXTENSION pgvc UPDATE").unwrap();
    let version = query_scalar(
        &mut d,
        "SELECT extversion FROM pg_extension WHERE extname = 'pgvc'",
    );
    assert_ne!(version, "0.1.0");
    assert_eq!(
        version,
        query_scalar(
            &mut d,
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pgvc'"
        )
    );
    // The updated extension defines exactly what a fresh install does.
    let fresh = Cluster::start();
    let mut df = fresh.connect();
    df.batch_execute("CREATE EXTENSION pgvc").unwrap();
    let (got, want) = (catalog(&mut d), catalog(&mut df));
    let differ: Vec<_> = got
        .iter()
        .filter(|r| !want.contains(r))
        .chain(want.iter().filter(|r| !got.contains(r)))
        .collect();
    assert!(
        differ.is_empty(),
        "update and fresh install differ: {differ:#?}"
    );
    // History and the root hashes of old commits are unchanged; nothing to commit.
    assert_eq!(history(&mut d), before);
    assert_eq!(rows(&mut d), before_rows);
    assert_eq!(
        query_scalar(&mut d, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    // Writes are tracked and commit; the remote takes the push.
    d.batch_execute("UPDATE items SET note = 'after' WHERE id = 1; SELECT vc.commit('after the update'); SELECT vc.push();")
        .unwrap();
    // A schema change on a table committed by the previous release, and reset across
    // it, both ways.
    d.batch_execute("ALTER TABLE items ADD COLUMN stock int; UPDATE items SET stock = 5 WHERE id = 3; SELECT vc.commit('stock');")
        .unwrap();
    let tip = query_scalar(&mut d, "SELECT vc.hashof('HEAD')");
    let oldest = before.last().unwrap()[0].clone().unwrap();
    d.batch_execute(&format!("SELECT vc.reset('{oldest}')"))
        .unwrap();
    assert_eq!(
        query_scalar(&mut d, "SELECT count(*)::text FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'stock'"),
        "0"
    );
    assert_eq!(
        query_scalar(&mut d, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    d.batch_execute(&format!("SELECT vc.reset('{tip}')"))
        .unwrap();
    assert_eq!(
        query_scalar(&mut d, "SELECT stock::text FROM items WHERE id = 3"),
        "5"
    );
    assert_eq!(
        query_scalar(&mut d, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
    // The previous release's key logs (named by OID) were replaced by ones named by
    // the tables' identities (at the first use after a commit gave them one), and none is left behind.
    assert_eq!(
        query_scalar(
            &mut d,
            "SELECT count(*) FILTER (WHERE log_table LIKE 'log\\_t%')::text || '/' || count(*)::text FROM vc.tracked"
        ),
        query_scalar(&mut d, "SELECT count(*)::text || '/' || count(*)::text FROM vc.tracked")
    );
    assert_eq!(
        query_scalar(
            &mut d,
            "SELECT count(*)::text FROM pg_class WHERE relnamespace = 'vc'::regnamespace AND relname ~ '^log_[0-9]+$'"
        ),
        "0"
    );
    d.batch_execute("SELECT vc.push()").unwrap();

    // Replication from the updated server: a standby of this build clones the remote
    // (history written by both releases) and follows a commit.
    d.batch_execute("ALTER SYSTEM SET vc.replicate_to_remote = 'origin'")
        .unwrap();
    d.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = Cluster::start_with(&[
        "vc.read_replica_remote = 'origin'",
        "vc.replication_interval = 100",
    ]);
    let mut ds = s.connect();
    ds.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    d.batch_execute("INSERT INTO items (name) VALUES ('plum'); SELECT vc.commit('plum');")
        .unwrap();
    let head = query_scalar(&mut d, "SELECT vc.hashof('main')");
    assert_eq!(
        wait_for(&mut ds, "SELECT coalesce(vc.hashof('main'), '')", &head, 30),
        head
    );
    assert_eq!(rows(&mut ds), rows(&mut d));
    // The standby sees the same history, old root hashes included.
    let old_on_standby: Vec<_> = history(&mut ds)
        .into_iter()
        .filter(|r| before.contains(r))
        .collect();
    assert_eq!(old_on_standby, before);
}
