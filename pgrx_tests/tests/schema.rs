//! Versioned schema between real clusters (docs/SCHEMA.md): a standby follows DDL on
//! the primary with no hand work, clone and restore give the same definitions and
//! hashes, and a change a standby cannot apply stops it with a clear error until fixed.

use pgvc_cluster_tests::{query_scalar, wait_for, Cluster, RemoteDir};
use postgres::Client;

const PRIMARY: &[&str] = &[
    "vc.replicate_to_remote = 'origin'",
    "vc.replication_interval = 100",
];
const STANDBY: &[&str] = &[
    "vc.read_replica_remote = 'origin'",
    "vc.replication_interval = 100",
];

/// Definition (columns by name, with type, NOT NULL and default), primary key and
/// rows of every table in schemas `public` and `moved`, as text.
fn shape(d: &mut Client) -> String {
    query_scalar(
        d,
        "SELECT coalesce(string_agg(t, E'\\n' ORDER BY t), '') FROM ( \
           SELECT c.oid::regclass::text || ': ' || \
             (SELECT string_agg(format('%s %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod), \
                       CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, \
                       ' default ' || pg_get_expr(ad.adbin, ad.adrelid)), ', ' ORDER BY a.attname) \
              FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) || ' | ' || \
             coalesce((SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k \
                       WHERE k.conrelid = c.oid AND k.contype = 'p'), 'no key') AS t \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE c.relkind = 'r' AND n.nspname IN ('public', 'moved')) x",
    ) + "\n"
        + &query_scalar(
            d,
            "SELECT coalesce(string_agg(r, E'\\n' ORDER BY r), '') FROM ( \
               SELECT c.oid::regclass::text || ' ' || \
                 (xpath('/row/c/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(to_jsonb(x)::text, '';'' \
                    ORDER BY to_jsonb(x)::text), '''')) AS c FROM %s x', c.oid::regclass), false, true, '')))[1]::text AS r \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE c.relkind = 'r' AND n.nspname IN ('public', 'moved')) y",
        )
}

fn head(d: &mut Client) -> String {
    query_scalar(d, "SELECT vc.hashof('main')")
}

fn last_error(d: &mut Client) -> String {
    query_scalar(
        d,
        "SELECT coalesce(last_error, '<none>') FROM vc.replication_status() WHERE branch = 'main'",
    )
}

fn caught_up(s: &mut Client, want: &str, what: &str) {
    let got = wait_for(s, "SELECT coalesce(vc.hashof('main'), '')", want, 30);
    assert_eq!(
        got,
        want,
        "standby did not follow {what}: {}",
        last_error(s)
    );
}

fn clean(d: &mut Client) -> bool {
    query_scalar(d, "SELECT count(*)::text FROM vc.status()") == "0"
}

/// The migrations every test here runs, one commit each.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "add a nullable column",
        "ALTER TABLE items ADD COLUMN c int; UPDATE items SET c = 7 WHERE id = 2",
    ),
    (
        "add a NOT NULL column with a default",
        "ALTER TABLE items ADD COLUMN d text NOT NULL DEFAULT 'dflt'",
    ),
    ("rename a column", "ALTER TABLE items RENAME COLUMN name TO label"),
    (
        "change a type with USING",
        "ALTER TABLE items ALTER COLUMN price TYPE text USING coalesce(price::text, 'free')",
    ),
    ("drop a column", "ALTER TABLE items DROP COLUMN c"),
    (
        "NOT NULL and defaults",
        "ALTER TABLE items ALTER COLUMN price SET NOT NULL, ALTER COLUMN d DROP DEFAULT, \
         ALTER COLUMN label SET DEFAULT 'none'",
    ),
    (
        "change the primary key",
        "ALTER TABLE items DROP CONSTRAINT items_pkey, ADD PRIMARY KEY (label, id)",
    ),
    (
        "rename the table and move it",
        "CREATE SCHEMA moved; ALTER TABLE items RENAME TO goods; ALTER TABLE goods SET SCHEMA moved",
    ),
    (
        "a new table",
        "CREATE TABLE extra (k text PRIMARY KEY, n int DEFAULT 1); INSERT INTO extra VALUES ('a', 2); \
         SELECT vc.track('extra')",
    ),
    (
        "indexes, a check, unique constraints and a foreign key",
        "CREATE INDEX goods_lower_label ON moved.goods (lower(label)) WHERE id > 0; \
         ALTER TABLE moved.goods ADD CONSTRAINT goods_d_check CHECK (d <> ''); \
         ALTER TABLE moved.goods ADD CONSTRAINT goods_id_key UNIQUE (id); \
         ALTER TABLE extra ADD COLUMN goods_id int; UPDATE extra SET goods_id = 1; \
         ALTER TABLE extra ADD CONSTRAINT extra_goods_fk FOREIGN KEY (goods_id) \
           REFERENCES moved.goods (id) ON DELETE CASCADE",
    ),
    (
        "drop a check, change an index",
        "ALTER TABLE moved.goods DROP CONSTRAINT goods_d_check; DROP INDEX moved.goods_lower_label; \
         CREATE INDEX goods_lower_label ON moved.goods (upper(label))",
    ),
    (
        "drop a table and make one of that name with another shape",
        "DROP TABLE scratch; CREATE TABLE scratch (code text PRIMARY KEY, qty numeric); \
         INSERT INTO scratch VALUES ('x', 1.5); SELECT vc.track('scratch')",
    ),
    ("drop a table", "DROP TABLE extra"),
    (
        "a table without a primary key, with duplicate rows",
        "CREATE TABLE events (kind text, n int); \
         INSERT INTO events VALUES ('a', 1), ('a', 1), ('a', 1), ('b', NULL), (NULL, NULL); \
         SELECT vc.track('events')",
    ),
    (
        "one copy fewer, one more, one changed",
        "DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE kind = 'a' LIMIT 1); \
         INSERT INTO events VALUES ('b', NULL); UPDATE events SET n = 2 WHERE kind IS NULL",
    ),
    (
        "a primary key dropped",
        "ALTER TABLE scratch DROP CONSTRAINT scratch_pkey; INSERT INTO scratch VALUES ('x', 1.5)",
    ),
];

fn setup(d: &mut Client) {
    d.batch_execute(
        "CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(8,2));
         INSERT INTO items (name, price) VALUES ('apple', 1.5), ('pear', NULL), ('fig', 3);
         CREATE TABLE scratch (id int PRIMARY KEY, v text);
         INSERT INTO scratch VALUES (1, 'one');
         SELECT vc.track('items'); SELECT vc.track('scratch');
         SELECT vc.commit('initial');",
    )
    .unwrap();
}

/// A primary with `setup`'s tables committed and pushed to `remote`, and a standby
/// cloned from it: (primary, its session, standby, its session).
fn primary_and_standby(remote: &RemoteDir) -> (Cluster, Client, Cluster, Client) {
    let p = Cluster::start_with(PRIMARY);
    let mut dp = p.connect();
    dp.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');",
        remote.url()
    ))
    .unwrap();
    setup(&mut dp);
    let s = Cluster::start_with(STANDBY);
    let mut ds = s.connect();
    ds.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    (p, dp, s, ds)
}

/// The primary migrates, commit by commit; the standby follows each with no hand work:
/// same definitions, rows and root hash, and a clean status.
#[test]
fn a_standby_follows_every_schema_change() {
    let remote = RemoteDir::new("schema-follow");
    let (_p, mut dp, _s, mut ds) = primary_and_standby(&remote);
    caught_up(&mut ds, &head(&mut dp), "the clone");
    for (what, ddl) in MIGRATIONS {
        dp.batch_execute(ddl).unwrap();
        dp.batch_execute(&format!("SELECT vc.commit('{what}')"))
            .unwrap();
        caught_up(&mut ds, &head(&mut dp), what);
        assert_eq!(shape(&mut ds), shape(&mut dp), "after {what}");
        assert_eq!(
            query_scalar(&mut ds, "SELECT vc.root_hash('main')"),
            query_scalar(&mut dp, "SELECT vc.root_hash('main')"),
            "after {what}"
        );
        assert!(clean(&mut ds), "standby status after {what}");
    }
    // Writes after the migrations replicate as usual.
    dp.batch_execute(
        "UPDATE moved.goods SET d = 'changed' WHERE id = 1; INSERT INTO scratch VALUES ('y', 2);
         SELECT vc.commit('rows after the migrations')",
    )
    .unwrap();
    caught_up(&mut ds, &head(&mut dp), "rows after the migrations");
    assert_eq!(shape(&mut ds), shape(&mut dp));
}

/// After a history of schema changes, a clone and a backup restore give the same
/// definitions, rows and hashes, and a reset there goes back to the first commit and
/// forward again.
#[test]
fn clone_restore_and_reset_cross_schema_changes() {
    let remote = RemoteDir::new("schema-clone");
    let backup = RemoteDir::new("schema-backup");
    let a = Cluster::start();
    let mut da = a.connect();
    da.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');",
        remote.url()
    ))
    .unwrap();
    setup(&mut da);
    let first_shape = shape(&mut da);
    for (what, ddl) in MIGRATIONS {
        da.batch_execute(ddl).unwrap();
        da.batch_execute(&format!("SELECT vc.commit('{what}')"))
            .unwrap();
    }
    da.batch_execute(&format!(
        "SELECT vc.push(); SELECT vc.backup_add('b', '{}'); SELECT * FROM vc.backup_sync('b');",
        backup.url()
    ))
    .unwrap();
    let want = shape(&mut da);
    let root = query_scalar(&mut da, "SELECT vc.root_hash('main')");
    let b = Cluster::start();
    let mut db = b.connect();
    db.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    let c = Cluster::start();
    let mut dc = c.connect();
    dc.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.backup_restore('{}')",
        backup.url()
    ))
    .unwrap();
    for (who, d) in [("clone", &mut db), ("restore", &mut dc)] {
        assert_eq!(shape(d), want, "{who}");
        assert_eq!(
            query_scalar(d, "SELECT vc.root_hash('main')"),
            root,
            "{who}"
        );
        assert!(clean(d), "{who}");
        let n = MIGRATIONS.len();
        let tip = head(d);
        d.batch_execute(&format!("SELECT vc.reset('main~{n}')"))
            .unwrap();
        assert_eq!(shape(d), first_shape, "{who} reset to the first commit");
        assert!(clean(d), "{who} after reset back");
        d.batch_execute(&format!("SELECT vc.reset('{tip}')"))
            .unwrap();
        assert_eq!(shape(d), want, "{who} reset forward");
        assert!(clean(d), "{who} after reset forward");
    }
}

/// A change the standby cannot apply (an enum of that name here with other labels)
/// stops replication with a clear error and applies nothing; once fixed (the type
/// dropped here), the standby creates the type from the commit and resumes.
#[test]
fn a_change_the_standby_cannot_apply_stops_it_until_fixed() {
    let remote = RemoteDir::new("schema-stuck");
    let (_p, mut dp, _s, mut ds) = primary_and_standby(&remote);
    let before = head(&mut dp);
    caught_up(&mut ds, &before, "the clone");
    let shape_before = shape(&mut ds);
    ds.batch_execute("CREATE TYPE mood AS ENUM ('meh')")
        .unwrap();
    dp.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         ALTER TABLE items ADD COLUMN m mood; UPDATE items SET m = 'happy';
         SELECT vc.commit('a column of a user type')",
    )
    .unwrap();
    let err = wait_for(
        &mut ds,
        "SELECT coalesce(last_error LIKE '%mood%labels%', false)::text FROM vc.replication_status() WHERE branch = 'main'",
        "true",
        30,
    );
    assert_eq!(err, "true", "{}", last_error(&mut ds));
    assert_eq!(head(&mut ds), before);
    assert_eq!(shape(&mut ds), shape_before);
    ds.batch_execute("DROP TYPE mood").unwrap();
    caught_up(&mut ds, &head(&mut dp), "once the type is gone");
    assert_eq!(shape(&mut ds), shape(&mut dp));
    assert_eq!(last_error(&mut ds), "<none>");
}

/// User types travel: a clone into an empty database creates the enums, domains,
/// composites and ranges the tables use; a standby follows a new enum label (used in
/// the same commit), a changed domain check and a new type.
#[test]
fn user_types_travel_with_commits() {
    let remote = RemoteDir::new("schema-types");
    let p = Cluster::start_with(PRIMARY);
    let mut dp = p.connect();
    dp.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '{}');
         CREATE SCHEMA kinds;
         CREATE TYPE kinds.mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN kinds.posint AS int NOT NULL DEFAULT 1 CONSTRAINT positive CHECK (VALUE > 0);
         CREATE TYPE kinds.pair AS (a kinds.posint, b text);
         CREATE TYPE kinds.floatrange AS RANGE (subtype = float8);
         CREATE DOMAIN kinds.code AS text CONSTRAINT short CHECK (length(VALUE) < 10);
         CREATE TABLE typed (id int PRIMARY KEY, m kinds.mood, n kinds.posint, p kinds.pair,
                             r kinds.floatrange, ms kinds.mood[], c kinds.code);
         INSERT INTO typed VALUES (1, 'sad', 5, ROW(2, 'x'), '[1.5,2.5)', '{{happy,sad}}', 'abc'),
                                  (2, NULL, 7, NULL, NULL, NULL, NULL);
         SELECT vc.track('typed'); SELECT vc.commit('typed');",
        remote.url()
    ))
    .unwrap();
    let s = Cluster::start_with(STANDBY);
    let mut ds = s.connect();
    ds.batch_execute(&format!(
        "CREATE EXTENSION pgvc; SELECT vc.clone('{}')",
        remote.url()
    ))
    .unwrap();
    let types = |d: &mut Client| {
        query_scalar(
            d,
            "SELECT string_agg(format('%s %s %s', t.oid::regtype, t.typtype,                coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid), '')                || coalesce((SELECT string_agg(pg_get_constraintdef(c.oid), ',' ORDER BY conname) FROM pg_constraint c WHERE c.contypid = t.oid), '') \
                || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '')),                '; ' ORDER BY t.oid::regtype::text)              FROM pg_type t WHERE t.typnamespace = 'kinds'::regnamespace AND t.typtype IN ('e', 'd', 'c', 'r')",
        )
    };
    caught_up(&mut ds, &head(&mut dp), "the clone");
    assert_eq!(types(&mut ds), types(&mut dp));
    assert_eq!(shape(&mut ds), shape(&mut dp));
    let root = |d: &mut Client| query_scalar(d, "SELECT vc.root_hash('main')");
    assert_eq!(root(&mut ds), root(&mut dp));
    for (what, ddl) in [
        (
            "a new enum label, used at once",
            "ALTER TYPE kinds.mood ADD VALUE 'meh' BEFORE 'happy'",
        ),
        (
            "a changed domain check",
            "ALTER DOMAIN kinds.code DROP CONSTRAINT short; ALTER DOMAIN kinds.code ADD CONSTRAINT shorter CHECK (length(VALUE) < 5)",
        ),
        (
            "a new type and a column of it",
            "CREATE TYPE kinds.size AS ENUM ('s', 'm', 'l'); ALTER TABLE typed ADD COLUMN sz kinds.size",
        ),
        (
            "a composite grows an attribute",
            "ALTER TYPE kinds.pair ADD ATTRIBUTE note text",
        ),
        (
            "a composite attribute renamed, another dropped",
            "ALTER TYPE kinds.pair RENAME ATTRIBUTE b TO label; ALTER TYPE kinds.pair DROP ATTRIBUTE note",
        ),
    ] {
        dp.batch_execute(ddl).unwrap();
        dp.batch_execute(
            "UPDATE typed SET m = 'meh' WHERE id = 2; UPDATE typed SET n = n + 1",
        )
        .unwrap();
        dp.batch_execute(&format!("SELECT vc.commit('{what}')"))
            .unwrap();
        caught_up(&mut ds, &head(&mut dp), what);
        assert_eq!(types(&mut ds), types(&mut dp), "after {what}");
        assert_eq!(shape(&mut ds), shape(&mut dp), "after {what}");
        assert_eq!(root(&mut ds), root(&mut dp), "after {what}");
    }
}
