//! The pagila sample database (enums, domains, arrays, tsvector, bytea, a partitioned
//! table, triggers, views, unowned sequences), every table tracked: a standby cloned
//! into an empty database (no types created by hand) follows a realistic migration on
//! the primary with no hand work.
//!
//! The dataset lives beside the project (`shared/datasets/pagila` next to the checkout
//! or a directory above it, or `$PGVC_PAGILA`); without it this test fails rather
//! than pass unseen.

use pgvc_cluster_tests::{query_scalar, wait_for, Cluster, RemoteDir};
use postgres::Client;
use std::path::PathBuf;
use std::process::Command;

fn dataset() -> PathBuf {
    if let Ok(d) = std::env::var("PGVC_PAGILA") {
        return PathBuf::from(d);
    }
    // `shared/datasets/pagila` beside the checkout (or beside any directory above it).
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Last, where this machine keeps the project's shared files.
    let found = manifest
        .ancestors()
        .map(|a| a.join("shared/datasets/pagila"))
        .chain([PathBuf::from("/work/shared/datasets/pagila")])
        .find(|d| d.join("pagila-schema.sql").exists());
    match found {
        Some(d) => d,
        None => panic!(
            "pagila is not in shared/datasets/pagila beside {} or above it (set PGVC_PAGILA)",
            manifest.display()
        ),
    }
}

/// Runs a SQL file with psql (pagila's dump names roles that may not exist here: its
/// errors about them are expected, so the file is not stopped at the first error).
fn psql_file(c: &Cluster, file: &PathBuf) {
    let out = Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .arg("-p")
        .arg(c.port().to_string())
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql -f {}: {:?}",
        file.display(),
        out
    );
}

/// Every tracked table's columns (by name, with type, NOT NULL and default) and an md5
/// of its rows as `to_jsonb`, one line per table.
fn shape(d: &mut Client) -> String {
    query_scalar(
        d,
        "SELECT string_agg(t.relid::regclass::text || ': ' || \
           (SELECT string_agg(format('%s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                   pg_get_expr(ad.adbin, ad.adrelid)), ', ' ORDER BY a.attname) \
            FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
            WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped) || ' | ' || \
           (xpath('/row/c/text()', query_to_xml(format( \
              'SELECT md5(coalesce(string_agg(to_jsonb(x)::text, '';'' ORDER BY to_jsonb(x)::text), '''')) AS c FROM %s x', \
              t.relid::regclass), false, true, '')))[1]::text, E'\\n' ORDER BY t.relid::regclass::text) \
         FROM vc.tracked t",
    )
}

fn head(d: &mut Client) -> String {
    query_scalar(d, "SELECT vc.hashof('main') || ' ' || vc.root_hash('main')")
}

#[test]
fn pagila_standby_follows_a_migration() {
    let data = dataset();
    let remote = RemoteDir::new("pagila");
    let p = Cluster::start_with(&[
        "vc.replicate_to_remote = 'origin'",
        "vc.replication_interval = 100",
    ]);
    psql_file(&p, &data.join("pagila-schema.sql"));
    psql_file(&p, &data.join("pagila-data.sql"));
    let mut dp = p.connect();
    dp.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         SELECT count(vc.track(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = c.oid AND contype = 'p');
         SELECT vc.commit('pagila');",
        remote.url()
    ))
    .unwrap();
    let tracked: i64 = query_scalar(&mut dp, "SELECT count(*)::text FROM vc.tracked")
        .parse()
        .unwrap();
    assert!(tracked >= 14, "only {tracked} pagila tables tracked");

    // The standby: an empty database, cloned; nothing created by hand.
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
    let want = head(&mut dp);
    assert_eq!(
        wait_for(
            &mut ds,
            "SELECT vc.hashof('main') || ' ' || vc.root_hash('main')",
            &want,
            60
        ),
        want
    );
    assert_eq!(shape(&mut ds), shape(&mut dp));
    assert_eq!(extras(&mut ds), extras(&mut dp));

    // A realistic migration: a new column with a default, a renamed column, a new
    // table with a foreign key, a new enum value (used at once), an index.
    dp.batch_execute("ALTER TYPE mpaa_rating ADD VALUE 'NR'")
        .unwrap();
    dp.batch_execute(
        "ALTER TABLE film ADD COLUMN streamable boolean NOT NULL DEFAULT false;
         ALTER TABLE customer RENAME COLUMN activebool TO is_active;
         CREATE TABLE film_review (
             review_id serial PRIMARY KEY,
             film_id int NOT NULL REFERENCES film (film_id),
             stars int NOT NULL CHECK (stars BETWEEN 1 AND 5),
             note text);
         INSERT INTO film_review (film_id, stars, note) VALUES (1, 5, 'classic'), (2, 3, NULL);
         SELECT vc.track('film_review');
         UPDATE film SET rating = 'NR', streamable = true WHERE film_id IN (1, 2, 3);
         CREATE INDEX film_streamable ON film (streamable);
         SELECT vc.commit('migration: streamable, is_active, reviews, NR');",
    )
    .unwrap();
    let want = head(&mut dp);
    let got = wait_for(
        &mut ds,
        "SELECT vc.hashof('main') || ' ' || vc.root_hash('main')",
        &want,
        60,
    );
    assert_eq!(
        got,
        want,
        "the standby did not follow: {}",
        query_scalar(
            &mut ds,
            "SELECT coalesce(last_error, '') FROM vc.replication_status() WHERE branch = 'main'"
        )
    );
    assert_eq!(shape(&mut ds), shape(&mut dp));
    // Indexes and constraints followed too (the new index and foreign key among them).
    assert_eq!(extras(&mut ds), extras(&mut dp));
    assert!(extras(&mut ds).contains("film_streamable"));
    assert!(extras(&mut ds).contains("film_review_film_id_fkey"));
    assert_eq!(
        query_scalar(
            &mut ds,
            "SELECT count(*)::text FROM film WHERE rating = 'NR' AND streamable"
        ),
        "3"
    );
    assert_eq!(
        query_scalar(&mut ds, "SELECT count(*)::text FROM vc.status()"),
        "0"
    );
}

/// The indexes and constraints of every tracked table, as PostgreSQL prints them
/// (foreign keys to tables that are not tracked are not versioned).
fn extras(d: &mut Client) -> String {
    query_scalar(
        d,
        "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM ( \
           SELECT pg_get_indexdef(i.indexrelid) AS x FROM pg_index i \
           JOIN vc.tracked t ON t.relid::oid = i.indrelid \
           UNION ALL \
           SELECT c.conrelid::regclass || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid) \
           FROM pg_constraint c JOIN vc.tracked t ON t.relid::oid = c.conrelid \
           WHERE c.contype IN ('p', 'u', 'c') \
              OR c.contype = 'f' AND c.confrelid IN (SELECT relid::oid FROM vc.tracked)) y",
    )
}
