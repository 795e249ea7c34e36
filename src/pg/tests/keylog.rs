//! The native key-logging trigger (`pg::keylog`): what a statement logs, with other
//! triggers reading the same transition tables, and who may log.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn log_of(t: &str) -> String {
        text(&format!(
            "SELECT 'vc.' || log_table FROM vc.tracked WHERE relid = '{t}'::regclass"
        ))
        .unwrap()
    }

    fn logged(t: &str) -> String {
        let log = log_of(t);
        text(&format!(
            "SELECT coalesce(string_agg(format('%s/%s', a, b), ' ' ORDER BY a, b), '') FROM {log}"
        ))
        .unwrap()
    }

    #[pg_test]
    fn statements_log_the_keys_they_change_once() {
        run(
            "CREATE TABLE kl (a text, b int, v text, PRIMARY KEY (a, b));
             INSERT INTO kl VALUES ('x', 1, 'one'), ('x', 2, 'two'), (E'tab\\there', 3, 'three');
             SELECT vc.track('kl'); SELECT vc.commit('kl');",
        );
        assert_eq!(
            text("SELECT l.lanname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang \
                  WHERE p.oid = (SELECT tgfoid FROM pg_trigger WHERE tgrelid = 'kl'::regclass AND tgname = 'vc_track_insert')")
            .unwrap(),
            "c",
            "the key log is filled by native code"
        );
        // The log is cumulative until the next commit (truncating it by hand would
        // lose changes): each step checks everything logged so far.
        run("INSERT INTO kl VALUES ('y', 9, 'nine')");
        assert_eq!(logged("kl"), "y/9");
        // Values only: each key once, not as old and new.
        run("UPDATE kl SET v = v || '!' WHERE a = 'x'");
        assert_eq!(logged("kl"), "x/1 x/2 y/9");
        // A key change: the old key and the new one.
        run("UPDATE kl SET b = 30 WHERE b = 3");
        assert_eq!(logged("kl"), "tab\there/3 tab\there/30 x/1 x/2 y/9");
        run("DELETE FROM kl WHERE b = 1");
        assert_eq!(logged("kl"), "tab\there/3 tab\there/30 x/1 x/1 x/2 y/9");
        // Keys swapped within one statement: both are logged.
        run("UPDATE kl SET b = CASE b WHEN 2 THEN 9 ELSE 2 END WHERE b IN (2, 9)");
        assert_eq!(
            logged("kl"),
            "tab\there/3 tab\there/30 x/1 x/1 x/2 x/2 x/9 y/2 y/9 y/9"
        );
        // And the commit sees exactly the live table.
        run("SELECT vc.commit('changes')");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        assert_eq!(
            text("SELECT string_agg(format('%s/%s/%s', a, b, v), ' ' ORDER BY a, b) FROM vc.as_of(NULL::kl, 'HEAD')"),
            text("SELECT string_agg(format('%s/%s/%s', a, b, v), ' ' ORDER BY a, b) FROM kl")
        );
    }

    /// A user's own statement trigger reading the same transition table still sees
    /// every row (the key logger reads with a read pointer of its own).
    #[pg_test]
    fn other_triggers_still_read_the_transition_tables() {
        run("CREATE TABLE klo (id int PRIMARY KEY, v text);
             CREATE TABLE klo_seen (n bigint);
             CREATE FUNCTION klo_count() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO klo_seen SELECT count(*) FROM nt; RETURN NULL; END $$;
             CREATE TRIGGER a_first AFTER INSERT ON klo REFERENCING NEW TABLE AS nt
               FOR EACH STATEMENT EXECUTE FUNCTION klo_count();
             SELECT vc.track('klo');
             CREATE TRIGGER z_last AFTER INSERT ON klo REFERENCING NEW TABLE AS nt
               FOR EACH STATEMENT EXECUTE FUNCTION klo_count();
             INSERT INTO klo SELECT g, 'v' FROM generate_series(1, 5000) g;");
        assert_eq!(
            text("SELECT string_agg(n::text, ',') FROM klo_seen").unwrap(),
            "5000,5000"
        );
        assert_eq!(
            int(&format!("SELECT count(DISTINCT id) FROM {}", log_of("klo"))),
            5000
        );
    }

    /// Logging needs INSERT on the log, as the SQL trigger it replaces did: a role
    /// the log does not admit cannot write the table unlogged.
    #[pg_test]
    fn logging_needs_insert_on_the_log() {
        one_role_changer_at_a_time();
        run("CREATE TABLE klp (id int PRIMARY KEY, v text);
             SELECT vc.track('klp'); SELECT vc.commit('klp');
             CREATE ROLE klp_writer;
             GRANT INSERT, UPDATE, DELETE, SELECT ON klp TO klp_writer;");
        let log = log_of("klp");
        run(&format!("REVOKE INSERT ON {log} FROM PUBLIC"));
        run("SET ROLE klp_writer");
        expect_error(
            "INSERT INTO klp VALUES (1, 'a')",
            "42501",
            "permission denied",
        );
        run("RESET ROLE");
        assert_eq!(int("SELECT count(*) FROM klp"), 0, "nothing written");
        run(&format!("GRANT INSERT ON {log} TO PUBLIC"));
        run("SET ROLE klp_writer");
        run("INSERT INTO klp VALUES (1, 'a')");
        run("RESET ROLE");
        assert_eq!(logged_ids(&log), "1");
    }

    fn logged_ids(log: &str) -> String {
        text(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM {log}"
        ))
        .unwrap()
    }

    /// The key log is a heap table whatever the session's default access method, and
    /// the logger refuses a log that is not one (it writes with heap_insert).
    #[pg_test]
    fn the_key_log_is_always_a_heap_table() {
        run(
            "CREATE ACCESS METHOD kl_am TYPE TABLE HANDLER heap_tableam_handler;
             SET default_table_access_method = kl_am;
             CREATE TABLE kla (id int PRIMARY KEY, v text);
             SELECT vc.track('kla');
             RESET default_table_access_method;",
        );
        let log = log_of("kla");
        assert_eq!(
            text(&format!(
                "SELECT a.amname::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = '{log}'::regclass"
            ))
            .unwrap(),
            "heap"
        );
        run("INSERT INTO kla VALUES (1, 'a')");
        assert_eq!(logged_ids(&log), "1");
        // Moved to another access method by hand: refused, nothing written.
        run(&format!("ALTER TABLE {log} SET ACCESS METHOD kl_am"));
        expect_error(
            "INSERT INTO kla VALUES (2, 'b')",
            "09000",
            "not a heap table",
        );
        assert_eq!(int("SELECT count(*) FROM kla"), 1);
    }

    /// A dropped column in the log (by hand) does not shift the keys.
    #[pg_test]
    fn a_dropped_log_column_does_not_shift_the_keys() {
        run(
            "CREATE TABLE kld (a int, b text, v text, PRIMARY KEY (a, b));
             SELECT vc.track('kld');",
        );
        let log = log_of("kld");
        run(&format!(
            "ALTER TABLE {log} ADD COLUMN junk int; ALTER TABLE {log} DROP COLUMN junk"
        ));
        run(&format!(
            "ALTER TABLE {log} DROP COLUMN a, ADD COLUMN a int"
        ));
        run("INSERT INTO kld VALUES (7, 'seven', 'x')");
        assert_eq!(
            text(&format!("SELECT format('%s/%s', a, b) FROM {log}")).unwrap(),
            "7/seven"
        );
    }
}
