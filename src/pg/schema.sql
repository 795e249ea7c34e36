-- pgvc's own tables (schema vc). Written only through the extension's functions:
-- PUBLIC has no privileges on them.

-- Content-addressed chunks: prolly nodes, row blobs, root values, commits.
CREATE TABLE vc.chunks (
    hash bytea PRIMARY KEY CHECK (length(hash) = 32),
    data bytea NOT NULL
);
-- Nodes are ~4 KiB and compress well; lz4 is far cheaper than pglz on the hot path.
-- STORAGE MAIN keeps a compressed node in the heap row (out of line only when it
-- cannot fit in a page): the default moved most nodes to TOAST, costing ~10% of a
-- commit's time and a second lookup per read.
ALTER TABLE vc.chunks ALTER COLUMN data SET COMPRESSION lz4;
ALTER TABLE vc.chunks ALTER COLUMN data SET STORAGE MAIN;
-- Lookups are by hash only: the planner needs the table's size (relpages, reltuples),
-- not column statistics. A sample of 300 rows, not 30,000 (whose chunk bytes cost a
-- commit that analyzes vc.chunks as it grows tens of MB).
ALTER TABLE vc.chunks ALTER COLUMN hash SET STATISTICS 1;
ALTER TABLE vc.chunks ALTER COLUMN data SET STATISTICS 0;

-- Branches (kind 'branch'), tags ('tag') and remote-tracking refs ('remote').
CREATE TABLE vc.refs (
    name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('branch', 'tag', 'remote')),
    hash bytea NOT NULL CHECK (length(hash) = 32)
);

-- The current branch. One row (written at the first commit or checkout; none means
-- 'main'); its row lock serializes committers.
CREATE TABLE vc.head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    branch text NOT NULL
);

-- Tracked tables. log_table holds the primary keys changed since the last commit
-- (written by statement-level triggers); full_scan is set by TRUNCATE and DDL-like
-- events that make the key log insufficient.
-- The other columns are the table's identity in history and its record at its last
-- commit or checkout (docs/SCHEMA.md): the tags of its columns by attribute number,
-- its storage (relfilenodes: a rewrite changes them) and the name it was committed
-- under. The key log and trigger function are named by the table's identity, which a
-- dump keeps; recorded_at is where the record was made (the cluster's system
-- identifier, the database's and the table's OIDs: sql::recorded_here), which a dump
-- and restore changes: the record's attribute numbers and storage are then another
-- database's, and are made anew.
CREATE TABLE vc.tracked (
    relid regclass PRIMARY KEY,
    log_table text NOT NULL,
    full_scan boolean NOT NULL DEFAULT true,
    table_id int8,
    attnums int2[],
    tags int8[],
    storage text,
    committed_name text,
    recorded_at text,
    -- How the worker of one of several primaries (vc.multi_primary) decides rows both
    -- sides changed: vc.set_conflict_policy() (a policy, or a function by its
    -- regprocedure: schema.name(jsonb,jsonb,jsonb)).
    conflict_policy text NOT NULL DEFAULT 'fail'
        CHECK (conflict_policy IN ('fail', 'ours', 'theirs', 'newest')
               OR conflict_policy LIKE '%(jsonb,jsonb,jsonb)'),
    -- The column naming the server that owns each row (vc.set_row_owner), if any.
    owner_column text
);


-- Remotes: where push, fetch, pull and clone exchange history (file:// for now).
CREATE TABLE vc.remotes (
    name text PRIMARY KEY,
    url text NOT NULL
);

-- Backups: remotes that receive every branch, tag and the working set.
CREATE TABLE vc.backups (
    name text PRIMARY KEY,
    url text NOT NULL,
    last_sync_at timestamptz,
    last_sync_commit text,
    -- Scheduling (vc.backup_schedule); run by the background worker.
    every interval CHECK (every >= interval '1 second'),
    last_attempt_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    -- Set, and committed, before a scheduled sync starts; cleared when it ends. Still
    -- set at the next look: that sync never ended (the server crashed, or the worker
    -- was killed, by the OOM killer for instance).
    attempt_started_at timestamptz,
    -- Failed scheduled syncs in a row: the next is due after every * 2^failures
    -- (at most 64 times the interval), so a sync that kills the worker does not
    -- restart in a loop.
    failures int NOT NULL DEFAULT 0
);

-- Replication role decided by vc.promote(), vc.rejoin() or fencing (NULL: follow the
-- settings in postgresql.conf), and the fencing epoch this server believes in.
CREATE TABLE vc.replication (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    role text CHECK (role IN ('primary', 'standby', 'fenced')),
    remote text,
    epoch bigint CHECK (epoch >= 0),
    changed_at timestamptz
);
INSERT INTO vc.replication (singleton) VALUES (true);

-- Replication work (worker rounds, sync, promote, rejoin) serializes on a lock of this
-- empty table. Not an advisory lock: any role can take any advisory key, and so stall
-- the worker and vc.promote(); nobody but pgvc's owner has any right on this table.
CREATE TABLE vc.replication_lock ();

-- vc.gc() and the writers of vc.chunks meet on a lock of this empty table (see
-- src/pg/storage.rs): a transaction that writes chunks, or skips fetching chunks
-- because vc.chunks has them, holds it in ROW EXCLUSIVE mode; vc.gc() takes SHARE ROW
-- EXCLUSIVE, conditionally, for its final mark and its deletes. Nobody but pgvc's
-- owner has any right on it, so no other role can stall either side.
CREATE TABLE vc.gc_lock ();

-- What the last garbage collection, compaction and prune of each location did
-- ('local', 'remote <name>', 'backup <name>'); shown by vc.storage(). For a gc,
-- kept is the number of chunks left: the worker's garbage estimate starts from it.
-- ('local', 'orphaned') counts ref moves that may have left chunks unreachable since
-- the last gc (a branch moved other than by one commit, refs removed): without one,
-- growth is only new history and the worker does not collect.
CREATE TABLE vc.maintenance (
    location text NOT NULL,
    what text NOT NULL CHECK (what IN ('gc', 'compact', 'prune', 'orphaned', 'sweep')),
    at timestamptz NOT NULL,
    objects bigint NOT NULL,
    bytes bigint NOT NULL,
    kept bigint,
    PRIMARY KEY (location, what)
);

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

REVOKE ALL ON ALL TABLES IN SCHEMA vc FROM PUBLIC;

-- pg_dump keeps pgvc's state: history, refs, the current branch, tracked tables (by
-- regclass, which a dump writes as a name), remotes and backups. Replication state
-- and maintenance records belong to a server and are not dumped.
SELECT pg_catalog.pg_extension_config_dump('vc.chunks', '');
SELECT pg_catalog.pg_extension_config_dump('vc.refs', '');
SELECT pg_catalog.pg_extension_config_dump('vc.head', '');
SELECT pg_catalog.pg_extension_config_dump('vc.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('vc.remotes', '');
SELECT pg_catalog.pg_extension_config_dump('vc.backups', '');
SELECT pg_catalog.pg_extension_config_dump('vc.merge_state', '');
SELECT pg_catalog.pg_extension_config_dump('vc.merge_conflicts', '');
