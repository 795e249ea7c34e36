//! Indexes and check, unique and foreign-key constraints of tracked tables
//! (docs/SCHEMA.md): committed, shown by schema_diff, and moved by reset both ways;
//! an expression from a commit that would run an unprivileged role's code is refused
//! before anything evaluates it.

#[pgrx::pg_schema]
mod tests {
    use crate::pg::tests::util::*;
    use pgrx::prelude::*;

    /// Every index and constraint of the given tables, as PostgreSQL prints them.
    fn extras(tables: &[&str]) -> String {
        let list = tables
            .iter()
            .map(|t| format!("'{t}'::regclass"))
            .collect::<Vec<_>>()
            .join(", ");
        text(&format!(
            "SELECT coalesce(string_agg(d, E'\\n' ORDER BY d), '') FROM ( \
               SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indrelid IN ({list}) \
               UNION ALL \
               SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
               FROM pg_constraint WHERE conrelid IN ({list}) AND contype <> 'n') x"
        ))
        .unwrap()
    }

    fn clean() -> bool {
        int("SELECT count(*) FROM vc.status()") == 0
    }

    #[pg_test]
    fn indexes_and_constraints_commit_and_reset_both_ways() {
        run("CREATE TABLE ip (id int PRIMARY KEY, code text NOT NULL);
             CREATE TABLE ic (id int PRIMARY KEY, parent_id int, qty int, note text);
             INSERT INTO ip VALUES (1, 'a'), (2, 'b');
             INSERT INTO ic VALUES (1, 1, 5, 'Five'), (2, 2, 0, NULL), (3, NULL, 7, 'seven');
             SELECT vc.track('ip'); SELECT vc.track('ic');");
        let plain = text("SELECT vc.commit('plain')").unwrap();
        let plain_extras = extras(&["ip", "ic"]);
        run(
            "ALTER TABLE ip ADD CONSTRAINT ip_code_key UNIQUE (code);
             ALTER TABLE ic ADD CONSTRAINT ic_qty_positive CHECK (qty >= 0);
             ALTER TABLE ic ADD CONSTRAINT ic_parent_fk FOREIGN KEY (parent_id) REFERENCES ip (id)
                ON DELETE CASCADE DEFERRABLE;
             CREATE INDEX ic_note_lower ON ic (lower(note)) WHERE qty > 0;
             CREATE INDEX ic_multi ON ic (qty DESC NULLS LAST, note COLLATE \"C\" text_pattern_ops) INCLUDE (parent_id);
             CREATE UNIQUE INDEX ip_code_upper ON ip (upper(code));",
        );
        // Shown before the commit, one row per object.
        assert_eq!(
            text("SELECT string_agg(change, ', ' ORDER BY table_name, change, after) FROM vc.schema_diff('HEAD')").unwrap(),
            "constraint added, constraint added, index added, index added, constraint added, index added"
        );
        assert_eq!(
            text("SELECT after FROM vc.schema_diff('HEAD') WHERE after LIKE '%ic_multi%'").unwrap(),
            "INDEX ic_multi USING btree (qty DESC NULLS LAST, note COLLATE pg_catalog.\"C\" pg_catalog.text_pattern_ops) INCLUDE (parent_id)"
        );
        // vc.diff shows them too, as schema rows, both ways.
        assert_eq!(
            text("SELECT string_agg(DISTINCT diff_type || ' ' || (key->>'change'), ',') FROM vc.diff('HEAD')").unwrap(),
            "schema constraint added,schema index added"
        );
        assert_eq!(
            text("SELECT after #>> '{}' FROM vc.diff('HEAD', 'WORKING', 'public.ic') WHERE key->>'change' = 'index added' AND after #>> '{}' LIKE '%lower%'").unwrap(),
            "INDEX ic_note_lower USING btree ((lower(note)) COLLATE pg_catalog.\"default\") WHERE (qty > 0)"
        );
        assert_eq!(
            text("SELECT string_agg(DISTINCT key->>'change', ',') FROM vc.diff('WORKING', 'HEAD')")
                .unwrap(),
            "constraint dropped,index dropped"
        );
        let with = text("SELECT vc.commit('indexes and constraints')").unwrap();
        let with_extras = extras(&["ip", "ic"]);
        assert!(clean());
        // Nothing else to commit: the definition read back is the one committed.
        expect_error("SELECT vc.commit('again')", "55000", "nothing to commit");
        run(&format!("SELECT vc.reset('{plain}')"));
        assert_eq!(extras(&["ip", "ic"]), plain_extras);
        assert!(clean());
        run(&format!("SELECT vc.reset('{with}')"));
        assert_eq!(extras(&["ip", "ic"]), with_extras);
        assert!(clean());
        // The constraints work after the reset.
        expect_error(
            "INSERT INTO ic VALUES (9, 1, -1, 'x')",
            "23514",
            "ic_qty_positive",
        );
        expect_error("INSERT INTO ip VALUES (9, 'a')", "23505", "ip_code_key");
        // Uncommitted DDL is discarded by reset: an index added, a constraint dropped.
        run("CREATE INDEX ic_extra ON ic (note); ALTER TABLE ic DROP CONSTRAINT ic_parent_fk");
        assert!(!clean());
        run("SELECT vc.reset()");
        assert_eq!(extras(&["ip", "ic"]), with_extras);
        assert!(clean());
        // A changed index (same name, another definition) is made again.
        run("DROP INDEX ic_note_lower; CREATE INDEX ic_note_lower ON ic (upper(note))");
        assert_eq!(
            text("SELECT change FROM vc.schema_diff('HEAD')").unwrap(),
            "index changed"
        );
        run("SELECT vc.reset()");
        assert_eq!(extras(&["ip", "ic"]), with_extras);
    }

    /// A foreign key to a table that is not tracked is not part of the definition.
    #[pg_test]
    fn foreign_keys_to_untracked_tables_are_not_versioned() {
        run("CREATE TABLE iu (id int PRIMARY KEY);
             CREATE TABLE it (id int PRIMARY KEY, u int REFERENCES iu (id));
             SELECT vc.track('it'); SELECT vc.commit('it');");
        assert_eq!(
            int("SELECT count(*) FROM vc.schema_diff('HEAD~0', 'WORKING')"),
            0
        );
        run("SELECT vc.reset()");
        assert_eq!(
            int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'it'::regclass AND contype = 'f'"),
            1
        );
    }

    /// A check or an index expression from a commit that calls a function of a role
    /// that is not a superuser is refused before it is evaluated: the function never
    /// runs (it would raise its own error), and nothing changes.
    #[pg_test]
    fn expressions_calling_unprivileged_code_are_refused_before_running() {
        run("CREATE ROLE pgvc_ix_alice;
             CREATE FUNCTION ix_alice_check(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
               'BEGIN RAISE EXCEPTION ''alice code ran''; END';
             CREATE FUNCTION ix_alice_key(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
               'BEGIN RAISE EXCEPTION ''alice code ran''; END';
             CREATE TABLE ix (id int PRIMARY KEY, v int);
             INSERT INTO ix VALUES (1, 1), (2, 2);
             SELECT vc.track('ix');
             SELECT vc.commit('ix');
             CREATE FUNCTION ix_ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             ALTER TABLE ix ADD CONSTRAINT ix_by_alice CHECK (public.ix_ok(v)) NOT VALID;");
        // Commit a check that calls a superuser's function, then hand it to alice
        // (as a function replaced by another role's would be).
        run("SELECT vc.commit('check')");
        run("ALTER TABLE ix DROP CONSTRAINT ix_by_alice;
             DROP FUNCTION ix_ok(int);
             ALTER FUNCTION ix_alice_check(int) RENAME TO ix_ok;
             ALTER FUNCTION ix_ok(int) OWNER TO pgvc_ix_alice;");
        let before = text(
            "SELECT string_agg(conname, ',') FROM pg_constraint WHERE conrelid = 'ix'::regclass",
        )
        .unwrap();
        expect_error("SELECT vc.reset()", "42501", "pgvc_ix_alice");
        assert_eq!(
            text("SELECT string_agg(conname, ',') FROM pg_constraint WHERE conrelid = 'ix'::regclass").unwrap(),
            before
        );
        // The same for an index expression.
        run("SELECT vc.reset('HEAD~1');
             CREATE FUNCTION ix_ok2(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
             CREATE INDEX ix_by_alice_idx ON ix (public.ix_ok2(v));
             SELECT vc.commit('index');
             DROP INDEX ix_by_alice_idx; DROP FUNCTION ix_ok2(int);
             ALTER FUNCTION ix_alice_key(int) RENAME TO ix_ok2;
             ALTER FUNCTION ix_ok2(int) OWNER TO pgvc_ix_alice;");
        expect_error("SELECT vc.reset()", "42501", "pgvc_ix_alice");
        assert_eq!(
            int("SELECT count(*) FROM pg_index WHERE indrelid = 'ix'::regclass"),
            1
        );
    }

    /// A check from a commit is validated as the table's owner, never with pgvc's
    /// rights: the owner's own function cannot run as a superuser through a reset.
    /// A volatile one (it could write or read files) is refused.
    #[pg_test]
    fn checks_run_as_the_owner_and_volatile_ones_are_refused() {
        run("CREATE ROLE pgvc_ix_owner;
             CREATE TABLE io (id int PRIMARY KEY, v int);
             INSERT INTO io VALUES (1, 1);
             ALTER TABLE io OWNER TO pgvc_ix_owner;
             CREATE FUNCTION io_who(int) RETURNS boolean LANGUAGE plpgsql STABLE AS
               'BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                        RAISE EXCEPTION ''ran as a superuser''; END IF; RETURN true; END';
             ALTER FUNCTION io_who(int) OWNER TO pgvc_ix_owner;
             SELECT vc.track('io');
             SET ROLE pgvc_ix_owner;
             ALTER TABLE io ADD CONSTRAINT io_who_check CHECK (public.io_who(v));
             RESET ROLE;
             SELECT vc.commit('a check calling the owner''s function');
             ALTER TABLE io DROP CONSTRAINT io_who_check;");
        run("SELECT vc.reset()");
        assert_eq!(
            int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'io'::regclass AND conname = 'io_who_check' AND convalidated"),
            1
        );
        // A volatile check: refused, nothing changed.
        run(
            "ALTER TABLE io DROP CONSTRAINT io_who_check;
             ALTER TABLE io ADD CONSTRAINT io_reads CHECK (length(pg_catalog.pg_read_file('postgresql.conf')) > v) NOT VALID;
             SELECT vc.commit('a volatile check');
             ALTER TABLE io DROP CONSTRAINT io_reads;",
        );
        expect_error("SELECT vc.reset()", "42501", "volatile");
        assert_eq!(
            int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'io'::regclass AND contype = 'c'"),
            0
        );
    }

    /// Adding or dropping a foreign key is ALTER TABLE of its table: a role that does
    /// not own it cannot have a reset do it (and so gain a cascade into it).
    #[pg_test]
    fn foreign_keys_move_only_for_the_tables_owner() {
        run(
            "INSERT INTO vc.head VALUES (true, 'main') ON CONFLICT DO NOTHING;
             CREATE TABLE ifw (id int PRIMARY KEY);
             CREATE TABLE ifa (id int PRIMARY KEY, w int);
             INSERT INTO ifw VALUES (1); INSERT INTO ifa VALUES (1, 1);
             SELECT vc.track('ifw'); SELECT vc.track('ifa');
             ALTER TABLE ifa ADD CONSTRAINT ifa_w_fk FOREIGN KEY (w) REFERENCES ifw (id) ON DELETE CASCADE;
             SELECT vc.commit('with a foreign key');
             ALTER TABLE ifa DROP CONSTRAINT ifa_w_fk;
             SELECT vc.commit('without');
             CREATE ROLE pgvc_ix_bob IN ROLE pgvc_writer;
             ALTER TABLE ifw OWNER TO pgvc_ix_bob;
             GRANT SELECT ON ifa TO pgvc_ix_bob;",
        );
        run("SET ROLE pgvc_ix_bob");
        expect_error(
            "SELECT vc.reset('HEAD~1')",
            "42501",
            "foreign keys of public.ifa",
        );
        run("RESET ROLE");
        assert_eq!(
            int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'ifa'::regclass AND contype = 'f'"),
            0
        );
    }

    /// A composite that a table pgvc does not track also uses is not altered: that
    /// table's values would change with nothing to rewrite them.
    #[pg_test]
    fn a_composite_used_elsewhere_is_not_altered() {
        run("CREATE TYPE icx AS (a int);
             CREATE TABLE ict (id int PRIMARY KEY, c icx);
             CREATE TABLE icu (c icx);
             INSERT INTO ict VALUES (1, ROW(1)); INSERT INTO icu VALUES (ROW(2));
             SELECT vc.track('ict');
             SELECT vc.commit('one');
             ALTER TYPE icx ADD ATTRIBUTE b text;
             SELECT vc.commit('two');");
        expect_error("SELECT vc.reset('HEAD~1')", "0A000", "public.icu.c");
        assert_eq!(text("SELECT c::text FROM icu").unwrap(), "(2,)");
    }
}
