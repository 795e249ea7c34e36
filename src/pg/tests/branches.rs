//! Branches (docs/BRANCHES.md): vc.branch, vc.branches, vc.active_branch,
//! vc.checkout and vc.branch_delete, and their bad inputs.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn rows() -> String {
        text("SELECT coalesce(string_agg(format('%s=%s', id, v), ',' ORDER BY id), '') FROM acct")
            .unwrap()
    }

    fn setup() {
        run("CREATE TABLE acct (id int PRIMARY KEY, v text);
             INSERT INTO acct SELECT g, 'v' || g FROM generate_series(1, 500) g;
             SELECT vc.track('acct'); SELECT vc.commit('base');");
    }

    /// Two lines of work: a branch made at HEAD, changed and committed there, while
    /// main moves on. Checkout switches the rows (only those that differ) and HEAD;
    /// vc.branches() lists both with the current one marked.
    #[pg_test]
    fn branches_hold_separate_lines_and_checkout_switches_between_them() {
        setup();
        let base = text("SELECT vc.hashof('main')").unwrap();
        assert_eq!(text("SELECT vc.branch('feature')").unwrap(), base);
        assert_eq!(text("SELECT vc.active_branch()").unwrap(), "main");
        run("SELECT vc.checkout('feature')");
        assert_eq!(text("SELECT vc.active_branch()").unwrap(), "feature");
        run(
            "UPDATE acct SET v = 'feature' WHERE id <= 3; DELETE FROM acct WHERE id = 500;
             SELECT vc.commit('on feature')",
        );
        let on_feature = rows();
        run("SELECT vc.checkout('main')");
        assert_eq!(int("SELECT count(*) FROM acct WHERE v = 'feature'"), 0);
        assert_eq!(int("SELECT count(*) FROM acct"), 500);
        run("INSERT INTO acct VALUES (501, 'main only'); SELECT vc.commit('on main')");
        let on_main = rows();
        assert_eq!(
            text("SELECT string_agg(format('%s:%s', name, is_current), ',' ORDER BY name) FROM vc.branches()")
                .unwrap(),
            "feature:f,main:t"
        );
        run("SELECT vc.checkout('feature')");
        assert_eq!(rows(), on_feature);
        assert_eq!(
            text("SELECT message FROM vc.log() LIMIT 1").unwrap(),
            "on feature"
        );
        run("SELECT vc.checkout('main')");
        assert_eq!(rows(), on_main);
        // A branch at an older commit, by ref syntax.
        assert_eq!(text("SELECT vc.branch('old', 'HEAD~1')").unwrap(), base);
    }

    /// Uncommitted changes stop a checkout unless force discards them; a checkout
    /// of the current branch with force is a reset to HEAD.
    #[pg_test]
    fn checkout_keeps_uncommitted_work_unless_forced() {
        setup();
        run("SELECT vc.branch('other'); UPDATE acct SET v = 'dirty' WHERE id = 1");
        expect_error(
            "SELECT vc.checkout('other')",
            "55000",
            "uncommitted changes",
        );
        assert_eq!(text("SELECT vc.active_branch()").unwrap(), "main");
        assert_eq!(text("SELECT v FROM acct WHERE id = 1").unwrap(), "dirty");
        run("SELECT vc.checkout('other', force => true)");
        assert_eq!(text("SELECT vc.active_branch()").unwrap(), "other");
        assert_eq!(text("SELECT v FROM acct WHERE id = 1").unwrap(), "v1");
        run("UPDATE acct SET v = 'dirty again' WHERE id = 2; SELECT vc.checkout('other', true)");
        assert_eq!(text("SELECT v FROM acct WHERE id = 2").unwrap(), "v2");
    }

    /// Deleting: not the current branch; an unmerged one only with force; a merged
    /// one freely.
    #[pg_test]
    fn branch_delete_protects_the_current_and_unmerged_branches() {
        setup();
        run(
            "SELECT vc.branch('merged'); SELECT vc.branch('topic'); SELECT vc.checkout('topic');
             UPDATE acct SET v = 'x' WHERE id = 7; SELECT vc.commit('topic work');",
        );
        expect_error(
            "SELECT vc.branch_delete('topic')",
            "55000",
            "it is the current branch",
        );
        run("SELECT vc.checkout('main')");
        expect_error(
            "SELECT vc.branch_delete('topic')",
            "55000",
            "not merged into \"main\"",
        );
        run("SELECT vc.branch_delete('merged')");
        run("SELECT vc.branch_delete('topic', force => true)");
        assert_eq!(
            text("SELECT string_agg(name, ',' ORDER BY name) FROM vc.branches()").unwrap(),
            "main"
        );
    }

    /// Bad inputs: clear errors with SQLSTATEs, and nothing changed.
    #[pg_test]
    fn bad_branch_inputs_are_refused_and_change_nothing() {
        setup();
        let d = format!("/tmp/pgvc-branch-test-{}", std::process::id());
        std::fs::create_dir_all(&d).unwrap();
        run(&format!("SELECT vc.remote_add('origin', 'file://{d}')"));
        run("SELECT vc.branch('feature/x')");
        let before = vc_state();
        for (sql, state, needle) in [
            ("SELECT vc.branch('a b')", "22023", "invalid branch name"),
            ("SELECT vc.branch('HEAD')", "22023", "reserved"),
            ("SELECT vc.branch('x~1')", "22023", "invalid branch name"),
            ("SELECT vc.branch('deadbeef')", "22023", "commit hash"),
            (
                "SELECT vc.branch('origin/main')",
                "22023",
                "remote \"origin\"",
            ),
            ("SELECT vc.branch('main')", "42710", "already exists"),
            ("SELECT vc.branch('main\u{200b}')", "22023", "ASCII"),
            ("SELECT vc.branch('fenced/1/main')", "22023", "fenced/"),
            (
                "SELECT vc.remote_add('feature', 'file:///tmp')",
                "22023",
                "clashes with branch",
            ),
            ("SELECT vc.branch('n', 'nosuchref')", "", "nosuchref"),
            ("SELECT vc.branch(NULL)", "22004", "name"),
            ("SELECT vc.checkout('nosuch')", "42704", "does not exist"),
            ("SELECT vc.checkout(NULL)", "22004", "branch"),
            (
                "SELECT vc.branch_delete('nosuch')",
                "42704",
                "does not exist",
            ),
        ] {
            match state {
                "" => assert!(error_of(sql).is_some_and(|e| e.contains(needle)), "{sql}"),
                _ => expect_error(sql, state, needle),
            }
        }
        assert_eq!(vc_state(), before);
    }
}
