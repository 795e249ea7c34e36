//! Tables a checkout creates (clone, restore, reset across a DROP TABLE) are loaded
//! through COPY FROM (`pg::copy`), the primary key built after the rows: every value
//! must come back exactly, whatever it holds, and a failure must leave nothing.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    /// Every row as text, the primary key's definition and name, and the indexes.
    fn fingerprint(t: &str) -> String {
        text(&format!(
            "SELECT coalesce((SELECT md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM {t} x), 'empty') \
             || ' | ' || coalesce((SELECT format('%s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint \
                                   WHERE conrelid = '{t}'::regclass AND contype = 'p'), 'no key') \
             || ' | ' || coalesce((SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes \
                                   WHERE schemaname = 'public' AND tablename = '{t}'), 'no index') \
             || ' | ' || (SELECT count(*) FROM {t})::text"
        ))
        .unwrap()
    }

    #[pg_test]
    fn a_recreated_table_gets_every_value_back_exactly() {
        run(r#"CREATE DOMAIN cp_pos AS int CHECK (VALUE > 0);
             CREATE TABLE cp (k1 text, k2 int, t text, b bytea, arr text[], j jsonb,
                              n numeric(12,3), d cp_pos, ts timestamptz,
                              g int GENERATED ALWAYS AS (k2 * 2) STORED,
                              id bigint GENERATED ALWAYS AS IDENTITY,
                              late1 text, late2 text,
                              PRIMARY KEY (k1, k2));
             CREATE INDEX cp_t ON cp (t);
             INSERT INTO cp (k1, k2, t, b, arr, j, n, d, ts, late1, late2) VALUES
               (E'tab\there', 1, E'line\nbreak', '\x00ff5c0a09'::bytea, ARRAY[E'a\tb', 'c\d', NULL], '{"k": "v\\tw"}', 1.5, 3, '2024-01-01 00:00+00', NULL, NULL),
               (E'back\\slash', 2, E'\\N', '\x'::bytea, '{}', 'null', -0.001, 1, NULL, 'x', NULL),
               (E'\\.', 3, E'\\.', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'last'),
               (E'cr\rlf\n', 4, '', E'\\x5c4e'::bytea, ARRAY['\N'], '[1, "\\\\"]', 0, 2, 'infinity', E'\t', NULL),
               ('unicode é ✓', 5, 'plain', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
             INSERT INTO cp (k1, k2, t) SELECT 'bulk', g, repeat(md5(g::text), g % 40) FROM generate_series(6, 12000) g;
             SELECT vc.track('cp');"#);
        let one = text("SELECT vc.commit('cp')").unwrap();
        let before = fingerprint("cp");
        run("DROP TABLE cp");
        run("SELECT vc.commit('drop cp')");
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(fingerprint("cp"), before);
        assert_eq!(
            int("SELECT count(*) FROM vc.status()"),
            0,
            "the recreated table is clean"
        );
        // The identity and generated columns still work for new rows.
        run("INSERT INTO cp (k1, k2) VALUES ('new', 99999)");
        assert_eq!(
            text("SELECT g::text FROM cp WHERE k1 = 'new'").unwrap(),
            "199998"
        );
        // Rows are tracked again from here.
        run("UPDATE cp SET t = 'changed' WHERE k2 = 3");
        assert_eq!(
            text("SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status()").unwrap(),
            "1/1/0"
        );
    }

    /// A chunk missing from the store while the rows stream into COPY: the reset fails
    /// with the store's error and nothing is left behind (no half-loaded table).
    #[pg_test]
    fn a_missing_chunk_during_the_load_leaves_nothing() {
        run("CREATE TABLE cpm (id int PRIMARY KEY, v text);
             INSERT INTO cpm SELECT g, repeat('x', 200) || g FROM generate_series(1, 20000) g;
             SELECT vc.track('cpm');");
        let one = text("SELECT vc.commit('cpm')").unwrap();
        run("DROP TABLE cpm");
        run("SELECT vc.commit('drop cpm')");
        // A leaf near the end of the table: COPY has taken many rows when it is needed.
        run("DELETE FROM vc.chunks WHERE hash = (SELECT hash FROM vc.chunks \
             WHERE get_byte(data, 0) IN (1, 5) AND get_byte(data, 1) = 0 AND position('x20000'::bytea IN data) > 0 LIMIT 1)");
        crate::pg::store::clear_cache();
        let state = vc_state();
        let err = error_of(&format!("SELECT vc.reset('{one}')")).expect("the reset fails");
        assert!(err.contains("missing"), "{err}");
        assert!(text("SELECT to_regclass('public.cpm')::text").is_none());
        assert_eq!(vc_state(), state);
    }

    /// A table a checkout creates for a pgvc_admin belongs to that role and is loaded
    /// as that role, which may not read pgvc's chunk store: the rows are prepared with
    /// pgvc's rights, and only COPY runs as the owner.
    #[pg_test]
    fn a_pgvc_admin_gets_its_table_back_with_every_row() {
        one_role_changer_at_a_time();
        run("CREATE ROLE cp_admin IN ROLE pgvc_admin;
             GRANT CREATE ON SCHEMA public TO cp_admin;
             SET ROLE cp_admin;
             CREATE TABLE cpa (id int PRIMARY KEY, v text, b bytea);
             INSERT INTO cpa SELECT g, 'row ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 3000) g;
             SELECT vc.track('cpa');");
        let one = text("SELECT vc.commit('cpa')").unwrap();
        let sum = text("SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM cpa x").unwrap();
        run("DROP TABLE cpa");
        run("SELECT vc.commit('drop cpa')");
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(
            text("SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM cpa x").unwrap(),
            sum
        );
        run("RESET ROLE");
        assert_eq!(
            text("SELECT tableowner::text FROM pg_tables WHERE tablename = 'cpa'").unwrap(),
            "cp_admin"
        );
    }
}
