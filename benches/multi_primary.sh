#!/usr/bin/env bash
# pgvc multi-primary benchmark (several primaries on one remote branch):
#
#   benches/multi_primary.sh [--quick] [--out FILE] [--keep]
#
#   --quick   a shorter write phase: a smoke test (~1 min); writes its report to
#             /tmp/pgvc-bench-multi-primary-quick.md unless --out is given
#   --out     where to write the Markdown report (default docs/BENCHMARKS_MULTI_PRIMARY.md)
#   --keep    keep the throwaway clusters' directory (data, server logs, the remote)
#
# Three throwaway clusters, primaries of one file:// remote with vc.multi_primary = on
# (synchronous push at COMMIT, worker interval INTERVAL ms), table kv of KEYS rows
# tracked with conflict policy 'newest' on each. Each server runs pgbench at RATE
# single-row commits per second for SECONDS_W seconds, on keys drawn from the same KEYS
# (overlapping): UPDATE one row, vc.commit(). Measured:
#   1 convergence  time from the end of the writes until the three servers' main and
#                  root_hash agree, in worker rounds (the baseline: one round,
#                  vc.replication_interval). Goal: <= CONVERGE_GOAL rounds
#   2 conflicts    conflicting rows the workers' merges decided by policy, per second of
#                  writes (from the servers' logs), and the commits per second achieved
#
# Method as in benches/replication.sh: throwaway clusters on a private copy of the
# installed PostgreSQL 15 + pgvc, Unix sockets only.
set -euo pipefail

NAME=multi_primary.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/lib.sh"
parse_args 2,24 "" "$@"

RATE=100 KEYS=1000 INTERVAL=100
if ((QUICK)); then
    SECONDS_W=3
    OUT=${OUT:-/tmp/pgvc-bench-multi-primary-quick.md}
else
    SECONDS_W=20
    OUT=${OUT:-$ROOT/docs/BENCHMARKS_MULTI_PRIMARY.md}
fi
CONVERGE_GOAL=50

cause() {
    case $1 in
    rate)
        echo "The machine is the limit, not a lock: during the write phase vmstat shows the 2 cores ~95% busy (user ~50-75%, system ~20%), and a system-wide perf sample (2 s) puts 56% of the samples in the kernel (the fsyncs and file writes of each commit's synchronous push to the shared file:// remote: a pack written and fsynced, then the manifest swapped), 30% in postgres itself, 6% in pgvc.so; three clusters, their workers' merges and three pgbench clients share those 2 cores, so pgbench -R runs behind its schedule. The single-server commit path (synchronous push latency, fsyncs that can be merged) is issue 14's." ;;
    *) ;;
    esac
}

make_work pgvc-bench-multi-primary
REMOTE=$WORK/remote
NODE_NAMES[a]="server a" NODE_NAMES[b]="server b" NODE_NAMES[c]="server c"

setup() {
    log "set-up: three primaries a, b, c of file://$REMOTE (vc.multi_primary = on), table kv of $KEYS rows, policy newest"
    new_dir "$REMOTE"
    local n
    for n in a b c; do
        cluster_start "$n" 44000 "vc.database = 'postgres'" "vc.replicate_to_remote = 'origin'" \
            "vc.replication_interval = $INTERVAL" "vc.multi_primary = on"
        on "$n" sql postgres "CREATE EXTENSION pgvc" >/dev/null
    done
    on a sql postgres "SELECT vc.remote_add('origin', 'file://$REMOTE')" >/dev/null
    on a sql postgres "CREATE TABLE kv (k int PRIMARY KEY, v bigint NOT NULL, who int)" >/dev/null
    on a sql postgres "INSERT INTO kv SELECT g, 0, 0 FROM generate_series(1, $KEYS) g" >/dev/null
    on a sql postgres "SELECT vc.track('kv'); SELECT vc.set_conflict_policy('kv', 'newest'); SELECT vc.commit('init')" >/dev/null
    for n in b c; do
        on "$n" sql postgres "SELECT vc.clone('file://$REMOTE')" >/dev/null
        on "$n" sql postgres "SELECT vc.set_conflict_policy('kv', 'newest')" >/dev/null
    done
    printf '%s\n' "\\set k random(1, $KEYS)" "BEGIN;" \
        "UPDATE kv SET v = v + 1, who = :server WHERE k = :k;" \
        "SELECT vc.commit('write');" "COMMIT;" >"$WORK/write.sql"
}

# heads: the three servers' "main root_hash", one per line.
heads() {
    local n
    for n in a b c; do on "$n" sql postgres "SELECT vc.hashof('main') || ' ' || vc.root_hash()"; done
}

bench_write_and_converge() {
    log "1-2. $RATE commits/s on each of three servers for ${SECONDS_W} s, then convergence"
    local n pids=() t0 ms lines tps=() i=0
    for n in a b c; do
        i=$((i + 1))
        on "$n" pg_client pgbench -n -R "$RATE" -T "$SECONDS_W" -D server="$i" -f "$WORK/write.sql" postgres \
            >"$WORK/pgbench.$n.log" 2>&1 &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n"; done
    t0=$(now)
    local deadline=$((SECONDS + 300))
    while :; do
        lines=$(heads | sort -u | wc -l)
        ((lines == 1)) && break
        ((SECONDS < deadline)) || { echo "$NAME: no convergence in 300 s: $(heads | tr '\n' ' ')" >&2; exit 1; }
        sleep 0.05
    done
    ms=$(since_ms "$t0")
    for n in a b c; do
        tps+=("$(awk '/^tps/ {printf "%.1f", $3}' "$WORK/pgbench.$n.log")")
    done
    local conflicts merges rate_c rounds committed
    merges=$(cat "$WORK"/a.log "$WORK"/b.log "$WORK"/c.log | grep -c 'decided by policy' || true)
    conflicts=$(cat "$WORK"/a.log "$WORK"/b.log "$WORK"/c.log | grep -o '[0-9]* conflicting rows decided' | awk '{s += $1} END {print s + 0}')
    rate_c=$(calc "$conflicts / $SECONDS_W" 1)
    rounds=$(calc "$ms / $INTERVAL" 1)
    committed=$(on a sql postgres "SELECT count(*) FROM vc.log() WHERE message = 'write'")
    log "   converged in $ms ms ($rounds rounds); $conflicts conflicting rows in $merges merges; commits/s ${tps[*]}; $committed commits in the history"
    section 1
    md "## 1. Convergence after the writes stop" ""
    md "Three primaries, each running \`pgbench -R $RATE -T $SECONDS_W\` of one-row commits (\`UPDATE kv\`" \
        "of a random key of $KEYS, \`vc.commit()\`) at once; then the time until the three servers'" \
        "\`main\` and \`vc.root_hash()\` agree, polled every 50 ms, in worker rounds" \
        "(\`vc.replication_interval = $INTERVAL\` ms)." ""
    md "| convergence | worker rounds | commits/s achieved (a, b, c) | commits in the history |" "|---:|---:|---|---:|"
    md "| $ms ms | $rounds | ${tps[*]} | $committed |" ""
    result converge "convergence after writes stop, in worker rounds" "<= $CONVERGE_GOAL" "$INTERVAL ms" "$ms ms" "$rounds" "$(verdict "$rounds" "<=" "$CONVERGE_GOAL")"
    explain "converge:$(verdict "$rounds" "<=" "$CONVERGE_GOAL")"
    section 2
    md "## 2. Conflicts under \`newest\`" ""
    md "Rows both sides changed that a worker's merge decided by the policy (from the servers' logs:" \
        "\`merged origin/main into main: N conflicting rows decided by policy\`), over the ${SECONDS_W} s" \
        "of writes; merges made by the workers: $merges." ""
    md "| conflicting rows decided | per second of writes | merges |" "|---:|---:|---:|"
    md "| $conflicts | $rate_c | $merges |" ""
    result conflicts "conflicting rows decided per second, 3 x $RATE commits/s" "report" "-" "$rate_c/s" "-" "info"
    local achieved ratio
    achieved=$(printf '%s\n' "${tps[@]}" | awk '{s += $1} END {printf "%.1f", s / NR}')
    ratio=$(calc "$achieved / $RATE")
    result rate "commits/s achieved per server vs asked" ">= 0.9" "$RATE/s" "$achieved/s" "$ratio" "$(verdict "$ratio" ">=" 0.9)"
    explain "rate:$(verdict "$ratio" ">=" 0.9)"
}

write_report() {
    {
        echo "# pgvc multi-primary benchmark"
        echo
        echo "Written by \`benches/multi_primary.sh\`; do not edit by hand. Reproduce with"
        echo "\`benches/multi_primary.sh\` (as root, with the release build installed by"
        echo "\`scripts/install.sh\`); \`benches/multi_primary.sh --quick\` for a smoke run."
        echo
        report_command
        report_run
        report_machine "the remote on $(fs_of "$REMOTE"); the three clusters on the same machine, "
        echo "- **PostgreSQL**: $PG_VERSION, three clusters; \`shared_buffers = 1GB\`, \`shared_preload_libraries = 'pgvc'\`, \`vc.replicate_to_remote = 'origin'\` (synchronous push), \`vc.multi_primary = on\`, \`vc.replication_interval = $INTERVAL\`"
        echo "- **pgvc**: commit $(rev_at_start) checked out at the start; measured: the installed release build (pgvc.so sha256 $SO_SHA..., installed $SO_DATE)"
        echo "- **Load**: table \`kv (k int primary key, v bigint, who int)\` of $KEYS rows, conflict policy \`newest\`; each server \`pgbench -R $RATE -T $SECONDS_W\`"
        echo
        report_summary 1 2
        report_investigate
    } >"$OUT"
}

main() {
    bench_begin _set_conflict_policy "vc.set_conflict_policy (pgvc 0.2)"
    setup
    bench_write_and_converge
    collect_results
    write_report
    print_summary 18 60 12
}

main
