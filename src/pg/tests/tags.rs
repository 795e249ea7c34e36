//! Tags (docs/BRANCHES.md): vc.tag, vc.tags, vc.tag_delete, ref syntax through a
//! tag, tags travelling through a file:// remote, and bad inputs.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn setup() {
        run("CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t VALUES (1, 'one'); SELECT vc.track('t'); SELECT vc.commit('first');
             UPDATE t SET v = 'two'; SELECT vc.commit('second')");
    }

    /// A tag names a commit for good: ref syntax reads it as that commit, it lists
    /// with its message and tagger, and it survives the branch moving on.
    #[pg_test]
    fn a_tag_names_a_commit() {
        setup();
        let first = text("SELECT vc.hashof('HEAD~1')").unwrap();
        assert_eq!(
            text("SELECT vc.tag('v1', 'HEAD~1', 'the first release')").unwrap(),
            first
        );
        let head = text("SELECT vc.hashof('HEAD')").unwrap();
        assert_eq!(text("SELECT vc.tag('latest')").unwrap(), head);
        run("UPDATE t SET v = 'three'; SELECT vc.commit('third')");
        assert_eq!(text("SELECT vc.hashof('v1')").unwrap(), first);
        assert_eq!(text("SELECT vc.hashof('latest')").unwrap(), head);
        assert_eq!(
            text("SELECT string_agg(format('%s %s %s %s', name, commit_hash = vc.hashof(name), coalesce(message, '-'), tagger = current_user), ';' ORDER BY name) FROM vc.tags()")
                .unwrap(),
            "latest t - t;v1 t the first release t"
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.tags() WHERE tagged_at > now() - interval '1 hour'"),
            2
        );
        // Reading history and rows through it.
        assert_eq!(
            text("SELECT message FROM vc.log('v1') LIMIT 1").unwrap(),
            "first"
        );
        assert_eq!(
            text("SELECT v FROM vc.as_of(NULL::t, 'v1')").unwrap(),
            "one"
        );
        assert_eq!(int("SELECT count(*) FROM vc.diff('v1', 'latest')"), 1);
        // A branch from a tag starts at the tagged commit.
        assert_eq!(text("SELECT vc.branch('fix', 'v1')").unwrap(), first);
        // Tags are not branches: no checkout, not in vc.branches().
        expect_error(
            "SELECT vc.checkout('v1')",
            "42809",
            "is a tag ref, not a branch",
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.branches() WHERE name = 'v1'"),
            0
        );
        // A gc keeps what a tag reaches.
        run("SELECT vc.reset('HEAD~2')");
        run("SELECT vc.branch_delete('fix', true)");
        run("SELECT * FROM vc.gc()");
        assert_eq!(
            text("SELECT v FROM vc.as_of(NULL::t, 'latest')").unwrap(),
            "two"
        );
        run("SELECT vc.tag_delete('latest')");
        assert_eq!(
            text("SELECT string_agg(name, ',') FROM vc.tags()").unwrap(),
            "v1"
        );
    }

    /// Tags go with a push (each the remote lacks) and come with a fetch; a tag that
    /// exists here is kept.
    #[pg_test]
    fn tags_travel_through_a_remote() {
        setup();
        let d = format!("/tmp/pgvc-pgtest-tags-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&d);
        run(&format!("SELECT vc.remote_add('origin', 'file://{d}')"));
        run("SELECT vc.tag('v1', 'HEAD~1', 'first'); SELECT vc.tag('v2')");
        run("SELECT vc.push('origin')");
        let (v1, v2) = (
            text("SELECT vc.hashof('v1')").unwrap(),
            text("SELECT vc.hashof('v2')").unwrap(),
        );
        // Gone here, back by a fetch, message and all.
        run(
            "SELECT vc.tag_delete('v1'); SELECT vc.tag_delete('v2'); SELECT vc.tag('v2', 'HEAD~1')",
        );
        let fetched = text("SELECT string_agg(format('%s=%s', branch, commit_hash), ',' ORDER BY branch) FROM vc.fetch('origin')")
            .unwrap();
        assert_eq!(fetched, format!("main={v2},tags/v1={v1}"));
        assert_eq!(text("SELECT vc.hashof('v1')").unwrap(), v1);
        assert_eq!(
            text("SELECT message FROM vc.tags() WHERE name = 'v1'").unwrap(),
            "first"
        );
        // The local v2 (another commit) was kept.
        assert_eq!(text("SELECT vc.hashof('v2')").unwrap(), v1);
        // Pushing a tag by name: refused where the remote has another of that name,
        // unless forced.
        expect_error(
            "SELECT vc.push('origin', 'v2')",
            "55000",
            "another tag named \"v2\"",
        );
        assert_eq!(text("SELECT vc.push('origin', 'v2', true)").unwrap(), v1);
        // Deleting on the remote: a branch, then a tag, by ':name'.
        run("SELECT vc.branch('feature'); SELECT vc.push('origin', 'feature')");
        assert_eq!(
            int("SELECT count(*) FROM vc.branches() WHERE name = 'origin/feature'"),
            1
        );
        assert_eq!(text("SELECT vc.push('origin', ':feature')").unwrap(), v2);
        assert_eq!(
            int("SELECT count(*) FROM vc.branches() WHERE name = 'origin/feature'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.branches() WHERE name = 'feature'"),
            1
        );
        assert_eq!(text("SELECT vc.push('origin', ':v1')").unwrap().len(), 64);
        // What the remote has now: fetched into a clean slate of tags.
        run("SELECT vc.tag_delete('v1'); SELECT vc.tag_delete('v2')");
        assert_eq!(
            text("SELECT string_agg(format('%s=%s', branch, commit_hash), ',' ORDER BY branch) FROM vc.fetch('origin')").unwrap(),
            format!("main={v2},tags/v2={v1}")
        );
        expect_error(
            "SELECT vc.push('origin', ':nosuch')",
            "42704",
            "has no branch or tag",
        );
        expect_error(
            "SELECT vc.push('origin', ':')",
            "22023",
            "nothing to delete",
        );
        // A tag may not take the shape of a remote's tracking refs, nor a remote the
        // shape of a tag's.
        run("SELECT vc.tag('up/main')");
        expect_error(
            &format!("SELECT vc.remote_add('up', 'file://{d}')"),
            "22023",
            "clashes with branch or tag \"up/main\"",
        );
        expect_error("SELECT vc.tag('origin/main')", "22023", "remote \"origin\"");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Bad inputs: a clear ERROR with a SQLSTATE, and nothing changed.
    #[pg_test]
    fn bad_tag_inputs_are_refused() {
        setup();
        run("SELECT vc.tag('v1')");
        let state = vc_state();
        for (sql, code, needle) in [
            ("SELECT vc.tag(NULL)", "22004", "name"),
            ("SELECT vc.tag('x', NULL)", "22004", "ref"),
            ("SELECT vc.tag('v1')", "42710", "already exists"),
            ("SELECT vc.tag('main')", "42710", "a branch named \"main\""),
            ("SELECT vc.tag('a b')", "22023", "invalid tag name"),
            ("SELECT vc.tag('tags/x')", "22023", "tags/"),
            ("SELECT vc.tag('HEAD')", "22023", "reserved"),
            ("SELECT vc.tag('deadbeef')", "22023", "commit hash"),
            ("SELECT vc.tag('x', 'nosuch')", "42704", "nosuch"),
            ("SELECT vc.tag('x', 'HEAD', ' ')", "22023", "message"),
            ("SELECT vc.tag_delete('nosuch')", "42704", "does not exist"),
            ("SELECT vc.tag_delete('main')", "42704", "does not exist"),
            ("SELECT vc.tag_delete(NULL)", "22004", "name"),
            ("SELECT vc.branch('tags/x')", "22023", "tags/"),
        ] {
            expect_error(sql, code, needle);
        }
        assert_eq!(vc_state(), state);
    }
}
