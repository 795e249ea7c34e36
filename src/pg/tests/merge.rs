//! Merge (docs/BRANCHES.md): vc.merge, vc.conflicts, vc.violations, vc.resolve,
//! vc.merge_abort, vc.commit during a merge, and their bad inputs.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn rows() -> String {
        text("SELECT coalesce(string_agg(format('%s=%s/%s', id, a, b), ',' ORDER BY id), '') FROM acct")
            .unwrap()
    }

    fn merge(r: &str) -> String {
        text(&format!(
            "SELECT format('%s|%s|%s|%s', commit_hash IS NOT NULL, fast_forward, conflicts, violations) \
             FROM vc.merge('{r}')"
        ))
        .unwrap()
    }

    /// acct(id, a, b) with 100 rows committed on main, and a branch `feature` there.
    fn setup() {
        run("CREATE TABLE acct (id int PRIMARY KEY, a text, b int);
             INSERT INTO acct SELECT g, 'a' || g, g FROM generate_series(1, 100) g;
             SELECT vc.track('acct'); SELECT vc.commit('base');
             SELECT vc.branch('feature')");
    }

    /// Runs `sql` on branch `feature` and commits it there, then goes back to main.
    fn on_feature(sql: &str) {
        run("SELECT vc.checkout('feature')");
        run(sql);
        run("SELECT vc.commit('on feature')");
        run("SELECT vc.checkout('main')");
    }

    fn merge_state() -> i64 {
        int("SELECT count(*) FROM vc.merge_state")
    }

    /// Disjoint changes on both sides, and changes to different columns of one row,
    /// merge into a commit whose parents are both heads; the live rows hold both.
    #[pg_test]
    fn a_clean_merge_makes_a_commit_with_two_parents() {
        setup();
        on_feature(
            "UPDATE acct SET a = 'theirs' WHERE id IN (1, 2, 50);
             DELETE FROM acct WHERE id = 99; INSERT INTO acct VALUES (200, 'new', 200)",
        );
        let theirs = text("SELECT vc.hashof('feature')").unwrap();
        run(
            "UPDATE acct SET b = -b WHERE id IN (1, 3); INSERT INTO acct VALUES (300, 'mine', 3);
             SELECT vc.commit('on main')",
        );
        let ours = text("SELECT vc.hashof('main')").unwrap();
        assert_eq!(merge("feature"), "t|f|0|0");
        assert_eq!(
            rows()
                .split(',')
                .filter(|r| r.starts_with("1=")
                    || r.starts_with("2=")
                    || r.starts_with("3=")
                    || r.starts_with("50=")
                    || r.starts_with("200=")
                    || r.starts_with("300="))
                .collect::<Vec<_>>(),
            vec![
                "1=theirs/-1",
                "2=theirs/2",
                "3=a3/-3",
                "50=theirs/50",
                "200=new/200",
                "300=mine/3"
            ]
        );
        assert_eq!(int("SELECT count(*) FROM acct WHERE id = 99"), 0);
        assert_eq!(
            text("SELECT array_to_string(parents, ',') FROM vc.log() LIMIT 1").unwrap(),
            format!("{ours},{theirs}")
        );
        assert_eq!(
            text("SELECT message FROM vc.log() LIMIT 1").unwrap(),
            "Merge feature into main"
        );
        // Nothing left over: no uncommitted change, no merge state, and the commit
        // holds what the tables hold.
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        assert_eq!(merge_state(), 0);
        let live = rows();
        run("SELECT vc.reset('HEAD')");
        assert_eq!(rows(), live);
        // Merging again: already there.
        assert_eq!(merge("feature"), "t|f|0|0");
        assert_eq!(
            text("SELECT vc.hashof('HEAD')").unwrap(),
            text("SELECT vc.hashof('main')").unwrap()
        );
    }

    /// A branch that descends from HEAD is taken as it is: a fast-forward, no new
    /// commit.
    #[pg_test]
    fn merging_a_descendant_fast_forwards() {
        setup();
        on_feature("UPDATE acct SET a = 'ff' WHERE id <= 10");
        let theirs = text("SELECT vc.hashof('feature')").unwrap();
        assert_eq!(merge("feature"), "t|t|0|0");
        assert_eq!(text("SELECT vc.hashof('main')").unwrap(), theirs);
        assert_eq!(int("SELECT count(*) FROM acct WHERE a = 'ff'"), 10);
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
    }

    /// The same cell changed differently, and a delete against an update: conflicts.
    /// The clean part is applied, the conflicting rows keep ours, nothing is committed
    /// and the commit is refused until each is resolved; then the commit has two
    /// parents and holds the decisions.
    #[pg_test]
    fn conflicts_are_recorded_resolved_and_committed() {
        setup();
        on_feature(
            "UPDATE acct SET a = 'theirs' WHERE id IN (1, 2, 3);
             DELETE FROM acct WHERE id = 4; UPDATE acct SET b = 0 WHERE id = 10",
        );
        run("UPDATE acct SET a = 'ours' WHERE id IN (1, 2, 3); UPDATE acct SET a = 'kept' WHERE id = 4;
             SELECT vc.commit('on main')");
        let ours = text("SELECT vc.hashof('main')").unwrap();
        assert_eq!(merge("feature"), "f|f|4|0");
        assert_eq!(text("SELECT vc.hashof('main')").unwrap(), ours);
        // The clean change is in; the conflicting rows hold ours.
        assert_eq!(int("SELECT b FROM acct WHERE id = 10"), 0);
        assert_eq!(int("SELECT count(*) FROM acct WHERE a = 'ours'"), 3);
        assert_eq!(text("SELECT a FROM acct WHERE id = 4").unwrap(), "kept");
        assert_eq!(
            text("SELECT string_agg(format('%s %s %s %s', key, base->>'a', ours->>'a', coalesce(theirs->>'a', 'gone')), ';' ORDER BY key->>'id') FROM vc.conflicts()").unwrap(),
            r#"{"id": 1} a1 ours theirs;{"id": 2} a2 ours theirs;{"id": 3} a3 ours theirs;{"id": 4} a4 kept gone"#
        );
        assert_eq!(
            text("SELECT ours::text FROM vc.conflicts() WHERE key = '{\"id\": 1}'").unwrap(),
            r#"{"a": "ours", "b": 1, "id": 1}"#
        );
        expect_error("SELECT vc.commit('too early')", "55000", "4 conflict(s)");
        // One row each way, the rest by table.
        assert_eq!(
            int("SELECT vc.resolve('public.acct', 'theirs', '{\"id\": 1}')"),
            1
        );
        assert_eq!(text("SELECT a FROM acct WHERE id = 1").unwrap(), "theirs");
        assert_eq!(
            int("SELECT vc.resolve('public.acct', 'theirs', '{\"id\": 4}')"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM acct WHERE id = 4"), 0);
        // Fixed by hand, then kept as the live table has it.
        run("UPDATE acct SET a = 'both' WHERE id = 2");
        assert_eq!(
            int("SELECT vc.resolve('public.acct', 'ours', '{\"id\": 2}')"),
            1
        );
        assert_eq!(int("SELECT vc.resolve('public.acct', 'ours')"), 1);
        assert_eq!(int("SELECT count(*) FROM vc.conflicts()"), 0);
        // What the commit will hold, against HEAD.
        assert_eq!(
            int("SELECT count(*) FROM vc.diff('HEAD', 'WORKING')"),
            4 // ids 1, 2, 4 and the clean change to 10
        );
        let merged = text("SELECT vc.commit('merged by hand')").unwrap();
        assert_eq!(
            text("SELECT array_length(parents, 1)::text FROM vc.log() LIMIT 1").unwrap(),
            "2"
        );
        assert_eq!(merge_state(), 0);
        let live = rows();
        run("SELECT vc.reset('HEAD')");
        assert_eq!(rows(), live);
        assert_eq!(text("SELECT vc.hashof('HEAD')").unwrap(), merged);
        assert_eq!(text("SELECT a FROM acct WHERE id = 2").unwrap(), "both");
        assert_eq!(text("SELECT a FROM acct WHERE id = 3").unwrap(), "ours");
        assert_eq!(int("SELECT b FROM acct WHERE id = 10"), 0);
    }

    /// vc.merge_abort() puts the tables back as they were before the merge, clean
    /// part and manual edits included; vc.reset() during a merge also ends it.
    #[pg_test]
    fn abort_and_reset_end_a_merge() {
        setup();
        on_feature(
            "UPDATE acct SET a = 'theirs' WHERE id IN (1, 7); DELETE FROM acct WHERE id = 8",
        );
        run("UPDATE acct SET a = 'ours' WHERE id = 1; SELECT vc.commit('on main')");
        let before = rows();
        let head = text("SELECT vc.hashof('HEAD')").unwrap();
        assert_eq!(merge("feature"), "f|f|1|0");
        assert_ne!(rows(), before);
        run("UPDATE acct SET b = 1000 WHERE id = 20");
        run("SELECT vc.merge_abort()");
        assert_eq!(rows(), before);
        assert_eq!(merge_state(), 0);
        assert_eq!(int("SELECT count(*) FROM vc.merge_conflicts"), 0);
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        assert_eq!(text("SELECT vc.hashof('HEAD')").unwrap(), head);
        // Again, ended by a reset this time.
        assert_eq!(merge("feature"), "f|f|1|0");
        run("SELECT vc.reset('HEAD')");
        assert_eq!(rows(), before);
        assert_eq!(merge_state(), 0);
        // A commit now is an ordinary one.
        expect_error("SELECT vc.commit('nothing')", "55000", "nothing to commit");
    }

    /// A clean merge of rows that break a unique constraint: theirs' row is left out
    /// and listed as a violation; resolving it 'theirs' needs the value freed first.
    #[pg_test]
    fn unique_violations_are_listed_and_resolved() {
        run("CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE);
             INSERT INTO users VALUES (1, 'a@x');
             SELECT vc.track('users'); SELECT vc.commit('base'); SELECT vc.branch('feature');
             SELECT vc.checkout('feature'); INSERT INTO users VALUES (2, 'same@x'), (3, 'b@x');
             SELECT vc.commit('theirs'); SELECT vc.checkout('main');
             INSERT INTO users VALUES (9, 'same@x'); SELECT vc.commit('ours')");
        assert_eq!(merge("feature"), "f|f|0|1");
        assert_eq!(int("SELECT count(*) FROM users WHERE id = 3"), 1);
        assert_eq!(int("SELECT count(*) FROM users WHERE id = 2"), 0);
        assert_eq!(
            text("SELECT format('%s %s %s %s', table_name, violation_type, key, \"row\"->>'email') FROM vc.violations()")
                .unwrap(),
            r#"public.users unique {"id": 2} same@x"#
        );
        assert!(text("SELECT constraint_detail FROM vc.violations()")
            .unwrap()
            .contains("users_email_key"));
        expect_error(
            "SELECT vc.commit('early')",
            "55000",
            "1 constraint violation(s)",
        );
        expect_error(
            "SELECT vc.resolve('public.users', 'theirs', '{\"id\": 2}')",
            "23505",
            "users_email_key",
        );
        run("UPDATE users SET email = 'other@x' WHERE id = 9");
        assert_eq!(
            int("SELECT vc.resolve('public.users', 'theirs', '{\"id\": 2}')"),
            1
        );
        run("SELECT vc.commit('merged')");
        assert_eq!(
            text("SELECT string_agg(format('%s=%s', id, email), ',' ORDER BY id) FROM users")
                .unwrap(),
            "1=a@x,2=same@x,3=b@x,9=other@x"
        );
    }

    /// Theirs adds a child of a parent row ours deleted: a foreign-key violation, found
    /// after the rows move, that blocks the commit until the rows are fixed with SQL.
    #[pg_test]
    fn foreign_key_violations_block_the_commit_until_fixed() {
        run(
            "CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent);
             INSERT INTO parent VALUES (1), (5);
             SELECT vc.track('parent'); SELECT vc.track('child'); SELECT vc.commit('base');
             SELECT vc.branch('feature'); SELECT vc.checkout('feature');
             INSERT INTO child VALUES (10, 5); SELECT vc.commit('theirs');
             SELECT vc.checkout('main'); DELETE FROM parent WHERE id = 5; SELECT vc.commit('ours')",
        );
        assert_eq!(merge("feature"), "f|f|0|1");
        assert_eq!(
            text("SELECT format('%s %s %s %s', table_name, violation_type, constraint_detail, key) FROM vc.violations()")
                .unwrap(),
            r#"public.child foreign key child_p_fkey {"id": 10}"#
        );
        expect_error(
            "SELECT vc.commit('early')",
            "55000",
            "1 constraint violation(s)",
        );
        run("INSERT INTO parent VALUES (5)");
        assert_eq!(int("SELECT count(*) FROM vc.violations()"), 0);
        run("SELECT vc.commit('merged')");
        assert_eq!(int("SELECT count(*) FROM child WHERE p = 5"), 1);
    }

    /// A column added on one side merges with row changes on the other: rows ours
    /// updated keep the value theirs' ALTER gave them, rows ours inserted get the
    /// default; columns added on both sides both arrive.
    #[pg_test]
    fn definition_changes_merge_with_row_changes() {
        setup();
        on_feature("ALTER TABLE acct ADD COLUMN n int NOT NULL DEFAULT 7; UPDATE acct SET n = 1 WHERE id = 2");
        run("UPDATE acct SET a = 'ours' WHERE id IN (1, 2); INSERT INTO acct VALUES (500, 'new', 0);
             ALTER TABLE acct ADD COLUMN note text; UPDATE acct SET note = 'hi' WHERE id = 3;
             SELECT vc.commit('ours')");
        assert_eq!(merge("feature"), "t|f|0|0");
        assert_eq!(
            text("SELECT string_agg(format('%s:%s:%s:%s', id, a, n, coalesce(note, '-')), ',' ORDER BY id) FROM acct WHERE id IN (1, 2, 3, 4, 500)")
                .unwrap(),
            "1:ours:7:-,2:ours:1:-,3:a3:7:hi,4:a4:7:-,500:new:7:-"
        );
        // The commit holds exactly the live table, definition included.
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        assert_eq!(
            int("SELECT count(*) FROM vc.schema_diff('HEAD', 'WORKING')"),
            0
        );
        let live = text("SELECT string_agg(format('%s', t), ',' ORDER BY id) FROM acct t").unwrap();
        run("SELECT vc.reset('HEAD')");
        assert_eq!(
            text("SELECT string_agg(format('%s', t), ',' ORDER BY id) FROM acct t").unwrap(),
            live
        );
    }

    /// Both sides changing a column differently is refused with the column and both
    /// definitions named, and nothing changes.
    #[pg_test]
    fn a_definition_conflict_changes_nothing() {
        setup();
        on_feature("ALTER TABLE acct ALTER COLUMN a SET DEFAULT 'x'");
        run("ALTER TABLE acct ALTER COLUMN a SET NOT NULL; SELECT vc.commit('ours')");
        let (before, state) = (rows(), vc_state());
        expect_error(
            "SELECT * FROM vc.merge('feature')",
            "55000",
            "definition conflict",
        );
        run("CREATE FUNCTION pg_temp.err_detail(q text) RETURNS text LANGUAGE plpgsql AS $f$
             DECLARE d text; BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL; RETURN d; END $f$");
        assert_eq!(
            text("SELECT pg_temp.err_detail('SELECT * FROM vc.merge(''feature'')')").unwrap(),
            "public.acct: column a changed differently: ours a text NOT NULL, theirs a text DEFAULT 'x'::text"
        );
        assert_eq!(rows(), before);
        assert_eq!(vc_state(), state);
        assert_eq!(merge_state(), 0);
    }

    /// Bad inputs: a clear ERROR with a SQLSTATE, and nothing changed.
    #[pg_test]
    fn bad_merge_inputs_are_refused() {
        setup();
        on_feature("UPDATE acct SET a = 't' WHERE id = 1");
        run("UPDATE acct SET a = 'o' WHERE id = 1; SELECT vc.commit('ours')");
        let state = vc_state();
        for (sql, code, needle) in [
            ("SELECT * FROM vc.merge(NULL)", "22004", "ref"),
            ("SELECT * FROM vc.merge('nosuch')", "42704", "nosuch"),
            (
                "SELECT * FROM vc.merge('feature', '  ')",
                "22023",
                "message",
            ),
            (
                "SELECT vc.resolve('public.acct', 'ours')",
                "55000",
                "no merge is in progress",
            ),
            (
                "SELECT vc.merge_abort()",
                "55000",
                "no merge is in progress",
            ),
        ] {
            expect_error(sql, code, needle);
        }
        run("UPDATE acct SET b = 0 WHERE id = 2");
        expect_error(
            "SELECT * FROM vc.merge('feature')",
            "55000",
            "uncommitted changes",
        );
        run("SELECT vc.reset('HEAD')");
        assert_eq!(vc_state(), state);
        assert_eq!(merge("feature"), "f|f|1|0");
        for (sql, code, needle) in [
            (
                "SELECT * FROM vc.merge('feature')",
                "55000",
                "is not finished",
            ),
            ("SELECT vc.checkout('feature')", "55000", "is not finished"),
            (
                "SELECT vc.resolve('public.acct', 'mine')",
                "22023",
                "unknown strategy",
            ),
            ("SELECT vc.resolve(NULL, 'ours')", "22004", "table_name"),
            (
                "SELECT vc.resolve('public.acct', NULL)",
                "22004",
                "strategy",
            ),
            (
                "SELECT vc.resolve('nosuch', 'ours')",
                "42704",
                "nothing to resolve",
            ),
            (
                "SELECT vc.resolve('acct', 'ours')",
                "42704",
                "nothing to resolve",
            ),
            (
                "SELECT vc.resolve('public.acct', 'ours', '{\"id\": 77}')",
                "42704",
                "key",
            ),
        ] {
            expect_error(sql, code, needle);
        }
        assert_eq!(int("SELECT count(*) FROM vc.conflicts()"), 1);
    }

    /// A merge that fails (a CHECK theirs' row breaks) leaves later checkouts in the
    /// session as strict as before: a reset that a unique constraint stops is an ERROR,
    /// never a success with a row silently left out.
    #[pg_test]
    fn a_failed_merge_leaves_later_checkouts_strict() {
        run("CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE, b int);
             INSERT INTO u SELECT g, 'e' || g, 0 FROM generate_series(1, 6000) g;
             SELECT vc.track('u'); SELECT vc.commit('base'); SELECT vc.branch('feature');
             SELECT vc.checkout('feature'); UPDATE u SET b = -5 WHERE id = 7; SELECT vc.commit('theirs');
             SELECT vc.checkout('main'); ALTER TABLE u ADD CONSTRAINT b_ok CHECK (b >= 0);
             SELECT vc.commit('ours')");
        expect_error("SELECT * FROM vc.merge('feature')", "23514", "b_ok");
        assert_eq!(int("SELECT count(*) FROM vc.merge_state"), 0);
        // Every email moves one row up: going back rewrites the rows in two batches,
        // the first of which needs a value a row of the second still holds.
        run(
            "UPDATE u SET email = 'tmp' || id; UPDATE u SET email = 'e' || (id % 6000 + 1);
             SELECT vc.commit('rotate')",
        );
        let want = text("SELECT md5(string_agg(format('%s=%s', id, email), ',' ORDER BY id)) FROM vc.as_of(NULL::u, 'HEAD~1')").unwrap();
        match error_of("SELECT vc.reset('HEAD~1')") {
            Some(e) => assert!(e.starts_with("23505"), "{e}"),
            None => {
                run("SELECT vc.reset('HEAD~1')");
                assert_eq!(
                    text("SELECT string_agg(format('%s=%s', id, email), ',' ORDER BY id) FROM u")
                        .unwrap(),
                    want
                );
            }
        }
    }

    /// Deciding a conflict is writing the row: a writer who may read but not write
    /// the table cannot resolve it either way.
    #[pg_test]
    fn resolving_needs_the_right_to_write_the_table() {
        setup();
        on_feature("UPDATE acct SET a = 'theirs' WHERE id = 1");
        run("UPDATE acct SET a = 'ours' WHERE id = 1; SELECT vc.commit('ours')");
        assert_eq!(merge("feature"), "f|f|1|0");
        one_role_changer_at_a_time();
        run(
            "CREATE ROLE pgvc_reviewer; GRANT pgvc_writer TO pgvc_reviewer;
             GRANT SELECT ON acct TO pgvc_reviewer; SET ROLE pgvc_reviewer",
        );
        for strategy in ["ours", "theirs"] {
            expect_error(
                &format!("SELECT vc.resolve('public.acct', '{strategy}')"),
                "42501",
                "permission denied",
            );
        }
        run("RESET ROLE");
        assert_eq!(int("SELECT count(*) FROM vc.conflicts()"), 1);
    }

    /// vc.set_conflict_policy: each policy, the previous returned; bad inputs refused
    /// with nothing changed; only the table's owner may set it.
    #[pg_test]
    fn conflict_policies_are_set_by_the_owner() {
        setup();
        assert_eq!(
            text("SELECT vc.set_conflict_policy('acct', 'newest')").unwrap(),
            "fail"
        );
        assert_eq!(
            text("SELECT vc.set_conflict_policy('acct', 'theirs')").unwrap(),
            "newest"
        );
        // A function: stored by its signature.
        run("CREATE FUNCTION public.badret(jsonb, jsonb, jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
             CREATE FUNCTION public.keep(b jsonb, o jsonb, t jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT o $$");
        assert_eq!(
            text("SELECT vc.set_conflict_policy('acct', 'public.keep')").unwrap(),
            "theirs"
        );
        assert_eq!(
            text("SELECT vc.set_conflict_policy('acct', 'theirs')").unwrap(),
            "public.keep(jsonb,jsonb,jsonb)"
        );
        run("CREATE TABLE loose (id int PRIMARY KEY)");
        for (sql, code, needle) in [
            (
                "SELECT vc.set_conflict_policy('acct', 'latest')",
                "22023",
                "unknown conflict policy",
            ),
            (
                "SELECT vc.set_conflict_policy('acct', NULL)",
                "22004",
                "policy",
            ),
            (
                "SELECT vc.set_conflict_policy(NULL, 'ours')",
                "22004",
                "tbl",
            ),
            (
                "SELECT vc.set_conflict_policy('loose', 'ours')",
                "55000",
                "not tracked",
            ),
            (
                "SELECT vc.set_conflict_policy('acct', 'public.nosuch')",
                "22023",
                "unknown conflict policy",
            ),
            (
                "SELECT vc.set_conflict_policy('acct', 'public.badret')",
                "22023",
                "must return jsonb",
            ),
        ] {
            expect_error(sql, code, needle);
        }
        one_role_changer_at_a_time();
        run(
            "CREATE ROLE pgvc_policy_writer; GRANT pgvc_writer TO pgvc_policy_writer;
             GRANT ALL ON acct TO pgvc_policy_writer; SET ROLE pgvc_policy_writer",
        );
        expect_error(
            "SELECT vc.set_conflict_policy('acct', 'ours')",
            "42501",
            "only the owner",
        );
        run("RESET ROLE");
        assert_eq!(
            text("SELECT vc.set_conflict_policy('acct', 'ours')").unwrap(),
            "theirs"
        );
    }

    /// Row owners: with vc.set_row_owner, a write of a row another server owns is
    /// refused at the statement (insert, update, delete), this server's rows are
    /// written as usual, and pgvc's own applies (a reset here) are not stopped.
    #[pg_test]
    fn a_row_another_server_owns_is_refused_at_the_statement() {
        run(
            "CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, qty int);
             INSERT INTO orders VALUES (1, 'east', 1), (2, 'west', 1);
             SELECT vc.track('orders'); SELECT vc.commit('base')",
        );
        expect_error(
            "SELECT vc.set_row_owner('orders', 'nosuch')",
            "42703",
            "no column",
        );
        run("SELECT vc.set_row_owner('orders', 'region')");
        run("SET vc.server_name = ''");
        expect_error(
            "UPDATE orders SET qty = 2 WHERE id = 1",
            "55000",
            "vc.server_name is not set",
        );
        run("SET vc.server_name = 'east'");
        run("UPDATE orders SET qty = 5 WHERE id = 1; INSERT INTO orders VALUES (3, 'east', 1)");
        expect_error(
            "UPDATE orders SET qty = 9 WHERE id = 2",
            "42501",
            "owned by server west",
        );
        expect_error(
            "DELETE FROM orders WHERE id = 2",
            "42501",
            "owned by server west",
        );
        expect_error(
            "INSERT INTO orders VALUES (4, 'west', 1)",
            "42501",
            "must be owned by this server",
        );
        expect_error(
            "UPDATE orders SET region = 'west' WHERE id = 1",
            "42501",
            "must be owned by this server",
        );
        assert_eq!(int("SELECT qty FROM orders WHERE id = 2"), 1);
        // pgvc's own writes are not a server's writes: a reset brings west's row back.
        run("SELECT vc.commit('east work'); SELECT vc.reset('HEAD~1')");
        assert_eq!(int("SELECT count(*) FROM orders"), 2);
        // Removed: every write goes again.
        run("SELECT vc.set_row_owner('orders', NULL); UPDATE orders SET qty = 9 WHERE id = 2");
        // TRUNCATE would take other servers' rows too; a generated owner column (a
        // key range) is seen as computed.
        run("SELECT vc.set_row_owner('orders', 'region')");
        expect_error("TRUNCATE orders", "42501", "other servers own");
        run("CREATE TABLE ranged (id int PRIMARY KEY,
               site text GENERATED ALWAYS AS (CASE WHEN id < 100 THEN 'east' ELSE 'west' END) STORED);
             SELECT vc.track('ranged'); SELECT vc.set_row_owner('ranged', 'site');
             INSERT INTO ranged VALUES (5)");
        expect_error(
            "INSERT INTO ranged VALUES (500)",
            "42501",
            "must be owned by this server",
        );
        expect_error(
            "UPDATE ranged SET id = 150 WHERE id = 5",
            "42501",
            "must be owned by this server",
        );
        run("RESET vc.server_name");
    }
}
