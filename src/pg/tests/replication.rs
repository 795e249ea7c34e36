//! Replication inside one server: bad input and refusals of every replication
//! function, and the write guard of each role (set through `vc.replication`, as
//! promote, rejoin and fencing do). The multi-server behaviour is tested in
//! pgrx_tests/tests/replication.rs.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn replication_refusals_without_a_role() {
        assert_eq!(
            text("SELECT role FROM vc.replication_status()").as_deref(),
            Some("none")
        );
        expect_error(
            "SELECT vc.sync()",
            "55000",
            "neither a primary nor a standby",
        );
        expect_error("SELECT vc.promote()", "55000", "needs a standby");
        expect_error("SELECT vc.rejoin(NULL)", "22004", "must not be NULL");
        expect_error(
            "SELECT vc.rejoin('nosuch')",
            "42704",
            "\"nosuch\" does not exist",
        );
        expect_error("SELECT vc.rejoin('')", "42704", "does not exist");
    }

    const WRITES: [&str; 4] = [
        "INSERT INTO rt VALUES (9, 'z')",
        "UPDATE rt SET v = 'q'",
        "DELETE FROM rt",
        "TRUNCATE rt",
    ];

    #[pg_test]
    fn standby_and_fenced_servers_refuse_writes_commits_and_resets() {
        one_role_changer_at_a_time();
        run("CREATE TABLE rt (id int PRIMARY KEY, v text);
             INSERT INTO rt VALUES (1, 'a'), (2, 'b');
             SELECT vc.track('rt'); SELECT vc.commit('c1');
             CREATE TABLE untracked (x int)");
        let before = vc_state();
        run("UPDATE vc.replication SET role = 'standby', remote = 'origin'");
        assert_eq!(
            text("SELECT role FROM vc.replication_status() LIMIT 1").as_deref(),
            Some("standby")
        );
        for sql in WRITES {
            expect_error(sql, "25006", "read-only on a standby of remote \"origin\"");
        }
        expect_error(
            "SELECT vc.commit('x', allow_empty => true)",
            "25006",
            "not allowed on a standby",
        );
        expect_error(
            "SELECT vc.reset('HEAD')",
            "25006",
            "not allowed on a standby",
        );
        expect_error(
            "SELECT vc.pull('origin')",
            "25006",
            "not allowed on a standby",
        );
        // The remote it follows is not defined: sync and promote say so.
        expect_error(
            "SELECT vc.sync()",
            "42704",
            "replication remote \"origin\" does not exist",
        );
        expect_error("SELECT vc.promote()", "42704", "does not exist");
        // Untracked tables stay writable.
        run("INSERT INTO untracked VALUES (1)");

        run("UPDATE vc.replication SET role = 'fenced'");
        for sql in WRITES {
            expect_error(sql, "25006", "fenced");
        }
        expect_error("SELECT vc.sync()", "55000", "fenced");
        expect_error("SELECT vc.promote()", "55000", "fenced");
        // Finding 9: a fenced server's push would fork the new primary's history.
        expect_error("SELECT vc.push('origin')", "25006", "fenced");
        assert_eq!(vc_state(), before);
        assert_eq!(
            text("SELECT string_agg(id || v, ',' ORDER BY id) FROM rt").as_deref(),
            Some("1a,2b")
        );

        // A primary whose remote is missing keeps its commits and reports the error.
        run("UPDATE vc.replication SET role = 'primary'");
        expect_error("SELECT vc.promote()", "55000", "already the primary");
        run("INSERT INTO rt VALUES (3, 'c')");
        run("SELECT vc.commit('kept locally')");
        assert_eq!(
            text("SELECT message FROM vc.log() LIMIT 1").as_deref(),
            Some("kept locally")
        );
        let err =
            text("SELECT last_error FROM vc.replication_status() LIMIT 1").unwrap_or_default();
        assert!(err.contains("\"origin\" does not exist"), "{err}");
        expect_error("SELECT vc.sync()", "42704", "does not exist");
        expect_error("SELECT vc.rejoin('origin')", "42704", "does not exist");
        run("UPDATE vc.replication SET role = NULL, remote = NULL");
    }

    #[pg_test]
    fn the_guard_is_removed_with_untrack() {
        one_role_changer_at_a_time();
        run("CREATE TABLE g (id int PRIMARY KEY); SELECT vc.track('g')");
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'g'::regclass AND tgname = 'vc_guard'"),
            1
        );
        run("SELECT vc.untrack('g')");
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'g'::regclass AND tgname LIKE 'vc_%'"),
            0
        );
        run("UPDATE vc.replication SET role = 'standby', remote = 'origin'");
        run("INSERT INTO g VALUES (1)");
        run("UPDATE vc.replication SET role = NULL, remote = NULL");
    }

    /// A default that calls nextval() on a sequence the table does not own (pg_dump
    /// output, pagila) is recorded with the table: a reset (and so a standby's apply,
    /// and a clone) restores it, so rows added after a promotion do not collide.
    #[pg_test]
    fn unowned_sequences_of_defaults_follow_commits() {
        run("CREATE SEQUENCE us_ids;
             CREATE TABLE us (id int DEFAULT nextval('us_ids') PRIMARY KEY, v text);
             INSERT INTO us (v) VALUES ('a'), ('b'), ('c');
             SELECT vc.track('us'); SELECT vc.commit('three')");
        run("SELECT setval('us_ids', 1, false)");
        run("SELECT vc.reset()");
        assert_eq!(int("SELECT nextval('us_ids')"), 4);
    }
}
