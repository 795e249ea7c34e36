#!/usr/bin/env bash
# The pgvc demo (`make demo`): a primary and a standby replicating through a file://
# remote; the primary is killed, the standby is promoted and takes writes, the old
# primary comes back fenced and rejoins as a standby. Throwaway clusters in a temp
# dir, stopped and removed on exit whatever happens.
#
#   scripts/demo.sh              the replication and failover demo, through a directory
#   REMOTE=s3 scripts/demo.sh    the same through a bucket of a local S3-compatible
#                                server (moto, installed by scripts/setup.sh)
#   scripts/demo.sh --tour       version control on one server (scripts/tour.sql)
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
HERE="$(cd "$(dirname "$0")" && pwd)"
KIND=${REMOTE:-file}
MOTO_PID=

# PostgreSQL refuses to run as root: the servers run as the postgres OS user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d /tmp/pgvc-demo.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
cleanup() {
    [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
    for d in "$dir"/*/data; do
        [ -d "$d" ] && as_pg "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "demo: no free port found" >&2
    exit 1
}

# new_server NAME PORT [conf lines...]: initdb and start a server in $dir/NAME.
new_server() {
    local name=$1 port=$2
    shift 2
    as_pg mkdir -p "$dir/$name"
    as_pg "$BIN/initdb" -D "$dir/$name/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/$name/initdb.log" 2>&1 || { cat "$dir/$name/initdb.log"; exit 1; }
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'pgvc'"
        printf '%s\n' "$@"
    } >>"$dir/$name/data/postgresql.conf"
    start_server "$name"
}

start_server() {
    # After a kill -9 the old backends take a moment to notice and exit: retry.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        if (cd "$dir" && as_pg "$BIN/pg_ctl" -D "$dir/$1/data" -l "$dir/$1/log" -w start >/dev/null 2>&1); then
            return 0
        fi
        sleep 0.5
    done
    echo "demo: server $1 did not start; its log:" >&2
    tail -n 30 "$dir/$1/log" >&2
    exit 1
}

tour() {
    local port
    port=$(free_port)
    new_server tour "$port"
    install -d -o postgres -g postgres "$dir/remote" 2>/dev/null || mkdir -p "$dir/remote"
    echo "demo: server up on port $port; playing $HERE/tour.sql"
    echo
    psql -X -v ON_ERROR_STOP=1 -v remote="file://$dir/remote" -e -P pager=off \
        -h "$dir" -p "$port" -U postgres -d postgres -f "$HERE/tour.sql"
}

if [ "${1:-}" = "--tour" ]; then
    tour
    exit 0
fi

P=$(free_port)
S=$(free_port)
while [ "$S" = "$P" ]; do S=$(free_port); done
CREDS=()
case "$KIND" in
file)
    REMOTE="file://$dir/remote"
    install -d -o postgres -g postgres "$dir/remote" 2>/dev/null || mkdir -p "$dir/remote"
    ;;
s3)
    M=$(free_port)
    MOTO=${PGVC_MOTO_SERVER:-/opt/pgvc-moto/bin/moto_server}
    [ -x "$MOTO" ] || { echo "demo: $MOTO missing; run scripts/setup.sh" >&2; exit 1; }
    "$MOTO" -H 127.0.0.1 -p "$M" >"$dir/moto.log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$M") 2>/dev/null && break; sleep 0.1; done
    # The bucket (moto takes an unsigned request).
    exec 3<>"/dev/tcp/127.0.0.1/$M"
    printf 'PUT /pgvc-demo HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$M" >&3
    head -1 <&3 | grep -q ' 200 ' || { echo "demo: could not create the bucket" >&2; exit 1; }
    exec 3<&-
    REMOTE="s3://pgvc-demo/bank?endpoint=http://127.0.0.1:$M&region=us-east-1&force_path_style=true"
    # The servers' S3 credentials: superuser-only settings, hidden from other roles.
    CREDS=("vc.s3_access_key_id = 'demo'" "vc.s3_secret_access_key = 'demo-secret'")
    ;;
*)
    echo "demo: REMOTE=$KIND? use file or s3" >&2
    exit 1
    ;;
esac

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
who() { [ "$1" = B ] && echo "$S" || echo "$P"; }
# on A|standby SQL: runs SQL on that server, echoing it, stopping on error.
on() {
    local port
    port=$(who "$1")
    echo "[$1] $2"
    psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P footer=off -h "$dir" -p "$port" \
        -U postgres -d postgres -c "$2"
}
# fails A|standby SQL: runs SQL that must fail, and shows the error.
fails() {
    local port
    port=$(who "$1")
    echo "[$1] $2   -- must fail:"
    if psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
        -c "$2" >"$dir/out" 2>&1; then
        cat "$dir/out"
        echo "demo: that should have failed" >&2
        exit 1
    fi
    sed 's/^/    /' "$dir/out"
}
value() {
    local port
    port=$(who "$1")
    psql -X -At -h "$dir" -p "$port" -U postgres -d postgres -c "$2"
}
# wait_until A|standby SQL WANT: polls SQL until it returns WANT (10 s at most).
wait_until() {
    local start=$SECONDS got
    while :; do
        got=$(value "$1" "$2" 2>/dev/null || true)
        [ "$got" = "$3" ] && return 0
        if ((SECONDS - start > 10)); then
            echo "demo: gave up waiting for $2 = $3 on the $1 (got '$got')" >&2
            exit 1
        fi
        sleep 0.05
    done
}
ms() { date +%s%3N; }

say "Two servers: A, a primary that pushes every commit to the remote $REMOTE,"
echo "   and B, a standby that polls it every 100 ms. Their postgresql.conf lines:"
echo "     A: vc.replicate_to_remote = 'origin'"
echo "     B: vc.read_replica_remote = 'origin', vc.replication_interval = 100"
new_server primary "$P" "vc.replicate_to_remote = 'origin'" "vc.replication_interval = 100" "${CREDS[@]}"
new_server standby "$S" "vc.read_replica_remote = 'origin'" "vc.replication_interval = 100" "${CREDS[@]}"

say "A (primary): a table under version control; the commit is pushed before it returns."
on A "CREATE EXTENSION pgvc"
on A "SELECT vc.remote_add('origin', '$REMOTE')"
on A "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL)"
on A "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 50)"
on A "SELECT vc.track('accounts')"
on A "SELECT vc.commit('open two accounts')"

say "B (standby): clone the remote once; from then on its worker follows."
on B "CREATE EXTENSION pgvc"
on B "SELECT vc.clone('$REMOTE')"

say "A transfer committed on A appears on B."
t0=$(ms)
on A "UPDATE accounts SET balance = balance + CASE id WHEN 1 THEN -30 ELSE 30 END; SELECT vc.commit('alice pays bob 30')"
head=$(value A "SELECT vc.hashof('main')")
wait_until B "SELECT vc.hashof('main')" "$head"
echo "   (visible on B $(( $(ms) - t0 )) ms after the commit started)"
on B "SELECT * FROM accounts ORDER BY id"
on B "SELECT role, branch, left(local_head, 12) AS local_head, left(remote_head, 12) AS remote_head, epoch, lag_ms FROM vc.replication_status()"

say "B is read-only for tracked tables."
fails B "INSERT INTO accounts VALUES (3, 'mallory', 1000000)"

say "A crashes (kill -9 of its postmaster)."
pm=$(head -1 "$dir/primary/data/postmaster.pid")
kill -9 "$pm"
while kill -0 "$pm" 2>/dev/null; do sleep 0.05; done
echo "   A (postmaster $pm) is gone"

say "Promote B: it pulls the last commits and raises the remote's epoch."
on B "SELECT vc.promote() AS new_epoch"
on B "INSERT INTO accounts VALUES (3, 'carol', 75); SELECT vc.commit('carol opens an account')"
on B "SELECT role, epoch, last_error FROM vc.replication_status()"

say "A comes back, still configured as a primary. Its worker sees the epoch moved: A fences itself."
start_server primary
wait_until A "SELECT role FROM vc.replication_status() LIMIT 1" fenced
on A "SELECT role, epoch, last_error FROM vc.replication_status()"
fails A "UPDATE accounts SET balance = 0"

say "Rejoin: A becomes a standby of B, the new primary."
on A "SELECT left(vc.rejoin('origin'), 12) AS now_at"
on A "SELECT * FROM accounts ORDER BY id"
on B "UPDATE accounts SET balance = balance - 5 WHERE id = 3; SELECT vc.commit('carol pays a fee')"
head=$(value B "SELECT vc.hashof('main')")
wait_until A "SELECT vc.hashof('main')" "$head"
on A "SELECT message FROM vc.log() LIMIT 1"
on A "SELECT role, left(local_head, 12) AS local_head, epoch, lag_ms FROM vc.replication_status()"

say "Done: no commit lost, no history forked. Roles persist across restarts:"
echo "   update postgresql.conf to match (see README, Replication and failover)."
