//! Bad input to the backup functions, and a sync/verify round trip in one server (the
//! restore tests need a second cluster: pgrx_tests/tests/backups.rs).
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    fn dir(tag: &str) -> String {
        let d = format!("/tmp/pgvc-pgtest-backup-{tag}-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[pg_test]
    fn backup_refusals() {
        let d = dir("bad");
        expect_error("SELECT vc.backup_add('b', 'nope')", "22023", "not a URL");
        expect_error(
            "SELECT vc.backup_add('b', 'file://rel')",
            "22023",
            "invalid remote URL",
        );
        expect_error(
            &format!("SELECT vc.backup_add('b b', 'file://{d}')"),
            "22023",
            "invalid remote name",
        );
        expect_error(
            "SELECT vc.backup_add(NULL, 'file:///tmp/x')",
            "22004",
            "must not be NULL",
        );
        run(&format!("SELECT vc.backup_add('b', 'file://{d}')"));
        expect_error(
            &format!("SELECT vc.backup_add('b', 'file://{d}')"),
            "42710",
            "already exists",
        );
        expect_error(
            "SELECT * FROM vc.backup_sync('nope')",
            "42704",
            "does not exist",
        );
        expect_error(
            "SELECT * FROM vc.backup_sync(NULL)",
            "22004",
            "must not be NULL",
        );
        expect_error(
            "SELECT * FROM vc.backup_verify('nope')",
            "42704",
            "does not exist",
        );
        expect_error("SELECT vc.backup_remove('nope')", "42704", "does not exist");
        // A directory that is not a backup.
        let other = dir("empty");
        expect_error(
            &format!("SELECT vc.backup_restore('file://{other}')"),
            "XX001",
            "not a pgvc backup",
        );
        expect_error(
            "SELECT vc.backup_restore(NULL)",
            "22004",
            "must not be NULL",
        );
        run("SELECT vc.backup_remove('b')");
        assert_eq!(int("SELECT count(*) FROM vc.backups()"), 0);
    }

    #[pg_test]
    fn sync_and_verify() {
        let d = dir("ok");
        run("CREATE TABLE bk (id int PRIMARY KEY, v text);
             INSERT INTO bk SELECT g, 'v' FROM generate_series(1, 3000) g;
             SELECT vc.track('bk'); SELECT vc.commit('one');");
        run(&format!("SELECT vc.backup_add('b', 'file://{d}')"));
        assert!(int("SELECT chunks_written FROM vc.backup_sync('b')") > 0);
        assert_eq!(int("SELECT chunks_written FROM vc.backup_sync('b')"), 0);
        assert_eq!(
            text("SELECT ok::text FROM vc.backup_verify('b')").unwrap(),
            "true"
        );
        assert_eq!(
            text(&format!(
                "SELECT ok::text FROM vc.backup_verify('file://{d}')"
            ))
            .unwrap(),
            "true"
        );
        assert_eq!(
            text("SELECT (last_sync_at IS NOT NULL)::text FROM vc.backups()").unwrap(),
            "true"
        );
    }
}
