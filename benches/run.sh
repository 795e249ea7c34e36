#!/usr/bin/env bash
# pgvc benchmark suite: `make bench` (installs the release build first), or
#
#   benches/run.sh [--quick] [--only 1,2,...] [--out FILE] [--keep]
#
#   --quick   small sizes and short pgbench runs: a smoke test of the suite (~2 min);
#             writes its report to /tmp/pgvc-bench-quick.md unless --out is given
#   --only    run only these benchmarks (numbers as in the list below)
#   --out     where to write the Markdown report (default docs/BENCHMARKS.md)
#   --keep    keep the throwaway cluster's directory (data, server log) after exit
#
# Benchmarks (the goals come from the project's issue):
#   1 commit scaling          vc.commit() of k changed rows, N = 10^4 vs 10^6
#   2 first commit            first vc.commit() of 10^6 rows vs COPY of the same rows
#   3 tracking overhead       pgbench single-row INSERT/UPDATE TPS, bulk INSERT/UPDATE time
#   4 storage                 bytes of new chunks per commit of k changed rows
#   5 memory                  peak backend memory of a first commit and of vc.reset
#   6 status and diff         vc.status() / vc.diff('HEAD') with 1000 pending changes
#
# The machine is shared and noisy, so every figure that has a goal is a RATIO against
# a baseline measured in the same run, and times are taken inside the server
# (clock_timestamp() around the statement, in bench.ms()), not by the client.
#
# The suite runs on a private copy of the installed PostgreSQL 15 + pgvc (taken at
# start), in a throwaway cluster (initdb into a mktemp dir, Unix socket only), so a
# concurrent reinstall of pgvc.so (e.g. another engineer's `cargo pgrx test`, which
# installs a debug build in place) can neither crash it nor change what is measured.
set -euo pipefail

NAME=run.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The harness: cluster, SQL, memory, results and report helpers shared by the scripts.
. "$ROOT/benches/lib.sh"
parse_args 2,22 "1,2,3,4,5,6" "$@"
RESULT_WIDTH=60
UNEXPLAINED="not yet explained: profile it (see How to investigate below)."

# ---------------------------------------------------------------------------------------
# Sizes. Default: the issue's sizes. --quick: about 10x smaller, same shapes.
# ---------------------------------------------------------------------------------------
RUNS=3                       # runs per figure; the median is reported
FIRST_RUNS=5                 # benchmark 2: a first commit of 10^6 rows takes ~3 s
CHEAP_RUNS=5                 # for figures of a few ms, where one noisy run weighs more
if ((QUICK)); then
    N_SMALL=1000 N_LARGE=100000 COMMIT_KS="1 100 10000" CONTIG_K=100
    FIRST_N=100000
    TPS_PREFILL=10000 TPS_SECONDS=2 BULK_INSERT=100000 BULK_UPDATE=10000
    STORE_N=100000
    MEM_NS="20000 100000" MEM_CHANGED=10000
    STATUS_CHANGES=100
    OUT=${OUT:-/tmp/pgvc-bench-quick.md}
else
    N_SMALL=10000 N_LARGE=1000000 COMMIT_KS="1 1000 100000" CONTIG_K=1000
    FIRST_N=1000000
    TPS_PREFILL=100000 TPS_SECONDS=15 BULK_INSERT=1000000 BULK_UPDATE=100000
    STORE_N=1000000
    MEM_NS="200000 1000000" MEM_CHANGED=100000
    STATUS_CHANGES=1000
    OUT=${OUT:-$ROOT/docs/BENCHMARKS.md}
fi

# ---------------------------------------------------------------------------------------
# Known causes of MISSes, found by profiling pgvc bc79e25..e2520e7 (2026-11-26) with
# `perf record -g -p <backend pid>`, gdb and pg_log_backend_memory_contexts(). Printed
# under a MISS whose id matches the pattern. Re-check them when pgvc changes; a MISS
# that matches nothing is reported as unexplained.
# ---------------------------------------------------------------------------------------
cause() {
    case $1 in
    1.*c | 6.*.contiguous) ;; # not expected to miss: investigate
    1.k1)
        echo "Fixed per-call costs dominate (a fresh session prepares pgvc's statements and reads the root and the path cold); a tree one level deeper adds one node read/write per level." ;;
    1.k*)
        echo "Spread changes touch min(k, number of leaves) leaves: at the small N the k rows share the table's few leaves, at the large N nearly every changed row has a leaf of its own (see the new chunks columns). A commit reads, re-encodes, hashes and writes every touched node (~4 KiB each since the size-dependent cut rule, stored through TOAST in vc.chunks), so its time follows the nodes touched, not k alone: at 10^6 rows the k=1000 commit writes ~1,250 nodes (1,000 leaves and every level-1 node), at 10^4 it rewrites the whole table's ~270 nodes, 4.6 times fewer. perf of the 10^6 commit (2026-12-07) is flat, all PostgreSQL machinery: index scans of vc.chunks and of the table (~17%), memmove (~7%), BLAKE3 (~8%), planning of per-call plans (~6%), malloc, lz4. Contiguous changes touch the same number of nodes at both sizes and meet the goal: the cost per node is flat." ;;
    6.*)
        echo "As for commits of spread changes: vc.status()/vc.diff() look up the committed value of each changed key (prolly::Lookup), reading every leaf that holds one: min(k, number of leaves) leaves, each fetched by SPI from vc.chunks (index scan + TOAST fetch + lz4 decompression + BLAKE3 verification) in a fresh session. The contiguous variant touches few leaves at both sizes." ;;
    2)
        echo "perf of the first commit of 10^6 rows (flat profile): the work is CPU-bound and per row: every column is turned into text by its output function (SPI_getvalue) and copied into a Rust String (UTF-8 checked), MessagePack-encoded, then every ~4.6 KiB node is BLAKE3-hashed (~5%), lz4-compressed (~4%) and written through TOAST into vc.chunks; malloc/free churn is ~15% of samples, and first-touch page faults of memory that grows with the table (see 5. Memory) up to ~14%." ;;
    3.tps.*)
        echo "Since afa54e3 the key log is filled by native code (src/pg/keylog.rs): no PL/pgSQL, no executor start-up, no SPI. perf of one client inserting with synchronous_commit=off (2026-12-06): pgvc's trigger is ~0.7% of the backend's CPU, and the write guard's BEFORE STATEMENT trigger ~0.8%. The rest of the difference is PostgreSQL's own work for any statement trigger with a transition table: capturing the new rows in a tuplestore, the after-trigger queue, and the key log's heap insert and WAL record (~1.7%). At this level the figure is noisy: the 2 pgbench clients, their 2 backends and pgbench itself share 2 cores." ;;
    3.bulk.insert)
        echo "perf of a tracked INSERT ... SELECT of 10^6 rows: capturing the transition table copies every new row, all columns, into a tuplestore that spills to a temporary file beyond work_mem (tuplestore_puttupleslot, ~0.3 s), then the trigger's INSERT ... SELECT writes 10^6 keys into the WAL-logged key log (AfterTriggerEndQuery, ~0.7 s): about +50% on a plain INSERT into a table with a primary key." ;;
    3.bulk.update)
        echo "Since afa54e3 an UPDATE logs each key once unless the statement changed it (native code, src/pg/keylog.rs): 10^5 keys, not 2x10^5. What is left is PostgreSQL's capture of both transition tables (old and new rows, whole rows, spilling to a temporary file beyond work_mem) and a heap insert with its WAL record per key into the key log." ;;
    4.k1)
        echo "The budget assumes a 4 KiB node per level; the node that holds a given row is size-biased (E[S^2]/E[S], the size-biased column above). Since the size-dependent (Weibull) cut rule that is ~4 KiB at every level, so a one-row change rewrites one path of ~4 KiB nodes plus the root value and commit." ;;
    4.k1000)
        echo "The budget is one root-to-leaf path, but k=1000 changes spread over the table touch about 1000 different leaves (and most level-1 nodes), and a prolly tree, like a B-tree, rewrites every touched node whole. Since the size-dependent cut rule (2026-12-07) the leaf holding a given row averages ~4 KiB (it was ~7.6 KiB), and every one of the ~250 level-1 nodes (~3.9 KiB each) is rewritten too, ~1 KiB per changed row at k=1000: ~4.9 KB per changed row in all (8.4 KB before), 3.6 KB as stored (lz4). Clustered changes (the contiguous row) share leaves and stay within the budget." ;;
    5.*)
        echo "Bounded caches filling, not a leak: the peak stays far under 256 MB (47 MB at 10^6 rows). The per-backend chunk read cache (32 MB, cleared when full) and the chunk write buffer (2 MB) fill as more chunks pass through; the chunks of a 2x10^5-row table total ~16 MB, so there the cache never fills. Since 543706a every SPI call returns into pgvc's per-statement memory context (SPI_execute_*/SPI_cursor_fetch leave the SPI procedure context current, which kept every detoasted chunk until the function returned: 190 MB in a reset before the fix, 50 MB now)." ;;
    esac
}

# ---------------------------------------------------------------------------------------
# Throwaway cluster on a private copy of PostgreSQL 15 + pgvc (benches/lib.sh).
# ---------------------------------------------------------------------------------------
make_work pgvc-bench

start_cluster() {
    # The tracking-overhead database is the one pgvc's worker serves: its tracked tables
    # carry the replication write guard there, the worst case measured.
    cluster_start data 55000 "vc.database = 'overhead'"
    # Helpers every benchmark database inherits from template1 (with bench.ms, bench.rows).
    bench_schema template1 <<'EOF'
-- Totals of the chunk store: count, encoded bytes (length), stored bytes (after lz4).
CREATE FUNCTION bench.chunks() RETURNS TABLE (n bigint, bytes bigint, stored bigint)
LANGUAGE sql AS $$
    SELECT count(*), coalesce(sum(length(data)), 0), coalesce(sum(pg_column_size(data)), 0)
    FROM vc.chunks
$$;
EOF
}

# Condition selecting k rows spread evenly over ids 1..n.
spread() { echo "id % $(($1 / $2)) = 0"; }
# changed PATTERN N K: condition selecting K of the ids 1..N, spread evenly or contiguous
# (from the middle on).
changed() {
    if [[ $1 == spread ]]; then
        spread "$2" "$3"
    else
        echo "id BETWEEN $(($2 / 2 + 1)) AND $(($2 / 2 + $3))"
    fi
}

# ---------------------------------------------------------------------------------------
# 1. Commit scaling: vc.commit() of k changed rows must cost what changed, not N.
# ---------------------------------------------------------------------------------------
bench_commit_scaling() {
    log "1. commit scaling (N = $N_SMALL, $N_LARGE; k = $COMMIT_KS; contiguous k = $CONTIG_K)"
    section 1
    local n k r cond t id cases=() before after
    for k in $COMMIT_KS; do cases+=("k$k:$k:spread"); done
    cases+=("k${CONTIG_K}c:$CONTIG_K:contiguous")
    declare -A med=() chunks=()
    # Both tables exist side by side and runs alternate between them, so that a change
    # in the machine's load weighs on both sides of a ratio alike.
    for n in $N_SMALL $N_LARGE; do
        new_db commit_$n
        new_tracked commit_$n "$n"
    done
    local c
    for c in "${cases[@]}"; do
        IFS=: read -r id k pattern <<<"$c"
        declare -A times=()
        for ((r = 1; r <= CHEAP_RUNS; r++)); do
            for n in $N_SMALL $N_LARGE; do
                ((k > n)) && continue
                cond=$(changed "$pattern" "$n" "$k")
                touch_rows commit_$n "$cond"
                vacuum_tracked commit_$n
                before=$(sql commit_$n "SELECT n FROM bench.chunks()")
                times[$n]+=" $(ms commit_$n "SELECT vc.commit('$id run $r')")"
                after=$(sql commit_$n "SELECT n FROM bench.chunks()")
                chunks[$n.$id]=$((after - before))
            done
        done
        for n in $N_SMALL $N_LARGE; do
            [[ -n ${times[$n]:-} ]] || continue
            # shellcheck disable=SC2086
            med[$n.$id]=$(median ${times[$n]})
            log "   N=$n k=$k $pattern:${times[$n]} ms, ${chunks[$n.$id]} new chunks"
        done
        unset times
    done
    for n in $N_SMALL $N_LARGE; do sql postgres "DROP DATABASE commit_$n"; done
    md "## 1. Commit scaling" "" \
        "UPDATE of k rows of an N-row tracked table, spread evenly (\`WHERE id % (N/k) = 0\`) or" \
        "contiguous (k consecutive ids, an extra case), then \`SELECT vc.commit(...)\`; only the" \
        "commit is timed, each in a fresh session (so it includes preparing pgvc's statements and" \
        "reading tree nodes cold; table and key log vacuumed before). Median of $CHEAP_RUNS runs," \
        "alternating between the two tables." \
        "New chunks: chunks the commit added to" \
        "\`vc.chunks\` (tree nodes + root value + commit), i.e. the nodes it rewrote." \
        "**Goal**: time depends on k, not N: time(N=$N_LARGE) / time(N=$N_SMALL) <= 1.5 at equal k." "" \
        "| k | changed rows | N = $N_SMALL (ms) | new chunks | N = $N_LARGE (ms) | new chunks | ratio | result |" \
        "|---:|---|---:|---:|---:|---:|---:|---|"
    local ids=() c
    for c in "${cases[@]}"; do
        IFS=: read -r id k pattern <<<"$c"
        local small=${med[$N_SMALL.$id]:-} large=${med[$N_LARGE.$id]} ratio v
        if [[ -z $small ]]; then
            md "| $k | $pattern | (k > N) | - | $large | ${chunks[$N_LARGE.$id]} | - | absolute only |"
            result "1.$id" "commit k=$k $pattern, N=$N_LARGE" "(k > N)" "-" "$large ms" "-" "info"
            continue
        fi
        ratio=$(calc "$large / $small")
        v=$(verdict "$ratio" "<=" 1.5)
        md "| $k | $pattern | $small | ${chunks[$N_SMALL.$id]} | $large | ${chunks[$N_LARGE.$id]} | $ratio | $v |"
        result "1.$id" "commit k=$k $pattern: N=$N_LARGE vs $N_SMALL" "<= 1.5" "$small ms" "$large ms" "$ratio" "$v"
        ids+=("1.$id:$v")
    done
    md ""
    explain "${ids[@]}"
}

# ---------------------------------------------------------------------------------------
# 2. First commit of a big table vs COPY of the same rows into a plain table.
# ---------------------------------------------------------------------------------------
bench_first_commit() {
    log "2. first commit of $FIRST_N rows vs COPY"
    section 2
    local file=$WORK/rows.copy r copy commit
    new_db first_src
    new_table first_src src "$FIRST_N"
    sql first_src "COPY src TO '$file'"
    sql postgres "DROP DATABASE first_src"
    local copies=() commits=()
    for ((r = 1; r <= FIRST_RUNS; r++)); do
        # A fresh database per run: an existing chunk store would turn the first
        # commit's chunk writes into ON CONFLICT no-ops.
        new_db first_$r
        sqlf first_$r >/dev/null <<EOF
CREATE TABLE plain (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz);
CREATE TABLE t (id int PRIMARY KEY, name text, price numeric(10,2), ts timestamptz);
COPY t FROM '$file';
VACUUM ANALYZE t;
SELECT vc.track('t');
CHECKPOINT;
EOF
        if ((r % 2)); then
            copy=$(ms first_$r "COPY plain FROM '$file'")
            sql first_$r "CHECKPOINT"
            commit=$(ms first_$r "SELECT vc.commit('first')")
        else
            commit=$(ms first_$r "SELECT vc.commit('first')")
            sql first_$r "CHECKPOINT"
            copy=$(ms first_$r "COPY plain FROM '$file'")
        fi
        copies+=("$copy") commits+=("$commit")
        log "   run $r: COPY $copy ms, first commit $commit ms"
        sql postgres "DROP DATABASE first_$r"
    done
    copy=$(median "${copies[@]}") commit=$(median "${commits[@]}")
    local ratio v
    ratio=$(paired_ratio "${copies[*]}" "${commits[*]}")
    v=$(verdict "$ratio" "<=" 1.5)
    md "## 2. First commit" "" \
        "A table of $FIRST_N rows (loaded, vacuumed, then \`vc.track\`ed) gets its first" \
        "\`vc.commit()\` (a full scan into a new prolly tree); baseline: \`COPY\` of the same rows," \
        "from a file written by \`COPY TO\`, into an empty plain table with the same primary key." \
        "CHECKPOINT before each timed statement. $FIRST_RUNS runs, each in a fresh database," \
        "alternating which goes first; medians of the times, and the median of the $FIRST_RUNS" \
        "per-run ratios. **Goal**: first commit / COPY <= 1.5." "" \
        "| COPY (ms) | first commit (ms) | ratio | result |" "|---:|---:|---:|---|" \
        "| $copy | $commit | $ratio | $v |" "" \
        "Runs: COPY ${copies[*]} ms; first commit ${commits[*]} ms." ""
    explain "2:$v"
    result 2 "first commit $FIRST_N rows vs COPY" "<= 1.5" "$copy ms" "$commit ms" "$ratio" "$v"
}

# ---------------------------------------------------------------------------------------
# 3. Tracking overhead on writes: pgbench TPS and bulk statements, tracked vs not.
# ---------------------------------------------------------------------------------------
# tps DB SCRIPT [PGOPTIONS]: pgbench's TPS (2 clients, 2 threads).
tps() {
    PGOPTIONS=${3:-} pg_client pgbench -n -c 2 -j 2 -T "$TPS_SECONDS" -f "$2" \
        "$1" 2>&1 | awk '/^tps = / {printf "%.0f", $3}'
}

bench_tracking_overhead() {
    log "3. tracking overhead (pgbench ${TPS_SECONDS}s x $RUNS rounds; bulk $BULK_INSERT / $BULK_UPDATE rows)"
    section 3
    local db=overhead r mode op tab
    new_db $db
    for tab in un tr; do
        new_table $db $tab "$TPS_PREFILL"
        sql $db "CREATE SEQUENCE ${tab}_ids START $((TPS_PREFILL * 100))"
        cat >"$WORK/insert_$tab.sql" <<EOF
INSERT INTO $tab VALUES (nextval('${tab}_ids'), md5(random()::text), (random() * 1000)::numeric(10,2), now());
EOF
        cat >"$WORK/update_$tab.sql" <<EOF
\set id random(1, $TPS_PREFILL)
UPDATE $tab SET price = price + 0.01, ts = now() WHERE id = :id;
EOF
    done
    sql $db "SELECT vc.track('tr')" >/dev/null
    sql $db "SELECT vc.commit('prefill')" >/dev/null
    declare -A runs=()
    for ((r = 1; r <= RUNS; r++)); do
        for mode in sync async; do
            local opts=""
            [[ $mode == async ]] && opts="-c synchronous_commit=off"
            for op in insert update; do
                local order="un tr"
                ((r % 2 == 0)) && order="tr un"
                for tab in $order; do
                    sql $db "CHECKPOINT"
                    runs[$mode.$op.$tab]+=" $(tps $db "$WORK/${op}_$tab.sql" "$opts")"
                done
                log "   round $r $mode $op: untracked ${runs[$mode.$op.un]##* } tps, tracked ${runs[$mode.$op.tr]##* } tps"
            done
        done
    done
    md "## 3. Tracking overhead" "" \
        "**Single-row statements**: \`pgbench -n -c 2 -j 2 -T $TPS_SECONDS -f script\`, one INSERT" \
        "(ids from a sequence) or one UPDATE (random id) per transaction, on a tracked and an" \
        "untracked table of the same shape pre-filled with $TPS_PREFILL rows; $RUNS interleaved" \
        "rounds (alternating which table goes first), CHECKPOINT before each run; medians of the" \
        "TPS, and the median of the per-round ratios (robust to load drifting between rounds)." \
        "Run twice: with the default" \
        "\`synchronous_commit = on\` (each transaction waits for a WAL fsync, ~0.13 ms on this disk," \
        "which hides part of the CPU cost) and with \`synchronous_commit = off\` (pure CPU cost)." \
        "The database is \`vc.database\`, served by pgvc's background worker, so the tracked" \
        "table also carries the replication write guard (a statement trigger)." \
        "**Goal**: tracked / untracked TPS >= 0.9." "" \
        "| statement | synchronous_commit | untracked TPS | tracked TPS | ratio | result |" \
        "|---|---|---:|---:|---:|---|"
    local ids=()
    for mode in sync async; do
        for op in insert update; do
            # shellcheck disable=SC2086
            local un tr ratio v setting=on
            un=$(median ${runs[$mode.$op.un]}) tr=$(median ${runs[$mode.$op.tr]})
            [[ $mode == async ]] && setting=off
            ratio=$(paired_ratio "${runs[$mode.$op.un]}" "${runs[$mode.$op.tr]}")
            v=$(verdict "$ratio" ">=" 0.9)
            md "| single-row $op | $setting | $un | $tr | $ratio | $v |"
            result "3.tps.$op.$mode" "single-row $op TPS (sync commit $setting)" ">= 0.9" "$un tps" "$tr tps" "$ratio" "$v"
            ids+=("3.tps.$op.$mode:$v")
        done
    done
    md "" "Runs (TPS, untracked / tracked):"
    for mode in sync async; do
        for op in insert update; do
            md "- $op, $mode:${runs[$mode.$op.un]} /${runs[$mode.$op.tr]}"
        done
    done
    md ""
    # The database stays: it is vc.database, and the worker is connected to it.

    # Bulk statements: a fresh pair of tables per round.
    local ins=() upd=()
    declare -A bulk=()
    for ((r = 1; r <= RUNS; r++)); do
        db=bulk_$r
        new_db $db
        for tab in un tr; do
            new_table $db $tab "$TPS_PREFILL"
        done
        sql $db "SELECT vc.track('tr')" >/dev/null
        sql $db "SELECT vc.commit('prefill')" >/dev/null
        local order="un tr"
        ((r % 2 == 0)) && order="tr un"
        for tab in $order; do
            sql $db "CHECKPOINT"
            bulk[ins.$tab]+=" $(ms $db "INSERT INTO $tab SELECT * FROM bench.rows($((TPS_PREFILL + 1)), $((TPS_PREFILL + BULK_INSERT)))")"
            sql $db "VACUUM ANALYZE $tab"
            sql $db "CHECKPOINT"
            bulk[upd.$tab]+=" $(ms $db "UPDATE $tab SET price = price + 1, ts = ts + interval '1 hour' WHERE $(spread $((TPS_PREFILL + BULK_INSERT)) "$BULK_UPDATE")")"
        done
        log "   bulk round $r: INSERT un/tr ${bulk[ins.un]##* } / ${bulk[ins.tr]##* } ms, UPDATE un/tr ${bulk[upd.un]##* } / ${bulk[upd.tr]##* } ms"
        sql postgres "DROP DATABASE $db"
    done
    md "**Bulk statements**: one \`INSERT ... SELECT\` of $BULK_INSERT rows into the table pre-filled" \
        "with $TPS_PREFILL rows, then one \`UPDATE\` of $BULK_UPDATE rows spread over it, on a tracked" \
        "and an untracked table (fresh pair per round, alternating which goes first; CHECKPOINT" \
        "before each statement). Medians of $RUNS rounds; ratio: median of the per-round ratios." \
        "**Goal**: tracked / untracked time <= 1.2 (issue 14; it was 1.3)." "" \
        "| statement | untracked (ms) | tracked (ms) | ratio | result |" "|---|---:|---:|---:|---|"
    for op in ins upd; do
        local un tr ratio v label
        # shellcheck disable=SC2086
        un=$(median ${bulk[$op.un]}) tr=$(median ${bulk[$op.tr]})
        ratio=$(paired_ratio "${bulk[$op.un]}" "${bulk[$op.tr]}")
        v=$(verdict "$ratio" "<=" 1.2)
        if [[ $op == ins ]]; then label="INSERT ... SELECT of $BULK_INSERT rows"; else label="UPDATE of $BULK_UPDATE rows"; fi
        md "| $label | $un | $tr | $ratio | $v |"
        local id=3.bulk.insert
        [[ $op == upd ]] && id=3.bulk.update
        result "$id" "bulk $label" "<= 1.2" "$un ms" "$tr ms" "$ratio" "$v"
        ids+=("$id:$v")
    done
    md "" "Runs (ms, untracked / tracked): INSERT${bulk[ins.un]} /${bulk[ins.tr]}; UPDATE${bulk[upd.un]} /${bulk[upd.tr]}." ""
    explain "${ids[@]}"
}

# ---------------------------------------------------------------------------------------
# 4. Storage: bytes of the chunks a commit adds.
# ---------------------------------------------------------------------------------------
bench_storage() {
    log "4. storage (N = $STORE_N)"
    section 4
    local db=storage n=$STORE_N depth
    new_db $db
    new_tracked $db "$n"
    # Node chunks are [kind 1 or 5][level]...: the root's level + 1 is the tree depth.
    depth=$(sql $db "SELECT max(get_byte(data, 1)) + 1 FROM vc.chunks WHERE get_byte(data, 0) IN (1, 5)")
    local sizes
    sizes=$(sql $db "SELECT '| ' || get_byte(data, 1) || ' | ' || count(*) || ' | ' || round(avg(length(data)))
                            || ' | ' || round(sum(length(data)::numeric ^ 2) / sum(length(data)))
                            || ' | ' || max(length(data)) || ' |'
                     FROM vc.chunks WHERE get_byte(data, 0) IN (1, 5) GROUP BY get_byte(data, 1) ORDER BY 1")
    md "## 4. Storage" "" \
        "A tracked table of $n rows (tree depth $depth: the highest node level + 1, read from the" \
        "node chunks); per case, an UPDATE of k rows and a commit. New bytes are exact:" \
        "\`sum(length(data))\` of \`vc.chunks\` after minus before (encoded bytes; on disk, lz4 column" \
        "compression makes them smaller: the stored column). The changed rows' encoded size is" \
        "estimated as \`sum(pg_column_size(t.*))\` of the changed rows (PostgreSQL's own row size, a" \
        "little above pgvc's MessagePack encoding). New chunks include the commit's root value and" \
        "commit object (2 chunks). **Goal**: new bytes <= 4 KiB x depth + 1.5 x changed rows' bytes." "" \
        "| case | new chunks | new bytes | stored | changed rows' bytes (est.) | budget | ratio | result |" \
        "|---|---:|---:|---:|---:|---:|---:|---|"
    local case id cond k before after est budget ratio v ids=() k1_note="" spread_bytes=0
    for case in "k1:1:id = $((n / 2))" "k1000:1000:$(spread "$n" 1000)" \
        "k1000c:1000:id BETWEEN $((n / 2 + 1)) AND $((n / 2 + 1000))"; do
        IFS=: read -r id k cond <<<"$case"
        before=$(sql $db "SELECT n || ' ' || bytes || ' ' || stored FROM bench.chunks()")
        touch_rows $db "$cond"
        est=$(sql $db "SELECT sum(pg_column_size(t.*)) FROM t WHERE $cond")
        sql $db "SELECT vc.commit('$id')" >/dev/null
        after=$(sql $db "SELECT n || ' ' || bytes || ' ' || stored FROM bench.chunks()")
        local b=($before) a=($after)
        local dn=$((a[0] - b[0])) db_=$((a[1] - b[1])) ds=$((a[2] - b[2]))
        budget=$(calc "4096 * $depth + 1.5 * $est" 0)
        ratio=$(calc "$db_ / $budget")
        v=$(verdict "$ratio" "<=" 1)
        local label="k=$k spread"
        [[ $id == k1 ]] && label="k=1"
        [[ $id == k1000c ]] && label="k=1000 contiguous (extra)"
        md "| $label | $dn | $db_ ($(human $db_)) | $ds | $est | $budget | $ratio | $v |"
        if [[ $id == k1000c ]]; then
            result "4.$id" "storage $label" "info" "$budget B" "$db_ B" "$ratio" "($v)"
        else
            result "4.$id" "storage $label, N=$n" "<= budget" "$budget B" "$db_ B" "$ratio" "$v"
            ids+=("4.$id:$v")
        fi
        [[ $id == k1 ]] && k1_note="For k=1: $dn new chunks = depth $depth (one node per level) + root value + commit."
        [[ $id == k1000 ]] && spread_bytes=$db_
    done
    md "" "$k1_note" "Per changed row, the spread k=1000 commit adds $(calc "$spread_bytes / 1000" 0) B;" \
        "clustered changes share leaves (last row)." "" \
        "Node sizes of the tree after its first commit (size-biased mean = sum(size^2) / sum(size)," \
        "the expected size of the node that holds a randomly chosen entry):" "" \
        "| level | nodes | mean bytes | size-biased mean | max bytes |" "|---:|---:|---:|---:|---:|" \
        "$sizes" ""
    explain "${ids[@]}"
    sql postgres "DROP DATABASE $db"
}

# ---------------------------------------------------------------------------------------
# 5. Memory: peak backend memory while one statement runs.
# ---------------------------------------------------------------------------------------
# measure_memory_ms (benches/lib.sh) samples the backend's /proc/<pid>/status every 50 ms
# while one statement runs in a fresh session: "ms peak_RssAnon_kB VmHWM_kB
# idle_RssAnon_kB". VmHWM counts the shared_buffers pages the backend touched, so
# RssAnon (private memory) is the figure that matters.
bench_memory() {
    log "5. memory (N = $MEM_NS; reset across $MEM_CHANGED changed rows)"
    section 5
    md "## 5. Memory" "" \
        "Peak memory of the backend while one statement runs, sampled every 50 ms from" \
        "\`/proc/<pg_backend_pid()>/status\` by a loop beside the session: \`RssAnon\` (private" \
        "memory: palloc and Rust heap) and \`VmHWM\` (the kernel's peak resident set, which also" \
        "counts the pages of the 1 GB shared_buffers the backend touched). (a) the first" \
        "\`vc.commit()\` of an N-row table; (b) \`vc.reset('HEAD~1')\` where HEAD changed $MEM_CHANGED rows" \
        "spread over the table. Fresh session each, one run each (large). **Goal**: peak RssAnon" \
        "<= 256 MB, independent of table size (we require ratio largest/smallest N <= 1.5)." "" \
        "| operation | N | time (ms) | idle RssAnon | peak RssAnon | peak VmHWM | result |" \
        "|---|---:|---:|---:|---:|---:|---|"
    local n op m ids=()
    declare -A peak=()
    for n in $MEM_NS; do
        local db=mem_$n
        new_db $db
        new_table $db t "$n"
        sql $db "SELECT vc.track('t')" >/dev/null
        for op in commit reset; do
            if [[ $op == commit ]]; then
                m=($(measure_memory_ms $db "SELECT vc.commit('first')"))
            else
                touch_rows $db "$(spread "$n" "$MEM_CHANGED")"
                sql $db "SELECT vc.commit('change $MEM_CHANGED rows')" >/dev/null
                m=($(measure_memory_ms $db "SELECT vc.reset('HEAD~1')"))
            fi
            peak[$op.$n]=${m[1]}
            local v label
            v=$(verdict "${m[1]}" "<=" $((256 * 1024)))
            if [[ $op == commit ]]; then label="first commit"; else label="reset across $MEM_CHANGED changed rows"; fi
            md "| $label | $n | ${m[0]} | $(human $((m[3] * 1024))) | $(human $((m[1] * 1024))) | $(human $((m[2] * 1024))) | $v |"
            log "   $label N=$n: ${m[0]} ms, peak RssAnon $((m[1] / 1024)) MB, VmHWM $((m[2] / 1024)) MB"
            result "5.$op.$n" "memory $label, N=$n" "<= 256 MB" "-" "$((m[1] / 1024)) MB" "-" "$v"
            ids+=("5.$op.$n:$v")
        done
        sql postgres "DROP DATABASE $db"
    done
    local ns=($MEM_NS)
    local lo=${ns[0]} hi=${ns[-1]}
    md "" "| operation | peak RssAnon N=$lo | peak RssAnon N=$hi | ratio | result |" "|---|---:|---:|---:|---|"
    for op in commit reset; do
        local ratio v label
        ratio=$(calc "${peak[$op.$hi]} / ${peak[$op.$lo]}")
        v=$(verdict "$ratio" "<=" 1.5)
        if [[ $op == commit ]]; then label="first commit"; else label="reset"; fi
        md "| $label | $(human $((peak[$op.$lo] * 1024))) | $(human $((peak[$op.$hi] * 1024))) | $ratio | $v |"
        result "5.$op.flat" "memory $label: N=$hi vs $lo" "<= 1.5" "$((peak[$op.$lo] / 1024)) MB" "$((peak[$op.$hi] / 1024)) MB" "$ratio" "$v"
        ids+=("5.$op.flat:$v")
    done
    md ""
    explain "${ids[@]}"
}

# ---------------------------------------------------------------------------------------
# 6. vc.status() and vc.diff('HEAD') with pending changes: cost of the changes, not N.
# ---------------------------------------------------------------------------------------
bench_status_diff() {
    log "6. status and diff ($STATUS_CHANGES pending changes; N = $N_SMALL, $N_LARGE)"
    section 6
    local n f r pattern cond stmt ids=()
    declare -A med=()
    for n in $N_SMALL $N_LARGE; do
        new_db status_$n
        new_tracked status_$n "$n"
    done
    for pattern in spread contiguous; do
        for n in $N_SMALL $N_LARGE; do
            cond=$(changed "$pattern" "$n" "$STATUS_CHANGES")
            touch_rows status_$n "$cond"
            vacuum_tracked status_$n
        done
        for f in status diff; do
            stmt="SELECT count(*) FROM vc.status()"
            [[ $f == diff ]] && stmt="SELECT count(*) FROM vc.diff('HEAD')"
            declare -A times=()
            for ((r = 1; r <= CHEAP_RUNS; r++)); do
                for n in $N_SMALL $N_LARGE; do times[$n]+=" $(ms status_$n "$stmt")"; done
            done
            for n in $N_SMALL $N_LARGE; do
                # shellcheck disable=SC2086
                med[$f.$pattern.$n]=$(median ${times[$n]})
                log "   $f $pattern N=$n:${times[$n]} ms"
            done
            unset times
        done
        for n in $N_SMALL $N_LARGE; do sql status_$n "SELECT vc.reset()" >/dev/null; done
    done
    for n in $N_SMALL $N_LARGE; do sql postgres "DROP DATABASE status_$n"; done
    md "## 6. Status and diff" "" \
        "$STATUS_CHANGES rows changed and not committed in an N-row tracked table, spread evenly over" \
        "it or contiguous (extra case); time of \`SELECT count(*) FROM vc.status()\` and" \
        "\`SELECT count(*) FROM vc.diff('HEAD')\`, fresh session each, median of $CHEAP_RUNS runs" \
        "alternating between the two tables." \
        "**Goal** (as for commits): time(N=$N_LARGE) / time(N=$N_SMALL) <= 1.5." "" \
        "| function | changed rows | N = $N_SMALL (ms) | N = $N_LARGE (ms) | ratio | result |" \
        "|---|---|---:|---:|---:|---|"
    for pattern in spread contiguous; do
        for f in status diff; do
            local ratio v id=6.$f
            [[ $pattern == contiguous ]] && id=6.$f.contiguous
            ratio=$(calc "${med[$f.$pattern.$N_LARGE]} / ${med[$f.$pattern.$N_SMALL]}")
            v=$(verdict "$ratio" "<=" 1.5)
            md "| vc.$f | $STATUS_CHANGES $pattern | ${med[$f.$pattern.$N_SMALL]} | ${med[$f.$pattern.$N_LARGE]} | $ratio | $v |"
            result "$id" "vc.$f(), $STATUS_CHANGES $pattern: N=$N_LARGE vs $N_SMALL" "<= 1.5" \
                "${med[$f.$pattern.$N_SMALL]} ms" "${med[$f.$pattern.$N_LARGE]} ms" "$ratio" "$v"
            ids+=("$id:$v")
        done
    done
    md ""
    explain "${ids[@]}"
}

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
write_report() {
    local rev dirty
    rev=$(git_rev)
    dirty=$(git_dirty)
    ((dirty)) && rev="$rev + uncommitted changes in src/"
    {
        echo "# pgvc benchmarks"
        echo
        echo "Written by \`benches/run.sh\`; do not edit by hand. Reproduce with \`make bench\`"
        echo "(\`benches/run.sh --quick\` for a smoke run)."
        echo
        echo "Commits, tracking, storage and memory are here. Remotes (push, clone), backups and"
        echo "replication (lag, apply against logical replication, push overhead, the standby's"
        echo "memory) are in \`docs/BENCHMARKS_REMOTES.md\`, \`docs/BENCHMARKS_BACKUPS.md\` and"
        echo "\`docs/BENCHMARKS_REPLICATION.md\`; the storage lifecycle (a 10,000-commit soak, gc, compaction)"
        echo "in \`docs/BENCHMARKS_STORAGE.md\`; schema changes (commit and standby apply after"
        echo "\`ADD COLUMN\`, \`ALTER COLUMN TYPE\`) in \`docs/BENCHMARKS_SCHEMA.md\`; \`s3://\` remotes (push and"
        echo "clone against \`file://\`, requests and bytes per push, idle polls, replication lag through"
        echo "a bucket) in \`docs/BENCHMARKS_S3.md\` and \`docs/BENCHMARKS_REPLICATION_S3.md\`; each written"
        echo "by its script in the same \`make bench\`."
        echo
        report_run "full run, \`make bench\`"
        report_machine
        echo "- **PostgreSQL**: $PG_VERSION; \`shared_buffers = 1GB\`, \`max_wal_size = 8GB\`, \`checkpoint_timeout = 30min\`, \`wal_level = logical\`, \`shared_preload_libraries = 'pgvc'\`, \`vc.database = 'overhead'\`, other settings default (fsync on, \`synchronous_commit = on\`)"
        echo "- **pgvc**: commit $rev, release build (pgvc.so sha256 $SO_SHA...)"
        echo "- **Method**: a throwaway cluster on a private copy of the installed PostgreSQL + pgvc." \
            "Times are measured inside the server (\`clock_timestamp()\` around the statement, in" \
            "\`bench.ms()\`): no client round trip, no transaction commit. Every goal is a ratio against a" \
            "baseline measured in the same run, because the machine is shared and absolute times drift."
        echo
        report_summary 1 2 3 4 5 6
        report_investigate
    } >"$OUT"
}

main() {
    bench_begin
    start_cluster
    log "cluster on $WORK, port ${PORTS[data]} ($PG_VERSION, pgvc.so $SO_SHA)"
    local b
    for b in ${ONLY//,/ }; do
        case $b in
        1) bench_commit_scaling ;;
        2) bench_first_commit ;;
        3) bench_tracking_overhead ;;
        4) bench_storage ;;
        5) bench_memory ;;
        6) bench_status_diff ;;
        *) echo "run.sh: no benchmark $b" >&2; exit 2 ;;
        esac
        # The summary lists the rows in the order the benchmarks ran.
        cat "$RESULTS.$b" >>"$RESULTS"
    done
    write_report
    print_summary 20 58 12
}

main
