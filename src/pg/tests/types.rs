//! Exact round trip of every supported type through commit, reset, as_of and diff.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    const DDL: &str = "
        CREATE TYPE t_mood AS ENUM ('sad', 'ok', 'happy');
        CREATE DOMAIN t_posint AS int CHECK (VALUE > 0);
        CREATE TYPE t_pair AS (a int, b text);
        CREATE TABLE ty (
          id bigint PRIMARY KEY,
          i2 int2, i4 int4, n numeric, f4 float4, f8 float8, t text, vc varchar(10), c char(5),
          b bytea, bo boolean, d date, tm time, tmtz timetz, ts timestamp, tstz timestamptz,
          iv interval, u uuid, j json, jb jsonb, ip inet, cid cidr, mac macaddr, bt bit(4),
          vb varbit, r4 int4range, rtz tstzrange, arr int[][], tarr text[], m t_mood,
          dom t_posint, comp t_pair, mon money,
          gen bigint GENERATED ALWAYS AS (id * 2) STORED,
          ident int GENERATED ALWAYS AS IDENTITY
        );
        INSERT INTO ty (id,i2,i4,n,f4,f8,t,vc,c,b,bo,d,tm,tmtz,ts,tstz,iv,u,j,jb,ip,cid,mac,bt,vb,r4,rtz,arr,tarr,m,dom,comp,mon) VALUES
         (1, -32768, 2147483647, 'NaN', 'NaN', '-Infinity', '', 'abc', 'ab', '\\x00ff', true,
          '2024-02-29', '23:59:59.999999', '12:00+05:30', '1999-12-31 23:59:59.5',
          '2024-03-01 12:00:00+00', '1 year 2 mons -3 days 04:05:06.7',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1,  \"a\":[1,2]}', '{\"b\": 1, \"a\": [1,2]}',
          '192.168.1.1', '10.0.0.0/8', '08:00:2b:01:02:03', B'1010', B'101', '[1,5)',
          '[2024-01-01 00:00+00,2024-06-01 00:00+00)', '{{1,NULL},{3,4}}', '{\"a b\",\"c\\\"d\",NULL}',
          'happy', 5, ROW(1, 'x,y'), 12.34),
         (2, NULL, NULL, 123456789012345678901234567890.123456789012345678901234567890, '-0', '-0',
          E'h\\u00e9llo \\U0001F389 \\t\\n', NULL, NULL, '\\x', false, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'empty', NULL, NULL, '{}', NULL, NULL,
          ROW(NULL, NULL), NULL),
         (3, 1, 1, 0.1, 1.1, 0.1, repeat('x', 3000), 'z', 'z', decode(repeat('ab', 5000), 'hex'), NULL,
          'infinity', '00:00', '00:00+00', '-infinity', 'infinity', '0', NULL, 'null', 'null', '::1',
          '::/0', NULL, B'0000', B'', '(,)', 'empty', '{}', NULL, 'sad', 1, NULL, -1),
         (4, NULL, NULL, '1e-30', 'Infinity', 4.9e-324, NULL, NULL, NULL, NULL, NULL, '4713-01-01 BC',
          NULL, NULL, '294276-12-31 23:59:59', NULL, '-178000000 years', NULL, '[]', '{}', NULL, NULL,
          NULL, NULL, NULL, NULL, NULL, '{{{1}}}', NULL, NULL, NULL, NULL, NULL);
        CREATE TABLE ty_snap AS SELECT * FROM ty;";

    fn mismatches(rel: &str) -> i64 {
        // Compare the text of whole rows: stricter than `=` (json has no equality, -0 = 0).
        int(&format!(
            "SELECT count(*) FROM ((SELECT (x.*)::text FROM {rel} x EXCEPT ALL SELECT (s.*)::text FROM ty_snap s) \
             UNION ALL (SELECT (s.*)::text FROM ty_snap s EXCEPT ALL SELECT (x.*)::text FROM {rel} x)) d"
        ))
    }

    #[pg_test]
    fn every_type_round_trips() {
        run(DDL);
        run("SELECT vc.track('ty')");
        run("SELECT vc.commit('all types')");
        assert_eq!(mismatches("ty"), 0);
        assert_eq!(mismatches("vc.as_of(NULL::ty, 'HEAD')"), 0);
        run("UPDATE ty SET t = 'changed', f8 = 2, b = '\\x01', arr = '{1}', n = 1, j = '{}', comp = ROW(9, 'z')");
        run("DELETE FROM ty WHERE id = 2");
        assert_eq!(mismatches("vc.as_of(NULL::ty, 'HEAD')"), 0);
        run("SELECT vc.reset()");
        assert_eq!(mismatches("ty"), 0);
        // json text is preserved byte for byte, -0 keeps its sign.
        assert_eq!(
            text("SELECT j::text FROM ty WHERE id = 1").unwrap(),
            "{\"b\": 1,  \"a\":[1,2]}"
        );
        assert_eq!(text("SELECT f8::text FROM ty WHERE id = 2").unwrap(), "-0");
        // diff renders JSON by type.
        run("UPDATE ty SET f8 = 3, bo = false WHERE id = 1");
        assert_eq!(
            text("SELECT format('%s %s %s %s', before->'f8', after->'f8', after->'b', after->'bo') FROM vc.diff('HEAD')").unwrap(),
            "\"-Infinity\" 3 \"\\\\x00ff\" false"
        );
        assert_eq!(
            text("SELECT after->>'n' FROM vc.diff('HEAD')").unwrap(),
            "NaN"
        );
        assert_eq!(
            text("SELECT (after->'mon')::text FROM vc.diff('HEAD')").unwrap(),
            "\"$12.34\""
        );
    }

    /// vc.diff renders every row exactly as to_jsonb(row) does, for every type:
    /// timestamps with a T, arrays as arrays, composites as objects, domains over
    /// numbers as numbers; between commits and against the live table.
    #[pg_test]
    fn diff_renders_rows_as_to_jsonb_does() {
        run(DDL);
        run("SET TimeZone = 'UTC'");
        run("SELECT vc.track('ty')");
        let differ = |sql: &str| {
            int(&format!(
                "SELECT count(*) FROM ({sql}) dd FULL JOIN ty zz ON (dd.key->>'id')::bigint = zz.id \
                 WHERE dd.after IS DISTINCT FROM to_jsonb(zz)"
            ))
        };
        run("SELECT vc.commit('first')");
        run("SELECT vc.commit('empty', allow_empty => true)");
        // Against the live table, then between commits.
        run("UPDATE ty SET t = coalesce(t, '') || '!'");
        assert_eq!(differ("SELECT * FROM vc.diff('HEAD')"), 0);
        run("SELECT vc.commit('changed')");
        assert_eq!(differ("SELECT * FROM vc.diff('HEAD~1', 'HEAD')"), 0);
        // And the before side is the committed row as to_jsonb gave it then.
        assert_eq!(
            int("SELECT count(*) FROM vc.diff('HEAD~1', 'HEAD') dd JOIN ty_snap zz ON zz.id = (dd.key->>'id')::bigint \
                 WHERE dd.before IS DISTINCT FROM to_jsonb(zz)"),
            0
        );
        // Paths into arrays and composites work as on to_jsonb.
        assert_eq!(
            text("SELECT format('%s %s %s %s', after->'arr'->0->0, after->'comp'->'b', after->'dom', after->'ts') \
                  FROM vc.diff('HEAD~1', 'HEAD') WHERE key->>'id' = '1'").unwrap(),
            "1 \"x,y\" 5 \"1999-12-31T23:59:59.5\""
        );
    }

    /// Rendering a value through the server never runs another role's code: a
    /// domain is read as its base type (its check does not run), and a composite
    /// whose input would run a non-superuser's check keeps its text.
    #[pg_test]
    fn diff_rendering_runs_no_other_roles_code() {
        run("CREATE ROLE ty_evil;
             CREATE TABLE ty_calls (n int); GRANT INSERT ON ty_calls TO ty_evil;
             CREATE FUNCTION ty_check(int) RETURNS bool LANGUAGE plpgsql
               AS $$ BEGIN INSERT INTO public.ty_calls VALUES ($1); RETURN true; END $$;
             ALTER FUNCTION ty_check(int) OWNER TO ty_evil;
             CREATE DOMAIN ty_dom AS int CHECK (ty_check(VALUE));
             CREATE TYPE ty_wrap AS (v ty_dom);
             CREATE TABLE ty_w (id int PRIMARY KEY, w ty_wrap, d ty_dom);
             INSERT INTO ty_w VALUES (1, ROW(5), 6);
             SELECT vc.track('ty_w'); SELECT vc.commit('w');
             UPDATE ty_w SET d = 7;
             DELETE FROM ty_calls;");
        // as_of, which casts history rows in the caller's query, refuses a table whose
        // composite column would run that check (it did not look into composites).
        run("CREATE TABLE ty_w2 (id int PRIMARY KEY, w ty_wrap);
             SELECT vc.track('ty_w2'); SELECT vc.commit('w2');
             UPDATE ty_w SET d = 8; DELETE FROM ty_calls;");
        expect_error(
            "SELECT * FROM vc.as_of(NULL::ty_w2, 'HEAD')",
            "42501",
            "ty_evil",
        );

        assert_eq!(
            text("SELECT format('%s %s', after->'w', after->'d') FROM vc.diff('HEAD') WHERE table_name = 'public.ty_w'").unwrap(),
            "\"(5)\" 8"
        );
        assert_eq!(int("SELECT count(*) FROM ty_calls"), 0);
        // A cast another role made from text to a type (or from it to json, which
        // to_jsonb uses) would run its function: such a type keeps its text too.
        run("CREATE TYPE ty_e AS ENUM ('a', 'b');
             CREATE FUNCTION ty_cast(text) RETURNS ty_e LANGUAGE plpgsql
               AS $$ BEGIN INSERT INTO public.ty_calls VALUES (1);
                     RETURN CASE $1 WHEN 'a' THEN 'a'::public.ty_e ELSE 'b'::public.ty_e END; END $$;
             CREATE CAST (text AS ty_e) WITH FUNCTION ty_cast(text);
             ALTER FUNCTION ty_cast(text) OWNER TO ty_evil;
             CREATE TABLE ty_c (id int PRIMARY KEY, e ty_e);
             INSERT INTO ty_c VALUES (1, 'a');
             SELECT vc.track('ty_c'); SELECT vc.commit('c');
             UPDATE ty_c SET e = 'b';
             DELETE FROM ty_calls;");
        assert_eq!(
            text("SELECT after->>'e' FROM vc.diff('HEAD') WHERE table_name = 'public.ty_c'")
                .unwrap(),
            "b"
        );
        assert_eq!(int("SELECT count(*) FROM ty_calls"), 0);
    }

    #[pg_test]
    fn large_value_round_trips() {
        run("CREATE TABLE tbig (id int PRIMARY KEY, v text)");
        run("INSERT INTO tbig VALUES (1, repeat('0123456789', 5000000)), (2, 'small')");
        run("SELECT vc.track('tbig')");
        run("SELECT vc.commit('50 MB')");
        run("UPDATE tbig SET v = 'x'");
        run("SELECT vc.reset()");
        assert_eq!(
            int("SELECT length(v)::int8 FROM tbig WHERE id = 1"),
            50_000_000
        );
        assert_eq!(int("SELECT (md5(v) = md5(repeat('0123456789', 5000000)))::int::int8 FROM tbig WHERE id = 1"), 1);
    }

    #[pg_test]
    fn key_types() {
        run("CREATE TABLE k_text (k text PRIMARY KEY, v int);
             CREATE TABLE k_uuid (k uuid PRIMARY KEY, v int);
             CREATE TABLE k_ts (k timestamptz PRIMARY KEY, v int);
             CREATE TABLE k_comp (a text, b int8, c date, v int, PRIMARY KEY (a, b, c));
             CREATE TABLE k_odd (a char(3), b inet, c boolean, v int, PRIMARY KEY (a, b, c));
             INSERT INTO k_odd SELECT chr(97 + g % 5), ('10.0.' || g || '.1')::inet, g % 2 = 0, g FROM generate_series(1, 50) g;
             INSERT INTO k_text VALUES ('', 1), ('a\"b', 2), (E'\\u00e9', 3), ('z', 4);
             INSERT INTO k_uuid SELECT md5(g::text)::uuid, g FROM generate_series(1, 50) g;
             INSERT INTO k_ts SELECT '2024-01-01'::timestamptz + g * interval '1.5 second', g FROM generate_series(1, 50) g;
             INSERT INTO k_comp SELECT 'k' || (g % 3), -g, '2024-01-01'::date + g, g FROM generate_series(1, 50) g;");
        for t in ["k_text", "k_uuid", "k_ts", "k_comp", "k_odd"] {
            run(&format!("SELECT vc.track('{t}')"));
        }
        run("SELECT vc.commit('keys')");
        run("UPDATE k_text SET v = v + 10; UPDATE k_uuid SET v = -v WHERE v < 10; DELETE FROM k_ts WHERE v > 40;
             UPDATE k_comp SET v = 0 WHERE b = -7");
        assert_eq!(
            int("SELECT sum(updated + deleted)::int8 FROM vc.status()"),
            4 + 9 + 10 + 1
        );
        run("SELECT vc.reset()");
        assert_eq!(int("SELECT sum(v)::int8 FROM k_text"), 10);
        assert_eq!(int("SELECT sum(v)::int8 FROM k_uuid"), 1275);
        assert_eq!(int("SELECT count(*) FROM k_ts"), 50);
        assert_eq!(int("SELECT sum(v)::int8 FROM k_comp"), 1275);
        run("UPDATE k_odd SET v = 0");
        run("TRUNCATE k_odd");
        run("INSERT INTO k_odd VALUES ('zz', '1.2.3.4', true, 1)");
        assert_eq!(text("SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status() WHERE table_name = 'public.k_odd'").unwrap(), "1/0/50");
        run("SELECT vc.reset()");
        assert_eq!(int("SELECT sum(v)::int8 FROM k_odd"), 1275);
        assert_eq!(
            int("SELECT count(*) FROM vc.diff('HEAD', 'WORKING', 'public.k_comp')"),
            0
        );
        run("UPDATE k_comp SET v = 0 WHERE b = -7");
        assert_eq!(
            text("SELECT key::text FROM vc.diff('HEAD', 'WORKING', 'public.k_comp')").unwrap(),
            "{\"a\": \"k1\", \"b\": -7, \"c\": \"2024-01-08\"}"
        );
    }

    #[pg_test]
    fn odd_names() {
        run("CREATE SCHEMA \"My Schema\";
             CREATE TABLE \"My Schema\".\"Odd \"\"Name\"\"\" (\"Key Col\" int PRIMARY KEY, \"select\" text, \"a,b\" int);
             INSERT INTO \"My Schema\".\"Odd \"\"Name\"\"\" VALUES (1, 'x', 2);
             SELECT vc.track('\"My Schema\".\"Odd \"\"Name\"\"\"');
             SELECT vc.commit('odd');
             UPDATE \"My Schema\".\"Odd \"\"Name\"\"\" SET \"select\" = 'y';");
        assert_eq!(
            text("SELECT table_name FROM vc.status()").unwrap(),
            "\"My Schema\".\"Odd \"\"Name\"\"\""
        );
        assert_eq!(
            text("SELECT after::text FROM vc.diff('HEAD')").unwrap(),
            "{\"a,b\": 2, \"select\": \"y\", \"Key Col\": 1}"
        );
        run("SELECT vc.reset()");
        assert_eq!(
            text("SELECT \"select\" FROM \"My Schema\".\"Odd \"\"Name\"\"\"").unwrap(),
            "x"
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::\"My Schema\".\"Odd \"\"Name\"\"\", 'HEAD')"),
            1
        );
    }
}
