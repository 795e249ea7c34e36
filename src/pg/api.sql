-- The public SQL API of pgvc (schema vc). Each function is a thin wrapper around an
-- internal vc._name Rust function, declaring the exact name, defaults and the
-- settings that make row encoding a pure function of the values: text output of
-- dates, intervals, floats, bytea and money, and schema-qualified names, are pinned
-- for the duration of the call and restored afterwards.

CREATE FUNCTION vc._on_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Also when a partition of a tracked table is truncated directly.
    UPDATE vc.tracked SET full_scan = true
    WHERE relid = TG_RELID OR relid IN (SELECT pg_partition_ancestors(TG_RELID));
    RETURN NULL;
END $$;

-- A dropped tracked table leaves no key log or trigger function behind.
CREATE FUNCTION vc._on_drop() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
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
CREATE EVENT TRIGGER vc_on_drop ON sql_drop EXECUTE FUNCTION vc._on_drop();

-- ALTER TABLE of a tracked table may change its primary key: then its key log is
-- rebuilt so writes keep working, and the next commit compares the table in full
-- (other DDL keeps the log: docs/SCHEMA.md).
-- It runs as pgvc's owner inside the table owner's ALTER: every setting the rebuild
-- depends on is pinned (names are rendered with search_path = pg_catalog; the trigger
-- function body is checked when created).
CREATE FUNCTION vc._on_alter() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET check_function_bodies = on
SET standard_conforming_strings = on SET client_min_messages = warning AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT t.relid FROM pg_event_trigger_ddl_commands() c
             JOIN vc.tracked t ON t.relid = c.objid
             WHERE c.classid = 'pg_class'::regclass LOOP
        PERFORM vc._retrack(r.relid);
    END LOOP;
END $$;
CREATE EVENT TRIGGER vc_on_alter ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION vc._on_alter();

CREATE FUNCTION vc.track(tbl regclass) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._track($1::oid) $$;

CREATE FUNCTION vc.untrack(tbl regclass) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._untrack($1::oid) $$;

CREATE FUNCTION vc.commit(message text, author text DEFAULT NULL, allow_empty boolean DEFAULT false)
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._commit($1, $2, $3) $$;

CREATE FUNCTION vc.log(ref text DEFAULT 'HEAD')
RETURNS TABLE(commit_hash text, parents text[], author text, message text, committed_at timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.commit_hash, l.parents, l.author, l.message,
           'epoch'::timestamptz + l.committed_us * interval '1 microsecond'
    FROM vc._log($1) l
$$;

CREATE FUNCTION vc.status()
RETURNS TABLE(table_name text, inserted bigint, updated bigint, deleted bigint, schema_changes bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._status() $$;

CREATE FUNCTION vc.diff(from_ref text, to_ref text DEFAULT 'WORKING', table_name text DEFAULT NULL)
RETURNS TABLE(table_name text, diff_type text, key jsonb, before jsonb, after jsonb)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._diff($1, $2, $3) $$;

CREATE FUNCTION vc.schema_diff(from_ref text, to_ref text DEFAULT 'WORKING')
RETURNS TABLE(table_name text, change text, before text, after text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._schema_diff($1, $2) $$;

CREATE FUNCTION vc.reset(ref text DEFAULT 'HEAD') RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._reset($1) $$;

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

-- Tags (docs/BRANCHES.md).
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

-- Merge (docs/BRANCHES.md).
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

-- Several primaries (docs/BRANCHES.md).
CREATE FUNCTION vc.set_conflict_policy(tbl regclass, policy text)
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._set_conflict_policy($1::oid, $2) $$;

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

CREATE FUNCTION vc.as_of(tbl anyelement, ref text) RETURNS SETOF anyelement
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
                   WHERE t.oid = pg_typeof(tbl) AND c.relkind IN ('r', 'p')) THEN
        RAISE EXCEPTION 'vc.as_of needs a table''s row type, not %', pg_typeof(tbl)
            USING ERRCODE = '42809',
                  HINT = 'call it as SELECT * FROM vc.as_of(NULL::schema.table, ''HEAD~1'')';
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT (r).* FROM (SELECT x::%s AS r FROM vc._as_of_rows(%s::regtype::oid, $1) x OFFSET 0) s',
        pg_typeof(tbl), quote_literal(pg_typeof(tbl)::text))
        USING ref;
END $$;

CREATE FUNCTION vc.hashof(ref text) RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._hashof($1) $$;

CREATE FUNCTION vc.root_hash(ref text DEFAULT 'HEAD') RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._root_hash($1) $$;

-- Remotes ------------------------------------------------------------------------

CREATE FUNCTION vc.remote_add(name text, url text) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._remote_add($1, $2) $$;

CREATE FUNCTION vc.remote_remove(name text) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._remote_remove($1) $$;

CREATE FUNCTION vc.remotes() RETURNS TABLE(name text, url text) LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT r.name, vc._redact(r.url) FROM vc.remotes r ORDER BY r.name $$;

CREATE FUNCTION vc.push(remote text DEFAULT 'origin', branch text DEFAULT NULL, force boolean DEFAULT false)
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._push($1, $2, $3) $$;

CREATE FUNCTION vc.fetch(remote text DEFAULT 'origin', branch text DEFAULT NULL)
RETURNS TABLE(branch text, commit_hash text) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._fetch($1, $2) $$;

CREATE FUNCTION vc.pull(remote text DEFAULT 'origin', branch text DEFAULT NULL)
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._pull($1, $2) $$;

CREATE FUNCTION vc.clone(url text, branch text DEFAULT 'main')
RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._clone($1, $2) $$;

-- Backups ------------------------------------------------------------------------

CREATE FUNCTION vc.backup_add(name text, url text) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._backup_add($1, $2) $$;

CREATE FUNCTION vc.backup_remove(name text) RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT vc._backup_remove($1) $$;

CREATE FUNCTION vc.backups()
RETURNS TABLE(name text, url text, last_sync_at timestamptz, last_sync_commit text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT b.name, vc._redact(b.url), b.last_sync_at, b.last_sync_commit FROM vc.backups b ORDER BY b.name $$;

CREATE FUNCTION vc.backup_sync(name text)
RETURNS TABLE(chunks_written bigint, bytes_written bigint) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT * FROM vc._backup_sync($1) $$;

CREATE FUNCTION vc.backup_restore(url text, force boolean DEFAULT false)
RETURNS void LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._backup_restore($1, $2) $$;

CREATE FUNCTION vc.backup_verify(name_or_url text)
RETURNS TABLE(ok boolean, chunks_checked bigint, problems text[]) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._backup_verify($1) $$;

-- SECURITY INVOKER: the caller's own file rights decide (a schedule makes the server
-- write to the backup's directory on its own), and pgvc_admin may update only the
-- schedule of vc.backups (column grants at the end of this file).
CREATE FUNCTION vc.backup_schedule(name text, every interval) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'argument "name" must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF every IS NOT NULL AND every < interval '1 second' THEN
        RAISE EXCEPTION 'backup interval % is too short', every USING ERRCODE = '22023',
            HINT = 'use at least 1 second, e.g. interval ''1 hour''; NULL stops the schedule';
    END IF;
    IF NOT (pg_has_role(current_user, 'pg_write_server_files', 'MEMBER')
            OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RAISE EXCEPTION 'permission denied to schedule backup "%": scheduled backups write files as the server, which needs superuser or pg_write_server_files', name
            USING ERRCODE = '42501', HINT = 'GRANT pg_write_server_files TO <role>, as a superuser';
    END IF;
    UPDATE vc.backups b SET every = backup_schedule.every WHERE b.name = backup_schedule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'backup "%" does not exist', name USING ERRCODE = '42704',
            HINT = 'add it with SELECT vc.backup_add(''nightly'', ''file:///path'')';
    END IF;
END $$;

-- Errors name server paths (a remote's directory, a file it could not write). Roles
-- without file access see them with the paths left out. Called from the SECURITY
-- DEFINER status functions, where current_user is pgvc's owner: the session's role
-- decides.
CREATE FUNCTION vc._redact(msg text) RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN msg IS NULL OR pg_has_role(session_user, 'pg_read_server_files', 'USAGE')
                THEN msg
                ELSE regexp_replace(msg, '(file://)?/[^[:space:]"'',;()]*', '<path>', 'g') END
$$;

-- SECURITY DEFINER: a role granted EXECUTE sees the schedule without reading
-- vc.backups (whose errors name server paths).
CREATE FUNCTION vc.backup_status()
RETURNS TABLE(name text, every interval, last_sync_at timestamptz, last_attempt_at timestamptz,
              next_sync_at timestamptz, last_error text, last_error_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.name, b.every, b.last_sync_at, b.last_attempt_at,
           CASE WHEN b.every IS NOT NULL
                THEN coalesce(b.last_attempt_at + b.every * power(2, least(b.failures, 6)), now()) END,
           vc._redact(b.last_error), b.last_error_at
    FROM vc.backups b ORDER BY b.name
$$;

-- The background worker runs scheduled backups in two steps, each its own transaction.
-- First it claims the due ones: their attempt is recorded and committed before any
-- sync starts, so a sync that never ends (the server crashed, the worker was killed by
-- the OOM killer) is seen at the next look, counted as a failure, and retried only
-- after a backoff, never in a loop. Due: last attempt + every * 2^failures (at most
-- 64 times the interval).
CREATE FUNCTION vc._claim_due_backups() RETURNS text[] LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE claimed text[];
BEGIN
    UPDATE vc.backups
       SET failures = failures + 1,
           last_error = 'the previous scheduled sync did not finish (the server crashed or the worker was killed, for instance by the OOM killer)',
           last_error_at = now(), attempt_started_at = NULL
     WHERE attempt_started_at IS NOT NULL;
    WITH due AS (
        UPDATE vc.backups SET last_attempt_at = now(), attempt_started_at = now()
         WHERE every IS NOT NULL
           AND (last_attempt_at IS NULL
                OR last_attempt_at + every * power(2, least(failures, 6)) <= now())
        RETURNING name)
    SELECT coalesce(array_agg(name ORDER BY name), '{}') INTO claimed FROM due;
    RETURN claimed;
END $$;

-- Then each claimed backup is synced in a subtransaction; the outcome is recorded on
-- its row and the attempt cleared.
CREATE FUNCTION vc._run_backup(backup text) RETURNS void LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        PERFORM vc.backup_sync(backup);
        UPDATE vc.backups SET last_error = NULL, last_error_at = NULL, failures = 0,
               attempt_started_at = NULL
         WHERE name = backup;
    EXCEPTION WHEN OTHERS THEN
        UPDATE vc.backups SET last_error = SQLERRM, last_error_at = now(),
               failures = failures + 1, attempt_started_at = NULL
         WHERE name = backup;
        RAISE LOG 'pgvc: scheduled backup "%" failed: %', backup, SQLERRM;
    END;
END $$;

CREATE FUNCTION vc.worker_status()
RETURNS TABLE(pid int, database text, state text, started_at timestamptz, last_tick_at timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.pid, w.database, w.state,
           'epoch'::timestamptz + w.started_us * interval '1 microsecond',
           'epoch'::timestamptz + w.last_tick_us * interval '1 microsecond'
    FROM vc._worker_status() w
$$;

CREATE FUNCTION vc.progress()
RETURNS TABLE(pid int, operation text, chunks_done bigint, bytes_done bigint,
              chunks_total bigint, bytes_total bigint, started_at timestamptz, updated_at timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.pid, p.operation, p.chunks_done, p.bytes_done, p.chunks_total, p.bytes_total,
           'epoch'::timestamptz + p.started_us * interval '1 microsecond',
           'epoch'::timestamptz + p.updated_us * interval '1 microsecond'
    FROM vc._progress() p
$$;

-- Replication ----------------------------------------------------------------------

CREATE FUNCTION vc.replication_status()
RETURNS TABLE(role text, remote text, branch text, local_head text, remote_head text,
              epoch bigint, last_sync_at timestamptz, lag_ms bigint, last_error text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.role, s.remote, s.branch, s.local_head, s.remote_head, s.epoch,
           'epoch'::timestamptz + s.last_sync_us * interval '1 microsecond',
           s.lag_ms, vc._redact(s.last_error)
    FROM vc._replication_status() s
$$;

CREATE FUNCTION vc.sync() RETURNS bigint LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._sync() $$;

CREATE FUNCTION vc.promote() RETURNS bigint LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._promote() $$;

CREATE FUNCTION vc.rejoin(remote text) RETURNS text LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$ SELECT vc._rejoin($1) $$;

-- The role in vc.replication is cached per process; writes make every process re-read it.
CREATE TRIGGER vc_replication_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON vc.replication FOR EACH STATEMENT EXECUTE FUNCTION vc._replication_changed();
-- Also under session_replication_role = replica.
ALTER TABLE vc.replication ENABLE ALWAYS TRIGGER vc_replication_changed;

-- Run by the background worker: one replication round in a subtransaction. Returns
-- 'idle', 'ok', 'waiting', 'fenced', or 'error: <message>' (recorded for
-- vc.replication_status(); the worker backs off and logs a new error once).
CREATE FUNCTION vc._replication_tick() RETURNS text LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C'
AS $$
BEGIN
    RETURN vc._replicate();
EXCEPTION WHEN OTHERS THEN
    PERFORM vc._replication_failed(SQLERRM);
    RETURN 'error: ' || SQLERRM;
END $$;

-- Storage ------------------------------------------------------------------------

CREATE FUNCTION vc.gc() RETURNS TABLE(chunks bigint, bytes bigint, reachable bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._gc() $$;

CREATE FUNCTION vc.verify() RETURNS TABLE(refs bigint, chunks bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._verify() $$;

-- The worker's look at the garbage: never raises (a failure is logged, and tried
-- again at the next look).
CREATE FUNCTION vc._auto_gc_tick() RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN vc._auto_gc();
EXCEPTION WHEN OTHERS THEN
    RAISE LOG 'pgvc: automatic gc failed: %', SQLERRM;
    RETURN NULL;
END $$;

CREATE FUNCTION vc.remote_compact(remote text DEFAULT 'origin')
RETURNS TABLE(packs_merged bigint, chunks bigint, bytes bigint) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._remote_compact($1) $$;

CREATE FUNCTION vc.remote_gc(remote text DEFAULT 'origin', grace interval DEFAULT '1 hour')
RETURNS TABLE(objects bigint, bytes bigint, temporaries bigint) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._remote_gc($1, $2) $$;

CREATE FUNCTION vc.backup_compact(name text)
RETURNS TABLE(packs_merged bigint, chunks bigint, bytes bigint) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._backup_compact($1) $$;

CREATE FUNCTION vc.backup_gc(name text, grace interval DEFAULT '1 hour')
RETURNS TABLE(objects bigint, bytes bigint, temporaries bigint) LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._backup_gc($1, $2) $$;

CREATE FUNCTION vc.storage()
RETURNS TABLE(location text, objects bigint, bytes bigint, chunks bigint,
              reachable_share float8, retired_packs bigint, last_gc_at timestamptz,
              last_compact_at timestamptz, last_prune_at timestamptz,
              last_freed_objects bigint, last_freed_bytes bigint, problem text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM vc._storage() $$;

-- Nothing is callable by PUBLIC: history holds every row ever committed, and the
-- state-changing functions rewrite tables. Grant per role (see README, Security).
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA vc FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA vc FROM PUBLIC;
-- Writers of tracked tables append to the key logs in vc (INSERT only, granted per log).
GRANT USAGE ON SCHEMA vc TO PUBLIC;
-- The write guard of tracked tables reads the replication role as the writer.
GRANT SELECT ON vc.replication TO PUBLIC;

-- Roles for people who are not superusers (README, Security). Roles belong to the
-- cluster: made once, reused by pgvc in other databases, left by DROP EXTENSION.
--   pgvc_reader: history and status of the tables it may SELECT;
--   pgvc_writer: plus commit (needs SELECT on every tracked table) and reset (needs
--                INSERT, UPDATE and DELETE on every table it rewrites);
--   pgvc_admin:  plus track (needs TRIGGER on the table), remotes (file:// needs
--                pg_read/write_server_files as well), backups and replication.
-- pgvc's functions run as its owner and check the caller's own rights on each table.
DO $$
DECLARE r text; f regprocedure;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgvc_reader', 'pgvc_writer', 'pgvc_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        -- Made beforehand by someone else? Then it could be a role that person logs in
        -- as, or administers: pgvc would grant its functions to them. Refused.
        ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r
                      AND (rolcanlogin OR rolsuper OR rolcreaterole OR rolcreatedb
                           OR rolreplication OR rolbypassrls))
           OR EXISTS (SELECT 1 FROM pg_auth_members m
                      WHERE m.roleid = r::regrole AND m.admin_option) THEN
            RAISE EXCEPTION 'role % exists with attributes or administrators pgvc does not give it', r
                USING ERRCODE = '42710',
                      HINT = 'a superuser should check who made it, then DROP ROLE it (or make it NOLOGIN with no other attribute) and retry';
        END IF;
    END LOOP;
    IF NOT pg_has_role('pgvc_writer', 'pgvc_reader', 'MEMBER') THEN
        GRANT pgvc_reader TO pgvc_writer;
    END IF;
    IF NOT pg_has_role('pgvc_admin', 'pgvc_writer', 'MEMBER') THEN
        GRANT pgvc_writer TO pgvc_admin;
    END IF;
    FOR f, r IN
        SELECT p.oid::regprocedure, g.role
        FROM pg_proc p JOIN (VALUES
            ('log', 'pgvc_reader'), ('_log', 'pgvc_reader'), ('status', 'pgvc_reader'),
            ('_status', 'pgvc_reader'), ('diff', 'pgvc_reader'), ('_diff', 'pgvc_reader'),
            ('schema_diff', 'pgvc_reader'), ('_schema_diff', 'pgvc_reader'),
            ('as_of', 'pgvc_reader'), ('_as_of_rows', 'pgvc_reader'),
            ('hashof', 'pgvc_reader'), ('_hashof', 'pgvc_reader'),
            ('root_hash', 'pgvc_reader'), ('_root_hash', 'pgvc_reader'),
            ('progress', 'pgvc_reader'), ('_progress', 'pgvc_reader'),
            ('worker_status', 'pgvc_reader'), ('_worker_status', 'pgvc_reader'),
            ('replication_status', 'pgvc_reader'), ('_replication_status', 'pgvc_reader'),
            ('_redact', 'pgvc_reader'),
            ('commit', 'pgvc_writer'), ('_commit', 'pgvc_writer'),
            ('reset', 'pgvc_writer'), ('_reset', 'pgvc_writer'),
            ('branch', 'pgvc_writer'), ('_branch', 'pgvc_writer'),
            ('branch_delete', 'pgvc_writer'), ('_branch_delete', 'pgvc_writer'),
            ('checkout', 'pgvc_writer'), ('_checkout', 'pgvc_writer'),
            ('branches', 'pgvc_reader'), ('_branches', 'pgvc_reader'),
            ('active_branch', 'pgvc_reader'), ('_active_branch', 'pgvc_reader'),
            ('set_conflict_policy', 'pgvc_writer'), ('_set_conflict_policy', 'pgvc_writer'),
            ('set_row_owner', 'pgvc_writer'), ('_set_row_owner', 'pgvc_writer'),
            ('tag', 'pgvc_writer'), ('_tag', 'pgvc_writer'),
            ('tag_delete', 'pgvc_writer'), ('_tag_delete', 'pgvc_writer'),
            ('tags', 'pgvc_reader'), ('_tags', 'pgvc_reader'),
            ('merge', 'pgvc_writer'), ('_merge', 'pgvc_writer'),
            ('resolve', 'pgvc_writer'), ('_resolve', 'pgvc_writer'),
            ('merge_abort', 'pgvc_writer'), ('_merge_abort', 'pgvc_writer'),
            ('conflicts', 'pgvc_reader'), ('_conflicts', 'pgvc_reader'),
            ('violations', 'pgvc_reader'), ('_violations', 'pgvc_reader'),
            ('track', 'pgvc_admin'), ('_track', 'pgvc_admin'),
            ('untrack', 'pgvc_admin'), ('_untrack', 'pgvc_admin'),
            ('remote_add', 'pgvc_admin'), ('_remote_add', 'pgvc_admin'),
            ('remote_remove', 'pgvc_admin'), ('_remote_remove', 'pgvc_admin'),
            ('remotes', 'pgvc_admin'), ('push', 'pgvc_admin'), ('_push', 'pgvc_admin'),
            ('fetch', 'pgvc_admin'), ('_fetch', 'pgvc_admin'),
            ('pull', 'pgvc_admin'), ('_pull', 'pgvc_admin'),
            ('clone', 'pgvc_admin'), ('_clone', 'pgvc_admin'),
            ('backup_add', 'pgvc_admin'), ('_backup_add', 'pgvc_admin'),
            ('backup_remove', 'pgvc_admin'), ('_backup_remove', 'pgvc_admin'),
            ('backups', 'pgvc_admin'), ('backup_sync', 'pgvc_admin'),
            ('_backup_sync', 'pgvc_admin'), ('backup_restore', 'pgvc_admin'),
            ('_backup_restore', 'pgvc_admin'), ('backup_verify', 'pgvc_admin'),
            ('_backup_verify', 'pgvc_admin'), ('backup_schedule', 'pgvc_admin'),
            ('backup_status', 'pgvc_admin'),
            ('sync', 'pgvc_admin'), ('_sync', 'pgvc_admin'),
            ('promote', 'pgvc_admin'), ('_promote', 'pgvc_admin'),
            ('rejoin', 'pgvc_admin'), ('_rejoin', 'pgvc_admin'),
            ('gc', 'pgvc_admin'), ('_gc', 'pgvc_admin'),
            ('verify', 'pgvc_admin'), ('_verify', 'pgvc_admin'),
            ('remote_compact', 'pgvc_admin'), ('_remote_compact', 'pgvc_admin'),
            ('remote_gc', 'pgvc_admin'), ('_remote_gc', 'pgvc_admin'),
            ('backup_compact', 'pgvc_admin'), ('_backup_compact', 'pgvc_admin'),
            ('backup_gc', 'pgvc_admin'), ('_backup_gc', 'pgvc_admin'),
            ('storage', 'pgvc_admin'), ('_storage', 'pgvc_admin')
        ) AS g(name, role) ON g.name = p.proname
        WHERE p.pronamespace = 'vc'::regnamespace
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
    END LOOP;
    GRANT SELECT (name), UPDATE (every) ON vc.backups TO pgvc_admin;
END $$;

