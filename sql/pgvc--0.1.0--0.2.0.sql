-- pgvc 0.1.0 -> 0.2.0: versioned schema (docs/SCHEMA.md).
--
-- Commits now use format version 2 (table ids, column tags, padding); commits made by
-- 0.1.0 stay readable as version 1 and keep their hashes. A tracked table's record
-- gains its identity, the tags of its columns, its storage and the name of its last committed
-- entry; a table without a record is matched to its last commit by name, once.

ALTER TABLE vc.tracked
    ADD COLUMN table_id int8,
    ADD COLUMN attnums int2[],
    ADD COLUMN tags int8[],
    ADD COLUMN storage text,
    ADD COLUMN committed_name text,
    ADD COLUMN recorded_at text;
UPDATE vc.tracked SET recorded_at = pg_catalog.format('%s/%s/%s',
    (SELECT system_identifier FROM pg_catalog.pg_control_system()),
    (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()),
    relid::oid);

-- Key logs and trigger functions are named by the table's identity now
-- (vc.log_t<id>, vc.trg_t<id>), so a dump and restore keeps them; those of 0.1.0,
-- named by OID, are replaced at the table's first commit. A dropped table's trigger
-- function is found from its log's name.
CREATE OR REPLACE FUNCTION vc._on_drop() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT t.relid::oid AS id, t.log_table FROM pg_event_trigger_dropped_objects() o
             JOIN vc.tracked t ON t.relid = o.objid
             WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 LOOP
        -- vc.log_<x> is filled by vc.trg_<x>() (src/pg/sql.rs, LogId).
        EXECUTE format('DROP TABLE IF EXISTS vc.%I', r.log_table);
        EXECUTE format('DROP FUNCTION IF EXISTS vc.%I()', 'trg_' || substr(r.log_table, 5));
        DELETE FROM vc.tracked WHERE relid = r.id;
    END LOOP;
END $$;

-- vc.status() counts schema changes per table (a new column: the function is made
-- again, with its Rust entry point).
DROP FUNCTION vc.status();
DROP FUNCTION vc._status();
CREATE FUNCTION vc._status() RETURNS TABLE (
    table_name text, inserted bigint, updated bigint, deleted bigint, schema_changes bigint
) STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_status_wrapper';
CREATE FUNCTION vc.status()
RETURNS TABLE(table_name text, inserted bigint, updated bigint, deleted bigint, schema_changes bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._status() $$;

-- vc.schema_diff(): the definition changes between two commits or the live tables.
CREATE FUNCTION vc._schema_diff(from_ref text, to_ref text) RETURNS TABLE (
    table_name text, change text, before text, after text
) VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_schema_diff_wrapper';
CREATE FUNCTION vc.schema_diff(from_ref text, to_ref text DEFAULT 'WORKING')
RETURNS TABLE(table_name text, change text, before text, after text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._schema_diff($1, $2) $$;

-- As a fresh install has them: nothing in vc for PUBLIC, readers may inspect.
REVOKE ALL ON FUNCTION vc._status(), vc.status(), vc._schema_diff(text, text),
    vc.schema_diff(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vc._status(), vc.status(), vc._schema_diff(text, text),
    vc.schema_diff(text, text) TO pgvc_reader;

-- pg_dump keeps pgvc's state: tracked tables by regclass (a dump writes it as a
-- name), and pgvc's tables marked as extension configuration.
ALTER TABLE vc.tracked ALTER COLUMN relid TYPE regclass;
SELECT pg_catalog.pg_extension_config_dump('vc.chunks', '');
SELECT pg_catalog.pg_extension_config_dump('vc.refs', '');
SELECT pg_catalog.pg_extension_config_dump('vc.head', '');
SELECT pg_catalog.pg_extension_config_dump('vc.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('vc.remotes', '');
SELECT pg_catalog.pg_extension_config_dump('vc.backups', '');

-- Automatic maintenance notes when it last swept a remote for unlisted objects, so
-- that every new session's first push need not list every pack again.
ALTER TABLE vc.maintenance DROP CONSTRAINT maintenance_what_check,
    ADD CONSTRAINT maintenance_what_check
        CHECK (what IN ('gc', 'compact', 'prune', 'orphaned', 'sweep'));

-- Branches (docs/BRANCHES.md): the functions a fresh install has.
CREATE FUNCTION vc."_branch"("name" TEXT, "start_point" TEXT) RETURNS TEXT
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_branch_wrapper';
CREATE FUNCTION vc."_branch_delete"("name" TEXT, "force" bool) RETURNS void
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_branch_delete_wrapper';
CREATE FUNCTION vc."_checkout"("branch" TEXT, "force" bool) RETURNS void
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_checkout_wrapper';
CREATE FUNCTION vc."_active_branch"() RETURNS TEXT
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_active_branch_wrapper';
CREATE FUNCTION vc."_branches"() RETURNS TABLE (
    "name" TEXT, "commit_hash" TEXT, "is_current" bool, "upstream" TEXT
) STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_branches_wrapper';
-- Branches (docs/BRANCHES.md).
CREATE FUNCTION vc.branch(name text, start_point text DEFAULT 'HEAD')
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._branch($1, $2) $$;

CREATE FUNCTION vc.branch_delete(name text, force boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._branch_delete($1, $2) $$;

CREATE FUNCTION vc.branches()
RETURNS TABLE(name text, commit_hash text, is_current boolean, upstream text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._branches() $$;

CREATE FUNCTION vc.active_branch() RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._active_branch() $$;

CREATE FUNCTION vc.checkout(branch text, force boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._checkout($1, $2) $$;

REVOKE ALL ON FUNCTION vc._branch(text, text), vc.branch(text, text),
    vc._branch_delete(text, boolean), vc.branch_delete(text, boolean),
    vc._checkout(text, boolean), vc.checkout(text, boolean),
    vc._active_branch(), vc.active_branch(), vc._branches(), vc.branches() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vc._branch(text, text), vc.branch(text, text),
    vc._branch_delete(text, boolean), vc.branch_delete(text, boolean),
    vc._checkout(text, boolean), vc.checkout(text, boolean) TO pgvc_writer;
GRANT EXECUTE ON FUNCTION vc._active_branch(), vc.active_branch(), vc._branches(),
    vc.branches() TO pgvc_reader;

-- Merge (docs/BRANCHES.md): its state and the functions a fresh install has.
-- An unfinished merge (vc.merge() that found conflicts or violations): the commit
-- HEAD named when it began (ours), the commit merged in (theirs) and the root value
-- the live tables were moved to (merged: ours, theirs' clean changes, our side of
-- every conflicting row). The working set is judged against merged until vc.commit()
-- makes the two-parent commit, vc.merge_abort() or vc.reset() ends it. changed holds
-- the tables whose rows the merge changed (by name, as a dump keeps them): the foreign
-- keys from or to them are where vc.violations() and vc.commit() look for orphans.
CREATE TABLE vc.merge_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    branch text NOT NULL,
    ours bytea NOT NULL CHECK (length(ours) = 32),
    theirs bytea NOT NULL CHECK (length(theirs) = 32),
    theirs_name text NOT NULL,
    merged bytea NOT NULL CHECK (length(merged) = 32),
    message text NOT NULL,
    changed text[] NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now()
);

-- Rows of an unfinished merge that need a decision: 'conflict' (both sides changed
-- the row incompatibly; the live table holds ours) and 'unique' (theirs' clean change
-- would break the unique constraint named in constraint_name; the live table holds
-- ours). Rows are encoded as in history; key is the row's key, in the table's
-- definition in the merged root.
CREATE TABLE vc.merge_conflicts (
    table_name text NOT NULL,
    key bytea NOT NULL,
    kind text NOT NULL CHECK (kind IN ('conflict', 'unique')),
    constraint_name text,
    base bytea,
    ours bytea,
    theirs bytea,
    PRIMARY KEY (table_name, key)
);

REVOKE ALL ON vc.merge_state, vc.merge_conflicts FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('vc.merge_state', '');
SELECT pg_catalog.pg_extension_config_dump('vc.merge_conflicts', '');

CREATE FUNCTION vc."_merge"("r#ref" TEXT, "message" TEXT) RETURNS TABLE (
    "commit_hash" TEXT, "fast_forward" bool, "conflicts" bigint, "violations" bigint
) VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_merge_wrapper';
CREATE FUNCTION vc."_conflicts"() RETURNS TABLE (
    "table_name" TEXT, "key" jsonb, "base" jsonb, "ours" jsonb, "theirs" jsonb
) STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_conflicts_wrapper';
CREATE FUNCTION vc."_violations"() RETURNS TABLE (
    "table_name" TEXT, "violation_type" TEXT, "constraint_detail" TEXT, "key" jsonb, "row" jsonb
) STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_violations_wrapper';
CREATE FUNCTION vc."_resolve"("table_name" TEXT, "strategy" TEXT, "key" jsonb) RETURNS bigint
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_resolve_wrapper';
CREATE FUNCTION vc."_merge_abort"() RETURNS void
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_merge_abort_wrapper';
CREATE FUNCTION vc.merge(ref text, message text DEFAULT NULL)
RETURNS TABLE(commit_hash text, fast_forward boolean, conflicts bigint, violations bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._merge($1, $2) $$;

CREATE FUNCTION vc.conflicts()
RETURNS TABLE(table_name text, key jsonb, base jsonb, ours jsonb, theirs jsonb)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._conflicts() $$;

CREATE FUNCTION vc.violations()
RETURNS TABLE(table_name text, violation_type text, constraint_detail text, key jsonb, "row" jsonb)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._violations() $$;

CREATE FUNCTION vc.resolve(table_name text, strategy text, key jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._resolve($1, $2, $3) $$;

CREATE FUNCTION vc.merge_abort() RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._merge_abort() $$;

REVOKE ALL ON FUNCTION vc._merge(text, text), vc.merge(text, text),
    vc._conflicts(), vc.conflicts(), vc._violations(), vc.violations(),
    vc._resolve(text, text, jsonb), vc.resolve(text, text, jsonb),
    vc._merge_abort(), vc.merge_abort() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vc._merge(text, text), vc.merge(text, text),
    vc._resolve(text, text, jsonb), vc.resolve(text, text, jsonb),
    vc._merge_abort(), vc.merge_abort() TO pgvc_writer;
GRANT EXECUTE ON FUNCTION vc._conflicts(), vc.conflicts(), vc._violations(),
    vc.violations() TO pgvc_reader;

-- Tags (docs/BRANCHES.md).
CREATE FUNCTION vc."_tag"("name" TEXT, "r#ref" TEXT, "message" TEXT) RETURNS TEXT
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_tag_wrapper';
CREATE FUNCTION vc."_tag_delete"("name" TEXT) RETURNS void
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_tag_delete_wrapper';
CREATE FUNCTION vc."_tags"() RETURNS TABLE (
    "name" TEXT, "commit_hash" TEXT, "message" TEXT, "tagger" TEXT, "tagged_us" bigint
) STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_tags_wrapper';
CREATE FUNCTION vc.tag(name text, ref text DEFAULT 'HEAD', message text DEFAULT NULL)
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._tag($1, $2, $3) $$;

CREATE FUNCTION vc.tag_delete(name text) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._tag_delete($1) $$;

CREATE FUNCTION vc.tags()
RETURNS TABLE(name text, commit_hash text, message text, tagger text, tagged_at timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$
    SELECT t.name, t.commit_hash, t.message, t.tagger,
           'epoch'::timestamptz + t.tagged_us * interval '1 microsecond'
    FROM vc._tags() t
$$;

REVOKE ALL ON FUNCTION vc._tag(text, text, text), vc.tag(text, text, text),
    vc._tag_delete(text), vc.tag_delete(text), vc._tags(), vc.tags() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vc._tag(text, text, text), vc.tag(text, text, text),
    vc._tag_delete(text), vc.tag_delete(text) TO pgvc_writer;
GRANT EXECUTE ON FUNCTION vc._tags(), vc.tags() TO pgvc_reader;

-- Several primaries (docs/BRANCHES.md): a conflict policy per tracked table.
ALTER TABLE vc.tracked ADD COLUMN conflict_policy text NOT NULL DEFAULT 'fail'
    CHECK (conflict_policy IN ('fail', 'ours', 'theirs', 'newest')
           OR conflict_policy LIKE '%(jsonb,jsonb,jsonb)');
CREATE FUNCTION vc."_set_conflict_policy"("tbl" oid, "policy" TEXT) RETURNS TEXT
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_set_conflict_policy_wrapper';
CREATE FUNCTION vc.set_conflict_policy(tbl regclass, policy text)
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._set_conflict_policy($1::oid, $2) $$;
REVOKE ALL ON FUNCTION vc._set_conflict_policy(oid, text), vc.set_conflict_policy(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vc._set_conflict_policy(oid, text), vc.set_conflict_policy(regclass, text) TO pgvc_writer;
ALTER TABLE vc.tracked ADD COLUMN owner_column text;
CREATE FUNCTION vc."_set_row_owner"("tbl" oid, "owner_column" TEXT) RETURNS void
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'vc_set_row_owner_wrapper';

-- Row ownership among several primaries (docs/BRANCHES.md): the triggers
-- vc.set_row_owner() puts on a table (AFTER each row, so that a generated owner column
-- is computed; and BEFORE TRUNCATE). A write of a row whose owner column (the
-- trigger's argument) does not hold vc.server_name is refused at the statement.
-- pgvc's own writes (checkouts, merges, a standby's apply) run with
-- session_replication_role = replica, where it does not fire.
CREATE FUNCTION vc.row_owner_check() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me text := nullif(current_setting('vc.server_name', true), '');
    col text := TG_ARGV[0];
    owner text;
BEGIN
    -- Without pgvc preloaded, vc.server_name is a placeholder anyone may SET.
    IF position('pgvc' in current_setting('shared_preload_libraries')) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('table %I.%I has row owners, which need pgvc in shared_preload_libraries', TG_TABLE_SCHEMA, TG_TABLE_NAME),
            HINT = 'add pgvc to shared_preload_libraries and restart';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('TRUNCATE of %I.%I would delete rows other servers own', TG_TABLE_SCHEMA, TG_TABLE_NAME),
            HINT = format('DELETE the rows this server owns: WHERE %I = %L', col, me);
    END IF;
    IF me IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('table %I.%I has row owners (column %I), but vc.server_name is not set on this server', TG_TABLE_SCHEMA, TG_TABLE_NAME, col),
            HINT = 'set vc.server_name in postgresql.conf and reload';
    END IF;
    IF TG_OP <> 'INSERT' THEN
        owner := to_jsonb(OLD) ->> col;
        IF owner IS DISTINCT FROM me THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = format('this row of %I.%I is owned by server %s, not by this one (%s)', TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(owner, 'NULL'), me),
                HINT = 'write it on the server that owns it; its change reaches this one';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        owner := to_jsonb(NEW) ->> col;
        IF owner IS DISTINCT FROM me THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = format('a row of %I.%I written here must be owned by this server: %I is %s, not %s', TG_TABLE_SCHEMA, TG_TABLE_NAME, col, coalesce(owner, 'NULL'), me),
                HINT = format('set %I to %L, or write the row on its owner', col, me);
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$;

CREATE FUNCTION vc.set_row_owner(tbl regclass, owner_column text)
RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._set_row_owner($1::oid, $2) $$;
REVOKE ALL ON FUNCTION vc.row_owner_check(), vc._set_row_owner(oid, text), vc.set_row_owner(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vc._set_row_owner(oid, text), vc.set_row_owner(regclass, text) TO pgvc_writer;

-- Key logging in native code (src/pg/keylog.rs): a table's vc.trg_<id>() is bound to
-- vc._log_keys's entry point whenever its key log is made (vc.track(), a key change,
-- and the first commit after this upgrade, which remakes the logs named by OID).
CREATE FUNCTION vc._log_keys() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_log_keys_wrapper';
REVOKE ALL ON FUNCTION vc._log_keys() FROM PUBLIC;
