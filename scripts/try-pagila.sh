#!/usr/bin/env bash
# Replication on a real schema: the pagila sample database (enum, domain, arrays,
# tsvector, bytea, a partitioned table, triggers, unowned sequences), by hand; the test
# suite's pgrx_tests/tests/pagila.rs runs a migration on it.
#
#   scripts/try-pagila.sh [PAGILA_DIR]     (default: ../shared/datasets/pagila)
#
# A primary loads pagila, tracks every table with a primary key and commits; a standby
# clones it into an empty database (the user types travel with the commit), follows a commit that
# touches films, payments (partitions) and actors, refuses a write, is promoted and
# takes an insert whose id continues the replicated sequence. Exits non-zero on any
# mismatch.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-$ROOT/../shared/datasets/pagila}
[ -f "$DATA/pagila-schema.sql" ] || { echo "no pagila in $DATA" >&2; exit 2; }
BIN=/usr/lib/postgresql/15/bin
D=$(mktemp -d /tmp/pgvc-pagila.XXXXXX)
chown postgres "$D"
install -d -o postgres -g postgres "$D/remote"
cleanup() {
    for n in p s; do runuser -u postgres -- "$BIN/pg_ctl" -D "$D/$n" -m immediate stop >/dev/null 2>&1 || true; done
    rm -rf "$D"
}
trap cleanup EXIT
PP=$((20000 + RANDOM % 20000)); SP=$((PP + 1))
for n in p s; do
    runuser -u postgres -- "$BIN/initdb" -D "$D/$n" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    { echo "port = $([ $n = p ] && echo $PP || echo $SP)"; echo "listen_addresses = ''"
      echo "unix_socket_directories = '$D'"; echo "shared_preload_libraries = 'pgvc'"
      echo "vc.replication_interval = 100"; } >>"$D/$n/postgresql.conf"
done
echo "vc.replicate_to_remote = 'origin'" >>"$D/p/postgresql.conf"
echo "vc.read_replica_remote = 'origin'" >>"$D/s/postgresql.conf"
for n in p s; do runuser -u postgres -- "$BIN/pg_ctl" -D "$D/$n" -l "$D/$n.log" -w start >/dev/null; done
P() { psql -X -q -v ON_ERROR_STOP=1 -h "$D" -p $PP -U postgres "$@"; }
S() { psql -X -q -v ON_ERROR_STOP=1 -h "$D" -p $SP -U postgres "$@"; }

P -f "$DATA/pagila-schema.sql" >/dev/null 2>&1
P -f "$DATA/pagila-data.sql" >/dev/null 2>&1
P -c "CREATE EXTENSION pgvc" -c "SELECT vc.remote_add('origin', 'file://$D/remote')" >/dev/null
P -At -c "SELECT vc.track(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = c.oid AND contype = 'p')" >/dev/null
echo "tracked: $(P -At -c 'SELECT count(*) FROM vc.tracked') tables"
P -At -c "SELECT 'committed (and pushed) ' || left(vc.commit('pagila'), 12)"

S -c "CREATE EXTENSION pgvc" >/dev/null
S -At -c "SELECT 'standby cloned ' || left(vc.clone('file://$D/remote'), 12)"

P -At -c "UPDATE film SET rental_rate = rental_rate + 1 WHERE film_id < 100;
          DELETE FROM payment WHERE payment_id % 50 = 0;
          INSERT INTO actor (first_name, last_name) VALUES ('NEW', 'ACTOR');
          SELECT 'primary committed ' || left(vc.commit('changes'), 12)"
want=$(P -At -c "SELECT vc.hashof('main') || ' ' || vc.root_hash()")
for _ in $(seq 100); do
    got=$(S -At -c "SELECT vc.hashof('main') || ' ' || vc.root_hash()")
    [ "$got" = "$want" ] && break
    sleep 0.1
done
[ "$got" = "$want" ] || { echo "standby did not catch up: $got vs $want" >&2; exit 1; }
echo "standby at the same commit and root hash: ${want:0:12} ${want:65:12}"
S -c "SELECT role, lag_ms, last_error FROM vc.replication_status()"
if S -c "UPDATE film SET title = 'x' WHERE film_id = 1" 2>/dev/null; then
    echo "a write on the standby succeeded" >&2; exit 1
fi
echo "standby refused a write"
S -At -c "SELECT 'promoted, epoch ' || vc.promote()"
id=$(S -At -c "INSERT INTO actor (first_name, last_name) VALUES ('AFTER', 'PROMOTE') RETURNING actor_id")
[ "$id" = 202 ] || { echo "new actor id $id, expected 202 (the sequence did not follow)" >&2; exit 1; }
S -At -c "SELECT 'new primary committed ' || left(vc.commit('on the new primary'), 12)"
echo "pagila: OK"
