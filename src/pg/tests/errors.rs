//! Bad input to every function: a clear ERROR with a SQLSTATE, nothing changed.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn setup() {
        run("CREATE TABLE e1 (id int PRIMARY KEY, v text);
             INSERT INTO e1 VALUES (1, 'a'), (2, 'b');
             SELECT vc.track('e1');
             SELECT vc.commit('one');");
    }

    #[pg_test]
    fn track_refusals() {
        setup();
        run("CREATE TEMP TABLE tmp1 (id int PRIMARY KEY)");
        expect_error("SELECT vc.track('tmp1')", "42809", "temporary");
        expect_error("SELECT vc.track('e1')", "42710", "already tracked");
        expect_error("SELECT vc.track(NULL)", "22004", "must not be NULL");
        expect_error(
            "SELECT vc.track('no_such_table')",
            "42P01",
            "does not exist",
        );
        run("CREATE VIEW v1 AS SELECT 1 AS id");
        expect_error("SELECT vc.track('v1')", "42809", "not a table");
        run("CREATE TABLE regs (id int PRIMARY KEY, r regclass)");
        expect_error("SELECT vc.track('regs')", "0A000", "regclass");
        run("CREATE TABLE regarr (id int PRIMARY KEY, r regtype[])");
        expect_error("SELECT vc.track('regarr')", "0A000", "cannot version");
        expect_error("SELECT vc.track('vc.chunks')", "42809", "pgvc schema");
        run(
            "CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
             CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);",
        );
        expect_error("SELECT vc.track('parted_1')", "42809", "partition");
        run("CREATE TABLE untracked1 (v text)");
        expect_error("SELECT vc.untrack('untracked1')", "42704", "not tracked");
        expect_error("SELECT vc.untrack(NULL)", "22004", "must not be NULL");
    }

    #[pg_test]
    fn commit_refusals() {
        setup();
        run("UPDATE e1 SET v = 'z'");
        let before = vc_state();
        expect_error("SELECT vc.commit('')", "22023", "must not be empty");
        expect_error("SELECT vc.commit('   ')", "22023", "must not be empty");
        expect_error("SELECT vc.commit(NULL)", "22004", "message");
        expect_error("SELECT vc.commit('m', '')", "22023", "author");
        assert_eq!(vc_state(), before);
        assert_eq!(int("SELECT updated FROM vc.status()"), 2);
    }

    #[pg_test]
    fn ref_errors() {
        setup();
        for f in [
            "vc.hashof(%)",
            "vc.root_hash(%)",
            "(SELECT count(*) FROM vc.log(%))",
            "(SELECT count(*) FROM vc.diff(%))",
            "(SELECT count(*) FROM vc.schema_diff(%))",
        ] {
            let q = |arg: &str| format!("SELECT {}", f.replace('%', arg));
            expect_error(&q("'nope'"), "42704", "\"nope\"");
            expect_error(&q("'HEAD~5'"), "22023", "HEAD~5");
            expect_error(&q("'HEAD~x'"), "22023", "invalid ref");
            expect_error(&q("'~1'"), "22023", "invalid ref");
            expect_error(&q("'0000000'"), "42704", "0000000");
            expect_error(&q("NULL"), "22004", "must not be NULL");
        }
        expect_error("SELECT * FROM vc.diff('HEAD', 'nope')", "42704", "nope");
        expect_error(
            "SELECT * FROM vc.diff('HEAD', 'WORKING', 'public.nope')",
            "42P01",
            "not tracked",
        );
        expect_error("SELECT * FROM vc.as_of(NULL::e1, 'nope')", "42704", "nope");
        expect_error(
            "SELECT * FROM vc.as_of(NULL::int, 'HEAD')",
            "42809",
            "row type",
        );
        run("CREATE TABLE later (id int PRIMARY KEY)");
        expect_error(
            "SELECT * FROM vc.as_of(NULL::later, 'HEAD')",
            "42P01",
            "not in commit",
        );
        expect_error("SELECT vc.reset('nope')", "42704", "nope");
        expect_error("SELECT vc.reset(NULL)", "22004", "must not be NULL");
    }

    #[pg_test]
    fn unborn_head() {
        // Before the first commit of this transaction's view, HEAD may exist from other
        // tests' committed state; use a fresh branch name to be sure.
        run("UPDATE vc.head SET branch = 'fresh'");
        expect_error("SELECT vc.hashof('HEAD')", "42704", "no commits yet");
        expect_error("SELECT vc.reset()", "42704", "no commits yet");
    }

    #[pg_test]
    fn reset_is_all_or_nothing() {
        setup();
        run("CREATE TABLE e2 (id int PRIMARY KEY, v text);
             INSERT INTO e2 VALUES (1, 'x'), (2, 'x');
             SELECT vc.track('e2');
             SELECT vc.commit('two');");
        // e2's rows will violate an exclusion constraint added since (those are not
        // versioned, so the reset keeps it): the reset fails on e2.
        run("DELETE FROM e1; DELETE FROM e2; ALTER TABLE e2 ADD CONSTRAINT e2_one_v EXCLUDE USING btree (v WITH =);");
        expect_error("SELECT vc.reset()", "23P01", "e2_one_v");
        // e1 comes before e2, and still nothing was restored.
        assert_eq!(int("SELECT count(*) FROM e1"), 0);
    }

    #[pg_test]
    fn permissions() {
        setup();
        run("CREATE ROLE vc_nobody LOGIN");
        run("GRANT SELECT, INSERT, UPDATE, DELETE ON e1 TO vc_nobody");
        run("SET ROLE vc_nobody");
        // Writing a tracked table works for a user with table rights...
        run("INSERT INTO e1 VALUES (3, 'c')");
        // ...but pgvc's functions and tables are not for PUBLIC.
        expect_error("SELECT vc.commit('x')", "42501", "permission denied");
        expect_error("SELECT vc.reset()", "42501", "permission denied");
        expect_error("SELECT vc.track('e1')", "42501", "permission denied");
        expect_error("SELECT * FROM vc.log()", "42501", "permission denied");
        expect_error("DELETE FROM vc.refs", "42501", "permission denied");
        expect_error(
            "INSERT INTO vc.chunks VALUES ('\\x00', '\\x00')",
            "42501",
            "permission denied",
        );
        expect_error(
            "UPDATE vc.head SET branch = 'x'",
            "42501",
            "permission denied",
        );
        for f in [
            "SELECT * FROM vc.replication_status()",
            "SELECT vc.sync()",
            "SELECT vc.promote()",
            "SELECT vc.rejoin('origin')",
            "SELECT vc._replicate()",
            "UPDATE vc.replication SET role = 'primary'",
        ] {
            expect_error(f, "42501", "permission denied");
        }
        // Replication settings live in postgresql.conf, and their values are hidden.
        expect_error(
            "SET vc.replicate_to_remote = 'x'",
            "55P02",
            "cannot be changed now",
        );
        for g in [
            "vc.replicate_to_remote",
            "vc.read_replica_remote",
            "vc.replicate_heads",
        ] {
            expect_error(&format!("SHOW {g}"), "42501", "pg_read_all_settings");
        }
        // The write guard reads the role as the writer.
        run("UPDATE e1 SET v = 'd' WHERE id = 3");
        run("RESET ROLE");
        assert_eq!(int("SELECT inserted FROM vc.status()"), 1);
    }
}
