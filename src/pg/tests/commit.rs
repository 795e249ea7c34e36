#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn items(name: &str) {
        run(&format!(
            "CREATE TABLE {name} (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
             INSERT INTO {name} VALUES (1, 'apple', 1.50), (2, 'pear', 2.00), (3, 'fig', 3.25);
             SELECT vc.track('{name}');"
        ));
    }

    #[pg_test]
    fn commit_log_status_reset_round_trip() {
        items("c1");
        assert_eq!(
            text("SELECT table_name || ':' || inserted FROM vc.status()").unwrap(),
            "public.c1:3"
        );
        let first = text("SELECT vc.commit('initial')").unwrap();
        assert_eq!(first.len(), 64);
        assert!(first
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        run("UPDATE c1 SET price = 9 WHERE id = 1; DELETE FROM c1 WHERE id = 2; INSERT INTO c1 VALUES (4, 'kiwi', NULL)");
        assert_eq!(
            text("SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status()").unwrap(),
            "1/1/1"
        );
        assert_eq!(
            text("SELECT string_agg(diff_type || key::text, ' ' ORDER BY key::text) FROM vc.diff('HEAD')").unwrap(),
            "modified{\"id\": 1} removed{\"id\": 2} added{\"id\": 4}"
        );
        let second = text("SELECT vc.commit('second', 'alice')").unwrap();
        assert_eq!(text("SELECT vc.hashof('HEAD')").unwrap(), second);
        assert_eq!(text("SELECT vc.hashof('HEAD~1')").unwrap(), first);
        assert_eq!(text("SELECT vc.hashof('HEAD^')").unwrap(), first);
        assert_eq!(
            text(&format!("SELECT vc.hashof('{}')", &first[..9])).unwrap(),
            first
        );
        assert_eq!(
            text("SELECT string_agg(message || ':' || author || ':' || cardinality(parents), ',') FROM vc.log()").unwrap(),
            "second:alice:1,initial:postgres:0"
        );
        assert_eq!(
            text("SELECT (parents)[1] FROM vc.log() LIMIT 1").unwrap(),
            first
        );
        // as_of returns typed rows of an older commit.
        assert_eq!(
            text("SELECT string_agg(id || '=' || price, ',' ORDER BY id) FROM vc.as_of(NULL::c1, 'HEAD~1')").unwrap(),
            "1=1.50,2=2.00,3=3.25"
        );
        // Mistake, then reset to HEAD.
        run("DELETE FROM c1");
        run("SELECT vc.reset()");
        assert_eq!(
            text("SELECT string_agg(id || '=' || coalesce(price::text, 'null'), ',' ORDER BY id) FROM c1").unwrap(),
            "1=9.00,3=3.25,4=null"
        );
        // Reset to an older commit moves the branch.
        run("SELECT vc.reset('HEAD~1')");
        assert_eq!(text("SELECT vc.hashof('HEAD')").unwrap(), first);
        assert_eq!(int("SELECT count(*) FROM c1"), 3);
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
    }

    #[pg_test]
    fn empty_commit_refused_unless_allowed() {
        items("c2");
        run("SELECT vc.commit('one')");
        let before = vc_state();
        expect_error("SELECT vc.commit('nothing')", "55000", "nothing to commit");
        // A statement that rewrites a row with the same values is not a change either.
        run("UPDATE c2 SET name = name");
        expect_error("SELECT vc.commit('nothing')", "55000", "nothing to commit");
        assert_eq!(vc_state(), before);
        let h = text("SELECT vc.commit('empty', allow_empty => true)").unwrap();
        assert_eq!(text("SELECT vc.hashof('HEAD')").unwrap(), h);
    }

    #[pg_test]
    fn rolled_back_commit_leaves_nothing() {
        items("c3");
        run("SELECT vc.commit('one')");
        run("INSERT INTO c3 VALUES (10, 'ten', 10)");
        let before = vc_state();
        // The commit runs, then its subtransaction is rolled back.
        assert!(error_of("SELECT vc.commit('two'); SELECT 1/0")
            .unwrap()
            .starts_with("22012"));
        assert_eq!(vc_state(), before, "no ref move, no chunk after rollback");
        // The change is still pending and lands in the next commit.
        assert_eq!(int("SELECT inserted FROM vc.status()"), 1);
        run("SELECT vc.commit('two')");
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::c3, 'HEAD') WHERE id = 10"),
            1
        );
    }

    #[pg_test]
    fn truncate_is_tracked() {
        items("c4");
        run("SELECT vc.commit('one')");
        run("TRUNCATE c4");
        assert_eq!(int("SELECT deleted FROM vc.status()"), 3);
        run("SELECT vc.commit('truncated')");
        assert_eq!(int("SELECT count(*) FROM vc.as_of(NULL::c4, 'HEAD')"), 0);
        run("SELECT vc.reset('HEAD~1')");
        assert_eq!(int("SELECT count(*) FROM c4"), 3);
    }

    #[pg_test]
    fn schema_and_sequences_are_committed() {
        run("CREATE TABLE c5 (id serial PRIMARY KEY, v text DEFAULT 'x' NOT NULL)");
        run("INSERT INTO c5 (v) VALUES ('a'), ('b')");
        run("SELECT vc.track('c5')");
        run("SELECT vc.commit('one')");
        run("INSERT INTO c5 (v) VALUES ('c'), ('d')");
        run("SELECT vc.reset()");
        // The owned sequence went back with the rows: the next id does not collide.
        assert_eq!(int("SELECT count(*) FROM c5"), 2);
        assert_eq!(int("SELECT nextval('c5_id_seq')"), 3);
        // A schema change is a change; reset discards it while uncommitted.
        run("ALTER TABLE c5 ADD COLUMN w int");
        run("SELECT vc.reset()");
        assert_eq!(int("SELECT count(*) FROM pg_attribute WHERE attrelid = 'c5'::regclass AND attname = 'w'"), 0);
        run("ALTER TABLE c5 ADD COLUMN w int");
        run("SELECT vc.commit('add w')");
        assert_ne!(
            text("SELECT vc.root_hash('HEAD')"),
            text("SELECT vc.root_hash('HEAD~1')")
        );
    }

    #[pg_test]
    fn untrack_and_drop_clean_up() {
        items("c6");
        run("SELECT vc.commit('one')");
        run("SELECT vc.untrack('c6')");
        assert_eq!(int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'c6'::regclass AND tgname LIKE 'vc_%'"), 0);
        run("SELECT vc.commit('untracked c6')");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        run("SELECT vc.track('c6')");
        run("DROP TABLE c6");
        assert_eq!(int("SELECT count(*) FROM vc.tracked"), 0);
        assert_eq!(int("SELECT count(*) FROM pg_class WHERE relname LIKE 'log\\_%' AND relnamespace = 'vc'::regnamespace"), 0);
    }

    #[pg_test]
    fn primary_key_changes_keep_tracking_right() {
        run(
            "CREATE TABLE c7 (id int PRIMARY KEY, code text NOT NULL, v int);
             INSERT INTO c7 VALUES (1, 'a', 1), (2, 'b', 2);
             SELECT vc.track('c7');
             SELECT vc.commit('one');",
        );
        run("ALTER TABLE c7 DROP CONSTRAINT c7_pkey");
        // Without a primary key the table is keyed by content (tests/keyless.rs).
        run("INSERT INTO c7 VALUES (3, 'c', 3)");
        run("SELECT vc.commit('keyless')");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        run("ALTER TABLE c7 ADD PRIMARY KEY (code)");
        run("UPDATE c7 SET v = 20 WHERE code = 'b'");
        run("SELECT vc.commit('keyed by code')");
        assert_eq!(
            text("SELECT string_agg(key::text, ' ' ORDER BY key::text) FROM vc.diff('HEAD~1', 'HEAD') WHERE diff_type = 'added'").unwrap(),
            "{\"code\": \"a\"} {\"code\": \"b\"} {\"code\": \"c\"}"
        );
        // Incremental tracking follows the new key.
        run("UPDATE c7 SET v = 30 WHERE code = 'c'");
        assert_eq!(
            text("SELECT key::text FROM vc.diff('HEAD')").unwrap(),
            "{\"code\": \"c\"}"
        );
        run("SELECT vc.commit('three')");
        assert_eq!(
            int("SELECT v::int8 FROM vc.as_of(NULL::c7, 'HEAD') WHERE code = 'c'"),
            30
        );
    }
}
