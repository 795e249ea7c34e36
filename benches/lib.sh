# The benchmark harness, sourced by benches/run.sh, remotes.sh, backups.sh,
# replication.sh and storage.sh (which set their own shell options), so that each of
# them holds only its own measurements. A script sets NAME (its file name, for
# messages), sources this file, then:
#
#   parse_args HELP_LINES ONLY_DEFAULT "$@"   --quick, --only, --out, --keep, --help
#   make_work PREFIX                          $WORK, $PGBIN, $RESULTS, the exit trap
#   bench_begin [FUNCTION WHAT]               private copy of PostgreSQL 15 + pgvc
#   cluster_start NODE PORT_BASE [CONF...]    a throwaway cluster (PORTS[NODE])
#   bench_schema DB <<EOF ... EOF             schema bench (bench.ms, bench.rows, ...)
#   its benchmarks: section N, md, result, explain (with its own cause ID)
#   collect_results; its write_report (report_* helpers); print_summary
#
# It may also set RESULT_WIDTH and UNEXPLAINED (see result, explain) and name its nodes
# in NODE_NAMES.
#
# Clusters are named by a node. "data" is the one cluster of run.sh, remotes.sh and
# backups.sh ($WORK/data, log $WORK/server.log); replication.sh has two, p and s ($WORK/p,
# log $WORK/p.log); storage.sh has all three. psql_, sql, sqlf, ms and the helpers built on them talk to the
# cluster $NODE ("data" unless run under `on NODE ...`).

SYS_BIN=/usr/lib/postgresql/15/bin
declare -A PORTS=()                      # node -> port
declare -A NODE_NAMES=([data]=server)    # node -> what messages call it
NODES=()                                 # nodes started, in order (for cleanup, settle)
NODE=data                                # the cluster sql & co. talk to
BG_PIDS=()                               # background processes to kill at exit
SECTION=""                               # the current report section's Markdown file
SECTION_NO=0                             # its number
RESULT_WIDTH=70                          # width of the benchmark column result() prints
UNEXPLAINED="not yet explained: profile it (see How to investigate a MISS below)."

# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
# parse_args HELP_LINES ONLY_DEFAULT ARG...: the options every script takes: --quick
# (QUICK=1), --out FILE (OUT), --keep (KEEP=1), -h/--help (prints lines HELP_LINES,
# e.g. 2,22, of the script: its header), and --only LIST (ONLY, default ONLY_DEFAULT)
# unless ONLY_DEFAULT is empty. Anything else: exit 2. ARGS: the arguments as given.
parse_args() {
    local help=$1 only=$2
    shift 2
    ARGS="$*" QUICK=0 ONLY=$only OUT="" KEEP=0
    while (($#)); do
        case $1 in
        --quick) QUICK=1 ;;
        --out) OUT=$2; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) sed -n "${help}p" "$0"; exit 0 ;;
        *)
            if [[ $1 == --only && -n $only ]]; then
                ONLY=$2
                shift
            else
                echo "$NAME: unknown argument $1 (see --help)" >&2
                exit 2
            fi ;;
        esac
        shift
    done
}

# wanted N: whether benchmark N is in ONLY.
wanted() { [[ ,$ONLY, == *,$1,* ]]; }

# check_only MAX: exit 2 unless every number in ONLY is 1..MAX (MAX <= 9).
check_only() {
    local b
    for b in ${ONLY//,/ }; do
        [[ $b == [1-$1] ]] || { echo "$NAME: no benchmark $b (see --help)" >&2; exit 2; }
    done
}

# ---------------------------------------------------------------------------------------
# Statistics and formatting (each needs only its arguments)
# ---------------------------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# pct P VALUES...: nearest-rank percentile.
pct() {
    local p=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v p="$p" '{v[NR] = $1} END {i = int((p * NR + 99) / 100); if (i < 1) i = 1; print v[i]}'
}
max() { printf '%s\n' "$@" | sort -g | tail -1; }
# calc EXPR [DECIMALS]: EXPR evaluated by awk, DECIMALS (default 2) decimals.
calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
# paired_ratio "A1 A2 ..." "B1 B2 ...": median of Bi / Ai. Runs i of both sides were
# taken back to back, so a change of the machine's load between runs cancels out.
paired_ratio() {
    local a=($1) b=($2) i r=()
    for i in "${!a[@]}"; do r+=("$(calc "${b[i]} / ${a[i]}" 4)"); done
    calc "$(median "${r[@]}")"
}
# verdict VALUE OP GOAL: PASS when VALUE OP GOAL holds (OP is <= or >=).
verdict() { awk -v v="$1" -v g="$3" -v op="$2" 'BEGIN {ok = (op == "<=") ? v <= g : v >= g; print ok ? "PASS" : "MISS"}'; }

# Bytes for people: 1.5 MiB, 3.0 KiB, 12 B.
human() { awk -v b="$1" 'BEGIN {
    if (b >= 1048576) printf "%.1f MiB", b / 1048576; else if (b >= 1024) printf "%.1f KiB", b / 1024;
    else printf "%d B", b }'; }
# mb KB: kilobytes as whole MB ("12 MB").
mb() { awk -v k="$1" 'BEGIN {printf "%.0f MB", k / 1024}'; }
# mibs BYTES MS: throughput in MiB/s, 1 decimal.
mibs() { awk -v b="$1" -v ms="$2" 'BEGIN {printf "%.1f", b / 1048576 / (ms / 1000)}'; }
# dir_bytes DIR: total size of the files under DIR.
dir_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# Wall-clock stamps, for times measured by the client: t0=$(now); ...; $(since_ms "$t0").
now() { date +%s.%N; }
since_ms() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", (b - a) * 1000}'; }
# wall COMMAND ARG...: runs COMMAND; WALL_MS: its wall-clock time (ms) as the client sees it.
wall() {
    local t0
    t0=$(now)
    "$@"
    WALL_MS=$(since_ms "$t0")
}

# ---------------------------------------------------------------------------------------
# Work directory and clean-up
# ---------------------------------------------------------------------------------------
# make_work PREFIX: WORK, a fresh directory /tmp/PREFIX.XXXXXX owned by postgres, where
# everything of the run goes; PGBIN (the private PostgreSQL's binaries in it); RESULTS
# (the summary rows); and the exit trap (cleanup).
make_work() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    chown postgres: "$WORK"
    PGBIN=$WORK/usr/lib/postgresql/15/bin
    RESULTS=$WORK/results.tsv
    : >"$RESULTS"
    trap cleanup EXIT
}

# At exit: kills BG_PIDS, stops the clusters (immediate). After a failure, prints the
# end of each server log (and any error output of sessions, $WORK/*.err) and keeps
# $WORK; $WORK is also kept with --keep, removed otherwise.
cleanup() {
    local rc=$? pid n file what
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for n in "${NODES[@]}"; do
        if [[ -f $WORK/$n/postmaster.pid ]]; then
            runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/$n" -m immediate stop >/dev/null 2>&1 || true
        fi
    done
    if ((rc != 0)); then
        for n in "${NODES[@]}"; do
            file=$(node_log "$n")
            [[ -f $file ]] || continue
            what="the server log"
            [[ $n == data ]] || what="the $(node_name "$n")'s server log"
            echo "$NAME: failed; last lines of $what ($file):" >&2
            tail -n 20 "$file" >&2
            grep -q 'Segmentation fault' "$file" && echo "$NAME: the $(node_name "$n") crashed (see above)" >&2
            KEEP=1
        done
        for file in "$WORK"/*.err; do
            [[ -s $file ]] && { echo "$NAME: session $(basename "$file" .err):" >&2; cat "$file" >&2; KEEP=1; }
        done
    fi
    if ((KEEP)); then echo "$NAME: kept $WORK" >&2; else rm -rf "$WORK"; fi
}

# new_dir DIR: DIR, emptied (or created), owned by postgres.
new_dir() {
    rm -rf "$1"
    mkdir -p "$1"
    chown postgres: "$1"
}

# ---------------------------------------------------------------------------------------
# Private copy of PostgreSQL 15 + pgvc
# ---------------------------------------------------------------------------------------
# snapshot_install [FUNCTION WHAT]: copies the installed PostgreSQL 15 (binaries, modules,
# share) into $WORK. PostgreSQL finds lib/ and share/ relative to its binary, so the copy
# is self-contained, and a concurrent reinstall of pgvc.so (e.g. `cargo pgrx test`, which
# installs a debug build in place) can neither crash the run nor change what is measured.
# pgvc itself is taken from the release package scripts/install.sh builds (make bench runs
# it first), when present. Exits 1 unless pgvc.so is there and a release build, and, given
# FUNCTION, unless pgvc's SQL defines it (WHAT: the feature, for the message). Sets
# SO_SHA, SO_DATE (pgvc.so's mtime), REV, REV_DATE and DIRTY (the checkout now: others
# may commit meanwhile).
snapshot_install() {
    local lib share so pkg=$ROOT/target/pgvc-package
    lib=$("$SYS_BIN/pg_config" --pkglibdir)
    share=$("$SYS_BIN/pg_config" --sharedir)
    mkdir -p "$WORK/usr/lib/postgresql/15/lib" "$WORK/usr/share/postgresql"
    cp -a "$SYS_BIN" "$WORK/usr/lib/postgresql/15/"
    cp -a "$lib"/*.so "$WORK/usr/lib/postgresql/15/lib/"
    cp -a "$share" "$WORK/usr/share/postgresql/"
    if [[ -f $pkg$lib/pgvc.so && -f $pkg$share/extension/pgvc.control ]]; then
        cp -p "$pkg$lib/pgvc.so" "$WORK$lib/"
        cp "$pkg$share"/extension/pgvc* "$WORK$share/extension/"
    fi
    so=$WORK/usr/lib/postgresql/15/lib/pgvc.so
    [[ -f $so ]] || { echo "$NAME: pgvc is not installed: run scripts/install.sh (or make bench)" >&2; exit 1; }
    if readelf -S "$so" | grep -q '\.debug_info'; then
        echo "$NAME: the installed pgvc.so is a debug build (cargo pgrx test installs one);" \
            "run scripts/install.sh (or make bench) for the release build" >&2
        exit 1
    fi
    if [[ -n ${1:-} ]]; then
        grep -q "$1" "$WORK$share/extension/pgvc--"*.sql || {
            echo "$NAME: the installed pgvc has no $2 (vc.$1): run scripts/install.sh" >&2
            exit 1
        }
    fi
    SO_SHA=$(sha256sum "$so" | cut -c1-12)
    SO_DATE=$(date -u -r "$so" '+%Y-%m-%d %H:%M UTC')
    REV=$(git_rev)
    REV_DATE=$(TZ=UTC git -C "$ROOT" log -1 --format=%cd --date=format-local:'%Y-%m-%d %H:%M UTC' 2>/dev/null || echo "?")
    DIRTY=$(git_dirty)
}
# The checkout's short commit, and how many files of src/ and Cargo.toml differ from it.
git_rev() { git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown; }
git_dirty() { git -C "$ROOT" status --porcelain -- src Cargo.toml 2>/dev/null | wc -l; }

# bench_begin [FUNCTION WHAT]: START_DATE, LOAD_START, the private copy
# (snapshot_install FUNCTION WHAT) and PG_VERSION.
bench_begin() {
    START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    snapshot_install "$@"
    PG_VERSION=$("$PGBIN/postgres" --version)
}

# ---------------------------------------------------------------------------------------
# Throwaway clusters (Unix sockets in $WORK only)
# ---------------------------------------------------------------------------------------
# free_port BASE: a TCP port from BASE..BASE+4999 on that no local server listens.
# The clusters listen on Unix sockets in $WORK only, so no port can clash; we still pick
# one that no local server uses (nor a cluster of this run: PORTS).
free_port() {
    local p
    for ((p = $1 + RANDOM % 5000; ; p++)); do
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && [[ ! -e /tmp/.s.PGSQL.$p ]] \
            && [[ ! -e /var/run/postgresql/.s.PGSQL.$p ]] && [[ ! -e ${WORK:-/nonexistent}/.s.PGSQL.$p ]] \
            && [[ " ${PORTS[*]:-} " != *" $p "* ]]; then
            echo "$p"
            return
        fi
    done
}

# node_log NODE / node_name NODE: the server log of cluster NODE; what messages call it.
node_log() { if [[ $1 == data ]]; then echo "$WORK/server.log"; else echo "$WORK/$1.log"; fi; }
node_name() { echo "${NODE_NAMES[$1]}"; }

# cluster_start NODE PORT_BASE [CONF_LINE...]: initdb of cluster NODE into $WORK/NODE
# (trust, superuser postgres), started with the settings every benchmark uses
# (pgvc preloaded, shared_buffers = 1GB, max_wal_size = 8GB, checkpoint_timeout = 30min,
# wal_level = logical) and the CONF_LINEs; its port, free from PORT_BASE on, in PORTS[NODE].
cluster_start() {
    local n=$1 base=$2 initlog=$WORK/initdb.log
    shift 2
    [[ $n == data ]] || initlog=$WORK/initdb.$n.log
    NODES+=("$n")
    PORTS[$n]=$(free_port "$base")
    runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/$n" -A trust -U postgres \
        --no-sync >"$initlog"
    {
        cat <<EOF
port = ${PORTS[$n]}
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'pgvc'
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_level = logical
EOF
        if (($#)); then printf '%s\n' "$@"; fi
    } >>"$WORK/$n/postgresql.conf"
    pg_start "$n"
}
# pg_start NODE / pg_stop NODE: (re)starts cluster NODE; stops it (fast), waiting.
pg_start() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/$1" -l "$(node_log "$1")" -w start >/dev/null
}
pg_stop() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/$1" -m fast -w stop >/dev/null
}

# ---------------------------------------------------------------------------------------
# SQL on cluster $NODE. Each call is a new session (a fresh backend: cold plan and chunk
# caches).
# ---------------------------------------------------------------------------------------
# on NODE COMMAND ARG...: runs COMMAND (sql, sqlf, psql_, ...) against cluster NODE.
on() {
    local NODE=$1
    shift
    "$@"
}
# pg_client PROGRAM ARG...: PostgreSQL client PROGRAM (pg_dump, pgbench, ...) of the
# private copy, connected to cluster $NODE as postgres.
pg_client() {
    "$PGBIN/$1" -h "$WORK" -p "${PORTS[$NODE]}" -U postgres "${@:2}"
}
# psql_ ARG...: psql, quiet, tuples only, unaligned (fields separated by a space), stops
# at the first error, shows warnings and errors only.
psql_() {
    PGOPTIONS="-c client_min_messages=warning" \
        "$PGBIN/psql" -X -q -At -F ' ' -v ON_ERROR_STOP=1 -h "$WORK" -p "${PORTS[$NODE]}" -U postgres "$@"
}
sql() { psql_ -d "$1" -c "$2"; }     # sql DB STATEMENTS: prints the last one's rows
sqlf() { psql_ -d "$1"; }            # sqlf DB: statements on stdin
# ms DB STATEMENT: milliseconds of STATEMENT, measured inside the server (bench.ms).
ms() { sql "$1" "SELECT bench.ms(\$bq\$ $2 \$bq\$)"; }
# ms_wall DB STATEMENT: ms DB STATEMENT into MS_IN (inside the server), and into WALL_MS
# the client's wall-clock time of that session (connection and commit included).
ms_wall() {
    local t0
    t0=$(now)
    MS_IN=$(ms "$1" "$2")
    WALL_MS=$(since_ms "$t0")
}

# bench_schema DB: creates schema bench in DB (template1: every new database inherits
# it) with bench.ms(stmt) and bench.rows(lo, hi), then runs the script's own SQL from
# stdin (its own bench.* functions; function bodies are not checked: vc exists only
# where pgvc is created).
bench_schema() {
    {
        cat <<'EOF'
CREATE SCHEMA bench;
-- Milliseconds one statement takes, measured inside the server: no client round trip,
-- and not the transaction's commit (WAL flush), the same for baseline and pgvc.
CREATE FUNCTION bench.ms(stmt text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE stmt;
    RETURN round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
END $$;
-- Rows of the benchmark table shape, ids lo..hi, realistic values.
CREATE FUNCTION bench.rows(lo int, hi int)
RETURNS TABLE (id int, name text, price numeric(10,2), ts timestamptz) LANGUAGE sql AS $$
    SELECT g, md5(g::text), ((g::bigint * 7919) % 1000000) / 100.0,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds'
    FROM generate_series(lo, hi) g
$$;
SET check_function_bodies = off;
EOF
        cat
    } | sqlf "$1"
}

# new_db DB [plain]: a fresh database DB, with pgvc created unless "plain".
new_db() {
    sql postgres "DROP DATABASE IF EXISTS $1"
    sql postgres "CREATE DATABASE $1"
    [[ ${2:-} == plain ]] || sql "$1" "CREATE EXTENSION pgvc"
}
# new_table DB TABLE N [SQL]: the benchmark table shape with ids 1..N, vacuumed, then SQL,
# all in one session.
new_table() {
    sqlf "$1" <<EOF
CREATE TABLE $2 (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz);
INSERT INTO $2 SELECT * FROM bench.rows(1, $3);
VACUUM ANALYZE $2;
${4:-}
EOF
}
# new_tracked DB N: table t as new_table, tracked, with its first commit done.
new_tracked() { new_table "$1" t "$2" "SELECT vc.track('t'); SELECT vc.commit('load t');" >/dev/null; }
# vacuum_tracked DB [TABLE]: VACUUM TABLE (default t; "" for the whole database) and
# pgvc's key logs, so that dead rows left by earlier steps (a commit empties the key log
# with a DELETE) do not weigh on the next.
vacuum_tracked() {
    sqlf "$1" >/dev/null <<EOF
VACUUM ${2-t};
SELECT format('VACUUM vc.%I', log_table) FROM vc.tracked \gexec
EOF
}
# touch_rows DB CONDITION: the UPDATE used everywhere, of the rows of t matching CONDITION.
touch_rows() { sql "$1" "UPDATE t SET price = price + 1, ts = ts + interval '1 hour' WHERE $2" >/dev/null; }

# Quiesce before a timed step: dirty pages of earlier steps written out (sync, and a
# CHECKPOINT on every running cluster), so neither side of a comparison pays for the
# other's writes.
settle() {
    sync
    local n
    for n in "${NODES[@]}"; do
        [[ -f $WORK/$n/postmaster.pid ]] && on "$n" sql postgres "CHECKPOINT"
    done
    return 0
}

# ---------------------------------------------------------------------------------------
# Long-lived sessions: psql fed through a FIFO (no process, no connection per statement)
# ---------------------------------------------------------------------------------------
# session_open NAME NODE DB: a psql session on cluster NODE, database DB, in the
# background (its error output in $WORK/NAME.err). q NAME SQL: sends SQL, which must
# print exactly one line, and reads that line into REPLY.
declare -A SW=() SR=()
session_open() {
    local name=$1 n=$2 db=$3 w r
    mkfifo "$WORK/$name.in" "$WORK/$name.out"
    on "$n" psql_ -d "$db" <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    BG_PIDS+=($!)
    exec {w}>"$WORK/$name.in"
    exec {r}<"$WORK/$name.out"
    SW[$name]=$w SR[$name]=$r
}
q() {
    printf '%s\n' "$2" >&"${SW[$1]}"
    IFS= read -r REPLY <&"${SR[$1]}" || { echo "$NAME: session $1 ended (after: $2)" >&2; exit 1; }
}
# us: US, microseconds since the epoch (bash's clock, no fork). dms A B: milliseconds
# from microsecond time A to B, 1 decimal.
us() { US=${EPOCHREALTIME//[!0-9]/}; }
dms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1000}'; }

# ---------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------
# mem_reset, then mem_sample PID at each sample: reads RssAnon and VmHWM (kB) from
# /proc/PID/status into MEM_IDLE (the first sample), MEM_PEAK (highest RssAnon), MEM_HWM
# (highest VmHWM) and MEM_SAMPLES. mem_sample fails when the file cannot be read.
# RssAnon is private memory (palloc and Rust heap); VmHWM, the kernel's peak resident
# set, also counts the shared_buffers pages the process touched.
mem_reset() { MEM_IDLE="" MEM_PEAK=0 MEM_HWM=0 MEM_SAMPLES=0; }
mem_sample() {
    local key val _ anon="" hwm=""
    while read -r key val _; do
        case $key in
        RssAnon:) anon=$val ;;
        VmHWM:) hwm=$val ;;
        esac
    done </proc/"$1"/status 2>/dev/null || return 1
    if [[ -n $anon ]]; then
        MEM_SAMPLES=$((MEM_SAMPLES + 1))
        [[ -z $MEM_IDLE ]] && MEM_IDLE=$anon
        ((anon > MEM_PEAK)) && MEM_PEAK=$anon
        ((hwm > MEM_HWM)) && MEM_HWM=$hwm
    fi
    return 0
}

# measure_memory DB STATEMENT: runs STATEMENT (a SELECT of one row) in a fresh session
# (0.3 s idle before and after) while sampling the backend's /proc/<pid>/status every
# 50 ms. Prints "peak_RssAnon_kB VmHWM_kB idle_RssAnon_kB <the statement's row>".
measure_memory() {
    local db=$1 stmt=$2 pidfile=$WORK/mem.pid out=$WORK/mem.out client pid
    rm -f "$pidfile"
    psql_ -d "$db" >"$out" <<EOF &
\o $pidfile
SELECT pg_backend_pid();
\o
SELECT pg_sleep(0.3);
$stmt;
SELECT pg_sleep(0.3);
EOF
    client=$!
    while [[ ! -s $pidfile ]] && kill -0 "$client" 2>/dev/null; do sleep 0.01; done
    pid=$(<"$pidfile")
    mem_reset
    while kill -0 "$client" 2>/dev/null && [[ -r /proc/$pid/status ]]; do
        mem_sample "$pid" || true
        sleep 0.05
    done
    wait "$client"
    echo "$MEM_PEAK $MEM_HWM $MEM_IDLE $(grep -v '^$' "$out" | head -1)"
}
# measure_memory_ms DB STATEMENT: measure_memory of STATEMENT timed by bench.ms(); prints
# "ms peak_RssAnon_kB VmHWM_kB idle_RssAnon_kB".
measure_memory_ms() {
    local m
    m=($(measure_memory "$1" "SELECT bench.ms(\$bq\$ $2 \$bq\$)"))
    echo "${m[3]} ${m[0]} ${m[1]} ${m[2]}"
}
# rss_anon PID: RssAnon (kB) of process PID, now; fails when it cannot be read (the
# process is gone). For sampling several processes side by side (mem_sample keeps one
# process's figures). Read in one go, and again (up to 3 times) when the line is not
# there: a sample of a live backend once came back without it (cause not found).
rss_anon() {
    local s i
    for i in 1 2 3; do
        { s=$(<"/proc/$1/status"); } 2>/dev/null || return 1
        [[ $s =~ RssAnon:[[:space:]]*([0-9]+) ]] && { echo "${BASH_REMATCH[1]}"; return 0; }
    done
    return 1
}
# cpu_ticks PID: CPU time process PID has used so far (user + system, clock ticks: 100
# a second); fails when it is gone. cpu_busy: "busy total" ticks of all CPUs since boot
# (/proc/stat; busy: all but idle and iowait), for the machine's load between samples.
cpu_ticks() {
    local s f
    { s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
    f=(${s##*) })    # the fields after the command name (which may hold spaces)
    echo $((f[11] + f[12]))
}
cpu_busy() {
    local _ user nice system idle iowait irq softirq steal
    read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# ---------------------------------------------------------------------------------------
# Remotes and backups: pack files (DIR/packs/*.pack, *.idx)
# ---------------------------------------------------------------------------------------
# idx_chunks DIR: chunks listed by the idx files under DIR/packs (an idx is a 12-byte
# header, 44 bytes per chunk and a 40-byte trailer).
idx_chunks() { find "$1/packs" -name '*.idx' -printf '%s\n' | awk '{n += ($1 - 52) / 44} END {printf "%d", n}'; }
# new_pack_bytes DIR BEFORE: "pack_bytes idx_bytes packs" of the files under DIR/packs
# that BEFORE (`ls DIR/packs`, taken earlier) did not list (st_size).
new_pack_bytes() {
    local new f pack=0 idx=0 packs=0
    new=$(comm -13 <(echo "$2") <(ls "$1/packs"))
    for f in $new; do
        case $f in
        *.pack) pack=$((pack + $(stat -c %s "$1/packs/$f"))) packs=$((packs + 1)) ;;
        *.idx) idx=$((idx + $(stat -c %s "$1/packs/$f"))) ;;
        esac
    done
    echo "$pack $idx $packs"
}

# ---------------------------------------------------------------------------------------
# S3: a local S3-compatible server (moto, installed by scripts/setup.sh)
# ---------------------------------------------------------------------------------------
# The servers' credentials (moto takes any): superuser-only settings, as an operator
# would set them.
S3_CONF=("vc.s3_access_key_id = 'bench'" "vc.s3_secret_access_key = 'bench-secret'")
# moto_start BUCKET...: moto on a free loopback port, one line per request in
# $WORK/moto.log; sets MOTO_PORT, MOTO_ENDPOINT, MOTO_PID; creates the BUCKETs.
moto_start() {
    local bin=${PGVC_MOTO_SERVER:-/opt/pgvc-moto/bin/moto_server} b i
    [[ -x $bin ]] || { echo "$NAME: $bin missing; run scripts/setup.sh" >&2; exit 1; }
    MOTO_PORT=$(free_port 47000)
    "$bin" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    BG_PIDS+=($!)
    for ((i = 0; i < 300; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break
        sleep 0.1
    done
    MOTO_ENDPOINT=http://127.0.0.1:$MOTO_PORT
    for b in "$@"; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$MOTO_PORT"
        printf 'PUT /%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$b" "$MOTO_PORT" >&$fd
        head -1 <&$fd | grep -q ' 200 ' || { echo "$NAME: could not create bucket $b on moto" >&2; exit 1; }
        exec {fd}<&-
    done
}
# s3_url BUCKET PREFIX [ENDPOINT]: the s3:// URL of PREFIX in BUCKET on moto (or ENDPOINT).
s3_url() { echo "s3://$1/$2?endpoint=${3:-$MOTO_ENDPOINT}&region=us-east-1&force_path_style=true"; }
# moto_requests [STATUS]: requests moto has answered so far (with that HTTP status).
moto_requests() { grep -c "HTTP/1.1.\{0,8\}\" ${1:-[0-9]}" "$WORK/moto.log" || true; }
# counting_proxy: starts benches/tcpcount.py in front of moto; sets PROXY_ENDPOINT and
# PROXY_STATS (a file holding "request_bytes response_bytes connections").
counting_proxy() {
    local port i
    port=$(free_port 48000)
    PROXY_STATS=$WORK/proxy.stats
    local py=/opt/pgvc-moto/bin/python
    [[ -x $py ]] || py=python3
    "$py" "$ROOT/benches/tcpcount.py" "$port" "$MOTO_PORT" "$PROXY_STATS" 2>"$WORK/proxy.err" &
    BG_PIDS+=($!)
    for ((i = 0; i < 300; i++)); do [[ -s $PROXY_STATS ]] && break; sleep 0.1; done
    [[ -s $PROXY_STATS ]] || { echo "$NAME: the counting proxy did not start:" >&2; cat "$WORK/proxy.err" >&2; exit 1; }
    PROXY_ENDPOINT=http://127.0.0.1:$port
}
# proxy_bytes: "request_bytes response_bytes" through the counting proxy so far (after
# letting its last write land).
proxy_bytes() { sleep 0.1; awk '{print $1, $2}' "$PROXY_STATS"; }

# ---------------------------------------------------------------------------------------
# Results: one summary row per figure, plus a Markdown section per benchmark.
# ---------------------------------------------------------------------------------------
# section N: the current benchmark's section: its Markdown ($SECTION, for md) and its
# summary rows ($RESULTS.N, for result), both emptied.
section() { SECTION_NO=$1 SECTION=$WORK/section.$1.md; : >"$SECTION"; : >"$RESULTS.$1"; }
# md LINE...: appends lines to the current section.
md() { printf '%s\n' "$@" >>"$SECTION"; }
# result ID BENCHMARK GOAL BASELINE MEASURED RATIO VERDICT: a summary row of the current
# section; also printed (BENCHMARK RATIO VERDICT, BENCHMARK RESULT_WIDTH wide).
result() {
    local IFS=$'\t'
    echo "$*" >>"$RESULTS.$SECTION_NO"
    printf "  %-${RESULT_WIDTH}s %-8s %s\n" "$2" "$6" "$7" >&2
}
# collect_results: $RESULTS, the summary rows of the sections in section order.
collect_results() { cat "$RESULTS".[1-9] >"$RESULTS" 2>/dev/null || true; }
# explain ID:VERDICT...: one Markdown line per known cause (cause ID, defined by the
# script) of the MISSes among the given results (ids sharing a cause are listed
# together), and one per unexplained MISS ($UNEXPLAINED).
explain() {
    local e id text order=()
    declare -A ids=()
    for e in "$@"; do
        [[ ${e##*:} == MISS ]] || continue
        id=${e%:*}
        text=$(cause "$id")
        text=${text:-$UNEXPLAINED}
        [[ -z ${ids[$text]:-} ]] && order+=("$text")
        ids[$text]+="${ids[$text]:+, }\`$id\`"
    done
    for text in "${order[@]}"; do md "- **MISS ${ids[$text]}**: $text"; done
    ((${#order[@]} == 0)) || md ""
}

# ---------------------------------------------------------------------------------------
# Report (the script's write_report prints it to $OUT with these)
# ---------------------------------------------------------------------------------------
# rev_at_start: REV, with a note when the work tree had changes in src/ (DIRTY).
rev_at_start() {
    if ((DIRTY)); then echo "$REV (the work tree had uncommitted changes in src/ at the start)"; else echo "$REV"; fi
}
# report_command: the Command line: how the script was run.
report_command() { echo "- **Command**: \`${REMOTE_KIND:+REMOTE_KIND=$REMOTE_KIND }benches/$NAME${ARGS:+ $ARGS}\`"; }
# report_run [MODE]: the Run line: MODE (default "full run") or, with --quick, a warning
# that this is a smoke run; the start and the minutes the run took.
report_run() {
    local mode=${1:-full run}
    ((QUICK)) && mode="QUICK SMOKE RUN (\`benches/$NAME --quick\`: small sizes, not the figures of record)"
    echo "- **Run**: $mode, $START_DATE, took $(((SECONDS + 59) / 60)) min"
}
# report_machine [TEXT]: the Machine line; TEXT (e.g. "remotes on ...; ") goes before
# "shared with other work".
report_machine() {
    echo "- **Machine**: $(nproc) CPUs ($(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), Linux $(uname -r); ${1:-}shared with other work (load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg))"
}
# fs_of DIR: the type and device of the filesystem DIR is on.
fs_of() { df -T "$1" | awk 'NR == 2 {print $2 " (" $1 ")"}'; }
# report_summary N...: the Summary table ($RESULTS), then the sections N..., those that
# ran.
report_summary() {
    echo "## Summary"
    echo
    echo "| id | benchmark | goal | baseline | measured | ratio | result |"
    echo "|---|---|---|---:|---:|---:|---|"
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$RESULTS"
    echo
    local s
    for s in "$@"; do
        if [[ -f $WORK/section.$s.md ]]; then cat "$WORK/section.$s.md"; fi
    done
}
# report_investigate [PERF_NOTE]: the section How to investigate a MISS (of a backend);
# PERF_NOTE follows the perf report command.
report_investigate() {
    cat <<EOF
## How to investigate a MISS

- CPU: start the statement in one session, find its backend
  (\`SELECT pid FROM pg_stat_activity WHERE ...\`), then \`perf record -g -p <pid> -- sleep 10\`
  and \`perf report --children --sort symbol\`${1:-}.
- Memory: \`SELECT pg_log_backend_memory_contexts(<pid>)\` while it runs writes the backend's
  memory contexts to the server log; \`benches/$NAME --keep\` keeps the log.
EOF
}

# print_summary ID_WIDTH BENCHMARK_WIDTH MEASURED_WIDTH: the summary rows on stdout, and
# where the report went.
print_summary() {
    local f="%-$1s %-$2s %-10s %12s %$3s %7s %s\n"
    echo
    awk -F'\t' -v f="$f" 'BEGIN {printf f, "id", "benchmark", "goal", "baseline", "measured", "ratio", "result"}
        {printf f, $1, $2, $3, $4, $5, $6, $7}' "$RESULTS"
    echo
    echo "report: $OUT"
}
