//! Versioned schema (docs/SCHEMA.md): DDL on tracked tables is committed, and reset
//! moves definitions with the rows, both ways.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    /// A table's definition (columns by name: physical order is not versioned, see
    /// docs/SCHEMA.md), primary key and rows (as `to_jsonb`, keyed by name).
    fn shape(t: &str) -> String {
        text(&format!(
            "SELECT coalesce((SELECT string_agg(format('%s:%s:%s:%s', a.attname, format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, pg_get_expr(d.adbin, d.adrelid)), ',' ORDER BY a.attname) \
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
               WHERE a.attrelid = '{t}'::regclass AND a.attnum > 0 AND NOT a.attisdropped), '') \
             || ' | ' || coalesce((SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                                   WHERE conrelid = '{t}'::regclass AND contype = 'p'), 'no key') \
             || ' | ' || coalesce((SELECT string_agg(to_jsonb(x)::text, ';' ORDER BY to_jsonb(x)::text) FROM {t} x), '')"
        ))
        .unwrap()
    }

    fn clean() -> bool {
        int("SELECT count(*) FROM vc.status()") == 0
    }

    fn nothing_to_commit() {
        expect_error("SELECT vc.commit('again')", "55000", "nothing to commit");
    }

    /// Each column change, committed; then reset to every commit, backwards and
    /// forwards: definition, rows and a clean status each time.
    #[pg_test]
    fn column_changes_commit_and_reset_both_ways() {
        run(
            "CREATE TABLE s1 (id int PRIMARY KEY, a text, b int NOT NULL DEFAULT 0);
             INSERT INTO s1 VALUES (1, 'one', 1), (2, 'two', 2), (3, NULL, 3);
             SELECT vc.track('s1');",
        );
        let mut states = Vec::new();
        let mut commit = |msg: &str| {
            let h = text(&format!("SELECT vc.commit('{msg}')")).unwrap();
            assert!(clean(), "after {msg}");
            states.push((h, shape("s1")));
        };
        commit("initial");
        run("ALTER TABLE s1 ADD COLUMN c int; UPDATE s1 SET c = id * 10 WHERE id = 1");
        commit("add c");
        run("ALTER TABLE s1 ADD COLUMN d text NOT NULL DEFAULT 'dflt'");
        commit("add d with a default");
        run("ALTER TABLE s1 RENAME COLUMN a TO a2");
        commit("rename a");
        run("ALTER TABLE s1 DROP COLUMN b");
        commit("drop b");
        run("ALTER TABLE s1 ALTER COLUMN c TYPE text USING coalesce(c::text, 'none')");
        commit("retype c");
        run("UPDATE s1 SET a2 = 'three' WHERE id = 3;
             ALTER TABLE s1 ALTER COLUMN a2 SET NOT NULL, ALTER COLUMN a2 SET DEFAULT 'x'");
        commit("a2 not null with a default");
        run("ALTER TABLE s1 ALTER COLUMN d DROP DEFAULT, ALTER COLUMN d DROP NOT NULL");
        commit("d loosened");
        nothing_to_commit();
        // Backwards to every commit, then forwards again.
        let order: Vec<usize> = (0..states.len()).rev().chain(1..states.len()).collect();
        for i in order {
            let (h, want) = &states[i];
            run(&format!("SELECT vc.reset('{h}')"));
            assert_eq!(&shape("s1"), want, "reset to commit {i}");
            assert!(clean(), "status after reset to commit {i}");
        }
        // After all that, the table is exactly HEAD: nothing to commit, and a change
        // commits incrementally as usual.
        nothing_to_commit();
        run("UPDATE s1 SET c = 'changed' WHERE id = 2");
        assert_eq!(
            text("SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status()").unwrap(),
            "0/1/0"
        );
        run("SELECT vc.commit('after the round trip')");
        assert!(clean());
    }

    /// Uncommitted DDL is part of the working set: a reset discards it.
    #[pg_test]
    fn reset_discards_uncommitted_ddl() {
        run("CREATE TABLE s2 (id int PRIMARY KEY, v text);
             INSERT INTO s2 VALUES (1, 'a');
             SELECT vc.track('s2'); SELECT vc.commit('s2');");
        let committed = shape("s2");
        run(
            "ALTER TABLE s2 ADD COLUMN w int DEFAULT 5; ALTER TABLE s2 RENAME COLUMN v TO vv;
             INSERT INTO s2 VALUES (2, 'b', 6)",
        );
        assert!(!clean());
        run("SELECT vc.reset()");
        assert_eq!(shape("s2"), committed);
        assert!(clean());
    }

    /// Changing the primary key: committed, and reset both ways.
    #[pg_test]
    fn primary_key_changes_reset_both_ways() {
        run(
            "CREATE TABLE s3 (id int PRIMARY KEY, code text NOT NULL, v int);
             INSERT INTO s3 VALUES (1, 'a', 1), (2, 'b', 2);
             SELECT vc.track('s3');",
        );
        let one = text("SELECT vc.commit('by id')").unwrap();
        let by_id = shape("s3");
        run("ALTER TABLE s3 DROP CONSTRAINT s3_pkey, ADD PRIMARY KEY (code, id)");
        run("INSERT INTO s3 VALUES (1, 'c', 3)");
        let two = text("SELECT vc.commit('by code and id')").unwrap();
        let by_code = shape("s3");
        assert!(clean());
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(shape("s3"), by_id);
        assert!(clean());
        run(&format!("SELECT vc.reset('{two}')"));
        assert_eq!(shape("s3"), by_code);
        assert!(clean());
        // The key log follows the key: a write is tracked.
        run("UPDATE s3 SET v = 9 WHERE code = 'c'");
        assert_eq!(
            text("SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status()").unwrap(),
            "0/1/0"
        );
    }

    /// Renaming a table or moving it to another schema is recorded; reset follows
    /// the table by its identity, both ways.
    #[pg_test]
    fn table_renames_reset_both_ways() {
        run("CREATE TABLE s4 (id int PRIMARY KEY, v text);
             INSERT INTO s4 VALUES (1, 'a');
             SELECT vc.track('s4');");
        let one = text("SELECT vc.commit('s4')").unwrap();
        run(
            "CREATE SCHEMA s4_other; ALTER TABLE s4 RENAME TO s4_renamed;
             ALTER TABLE s4_renamed SET SCHEMA s4_other;
             UPDATE s4_other.s4_renamed SET v = 'b'",
        );
        let two = text("SELECT vc.commit('renamed and moved')").unwrap();
        assert!(clean());
        // The diff follows the table under its new name, the rename first.
        assert_eq!(
            text("SELECT string_agg(format('%s %s %s %s', table_name, diff_type, coalesce(key->>'change', ''), \
                  CASE WHEN diff_type = 'schema' THEN format('%s -> %s', before #>> '{}', after #>> '{}') ELSE after->>'v' END), ',') \
                  FROM vc.diff('HEAD~1', 'HEAD')").unwrap(),
            "s4_other.s4_renamed schema table renamed public.s4 -> s4_other.s4_renamed,s4_other.s4_renamed modified  b"
        );
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(text("SELECT to_regclass('public.s4')::text").unwrap(), "s4");
        assert_eq!(text("SELECT v FROM public.s4").unwrap(), "a");
        assert!(clean());
        run(&format!("SELECT vc.reset('{two}')"));
        assert_eq!(text("SELECT v FROM s4_other.s4_renamed").unwrap(), "b");
        assert!(text("SELECT to_regclass('public.s4')::text").is_none());
        assert!(clean());
    }

    /// DROP TABLE of a tracked table is recorded as its removal; a reset across it
    /// creates the table again or drops it.
    #[pg_test]
    fn dropped_tables_come_and_go_with_reset() {
        run("CREATE TABLE s5 (id int PRIMARY KEY, v text);
             INSERT INTO s5 VALUES (1, 'a'), (2, 'b');
             SELECT vc.track('s5');");
        let one = text("SELECT vc.commit('s5')").unwrap();
        let kept = shape("s5");
        run("DROP TABLE s5");
        assert_eq!(
            text("SELECT format('%s:%s', table_name, deleted) FROM vc.status()").unwrap(),
            "public.s5:2"
        );
        let two = text("SELECT vc.commit('drop s5')").unwrap();
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(shape("s5"), kept);
        assert!(clean());
        run(&format!("SELECT vc.reset('{two}')"));
        assert!(text("SELECT to_regclass('public.s5')::text").is_none());
        assert!(clean());
    }

    /// A role that may write a table but does not own it cannot have a reset alter
    /// it, and nothing changes.
    #[pg_test]
    fn altering_on_reset_needs_ownership() {
        one_role_changer_at_a_time();
        run("CREATE TABLE s6 (id int PRIMARY KEY, v text);
             INSERT INTO s6 VALUES (1, 'a');
             SELECT vc.track('s6'); SELECT vc.commit('s6');
             ALTER TABLE s6 ADD COLUMN w int;
             CREATE ROLE s6_writer; GRANT pgvc_writer TO s6_writer;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO s6_writer;");
        let before = (shape("s6"), vc_state());
        run("SET ROLE s6_writer");
        expect_error("SELECT vc.reset()", "42501", "only its owner");
        run("RESET ROLE");
        assert_eq!((shape("s6"), vc_state()), before);
    }

    /// Status counts definition changes; vc.schema_diff names them, between commits
    /// and against the live tables.
    #[pg_test]
    fn status_and_schema_diff_show_definition_changes() {
        run("CREATE TABLE s7 (id int PRIMARY KEY, a text, b int);
             SELECT vc.track('s7'); SELECT vc.commit('s7');
             ALTER TABLE s7 RENAME COLUMN a TO a2;
             ALTER TABLE s7 ALTER COLUMN b TYPE bigint, ALTER COLUMN b SET NOT NULL;
             ALTER TABLE s7 ADD COLUMN c text DEFAULT 'x';");
        assert_eq!(
            text("SELECT format('%s %s/%s/%s %s', table_name, inserted, updated, deleted, schema_changes) FROM vc.status()").unwrap(),
            "public.s7 0/0/0 4"
        );
        let want = "column renamed: a -> a2; column type changed: b integer -> b bigint; \
                    column changed: b bigint -> b bigint NOT NULL; column added: - -> c text DEFAULT 'x'::text";
        let got = |sql: &str| {
            text(&format!(
                "SELECT string_agg(format('%s: %s -> %s', change, coalesce(before, '-'), coalesce(after, '-')), '; ') FROM {sql} WHERE table_name = 'public.s7'"
            ))
            .unwrap()
        };
        assert_eq!(got("vc.schema_diff('HEAD')"), want);
        run("SELECT vc.commit('reshaped')");
        assert_eq!(got("vc.schema_diff('HEAD~1', 'HEAD')"), want);
        assert_eq!(
            int("SELECT count(*) FROM vc.schema_diff('HEAD') WHERE table_name = 'public.s7'"),
            0
        );
        // Backwards, the same changes the other way round.
        assert_eq!(
            text("SELECT string_agg(change, ', ') FROM vc.schema_diff('HEAD', 'HEAD~1') WHERE table_name = 'public.s7'").unwrap(),
            "column dropped, column renamed, column type changed, column changed"
        );
        run("DROP TABLE s7");
        assert_eq!(
            text("SELECT change FROM vc.schema_diff('HEAD') WHERE table_name = 'public.s7'")
                .unwrap(),
            "table dropped"
        );
        assert_eq!(
            int("SELECT schema_changes FROM vc.status() WHERE table_name = 'public.s7'"),
            1
        );
        // Bad inputs.
        expect_error("SELECT * FROM vc.schema_diff(NULL)", "22004", "from_ref");
        expect_error(
            "SELECT * FROM vc.schema_diff('HEAD', NULL)",
            "22004",
            "to_ref",
        );
        expect_error(
            "SELECT * FROM vc.schema_diff('HEAD', 'no-such-ref')",
            "42704",
            "no-such-ref",
        );
    }

    /// vc.as_of on a commit with an older definition returns rows in today's shape:
    /// columns added since are NULL, renamed ones are read from their old names, and a
    /// renamed table finds its history.
    #[pg_test]
    fn as_of_reads_old_commits_in_todays_shape() {
        run("CREATE TABLE s8 (id int PRIMARY KEY, a text, b int);
             INSERT INTO s8 VALUES (1, 'one', 10), (2, 'two', 20);
             SELECT vc.track('s8'); SELECT vc.commit('s8 v1');
             ALTER TABLE s8 RENAME COLUMN a TO label;
             ALTER TABLE s8 ADD COLUMN c text;
             UPDATE s8 SET c = 'new', label = label || '!';
             SELECT vc.commit('s8 v2');
             ALTER TABLE s8 RENAME TO s8_renamed;
             SELECT vc.commit('s8 renamed');");
        assert_eq!(
            text("SELECT string_agg(format('%s|%s|%s|%s', id, label, b, coalesce(c, 'NULL')), ';' ORDER BY id) \
                  FROM vc.as_of(NULL::s8_renamed, 'HEAD~2')").unwrap(),
            "1|one|10|NULL;2|two|20|NULL"
        );
        assert_eq!(
            text(
                "SELECT string_agg(format('%s|%s|%s', id, label, c), ';' ORDER BY id) \
                  FROM vc.as_of(NULL::s8_renamed, 'HEAD~1')"
            )
            .unwrap(),
            "1|one!|new;2|two!|new"
        );
    }

    /// A column made generated or plain again is made anew by a reset, and its values
    /// come back with the rows (rows whose stored bytes are equal on both sides too).
    #[pg_test]
    fn generated_columns_made_plain_and_back_keep_their_values() {
        run(
            "CREATE TABLE s9 (id int PRIMARY KEY, a int, g int GENERATED ALWAYS AS (a * 2) STORED);
             INSERT INTO s9 (id, a) VALUES (1, 1), (2, 2);
             SELECT vc.track('s9');",
        );
        let one = text("SELECT vc.commit('generated')").unwrap();
        run("ALTER TABLE s9 ALTER COLUMN g DROP EXPRESSION");
        let two = text("SELECT vc.commit('plain')").unwrap();
        let values = || {
            text("SELECT string_agg(format('%s:%s:%s', id, a, g), ',' ORDER BY id) FROM s9")
                .unwrap()
        };
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(values(), "1:1:2,2:2:4");
        assert_eq!(int("SELECT count(*) FROM pg_attribute WHERE attrelid = 's9'::regclass AND attname = 'g' AND attgenerated = 's'"), 1);
        run(&format!("SELECT vc.reset('{two}')"));
        assert_eq!(values(), "1:1:2,2:2:4");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
    }

    /// A composite type's attributes added, renamed and dropped: each committed (the
    /// rows no write touched print anew, and the commit sees it), and reset moves the
    /// type and the rows both ways.
    #[pg_test]
    fn composite_attribute_changes_commit_and_reset_both_ways() {
        run("CREATE TYPE cpx AS (a int, b text);
             CREATE TABLE ct1 (id int PRIMARY KEY, c cpx, cs cpx[]);
             INSERT INTO ct1 VALUES (1, ROW(1, 'x'), ARRAY[ROW(2, 'y')::cpx]), (2, NULL, NULL),
                                    (3, ROW(3, 'w'), NULL);
             SELECT vc.track('ct1');");
        let attrs = || {
            text("SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                  FROM pg_attribute WHERE attrelid = 'cpx'::regclass::oid AND attnum > 0 AND NOT attisdropped")
            .unwrap_or_default()
        };
        let rows = || {
            text("SELECT string_agg(format('%s %s %s', id, c, cs), '; ' ORDER BY id) FROM ct1")
                .unwrap()
        };
        // What the head commit holds, printed as the live table prints it.
        let committed = || {
            text("SELECT string_agg(format('%s %s %s', id, c, cs), '; ' ORDER BY id) FROM vc.as_of(NULL::ct1, 'HEAD')").unwrap()
        };
        let mut states = vec![(text("SELECT vc.commit('one')").unwrap(), attrs(), rows())];
        for (what, ddl) in [
            ("add", "ALTER TYPE cpx ADD ATTRIBUTE z date; UPDATE ct1 SET c.z = '2020-01-01' WHERE id = 1"),
            ("rename", "ALTER TYPE cpx RENAME ATTRIBUTE b TO b2"),
            ("drop", "ALTER TYPE cpx DROP ATTRIBUTE a"),
        ] {
            run(ddl);
            let h = text(&format!("SELECT vc.commit('{what}')")).unwrap();
            assert_eq!(committed(), rows(), "{what}: the commit holds the rows as they print now");
            assert!(clean(), "{what}");
            states.push((h, attrs(), rows()));
        }
        assert_eq!(states[3].1, "b2 text, z date");
        for (h, a, r) in states.iter().rev().chain(states.iter()) {
            run(&format!("SELECT vc.reset('{h}')"));
            assert_eq!(&attrs(), a);
            assert_eq!(&rows(), r);
            assert!(clean());
        }
    }
}
