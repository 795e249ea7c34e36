#!/usr/bin/env bash
# pgvc branch, merge and checkout benchmarks:
#
#   benches/branches.sh [--quick] [--only 1,2] [--out FILE] [--keep]
#
#   --quick   small sizes: a smoke test of the suite (~1 min); writes its report to
#             /tmp/pgvc-bench-branches-quick.md unless --out is given
#   --only    run only these benchmarks (the set-up always runs); a full run takes
#             ~5 min
#   --out     where to write the Markdown report (default docs/BENCHMARKS_BRANCHES.md)
#   --keep    keep the throwaway cluster's directory (data, server log)
#
# One throwaway cluster, three databases: small (table t of N_SMALL rows), mid (N_MID)
# and big (N_BIG), each tracked and committed.
# Benchmarks (the goals come from the project's issue):
#   1 merge      a branch and main each change CHANGED spread rows (different rows),
#                committed; vc.merge() of the branch into main, timed inside the server
#                (a two-parent commit, the live table rewritten where the branch
#                changed it). Goal (the issue's): big / small <= 1.5; and big / mid <= 1.5
#                (once the table has more leaves than changes, the cost must not grow
#                with it)
#   2 checkout   a branch CHANGED spread rows away from main: vc.checkout() from it to
#                main, timed inside the server. Goals as for 1
# Each run rotates the order of the three sizes; medians of RUNS runs.
#
# Method as in benches/run.sh: a throwaway cluster on a private copy of the installed
# PostgreSQL 15 + pgvc, Unix sockets only; every goal is a ratio against a baseline
# measured in the same run.
set -euo pipefail

NAME=branches.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/lib.sh"
parse_args 2,27 "1,2" "$@"
check_only 2

if ((QUICK)); then
    N_SMALL=10000 N_MID=50000 N_BIG=100000 RUNS=3
    OUT=${OUT:-/tmp/pgvc-bench-branches-quick.md}
else
    N_SMALL=10000 N_MID=100000 N_BIG=1000000 RUNS=7
    OUT=${OUT:-$ROOT/docs/BENCHMARKS_BRANCHES.md}
fi
CHANGED=1000
GOAL=1.5

cause() {
    case $1 in
    merge.issue | checkout.issue)
        echo "The work follows the tree nodes the changes touch, not the table: $CHANGED spread changes touch every leaf of the small table (about 200 leaves of ~4 KiB at $N_SMALL rows) but about $CHANGED leaves at $N_BIG rows, five times the nodes; each node is read (and for the merge, rewritten: the tree diffs of both sides, the edits applied to ours, the checkout's diff) through SPI from vc.chunks, lz4-decompressed and BLAKE3-verified. perf of a merge at 10^5 rows: chunk reads and writes (SPI index scans, TOAST, lz4, BLAKE3, MessagePack) are most of the time; the SQL a merge runs (vc.status, three chunk INSERTs, the DELETE and INSERT of the rows) ~70 ms of ~260 ms. The mid line shows the cost does not grow with the table once it has more leaves than changes. Smaller or size-capped nodes (issue 14's node-size work) shrink the per-node cost for every operation." ;;
    *) ;;
    esac
}

make_work pgvc-bench-branches

setup() {
    log "set-up: databases small ($N_SMALL rows), mid ($N_MID) and big ($N_BIG), tracked and committed"
    cluster_start data 43000
    on data bench_schema template1 </dev/null >/dev/null
    local db n
    for db in small mid big; do
        n=$(n_of $db)
        new_db $db >/dev/null
        new_tracked $db "$n"
    done
}

# n_of DB: the table size of database DB.
n_of() {
    case $1 in
    big) echo "$N_BIG" ;;
    mid) echo "$N_MID" ;;
    *) echo "$N_SMALL" ;;
    esac
}

# merge_run DB R: branch m_R changes CHANGED spread rows (ids = 1 mod step), main
# changes as many others (ids = 2 mod step), both committed; the merge is timed.
merge_run() {
    local db=$1 r=$2 step
    step=$(($(n_of "$db") / CHANGED))
    sql "$db" "SELECT vc.branch('m_$r'); SELECT vc.checkout('m_$r')" >/dev/null
    touch_rows "$db" "id % $step = 1"
    sql "$db" "SELECT vc.commit('theirs $r'); SELECT vc.checkout('main')" >/dev/null
    touch_rows "$db" "id % $step = 2"
    sql "$db" "SELECT vc.commit('ours $r')" >/dev/null
    vacuum_tracked "$db"
    settle
    MERGE_MS=$(ms "$db" "SELECT * FROM vc.merge('m_$r')")
    local parents
    parents=$(sql "$db" "SELECT array_length(parents, 1) FROM vc.log() LIMIT 1")
    [[ $parents == 2 && $(sql "$db" "SELECT count(*) FROM vc.status()") == 0 ]] || {
        echo "branches.sh: the merge of m_$r in $db made no clean two-parent commit" >&2
        exit 1
    }
}

# three_sizes RUN_FN VAR R: runs RUN_FN on the three sizes in a rotating order, putting
# each time (variable VAR) into S, M and B.
three_sizes() {
    local fn=$1 var=$2 r=$3 order db
    case $((r % 3)) in
    0) order="small mid big" ;;
    1) order="big small mid" ;;
    *) order="mid big small" ;;
    esac
    for db in $order; do
        "$fn" "$db" "$r"
        case $db in
        small) S+=("${!var}") ;;
        mid) M+=("${!var}") ;;
        big) B+=("${!var}") ;;
        esac
    done
}

# report_sizes ID WHAT: the table and the two results of a benchmark from S, M, B.
report_sizes() {
    local id=$1 what=$2 ms mm mb r1 r2
    ms=$(median "${S[@]}") mm=$(median "${M[@]}") mb=$(median "${B[@]}")
    r1=$(calc "$mb / $ms") r2=$(calc "$mb / $mm")
    md "| table | rows | $what ms (median) | runs (ms) |" "|---|---:|---:|---|"
    md "| small | $N_SMALL | $ms | ${S[*]} |"
    md "| mid | $N_MID | $mm | ${M[*]} |"
    md "| big | $N_BIG | $mb | ${B[*]} |" ""
    result "$id.issue" "$what, $CHANGED changes, $N_BIG vs $N_SMALL rows" "<= $GOAL" "$ms ms" "$mb ms" "$r1" "$(verdict "$r1" "<=" "$GOAL")"
    result "$id.follows" "$what, $CHANGED changes, $N_BIG vs $N_MID rows" "<= $GOAL" "$mm ms" "$mb ms" "$r2" "$(verdict "$r2" "<=" "$GOAL")"
    explain "$id.issue:$(verdict "$r1" "<=" "$GOAL")" "$id.follows:$(verdict "$r2" "<=" "$GOAL")"
}

bench_merge() {
    log "1. merge of two branches each changing $CHANGED rows: $N_SMALL, $N_MID and $N_BIG rows ($RUNS runs each)"
    section 1
    local r
    S=() M=() B=()
    for ((r = 1; r <= RUNS; r++)); do
        three_sizes merge_run MERGE_MS "$r"
        log "   run $r: big ${B[-1]} ms, mid ${M[-1]} ms, small ${S[-1]} ms"
    done
    md "## 1. Merge of two branches each changing $CHANGED rows" ""
    md "Per run: a branch changes $CHANGED spread rows and commits; main changes $CHANGED other" \
        "spread rows and commits; \`SELECT * FROM vc.merge(branch)\` is timed inside the server (a" \
        "three-way merge of the two tree diffs, the $CHANGED rows of the branch written to the live" \
        "table, and the two-parent commit); $RUNS runs per table, the order of the sizes rotating." ""
    report_sizes merge merge
}

# checkout_run DB R: branch c_R changes CHANGED spread rows and commits; the checkout
# back to main (rows differing: CHANGED) is timed.
checkout_run() {
    local db=$1 r=$2 step
    step=$(($(n_of "$db") / CHANGED))
    sql "$db" "SELECT vc.branch('c_$r'); SELECT vc.checkout('c_$r')" >/dev/null
    touch_rows "$db" "id % $step = 3"
    sql "$db" "SELECT vc.commit('on c_$r')" >/dev/null
    vacuum_tracked "$db"
    settle
    CHECKOUT_MS=$(ms "$db" "SELECT vc.checkout('main')")
    [[ $(sql "$db" "SELECT vc.active_branch()") == main && $(sql "$db" "SELECT count(*) FROM vc.status()") == 0 ]] || {
        echo "branches.sh: the checkout of main in $db left changes or another branch" >&2
        exit 1
    }
}

bench_checkout() {
    log "2. checkout between branches differing in $CHANGED rows: $N_SMALL, $N_MID and $N_BIG rows ($RUNS runs each)"
    section 2
    local r
    S=() M=() B=()
    for ((r = 1; r <= RUNS; r++)); do
        three_sizes checkout_run CHECKOUT_MS "$r"
        log "   run $r: big ${B[-1]} ms, mid ${M[-1]} ms, small ${S[-1]} ms"
    done
    md "## 2. Checkout between branches that differ in $CHANGED rows" ""
    md "Per run: a branch changes $CHANGED spread rows and commits; \`vc.checkout('main')\` from it is" \
        "timed inside the server (the tracked table is locked, the working set judged, and the" \
        "$CHANGED rows that differ rewritten); $RUNS runs per table, the order of the sizes rotating." ""
    report_sizes checkout checkout
}

write_report() {
    {
        echo "# pgvc branch, merge and checkout benchmarks"
        echo
        echo "Written by \`benches/branches.sh\`; do not edit by hand. Reproduce with"
        echo "\`benches/branches.sh\` (as root, with the release build installed by"
        echo "\`scripts/install.sh\`); \`benches/branches.sh --quick\` for a smoke run."
        echo
        report_command
        report_run
        report_machine ""
        echo "- **PostgreSQL**: $PG_VERSION; \`shared_buffers = 1GB\`, \`max_wal_size = 8GB\`, \`shared_preload_libraries = 'pgvc'\`"
        echo "- **pgvc**: commit $(rev_at_start) checked out at the start; measured: the installed release build (pgvc.so sha256 $SO_SHA..., installed $SO_DATE)"
        echo "- **Sizes**: small $N_SMALL rows, mid $N_MID rows, big $N_BIG rows, \`(id int primary key, name text, price numeric(10,2), ts timestamptz)\`; $CHANGED rows changed per side; $RUNS runs per table"
        echo
        report_summary 1 2
        report_investigate
    } >"$OUT"
}

main() {
    bench_begin _merge "vc.merge (pgvc 0.2)"
    setup
    log "cluster on port ${PORTS[data]}, in $WORK ($PG_VERSION, pgvc.so $SO_SHA)"
    if wanted 1; then bench_merge; fi
    if wanted 2; then bench_checkout; fi
    collect_results
    write_report
    print_summary 18 60 12
}

main
