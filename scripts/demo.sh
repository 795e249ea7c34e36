#!/usr/bin/env bash
# Plays scripts/demo.sql against a throwaway PostgreSQL 15 cluster that preloads the
# installed pgvc (`make demo` installs it first). The cluster lives in a temp dir
# and is stopped and removed on exit, whatever happens.
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
SQL="$(cd "$(dirname "$0")" && pwd)/demo.sql"

# PostgreSQL refuses to run as root: the server runs as the postgres OS user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d /tmp/pgvc-demo.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
cleanup() {
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

echo "demo: creating a throwaway cluster in $dir"
as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }

# A free port: nothing answers a connection on it.
port=
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "demo: no free port found" >&2; exit 1; }

cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pgvc'
CONF

(cd "$dir" && as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null) || {
    echo "demo: the server did not start; its log:" >&2
    tail -n 30 "$dir/log" >&2
    exit 1
}

echo "demo: server up on port $port; playing $SQL"
echo
# The remote is a directory the server (running as postgres) can write.
install -d -o postgres -g postgres "$dir/remote" 2>/dev/null || mkdir -p "$dir/remote"
psql -X -v ON_ERROR_STOP=1 -v remote="file://$dir/remote" -e -P pager=off \
    -h "$dir" -p "$port" -U postgres -d postgres -f "$SQL"
