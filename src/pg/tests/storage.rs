//! Storage functions' bad inputs and permissions (their work is tested between real
//! clusters in `pgrx_tests/tests/storage.rs`: a gc here would race the other tests'
//! open transactions in this shared database).
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn storage_functions_refuse_bad_inputs() {
        for (sql, state, needle) in [
            (
                "SELECT * FROM vc.remote_compact(NULL)",
                "22004",
                "\"remote\"",
            ),
            (
                "SELECT * FROM vc.remote_compact('no_such')",
                "42704",
                "remote \"no_such\" does not exist",
            ),
            ("SELECT * FROM vc.remote_gc(NULL)", "22004", "\"remote\""),
            (
                "SELECT * FROM vc.remote_gc('no_such', NULL)",
                "22004",
                "\"grace\"",
            ),
            (
                "SELECT * FROM vc.remote_gc('no_such', interval '-1 hour')",
                "22023",
                "negative",
            ),
            (
                "SELECT * FROM vc.remote_gc('no_such')",
                "42704",
                "does not exist",
            ),
            ("SELECT * FROM vc.backup_compact(NULL)", "22004", "\"name\""),
            (
                "SELECT * FROM vc.backup_compact('no_such')",
                "42704",
                "backup \"no_such\" does not exist",
            ),
            (
                "SELECT * FROM vc.backup_gc('no_such')",
                "42704",
                "backup \"no_such\" does not exist",
            ),
            (
                "SELECT * FROM vc.backup_gc('no_such', interval '-1 second')",
                "22023",
                "negative",
            ),
        ] {
            expect_error(sql, state, needle);
        }
    }

    /// Compacting or pruning a file remote writes and deletes server files: pgvc_admin
    /// alone is not enough. Reading its state needs file-read rights; gc and verify
    /// need pgvc_admin.
    #[pg_test]
    fn storage_functions_need_the_callers_own_rights() {
        one_role_changer_at_a_time();
        let d = format!("/tmp/pgvc-pgtest-storage-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&d);
        run(&format!("SELECT vc.remote_add('st_remote', 'file://{d}')"));
        run(&format!(
            "SELECT vc.backup_add('st_backup', 'file://{d}-bk')"
        ));
        run("CREATE ROLE st_admin; GRANT pgvc_admin TO st_admin");
        run("CREATE ROLE st_writer; GRANT pgvc_writer TO st_writer");
        run("SET ROLE st_admin");
        for sql in [
            "SELECT * FROM vc.remote_compact('st_remote')",
            "SELECT * FROM vc.remote_gc('st_remote')",
            "SELECT * FROM vc.backup_compact('st_backup')",
            "SELECT * FROM vc.backup_gc('st_backup')",
        ] {
            expect_error(sql, "42501", "pg_write_server_files");
        }
        assert_eq!(
            text("SELECT problem FROM vc.storage() WHERE location = 'remote st_remote'"),
            Some("reading it needs superuser or pg_read_server_files".into())
        );
        assert!(text("SELECT location FROM vc.storage() WHERE location = 'local'").is_some());
        run("RESET ROLE");
        run("SET ROLE st_writer");
        for sql in [
            "SELECT * FROM vc.gc()",
            "SELECT * FROM vc.verify()",
            "SELECT * FROM vc.storage()",
            "SELECT * FROM vc.remote_compact('st_remote')",
        ] {
            expect_error(sql, "42501", "permission denied");
        }
        run("RESET ROLE");
        // With file rights, an empty remote has nothing to compact or prune.
        run("GRANT pg_write_server_files, pg_read_server_files TO st_admin");
        run("SET ROLE st_admin");
        assert_eq!(
            int("SELECT packs_merged FROM vc.remote_compact('st_remote')"),
            0
        );
        assert_eq!(
            int("SELECT objects FROM vc.remote_gc('st_remote', interval '0')"),
            0
        );
        assert_eq!(
            int("SELECT objects FROM vc.storage() WHERE location = 'remote st_remote'"),
            0
        );
        run("RESET ROLE");
    }

    /// A commit that emptied a big key log leaves no dead rows for the next one: the
    /// log is truncated (an empty file), and tracking goes on.
    #[pg_test]
    fn a_big_emptied_key_log_is_truncated() {
        run("INSERT INTO vc.head VALUES (true, 'main') ON CONFLICT DO NOTHING; SELECT 1 FROM vc.head FOR UPDATE");
        run("CREATE TABLE public.st_log (id int PRIMARY KEY, v int)");
        run("INSERT INTO public.st_log SELECT g, 0 FROM generate_series(1, 3000) g");
        run("SELECT vc.track('public.st_log')");
        run("SELECT vc.commit('st_log one')");
        let log = text(
            "SELECT 'vc.' || log_table FROM vc.tracked WHERE relid = 'public.st_log'::regclass",
        )
        .unwrap();
        run("UPDATE public.st_log SET v = 1");
        assert!(int(&format!("SELECT pg_relation_size('{log}')")) > 8192);
        run("SELECT vc.commit('st_log two')");
        assert_eq!(int(&format!("SELECT pg_relation_size('{log}')")), 0);
        // A few rows: deleted, not truncated; either way the next commit sees them.
        run("UPDATE public.st_log SET v = 2 WHERE id <= 3");
        assert_eq!(
            int("SELECT count(*) FROM vc.status() WHERE table_name = 'public.st_log'"),
            1
        );
        run("SELECT vc.commit('st_log three')");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        assert_eq!(
            int("SELECT sum(v) FROM vc.as_of(NULL::public.st_log, 'HEAD')"),
            2997 + 6
        );
    }
}
