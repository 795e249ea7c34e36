//! The trust boundary (docs/ARCHITECTURE.md, Trust model): a table owner, a role that
//! may append to a key log, and whoever can write a remote must not gain anything
//! through pgvc. Each test here failed on the code before its fix.
#[pgrx::pg_schema]
mod tests {
    use crate::codec::{encode_key, encode_row, Cell, KeyKind};
    use crate::commit::{Column, Commit, RootValue, SequenceState, TableEntry, TableSchema};
    use crate::pg::tests::util::*;
    use crate::prolly::build;
    use crate::store::{ChunkStore, MemStore};
    use pgrx::prelude::*;

    fn dir(tag: &str) -> String {
        let d = format!("/tmp/pgvc-pgtest-trust-{tag}-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn col(name: &str, ty: &str) -> Column {
        Column::new(name, ty)
    }

    /// A commit holding one table `table` with `columns` (the first is an integer
    /// primary key) and rows 1..=3, pushed as branch `main` (and, for a backup, as
    /// `heads/main` and `working/main`) to a new file remote at `dir`. Built through
    /// the pure layers only, as someone who can write the remote could.
    fn craft(dir: &str, table: &str, columns: Vec<Column>, sequences: Vec<SequenceState>) {
        craft_with_types(dir, table, columns, sequences, Default::default())
    }

    /// `craft`, with user types in the root value.
    fn craft_with_types(
        dir: &str,
        table: &str,
        columns: Vec<Column>,
        sequences: Vec<SequenceState>,
        types: std::collections::BTreeMap<String, crate::commit::TypeDef>,
    ) {
        let mut store = MemStore::new();
        let nvals = columns.len() - 1;
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (1..=3)
            .map(|i: i32| {
                let k = encode_key(&[KeyKind::Int], &[&i.to_string()]).unwrap();
                let cells: Vec<Cell> = (0..nvals).map(|_| Cell::Text(i.to_string())).collect();
                let mut v = vec![0u8];
                v.extend(encode_row(&cells));
                (k, v)
            })
            .collect();
        let tree = build(&mut store, entries).unwrap();
        let mut root = RootValue {
            types,
            ..RootValue::default()
        };
        let mut columns = columns;
        columns[0].not_null = true;
        root.tables.insert(
            table.to_string(),
            TableEntry {
                schema: TableSchema::new(columns.clone(), vec![columns[0].name.clone()]),
                tree,
                sequences,
            },
        );
        let root_hash = root.write(&mut store).unwrap();
        let commit = Commit {
            root: root_hash,
            parents: vec![],
            author: "mallory".into(),
            message: "crafted".into(),
            timestamp_us: 0,
        };
        let head = commit.write(&mut store).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let remote = crate::remote::open(&format!("file://{dir}")).unwrap();
        for b in ["main", "heads/main", "working/main"] {
            remote
                .push(&store as &dyn ChunkStore, b, head, true, None, &mut |_| {})
                .unwrap();
        }
        // The server (user postgres) reads it.
        let _ = std::process::Command::new("chmod")
            .args(["-R", "a+rwX", dir])
            .status();
    }

    /// Tests run concurrently in one database, and content-addressed chunks are shared:
    /// two tests that write the same chunk wait on each other's uncommitted row. Each
    /// test here takes HEAD's row lock first (as a commit does before it writes chunks),
    /// so they never hold a chunk while waiting for HEAD.
    fn serial() {
        run("INSERT INTO vc.head VALUES (true, 'main') ON CONFLICT DO NOTHING; SELECT 1 FROM vc.head FOR UPDATE");
    }

    fn clone_refused(d: &str, state: &str, needle: &str) {
        expect_error(&format!("SELECT vc.clone('file://{d}')"), state, needle);
        assert_eq!(int("SELECT count(*) FROM vc.tracked"), 0);
        assert_eq!(int("SELECT count(*) FROM vc.refs"), 0);
    }

    fn no_table(name: &str) {
        assert_eq!(
            text(&format!("SELECT to_regclass('{name}')::text")),
            None,
            "{name} must not exist"
        );
    }

    /// Finding 2: a type name from a remote was spliced into CREATE TABLE, and SPI ran
    /// every statement in the string.
    #[pg_test]
    fn hostile_type_name_is_refused() {
        serial();
        let d = dir("type");
        craft(
            &d,
            "public.evil",
            vec![
                col("id", "integer"),
                col(
                    "v",
                    "integer, PRIMARY KEY (id)); CREATE TABLE public.pwned_type (x int); \
                     CREATE TABLE public.dummy_type (id int, v int",
                ),
            ],
            vec![],
        );
        clone_refused(&d, "42704", "cannot be used");
        no_table("public.pwned_type");
        no_table("public.evil");
        // A real type spelled another way is refused too (no second meaning).
        let d = dir("type2");
        craft(
            &d,
            "public.evil",
            vec![col("id", "int4"), col("v", "text")],
            vec![],
        );
        clone_refused(&d, "42704", "canonical");
        // Pull of a new table, and restore, use the same code.
        let d = dir("type3");
        craft(
            &d,
            "public.evil",
            vec![
                col("id", "integer"),
                col("v", "integer); CREATE TABLE public.pwned_type3 (x int); --"),
            ],
            vec![],
        );
        run(&format!("SELECT vc.remote_add('hostile', 'file://{d}')"));
        expect_error(
            "SELECT vc.pull('hostile', 'main')",
            "42704",
            "cannot be used",
        );
        expect_error(
            &format!("SELECT vc.backup_restore('file://{d}')"),
            "42704",
            "cannot be used",
        );
        no_table("public.pwned_type3");
        no_table("public.evil");
    }

    /// Finding 2: default and generation expressions were spliced as received.
    #[pg_test]
    fn hostile_expressions_are_refused() {
        serial();
        let d = dir("default");
        let mut c = col("n", "integer");
        c.default = Some(
            "0, PRIMARY KEY (id)); CREATE TABLE public.pwned_default (x int); \
             CREATE TABLE public.dummy_default (id int"
                .into(),
        );
        craft(&d, "public.evil", vec![col("id", "integer"), c], vec![]);
        clone_refused(&d, "42P16", "not a single SQL expression");
        no_table("public.pwned_default");
        // A trailing comment must not swallow the rest of the definition.
        let d = dir("comment");
        let mut c = col("n", "integer");
        c.default = Some("0) --".into());
        craft(&d, "public.evil", vec![col("id", "integer"), c], vec![]);
        clone_refused(&d, "42P16", "not a single SQL expression");
        let d = dir("generated");
        let mut c = col("n", "integer");
        c.generated = Some(
            "1) STORED, PRIMARY KEY (id)); CREATE TABLE public.pwned_generated (x int); \
             CREATE TABLE public.dummy_generated (id int, z int GENERATED ALWAYS AS (1"
                .into(),
        );
        craft(&d, "public.evil", vec![col("id", "integer"), c], vec![]);
        clone_refused(&d, "42P16", "not a single SQL expression");
        no_table("public.pwned_generated");
        no_table("public.evil");
    }

    /// Finding 2: sequence names were spliced, and any sequence named by a commit was
    /// set, including sequences of other tables.
    #[pg_test]
    fn hostile_sequences_are_refused_or_left_alone() {
        serial();
        let d = dir("seqname");
        craft(
            &d,
            "public.evil",
            vec![col("id", "integer"), col("v", "text")],
            vec![SequenceState {
                name: "public.s; CREATE TABLE public.pwned_seq (x int)".into(),
                column: None,
                last_value: 5,
                is_called: true,
            }],
        );
        clone_refused(&d, "42602", "invalid sequence name");
        no_table("public.pwned_seq");

        // A sequence this database has, named by a commit without being the new
        // table's: never set, never taken over.
        run("CREATE SEQUENCE public.victim_seq");
        run("SELECT setval('public.victim_seq', 42)");
        let d = dir("victim");
        let mut c = col("n", "bigint");
        c.default = Some("nextval('public.victim_seq'::regclass)".into());
        craft(
            &d,
            "public.evil",
            vec![col("id", "integer"), c],
            vec![SequenceState {
                name: "public.victim_seq".into(),
                column: None,
                last_value: 999_999,
                is_called: true,
            }],
        );
        run(&format!("SELECT vc.clone('file://{d}')"));
        assert_eq!(int("SELECT last_value FROM public.victim_seq"), 42);
        assert_eq!(int("SELECT count(*) FROM public.evil"), 3);
        // Owned by a column: taking it over is refused.
        run("SELECT vc.untrack('public.evil')");
        run("DROP TABLE public.evil");
        run("DELETE FROM vc.refs");
        run("DELETE FROM vc.remotes");
        let d = dir("owned");
        craft(
            &d,
            "public.evil",
            vec![col("id", "integer"), col("v", "text")],
            vec![SequenceState {
                name: "public.victim_seq".into(),
                column: Some("id".into()),
                last_value: 999_999,
                is_called: true,
            }],
        );
        clone_refused(&d, "42P07", "already exists");
        assert_eq!(int("SELECT last_value FROM public.victim_seq"), 42);
        assert_eq!(
            text("SELECT count(*)::text FROM pg_depend WHERE objid = 'public.victim_seq'::regclass AND deptype = 'a'"),
            Some("0".into())
        );
    }

    /// Finding 2: a bad table name is refused with a clear error.
    #[pg_test]
    fn hostile_table_name_is_refused() {
        serial();
        let d = dir("tname");
        craft(
            &d,
            "public.evil (id int); CREATE TABLE public.pwned_name (x int); --",
            vec![col("id", "integer"), col("v", "text")],
            vec![],
        );
        clone_refused(&d, "42602", "invalid table name");
        no_table("public.pwned_name");
    }

    /// A commit made by pgvc clones back to the same definition (the checks above do
    /// not refuse real tables): defaults, identity, generated columns, serials.
    #[pg_test]
    fn real_definitions_still_clone() {
        serial();
        run("CREATE TYPE public.mood AS ENUM ('ok', 'sad')");
        run("CREATE TABLE public.src (id bigserial PRIMARY KEY, \
             ident int GENERATED BY DEFAULT AS IDENTITY, m public.mood DEFAULT 'ok', \
             price numeric(10,2) NOT NULL DEFAULT 1.5, doubled numeric GENERATED ALWAYS AS (price * 2) STORED, \
             at timestamptz DEFAULT now(), note varchar(20) DEFAULT 'it''s -- fine')");
        run("SELECT vc.track('public.src')");
        run("INSERT INTO public.src (price) VALUES (1), (2)");
        run("SELECT vc.commit('one')");
        let d = dir("real");
        std::fs::create_dir_all(&d).unwrap();
        let _ = std::process::Command::new("chmod")
            .args(["a+rwx", &d])
            .status();
        run(&format!("SELECT vc.remote_add('o', 'file://{d}')"));
        run("SELECT vc.push('o')");
        let before = text("SELECT vc.root_hash()");
        // Start over in the same database: drop everything, clone back.
        run("SELECT vc.untrack('public.src')");
        run("DROP TABLE public.src");
        run("DELETE FROM vc.refs");
        run("DELETE FROM vc.remotes");
        run(&format!("SELECT vc.clone('file://{d}')"));
        assert_eq!(text("SELECT vc.root_hash()"), before);
        assert_eq!(int("SELECT sum(doubled)::int8 FROM public.src"), 6);
        assert_eq!(int("SELECT last_value FROM public.src_id_seq"), 2);
    }

    /// Finding 1: a key column name ended the dollar-quoted body of the generated
    /// trigger function, and the SECURITY DEFINER ALTER TABLE event trigger ran the
    /// rest as a superuser.
    #[pg_test]
    fn key_column_name_cannot_end_the_trigger_body() {
        serial();
        run("CREATE ROLE pgvc_mallory LOGIN");
        run("CREATE SCHEMA mal AUTHORIZATION pgvc_mallory");
        run("SET ROLE pgvc_mallory");
        run("CREATE TABLE mal.t (id int PRIMARY KEY, v text)");
        run("RESET ROLE");
        run("SELECT vc.track('mal.t')");
        run("SET ROLE pgvc_mallory");
        run("SET check_function_bodies = off");
        run("ALTER TABLE mal.t RENAME COLUMN id TO \"x$f$ BEGIN END $f$; ALTER ROLE pgvc_mallory SUPERUSER; --\"");
        run("RESET check_function_bodies");
        run("INSERT INTO mal.t VALUES (1, 'a')");
        run("RESET ROLE");
        assert_eq!(
            text("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'pgvc_mallory'"),
            Some("false".into())
        );
        // Tracking still works under the odd name.
        assert_eq!(
            int("SELECT count(*) FROM vc.status() WHERE table_name = 'mal.t'"),
            1
        );
        run("SELECT vc.commit('odd key name')");
        assert_eq!(int("SELECT count(*) FROM vc.as_of(NULL::mal.t, 'HEAD')"), 1);
    }

    /// Finding 3: commit, status and reset evaluated the owner's code (here a domain
    /// check on the key, run by the key cast) with the caller's rights.
    #[pg_test]
    fn owner_code_runs_as_the_owner() {
        serial();
        run("CREATE ROLE pgvc_owner LOGIN");
        run("CREATE SCHEMA own AUTHORIZATION pgvc_owner");
        run("GRANT USAGE ON SCHEMA own TO PUBLIC");
        run("SET ROLE pgvc_owner");
        run("CREATE TABLE own.seen (who text, restricted boolean)");
        run("GRANT INSERT ON own.seen TO PUBLIC");
        run(
            "CREATE FUNCTION own.check_key(k int) RETURNS boolean LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF current_setting('pgvc_test.armed', true) IS DISTINCT FROM 'on' THEN RETURN k > 0; END IF; \
               INSERT INTO own.seen VALUES (current_user, false); \
               BEGIN EXECUTE 'ALTER ROLE pgvc_owner SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; \
               BEGIN CREATE TEMP TABLE own_probe (x int); \
               EXCEPTION WHEN OTHERS THEN UPDATE own.seen SET restricted = true WHERE restricted = false; END; \
               RETURN k > 0; END $$",
        );
        run("CREATE DOMAIN own.key AS int CHECK (own.check_key(VALUE))");
        run("CREATE TABLE own.t (id own.key PRIMARY KEY, v text)");
        run("RESET ROLE");
        run("SELECT vc.track('own.t')");
        run("SELECT vc.commit('empty', allow_empty => true)");
        // The superuser's own writes run the check as the superuser: that is theirs to
        // decide. The check acts only when armed, around pgvc's operations.
        run("INSERT INTO own.t VALUES (1, 'a'), (2, 'b')");
        run("SET pgvc_test.armed = 'on'");
        run("SELECT count(*) FROM vc.status()");
        run("SELECT vc.commit('two rows')");
        run("SET pgvc_test.armed = 'off'");
        run("UPDATE own.t SET v = 'changed' WHERE id = 1");
        run("SET pgvc_test.armed = 'on'");
        run("SELECT vc.reset()");
        run("SET pgvc_test.armed = 'off'");
        assert_eq!(
            text("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'pgvc_owner'"),
            Some("false".into())
        );
        assert!(int("SELECT count(*) FROM own.seen") > 0, "the check ran");
        assert_eq!(
            int("SELECT count(*) FROM own.seen WHERE who <> 'pgvc_owner' OR NOT restricted"),
            0,
            "every run of the owner's code was as the owner, restricted"
        );
        assert_eq!(text("SELECT v FROM own.t WHERE id = 1"), Some("a".into()));
    }

    /// A policy the owner forces on the table must not hide rows from a commit.
    #[pg_test]
    fn forced_row_security_fails_instead_of_hiding_rows() {
        serial();
        run("CREATE ROLE pgvc_rls LOGIN");
        run("CREATE SCHEMA rls AUTHORIZATION pgvc_rls");
        run("SET ROLE pgvc_rls");
        run("CREATE TABLE rls.t (id int PRIMARY KEY)");
        run("RESET ROLE");
        run("SELECT vc.track('rls.t')");
        run("INSERT INTO rls.t SELECT generate_series(1, 10)");
        run("SELECT vc.commit('ten')");
        run("SET ROLE pgvc_rls");
        run("ALTER TABLE rls.t ENABLE ROW LEVEL SECURITY");
        run("ALTER TABLE rls.t FORCE ROW LEVEL SECURITY");
        run("CREATE POLICY few ON rls.t USING (id < 3)");
        run("RESET ROLE");
        run("UPDATE vc.tracked SET full_scan = true");
        expect_error(
            "SELECT vc.commit('hidden rows?')",
            "42501",
            "row-level security",
        );
    }

    /// Finding 4: PUBLIC may append to key logs; a NULL there made every commit fail.
    #[pg_test]
    fn key_log_nulls_cannot_jam_commits() {
        serial();
        run("CREATE TABLE public.jam (id int PRIMARY KEY, v text)");
        run("SELECT vc.track('public.jam')");
        run("INSERT INTO public.jam VALUES (1, 'a')");
        run("CREATE ROLE pgvc_nobody");
        let log = text("SELECT 'vc.' || log_table FROM vc.tracked").unwrap();
        run("SET ROLE pgvc_nobody");
        expect_error(
            &format!("INSERT INTO {log} VALUES (NULL)"),
            "23502",
            "null value",
        );
        // A key with no row costs a lookup, nothing else.
        run(&format!("INSERT INTO {log} VALUES (12345)"));
        run("RESET ROLE");
        run("SELECT vc.commit('one row')");
        assert_eq!(int("SELECT count(*) FROM vc.diff('HEAD', 'WORKING')"), 0);
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::public.jam, 'HEAD')"),
            1
        );
    }

    /// Finding 9: a table owner could drop or disable pgvc's triggers and tracking
    /// silently stopped; the next commit missed the writes made meanwhile.
    #[pg_test]
    fn dropped_or_disabled_triggers_are_detected_and_restored() {
        serial();
        run("CREATE ROLE pgvc_dropper");
        run("CREATE SCHEMA drp AUTHORIZATION pgvc_dropper");
        run("SET ROLE pgvc_dropper");
        run("CREATE TABLE drp.t (id int PRIMARY KEY, v text)");
        run("RESET ROLE");
        run("SELECT vc.track('drp.t')");
        let trigger_oid =
            "SELECT oid::int8 FROM pg_trigger WHERE tgrelid = 'drp.t'::regclass AND tgname = 'vc_track_insert'";
        let first = int(trigger_oid);
        run("INSERT INTO drp.t VALUES (1, 'a')");
        run("SELECT vc.commit('one')");
        // Intact triggers are left alone (a repair would lock the table exclusively).
        assert_eq!(int(trigger_oid), first);
        run("SET ROLE pgvc_dropper");
        run("DROP TRIGGER vc_track_insert ON drp.t");
        run("INSERT INTO drp.t VALUES (2, 'b')");
        run("RESET ROLE");
        assert_eq!(
            int("SELECT inserted FROM vc.status() WHERE table_name = 'drp.t'"),
            1
        );
        run("SELECT vc.commit('two')");
        assert_eq!(int("SELECT count(*) FROM vc.as_of(NULL::drp.t, 'HEAD')"), 2);
        // Put back: the next insert is logged again.
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'drp.t'::regclass AND tgname = 'vc_track_insert'"),
            1
        );
        run("SET ROLE pgvc_dropper");
        run("ALTER TABLE drp.t DISABLE TRIGGER vc_track_update");
        run("UPDATE drp.t SET v = 'changed' WHERE id = 1");
        // A look-alike that logs nothing useful.
        run("DROP TRIGGER vc_track_delete ON drp.t");
        run("CREATE TRIGGER vc_track_delete AFTER UPDATE ON drp.t FOR EACH STATEMENT EXECUTE FUNCTION suppress_redundant_updates_trigger()");
        run("RESET ROLE");
        run("SELECT vc.commit('three')");
        assert_eq!(
            text("SELECT v FROM vc.as_of(NULL::drp.t, 'HEAD') WHERE id = 1"),
            Some("changed".into())
        );
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'drp.t'::regclass AND tgenabled = 'O' AND tgname LIKE 'vc\\_%'"),
            5
        );
        run("DELETE FROM drp.t WHERE id = 2");
        assert_eq!(
            int("SELECT deleted FROM vc.status() WHERE table_name = 'drp.t'"),
            1
        );
    }

    /// Finding 9: errors shown to roles without file access named server paths.
    #[pg_test]
    fn status_errors_hide_paths_from_roles_without_file_access() {
        serial();
        run("SELECT vc.backup_add('redact_b', 'file:///tmp/pgvc-redact-test')");
        run("UPDATE vc.backups SET last_error = 'could not write file:///srv/secret/dir/x.pack: Permission denied' WHERE name = 'redact_b'");
        run("CREATE ROLE pgvc_peeker");
        run("GRANT EXECUTE ON FUNCTION vc.backup_status() TO pgvc_peeker");
        run("SET SESSION AUTHORIZATION pgvc_peeker");
        let seen =
            text("SELECT last_error FROM vc.backup_status() WHERE name = 'redact_b'").unwrap();
        run("RESET SESSION AUTHORIZATION");
        assert!(!seen.contains("/srv/secret"), "{seen}");
        assert!(
            seen.contains("<path>") && seen.contains("Permission denied"),
            "{seen}"
        );
        let own =
            text("SELECT last_error FROM vc.backup_status() WHERE name = 'redact_b'").unwrap();
        assert!(own.contains("/srv/secret/dir/x.pack"), "{own}");
    }

    /// Finding 9: replication work serialized on an advisory lock key that any role
    /// could take; now on a table lock that PUBLIC cannot take.
    #[pg_test]
    fn public_cannot_take_the_replication_lock() {
        serial();
        run("CREATE ROLE pgvc_staller");
        run("SET ROLE pgvc_staller");
        for mode in ["ACCESS SHARE", "ROW SHARE", "EXCLUSIVE", "ACCESS EXCLUSIVE"] {
            expect_error(
                &format!("LOCK TABLE vc.replication_lock IN {mode} MODE"),
                "42501",
                "permission denied",
            );
        }
        run("RESET ROLE");
    }

    /// Review: a table created from a commit is owned by the superuser who clones or
    /// pulls (or the worker); a commit naming another role's domain would run that
    /// role's check as the superuser at every load and commit.
    #[pg_test]
    fn a_commit_cannot_bring_in_another_roles_code() {
        serial();
        run("CREATE ROLE pgvc_trap");
        run("CREATE SCHEMA trap AUTHORIZATION pgvc_trap");
        run("SET ROLE pgvc_trap");
        run("CREATE FUNCTION trap.f(int) RETURNS boolean LANGUAGE plpgsql AS $$ \
             BEGIN BEGIN EXECUTE 'ALTER ROLE pgvc_trap SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; \
             RETURN true; END $$");
        run("CREATE DOMAIN trap.d AS int CHECK (trap.f(VALUE))");
        run("RESET ROLE");
        let d = dir("foreign");
        craft(
            &d,
            "public.evil_dom",
            vec![col("id", "integer"), col("v", "trap.d")],
            vec![],
        );
        clone_refused(&d, "42501", "would run code of role pgvc_trap");
        no_table("public.evil_dom");
        assert_eq!(
            text("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'pgvc_trap'"),
            Some("false".into())
        );
    }

    /// Review: names in pgvc's or the system's schemas, and sequences outside the
    /// table's schema, are refused.
    #[pg_test]
    fn commits_cannot_place_objects_in_other_schemas() {
        serial();
        let d = dir("vcschema");
        craft(
            &d,
            "vc.log_99999999",
            vec![col("id", "integer"), col("v", "text")],
            vec![],
        );
        clone_refused(&d, "42602", "system or pgvc schema");
        let d = dir("seqschema");
        run("CREATE SCHEMA billing");
        run("CREATE SEQUENCE billing.invoice_seq");
        run("SELECT setval('billing.invoice_seq', 77)");
        let mut c = col("id", "integer");
        c.identity = Some("d".into());
        craft(
            &d,
            "public.evil_ident",
            vec![c, col("v", "text")],
            vec![SequenceState {
                name: "billing.invoice_seq".into(),
                column: Some("id".into()),
                last_value: 1,
                is_called: true,
            }],
        );
        clone_refused(&d, "42P16", "not in the table's schema");
        assert_eq!(int("SELECT last_value FROM billing.invoice_seq"), 77);
    }

    /// Review: a table owner could point a default at another role's sequence, and a
    /// superuser's reset then set that sequence.
    #[pg_test]
    fn reset_leaves_other_roles_sequences_alone() {
        serial();
        run("CREATE ROLE pgvc_alice");
        run("CREATE SCHEMA bob");
        run("CREATE SEQUENCE bob.seq");
        run("GRANT USAGE ON SCHEMA bob TO pgvc_alice");
        run("GRANT USAGE ON SEQUENCE bob.seq TO pgvc_alice");
        run("CREATE SCHEMA alice AUTHORIZATION pgvc_alice");
        run("SET ROLE pgvc_alice");
        run("CREATE TABLE alice.t (id int PRIMARY KEY, n bigint DEFAULT nextval('bob.seq'))");
        run("RESET ROLE");
        run("SELECT vc.track('alice.t')");
        run("INSERT INTO alice.t (id) VALUES (1)");
        run("SELECT vc.commit('one')");
        run("SELECT setval('bob.seq', 500)");
        run("SELECT vc.reset()");
        assert_eq!(int("SELECT last_value FROM bob.seq"), 500);
    }

    /// Review: an UPDATE to an equal key with another spelling (numeric 1.00 -> 1.0)
    /// logged only the new key, and the commit kept both rows.
    #[pg_test]
    fn equal_keys_with_new_spellings_replace_the_old_row() {
        serial();
        run("CREATE TABLE public.num_key (id numeric PRIMARY KEY, v text)");
        run("SELECT vc.track('public.num_key')");
        run("INSERT INTO public.num_key VALUES (1.00, 'a')");
        run("SELECT vc.commit('one')");
        run("UPDATE public.num_key SET id = 1.0");
        run("SELECT vc.commit('respelled')");
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::public.num_key, 'HEAD')"),
            1
        );
        assert_eq!(
            text("SELECT id::text FROM vc.as_of(NULL::public.num_key, 'HEAD')"),
            Some("1.0".into())
        );
    }

    /// Review: oversized or countless keys appended to a log must not make commits fail.
    #[pg_test]
    fn oversized_and_countless_log_keys_cost_no_failure() {
        serial();
        run("CREATE TABLE public.big_log (k text PRIMARY KEY, v int)");
        run("SELECT vc.track('public.big_log')");
        run("INSERT INTO public.big_log VALUES ('a', 1)");
        run("SELECT vc.commit('one')");
        let log = text(
            "SELECT 'vc.' || log_table FROM vc.tracked WHERE relid = 'public.big_log'::regclass",
        )
        .unwrap();
        run("CREATE ROLE pgvc_flooder");
        run("SET ROLE pgvc_flooder");
        // Incompressible, far bigger than any primary key can be.
        run(&format!(
            "INSERT INTO {log} SELECT string_agg(md5(s.n::text), '') FROM generate_series(1, 2000) AS s(n)"
        ));
        run(&format!(
            "INSERT INTO {log} SELECT 'junk' || s.n FROM generate_series(1, {}) AS s(n)",
            crate::pg::rows::MAX_LOGGED_KEYS + 1
        ));
        run("RESET ROLE");
        run("INSERT INTO public.big_log VALUES ('b', 2)");
        assert_eq!(
            int("SELECT inserted FROM vc.status() WHERE table_name = 'public.big_log'"),
            1
        );
        run("SELECT vc.commit('two')");
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::public.big_log, 'HEAD')"),
            2
        );
        assert_eq!(int(&format!("SELECT count(*) FROM {log}")), 0);
    }

    /// Review: the owner's code calling back into pgvc while pgvc reads the table.
    #[pg_test]
    fn owner_code_cannot_call_pgvc_back() {
        serial();
        run(
            "CREATE FUNCTION public.calls_back(k int) RETURNS boolean LANGUAGE plpgsql AS $$ \
             BEGIN IF current_setting('pgvc_test.armed', true) = 'on' THEN \
               PERFORM count(*) FROM vc.status(); END IF; RETURN true; END $$",
        );
        run("CREATE DOMAIN public.calling_key AS int CHECK (public.calls_back(VALUE))");
        run("CREATE TABLE public.calls (id public.calling_key PRIMARY KEY)");
        run("SELECT vc.track('public.calls')");
        run("SELECT vc.commit('base', allow_empty => true)");
        run("INSERT INTO public.calls VALUES (1)");
        run("SET pgvc_test.armed = 'on'");
        expect_error(
            "SELECT vc.commit('reentrant')",
            "42501",
            "security-restricted",
        );
        run("SET pgvc_test.armed = 'off'");
        run("SELECT vc.commit('plain')");
    }

    /// Roles: each pgvc role may do what it was granted, on the tables its member may
    /// use, and nothing more; a role without any may do nothing.
    #[pg_test]
    fn pgvc_roles_have_what_they_were_granted_and_no_more() {
        serial();
        run("CREATE TABLE public.roles_a (id int PRIMARY KEY, v text)");
        run("CREATE TABLE public.roles_b (id int PRIMARY KEY, v text)");
        run("CREATE TABLE public.roles_c (id int PRIMARY KEY)");
        run("SELECT vc.track('public.roles_a'); SELECT vc.track('public.roles_b')");
        run("SELECT vc.commit('empty', allow_empty => true)");
        run("INSERT INTO public.roles_a VALUES (1, 'a'); INSERT INTO public.roles_b VALUES (1, 'b')");
        run("SELECT vc.commit('base')");
        run("CREATE ROLE r_reader IN ROLE pgvc_reader");
        run("GRANT SELECT ON public.roles_a TO r_reader");
        run("CREATE ROLE r_writer IN ROLE pgvc_writer");
        run("GRANT SELECT ON public.roles_a, public.roles_b TO r_writer");
        run("GRANT INSERT, UPDATE, DELETE ON public.roles_a TO r_writer");
        run("CREATE ROLE r_admin IN ROLE pgvc_admin");
        run("CREATE ROLE r_nobody");

        run("SET ROLE r_reader");
        assert!(int("SELECT count(*) FROM vc.log()") >= 1);
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::public.roles_a, 'HEAD')"),
            1
        );
        expect_error(
            "SELECT * FROM vc.as_of(NULL::public.roles_b, 'HEAD')",
            "42501",
            "needs SELECT",
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.diff('HEAD~1', 'HEAD') WHERE table_name = 'public.roles_b'"),
            0
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.diff('HEAD~1', 'HEAD') WHERE table_name = 'public.roles_a'"),
            1
        );
        expect_error(
            "SELECT * FROM vc.diff('HEAD~1', 'HEAD', 'public.roles_b')",
            "42501",
            "needs SELECT",
        );
        run("SELECT count(*) FROM vc.status()");
        expect_error("SELECT vc.commit('reader')", "42501", "permission denied");
        expect_error(
            "SELECT count(*) FROM vc.chunks",
            "42501",
            "permission denied",
        );
        run("RESET ROLE");

        run("SET ROLE r_writer");
        run("UPDATE public.roles_a SET v = 'w' WHERE id = 1");
        run("SELECT vc.commit('by the writer')");
        assert_eq!(
            text("SELECT author FROM vc.log() LIMIT 1"),
            Some("r_writer".into())
        );
        run("RESET ROLE");
        // An uncommitted change in a table the writer may not write.
        run("UPDATE public.roles_b SET v = 'x' WHERE id = 1");
        run("UPDATE public.roles_a SET v = 'y' WHERE id = 1");
        run("SET ROLE r_writer");
        expect_error(
            "SELECT vc.reset()",
            "42501",
            "on tracked table public.roles_b",
        );
        expect_error(
            "SELECT vc.track('public.roles_c')",
            "42501",
            "permission denied",
        );
        run("RESET ROLE");
        assert_eq!(text("SELECT v FROM public.roles_b"), Some("x".into()));
        assert_eq!(text("SELECT v FROM public.roles_a"), Some("y".into()));

        run("SET ROLE r_admin");
        expect_error("SELECT vc.track('public.roles_c')", "42501", "TRIGGER");
        expect_error(
            "SELECT vc.remote_add('roles_o', 'file:///tmp/pgvc-roles-remote')",
            "42501",
            "pg_write_server_files",
        );
        run("RESET ROLE");
        // Scheduling makes the server write files on its own: file rights needed.
        let bk = dir("roles-bk");
        run(&format!("SELECT vc.backup_add('roles_bk', 'file://{bk}')"));
        run("SET ROLE r_admin");
        expect_error(
            "SELECT vc.backup_schedule('roles_bk', interval '1 hour')",
            "42501",
            "pg_write_server_files",
        );
        run("RESET ROLE");
        assert_eq!(
            text("SELECT coalesce(every::text, 'none') FROM vc.backups WHERE name = 'roles_bk'"),
            Some("none".into())
        );
        run("GRANT pg_write_server_files TO r_admin");
        run("SET ROLE r_admin");
        run("SELECT vc.backup_schedule('roles_bk', interval '1 hour')");
        run("RESET ROLE");
        run("REVOKE pg_write_server_files FROM r_admin");
        assert_eq!(
            text("SELECT every::text FROM vc.backups WHERE name = 'roles_bk'"),
            Some("01:00:00".into())
        );
        run("SELECT vc.backup_remove('roles_bk')");
        run("GRANT TRIGGER ON public.roles_c TO r_admin");
        run("SET ROLE r_admin");
        run("SELECT vc.track('public.roles_c')");
        run("RESET ROLE");

        run("SET ROLE r_nobody");
        for sql in [
            "SELECT * FROM vc.log()",
            "SELECT * FROM vc.status()",
            "SELECT * FROM vc._log('HEAD')",
            "SELECT vc._commit('x', NULL, true)",
        ] {
            expect_error(sql, "42501", "permission denied");
        }
        run("RESET ROLE");
    }

    /// A role allowed to call an internal function directly cannot change how rows are
    /// encoded: the settings are pinned inside, not only by the SQL wrappers.
    #[pg_test]
    fn settings_are_pinned_whoever_calls() {
        serial();
        run("CREATE TABLE public.pinned (id int PRIMARY KEY, d date, t timestamptz, f float8)");
        run("SELECT vc.track('public.pinned')");
        run("INSERT INTO public.pinned VALUES (1, '2024-02-29', '2024-03-01 12:00+02', 0.1)");
        run("SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Tokyo'; SET extra_float_digits = 0");
        run("SELECT vc._commit('direct', NULL, false)");
        run("RESET DateStyle; RESET TimeZone; RESET extra_float_digits");
        assert_eq!(int("SELECT count(*) FROM vc.status()"), 0);
        assert_eq!(
            text("SELECT d::text FROM vc.as_of(NULL::public.pinned, 'HEAD')"),
            Some("2024-02-29".into())
        );
    }

    /// Review: `vc.as_of` casts history rows to the table's row type in the caller's
    /// query, which ran the owner's domain checks with the caller's rights.
    #[pg_test]
    fn as_of_does_not_run_another_roles_code() {
        serial();
        run("CREATE ROLE pgvc_asof");
        run("CREATE SCHEMA asof AUTHORIZATION pgvc_asof");
        run("SET ROLE pgvc_asof");
        run("CREATE FUNCTION asof.f(int) RETURNS boolean LANGUAGE plpgsql AS $$ \
             BEGIN BEGIN EXECUTE 'ALTER ROLE pgvc_asof SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; \
             RETURN true; END $$");
        run("CREATE DOMAIN asof.d AS int CHECK (asof.f(VALUE))");
        run("CREATE TABLE asof.t (id int PRIMARY KEY, v asof.d)");
        run("RESET ROLE");
        run("SELECT vc.track('asof.t')");
        // Written by its owner (a superuser's own INSERT would run the check as the
        // superuser: that is the superuser's choice, not pgvc's).
        run("SET ROLE pgvc_asof");
        run("INSERT INTO asof.t VALUES (1, 1)");
        run("RESET ROLE");
        run("SELECT vc.commit('one')");
        expect_error(
            "SELECT * FROM vc.as_of(NULL::asof.t, 'HEAD')",
            "42501",
            "would run code of role pgvc_asof",
        );
        assert_eq!(
            text("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'pgvc_asof'"),
            Some("false".into())
        );
        // Its owner, a pgvc reader, reads its history.
        run("GRANT pgvc_reader TO pgvc_asof");
        run("SET ROLE pgvc_asof");
        assert_eq!(
            int("SELECT count(*) FROM vc.as_of(NULL::asof.t, 'HEAD')"),
            1
        );
        run("RESET ROLE");
    }

    /// Review: a literal of an array of a domain in a default is read by the domain's
    /// input at parse time, running its CHECK as whoever runs the CREATE TABLE: pgvc's
    /// owner, when a reset, pull, clone, restore or standby recreates the table.
    #[pg_test]
    fn defaults_are_not_parsed_when_a_domain_runs_another_roles_code() {
        serial();
        run("CREATE ROLE pgvc_parse");
        run("CREATE SCHEMA parse AUTHORIZATION pgvc_parse");
        run("SET ROLE pgvc_parse");
        run(
            "CREATE FUNCTION parse.ev(int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
             IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN \
               EXECUTE 'ALTER ROLE pgvc_parse SUPERUSER'; END IF; RETURN true; END $$",
        );
        run("CREATE DOMAIN parse.d AS int CHECK (parse.ev(VALUE))");
        run("CREATE TABLE parse.t (id int PRIMARY KEY, c parse.d[] DEFAULT '{1}'::parse.d[])");
        run("INSERT INTO parse.t (id) VALUES (1)");
        run("RESET ROLE");
        run("SELECT vc.track('parse.t')");
        run("SELECT vc.commit('with a default')");
        run("DROP TABLE parse.t");
        expect_error(
            "SELECT vc.reset('HEAD')",
            "42501",
            "will not parse the expressions",
        );
        assert_eq!(
            text("SELECT rolsuper::text FROM pg_roles WHERE rolname = 'pgvc_parse'"),
            Some("false".into())
        );
    }

    /// Review: a writer's reset recreated a table dropped here, handing its rows to the
    /// writer; a reader saw the history of a dropped table through a new table of the
    /// same name; row-level security did not limit history.
    #[pg_test]
    fn history_of_tables_a_role_may_not_read_stays_hidden() {
        serial();
        run("CREATE TABLE public.gone (id int PRIMARY KEY, secret text)");
        run("SELECT vc.track('public.gone')");
        run("CREATE TABLE public.policed (id int PRIMARY KEY, v text)");
        run("SELECT vc.track('public.policed')");
        run("SELECT vc.commit('empty tables')");
        run("INSERT INTO public.gone VALUES (1, 'hush')");
        run("INSERT INTO public.policed VALUES (1, 'a'), (2, 'b')");
        run("SELECT vc.commit('two tables')");
        run("ALTER TABLE public.policed ENABLE ROW LEVEL SECURITY");
        run("CREATE ROLE h_writer IN ROLE pgvc_writer");
        run("GRANT CREATE ON SCHEMA public TO h_writer");
        run("GRANT SELECT, INSERT, UPDATE, DELETE ON public.policed TO h_writer");
        run("CREATE POLICY only_one ON public.policed USING (id = 1)");
        run("DROP TABLE public.gone");
        run("SET ROLE h_writer");
        expect_error("SELECT vc.reset('HEAD')", "42501", "needs pgvc_admin");
        // Its own table under the old name is not that table's history.
        run("CREATE TABLE public.gone (id int PRIMARY KEY, secret text)");
        expect_error(
            "SELECT * FROM vc.as_of(NULL::public.gone, 'HEAD')",
            "42501",
            "permission denied",
        );
        assert_eq!(
            int("SELECT count(*) FROM vc.diff('HEAD~1', 'HEAD') WHERE table_name = 'public.gone'"),
            0
        );
        // A policy hides a row from it: the history of that table stays hidden whole.
        assert_eq!(int("SELECT count(*) FROM public.policed"), 1);
        expect_error(
            "SELECT * FROM vc.as_of(NULL::public.policed, 'HEAD')",
            "42501",
            "row-level security",
        );
        run("RESET ROLE");
    }

    /// Review: restore with force dropped tracked tables as pgvc's owner for a caller
    /// who does not own them; rejoin read a remote without the caller's file access.
    #[pg_test]
    fn restore_force_and_rejoin_need_the_callers_own_rights() {
        serial();
        run("CREATE TABLE public.owned_elsewhere (id int PRIMARY KEY)");
        run("SELECT vc.track('public.owned_elsewhere')");
        run("SELECT vc.commit('one', allow_empty => true)");
        let d = dir("force");
        std::fs::create_dir_all(&d).unwrap();
        let _ = std::process::Command::new("chmod")
            .args(["a+rwx", &d])
            .status();
        run(&format!("SELECT vc.backup_add('force_b', 'file://{d}')"));
        run("SELECT * FROM vc.backup_sync('force_b')");
        run(&format!("SELECT vc.remote_add('rejoin_o', 'file://{d}')"));
        run("CREATE ROLE f_admin IN ROLE pgvc_admin, pg_read_server_files");
        run("SET ROLE f_admin");
        expect_error(
            &format!("SELECT vc.backup_restore('file://{d}', force => true)"),
            "42501",
            "only its owner may",
        );
        run("RESET ROLE");
        assert_eq!(int("SELECT count(*) FROM vc.tracked"), 1);
        run("CREATE ROLE f_admin2 IN ROLE pgvc_admin");
        run("SET ROLE f_admin2");
        expect_error(
            "SELECT vc.rejoin('rejoin_o')",
            "42501",
            "pg_read_server_files",
        );
        run("RESET ROLE");
    }

    /// User types from a remote are data too: a type none of the commit's tables uses
    /// is refused, and so is a domain check that could act rather than compute (it
    /// would run whenever a value is cast, and over stored values as pgvc's owner).
    #[pg_test]
    fn hostile_user_types_are_refused() {
        use crate::commit::TypeDef;
        serial();
        let d = dir("types-stray");
        let mut types = std::collections::BTreeMap::new();
        types.insert(
            "public.stray".to_string(),
            TypeDef::Enum {
                labels: vec!["x".into()],
            },
        );
        craft_with_types(
            &d,
            "public.t_stray",
            vec![col("id", "integer"), col("v", "text")],
            vec![],
            types,
        );
        clone_refused(&d, "42P17", "none of its tables uses");
        assert!(text("SELECT to_regtype('public.stray')::text").is_none());
        let d = dir("types-check");
        let mut types = std::collections::BTreeMap::new();
        types.insert(
            "public.sneaky".to_string(),
            TypeDef::Domain {
                base: "text".into(),
                not_null: false,
                default: None,
                checks: vec![(
                    "reads".into(),
                    "CHECK ((pg_read_file('/etc/hostname'::text) IS NOT NULL))".into(),
                )],
            },
        );
        craft_with_types(
            &d,
            "public.t_sneaky",
            vec![col("id", "integer"), col("v", "public.sneaky")],
            vec![],
            types,
        );
        clone_refused(&d, "42501", "not immutable");
        assert!(text("SELECT to_regtype('public.sneaky')::text").is_none());
    }
}
