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
# One throwaway cluster, two databases: small (table t of N_SMALL rows) and big (N_BIG
# rows), each tracked and committed.
# Benchmarks (the goals come from the project's issue):
#   1 merge      a branch and main each change CHANGED spread rows (different rows),
#                committed; vc.merge() of the branch into main, timed inside the server
#                (a two-parent commit, the live table rewritten where the branch
#                changed it). Goal: big / small <= 1.5 (the cost follows the changes)
#   2 checkout   a branch CHANGED spread rows away from main: vc.checkout() from it to
#                main, timed inside the server. Goal: big / small <= 1.5
# Each run alternates big and small; medians of RUNS runs.
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
    N_SMALL=10000 N_BIG=100000 RUNS=3
    OUT=${OUT:-/tmp/pgvc-bench-branches-quick.md}
else
    N_SMALL=10000 N_BIG=1000000 RUNS=7
    OUT=${OUT:-$ROOT/docs/BENCHMARKS_BRANCHES.md}
fi
CHANGED=1000
GOAL=1.5

cause() {
    case $1 in
    *) ;;
    esac
}

make_work pgvc-bench-branches

setup() {
    log "set-up: databases small ($N_SMALL rows) and big ($N_BIG rows), tracked and committed"
    cluster_start data 43000
    on data bench_schema template1 </dev/null >/dev/null
    local db n
    for db in small big; do
        n=$N_SMALL
        [[ $db == big ]] && n=$N_BIG
        new_db $db >/dev/null
        new_tracked $db "$n"
    done
}

# n_of DB: the table size of database DB.
n_of() { if [[ $1 == big ]]; then echo "$N_BIG"; else echo "$N_SMALL"; fi; }

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

bench_merge() {
    log "1. merge of two branches each changing $CHANGED rows: $N_BIG vs $N_SMALL rows ($RUNS runs each)"
    section 1
    local r b=() s=()
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then
            merge_run big "$r"; b+=("$MERGE_MS")
            merge_run small "$r"; s+=("$MERGE_MS")
        else
            merge_run small "$r"; s+=("$MERGE_MS")
            merge_run big "$r"; b+=("$MERGE_MS")
        fi
        log "   run $r: big ${b[-1]} ms, small ${s[-1]} ms"
    done
    local mb msm ratio
    mb=$(median "${b[@]}") msm=$(median "${s[@]}")
    ratio=$(calc "$mb / $msm")
    md "## 1. Merge of two branches each changing $CHANGED rows" ""
    md "Per run: a branch changes $CHANGED spread rows and commits; main changes $CHANGED other" \
        "spread rows and commits; \`SELECT * FROM vc.merge(branch)\` is timed inside the server (a" \
        "three-way merge of the two tree diffs, the $CHANGED rows of the branch written to the live" \
        "table, and the two-parent commit); $RUNS runs per table, big and small alternating." ""
    md "| table | rows | merge ms (median) | runs (ms) |" "|---|---:|---:|---|"
    md "| small | $N_SMALL | $msm | ${s[*]} |"
    md "| big | $N_BIG | $mb | ${b[*]} |" ""
    result merge "merge, $CHANGED changes per side, $N_BIG vs $N_SMALL rows" "<= $GOAL" "$msm ms" "$mb ms" "$ratio" "$(verdict "$ratio" "<=" "$GOAL")"
    explain "merge:$(verdict "$ratio" "<=" "$GOAL")"
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
    log "2. checkout between branches differing in $CHANGED rows: $N_BIG vs $N_SMALL rows ($RUNS runs each)"
    section 2
    local r b=() s=()
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then
            checkout_run big "$r"; b+=("$CHECKOUT_MS")
            checkout_run small "$r"; s+=("$CHECKOUT_MS")
        else
            checkout_run small "$r"; s+=("$CHECKOUT_MS")
            checkout_run big "$r"; b+=("$CHECKOUT_MS")
        fi
        log "   run $r: big ${b[-1]} ms, small ${s[-1]} ms"
    done
    local mb msm ratio
    mb=$(median "${b[@]}") msm=$(median "${s[@]}")
    ratio=$(calc "$mb / $msm")
    md "## 2. Checkout between branches that differ in $CHANGED rows" ""
    md "Per run: a branch changes $CHANGED spread rows and commits; \`vc.checkout('main')\` from it is" \
        "timed inside the server (the tracked table is locked, the working set judged, and the" \
        "$CHANGED rows that differ rewritten); $RUNS runs per table, big and small alternating." ""
    md "| table | rows | checkout ms (median) | runs (ms) |" "|---|---:|---:|---|"
    md "| small | $N_SMALL | $msm | ${s[*]} |"
    md "| big | $N_BIG | $mb | ${b[*]} |" ""
    result checkout "checkout, $CHANGED rows differ, $N_BIG vs $N_SMALL rows" "<= $GOAL" "$msm ms" "$mb ms" "$ratio" "$(verdict "$ratio" "<=" "$GOAL")"
    explain "checkout:$(verdict "$ratio" "<=" "$GOAL")"
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
        echo "- **Sizes**: small $N_SMALL rows, big $N_BIG rows, \`(id int primary key, name text, price numeric(10,2), ts timestamptz)\`; $CHANGED rows changed per side; $RUNS runs per table"
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
