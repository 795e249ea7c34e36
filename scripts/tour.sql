-- pgvc in five minutes: a table under version control, Git style.
-- Played by `make tour` (scripts/demo.sh --tour) on a throwaway server.

\echo '== Load the extension. Its functions live in the schema "vc".'
CREATE EXTENSION pgvc;

\echo
\echo '== An ordinary table with a primary key, and three rows.'
CREATE TABLE public.items (
    id    int PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10,2)
);
INSERT INTO items VALUES
    (1, 'teapot', 24.50),
    (2, 'mug',     8.00),
    (3, 'kettle', 39.90);

\echo
\echo '== Put the table under version control, and commit its current content.'
SELECT vc.track('public.items');
SELECT vc.commit('initial catalogue');

\echo
\echo '== Work as usual with plain SQL: change a price, drop a product, add one.'
UPDATE items SET price = 9.50 WHERE id = 2;
DELETE FROM items WHERE id = 3;
INSERT INTO items VALUES (4, 'saucer', 4.25);

\echo
\echo '== Like `git status`: which tracked tables have uncommitted changes.'
SELECT * FROM vc.status();

\echo
\echo '== Like `git diff HEAD`: the changed rows, before and after.'
SELECT * FROM vc.diff('HEAD');

\echo
\echo '== Commit the changes.'
SELECT vc.commit('spring prices');

\echo
\echo '== The history, newest first.'
SELECT commit_hash, author, message FROM vc.log();

\echo
\echo '== Time travel: the table as it was one commit ago (HEAD~1), read-only.'
SELECT * FROM vc.as_of(NULL::public.items, 'HEAD~1') ORDER BY id;

\echo
\echo '== Oops: a DELETE without WHERE empties the table.'
DELETE FROM items;

\echo
\echo '== status shows the damage is uncommitted...'
SELECT * FROM vc.status();

\echo
\echo '== ...so reset (like `git reset --hard`) brings back the last commit.'
SELECT vc.reset();
SELECT * FROM items ORDER BY id;

\echo
\echo '== The root hash names the content of all tracked tables: equal content on'
\echo '== any server gives an equal hash, whatever the history that led to it.'
SELECT vc.root_hash();

\echo
\echo '== Share it: add a file:// remote and push the branch to it.'
SELECT vc.remote_add('origin', :'remote');
SELECT vc.push();

\echo
\echo '== A second database clones it: same rows, same history, same root hash.'
CREATE DATABASE copy;
\c copy
CREATE EXTENSION pgvc;
SELECT vc.clone(:'remote');
SELECT * FROM items ORDER BY id;
SELECT commit_hash, message FROM vc.log();
SELECT vc.root_hash();

\echo
\echo '== The copy commits a change and pushes it back...'
UPDATE items SET price = 22.00 WHERE id = 1;
SELECT vc.commit('teapot on sale', author => 'copy');
SELECT vc.push();

\echo
\echo '== ...and the first database pulls it (a fast-forward).'
\c postgres
SELECT vc.pull();
SELECT * FROM items ORDER BY id;
SELECT commit_hash, author, message FROM vc.log();
