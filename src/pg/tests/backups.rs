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

    /// Finding 7: a backup written ref by ref (an older pgvc) could hold new heads
    /// beside an old working set, or two working sets; restore set HEAD from one and
    /// the tables from the other. Now a sync moves every ref in one swap, and restore
    /// takes HEAD from the working set it restores.
    #[pg_test]
    fn restore_takes_head_and_tables_from_one_moment() {
        run("INSERT INTO vc.head VALUES (true, 'main') ON CONFLICT DO NOTHING; SELECT 1 FROM vc.head FOR UPDATE");
        let d = dir("atomic");
        run("CREATE TABLE public.bk_atomic (id int PRIMARY KEY, v text)");
        run("SELECT vc.track('public.bk_atomic')");
        run("INSERT INTO public.bk_atomic VALUES (1, 'one')");
        let c1 = text("SELECT vc.commit('c1')").unwrap();
        run(&format!("SELECT vc.backup_add('bk_atomic', 'file://{d}')"));
        run("SELECT * FROM vc.backup_sync('bk_atomic')");
        run("INSERT INTO public.bk_atomic VALUES (2, 'two')");
        let c2 = text("SELECT vc.commit('c2')").unwrap();
        // What an interrupted ref-by-ref sync left: the new head, the old working
        // set, and a stale working set of another branch.
        crate::pg::spi::with_spi(|| {
            let store = crate::pg::store::PgStore::new();
            let r = crate::remote::open(&format!("file://{d}")).unwrap();
            let h2 = crate::store::Hash::from_hex(&c2).unwrap();
            let refs = r.list_refs().unwrap();
            let old_working = refs["working/main"];
            r.push(&store, "heads/main", h2, true, None, &mut |_| {})
                .unwrap();
            let other =
                std::collections::BTreeMap::from([("working/other".to_string(), old_working)]);
            r.mirror(&store, &["working/other"], &other, &mut |_| {})
                .unwrap();
            Ok(())
        })
        .unwrap();
        run(&format!(
            "SELECT vc.backup_restore('file://{d}', force => true)"
        ));
        assert_eq!(text("SELECT vc.hashof('main')"), Some(c1.clone()));
        assert_eq!(int("SELECT count(*) FROM public.bk_atomic"), 1);
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        // The next commit records exactly the change made after the restore.
        run("INSERT INTO public.bk_atomic VALUES (3, 'three')");
        run("SELECT vc.commit('c3')");
        assert_eq!(
            text("SELECT string_agg(key->>'id', ',' ORDER BY key->>'id') FROM vc.diff('HEAD~1', 'HEAD')"),
            Some("3".into())
        );
        // A sync now leaves exactly one working set and the current heads.
        run("SELECT * FROM vc.backup_sync('bk_atomic')");
        let refs = crate::pg::spi::with_spi(|| {
            Ok(crate::remote::open(&format!("file://{d}"))
                .unwrap()
                .list_refs()
                .unwrap())
        })
        .unwrap();
        let names: Vec<&str> = refs.keys().map(|s| s.as_str()).collect();
        assert_eq!(names, vec!["heads/main", "working/main"]);
    }
}
