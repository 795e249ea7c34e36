//! `s3://` remotes between real clusters, against a real S3-compatible server (moto,
//! installed by scripts/setup.sh): push, clone, pull, backup and restore, and a
//! standby following a primary through the bucket; who may add an S3 remote, and
//! that credentials never show.

use pgvc_cluster_tests::moto::{Moto, Proxy};
use pgvc_cluster_tests::{query_scalar, wait_for, Cluster};
use std::time::{Duration, Instant};

/// The server's credentials (moto accepts any), as an administrator would set them.
const CREDENTIALS: &[&str] = &[
    "vc.s3_access_key_id = 'testing'",
    "vc.s3_secret_access_key = 'testing-secret-key'",
];

fn url(m: &Moto, bucket: &str, prefix: &str) -> String {
    url_at(&m.endpoint(), bucket, prefix)
}

/// The URL of `prefix` in `bucket` behind `endpoint` (moto, or a proxy before it).
fn url_at(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&force_path_style=true")
}

/// A new server with the credentials, restored from the backup at `url`.
fn restored_from(url: &str) -> (Cluster, postgres::Client) {
    let c = Cluster::start_with(CREDENTIALS);
    let mut d = c.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.backup_restore('{url}')"
    ))
    .unwrap();
    (c, d)
}

fn rows(d: &mut postgres::Client) -> String {
    query_scalar(
        d,
        "SELECT coalesce(string_agg(format('%s %s', id, name), ',' ORDER BY id), '') FROM items",
    )
}

#[test]
fn push_clone_pull_backup_and_restore_through_a_bucket() {
    let m = Moto::start();
    m.create_bucket("pgvc-remotes");
    let remote = url(&m, "pgvc-remotes", "db1");
    let a = Cluster::start_with(CREDENTIALS);
    let mut da = a.connect();
    da.batch_execute(&format!(
        "CREATE EXTENSION pgvc;
         CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3000) g;
         SELECT vc.track('items'); SELECT vc.commit('catalogue');
         SELECT vc.remote_add('origin', '{remote}'); SELECT vc.push();"
    ))
    .unwrap();
    // Shown as given: the URL holds no credentials.
    assert_eq!(
        query_scalar(
            &mut da,
            "SELECT url FROM vc.remotes() WHERE name = 'origin'"
        ),
        remote
    );
    let b = Cluster::start_with(CREDENTIALS);
    let mut db = b.connect();
    db.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{remote}')"
    ))
    .unwrap();
    assert_eq!(rows(&mut db), rows(&mut da));
    assert_eq!(
        query_scalar(&mut db, "SELECT vc.root_hash('main')"),
        query_scalar(&mut da, "SELECT vc.root_hash('main')")
    );
    da.batch_execute(
        "UPDATE items SET name = 'changed' WHERE id % 100 = 0; DELETE FROM items WHERE id > 2990;
         SELECT vc.commit('spring'); SELECT vc.push();",
    )
    .unwrap();
    db.batch_execute("SELECT vc.pull()").unwrap();
    assert_eq!(rows(&mut db), rows(&mut da));
    // Backups to a bucket, and a restore from it into a third server.
    let backup = url(&m, "pgvc-remotes", "backups/a");
    da.batch_execute(&format!(
        "SELECT vc.backup_add('b', '{backup}'); SELECT * FROM vc.backup_sync('b');"
    ))
    .unwrap();
    assert_eq!(
        query_scalar(&mut da, "SELECT ok::text FROM vc.backup_verify('b')"),
        "true"
    );
    let (_c, mut dc) = restored_from(&backup);
    assert_eq!(rows(&mut dc), rows(&mut da));
}

#[test]
fn a_standby_follows_its_primary_through_a_bucket() {
    let m = Moto::start();
    m.create_bucket("pgvc-repl");
    let remote = url(&m, "pgvc-repl", "main-db");
    let mut pconf = CREDENTIALS.to_vec();
    pconf.extend([
        "vc.replicate_to_remote = 'origin'",
        "vc.replication_interval = 100",
    ]);
    let p = Cluster::start_with(&pconf);
    let mut dp = p.connect();
    dp.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{remote}');
         CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items VALUES (1, 'one');
         SELECT vc.track('items'); SELECT vc.commit('one');"
    ))
    .unwrap();
    // The standby follows its remote 'origin', which the clone registers.
    let mut sconf = CREDENTIALS.to_vec();
    sconf.extend([
        "vc.read_replica_remote = 'origin'",
        "vc.replication_interval = 100",
    ]);
    let s = Cluster::start_with(&sconf);
    let mut ds = s.connect();
    ds.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{remote}')"
    ))
    .unwrap();
    for i in 2..5 {
        dp.batch_execute(&format!(
            "INSERT INTO items VALUES ({i}, 'n{i}'); SELECT vc.commit('c{i}');"
        ))
        .unwrap();
        let head = query_scalar(&mut dp, "SELECT vc.hashof('main')");
        assert_eq!(
            wait_for(&mut ds, "SELECT coalesce(vc.hashof('main'), '')", &head, 30),
            head,
            "{}",
            query_scalar(
                &mut ds,
                "SELECT coalesce(last_error, '') FROM vc.replication_status() WHERE branch = 'main'"
            )
        );
    }
    assert_eq!(rows(&mut ds), rows(&mut dp));
}

#[test]
fn only_administrators_add_s3_remotes_and_credentials_stay_hidden() {
    let m = Moto::start();
    m.create_bucket("pgvc-who");
    let remote = url(&m, "pgvc-who", "x");
    let a = Cluster::start_with(CREDENTIALS);
    let mut d = a.connect();
    d.batch_execute(
        "CREATE EXTENSION pgvc; CREATE ROLE w LOGIN IN ROLE pgvc_writer; \
         CREATE ROLE adm LOGIN IN ROLE pgvc_admin;",
    )
    .unwrap();
    let mut dw = a.connect_as("w");
    let e = dw
        .batch_execute(&format!("SELECT vc.remote_add('o', '{remote}')"))
        .unwrap_err();
    let e = e.as_db_error().unwrap();
    assert_eq!(e.code().code(), "42501", "{}", e.message());
    // The settings are invisible to other roles.
    assert!(dw.batch_execute("SHOW vc.s3_secret_access_key").is_err());
    assert_eq!(
        query_scalar(
            &mut dw,
            "SELECT count(*)::text FROM pg_settings WHERE name LIKE 'vc.s3%'"
        ),
        "0"
    );
    // An administrator may; a URL with credentials in it is refused.
    let mut dadm = a.connect_as("adm");
    dadm.batch_execute(&format!("SELECT vc.remote_add('o', '{remote}')"))
        .unwrap();
    let e = dadm
        .batch_execute(&format!(
            "SELECT vc.remote_add('o2', '{}&access_key=AKIA')",
            remote
        ))
        .unwrap_err();
    let e = e.as_db_error().unwrap();
    assert_eq!(e.code().code(), "22023", "{}", e.message());
    assert!(
        e.message().contains("credentials never go in a URL"),
        "{}",
        e.message()
    );
    // A missing bucket: a clear error that names it, nothing registered.
    let e = d
        .batch_execute(&format!(
            "SELECT vc.remote_add('nb', '{}')",
            url(&m, "no-such-bucket", "x")
        ))
        .unwrap_err();
    let msg = e.as_db_error().unwrap().message().to_string();
    assert!(msg.contains("no-such-bucket"), "{msg}");
    assert!(!msg.contains("testing-secret-key"), "{msg}");
    assert_eq!(
        query_scalar(
            &mut d,
            "SELECT count(*)::text FROM vc.remotes() WHERE name = 'nb'"
        ),
        "0"
    );
}

fn status(d: &mut postgres::Client, col: &str) -> String {
    query_scalar(
        d,
        &format!("SELECT coalesce({col}::text, '<null>') FROM vc.replication_status() WHERE branch = 'main'"),
    )
}

/// A bucket that stops answering does not hold a COMMIT past `vc.publish_timeout`:
/// neither while the commit uploads its pack nor when it moves the branch at COMMIT.
/// The transaction commits here, the status says why the remote lacks it, and the
/// worker delivers once the server answers again.
#[test]
fn a_slow_bucket_does_not_hold_a_commit_past_the_deadline() {
    let m = Moto::start();
    m.create_bucket("pgvc-slow");
    let proxy = Proxy::start(m.port);
    let remote = url_at(&proxy.endpoint(), "pgvc-slow", "db");
    let mut conf = CREDENTIALS.to_vec();
    conf.extend([
        "vc.replicate_to_remote = 'origin'",
        "vc.replication_interval = 100",
        "vc.publish_timeout = 1000",
    ]);
    let p = Cluster::start_with(&conf);
    let mut d = p.connect();
    d.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{remote}');
         CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 1000) g;
         SELECT vc.track('items'); SELECT vc.commit('one');"
    ))
    .unwrap();
    let head = |d: &mut postgres::Client| query_scalar(d, "SELECT vc.hashof('main')");
    let h1 = head(&mut d);
    assert_eq!(
        status(&mut d, "remote_head"),
        h1,
        "{}",
        status(&mut d, "last_error")
    );

    // The server stalls while the commit uploads (inside vc.commit()).
    proxy.stall(true);
    let started = Instant::now();
    d.batch_execute(
        "INSERT INTO items VALUES (1001, 'slow'); SELECT vc.commit('during the stall');",
    )
    .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "the commit took {took:?}");
    let h2 = head(&mut d);
    assert_ne!(h2, h1);
    let err = status(&mut d, "last_error");
    assert!(err.contains("deadline"), "{err}");
    assert!(!err.contains("testing-secret-key"), "{err}");
    proxy.stall(false);
    let got = wait_for(
        &mut d,
        "SELECT coalesce(remote_head, '') FROM vc.replication_status()",
        &h2,
        60,
    );
    assert_eq!(got, h2, "{}", status(&mut d, "last_error"));

    // The server stalls after the upload, when the branch moves at COMMIT.
    d.batch_execute(
        "BEGIN; INSERT INTO items VALUES (1002, 'late'); SELECT vc.commit('published late');",
    )
    .unwrap();
    proxy.stall(true);
    let started = Instant::now();
    d.batch_execute("COMMIT").unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "COMMIT took {took:?}");
    let h3 = head(&mut d);
    assert_eq!(
        query_scalar(&mut d, "SELECT message FROM vc.log() LIMIT 1"),
        "published late"
    );
    let err = status(&mut d, "last_error");
    assert!(err.contains("deadline"), "{err}");
    proxy.stall(false);
    let got = wait_for(
        &mut d,
        "SELECT coalesce(remote_head, '') FROM vc.replication_status()",
        &h3,
        60,
    );
    assert_eq!(got, h3, "{}", status(&mut d, "last_error"));
    // Through the server itself (not the proxy): the bucket holds the last commit.
    let c = Cluster::start_with(CREDENTIALS);
    let mut dc = c.connect();
    dc.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        url(&m, "pgvc-slow", "db")
    ))
    .unwrap();
    assert_eq!(head(&mut dc), h3);
    assert_eq!(rows(&mut dc), rows(&mut d));
}

/// The S3 server dies in the middle of a backup sync: the sync fails with an error
/// naming the bucket, the backup keeps its previous state (a restore gives the
/// previous sync's rows), and once the server is back a new sync completes.
#[test]
fn a_server_dying_during_a_backup_sync_leaves_the_previous_backup() {
    let m = Moto::start();
    m.create_bucket("pgvc-bk");
    let proxy = Proxy::start(m.port);
    let via_proxy = url_at(&proxy.endpoint(), "pgvc-bk", "b");
    let direct = url(&m, "pgvc-bk", "b");
    let a = Cluster::start_with(CREDENTIALS);
    let mut da = a.connect();
    da.batch_execute(&format!(
        "CREATE EXTENSION pgvc;
         CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'first ' || g FROM generate_series(1, 2000) g;
         SELECT vc.track('items'); SELECT vc.commit('first');
         SELECT vc.backup_add('b', '{via_proxy}'); SELECT * FROM vc.backup_sync('b');"
    ))
    .unwrap();
    let first = rows(&mut da);
    // Much more to send: the cut falls in the middle of the upload.
    da.batch_execute(
        "INSERT INTO items SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(2001, 60000) g;
         SELECT vc.commit('second');
         UPDATE items SET name = 'uncommitted' WHERE id % 97 = 0;",
    )
    .unwrap();
    let sent = proxy.request_bytes();
    proxy.cut_after(1 << 20);
    let e = da
        .batch_execute("SELECT * FROM vc.backup_sync('b')")
        .expect_err("a sync to a dead server fails");
    let db = e.as_db_error().expect("an ERROR");
    assert!(db.message().contains("pgvc-bk"), "{}", db.message());
    assert!(
        !db.message().contains("testing-secret-key"),
        "{}",
        db.message()
    );
    assert!(
        proxy.request_bytes() > sent + (1 << 20),
        "the server died in the middle of the upload"
    );
    // The backup is as the first sync left it.
    let (_b, mut db_) = restored_from(&direct);
    assert_eq!(rows(&mut db_), first);
    // The server is back: the retry completes, and restores to the current state.
    proxy.restore();
    da.batch_execute("SELECT * FROM vc.backup_sync('b')")
        .unwrap();
    assert_eq!(
        query_scalar(&mut da, "SELECT ok::text FROM vc.backup_verify('b')"),
        "true"
    );
    let (_c, mut dc) = restored_from(&direct);
    assert_eq!(rows(&mut dc), rows(&mut da));
    assert_eq!(
        query_scalar(
            &mut dc,
            "SELECT count(*)::text FROM items WHERE name = 'uncommitted'"
        ),
        "618"
    );
}

/// `vc.remote_add` and `vc.backup_add` refuse, with a clear error and nothing
/// registered: a server that ignores conditional writes (a proxy hides the headers
/// from moto), and credentials the server does not accept.
#[test]
fn stores_without_conditional_writes_and_wrong_credentials_are_refused() {
    let m = Moto::start();
    m.create_bucket("pgvc-nocas");
    let proxy = Proxy::start(m.port);
    proxy.ignore_conditional_writes();
    let nocas = url_at(&proxy.endpoint(), "pgvc-nocas", "db");
    let strict = Moto::start_checking_credentials(1);
    strict.create_bucket("pgvc-strict");
    let a = Cluster::start_with(CREDENTIALS);
    let mut d = a.connect();
    d.batch_execute("CREATE EXTENSION pgvc").unwrap();
    for (what, url, code, text) in [
        (
            "remote_add",
            nocas.clone(),
            "0A000",
            "does not honour conditional writes",
        ),
        (
            "backup_add",
            nocas.clone(),
            "0A000",
            "does not honour conditional writes",
        ),
        (
            "remote_add",
            url(&strict, "pgvc-strict", "db"),
            "",
            "pgvc-strict",
        ),
    ] {
        let e = d
            .batch_execute(&format!("SELECT vc.{what}('x', '{url}')"))
            .expect_err("refused");
        let e = e.as_db_error().expect("an ERROR");
        if !code.is_empty() {
            assert_eq!(e.code().code(), code, "{what}: {}", e.message());
        }
        assert!(e.message().contains(text), "{what}: {}", e.message());
        assert!(
            !e.message().contains("testing-secret-key"),
            "{}",
            e.message()
        );
        assert!(e.hint().is_some(), "{what}: a hint says what to do");
    }
    assert_eq!(
        query_scalar(
            &mut d,
            "SELECT ((SELECT count(*) FROM vc.remotes()) + (SELECT count(*) FROM vc.backups()))::text"
        ),
        "0"
    );
}
