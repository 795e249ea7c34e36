//! Tests of the harness itself. They must pass before pgvc is installed, so they
//! use `Cluster::start_without_pgvc` unless `PGVC_HARNESS_PRELOAD=1` asks for the
//! real thing (as `make test` does, after installing the extension).

use pgvc_cluster_tests::{query_scalar, Cluster};

// `Cluster::start_without_pgvc` is `Cluster::launch(false, &[])`.

fn start_with(conf: &[&str]) -> Cluster {
    let preload = std::env::var("PGVC_HARNESS_PRELOAD").as_deref() == Ok("1");
    Cluster::launch(preload, conf)
}

fn start() -> Cluster {
    start_with(&[])
}

#[test]
fn two_clusters_are_independent_and_cleaned_up() {
    let a = start();
    let b = start();
    assert_ne!(a.port(), b.port());
    let mut ca = a.connect();
    let mut cb = b.connect();
    ca.batch_execute("CREATE TABLE only_on_a(x int)").unwrap();
    assert_eq!(
        query_scalar(&mut ca, "SELECT current_setting('port')"),
        a.port().to_string()
    );
    assert_eq!(
        query_scalar(
            &mut cb,
            "SELECT count(*)::text FROM pg_class WHERE relname = 'only_on_a'"
        ),
        "0"
    );
    let dir = a.data_dir().parent().unwrap().to_path_buf();
    assert!(dir.join("data/PG_VERSION").exists());
    drop(ca);
    drop(a);
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    // b is untouched by a's shutdown.
    assert_eq!(query_scalar(&mut cb, "SELECT 1::text"), "1");
}

#[test]
fn extra_conf_lines_apply() {
    let c = start_with(&["TimeZone = 'Asia/Tokyo'"]);
    let mut client = c.connect();
    assert_eq!(query_scalar(&mut client, "SHOW TimeZone"), "Asia/Tokyo");
}

#[test]
fn restart_after_kill_recovers() {
    let mut c = start();
    // Kept open across the crash: its orphaned backend holds shared memory for a
    // moment, which restart() must wait out.
    let mut old = c.connect();
    old.batch_execute("CREATE TABLE t(x int); INSERT INTO t VALUES (42)")
        .unwrap();
    c.kill_postmaster();
    c.restart();
    assert!(old.batch_execute("SELECT 1").is_err());
    let mut client = c.connect();
    assert_eq!(query_scalar(&mut client, "SELECT x::text FROM t"), "42");
    assert!(c.log_tail().contains("database system was interrupted"));
}

#[test]
fn data_dir_is_removed_when_a_test_panics() {
    let dir = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let c = start();
        *dir.lock().unwrap() = Some(c.data_dir().to_path_buf());
        panic!("simulated test failure");
    });
    assert!(result.is_err());
    let dir = dir.into_inner().unwrap().unwrap();
    let dir = dir.parent().unwrap();
    assert!(!dir.exists(), "{} survived a panicking test", dir.display());
}
