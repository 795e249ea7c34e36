//! Tables without a primary key (docs/SCHEMA.md): rows keyed by content, identical
//! rows counted as copies, through commit, status, diff, as_of and reset.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    /// The table's rows as a sorted multiset of `to_jsonb` texts (duplicates kept).
    fn rows(t: &str) -> String {
        text(&format!(
            "SELECT coalesce(string_agg(to_jsonb(x)::text, ';' ORDER BY to_jsonb(x)::text), '') FROM {t} x"
        ))
        .unwrap()
    }

    fn status(t: &str) -> String {
        text(&format!(
            "SELECT coalesce((SELECT format('%s/%s/%s', inserted, updated, deleted) FROM vc.status() \
             WHERE table_name = '{t}'), 'clean')"
        ))
        .unwrap()
    }

    /// Duplicate rows are counted: removing one copy of three, or adding a copy, is
    /// one change; commit, diff, as_of and reset (both ways) keep the counts.
    #[pg_test]
    fn duplicates_are_counted_through_commit_diff_and_reset() {
        run(
            "CREATE TABLE k1 (a int, b text);
             INSERT INTO k1 VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, NULL), (NULL, NULL), (NULL, NULL);
             SELECT vc.track('k1');",
        );
        let one = text("SELECT vc.commit('six rows, four distinct')").unwrap();
        let first = rows("k1");
        assert_eq!(status("public.k1"), "clean");
        run(
            "DELETE FROM k1 WHERE ctid = (SELECT ctid FROM k1 WHERE a = 1 LIMIT 1);
             INSERT INTO k1 VALUES (2, NULL)",
        );
        assert_eq!(status("public.k1"), "1/0/1");
        // A diff of a keyless table lists each copy added or removed; the key is the row.
        assert_eq!(
            text("SELECT string_agg(format('%s %s %s %s', diff_type, key, before, after), ' | ' ORDER BY diff_type) FROM vc.diff('HEAD')").unwrap(),
            "added {\"a\": 2, \"b\": null} <NULL> {\"a\": 2, \"b\": null} | removed {\"a\": 1, \"b\": \"x\"} {\"a\": 1, \"b\": \"x\"} <NULL>"
                .replace("<NULL>", "")
        );
        let two = text("SELECT vc.commit('one copy less, one more')").unwrap();
        let second = rows("k1");
        assert_eq!(status("public.k1"), "clean");
        assert_eq!(
            int(&format!("SELECT count(*) FROM vc.diff('{one}', '{two}')")),
            2
        );
        // as_of gives every copy.
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM vc.as_of(NULL::k1, '{one}') WHERE a = 1"
            )),
            3
        );
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(rows("k1"), first);
        assert_eq!(status("public.k1"), "clean");
        run(&format!("SELECT vc.reset('{two}')"));
        assert_eq!(rows("k1"), second);
        assert_eq!(status("public.k1"), "clean");
        // An update changes content: the old copies go, new ones come.
        run("UPDATE k1 SET b = 'y' WHERE a = 1");
        assert_eq!(status("public.k1"), "2/0/2");
        run("SELECT vc.reset()");
        assert_eq!(rows("k1"), second);
        // Uncommitted extra copies are discarded by reset.
        run("INSERT INTO k1 SELECT * FROM k1");
        run("SELECT vc.reset()");
        assert_eq!(rows("k1"), second);
        assert_eq!(status("public.k1"), "clean");
    }

    /// Rows are compared by what they encode to, never by SQL equality: 0 and -0
    /// (equal in SQL), a composite of NULLs and a NULL composite, types without an
    /// equality operator (json, point) and bytea are told apart, so a reset deletes
    /// exactly the copies it must.
    #[pg_test]
    fn rows_are_told_apart_by_content_not_sql_equality() {
        run("CREATE TYPE k2_pair AS (x int, y text);
             CREATE TABLE k2 (f float8, p k2_pair, j json, pt point, b bytea);
             INSERT INTO k2 VALUES (0, ROW(NULL, NULL), '{\"a\": 1}', '(1,2)', '\\x00'),
                                   ('-0', ROW(NULL, NULL), '{\"a\": 1}', '(1,2)', '\\x00'),
                                   (0, NULL, '{\"a\":1}', '(1,2)', NULL),
                                   (1, ROW(1, 'one'), NULL, NULL, '\\x');
             SELECT vc.track('k2');");
        run("SELECT vc.commit('k2')");
        let committed = rows("k2");
        let f_text = || {
            text("SELECT string_agg(f::text || '/' || coalesce(p::text, 'null') || '/' || coalesce(j::text, 'null'), ';' ORDER BY f::text, p::text, j::text) FROM k2").unwrap()
        };
        let committed_text = f_text();
        // Copies SQL would call equal to the committed rows, but are not.
        run(
            "INSERT INTO k2 VALUES (0, ROW(NULL, NULL), '{\"a\": 1}', '(1,2)', '\\x00'),
                                   (0, ROW(NULL, NULL), '{\"a\":1}', '(1,2)', '\\x00')",
        );
        run("UPDATE k2 SET b = '\\x01' WHERE f = 1");
        assert_eq!(status("public.k2"), "3/0/1");
        run("SELECT vc.reset()");
        assert_eq!(rows("k2"), committed);
        assert_eq!(f_text(), committed_text);
        // The reset deleted every copy of the rows it rewrote, and only those: -0
        // (SQL-equal to 0) stayed.
        assert_eq!(int("SELECT count(*) FROM k2 WHERE f::text = '-0'"), 1);
        assert_eq!(status("public.k2"), "clean");
    }

    /// A primary key dropped makes a table keyless, one added makes it keyed again:
    /// both are committed, and reset moves between them both ways.
    #[pg_test]
    fn primary_key_dropped_and_added_reset_both_ways() {
        run("CREATE TABLE k3 (id int PRIMARY KEY, v text);
             INSERT INTO k3 VALUES (1, 'a'), (2, 'b');
             SELECT vc.track('k3');");
        let keyed = text("SELECT vc.commit('keyed')").unwrap();
        let keyed_rows = rows("k3");
        run("ALTER TABLE k3 DROP CONSTRAINT k3_pkey; INSERT INTO k3 VALUES (2, 'b')");
        let keyless = text("SELECT vc.commit('keyless, with a duplicate')").unwrap();
        let keyless_rows = rows("k3");
        assert_eq!(status("public.k3"), "clean");
        // Tracking follows: a write is seen.
        run("DELETE FROM k3 WHERE id = 1");
        assert_eq!(status("public.k3"), "0/0/1");
        run(&format!("SELECT vc.reset('{keyed}')"));
        assert_eq!(rows("k3"), keyed_rows);
        assert_eq!(
            int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'k3'::regclass AND contype = 'p'"),
            1
        );
        assert_eq!(status("public.k3"), "clean");
        run(&format!("SELECT vc.reset('{keyless}')"));
        assert_eq!(rows("k3"), keyless_rows);
        assert_eq!(
            int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'k3'::regclass AND contype = 'p'"),
            0
        );
        assert_eq!(status("public.k3"), "clean");
        run("UPDATE k3 SET v = 'c' WHERE id = 1");
        assert_eq!(status("public.k3"), "1/0/1");
    }

    /// A nullable column added to a keyless table keeps its committed rows (their
    /// encoding, and so their keys, do not change); one filled with a default is a new
    /// content for every row. Both commit and reset both ways.
    #[pg_test]
    fn keyless_column_changes_commit_and_reset() {
        run("CREATE TABLE k4 (a int, b text);
             INSERT INTO k4 VALUES (1, 'x'), (1, 'x'), (2, 'y');
             SELECT vc.track('k4');");
        let one = text("SELECT vc.commit('k4')").unwrap();
        let first = rows("k4");
        run("ALTER TABLE k4 ADD COLUMN c int");
        assert_eq!(status("public.k4"), "0/0/0");
        let two = text("SELECT vc.commit('nullable c')").unwrap();
        // Only the definition changed: one schema row, no row changes.
        assert_eq!(
            text(&format!("SELECT string_agg(diff_type || ' ' || (key->>'change'), ',') FROM vc.diff('{one}', '{two}')")).unwrap(),
            "schema column added"
        );
        run(
            "ALTER TABLE k4 ADD COLUMN d int NOT NULL DEFAULT 7; UPDATE k4 SET c = 1 WHERE b = 'y'",
        );
        let three = text("SELECT vc.commit('d with a default')").unwrap();
        let third = rows("k4");
        assert_eq!(status("public.k4"), "clean");
        run(&format!("SELECT vc.reset('{one}')"));
        assert_eq!(rows("k4"), first);
        assert_eq!(status("public.k4"), "clean");
        run(&format!("SELECT vc.reset('{three}')"));
        assert_eq!(rows("k4"), third);
        assert_eq!(status("public.k4"), "clean");
    }
}
