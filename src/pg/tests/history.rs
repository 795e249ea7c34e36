//! Content addressing seen from SQL: same rows, same root hash, whatever the order of
//! edits or the session's settings.
#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn same_rows_same_root_whatever_the_edit_order() {
        run("CREATE TABLE h1 (id int PRIMARY KEY, v text)");
        run("SELECT vc.track('h1')");
        run("INSERT INTO h1 SELECT g, 'v' || g FROM generate_series(1, 3000) g");
        run("SELECT vc.commit('ascending')");
        let a = text("SELECT vc.root_hash()").unwrap();
        // Tear down and rebuild in another order, over several commits.
        run("DELETE FROM h1 WHERE id % 3 = 0");
        run("SELECT vc.commit('drop a third')");
        run("UPDATE h1 SET v = 'tmp' WHERE id % 7 = 0");
        run("SELECT vc.commit('scribble')");
        run(
            "INSERT INTO h1 SELECT g, 'v' || g FROM generate_series(3000, 1, -1) g WHERE g % 3 = 0",
        );
        run("UPDATE h1 SET v = 'v' || id WHERE id % 7 = 0");
        run("SELECT vc.commit('restore')");
        assert_eq!(text("SELECT vc.root_hash()").unwrap(), a);
        assert_ne!(
            text("SELECT vc.hashof('HEAD')"),
            text("SELECT vc.hashof('HEAD~3')")
        );
    }

    #[pg_test]
    fn session_settings_do_not_change_the_encoding() {
        run("CREATE TABLE h2 (id int PRIMARY KEY, ts timestamptz, t timestamp, d date, i interval, f float8, b bytea, m money)");
        run("INSERT INTO h2 VALUES (1, '2024-03-01 12:00:00+00', '2024-03-01 12:00:00', '2024-03-01', '1 day 2 hours', 0.1, '\\x0102', 1.5)");
        run("SELECT vc.track('h2')");
        run("SELECT vc.commit('utc')");
        let a = text("SELECT vc.root_hash()").unwrap();
        run("SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
             SET extra_float_digits = 0; SET bytea_output = 'escape'");
        // Rewrite every row with its own values under the odd settings and commit again.
        run("UPDATE h2 SET ts = ts, t = t, d = d, i = i, f = f, b = b");
        run("DELETE FROM h2; INSERT INTO h2 VALUES (1, '2024-03-01 21:00:00+09', '01/03/2024 12:00:00', '01/03/2024', '1 2:00:00', 0.1, '\\x0102', 1.5)");
        run("SELECT vc.commit('tokyo', allow_empty => true)");
        assert_eq!(text("SELECT vc.root_hash()").unwrap(), a);
        // Diff output and reset also work under those settings.
        assert_eq!(int("SELECT count(*) FROM vc.diff('HEAD~1', 'HEAD')"), 0);
        run("UPDATE h2 SET ts = ts + interval '1 hour'");
        run("SELECT vc.reset()");
        assert_eq!(
            int("SELECT count(*) FROM h2 WHERE ts = '2024-03-01 12:00:00+00'"),
            1
        );
        assert_eq!(
            text("SELECT current_setting('TimeZone')").unwrap(),
            "Asia/Tokyo"
        );
        assert_eq!(
            text("SELECT current_setting('session_replication_role')").unwrap(),
            "origin"
        );
    }

    #[pg_test]
    fn diff_between_commits_and_working() {
        run("CREATE TABLE h3 (id int PRIMARY KEY, v text)");
        run("SELECT vc.track('h3')");
        run("INSERT INTO h3 VALUES (1, 'a'), (2, 'b')");
        run("SELECT vc.commit('one')");
        run("UPDATE h3 SET v = 'B' WHERE id = 2; INSERT INTO h3 VALUES (3, 'c')");
        run("SELECT vc.commit('two')");
        run("DELETE FROM h3 WHERE id = 1");
        let q = |from: &str, to: &str| {
            text(&format!(
                "SELECT string_agg(diff_type || ':' || (key->>'id') || ':' || coalesce(before->>'v', '-') || '>' || coalesce(after->>'v', '-'), ' ' ORDER BY key->>'id') \
                 FROM vc.diff('{from}', '{to}', 'public.h3')"
            ))
            .unwrap_or_default()
        };
        assert_eq!(q("HEAD~1", "HEAD"), "modified:2:b>B added:3:->c");
        assert_eq!(q("HEAD", "HEAD~1"), "modified:2:B>b removed:3:c>-");
        assert_eq!(
            q("HEAD~1", "WORKING"),
            "removed:1:a>- modified:2:b>B added:3:->c"
        );
        assert_eq!(
            q("WORKING", "HEAD~1"),
            "added:1:->a modified:2:B>b removed:3:c>-"
        );
        assert_eq!(q("HEAD", "WORKING"), "removed:1:a>-");
    }
}
