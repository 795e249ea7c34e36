//! Remotes inside one server: bad input to every remote function, and push / fetch /
//! pull / clone round trips through a file:// remote between two databases' worth of
//! state (the multi-cluster versions are in pgrx_tests/tests/remotes.rs).
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn dir(tag: &str) -> String {
        // The server runs as postgres: the remote dir must be writable by it.
        let d = format!("/tmp/pgvc-pgtest-remote-{tag}-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[pg_test]
    fn remote_add_refusals() {
        let d = dir("add");
        expect_error(
            "SELECT vc.remote_add('o', 'relative/path')",
            "22023",
            "not a URL",
        );
        expect_error(
            "SELECT vc.remote_add('o', 'file://relative/path')",
            "22023",
            "invalid remote URL",
        );
        expect_error(
            "SELECT vc.remote_add('o', 'http://example.com/x')",
            "22023",
            "invalid remote URL",
        );
        expect_error("SELECT vc.remote_add('o', '')", "22023", "empty");
        // An S3 server that does not answer: an error naming the bucket, nothing added.
        expect_error(
            "SELECT vc.remote_add('o', 's3://bucket/x?endpoint=http://127.0.0.1:1&force_path_style=true')",
            "58030",
            "bucket bucket",
        );
        expect_error(
            "SELECT vc.remote_add('o', 's3://bucket/x?secret=abc')",
            "22023",
            "credentials never go in a URL",
        );
        expect_error(
            &format!("SELECT vc.remote_add('bad name', 'file://{d}')"),
            "22023",
            "invalid remote name",
        );
        expect_error(
            &format!("SELECT vc.remote_add('', 'file://{d}')"),
            "22023",
            "invalid remote name",
        );
        expect_error(
            "SELECT vc.remote_add(NULL, 'file:///tmp/x')",
            "22004",
            "must not be NULL",
        );
        expect_error(
            "SELECT vc.remote_add('o', NULL)",
            "22004",
            "must not be NULL",
        );
        run(&format!("SELECT vc.remote_add('origin', 'file://{d}')"));
        expect_error(
            &format!("SELECT vc.remote_add('origin', 'file://{d}')"),
            "42710",
            "already exists",
        );
        assert_eq!(
            text("SELECT url FROM vc.remotes()").unwrap(),
            format!("file://{d}")
        );
        expect_error("SELECT vc.remote_remove('nope')", "42704", "does not exist");
        expect_error("SELECT vc.push('nope')", "42704", "does not exist");
        expect_error("SELECT * FROM vc.fetch('nope')", "42704", "does not exist");
        expect_error("SELECT vc.pull('nope')", "42704", "does not exist");
        run("SELECT vc.remote_remove('origin')");
        assert_eq!(int("SELECT count(*) FROM vc.remotes()"), 0);
    }

    #[pg_test]
    fn push_fetch_and_refusals() {
        let d = dir("push");
        run("CREATE TABLE r1 (id int PRIMARY KEY, v text);
             INSERT INTO r1 VALUES (1, 'a'), (2, 'b');
             SELECT vc.track('r1');");
        run(&format!("SELECT vc.remote_add('origin', 'file://{d}')"));
        expect_error("SELECT vc.push()", "42704", "no commits to push");
        let c1 = text("SELECT vc.commit('one')").unwrap();
        assert_eq!(text("SELECT vc.push()").unwrap(), c1);
        assert_eq!(text("SELECT vc.hashof('origin/main')").unwrap(), c1);
        // Pushing again is a no-op; a new commit is a fast-forward.
        assert_eq!(text("SELECT vc.push()").unwrap(), c1);
        run("UPDATE r1 SET v = 'B' WHERE id = 2");
        let c2 = text("SELECT vc.commit('two')").unwrap();
        assert_eq!(text("SELECT vc.push('origin', 'main')").unwrap(), c2);
        // Moving main back and pushing is not a fast-forward.
        run("SELECT vc.reset('HEAD~1')");
        run("UPDATE r1 SET v = 'other' WHERE id = 1");
        run("SELECT vc.commit('diverge')");
        expect_error("SELECT vc.push()", "55000", "pull first");
        let c3 = text("SELECT vc.push(force => true)").unwrap();
        assert_eq!(text("SELECT commit_hash FROM vc.fetch()").unwrap(), c3);
        // Pull refuses uncommitted changes, and is a no-op when up to date.
        run("UPDATE r1 SET v = 'dirty' WHERE id = 1");
        expect_error("SELECT vc.pull()", "55000", "uncommitted");
        run("SELECT vc.reset()");
        assert_eq!(text("SELECT vc.pull()").unwrap(), c3);
        expect_error(
            "SELECT * FROM vc.fetch('origin', 'nope')",
            "42704",
            "does not exist",
        );
    }
}
