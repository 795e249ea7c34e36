#!/usr/bin/env bash
# pgvc storage benchmarks: remote compaction under a long run of commits, and the
# garbage collection of vc.chunks:
#
#   benches/storage.sh [--quick] [--only 1,2,3] [--out FILE] [--keep]
#
#   --quick   small sizes: a smoke test of the suite (~1 min); writes its report to
#             /tmp/pgvc-bench-storage-quick.md unless --out is given
#   --only    run only these benchmarks (numbers as below); a full run takes ~5 min
#   --out     where to write the Markdown report (default docs/BENCHMARKS_STORAGE.md)
#   --keep    keep the throwaway clusters' directory (data, server logs, remotes,
#             pgbench latency logs)
#
# Benchmarks (the goals come from the project's issue):
#   1 soak             a primary (synchronous push at COMMIT, its worker compacting the
#                      remote, vc.retired_pack_grace = 10 s) and a standby (interval
#                      100 ms) of one file:// remote; pgbench, one client, N_SOAK 1-row
#                      commits (UPDATE + vc.commit()). Goals: p50 of the last W commits /
#                      p50 of the first W <= 1.2; files in the remote after the grace and
#                      one worker round / (N_SOAK / 10) <= 1.0; last commit -> standby
#                      head / 1 s <= 1.0; RssAnon of the pgbench backend and of the
#                      standby's worker, end / mid-soak <= 1.2 each. Baseline for
#                      information: the same soak of N_BASE commits without replication
#   2 local gc         R rounds of (update every row, commit, update every row again,
#                      commit, vc.reset('HEAD~1')) leave the second commit of each round
#                      unreachable; vc.gc(): chunks left / chunks of a fresh clone of the
#                      same branch <= 1.0 (bytes on disk after VACUUM FULL, information)
#   3 gc cost          vc.gc() on N_COST rows with COST_COMMITS commits of ~10 spread rows
#                      (time, information); p50 of 1-row commits of a concurrent session
#                      while vc.gc() runs / without, goal <= 2.0; and, as a control, while
#                      a CPU-bound reader of vc.chunks runs (information)
#
# Method as in benches/replication.sh: throwaway clusters on a private copy of the
# installed PostgreSQL 15 + pgvc (so a concurrent reinstall cannot disturb it), Unix
# sockets only; every goal is a ratio against a baseline measured in the same run,
# because the machine is shared and noisy.
set -euo pipefail

NAME=storage.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The harness: cluster, SQL, memory, results and report helpers shared by the scripts.
. "$ROOT/benches/lib.sh"
parse_args 2,36 "1,2,3" "$@"
check_only 3
RESULT_WIDTH=70

# ---------------------------------------------------------------------------------------
# Sizes. Default: the issue's sizes. --quick: smaller, same shapes.
# ---------------------------------------------------------------------------------------
INTERVAL_MS=100                # vc.replication_interval of the standby
GRACE_MS=10000                 # vc.retired_pack_grace of the primary
SOAK_IDS=1000                  # rows of the soak table; each commit updates one at random
ROUNDS=5                       # 2: rounds of abandoned commits
ABANDON=1000000                # 2: what an abandoned commit adds to v (kept commits add 1)
N_BASE=1000                    # 1: commits of the soak without replication
if ((QUICK)); then
    N_SOAK=1000 W=100 N_GC=10000 N_COST=100000 COST_COMMITS=100 GC_RUNS=3 COST_RUNS=2 BLOCK_MS=1000
    OUT=${OUT:-/tmp/pgvc-bench-storage-quick.md}
else
    N_SOAK=10000 W=500 N_GC=100000 N_COST=1000000 COST_COMMITS=1000 GC_RUNS=3 COST_RUNS=3 BLOCK_MS=3000
    OUT=${OUT:-$ROOT/docs/BENCHMARKS_STORAGE.md}
fi
OBJ_GOAL=$((N_SOAK / 10))      # 1: the remote holds fewer objects than this

# ---------------------------------------------------------------------------------------
# Known causes of MISSes, found by profiling pgvc (see CAUSES_FROM) with
# `perf record --call-graph dwarf -p <pid>`, strace, pg_stat_user_tables and
# pg_log_backend_memory_contexts(). Printed under a MISS whose id matches. Re-check them
# when pgvc changes (it was changing by the hour while this suite was written); a MISS
# that matches nothing is reported as unexplained.
# ---------------------------------------------------------------------------------------
CAUSES_REV=6a49cb5
CAUSES_SO=4d5272e0ec17
CAUSES_FROM="$CAUSES_REV (release build installed 2026-12-06 08:40 UTC, pgvc.so sha256 $CAUSES_SO), 2026-12-06"
cause() {
    case $1 in
    1)
        echo "Two costs grow with the soak, both in the push each commit makes (the same soak without replication stays flat, 1.base). (a) **A kept plan that scans vc.chunks sequentially**: \`push::is_ancestor\` (src/remote/push.rs) asks \`PgStore::has_chunk\` (\`SELECT 1 FROM vc.chunks WHERE hash = \$1\`, src/pg/store.rs), whose plan the backend prepares once and keeps (\`SPI_keepplan\`, src/pg/spi.rs). Planned at the soak's first commit, when \`vc.chunks\` held 6 rows on 1 page, it is a sequential scan, and stays one while the table grows by ~4 chunks a commit, until an ANALYZE of \`vc.chunks\` invalidates it (autovacuum's first look comes after the 10 s of a quick soak; in the full run while writing this suite the p50 by tenths went from 5-26 ms in the first half to ~4.5 ms in the second, which fits an autoanalyze in between). After a quick soak \`pg_stat_user_tables\` showed 2,014 sequential scans of \`vc.chunks\` reading 4,035,606 rows (2 per commit, the whole table each time); perf of the pgbench backend 7 s in: ~44% of its CPU in \`is_ancestor -> has_chunk\` (ExecScan, byteaeq, detoast). A fresh plan at that size is an index-only scan (EXPLAIN). (b) **Creating files in the remote**: 1 s in, ~36% of the backend's CPU in the kernel creating the pack and idx files (ext4_create -> find_inode_bit -> recently_deleted: this machine's ext4 has no journal and skips inodes freed in the last seconds, and the prunes of the primary's worker free hundreds a second, as does the removal of a previous run's files)." ;;
    1.mem.*)
        echo "Growth outside PostgreSQL's memory contexts, i.e. in pgvc's own heap, where per-process caches fill up to their bounds; not shown per cache, so not proven. \`pg_log_backend_memory_contexts()\` 1.5 s and 7 s into a quick soak: the pgbench backend 1.91 MB used both times, the standby's worker 2.16 and 2.23 MB, while their RssAnon grew by ~4 MB. The bounded caches: the chunk read cache (two generations of at most 4 MB, \`CACHE_BYTES\` in src/pg/store.rs) and the pack-index cache (only packs the manifest lists or retires, at most 64 MB per remote). In the full run (10,000 commits) while writing this suite the growth slowed in the second half (end / mid 1.09 for the backend, 1.06 for the standby's worker, from ~9.5 MB after 500 commits to ~17 MB), which fits caches reaching their bound rather than a leak; a start sample taken once the caches are full would be the fairer baseline for this goal." ;;
    3)
        if [[ -n ${GC_VS_CONTROL:-} ]] && (($(awk -v r="$GC_VS_CONTROL" 'BEGIN {print (r <= 1.2)}'))); then
            echo "CPU, not vc.gc()'s lock: the control (3.control), a CPU-bound reader of the same chunks that takes none of pgvc's locks, slows the commits as much (p50 while vc.gc() runs / while the control runs: $GC_VS_CONTROL). Commit by commit, with vc.gc() running the latency is a steady ~8 ms (vs ~2 ms) from the gc's start until its mark ends, and back to ~2 ms during its last, locked step, where one commit per run waits ~20 ms for the lock; on this shared $(nproc)-CPU machine another busy backend is what costs the commits."
        fi ;;
    esac
}

# Problems seen while writing this suite, not tied to a goal; printed in the report.
OBSERVATIONS=$(cat <<'EOF2'
## Observations (by hand, on pgvc 6a49cb5, pgvc.so 4d5272e0ec17, 2026-12-06)

- **`reachable_share` in `vc.storage()` is an estimate, not a measure**: the count of chunks
  the last `vc.gc()` kept divided by the count now (`auto_gc`, src/pg/storage.rs). A busy
  primary's chunks grow with every commit while nothing becomes unreachable, so the
  estimate falls (0.29 on the primary after a quick soak in which no chunk was garbage),
  and once it passes `vc.gc_threshold` the worker runs a full `vc.gc()` (a mark of every
  reachable chunk) that frees nothing: on an earlier build, 60 s of 1-row commits on a
  primary led to an automatic gc that freed 0 of 24,926 chunks. Every
  `vc.gc_check_interval` on a primary whose chunks grew by a third since the last gc.
- **The primary's worker fsyncs the directory after every file a prune deletes**: strace
  of it for 8 s of a soak: 2,058 `unlink`, each followed by an `open` and `fsync` of
  `packs/` (2,202 fsyncs in all), so pruning ~1,000 retired packs makes ~2,000 flushes,
  competing with the pushes' own fsyncs; one directory fsync per prune would do.
- **Right after a burst of commits the remote holds two files per push of the last
  `vc.retired_pack_grace`** (the packs compactions retired, kept for readers): ~2,000 files
  after 1,000 commits at ~100 a second with a 10 s grace (see 1); with the default grace
  of 60 s a steady ~100 commits a second keeps over 12,000 files around. By design, but it is
  what the directory listing and the filesystem see.
EOF2
)

# ---------------------------------------------------------------------------------------
# Throwaway clusters on a private copy of PostgreSQL 15 + pgvc (benches/lib.sh): data
# (no replication: the baseline soak, 2 and 3), p (primary) and s (standby) for 1.
# ---------------------------------------------------------------------------------------
make_work pgvc-bench-storage
NODE_NAMES[p]=primary NODE_NAMES[s]=standby
REMOTE=$WORK/remote            # the file:// remote of the primary and the standby

# The cluster without replication; its worker serves `postgres` (the baseline soak);
# 2 and 3 run in databases of their own, which no worker touches (no automatic gc).
start_data() {
    cluster_start data 45000 "vc.database = 'postgres'"
    bench_schema template1 <<'EOF'
-- vc.gc() timed inside the server, with what it returns, and when it started and ended
-- (microseconds since the epoch, the server's clock: the machine's).
CREATE FUNCTION bench.gc(OUT ms numeric, OUT chunks bigint, OUT bytes bigint,
                         OUT reachable bigint, OUT t0_us bigint, OUT t1_us bigint)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO chunks, bytes, reachable FROM vc.gc();
    t0_us := (extract(epoch FROM t0) * 1000000)::bigint;
    t1_us := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
    ms := round((t1_us - t0_us) / 1000.0, 1);
END $$;
-- The control of 3: a CPU-bound reader of the same data as vc.gc() (every chunk
-- detoasted and hashed by md5), taking no lock of pgvc's, for about target_ms.
-- scans: how many passes over vc.chunks it made.
CREATE FUNCTION bench.busy(target_ms numeric, OUT ms numeric, OUT scans bigint,
                           OUT t0_us bigint, OUT t1_us bigint)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    scans := 0;
    LOOP
        PERFORM count(md5(data)) FROM vc.chunks;
        scans := scans + 1;
        EXIT WHEN clock_timestamp() - t0 >= target_ms * interval '1 millisecond';
    END LOOP;
    t0_us := (extract(epoch FROM t0) * 1000000)::bigint;
    t1_us := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
    ms := round((t1_us - t0_us) / 1000.0, 1);
END $$;
EOF
    sql postgres "CREATE EXTENSION pgvc"
}

# Exits unless the pgvc of cluster NODE (database postgres, pgvc created) has every
# function and setting this suite measures.
check_features() {
    local missing
    missing=$(on "$1" sql postgres "SELECT string_agg(f, ', ') FROM (
        SELECT f FROM unnest(ARRAY['vc.gc()', 'vc.storage()', 'vc.remote_compact(text)',
            'vc.remote_gc(text,interval)']) f WHERE to_regprocedure(f) IS NULL
        UNION ALL
        SELECT 'setting ' || g FROM unnest(ARRAY['vc.auto_compact', 'vc.compact_fan_in', 'vc.retired_pack_grace',
            'vc.auto_gc', 'vc.gc_threshold', 'vc.gc_check_interval']) g
        WHERE NOT EXISTS (SELECT FROM pg_settings WHERE name = g)) m")
    [[ -z $missing ]] || { echo "$NAME: the installed pgvc lacks $missing: run scripts/install.sh" >&2; exit 1; }
}

# ---------------------------------------------------------------------------------------
# Helpers. Each sql call is a new session (a fresh backend); `on NODE sql ...` runs it
# on data, p (primary) or s (standby). Long-lived sessions (session_open, q) for probes.
# ---------------------------------------------------------------------------------------
# A sleep without a fork: a read that times out on a FIFO nobody writes to.
mkfifo "$WORK/sleep.fifo"
exec {SLEEP_FD}<>"$WORK/sleep.fifo"
nap() { read -r -t "$1" -u "$SLEEP_FD" _ || true; }

# poll SESSION SQL WANT [TIMEOUT_S]: runs SQL every ~2 ms until it prints WANT; sets
# SEEN_US (when it was seen). Fails after TIMEOUT_S (default 120).
poll() {
    local s=$1 stmt=$2 want=$3 limit=$((${4:-120} * 1000000)) start
    us
    start=$US
    while :; do
        q "$s" "$stmt"
        us
        [[ $REPLY == "$want" ]] && break
        if ((US - start > limit)); then
            echo "$NAME: timed out after ${4:-120} s waiting for '$stmt' to give '$want' (last: '$REPLY')" >&2
            return 1
        fi
        nap 0.002
    done
    SEEN_US=$US
}

# Files in the remote directory (anything: packs, indexes, the manifest, its lock,
# temporaries), and by kind: "packs idx other". A prune may delete files while we look.
remote_files() { { find "$REMOTE" -type f 2>/dev/null || true; } | wc -l; }
remote_kinds() {
    { find "$REMOTE" -type f -printf '%f\n' 2>/dev/null || true; } |
        awk '/\.pack$/ {p++; next} /\.idx$/ {i++; next} {o++} END {printf "%d %d %d", p, i, o}'
}

# storage_field NODE DB LOCATION FIELD...: the first of the FIELDs that vc.storage() of
# DB has, on LOCATION's row; "" when none.
storage_field() {
    local n=$1 db=$2 loc=$3 f e=""
    shift 3
    for f in "$@"; do e+="to_jsonb(s)->>'$f', "; done
    on "$n" sql "$db" "SELECT coalesce(${e}'') FROM vc.storage() s WHERE location = '$loc'"
}
# storage_md NODE DB: vc.storage() of DB as a Markdown table, columns as it returns them.
storage_md() {
    on "$1" sqlf "$2" <<'EOF'
WITH s AS (SELECT row_number() OVER () AS n, to_json(s) AS j FROM vc.storage() s)
SELECT '| ' || (SELECT string_agg(key, ' | ') FROM json_each_text((SELECT j FROM s WHERE n = 1))) || ' |'
UNION ALL
SELECT '|' || repeat('---|', (SELECT count(*)::int FROM json_each_text((SELECT j FROM s WHERE n = 1))))
UNION ALL
(SELECT '| ' || (SELECT string_agg(coalesce(value, 'NULL'), ' | ') FROM json_each_text(j)) || ' |' FROM s ORDER BY n);
EOF
}

# The status of NODE's replication of main: "last_error remote_head" ("<null>" for NULLs).
repl_status() {
    on "$1" sql postgres "SELECT coalesce(last_error, '<null>') || ' ' || coalesce(remote_head, '<null>')
        FROM vc.replication_status() WHERE branch = 'main'"
}
# Stops the run when NODE reports a replication error: a pgvc bug to report, not to
# work around.
check_no_error() {
    local st
    st=$(repl_status "$1")
    if [[ ${st%% *} != "<null>" ]]; then
        echo "$NAME: the $(node_name "$1")'s vc.replication_status() reports an error $2: ${st% *}" >&2
        exit 1
    fi
}

# The soak: table t (id int primary key, v int) of SOAK_IDS rows in database postgres of
# NODE, tracked and committed; pgbench runs SOAK_SQL, one client: a random row's UPDATE,
# then vc.commit(), each in autocommit (the commit's push is published at its COMMIT).
SOAK_SQL=$WORK/soak.pgbench
cat >"$SOAK_SQL" <<EOF
\set id random(1, $SOAK_IDS)
UPDATE t SET v = v + 1 WHERE id = :id;
SELECT vc.commit('soak');
EOF
soak_table() {
    on "$1" sqlf postgres >/dev/null <<EOF
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT g, 0 FROM generate_series(1, $SOAK_IDS) g;
VACUUM ANALYZE t;
SELECT vc.track('t');
SELECT vc.commit('init');
EOF
}
# pgbench_start NODE COMMITS TAG: pgbench of the soak in the background (PGBENCH_PID),
# latency log $WORK/TAG.log.<pid> (one line per transaction: client, number, latency in
# us, script, end time in s and us).
pgbench_start() {
    rm -f "$WORK/$3".log.*
    on "$1" pg_client pgbench -n -c 1 -j 1 -t "$2" -f "$SOAK_SQL" -l --log-prefix="$WORK/$3.log" postgres \
        >"$WORK/$3.out" 2>"$WORK/$3.pgbench.err" &
    PGBENCH_PID=$!
}
# pgbench_log TAG: the latency log's path ("" before pgbench opened it).
pgbench_log() {
    local f
    for f in "$WORK/$1".log.*; do [[ -f $f ]] && { echo "$f"; return; }; done
    echo ""
}
# pgbench_wait TAG COMMITS: waits for pgbench; exits unless every transaction ran.
pgbench_wait() {
    local log n
    wait "$PGBENCH_PID" || {
        echo "$NAME: pgbench ($1) failed:" >&2
        cat "$WORK/$1.out" "$WORK/$1.pgbench.err" >&2
        exit 1
    }
    log=$(pgbench_log "$1")
    n=$(wc -l <"$log")
    ((n == $2)) || { echo "$NAME: pgbench ($1) logged $n transactions, want $2" >&2; exit 1; }
}
# lat_pct P LOG FROM TO: P-th percentile (ms) of the latencies of transactions FROM..TO
# (1-based, in order) of a pgbench latency log.
lat_pct() {
    pct "$1" $(awk -v a="$3" -v b="$4" 'NR >= a && NR <= b {printf "%.3f\n", $3 / 1000}' "$2")
}
# mem_points COLUMN SAMPLES: "first start mid end peak" RssAnon (kB) of column COLUMN of
# the soak's samples ("-": no reading): the first reading, the first once W commits
# were logged (column 2), the first once half of N_SOAK were, the last, the highest.
mem_points() {
    awk -v c="$1" -v w="$W" -v h=$((N_SOAK / 2)) '$c != "-" {
            if (f == "") f = $c; if (s == "" && $2 >= w) s = $c; if (m == "" && $2 >= h) m = $c
            e = $c; if ($c + 0 > p) p = $c + 0 }
        END {if (f == "") exit; if (s == "") s = f; if (m == "") m = e; print f, s, m, e, p}' "$2"
}
# last_end_us LOG: when the last transaction of a pgbench latency log ended (us).
last_end_us() { tail -1 "$1" | awk '{printf "%d%06d", $5, $6}'; }

# ---------------------------------------------------------------------------------------
# 1. Soak: N_SOAK 1-row commits on a replicating primary, its worker compacting the
#    remote; the baseline soak of N_BASE commits without replication first.
# ---------------------------------------------------------------------------------------
BASE_P50_FIRST="" BASE_P50_LAST="" BASE_RATIO=""
soak_baseline() {
    log "1. baseline: soak of $N_BASE commits without replication"
    soak_table data
    vacuum_tracked postgres ""
    settle
    pgbench_start data "$N_BASE" base
    pgbench_wait base "$N_BASE"
    local lg
    lg=$(pgbench_log base)
    BASE_P50_FIRST=$(lat_pct 50 "$lg" 1 "$W") BASE_P50_LAST=$(lat_pct 50 "$lg" $((N_BASE - W + 1)) "$N_BASE")
    BASE_P50=$(lat_pct 50 "$lg" 1 "$N_BASE") BASE_P99=$(lat_pct 99 "$lg" 1 "$N_BASE")
    BASE_RATIO=$(calc "$BASE_P50_LAST / $BASE_P50_FIRST")
    log "   p50 first $W: $BASE_P50_FIRST ms, last $W: $BASE_P50_LAST ms (ratio $BASE_RATIO)"
}

soak_setup() {
    log "1. set-up: primary, standby (clone of file://$REMOTE)"
    new_dir "$REMOTE"
    cluster_start p 45000 "vc.database = 'postgres'" "vc.auto_compact = on" "vc.retired_pack_grace = $GRACE_MS"
    cluster_start s 45000 "vc.database = 'postgres'" "vc.read_replica_remote = 'origin'" \
        "vc.replication_interval = $INTERVAL_MS"
    # As in replication.sh: the remote first, then the setting (ALTER SYSTEM + reload).
    on p sql postgres "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', 'file://$REMOTE')" >/dev/null
    on p sql postgres "ALTER SYSTEM SET vc.replicate_to_remote = 'origin'"
    on p sql postgres "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
    soak_table p
    check_no_error p "after its first commit"
    PRIMARY_HEAD=$(on p sql postgres "SELECT vc.hashof('main')")
    local st
    st=$(repl_status p)
    [[ ${st#* } == "$PRIMARY_HEAD" ]] || { echo "$NAME: the first commit was not pushed (status: $st)" >&2; exit 1; }
    on s sql postgres "CREATE EXTENSION pgvc" >/dev/null
    on s sql postgres "SELECT vc.clone('file://$REMOTE')" >/dev/null
    session_open ss s postgres
    session_open pp p postgres
    poll ss "SELECT coalesce(vc.hashof('main'), '');" "$PRIMARY_HEAD" 30
    # The status says "waiting" (for the clone) until the worker's next round.
    poll ss "SELECT coalesce(last_error, '<null>') FROM vc.replication_status() WHERE branch = 'main';" "<null>" 10 \
        || { check_no_error s "after the clone"; exit 1; }
}

# worker_pid NODE: the pid of NODE's pgvc background worker.
worker_pid() { on "$1" sql postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgvc worker'"; }

# settle_remote LAST_US: waits until the grace after the last commit (LAST_US) is over
# and the primary's worker had a round more (its interval: 1 s), then until vc.storage()
# lists no retired pack for origin and the file count held still for 1 s (at most 60 s
# more). SETTLED_MS: from the last commit to then; SETTLED (yes/no).
settle_remote() {
    local last=$1 until files prev="" retired deadline
    until=$((last + (GRACE_MS + 2000) * 1000))
    us
    if ((US < until)); then sleep "$(awk -v d=$((until - US)) 'BEGIN {printf "%.3f", d / 1000000}')"; fi
    us
    deadline=$((US + 60000000)) SETTLED=no
    while :; do
        retired=$(storage_field p postgres "remote origin" retired retired_packs)
        files=$(remote_files)
        if [[ $retired == 0 && $files == "$prev" ]]; then SETTLED=yes; break; fi
        us
        ((US > deadline)) && break
        prev=$files
        sleep 1
    done
    us
    SETTLED_MS=$(dms "$last" "$US")
}

bench_soak() {
    log "1. soak: $N_SOAK 1-row commits on the primary (pgbench, one client)"
    section 1
    check_no_error p "before 1"
    check_no_error s "before 1"
    local bpid="" swpid pwpid lg="" lines b sw pw files t0 k samples=$WORK/soak.samples
    swpid=$(worker_pid s) pwpid=$(worker_pid p)
    [[ -n $swpid && -n $pwpid ]] || { echo "$NAME: no pgvc worker on the primary ($pwpid) or the standby ($swpid)" >&2; exit 1; }
    on p vacuum_tracked postgres ""
    settle
    local files0
    files0=$(remote_files)
    : >"$samples"
    pgbench_start p "$N_SOAK" soak
    us
    t0=$US
    # Every 0.5 s while pgbench runs: RssAnon of its backend, of the standby's worker and
    # of the primary's worker; the files in the remote; the transactions logged so far
    # (pgbench's log is buffered: a hundred lines or so behind); the CPU time of the
    # three processes and of the machine.
    local bt swt pwt
    while kill -0 "$PGBENCH_PID" 2>/dev/null; do
        if [[ -z $bpid ]]; then
            q pp "SELECT coalesce((SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1)::text, '');"
            bpid=$REPLY
        fi
        [[ -n $lg ]] || lg=$(pgbench_log soak)
        lines=0
        [[ -z $lg ]] || lines=$(wc -l <"$lg")
        b=- sw=- pw=-
        [[ -z $bpid ]] || b=$(rss_anon "$bpid") || b=-
        sw=$(rss_anon "$swpid") || sw=-
        pw=$(rss_anon "$pwpid") || pw=-
        files=$(remote_files)
        bt=- swt=- pwt=-
        [[ -z $bpid ]] || bt=$(cpu_ticks "$bpid") || bt=-
        swt=$(cpu_ticks "$swpid") || swt=-
        pwt=$(cpu_ticks "$pwpid") || pwt=-
        us
        echo "$(dms "$t0" "$US") $lines $b $sw $pw $files $bt $swt $pwt $(cpu_busy)" >>"$samples"
        # 0.5 s, but notice the end of pgbench within 20 ms (the lag is timed after it).
        for ((k = 0; k < 25; k++)); do
            kill -0 "$PGBENCH_PID" 2>/dev/null || break
            nap 0.02
        done
    done
    pgbench_wait soak "$N_SOAK"
    lg=$(pgbench_log soak)
    # Right after the last commit: the remote's files; then the standby's catching up.
    local files_now kinds_now last head lag
    files_now=$(remote_files) kinds_now=$(remote_kinds)
    last=$(last_end_us "$lg")
    q pp "SELECT vc.hashof('main');"
    head=$REPLY
    poll ss "SELECT vc.hashof('main');" "$head" 120 || { check_no_error s "after the soak"; exit 1; }
    lag=$(dms "$last" "$SEEN_US")
    local retired_now
    retired_now=$(storage_field p postgres "remote origin" retired retired_packs)
    log "   standby at the primary's head $lag ms after the last commit; remote: $files_now files right after"
    check_no_error p "after the soak"
    local st
    st=$(repl_status p)
    [[ ${st#* } == "$head" ]] || { echo "$NAME: the remote head is not the primary's after the soak (status: $st)" >&2; exit 1; }
    check_no_error s "after the soak"
    [[ $(worker_pid s) == "$swpid" ]] || { echo "$NAME: the standby's worker restarted during the soak" >&2; exit 1; }
    [[ $(worker_pid p) == "$pwpid" ]] || { echo "$NAME: the primary's worker restarted during the soak" >&2; exit 1; }
    # After the grace and a worker round.
    settle_remote "$last"
    local files_after kinds_after
    files_after=$(remote_files) kinds_after=$(remote_kinds)
    log "   remote: $files_after files $(calc "$SETTLED_MS / 1000" 1) s after the last commit (settled: $SETTLED)"
    local storage_p storage_s
    storage_p=$(storage_md p postgres) storage_s=$(storage_md s postgres)
    # Did the worker leave anything to merge? A manual compaction, now.
    local manual
    manual=$(on p sql postgres "SELECT packs_merged || ' packs merged, ' || chunks || ' chunks' FROM vc.remote_compact('origin')")
    # Latency: first W, last W, and by tenths.
    local f50 l50 ratio v p50 p99 d a z tenths=()
    f50=$(lat_pct 50 "$lg" 1 "$W") l50=$(lat_pct 50 "$lg" $((N_SOAK - W + 1)) "$N_SOAK")
    p50=$(lat_pct 50 "$lg" 1 "$N_SOAK") p99=$(lat_pct 99 "$lg" 1 "$N_SOAK")
    ratio=$(calc "$l50 / $f50")
    v=$(verdict "$ratio" "<=" 1.2)
    for ((d = 0; d < 10; d++)); do
        a=$((d * N_SOAK / 10 + 1)) z=$(((d + 1) * N_SOAK / 10))
        tenths+=("| $a-$z | $(lat_pct 50 "$lg" $a $z) | $(lat_pct 99 "$lg" $a $z) |")
    done
    local secs
    secs=$(awk 'NR == 1 {a = $5 + $6 / 1e6 - $3 / 1e6} END {printf "%.1f", $5 + $6 / 1e6 - a}' "$lg")
    # Objects.
    local oratio onow_ratio ov onow_v
    oratio=$(calc "$files_after / $OBJ_GOAL") onow_ratio=$(calc "$files_now / $OBJ_GOAL")
    ov=$(verdict "$oratio" "<=" 1.0) onow_v=$(verdict "$onow_ratio" "<=" 1.0)
    # Lag.
    local lratio lv
    lratio=$(calc "$lag / 1000") lv=$(verdict "$lratio" "<=" 1.0)
    # Memory: start = the first sample once the first W commits were logged (warm: the
    # backend's caches have seen W commits), mid = the first once half were, end = the
    # last sample of the process.
    local bm swm pwm
    bm=($(mem_points 3 "$samples")) swm=($(mem_points 4 "$samples")) pwm=($(mem_points 5 "$samples"))
    ((${#bm[@]} == 5)) || { echo "$NAME: no memory sample of the pgbench backend (pid '$bpid')" >&2; exit 1; }
    local bratio swratio pwratio bv swv
    bratio=$(calc "${bm[3]} / ${bm[1]}") swratio=$(calc "${swm[3]} / ${swm[1]}") pwratio=$(calc "${pwm[3]} / ${pwm[1]}")
    # The goal is on the second half (end / mid): the per-process caches (chunk reads,
    # 8 MB; pack indexes of the listed packs) fill during the first commits, up to their
    # bounds; what must not happen is growth with the history once they are full.
    local bmid swmid
    bmid=$(calc "${bm[3]} / ${bm[2]}") swmid=$(calc "${swm[3]} / ${swm[2]}")
    bv=$(verdict "$bmid" "<=" 1.2) swv=$(verdict "$swmid" "<=" 1.2)
    log "   p50 first $W $f50 ms, last $W $l50 ms (ratio $ratio); backend RssAnon ${bm[1]} -> ${bm[3]} kB; standby worker ${swm[1]} -> ${swm[3]} kB"
    # Samples for the report: about ten, evenly spread.
    local nsamples step srows
    nsamples=$(wc -l <"$samples")
    step=$(((nsamples + 9) / 10))
    # Each row: the sample, and CPU use since the row before (% of one CPU; the machine:
    # % of all its CPUs).
    srows=$(awk -v s="$step" -v n="$nsamples" '
        function mbs(v) {return (v == "-") ? "-" : sprintf("%.1f", v / 1024)}
        function pc(a, b, dt) {return (a == "-" || b == "-" || pt == "") ? "-" : sprintf("%.0f", (a - b) / dt)}
        (NR - 1) % s == 0 || NR == n {
            dt = ($1 - pt) / 1000
            printf "| %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1 / 1000, $2, $6, mbs($3), mbs($4), mbs($5),
                pc($7, pb, dt), pc($8, psw, dt), pc($9, ppw, dt),
                (pt == "") ? "-" : sprintf("%.0f", 100 * ($10 - pbusy) / ($11 - ptotal))
            pt = $1; pb = $7; psw = $8; ppw = $9; pbusy = $10; ptotal = $11
        }' "$samples")
    local kn=($kinds_now) ka=($kinds_after)
    md "## 1. Soak: $N_SOAK commits on a replicating primary" "" \
        "A primary (\`vc.replicate_to_remote = 'origin'\`, synchronous push at COMMIT;" \
        "\`vc.auto_compact = on\`, \`vc.compact_fan_in\` default 8, \`vc.retired_pack_grace = $GRACE_MS\`," \
        "its worker at the default \`vc.replication_interval\`, 1 s, compacting and pruning the" \
        "remote in its rounds) and a standby (\`vc.read_replica_remote = 'origin'\`," \
        "\`vc.replication_interval = $INTERVAL_MS\`) of one \`file://\` remote, the standby a" \
        "\`vc.clone()\` of it. Table \`t (id int primary key, v int)\` of $SOAK_IDS rows, tracked and" \
        "committed. Then \`pgbench -n -c 1 -t $N_SOAK -l\` on the primary with the script" \
        "\`\\set id random(1, $SOAK_IDS)\`, \`UPDATE t SET v = v + 1 WHERE id = :id;\`," \
        "\`SELECT vc.commit('soak');\` (each statement in autocommit: the commit's push is" \
        "published at its COMMIT); latencies are pgbench's, per transaction (UPDATE + commit)." \
        "\`VACUUM\` of the database and CHECKPOINT before. Every 0.5 s during the run: \`RssAnon\`" \
        "of the pgbench backend (\`pg_stat_activity.application_name = 'pgbench'\`), of the" \
        "standby's worker and of the primary's worker (\`backend_type = 'pgvc worker'\`), and" \
        "the files in the remote directory. **Goals**: p50 of the last $W commits / p50 of the" \
        "first $W <= 1.2; files in the remote after the grace and a worker round < $N_SOAK / 10" \
        "(ratio files / $OBJ_GOAL <= 1.0); last commit -> the standby at the primary's head <= 1 s" \
        "(ratio / 1000 ms); RssAnon at the end / at the middle of the soak <= 1.2 for the pgbench backend and" \
        "the standby's worker (mid: the first sample once half the commits were logged; end: the" \
        "last sample, during the last commits)." "" \
        "| | first $W (ms) | last $W (ms) | ratio last / first | result |" \
        "|---|---:|---:|---:|---|" \
        "| p50 of 1-row commits, replicating primary | $f50 | $l50 | $ratio | $v |" \
        "| same soak without replication, $N_BASE commits (information) | $BASE_P50_FIRST | $BASE_P50_LAST | $BASE_RATIO | info |" "" \
        "All $N_SOAK commits: p50 $p50 ms, p99 $p99 ms, $secs s in all; without replication" \
        "(cluster \`data\`, no remote, same table and script, $N_BASE commits): p50 $BASE_P50 ms, p99" \
        "$BASE_P99 ms. By tenths of the soak:" "" \
        "| commits | p50 (ms) | p99 (ms) |" "|---|---:|---:|" "${tenths[@]}" "" \
        "| remote directory | files | packs | idx | other | ratio files / $OBJ_GOAL | result |" \
        "|---|---:|---:|---:|---:|---:|---|" \
        "| before the soak | $files0 | | | | | |" \
        "| right after the last commit ($retired_now retired packs listed just after) | $files_now | ${kn[0]} | ${kn[1]} | ${kn[2]} | $onow_ratio | ($onow_v) |" \
        "| $(calc "$SETTLED_MS / 1000" 1) s after the last commit (settled: $SETTLED) | $files_after | ${ka[0]} | ${ka[1]} | ${ka[2]} | $oratio | $ov |" "" \
        "The goal applies after the grace: right after the last commit the packs that" \
        "compactions replaced in the last \`vc.retired_pack_grace\` are still there by design" \
        "(shown for information, result in parentheses). \"Settled\": the primary's" \
        "\`vc.storage()\` listed no retired pack for \`remote origin\` and the file count held" \
        "still for 1 s, waited for from $((GRACE_MS / 1000 + 2)) s after the last commit on (at" \
        "most 60 s more). A manual \`vc.remote_compact('origin')\` afterwards: $manual." "" \
        "| RssAnon | start (kB) | mid (kB) | end (kB) | ratio end / start | ratio end / mid | peak (kB) | result |" \
        "|---|---:|---:|---:|---:|---:|---:|---|" \
        "| pgbench backend (primary) | ${bm[1]} | ${bm[2]} | ${bm[3]} | $bratio | $bmid | ${bm[4]} | $bv |" \
        "| standby's worker | ${swm[1]} | ${swm[2]} | ${swm[3]} | $swratio | $swmid | ${swm[4]} | $swv |" \
        "| primary's worker (information) | ${pwm[1]} | ${pwm[2]} | ${pwm[3]} | $pwratio | $(calc "${pwm[3]} / ${pwm[2]}") | ${pwm[4]} | info |" "" \
        "Mid: the first sample once $((N_SOAK / 2)) commits were logged. The goal is end / mid:" \
        "the per-process caches (chunk reads, at most 8 MB; the indexes of the listed packs)" \
        "fill during the first commits; flat means no growth in the second half. First samples (before the first" \
        "$W commits were logged): pgbench backend ${bm[0]} kB, standby's worker ${swm[0]} kB." "" \
        "| | ms | ratio / 1000 ms | result |" "|---|---:|---:|---|" \
        "| last commit (pgbench's end time of the last transaction) -> standby at the primary's head | $lag | $lratio | $lv |" "" \
        "Probed from a long-lived session on the standby (\`SELECT vc.hashof('main')\` every ~2" \
        "ms), from the moment pgbench exited." "" \
        "Samples, taken every 0.5 s (about ten shown). Commits: lines of pgbench's buffered log, up" \
        "to ~100 behind. RssAnon in MB. CPU: since the row before, % of one CPU for each process" \
        "(\`/proc/<pid>/stat\`), % of all $(nproc) CPUs for the machine (\`/proc/stat\`, every process" \
        "on it: the three clusters, pgbench, this script and any other work)." "" \
        "| s | commits | remote files | MB pgbench backend | MB standby worker | MB primary worker | CPU % pgbench backend | CPU % standby worker | CPU % primary worker | CPU % machine |" \
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" "$srows" "" \
        "\`vc.storage()\` on the primary after the soak:" "" "$storage_p" "" \
        "\`vc.storage()\` on the standby after the soak:" "" "$storage_s" ""
    explain "1:$v" "1.objects:$ov" "1.lag:$lv" "1.mem.backend:$bv" "1.mem.worker:$swv"
    result 1 "soak of $N_SOAK 1-row commits: p50 last $W / first $W" "<= 1.2" "$f50 ms" "$l50 ms" "$ratio" "$v"
    result 1.base "the same without replication ($N_BASE commits): p50 last / first" "info" "$BASE_P50_FIRST ms" "$BASE_P50_LAST ms" "$BASE_RATIO" "info"
    result 1.objects "files in the remote after the grace / ($N_SOAK / 10)" "<= 1.0" "$OBJ_GOAL" "$files_after" "$oratio" "$ov"
    result 1.objects.now "files in the remote right after the last commit / ($N_SOAK / 10)" "info" "$OBJ_GOAL" "$files_now" "$onow_ratio" "($onow_v)"
    result 1.lag "last commit -> standby at the primary's head / 1 s" "<= 1.0" "1000 ms" "$lag ms" "$lratio" "$lv"
    result 1.mem.backend "RssAnon of the pgbench backend: end / mid-soak" "<= 1.2" "$(mb "${bm[2]}")" "$(mb "${bm[3]}")" "$bmid" "$bv"
    result 1.mem.worker "RssAnon of the standby's worker: end / mid-soak" "<= 1.2" "$(mb "${swm[2]}")" "$(mb "${swm[3]}")" "$swmid" "$swv"
}

# ---------------------------------------------------------------------------------------
# 2. Local gc after abandoned commits.
# ---------------------------------------------------------------------------------------
# chunk_stats DB: "chunks encoded_bytes relation_bytes" of DB's vc.chunks.
chunk_stats() {
    sql "$1" "SELECT count(*) || ' ' || coalesce(sum(length(data)), 0) || ' ' || pg_total_relation_size('vc.chunks') FROM vc.chunks"
}
# history DB: "rows sum(v)" of t at main, main~1, ... main~ROUNDS (reads every leaf).
history() {
    local k out=()
    for ((k = 0; k <= ROUNDS; k++)); do
        out+=("$(sql "$1" "SELECT count(*) || ':' || sum(v) FROM vc.as_of(NULL::public.t, 'main~$k')")")
    done
    echo "${out[*]}"
}

bench_gc_local() {
    log "2. local gc: $ROUNDS rounds of abandoned commits of $N_GC rows"
    section 2
    new_db gcdb
    sqlf gcdb >/dev/null <<EOF
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT g, g FROM generate_series(1, $N_GC) g;
VACUUM ANALYZE t;
SELECT vc.track('t');
SELECT vc.commit('load t');
EOF
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        # Each statement in autocommit. The second commit is abandoned: vc.reset('HEAD~1')
        # moves main back to the first and rewrites the rows; nothing refers to it any
        # more (no reflog; this database has no remote yet). Its values (v + ABANDON) are
        # never committed again, so no later commit reuses its chunks.
        sqlf gcdb >/dev/null <<EOF
UPDATE t SET v = v + 1;
SELECT vc.commit('round $r');
UPDATE t SET v = v + $ABANDON;
SELECT vc.commit('abandoned $r');
SELECT vc.reset('HEAD~1');
EOF
        vacuum_tracked gcdb
    done
    local commits changes
    commits=$(sql gcdb "SELECT count(*) FROM vc.log()") changes=$(sql gcdb "SELECT count(*) FROM vc.status()")
    ((commits == ROUNDS + 1 && changes == 0)) || {
        echo "$NAME: after the rounds main has $commits commits (want $((ROUNDS + 1))) and $changes changed tables (want 0)" >&2
        exit 1
    }
    local before share_before
    before=($(chunk_stats gcdb))
    share_before=$(storage_field data gcdb local reachable_share)
    share_before=${share_before:-NULL (no gc yet)}
    # The baseline: main pushed to a new file:// remote and cloned into a new database.
    local dir=$WORK/gcremote
    new_dir "$dir"
    sql gcdb "SELECT vc.remote_add('origin', 'file://$dir'); SELECT vc.push()" >/dev/null
    new_db gcclone
    sql gcclone "SELECT vc.clone('file://$dir')" >/dev/null
    local clone clone_full remote_chunks
    clone=($(chunk_stats gcclone))
    sql gcclone "VACUUM FULL vc.chunks"
    clone_full=$(sql gcclone "SELECT pg_total_relation_size('vc.chunks')")
    remote_chunks=$(idx_chunks "$dir")
    local again
    again=($(chunk_stats gcdb))
    [[ ${again[0]} == "${before[0]}" ]] || { echo "$NAME: gcdb's vc.chunks changed from ${before[0]} to ${again[0]} chunks before vc.gc()" >&2; exit 1; }
    # The collection, timed inside the server.
    settle
    local g after after_full gc2 storage_after
    g=($(sql gcdb "SELECT ms, chunks, bytes, reachable FROM bench.gc()"))
    after=($(chunk_stats gcdb))
    sql gcdb "VACUUM FULL vc.chunks"
    after_full=$(sql gcdb "SELECT pg_total_relation_size('vc.chunks')")
    gc2=$(sql gcdb "SELECT chunks FROM vc.gc()")
    storage_after=$(storage_md data gcdb)
    # What gc kept must be the whole history: every commit of main reads the same in
    # gcdb and in the clone (every leaf is read). A difference is a pgvc bug: stop.
    local h_gc h_clone
    h_gc=$(history gcdb) h_clone=$(history gcclone)
    [[ $h_gc == "$h_clone" ]] || { echo "$NAME: after vc.gc() main's history reads '$h_gc', the clone's '$h_clone'" >&2; exit 1; }
    ((g[1] == before[0] - after[0])) || log "   note: vc.gc() reported ${g[1]} chunks freed, the count fell by $((before[0] - after[0]))"
    local ratio v bratio
    ratio=$(calc "${after[0]} / ${clone[0]}")
    v=$(verdict "$ratio" "<=" 1.0)
    bratio=$(calc "$after_full / $clone_full")
    log "   chunks ${before[0]} -> ${after[0]} (clone ${clone[0]}), vc.gc() ${g[0]} ms; on disk $(human "${before[2]}") -> $(human "$after_full") after VACUUM FULL (clone $(human "$clone_full"))"
    md "## 2. Local gc after abandoned commits" "" \
        "Database \`gcdb\` (no worker serves it: no automatic gc): \`t (id int primary key, v int)\`" \
        "of $N_GC rows, tracked and committed. Then $ROUNDS rounds, each statement in autocommit:" \
        "\`UPDATE t SET v = v + 1\`, \`vc.commit()\` (kept), \`UPDATE t SET v = v + $ABANDON\`," \
        "\`vc.commit()\`, \`vc.reset('HEAD~1')\`: the reset moves main back to the kept commit and" \
        "rewrites the rows, so the second commit of each round and every chunk only it reaches" \
        "are unreachable (pgvc keeps no reflog; the database has no remote while this happens," \
        "so no remote-tracking ref holds them either). Its values are never committed again, so" \
        "no later commit reuses its chunks. Main ends with $commits commits, no uncommitted change." \
        "Baseline: main pushed to a new \`file://\` remote (\`vc.push()\`) and cloned" \
        "(\`vc.clone()\`) into a new database of the same cluster, \`gcclone\`: the chunks of the" \
        "same branch and history. Then \`SELECT * FROM vc.gc()\` in \`gcdb\`, timed inside the" \
        "server; then \`VACUUM FULL vc.chunks\` (in both databases) for the bytes on disk." \
        "After the gc, \`count(*)\` and \`sum(v)\` of \`vc.as_of(NULL::t, 'main~k')\`, k = 0..$ROUNDS," \
        "are the same in \`gcdb\` and in the clone (checked: the history survived)." \
        "**Goal**: chunks after the gc <= chunks of the clone (ratio <= 1.0)." "" \
        "| vc.chunks | chunks | encoded bytes (length(data)) | on disk (pg_total_relation_size) |" \
        "|---|---:|---:|---:|" \
        "| gcdb before vc.gc() | ${before[0]} | $(human "${before[1]}") | $(human "${before[2]}") |" \
        "| gcdb after vc.gc() | ${after[0]} | $(human "${after[1]}") | $(human "${after[2]}") |" \
        "| gcdb after vc.gc() and VACUUM FULL | | | $(human "$after_full") |" \
        "| gcclone (fresh clone of main) | ${clone[0]} | $(human "${clone[1]}") | $(human "${clone[2]}") |" \
        "| gcclone after VACUUM FULL | | | $(human "$clone_full") |" "" \
        "| | measured | baseline (clone) | ratio | result |" "|---|---:|---:|---:|---|" \
        "| chunks after vc.gc() | ${after[0]} | ${clone[0]} | $ratio | $v |" \
        "| bytes on disk after vc.gc() + VACUUM FULL (information) | $(human "$after_full") | $(human "$clone_full") | $bratio | info |" "" \
        "\`vc.gc()\` took ${g[0]} ms and returned chunks = ${g[1]} (freed), bytes = $(human "${g[2]}")," \
        "reachable = ${g[3]}; the count fell by $((before[0] - after[0])). A second \`vc.gc()\`" \
        "freed $gc2. The remote's indexes list $remote_chunks chunks. \`vc.storage()\` said" \
        "\`reachable_share\` = $share_before before the gc (the clone's count / the count before:" \
        "$(calc "${clone[0]} / ${before[0]}" 3)); after it:" "" "$storage_after" ""
    explain "2:$v"
    result 2 "local gc after $ROUNDS abandoned commits: chunks left / fresh clone's" "<= 1.0" "${clone[0]}" "${after[0]}" "$ratio" "$v"
    result 2.bytes "on disk after gc + VACUUM FULL / fresh clone's" "info" "$(human "$clone_full")" "$(human "$after_full")" "$bratio" "info"
    result 2.time "vc.gc() freeing ${g[1]} of ${before[0]} chunks" "info" "-" "${g[0]} ms" "-" "info"
}

# ---------------------------------------------------------------------------------------
# 3. Cost of vc.gc(): its time on a long history, and what it does to concurrent commits.
# ---------------------------------------------------------------------------------------
# One 1-row commit in session cs (gccost), timed by the client (round trip, COMMIT
# included); appends "start_us end_us" to COMMITS_FILE.
PROBE=0
commit1() {
    local id t0
    PROBE=$((PROBE + 1))
    id=$((1 + PROBE * 104729 % N_COST))
    us
    t0=$US
    q cs "UPDATE t SET price = price + 1, ts = ts + interval '1 hour' WHERE id = $id; SELECT vc.commit('probe $PROBE');"
    us
    echo "$t0 $US" >>"$COMMITS_FILE"
}
# load_loop KIND UNTIL_US OUT: KIND (gc: vc.gc(); busy: bench.busy() for about as long
# as vc.gc() takes alone, GC_MS) again and again, each in a new session, until UNTIL_US
# (at least once); "t0_us t1_us ms chunks_freed_or_scans" per run to OUT, "failed" for
# a run that failed (its error in OUT.errors).
load_loop() {
    local kind=$1 until=$2 out=$3 stmt
    if [[ $kind == gc ]]; then
        stmt="SELECT t0_us || ' ' || t1_us || ' ' || ms || ' ' || chunks FROM bench.gc()"
    else
        stmt="SELECT t0_us || ' ' || t1_us || ' ' || ms || ' ' || scans FROM bench.busy($GC_MS)"
    fi
    while :; do
        on data sql gccost "$stmt" >>"$out" 2>>"$out.errors" || echo "failed" >>"$out"
        us
        ((US >= until)) && break
    done
}
# block KIND R: 1-row commits in session cs for BLOCK_MS (KIND off), or while load_loop
# KIND (gc, busy) runs for BLOCK_MS (until its last run ends). Commits: "start_us
# end_us" in $WORK/commits.KIND.R; the load's runs in $WORK/runs.KIND.R; the machine's
# CPU ticks (cpu_busy) before and after in $WORK/cpu.KIND.R.
block() {
    local kind=$1 r=$2 until pid
    COMMITS_FILE=$WORK/commits.$kind.$r
    : >"$COMMITS_FILE"
    cpu_busy >"$WORK/cpu.$kind.$r"
    us
    until=$((US + BLOCK_MS * 1000))
    if [[ $kind == off ]]; then
        while us && ((US < until)); do commit1; done
    else
        load_loop "$kind" "$until" "$WORK/runs.$kind.$r" &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do commit1; done
        wait "$pid"
    fi
    cpu_busy >>"$WORK/cpu.$kind.$r"
}
# machine_busy KIND: % of all the machine's CPUs busy during the KIND blocks.
machine_busy() {
    cat "$WORK"/cpu."$1".* | awk 'NR % 2 {b0 = $1; t0 = $2; next} {b += $1 - b0; t += $2 - t0} END {printf "%.0f", 100 * b / t}'
}
# overlapping KIND: latencies (ms) of the commits of the KIND blocks that overlap a run
# of the load (from its start to its end inside the server, the same clock).
overlapping() {
    local r
    for ((r = 1; r <= COST_RUNS; r++)); do
        awk 'NR == FNR {if ($1 != "failed") {s[++n] = $1; e[n] = $2}; next}
            {for (i = 1; i <= n; i++) if ($2 > s[i] && $1 < e[i]) {printf "%.3f\n", ($2 - $1) / 1000; break}}' \
            "$WORK/runs.$1.$r" "$WORK/commits.$1.$r"
    done
}
# run_field KIND FIELD: FIELD (3: ms, 4: freed or scans) of every run of the load KIND
# that succeeded.
run_field() {
    local r
    for ((r = 1; r <= COST_RUNS; r++)); do awk -v f="$2" '$1 != "failed" {print $f}' "$WORK/runs.$1.$r"; done
}

bench_gc_cost() {
    log "3. gc cost: $N_COST rows, $COST_COMMITS commits of ~10 spread rows"
    section 3
    new_db gccost
    new_tracked gccost "$N_COST"
    local step=$((N_COST / 10)) i c ids t0 churn_ms
    t0=$(now)
    for ((i = 1; i <= COST_COMMITS; i++)); do
        c=$((1 + i * 7919 % step))
        ids=$(seq -s, "$c" "$step" "$N_COST")
        echo "UPDATE t SET price = price + 1, ts = ts + interval '1 hour' WHERE id = ANY ('{$ids}'::int[]);"
        echo "SELECT vc.commit('churn $i');"
    done | sqlf gccost >/dev/null
    churn_ms=$(since_ms "$t0")
    vacuum_tracked gccost
    local stats commits
    stats=($(chunk_stats gccost))
    commits=$(sql gccost "SELECT count(*) FROM vc.log()")
    log "   $commits commits, ${stats[0]} chunks ($(human "${stats[1]}")) in $(calc "$churn_ms / 1000" 1) s"
    # vc.gc() alone, GC_RUNS times, each in a new session after sync + CHECKPOINT.
    local r g alone=() freed=() reach=""
    for ((r = 1; r <= GC_RUNS; r++)); do
        settle
        g=($(sql gccost "SELECT ms, chunks, reachable FROM bench.gc()"))
        alone+=("${g[0]}") freed+=("${g[1]}") reach=${g[2]}
    done
    GC_MS=$(median "${alone[@]}")
    log "   vc.gc() alone: ${alone[*]} ms (freed ${freed[*]})"
    # 1-row commits of a concurrent session in COST_RUNS triples of blocks, each about
    # BLOCK_MS long: without load (off), while vc.gc() runs (gc), and while bench.busy()
    # runs (busy: the control, CPU without pgvc's locks); order off gc busy, then busy gc
    # off, and so on.
    session_open cs data gccost
    COMMITS_FILE=$WORK/commits.warm
    for ((i = 0; i < 5; i++)); do commit1; done # warm the session
    settle
    local kind order
    for ((r = 1; r <= COST_RUNS; r++)); do
        order="off gc busy"
        ((r % 2)) || order="busy gc off"
        for kind in $order; do block "$kind" $r; done
        log "   triple $r: commits without load $(wc -l <"$WORK/commits.off.$r"), during gc $(wc -l <"$WORK/commits.gc.$r"), during busy $(wc -l <"$WORK/commits.busy.$r"); gc runs: $(awk '{print $3}' "$WORK/runs.gc.$r" | tr '\n' ' ')"
    done
    # Latencies: without load, every commit of the off blocks; with a load, the commits
    # of its blocks that overlap one of its runs.
    local off=() during=() busy=() runs_ms=() runs_freed=() busy_ms=() failures=0 errors=""
    off=($(cat "$WORK"/commits.off.* | awk '{printf "%.3f\n", ($2 - $1) / 1000}'))
    during=($(overlapping gc)) busy=($(overlapping busy))
    runs_ms=($(run_field gc 3)) runs_freed=($(run_field gc 4)) busy_ms=($(run_field busy 3))
    for ((r = 1; r <= COST_RUNS; r++)); do
        failures=$((failures + $(awk '$1 == "failed" {n++} END {print n + 0}' "$WORK/runs.gc.$r")))
    done
    if ((failures)); then errors=$(cat "$WORK"/runs.gc.*.errors | sort | uniq -c | head -5); fi
    # Still all there: the head reads as the live table, nothing uncommitted.
    local check
    check=$(sql gccost "SELECT (SELECT count(*) || ':' || sum(price) FROM vc.as_of(NULL::public.t, 'HEAD'))
        = (SELECT count(*) || ':' || sum(price) FROM t) AND NOT EXISTS (SELECT FROM vc.status())")
    [[ $check == t ]] || { echo "$NAME: after the concurrent commits and gcs, gccost's HEAD does not read as its live table" >&2; exit 1; }
    if ((${#during[@]} == 0 || ${#busy[@]} == 0)); then
        echo "$NAME: ${#during[@]} commits overlapped a vc.gc() that succeeded ($failures failed), ${#busy[@]} a run of the control" >&2
        echo "$errors" >&2
        exit 1
    fi
    local off50 off99 dur50 dur99 ratio v busy50 busy99 bratio gbratio
    off50=$(pct 50 "${off[@]}") off99=$(pct 99 "${off[@]}")
    dur50=$(pct 50 "${during[@]}") dur99=$(pct 99 "${during[@]}")
    busy50=$(pct 50 "${busy[@]}") busy99=$(pct 99 "${busy[@]}")
    ratio=$(calc "$dur50 / $off50") bratio=$(calc "$busy50 / $off50") gbratio=$(calc "$dur50 / $busy50")
    GC_VS_CONTROL=$gbratio
    v=$(verdict "$ratio" "<=" 2.0)
    log "   commits p50 $off50 ms without load, $dur50 ms during gc (ratio $ratio; ${#during[@]} commits; $failures gc failures), $busy50 ms during the control"
    md "## 3. Cost of vc.gc()" "" \
        "Database \`gccost\` (no worker serves it): \`t (id int primary key, name text," \
        "price numeric(10,2), ts timestamptz)\` of $N_COST rows, tracked and committed, then" \
        "$COST_COMMITS commits of ~10 rows each spread over the table (\`UPDATE t SET price = price +" \
        "1, ts = ts + interval '1 hour' WHERE id = ANY (...)\`, ids \`c, c + N/10, ...\`, a different" \
        "\`c\` per commit; $(calc "$churn_ms / 1000" 1) s in one session): $commits commits," \
        "${stats[0]} chunks, $(human "${stats[1]}") encoded, $(human "${stats[2]}") on disk; nothing" \
        "unreachable. \`SELECT * FROM vc.gc()\` timed inside the server, $GC_RUNS runs each in a" \
        "new session after \`sync\` + CHECKPOINT." "" \
        "Then 1-row commits (\`UPDATE t SET ... WHERE id = x; SELECT vc.commit(...)\`, autocommit)" \
        "from one long-lived session, timed by the client (round trip, COMMIT included), in" \
        "$COST_RUNS triples of blocks of about $BLOCK_MS ms (order off, gc, control; then control," \
        "gc, off; ...): without load (off); while a background loop runs \`vc.gc()\` again and" \
        "again, each in a new session (gc); and, as a control, while the same loop runs" \
        "\`bench.busy()\` instead: about as long as a \`vc.gc()\` alone ($GC_MS ms), passes of" \
        "\`SELECT count(md5(data)) FROM vc.chunks\`, a CPU-bound reader of the same chunks that" \
        "takes none of pgvc's locks. It tells what any busy backend costs a commit on this" \
        "machine ($(nproc) CPUs, shared) from what \`vc.gc()\` itself adds (its lock," \
        "\`vc.gc_lock\`, taken for its last step). With a load: the commits whose round trip" \
        "overlaps one of its runs (start and end taken inside the server, the same clock)." \
        "**Goal** (information): p50 while \`vc.gc()\` runs / p50 without <= 2.0. After the" \
        "blocks the head read by \`vc.as_of()\` equals the live table (count and sum) and" \
        "nothing is uncommitted (checked)." "" \
        "| vc.gc() | runs (ms) | median (ms) | freed (chunks) | reachable |" \
        "|---|---|---:|---|---:|" \
        "| alone | ${alone[*]} | $GC_MS | ${freed[*]} | $reach |" \
        "| during the commits | ${runs_ms[*]:-none} | $(median "${runs_ms[@]:-0}") | ${runs_freed[*]:-} | |" "" \
        "| 1-row commit (client) | commits | p50 (ms) | p99 (ms) | ratio p50 / without | result |" \
        "|---|---:|---:|---:|---:|---|" \
        "| without load | ${#off[@]} | $off50 | $off99 | | |" \
        "| while vc.gc() runs | ${#during[@]} | $dur50 | $dur99 | $ratio | $v |" \
        "| while the control runs (bench.busy, no pgvc lock) | ${#busy[@]} | $busy50 | $busy99 | $bratio | info |" "" \
        "While \`vc.gc()\` runs / while the control runs: $gbratio (p50). The control's runs:" \
        "${busy_ms[*]} ms. The machine's CPUs ($(nproc), \`/proc/stat\`: every process on it, this" \
        "script's included) were busy $(machine_busy off)% of the time during the blocks without" \
        "load, $(machine_busy gc)% during the gc blocks, $(machine_busy busy)% during the control's." ""
    if ((failures)); then
        md "$failures of the \`vc.gc()\` calls during the commits failed:" "" '```' "$errors" '```' ""
    fi
    explain "3:$v"
    result 3.gc "vc.gc(): $N_COST rows, $commits commits, ${stats[0]} chunks" "info" "-" "$GC_MS ms" "-" "info"
    result 3 "1-row commit p50 while vc.gc() runs / without" "<= 2.0" "$off50 ms" "$dur50 ms" "$ratio" "$v"
    result 3.control "1-row commit p50 while a CPU-bound reader runs / without (control)" "info" "$off50 ms" "$busy50 ms" "$bratio" "info"
}

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
write_report() {
    local rev
    rev=$(rev_at_start)
    {
        echo "# pgvc storage benchmarks"
        echo
        echo "Written by \`benches/storage.sh\`; do not edit by hand. Reproduce with"
        echo "\`benches/storage.sh\` (as root, with the release build installed by"
        echo "\`scripts/install.sh\`; \`make bench\` does both and runs the other benchmark scripts);"
        echo "\`benches/storage.sh --quick\` for a smoke run."
        echo
        report_command
        report_run
        report_machine "remotes on $(fs_of "$WORK"); all clusters on the same machine, "
        echo "- **PostgreSQL**: $PG_VERSION; each cluster \`shared_buffers = 1GB\`, \`max_wal_size = 8GB\`, \`checkpoint_timeout = 30min\`, \`wal_level = logical\`, \`shared_preload_libraries = 'pgvc'\`, \`vc.database = 'postgres'\`, other settings default (fsync on, \`synchronous_commit = on\`, \`vc.auto_gc\` on). Cluster \`data\` (baseline soak, 2, 3): no replication. Primary (1): \`vc.replicate_to_remote = 'origin'\` (ALTER SYSTEM), \`vc.async_replication = off\`, \`vc.auto_compact = on\`, \`vc.retired_pack_grace = $GRACE_MS\`, \`vc.compact_fan_in\` and \`vc.replication_interval\` default; standby (1): \`vc.read_replica_remote = 'origin'\`, \`vc.replication_interval = $INTERVAL_MS\`"
        echo "- **pgvc**: commit $rev (committed $REV_DATE) at the start of the run; measured: the installed release build (pgvc.so built $SO_DATE, sha256 $SO_SHA...)"
        echo "- **Sizes**: soak $N_SOAK commits (windows of $W; baseline $N_BASE) on \`t (id int primary key, v int)\` of $SOAK_IDS rows; local gc $N_GC rows, $ROUNDS rounds; gc cost $N_COST rows of \`t (id int primary key, name text, price numeric(10,2), ts timestamptz)\` with $COST_COMMITS commits of ~10 rows."
        echo "- **Method**: throwaway clusters on a private copy of the installed PostgreSQL + pgvc" \
            "(Unix sockets only), \`file://\` remotes in directories owned by \`postgres\` next to" \
            "them. Latencies: pgbench's per-transaction log (1), or this script's long-lived psql" \
            "sessions fed through FIFOs (\`\$EPOCHREALTIME\`: 1's lag, 3's commits); \`vc.gc()\`" \
            "inside the server (\`clock_timestamp()\`). Every goal is a ratio against a baseline" \
            "measured in the same run (the machine is shared; absolute times drift)."
        echo
        report_summary 1 2 3
        echo -n "Causes of MISSes from profiles of pgvc $CAUSES_FROM"
        if [[ $SO_SHA == "$CAUSES_SO" ]]; then echo ": the build measured here."; else echo "; this run measured another build (pgvc.so $SO_SHA): re-check them."; fi
        echo
        echo "$OBSERVATIONS"
        echo
        cat <<'EOF'
## How to investigate a MISS

- CPU: start the statement in one session, find its backend
  (`SELECT pid FROM pg_stat_activity WHERE ...`, or `backend_type = 'pgvc worker'` for a
  worker), then `perf record -g -p <pid> -- sleep 10` and
  `perf report --children --sort symbol` (or `--no-children` for self time).
- Memory: `SELECT pg_log_backend_memory_contexts(<pid>)` while it runs writes the process's
  memory contexts to the server log; `benches/storage.sh --keep` keeps the logs, the
  remotes and pgbench's latency logs (`$WORK/soak.log.*`, `$WORK/soak.samples`).
EOF
    } >"$OUT"
}

main() {
    bench_begin remote_gc "storage maintenance (gc, compaction)"
    start_data
    check_features data
    log "cluster data on port ${PORTS[data]}, in $WORK ($PG_VERSION, pgvc.so $SO_SHA)"
    if wanted 1; then
        soak_baseline
        soak_setup
        log "primary on port ${PORTS[p]}, standby on port ${PORTS[s]}"
        bench_soak
        # 2 and 3 are timed: the pair stops.
        pg_stop s
        pg_stop p
    fi
    if wanted 2; then bench_gc_local; fi
    if wanted 3; then bench_gc_cost; fi
    collect_results
    write_report
    print_summary 15 70 12
}

main
