//! Foundation: commits and log on one server, and root hashes that depend only on
//! table content, not on server settings or on the history that led to it.

use pgvc_cluster_tests::{query_scalar, query_strings, Cluster};
use postgres::Client;

fn connect_with_pgvc(c: &Cluster) -> Client {
    let mut db = c.connect();
    db.batch_execute("CREATE EXTENSION pgvc").unwrap();
    db
}

fn root_hash(db: &mut Client) -> String {
    query_scalar(db, "SELECT vc.root_hash()::text")
}

#[test]
fn log_lists_commits_newest_first() {
    let c = Cluster::start();
    let mut db = connect_with_pgvc(&c);
    db.batch_execute(
        "CREATE TABLE public.items(id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.items VALUES (1, 'one');
         SELECT vc.track('public.items');
         SELECT vc.commit('first');
         INSERT INTO public.items VALUES (2, 'two');
         SELECT vc.commit('second');",
    )
    .unwrap();

    let log = query_strings(
        &mut db,
        "SELECT commit_hash::text, coalesce(array_to_string(parents, ','), ''),
                author::text, message::text
         FROM vc.log()",
    );
    assert_eq!(log.len(), 2, "log: {log:?}");
    let field = |row: usize, col: usize| log[row][col].clone().unwrap();
    let (newest, oldest) = (field(0, 0), field(1, 0));
    assert_ne!(newest, oldest);
    assert_eq!(
        (field(0, 3), field(1, 3)),
        ("second".into(), "first".into())
    );
    assert_eq!(field(0, 1), oldest, "parents of the second commit");
    assert_eq!(field(1, 1), "", "the first commit has no parents");
    assert_eq!(
        (field(0, 2), field(1, 2)),
        ("postgres".into(), "postgres".into())
    );
    assert_eq!(
        query_scalar(&mut db, "SELECT vc.hashof('HEAD')::text"),
        newest
    );
}

/// Columns whose text form depends on session settings; the values are typed literals
/// whose meaning does not (ISO dates, explicit UTC offsets, ISO 8601 intervals, hex bytea).
const MIXED_DDL: &str = "CREATE TABLE public.mixed(
    id int8 PRIMARY KEY, tstz timestamptz, ts timestamp, d date, iv interval,
    f float8, n numeric, b bytea, t text, j jsonb)";

const MIXED_ROWS: [&str; 5] = [
    "(1, '2024-03-01 12:00:00+00'::timestamptz, '2024-02-29 23:59:59.999999'::timestamp,
      '2024-03-01'::date, 'P1Y2M3DT4H5M6.789S'::interval, 0.1::float8, '1.50'::numeric,
      '\\xdeadbeef'::bytea, 'plain', '{\"b\": 1, \"a\": [1, 2.50, null]}'::jsonb)",
    "(2, '1999-12-31 23:30:00-05:30'::timestamptz, '1970-01-01 00:00:00'::timestamp,
      '0044-03-15 BC'::date, 'P-1Y2M-3DT-4H'::interval, (1::float8 / 3), '-1e-20'::numeric,
      '\\x00ff00'::bytea, 'héllo ✓', '[]'::jsonb)",
    "(3, 'infinity'::timestamptz, '-infinity'::timestamp, 'infinity'::date,
      'PT0S'::interval, 'NaN'::float8, 'NaN'::numeric, '\\x'::bytea, '', 'null'::jsonb)",
    "(4, '2038-01-19 03:14:08.5+00'::timestamptz, '2000-01-01 00:00:00.000001'::timestamp,
      '2000-02-29'::date, 'P1000D'::interval, '-1e300'::float8, '123456789012345678901234567890.123'::numeric,
      '\\x5c27'::bytea, 'quote '' and back\\slash', '{\"k\": \"v\", \"n\": 1e3}'::jsonb)",
    "(5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
];

/// The table read back under fixed settings, to check that both servers hold the same
/// data before blaming pgvc for different hashes.
fn mixed_canonical(db: &mut Client) -> Vec<Vec<Option<String>>> {
    db.batch_execute(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';
         SET extra_float_digits = 1; SET bytea_output = 'hex'",
    )
    .unwrap();
    query_strings(
        db,
        "SELECT id::text, tstz::text, ts::text, d::text, iv::text, f::text, n::text,
                b::text, t, j::text
         FROM public.mixed ORDER BY id",
    )
}

#[test]
fn root_hash_ignores_server_settings_and_insert_order() {
    let a = Cluster::start_with(&[
        "TimeZone = 'Asia/Tokyo'",
        "DateStyle = 'SQL, DMY'",
        "IntervalStyle = 'sql_standard'",
        "extra_float_digits = 0",
        "bytea_output = 'escape'",
    ]);
    let b = Cluster::start();
    let mut da = connect_with_pgvc(&a);
    let mut db = connect_with_pgvc(&b);
    da.batch_execute(MIXED_DDL).unwrap();
    db.batch_execute(MIXED_DDL).unwrap();

    // A: ascending, with detours that must leave no trace.
    for row in MIXED_ROWS {
        da.batch_execute(&format!("INSERT INTO public.mixed VALUES {row}"))
            .unwrap();
    }
    da.batch_execute(
        "UPDATE public.mixed SET t = 'changed', f = f + 1 WHERE id = 2;
         INSERT INTO public.mixed (id, t) VALUES (99, 'junk');
         DELETE FROM public.mixed WHERE id IN (2, 99);",
    )
    .unwrap();
    da.batch_execute(&format!(
        "INSERT INTO public.mixed VALUES {}",
        MIXED_ROWS[1]
    ))
    .unwrap();
    // B: descending, straight.
    for row in MIXED_ROWS.iter().rev() {
        db.batch_execute(&format!("INSERT INTO public.mixed VALUES {row}"))
            .unwrap();
    }

    for d in [&mut da, &mut db] {
        d.batch_execute("SELECT vc.track('public.mixed'); SELECT vc.commit('mixed types')")
            .unwrap();
    }
    let (ha, hb) = (root_hash(&mut da), root_hash(&mut db));
    assert_eq!(mixed_canonical(&mut da), mixed_canonical(&mut db));
    assert_eq!(ha, hb, "root hashes differ for equal content");
}

/// Tiny deterministic PRNG (xorshift64): reproducible shuffles without a dependency.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn big_row(id: u32) -> String {
    format!("({id}, 'value {id}', {})", id as i64 * 7919)
}

fn insert_big(db: &mut Client, ids: &[u32]) {
    if ids.is_empty() {
        return;
    }
    let values: Vec<String> = ids.iter().map(|&id| big_row(id)).collect();
    db.batch_execute(&format!(
        "INSERT INTO public.big VALUES {}",
        values.join(", ")
    ))
    .unwrap();
}

#[test]
fn root_hash_is_history_independent() {
    const DDL: &str = "CREATE TABLE public.big(id int PRIMARY KEY, v text, n int8);
                       SELECT vc.track('public.big');";
    let a = Cluster::start();
    let b = Cluster::start();
    let mut da = connect_with_pgvc(&a);
    let mut db = connect_with_pgvc(&b);

    // A: ascending, one commit.
    da.batch_execute(DDL).unwrap();
    insert_big(&mut da, &(1..=2000).collect::<Vec<_>>());
    da.batch_execute("SELECT vc.commit('all at once')").unwrap();

    // B: random order over three commits; 200 rows deleted and re-inserted later,
    // 50 rows updated and restored, some extra rows that end up deleted.
    db.batch_execute(DDL).unwrap();
    let mut ids: Vec<u32> = (1..=2000).collect();
    shuffle(&mut ids, 0x9e37_79b9_7f4a_7c15);
    let (first, rest) = ids.split_at(700);
    let (second, third) = rest.split_at(700);
    insert_big(&mut db, first);
    insert_big(&mut db, &[5001, 5002, 5003]);
    db.batch_execute("SELECT vc.commit('part 1')").unwrap();

    insert_big(&mut db, second);
    let gone: Vec<String> = first[..200].iter().map(u32::to_string).collect();
    let changed: Vec<String> = second[..50].iter().map(u32::to_string).collect();
    db.batch_execute(&format!(
        "DELETE FROM public.big WHERE id IN ({});
         UPDATE public.big SET v = 'changed', n = -n WHERE id IN ({});
         DELETE FROM public.big WHERE id = 5001;",
        gone.join(","),
        changed.join(",")
    ))
    .unwrap();
    db.batch_execute("SELECT vc.commit('part 2')").unwrap();

    insert_big(&mut db, third);
    insert_big(&mut db, &first[..200]);
    db.batch_execute(&format!(
        "UPDATE public.big SET v = 'value ' || id, n = id::int8 * 7919 WHERE id IN ({});
         DELETE FROM public.big WHERE id > 2000;",
        changed.join(",")
    ))
    .unwrap();
    db.batch_execute("SELECT vc.commit('part 3')").unwrap();

    let digest = "SELECT md5(string_agg(id || ':' || v || ':' || n, ',' ORDER BY id))
                  FROM public.big";
    assert_eq!(query_scalar(&mut da, digest), query_scalar(&mut db, digest));
    assert_eq!(root_hash(&mut da), root_hash(&mut db));
}

/// The roles pgvc grants its functions to must be its own: one made beforehand by
/// someone else (here one that can log in) is refused, and nothing is installed.
#[test]
fn pgvc_roles_made_by_someone_else_are_refused() {
    let c = Cluster::start();
    let mut db = c.connect();
    db.batch_execute("CREATE ROLE pgvc_admin LOGIN PASSWORD 'known'")
        .unwrap();
    let e = db.batch_execute("CREATE EXTENSION pgvc").unwrap_err();
    let e = e.as_db_error().unwrap();
    assert_eq!(e.code().code(), "42710", "{}", e.message());
    assert!(e.message().contains("pgvc_admin"), "{}", e.message());
    assert_eq!(
        query_scalar(
            &mut db,
            "SELECT count(*)::text FROM pg_extension WHERE extname = 'pgvc'"
        ),
        "0"
    );
    // Once it is a plain group role, the extension uses it.
    db.batch_execute("ALTER ROLE pgvc_admin NOLOGIN PASSWORD NULL; CREATE EXTENSION pgvc")
        .unwrap();
    assert_eq!(
        query_scalar(
            &mut db,
            "SELECT has_function_privilege('pgvc_admin', 'vc.track(regclass)', 'EXECUTE')::text"
        ),
        "true"
    );
}
