#!/usr/bin/env bash
# pgvc replication benchmarks:
#
#   benches/replication.sh [--quick] [--only 1,2,...] [--out FILE] [--keep]
#
#   --quick   small sizes: a smoke test of the suite (~1 min); writes its report to
#             /tmp/pgvc-bench-replication-quick.md unless --out is given
#   --only    run only these benchmarks (numbers as below; the set-up of the primary,
#             the standby and the logical-replication baseline always runs); a full
#             run takes ~2 min
#   --out     where to write the Markdown report (default docs/BENCHMARKS_REPLICATION.md)
#   --keep    keep the throwaway clusters' directory (data, server logs, the remote)
#
#   REMOTE_KIND=s3 benches/replication.sh [...]: the same through a bucket of a local
#   S3-compatible server (moto, installed by scripts/setup.sh) instead of a file://
#   directory; report in docs/BENCHMARKS_REPLICATION_S3.md, lag goal interval + 150 ms
#
# Two throwaway clusters: a primary (vc.replicate_to_remote = 'origin', synchronous
# push at COMMIT) and a standby (vc.read_replica_remote = 'origin',
# vc.replication_interval = 100) of one file:// remote; a PostgreSQL logical
# replication publication/subscription between the same two clusters is the baseline.
# Benchmarks (the goals come from the project's issue):
#   1 lag               LAG_COMMITS 1-row commits, spaced by a random 0-100 ms: time from
#                       vc.commit() returning on the primary to the standby showing the
#                       new head; goal p99 <= interval + 100 ms = 200 ms (ratio p99 / 200)
#   2 apply throughput  a commit inserting N_APPLY rows, applied by SELECT vc.sync() on
#                       the standby (timed inside the server) vs logical replication of
#                       the same INSERT (publisher COMMIT -> rows visible on the
#                       subscriber); goal logical / pgvc >= 1.0; end-to-end with the
#                       worker at interval 100 for information
#   3 push overhead     1-row commit latency on the primary with replication on vs off
#                       (ALTER SYSTEM RESET vc.replicate_to_remote), alternating blocks;
#                       information (no goal)
#   4 memory            peak RssAnon of the standby's background worker applying a commit
#                       of N_MEM rows; goal <= 256 MB
#
# Method as in benches/remotes.sh and benches/backups.sh: throwaway clusters on a
# private copy of the installed PostgreSQL 15 + pgvc (so a concurrent reinstall cannot
# disturb it), Unix sockets only; latencies are taken by one long-lived psql session
# per server, fed through a FIFO by this script (bash's $EPOCHREALTIME, no fork per
# probe); every goal is a ratio against a baseline measured in the same run, runs
# alternate between the two sides, because the machine is shared and noisy.
set -euo pipefail

NAME=replication.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The harness: cluster, SQL, memory, results and report helpers shared by the scripts.
. "$ROOT/benches/lib.sh"
parse_args 2,38 "1,2,3,4" "$@"
check_only 4

# ---------------------------------------------------------------------------------------
# Sizes. Default: the issue's sizes. --quick: smaller, same shapes.
# ---------------------------------------------------------------------------------------
INTERVAL_MS=100                # vc.replication_interval of the standby
KIND=${REMOTE_KIND:-file}      # file, or s3 (a bucket of moto on loopback)
[[ $KIND == file || $KIND == s3 ]] || { echo "$NAME: REMOTE_KIND=$KIND? use file or s3" >&2; exit 2; }
LAG_SLACK_MS=100               # the issue's goal: p99 <= interval + 100 ms (file), + 150 ms (s3)
[[ $KIND == s3 ]] && LAG_SLACK_MS=150
LAG_GOAL_MS=$((INTERVAL_MS + LAG_SLACK_MS))
POLL_MS=3                      # pause between two probes of the standby
if ((QUICK)); then
    LAG_COMMITS=50 N_APPLY=10000 RUNS=3 E2E_RUNS=2 LAT_COMMITS=50 LAT_BLOCK=25 N_MEM=100000
    OUT=${OUT:-/tmp/pgvc-bench-replication-$KIND-quick.md}
else
    LAG_COMMITS=200 N_APPLY=100000 RUNS=7 E2E_RUNS=5 LAT_COMMITS=200 LAT_BLOCK=25 N_MEM=1000000
    if [[ $KIND == s3 ]]; then
        OUT=${OUT:-$ROOT/docs/BENCHMARKS_REPLICATION_S3.md}
    else
        OUT=${OUT:-$ROOT/docs/BENCHMARKS_REPLICATION.md}
    fi
fi
MEM_GOAL_KB=$((256 * 1024))
RANDOM=4242                    # the same random spacing of the commits in every run

# ---------------------------------------------------------------------------------------
# Known causes of MISSes. Printed under a MISS whose id matches; a MISS that matches
# nothing is reported as unexplained.
# ---------------------------------------------------------------------------------------
cause() {
    case $KIND:$1 in
    file:2)
        echo "Near 1.0 either way (1.05 on 2026-12-06, 0.98 on 2026-12-07, with logical replication's own time moving 650 -> 696 ms between the runs). perf of a vc.pull() of a 100,000-row commit (2026-12-07, 793 ms): ~56% of the samples are the SQL apply itself, as in logical replication's apply: heap_insert ~11%, index inserts ~8%, input functions (timestamptz_in ~6%), WAL; ~10% index scans of vc.chunks (the fetched chunks' existence probes and reads). The rest fetches the commit's chunks and diffs the trees: since the size-dependent cut rule the same 100,000 rows are ~20% more chunks (2,239), each fetched, verified and stored." ;;
    s3:2)
        echo "Through a bucket of moto, not pgvc's apply: the standby reads the commit's pack by ranged GETs from a single-threaded Python server. benches/s3.sh measures that server's CPU time during a clone from the same kind of bucket: it equals the whole extra time of s3:// over file:// (docs/BENCHMARKS_S3.md, 1). On file:// the same apply passes (docs/BENCHMARKS_REPLICATION.md)." ;;
    esac
}

# Slow paths seen while writing this suite, not tied to a goal; printed in the report.
OBSERVATIONS=$(cat <<'EOF2'
## Observations (by hand, on pgvc ba76c92, pgvc.so c0f3dca06e13, 2026-11-26)

- **A synchronous push still gets slower with every push before it**, though since a2b4ba3
  each process reads a pack's idx only once. Each push writes one pack and nothing repacks.
  1-row commits on one primary, 200 in one session, replication on: 3.2 ms (median) with 53
  packs on the remote, 5.0 ms with 259, 6.5 ms with 465, 8.0 ms with 671, i.e. ~0.75 ms more
  per 100 commits pushed (replication off: 1.0 ms). A commit in a fresh session, whose first
  push reads and verifies the idx of every pack, took 16, 18, 24 and 23 ms at those sizes
  (off: 10 ms). `perf record` of such commits at 1,377 packs: ~17% of the backend in `memcmp`,
  the idx lookups: `Index::locate` (src/remote/mod.rs) binary-searches the idx of every pack,
  newest first, for each chunk the push walks, so each chunk the remote lacks is looked up in
  all packs (linear in the number of packs); ~32% in `open()` creating files, in the kernel's
  ext4 inode allocation (`find_inode_bit` -> `recently_deleted`: this machine's ext4 has no
  journal, and then skips recently freed inodes; every push creates a pack, an idx and a
  temporary manifest renamed over the old one), which is this filesystem's cost as much as
  pgvc's; fsync ~8%. The push-overhead figures of 3 are for the remote sizes listed there.
- **Every commit scans every tracked table's key log, dead rows included.** A commit empties
  each key log with `DELETE FROM vc.log_<oid> RETURNING *` (`logged_keys`, src/pg/rows.rs),
  a sequential scan, and after a large commit the log keeps its dead rows until (auto)vacuum.
  After a commit of 8x10^5 new rows of t (log: 28 MB of dead rows, autovacuum off on it), a
  1-row commit of another table (ev) took 2.6 ms instead of 0.95 ms in one session
  (replication off), and 0.94 ms again after `VACUUM` of the log. 3 vacuums the database and
  the key logs before its blocks for this reason.
EOF2
)

# ---------------------------------------------------------------------------------------
# Two throwaway clusters on a private copy of PostgreSQL 15 + pgvc (benches/lib.sh):
# nodes p (primary) and s (standby).
# ---------------------------------------------------------------------------------------
make_work pgvc-bench-replication
NODE_NAMES[p]=primary NODE_NAMES[s]=standby
REMOTE=$WORK/remote            # the file:// remote both servers use (REMOTE_KIND=file)
REMOTE_URL=file://$REMOTE      # what they use (set to the bucket's URL by setup with s3)
KIND_CONF=()                   # the servers' S3 credentials (s3)

# start_cluster NODE [CONF LINE...]: a cluster whose pgvc worker serves `postgres`, with
# schema bench in template1 and postgres.
start_cluster() {
    local n=$1 db
    shift
    cluster_start "$n" 40000 "vc.database = 'postgres'" "$@"
    for db in template1 postgres; do
        on "$n" bench_schema $db <<'EOF'
-- vc.sync() timed inside the server, with what it returns (branches moved).
CREATE FUNCTION bench.sync(OUT ms numeric, OUT moved bigint) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    moved := vc.sync();
    ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
END $$;
-- A 1-row commit: INSERT into ev, vc.commit(); the statement's time inside the server
-- (the publish of a synchronous push runs later, at COMMIT) and the new head.
CREATE FUNCTION bench.commit1(i int, OUT ms numeric, OUT head text) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    INSERT INTO public.ev VALUES (i, 'commit ' || i);
    head := vc.commit('commit ' || i);
    ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2);
END $$;
EOF
    done
}

# ---------------------------------------------------------------------------------------
# Helpers. Each sql call is a new session (a fresh backend: cold plan and chunk caches);
# `on NODE sql ...` runs it on p (primary) or s (standby). NODE is p or s.
# ---------------------------------------------------------------------------------------
# ALTER SYSTEM (value "": RESET) and reload; waits until a new session sees it.
set_conf() {
    local n=$1 name=$2 value=$3 want
    if [[ -n $value ]]; then
        on "$n" sql postgres "ALTER SYSTEM SET $name = '$value'"
    else
        on "$n" sql postgres "ALTER SYSTEM RESET $name"
    fi
    on "$n" sql postgres "SELECT pg_reload_conf()" >/dev/null
    # Backends and the worker read the file at their next command or latch.
    sleep 0.3
}

# Long-lived sessions (session_open, q), us and dms come from lib.sh.
# A sleep without a fork: a read that times out on a FIFO nobody writes to.
mkfifo "$WORK/sleep.fifo"
exec {SLEEP_FD}<>"$WORK/sleep.fifo"
nap_ms() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u "$SLEEP_FD" _ || true; }

# poll SESSION SQL WANT [TIMEOUT_S]: runs SQL every POLL_MS until it prints WANT; sets
# SEEN_US (when it was seen) and POLLS. Fails after TIMEOUT_S (default 120).
poll() {
    local s=$1 stmt=$2 want=$3 limit=$((${4:-120} * 1000000)) start
    us
    start=$US POLLS=0
    while :; do
        q "$s" "$stmt"
        us
        POLLS=$((POLLS + 1))
        [[ $REPLY == "$want" ]] && break
        if ((US - start > limit)); then
            echo "replication.sh: timed out after ${4:-120} s waiting for '$stmt' to give '$want' (last: '$REPLY')" >&2
            return 1
        fi
        nap_ms $POLL_MS
    done
    SEEN_US=$US
}


# The standby's replication status (main), "<null>" for NULLs: status COLUMN.
status() {
    on "$1" sql postgres "SELECT coalesce($2::text, '<null>') FROM vc.replication_status() WHERE branch = 'main'"
}
# Stops the run when the standby reports a replication error: a pgvc bug to report,
# not to work around.
check_no_error() {
    local e
    e=$(status "$1" last_error)
    if [[ $e != "<null>" ]]; then
        echo "replication.sh: the $(node_name "$1")'s vc.replication_status() reports an error $2: $e" >&2
        exit 1
    fi
}

# Packs the remote lists (one per push that wrote anything; nothing repacks).
packs() {
    if [[ $KIND == file ]]; then
        find "$REMOTE/packs" -name '*.pack' | wc -l
    else
        on p sql postgres "SELECT objects FROM vc.storage() WHERE location = 'remote origin'"
    fi
}

# Primary key ids handed out to the 1-row commits of ev.
EV_ID=0
next_ev() { EV_ID=$((EV_ID + 1)); }

# ---------------------------------------------------------------------------------------
# Set-up: the primary and its remote, the standby (a clone), the logical-replication
# baseline (database logi on both clusters).
# ---------------------------------------------------------------------------------------
setup() {
    new_dir "$REMOTE"
    if [[ $KIND == s3 ]]; then
        moto_start pgvc-bench
        REMOTE_URL=$(s3_url pgvc-bench replication)
        KIND_CONF=("${S3_CONF[@]}")
    fi
    log "set-up: primary, standby (clone of $REMOTE_URL), logical replication baseline"
    start_cluster p "${KIND_CONF[@]}"
    start_cluster s "vc.read_replica_remote = 'origin'" "vc.replication_interval = $INTERVAL_MS" "${KIND_CONF[@]}"
    # The primary: replication to origin from the first commit on (ALTER SYSTEM, so
    # that 3 can turn it off with ALTER SYSTEM RESET).
    on p sql postgres "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', '$REMOTE_URL')" >/dev/null
    set_conf p vc.replicate_to_remote origin
    on p sqlf postgres >/dev/null <<'EOF'
CREATE TABLE ev (id int PRIMARY KEY, what text);
CREATE TABLE t (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz);
CREATE TABLE m (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz);
SELECT vc.track('ev');
SELECT vc.track('t');
SELECT vc.track('m');
SELECT vc.commit('init');
EOF
    [[ $(status p role) == primary ]] || { echo "replication.sh: the primary's role is $(status p role)" >&2; exit 1; }
    check_no_error p "after its first commit"
    PRIMARY_HEAD=$(on p sql postgres "SELECT vc.hashof('main')")
    [[ $(status p remote_head) == "$PRIMARY_HEAD" ]] || { echo "replication.sh: the first commit was not pushed (remote head $(status p remote_head))" >&2; exit 1; }
    # The standby.
    on s sql postgres "CREATE EXTENSION pgvc" >/dev/null
    on s sql postgres "SELECT vc.clone('$REMOTE_URL')" >/dev/null
    [[ $(status s role) == standby ]] || { echo "replication.sh: the standby's role is $(status s role)" >&2; exit 1; }
    session_open sp s postgres
    poll sp "SELECT coalesce(vc.hashof('main'), '');" "$PRIMARY_HEAD" 30
    # The status still says "waiting" (for the clone) until the worker's next round.
    poll sp "SELECT coalesce(last_error, '<null>') FROM vc.replication_status() WHERE branch = 'main';" "<null>" 10 \
        || { check_no_error s "after the clone"; exit 1; }
    # The baseline: the same tables in database logi, published by the primary and
    # subscribed to by the standby (copy_data = false: they start empty).
    local lt="CREATE TABLE t (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz); CREATE TABLE ev (id int PRIMARY KEY, what text)"
    on p sql postgres "CREATE DATABASE logi"
    on s sql postgres "CREATE DATABASE logi"
    on p sql logi "$lt; CREATE PUBLICATION pub FOR TABLE t, ev"
    on s sql logi "$lt"
    on s sql logi "CREATE SUBSCRIPTION sub CONNECTION 'host=$WORK port=${PORTS[p]} dbname=logi user=postgres' PUBLICATION pub WITH (copy_data = false)" >/dev/null
    session_open lp p logi
    session_open ls s logi
    # Wait until the subscription applies: a probe row goes over and back out.
    q lp "INSERT INTO ev VALUES (0, 'probe') RETURNING id;"
    poll ls "SELECT count(*) FROM ev WHERE id = 0;" 1 60
    q lp "WITH d AS (DELETE FROM ev WHERE id = 0 RETURNING 1) SELECT count(*) FROM d;"
    poll ls "SELECT count(*) FROM ev;" 0 60
    session_open pp p postgres
}

# ---------------------------------------------------------------------------------------
# 1. Lag of 1-row commits (pgvc: primary commit -> standby head; logical: publisher
#    commit -> subscriber row), alternating, each after a random 0-100 ms pause.
# ---------------------------------------------------------------------------------------
bench_lag() {
    log "1. lag of $LAG_COMMITS 1-row commits (standby interval $INTERVAL_MS ms)"
    section 1
    check_no_error s "before 1"
    local i t0 head lags=() lagms=() commits=() polls=() logical=() probe=()
    for ((i = 1; i <= LAG_COMMITS; i++)); do
        # pgvc
        nap_ms $((RANDOM % 101))
        next_ev
        us
        t0=$US
        q pp "INSERT INTO ev VALUES ($EV_ID, 'lag $i'); SELECT vc.commit('lag $i');"
        head=$REPLY
        us
        commits+=("$(dms "$t0" "$US")")
        t0=$US
        poll sp "SELECT vc.hashof('main');" "$head" 30 || { check_no_error s "during 1"; exit 1; }
        lags+=("$(dms "$t0" "$SEEN_US")") polls+=("$POLLS")
        q sp "SELECT coalesce(lag_ms::text, '<null>') FROM vc.replication_status() WHERE branch = 'main';"
        lagms+=("$REPLY")
        # logical replication
        nap_ms $((RANDOM % 101))
        q lp "INSERT INTO ev VALUES ($i, 'lag $i') RETURNING id;"
        us
        t0=$US
        poll ls "SELECT count(*) FROM ev WHERE id = $i;" 1 30
        logical+=("$(dms "$t0" "$SEEN_US")")
        if ((i % 50 == 0)); then log "   $i commits: pgvc lag median $(median "${lags[@]}") ms, logical $(median "${logical[@]}") ms"; fi
    done
    check_no_error s "after 1"
    # The resolution: one probe's round trip (the poll's pause comes on top).
    local k t1
    us
    t0=$US
    for ((k = 0; k < 200; k++)); do q sp "SELECT vc.hashof('main');"; done
    us
    probe=$(calc "($US - $t0) / 200 / 1000" 2)
    local p50 p99 mx l50 l99 lmx s50 s99 ratio v c50
    p50=$(pct 50 "${lags[@]}") p99=$(pct 99 "${lags[@]}") mx=$(max "${lags[@]}")
    l50=$(pct 50 "${logical[@]}") l99=$(pct 99 "${logical[@]}") lmx=$(max "${logical[@]}")
    s50=$(pct 50 "${lagms[@]}") s99=$(pct 99 "${lagms[@]}")
    c50=$(pct 50 "${commits[@]}")
    ratio=$(calc "$p99 / $LAG_GOAL_MS")
    v=$(verdict "$ratio" "<=" 1.0)
    log "   pgvc lag p50 $p50 p99 $p99 max $mx ms (lag_ms median $s50); logical p50 $l50 p99 $l99 ms"
    md "## 1. Replication lag" "" \
        "$LAG_COMMITS commits of one row each on the primary (\`INSERT INTO ev VALUES (...); SELECT" \
        "vc.commit(...)\` in one long-lived session, autocommit: the synchronous push is published" \
        "at COMMIT, before the client hears of it), each after a random pause of 0-100 ms so the" \
        "commits do not line up with the standby's polls (\`vc.replication_interval = $INTERVAL_MS\`" \
        "on the standby). Lag: from the moment \`vc.commit()\` returned to the client to the moment" \
        "a long-lived session on the standby saw the new head in \`SELECT vc.hashof('main')\`," \
        "probed every $POLL_MS ms (one probe's round trip: $probe ms), so the figures are client-side" \
        "and include up to ~$((POLL_MS + 1)) ms of probing resolution. \`lag_ms\`: what the standby's" \
        "\`vc.replication_status()\` reported after each commit (apply time minus the commit's" \
        "timestamp, taken inside \`vc.commit()\` on the primary, so it also counts the push and" \
        "the COMMIT). Extra (no goal): PostgreSQL's logical replication of the same 1-row" \
        "INSERTs (publisher \`INSERT ... RETURNING\` in autocommit -> the row visible on the" \
        "subscriber, same probing), alternating with the pgvc commits." \
        "**Goal**: p99 <= interval + $LAG_SLACK_MS ms = $LAG_GOAL_MS ms (ratio p99 / $LAG_GOAL_MS <= 1.0)." "" \
        "| | p50 (ms) | p99 (ms) | max (ms) | ratio p99 / $LAG_GOAL_MS | result |" \
        "|---|---:|---:|---:|---:|---|" \
        "| pgvc: commit returned -> standby head | $p50 | $p99 | $mx | $ratio | $v |" \
        "| pgvc: standby's \`lag_ms\` | $s50 | $s99 | $(max "${lagms[@]}") | | info |" \
        "| logical replication (extra) | $l50 | $l99 | $lmx | | info |" "" \
        "The primary's 1-row commit itself (INSERT + \`vc.commit()\` + COMMIT with the push, client" \
        "round trip): median $c50 ms, p99 $(pct 99 "${commits[@]}") ms. Probes per commit: median" \
        "$(median "${polls[@]}"), max $(max "${polls[@]}")." "" \
        "Lags (ms), in order: ${lags[*]}." ""
    explain "1:$v"
    result 1 "lag of 1-row commits, p99 (standby interval $INTERVAL_MS ms)" "<= $LAG_GOAL_MS ms" "$LAG_GOAL_MS ms" "$p99 ms" "$ratio" "$v"
    result 1.p50 "lag of 1-row commits, p50 / max" "info" "-" "$p50 / $mx ms" "-" "info"
    result 1.lag_ms "standby's lag_ms (vc.replication_status), median" "info" "-" "$s50 ms" "-" "info"
    result 1.logical "logical replication lag of the same 1-row INSERTs, p50 / p99 (extra)" "info" "-" "$l50 / $l99 ms" "-" "info"
}

# ---------------------------------------------------------------------------------------
# 2. Apply throughput: vc.sync() of a commit of N_APPLY rows vs logical replication.
# ---------------------------------------------------------------------------------------
# Does the standby's worker keep off the remote when the interval is 1 hour? A 1-row
# commit, watched for 5 s. Sets INTERVAL_CHECK (a sentence) and INTERVAL_HONOURED.
check_long_interval() {
    local head t0
    set_conf s vc.replication_interval 3600000
    q sp "SHOW vc.replication_interval;"
    [[ $REPLY == 1h ]] || { echo "replication.sh: the standby's vc.replication_interval is $REPLY, not 1h" >&2; exit 1; }
    sleep 1.5
    next_ev
    head=$(on p sql postgres "INSERT INTO ev VALUES ($EV_ID, 'interval check'); SELECT vc.commit('interval check')")
    us
    t0=$US
    if poll sp "SELECT vc.hashof('main');" "$head" 5 2>/dev/null; then
        INTERVAL_HONOURED=0
        INTERVAL_AFTER=$(dms "$t0" "$SEEN_US")
        INTERVAL_CHECK="Checked in this run, it is **not honoured**: with \`vc.replication_interval = 3600000\` (1 h) on the standby, a 1-row commit of the primary still reached the standby $INTERVAL_AFTER ms after \`vc.commit()\` returned (see Observations)."
    else
        INTERVAL_HONOURED=1
        INTERVAL_AFTER=""
        INTERVAL_CHECK="Checked in this run, it is honoured: with \`vc.replication_interval = 3600000\` (1 h) on the standby, a 1-row commit of the primary had not reached the standby 5 s later."
        # Catch up before the runs (the commits are applied by vc.sync() below anyway).
        q sp "SELECT moved FROM bench.sync();"
    fi
    log "   interval check: $INTERVAL_CHECK"
}

# pgvc_apply_run R LO HI: the primary commits rows LO..HI of t (pushed at COMMIT) while a
# session on the standby holds the replication lock; then vc.sync() in that session,
# timed inside the server. Sets SYNC_MS, SYNC_WALL (client: vc.sync() + COMMIT),
# PCOMMIT_MS (the primary's INSERT + commit + push, client).
pgvc_apply_run() {
    local r=$1 lo=$2 hi=$3 head t0 m
    # Hold the lock vc.sync() and the worker's rounds take (pg_advisory_xact_lock(7283519,
    # 1), src/pg/replication/mod.rs), so that the worker cannot apply the commit first.
    q sp "BEGIN; SELECT pg_advisory_xact_lock(7283519, 1);"
    t0=$(now)
    head=$(on p sql postgres "INSERT INTO t SELECT * FROM bench.rows($lo, $hi); SELECT vc.commit('apply run $r')")
    PCOMMIT_MS=$(since_ms "$t0")
    settle
    us
    t0=$US
    q sp "SELECT ms || ' ' || moved FROM bench.sync();"
    m=($REPLY)
    q sp "COMMIT; SELECT vc.hashof('main');"
    us
    SYNC_WALL=$(dms "$t0" "$US") SYNC_MS=${m[0]}
    [[ ${m[1]} == 1 && $REPLY == "$head" ]] || {
        echo "replication.sh: vc.sync() on the standby moved ${m[1]} branches, head $REPLY (want 1, $head)" >&2
        exit 1
    }
    q sp "SELECT count(*) FROM t WHERE id BETWEEN $lo AND $hi;"
    ((REPLY == hi - lo + 1)) || { echo "replication.sh: the standby has $REPLY rows of $lo..$hi after vc.sync()" >&2; exit 1; }
}

# logical_run LO HI: the publisher inserts rows LO..HI of t (autocommit); time until the
# subscriber has row HI (the apply is one transaction: all or none are visible).
logical_run() {
    local lo=$1 hi=$2 t0
    settle
    q lp "WITH i AS (INSERT INTO t SELECT * FROM bench.rows($lo, $hi) RETURNING 1) SELECT count(*) FROM i;"
    us
    t0=$US
    poll ls "SELECT count(*) FROM t WHERE id = $hi;" 1 300
    LOGICAL_MS=$(dms "$t0" "$SEEN_US")
    q ls "SELECT count(*) FROM t WHERE id BETWEEN $lo AND $hi;"
    ((REPLY == hi - lo + 1)) || { echo "replication.sh: the subscriber has $REPLY rows of $lo..$hi" >&2; exit 1; }
}

bench_apply() {
    log "2. apply of a commit of $N_APPLY rows: vc.sync() vs logical replication ($RUNS runs)"
    section 2
    check_no_error s "before 2"
    check_long_interval
    local r lo hi syncs=() walls=() logicals=() pcommits=()
    for ((r = 1; r <= RUNS; r++)); do
        lo=$(((r - 1) * N_APPLY + 1)) hi=$((r * N_APPLY))
        if ((r % 2)); then
            pgvc_apply_run $r $lo $hi
            logical_run $lo $hi
        else
            logical_run $lo $hi
            pgvc_apply_run $r $lo $hi
        fi
        syncs+=("$SYNC_MS") walls+=("$SYNC_WALL") logicals+=("$LOGICAL_MS") pcommits+=("$PCOMMIT_MS")
        log "   run $r: vc.sync() $SYNC_MS ms (client, with COMMIT: $SYNC_WALL ms); logical $LOGICAL_MS ms; primary commit $PCOMMIT_MS ms"
    done
    # The worker (blocked on the lock during each run) must not have met an error.
    sleep 0.5
    check_no_error s "after the vc.sync() runs of 2"
    # End to end, with the worker at its interval: commit returned -> standby head.
    set_conf s vc.replication_interval ""
    q sp "SHOW vc.replication_interval;"
    [[ $REPLY == "${INTERVAL_MS}ms" ]] || { echo "replication.sh: the standby's vc.replication_interval is $REPLY after RESET" >&2; exit 1; }
    local e2e=() e2e_lag=() head t0
    for ((r = 1; r <= E2E_RUNS; r++)); do
        lo=$(((RUNS + r - 1) * N_APPLY + 1)) hi=$(((RUNS + r) * N_APPLY))
        settle
        q pp "INSERT INTO t SELECT * FROM bench.rows($lo, $hi); SELECT vc.commit('end to end $r');"
        head=$REPLY
        us
        t0=$US
        poll sp "SELECT vc.hashof('main');" "$head" 600 || { check_no_error s "during 2"; exit 1; }
        e2e+=("$(dms "$t0" "$SEEN_US")")
        q sp "SELECT coalesce(lag_ms::text, '<null>') FROM vc.replication_status() WHERE branch = 'main';"
        e2e_lag+=("$REPLY")
        log "   end to end run $r: ${e2e[-1]} ms (lag_ms $REPLY)"
    done
    check_no_error s "after 2"
    local ratio ratio_wall v sm lm wm
    ratio=$(paired_ratio "${syncs[*]}" "${logicals[*]}")
    ratio_wall=$(paired_ratio "${walls[*]}" "${logicals[*]}")
    v=$(verdict "$ratio" ">=" 1.0)
    sm=$(median "${syncs[@]}") lm=$(median "${logicals[@]}") wm=$(median "${walls[@]}")
    local chunks
    chunks=$(on s sql postgres "SELECT count(*) || ' chunks, ' || pg_size_pretty(sum(length(data))) FROM vc.chunks")
    md "## 2. Apply throughput" "" \
        "Each run, a commit of $N_APPLY new rows on the primary (\`INSERT INTO t SELECT ...\` of" \
        "$N_APPLY rows of \`t (id int primary key, name text, price numeric(10,2), ts timestamptz)\`," \
        "then \`SELECT vc.commit()\`, which pushes to the remote), then on the standby" \
        "\`SELECT vc.sync()\`, timed inside the server (\`clock_timestamp()\` around it): it reads" \
        "the remote's manifest, fetches the new chunks and applies the difference to the live" \
        "table, in one transaction. Baseline: PostgreSQL's logical replication between the same two" \
        "clusters (database \`logi\`: publisher on the primary's cluster, \`wal_level = logical\`;" \
        "subscription on the standby's, \`copy_data = false\`, the same empty table): the same" \
        "INSERT of $N_APPLY rows on the publisher (autocommit), timed from its COMMIT returning to" \
        "the subscriber showing the run's last row (probed every $POLL_MS ms; the subscriber" \
        "applies a transaction at once, and the run's row count is checked after). New ids each" \
        "run (both tables grow by $N_APPLY rows a run); \`sync\` + CHECKPOINT on both clusters" \
        "before each timed step; $RUNS runs, alternating which side goes first; the ratio is the" \
        "median of the per-run ratios. **Goal**: logical / vc.sync() >= 1.0." "" \
        "How the worker was kept from applying the commit first: the issue's method is" \
        "\`ALTER SYSTEM SET vc.replication_interval = 3600000\` + \`pg_reload_conf()\` on the" \
        "standby. $INTERVAL_CHECK Either way, during each run the session that runs \`vc.sync()\` holds the" \
        "replication lock (\`BEGIN; SELECT pg_advisory_xact_lock(7283519, 1)\`, the lock" \
        "\`vc.sync()\` and the worker's rounds take) from before the primary's commit to its own" \
        "COMMIT; \`vc.sync()\` returned 1 (one branch moved) in every run, and the standby's" \
        "status showed no error afterwards." "" \
        "| logical replication (ms) | vc.sync() inside the server (ms) | ratio | vc.sync() + COMMIT, client (ms) | ratio | result |" \
        "|---:|---:|---:|---:|---:|---|" \
        "| $lm | $sm | $ratio | $wm | $ratio_wall | $v |" "" \
        "Runs: vc.sync() ${syncs[*]} ms (with COMMIT, client: ${walls[*]} ms); logical" \
        "${logicals[*]} ms. The primary's INSERT + \`vc.commit()\` with its synchronous push took" \
        "${pcommits[*]} ms (client, not compared)." "" \
        "End to end (information): the same commit of $N_APPLY rows with the standby's worker" \
        "applying at \`vc.replication_interval = $INTERVAL_MS\`, timed from \`vc.commit()\`" \
        "returning on the primary to the standby showing the new head: ${e2e[*]} ms (median" \
        "$(median "${e2e[@]}") ms; the standby's \`lag_ms\`, which starts at the commit's timestamp" \
        "inside \`vc.commit()\` and so also counts the commit and push, ${e2e_lag[*]} ms). The" \
        "standby's \`vc.chunks\` held $chunks at the end." ""
    explain "2:$v"
    result 2 "apply of a commit of $N_APPLY rows: logical replication / vc.sync()" ">= 1.0" "$lm ms" "$sm ms" "$ratio" "$v"
    if [[ -n $INTERVAL_AFTER ]]; then
        result 2.interval "standby worker keeps off the remote with vc.replication_interval = 1 h" "info" "-" "applied after $INTERVAL_AFTER ms" "-" "NO (bug)"
    else
        result 2.interval "standby worker keeps off the remote with vc.replication_interval = 1 h" "info" "-" "not applied in 5 s" "-" "yes"
    fi
    result 2.e2e "commit of $N_APPLY rows: primary commit -> standby head, interval $INTERVAL_MS" "info" "-" "$(median "${e2e[@]}") ms" "-" "info"
}

# ---------------------------------------------------------------------------------------
# 3. Commit latency on the primary with the synchronous push on vs off.
# ---------------------------------------------------------------------------------------
# latency_block MODE COUNT: one untimed commit (it also pushes what an earlier off
# block left behind), then COUNT timed 1-row commits in session pp. Appends to
# LAT_WALL_<mode> and LAT_IN_<mode>.
latency_block() {
    local mode=$1 count=$2 i t0 m block=() p0
    p0=$(packs)
    next_ev
    q pp "SELECT head FROM bench.commit1($EV_ID);"
    for ((i = 0; i < count; i++)); do
        next_ev
        us
        t0=$US
        q pp "SELECT ms || ' ' || head FROM bench.commit1($EV_ID);"
        us
        m=($REPLY)
        block+=("$(dms "$t0" "$US")")
        eval "LAT_WALL_$mode+=(\"${block[-1]}\") LAT_IN_$mode+=(\"${m[0]}\")"
    done
    LAT_BLOCKS+=("$mode: $(median "${block[@]}") ms ($p0 packs)")
}
replication_switch() {
    if [[ $1 == on ]]; then
        set_conf p vc.replicate_to_remote origin
    else
        set_conf p vc.replicate_to_remote ""
    fi
    q pp "SELECT role FROM vc.replication_status() LIMIT 1;"
    local want=primary
    [[ $1 == on ]] || want=none
    [[ $REPLY == "$want" ]] || { echo "replication.sh: the primary's role is $REPLY with replication $1" >&2; exit 1; }
}

bench_push_overhead() {
    log "3. 1-row commit latency on the primary, replication on vs off ($LAT_COMMITS each)"
    section 3
    check_no_error p "before 3"
    # The standby is stopped: only the primary's own work is measured. The key logs
    # emptied by the large commits of 2 are vacuumed (their dead rows slow every commit
    # down until autovacuum comes: see Observations).
    pg_stop s
    on p vacuum_tracked postgres ""
    LAT_WALL_on=() LAT_IN_on=() LAT_WALL_off=() LAT_IN_off=() LAT_BLOCKS=()
    local packs0
    packs0=$(packs)
    local blocks=$((LAT_COMMITS / LAT_BLOCK)) b mode order=()
    # ABBA: on off off on on off ...
    for ((b = 0; b < 2 * blocks; b++)); do
        if (((b + 1) / 2 % 2 == 0)); then order+=(on); else order+=(off); fi
    done
    for mode in "${order[@]}"; do
        replication_switch "$mode"
        settle
        latency_block "$mode" "$LAT_BLOCK"
        if [[ $mode == on ]]; then
            # Every commit of the block is on the remote, without error.
            check_no_error p "after a block of commits with replication on"
            [[ $(status p remote_head) == "$(on p sql postgres "SELECT vc.hashof('main')")" ]] \
                || { echo "replication.sh: the remote head is not the primary's after a block with replication on" >&2; exit 1; }
        fi
        log "   block $mode: median $(median "${LAT_WALL_on[@]:-0}") ms on, $(median "${LAT_WALL_off[@]:-0}") ms off so far"
    done
    replication_switch on
    pg_start s
    local won woff ion ioff ratio ratio_in
    won=$(median "${LAT_WALL_on[@]}") woff=$(median "${LAT_WALL_off[@]}")
    ion=$(median "${LAT_IN_on[@]}") ioff=$(median "${LAT_IN_off[@]}")
    ratio=$(calc "$won / $woff") ratio_in=$(calc "$ion / $ioff")
    md "## 3. Overhead of the synchronous push on commit latency" "" \
        "On the primary, $LAT_COMMITS commits of one row each with replication on" \
        "(\`vc.replicate_to_remote = 'origin'\`, \`vc.async_replication = off\`: the push is prepared" \
        "inside \`vc.commit()\` and published at COMMIT) and $LAT_COMMITS with it off (\`ALTER SYSTEM" \
        "RESET vc.replicate_to_remote\` + \`pg_reload_conf()\`: role \`none\`), in blocks of $LAT_BLOCK" \
        "alternating on/off (ABBA), each block after \`sync\` + CHECKPOINT and one untimed commit" \
        "(which also pushes what the last off block left behind); \`VACUUM\` of the database and" \
        "of the key logs before the first block. Each commit is one statement in" \
        "autocommit in a long-lived session: \`SELECT bench.commit1(i)\`, a function doing" \
        "\`INSERT INTO ev VALUES (i, ...)\` and \`vc.commit()\`. Client: the statement's round" \
        "trip, COMMIT included, so the publish (manifest compare-and-swap on the remote) is counted;" \
        "inside the server: \`clock_timestamp()\` around the INSERT and \`vc.commit()\`, which" \
        "counts the prepare (pack and index written and fsynced) but not the publish. The standby" \
        "is stopped during this benchmark (on a real deployment it runs on another machine)." \
        "Information (no goal)." "" \
        "| | replication off (ms) | replication on (ms) | ratio on / off |" "|---|---:|---:|---:|" \
        "| client, with COMMIT (median) | $woff | $won | $ratio |" \
        "| client, p99 | $(pct 99 "${LAT_WALL_off[@]}") | $(pct 99 "${LAT_WALL_on[@]}") | |" \
        "| inside the server, INSERT + vc.commit() (median) | $ioff | $ion | $ratio_in |" "" \
        "The push adds $(calc "$won - $woff" 1) ms to the median 1-row commit (client). Every push" \
        "adds a pack to the remote and nothing repacks: it listed $packs0 packs at the start of" \
        "this benchmark (the commits of 1 and 2), $(packs) at the end. Median of each block (client)," \
        "with the packs listed when it started: $(IFS=';'; echo "${LAT_BLOCKS[*]}" | sed 's/;/; /g')." ""
    result 3 "1-row commit latency: replication on vs off (client, median)" "info" "$woff ms" "$won ms" "$ratio" "info"
    result 3.inside "1-row commit: replication on vs off (inside the server, no publish)" "info" "$ioff ms" "$ion ms" "$ratio_in" "info"
}

# ---------------------------------------------------------------------------------------
# 4. Memory of the standby's worker applying a commit of N_MEM rows.
# ---------------------------------------------------------------------------------------
bench_memory() {
    log "4. memory of the standby's worker applying a commit of $N_MEM rows"
    section 4
    # A fresh standby (restarted): a fresh worker, caught up.
    pg_stop s
    pg_start s
    local wpid head t0 t_commit=0 t_seen=0 hfile=$WORK/mem.head client
    head=$(on p sql postgres "SELECT vc.hashof('main')")
    # The sessions on the standby ended with the restart: reopen the one we need.
    session_open sm s postgres
    poll sm "SELECT coalesce(vc.hashof('main'), '');" "$head" 60
    poll sm "SELECT state FROM vc.worker_status();" running 60
    q sm "SELECT pid FROM vc.worker_status();"
    wpid=$REPLY
    [[ -r /proc/$wpid/status ]] || { echo "replication.sh: no process $wpid (the worker)" >&2; exit 1; }
    check_no_error s "before 4"
    settle
    rm -f "$hfile"
    # The primary's INSERT + commit (pushed at COMMIT) in the background; the worker
    # applies it at its next round (interval $INTERVAL_MS).
    t0=$(now)
    on p sql postgres "INSERT INTO m SELECT * FROM bench.rows(1, $N_MEM); SELECT vc.commit('load m')" >"$hfile.tmp" &
    client=$!
    local after=0 want=""
    mem_reset
    while :; do
        mem_sample "$wpid" || { echo "replication.sh: the worker ($wpid) is gone" >&2; exit 1; }
        if [[ -z $want ]] && ! kill -0 "$client" 2>/dev/null; then
            wait "$client"
            want=$(<"$hfile.tmp")
            t_commit=$(since_ms "$t0")
            us
            t_seen=$US
        fi
        if [[ -n $want ]]; then
            if ((after > 0)); then
                after=$((after + 1))
                ((after > 6)) && break # 0.3 s after the apply
            else
                q sm "SELECT coalesce(vc.hashof('main'), '');"
                if [[ $REPLY == "$want" ]]; then
                    us
                    E2E_MEM=$(dms "$t_seen" "$US")
                    after=1
                fi
            fi
        fi
        sleep 0.05
    done
    q sm "SELECT pid || ' ' || coalesce(lag_ms::text, '<null>') FROM vc.worker_status(), vc.replication_status() WHERE branch = 'main';"
    local w=($REPLY)
    [[ ${w[0]} == "$wpid" ]] || { echo "replication.sh: the worker changed during the apply ($wpid -> ${w[0]})" >&2; exit 1; }
    check_no_error s "after 4"
    q sm "SELECT count(*) FROM m;"
    ((REPLY == N_MEM)) || { echo "replication.sh: the standby has $REPLY rows in m, want $N_MEM" >&2; exit 1; }
    local v
    v=$(verdict "$MEM_PEAK" "<=" $MEM_GOAL_KB)
    log "   worker $wpid: idle RssAnon $((MEM_IDLE / 1024)) MB, peak RssAnon $((MEM_PEAK / 1024)) MB, VmHWM $((MEM_HWM / 1024)) MB; primary commit $t_commit ms, then applied after $E2E_MEM ms (lag_ms ${w[1]})"
    md "## 4. Memory of the standby's worker" "" \
        "The standby is restarted (a fresh worker) and caught up; then the primary commits $N_MEM" \
        "new rows (\`INSERT INTO m SELECT ...\` into an empty tracked table of the same columns as" \
        "t, then \`vc.commit()\`, pushed at COMMIT) and the standby's worker applies the commit at" \
        "its next round (\`vc.replication_interval = $INTERVAL_MS\`). The worker's" \
        "\`/proc/<pid>/status\` (pid from \`vc.worker_status()\`) is sampled every 50 ms from before" \
        "the primary's INSERT until 0.3 s after the standby shows the new head ($MEM_SAMPLES samples):" \
        "\`RssAnon\` (private memory: palloc and Rust heap) and \`VmHWM\` (peak resident set, which" \
        "also counts the shared_buffers pages the worker touched). One run." \
        "**Goal**: peak RssAnon <= 256 MB (the figure compared with the goal is the peak" \
        "RssAnon; VmHWM is shown for information)." "" \
        "| rows applied | idle RssAnon | peak RssAnon | peak VmHWM | result |" \
        "|---:|---:|---:|---:|---|" \
        "| $N_MEM | $(human $((MEM_IDLE * 1024))) | $(human $((MEM_PEAK * 1024))) | $(human $((MEM_HWM * 1024))) | $v |" "" \
        "Times (information): the primary's INSERT + \`vc.commit()\` with its push $t_commit ms" \
        "(client); from that commit returning to the standby showing the new head $E2E_MEM ms (to" \
        "within the 50 ms sampling: the worker's poll, fetch, apply and COMMIT); the standby's" "\`lag_ms\` ${w[1]} ms (taken before the worker's COMMIT)." ""
    explain "4:$v"
    result 4 "memory of the standby's worker applying $N_MEM rows: peak RssAnon" "<= 256 MB" "-" "$(mb "$MEM_PEAK")" "-" "$v"
    result 4.time "commit of $N_MEM rows: primary commit -> standby head" "info" "-" "$E2E_MEM ms" "-" "info"
}

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
write_report() {
    local rev
    rev=$(rev_at_start)
    {
        local env=""
        [[ $KIND == s3 ]] && env="REMOTE_KIND=s3 "
        if [[ $KIND == s3 ]]; then echo "# pgvc replication benchmarks through S3"; else echo "# pgvc replication benchmarks"; fi
        echo
        echo "Written by \`${env}benches/replication.sh\`; do not edit by hand. Reproduce with"
        echo "\`${env}benches/replication.sh\` (as root, with the release build installed by"
        echo "\`scripts/install.sh\`); \`${env}benches/replication.sh --quick\` for a smoke run."
        echo
        report_command
        report_run
        if [[ $KIND == s3 ]]; then
            report_machine "the remote a bucket of moto $(/opt/pgvc-moto/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?') on loopback (in memory); both clusters on the same machine, "
        else
            report_machine "the remote on $(fs_of "$REMOTE"); both clusters on the same machine, "
        fi
        echo "- **PostgreSQL**: $PG_VERSION, two clusters; each \`shared_buffers = 1GB\`, \`max_wal_size = 8GB\`, \`checkpoint_timeout = 30min\`, \`wal_level = logical\`, \`shared_preload_libraries = 'pgvc'\`, \`vc.database = 'postgres'\`, other settings default (fsync on, \`synchronous_commit = on\`). Primary: \`vc.replicate_to_remote = 'origin'\` (ALTER SYSTEM), \`vc.async_replication = off\`, \`vc.replication_interval\` default (1 s); standby: \`vc.read_replica_remote = 'origin'\`, \`vc.replication_interval = $INTERVAL_MS\`"
        echo "- **pgvc**: commit $rev checked out at the start; measured: the installed release build (pgvc.so sha256 $SO_SHA..., installed $SO_DATE)"
        echo "- **Sizes**: $LAG_COMMITS commits for the lag; commits of $N_APPLY rows for the apply ($RUNS runs, $E2E_RUNS end to end); $LAT_COMMITS commits per side for the push overhead; $N_MEM rows for the memory; tables" \
            "\`t\` and \`m\` \`(id int primary key, name text, price numeric(10,2), ts timestamptz)\`, values" \
            "\`(g, md5(g::text), (g * 7919 % 1000000) / 100.0, '2024-01-01' + g * 17 s)\`; \`ev (id int primary key, what text)\` for 1-row commits."
        echo "- **Method**: two throwaway clusters on a private copy of the installed PostgreSQL + pgvc" \
            "(Unix sockets only), the remote $(if [[ $KIND == s3 ]]; then echo "the prefix \`replication\` of a bucket of moto on loopback (path-style HTTP, credentials in the superuser-only settings)"; else echo "a \`file://\` directory owned by \`postgres\` next to them"; fi);" \
            "the standby is a \`vc.clone()\` of the remote. Latencies are measured by this" \
            "script from long-lived psql sessions fed through FIFOs (\`\$EPOCHREALTIME\`, no process" \
            "per probe); pgvc's statement times inside the server (\`clock_timestamp()\`) where a" \
            "section says so. Every goal is a ratio against a baseline measured in the same run" \
            "(the machine is shared; absolute times drift)."
        echo
        report_summary 1 2 3 4
        echo "$OBSERVATIONS"
        if [[ -n ${INTERVAL_CHECK:-} ]] && ((INTERVAL_HONOURED == 0)); then
            cat <<'EOF'
- **`vc.replication_interval` above 1 s is not honoured on a standby** (see 2; the measured
  build polled the remote at least once a second whatever the interval said). Before
  075a7ee the worker, which also wakes every second for the backup schedule (`TICK`,
  src/pg/worker.rs), counted any wake-up before `next_replication` as a latch set by a
  commit or a reload, and so ran a replication round at every schedule tick; a build with
  that fix should pass this check. (2 keeps the worker off with the replication lock anyway.)
EOF
        fi
        echo
        cat <<'EOF'
## How to investigate a MISS

- CPU: start the statement in one session, find its backend
  (`SELECT pid FROM pg_stat_activity WHERE ...`, or `SELECT pid FROM vc.worker_status()` for
  the worker), then `perf record -g -p <pid> -- sleep 10` and
  `perf report --children --sort symbol` (or `--no-children` for self time).
- Memory: `SELECT pg_log_backend_memory_contexts(<pid>)` while it runs writes the process's
  memory contexts to the server log; `benches/replication.sh --keep` keeps the logs.
EOF
    } >"$OUT"
}

main() {
    bench_begin replication_status replication
    setup
    log "primary on port ${PORTS[p]}, standby on port ${PORTS[s]}, in $WORK ($PG_VERSION, pgvc.so $SO_SHA)"
    if wanted 1; then bench_lag; fi
    if wanted 2; then bench_apply; fi
    # 3 stops the standby (the sessions on it end): after 1 and 2; 4 restarts it.
    if wanted 3; then bench_push_overhead; fi
    if wanted 4; then bench_memory; fi
    collect_results
    write_report
    print_summary 10 74 14
}

main
