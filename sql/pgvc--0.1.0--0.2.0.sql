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
    ADD COLUMN committed_name text;
