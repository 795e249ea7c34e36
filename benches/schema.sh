#!/usr/bin/env bash
# pgvc schema-change benchmarks:
#
#   benches/schema.sh [--quick] [--only 1,2] [--out FILE] [--keep]
#
#   --quick   small sizes: a smoke test of the suite (~1 min); writes its report to
#             /tmp/pgvc-bench-schema-quick.md unless --out is given
#   --only    run only these benchmarks (the set-up always runs); a full run takes
#             ~5 min
#   --out     where to write the Markdown report (default docs/BENCHMARKS_SCHEMA.md)
#   --keep    keep the throwaway clusters' directory (data, server logs, the remote)
#
# Two throwaway clusters: a primary (vc.replicate_to_remote = 'origin', synchronous
# push at COMMIT) and a standby of one file:// remote, whose worker is kept off so that
# vc.sync() applies each commit, timed. Tables small (N_SMALL rows) and big (N_BIG rows)
# of the benchmark shape, tracked and committed on both.
# Benchmarks (the goals come from the project's issue):
#   1 add column   ALTER TABLE ADD COLUMN (nullable, no default) plus a 1-row UPDATE of
#                  the new column, then vc.commit() on the primary (timed inside the
#                  server), and vc.sync() of that commit on the standby (timed inside
#                  the server); runs alternate between big and small. Goal: big / small
#                  <= 1.5 for the commit and for the apply (the tree is not rewritten)
#   2 alter type   ALTER TABLE big ALTER COLUMN name TYPE varchar(64) (a rewrite), then
#                  vc.commit(): the commit vs the ALTER TABLE itself; and the standby's
#                  apply; for information (these changes rebuild the tree)
#
# Method as in benches/replication.sh: throwaway clusters on a private copy of the
# installed PostgreSQL 15 + pgvc, Unix sockets only; every goal is a ratio against a
# baseline measured in the same run.
set -euo pipefail

NAME=schema.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/lib.sh"
parse_args 2,27 "1,2" "$@"
check_only 2

if ((QUICK)); then
    N_SMALL=10000 N_BIG=100000 RUNS=3
    OUT=${OUT:-/tmp/pgvc-bench-schema-quick.md}
else
    N_SMALL=10000 N_BIG=1000000 RUNS=7
    OUT=${OUT:-$ROOT/docs/BENCHMARKS_SCHEMA.md}
fi
GOAL=1.5

cause() {
    case $1 in
    *) ;;
    esac
}

make_work pgvc-bench-schema
NODE_NAMES[p]=primary NODE_NAMES[s]=standby
REMOTE=$WORK/remote

start_cluster() {
    local n=$1 db
    shift
    cluster_start "$n" 41000 "vc.database = 'postgres'" "$@"
    for db in template1 postgres; do
        on "$n" bench_schema $db <<'EOF'
CREATE FUNCTION bench.sync(OUT ms numeric, OUT moved bigint) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    moved := vc.sync();
    ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
END $$;
EOF
    done
}

set_conf() {
    on "$1" sql postgres "ALTER SYSTEM SET $2 = '$3'"
    on "$1" sql postgres "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}

status() {
    on "$1" sql postgres "SELECT coalesce($2::text, '<null>') FROM vc.replication_status() WHERE branch = 'main'"
}

check_no_error() {
    local e
    e=$(status "$1" last_error)
    if [[ $e != "<null>" ]]; then
        echo "schema.sh: the $(node_name "$1")'s vc.replication_status() reports an error $2: $e" >&2
        exit 1
    fi
}

setup() {
    log "set-up: primary with small ($N_SMALL rows) and big ($N_BIG rows), standby (clone of file://$REMOTE)"
    new_dir "$REMOTE"
    start_cluster p
    # The standby's worker keeps off (1 h interval): vc.sync() applies, timed.
    start_cluster s "vc.read_replica_remote = 'origin'" "vc.replication_interval = 3600000"
    on p sql postgres "CREATE EXTENSION pgvc; SELECT vc.remote_add('origin', 'file://$REMOTE')" >/dev/null
    set_conf p vc.replicate_to_remote origin
    on p new_table postgres small "$N_SMALL" "SELECT vc.track('small');" >/dev/null
    on p new_table postgres big "$N_BIG" "SELECT vc.track('big'); SELECT vc.commit('load');" >/dev/null
    check_no_error p "after its first commit"
    on s sql postgres "CREATE EXTENSION pgvc" >/dev/null
    on s sql postgres "SELECT vc.clone('file://$REMOTE')" >/dev/null
    [[ $(on s sql postgres "SELECT vc.hashof('main')") == $(on p sql postgres "SELECT vc.hashof('main')") ]] \
        || { echo "schema.sh: the clone is not at the primary's head" >&2; exit 1; }
    on p sql postgres "VACUUM ANALYZE" >/dev/null
    on s sql postgres "VACUUM ANALYZE" >/dev/null
}

# sync_timed: vc.sync() on the standby, timed inside the server; checks it moved main to
# the primary's head. Sets SYNC_MS.
sync_timed() {
    local m head
    m=($(on s sql postgres "SELECT ms || ' ' || moved FROM bench.sync()"))
    head=$(on p sql postgres "SELECT vc.hashof('main')")
    [[ ${m[1]} == 1 && $(on s sql postgres "SELECT vc.hashof('main')") == "$head" ]] || {
        echo "schema.sh: vc.sync() moved ${m[1]} branches; the standby is not at $head: $(status s last_error)" >&2
        exit 1
    }
    SYNC_MS=${m[0]}
}

# add_column_run TABLE R: ADD COLUMN c_R, one row updated, commit (timed), apply (timed).
add_column_run() {
    local t=$1 r=$2
    on p sql postgres "ALTER TABLE $t ADD COLUMN c_$r int; UPDATE $t SET c_$r = $r WHERE id = 7" >/dev/null
    settle
    COMMIT_MS=$(on p ms postgres "SELECT vc.commit('add c_$r to $t')")
    settle
    sync_timed
    [[ $(on s sql postgres "SELECT c_$r FROM $t WHERE id = 7") == "$r" ]] \
        || { echo "schema.sh: the standby's $t lacks c_$r = $r" >&2; exit 1; }
}

bench_add_column() {
    log "1. ADD COLUMN (nullable, no default): commit and standby apply, $N_BIG vs $N_SMALL rows ($RUNS runs each)"
    section 1
    local r cb=() cs=() ab=() as=()
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then
            add_column_run big "$r"; cb+=("$COMMIT_MS") ab+=("$SYNC_MS")
            add_column_run small "$r"; cs+=("$COMMIT_MS") as+=("$SYNC_MS")
        else
            add_column_run small "$r"; cs+=("$COMMIT_MS") as+=("$SYNC_MS")
            add_column_run big "$r"; cb+=("$COMMIT_MS") ab+=("$SYNC_MS")
        fi
        log "   run $r: commit big ${cb[-1]} ms, small ${cs[-1]} ms; apply big ${ab[-1]} ms, small ${as[-1]} ms"
    done
    local mcb mcs mab mas rc ra
    mcb=$(median "${cb[@]}") mcs=$(median "${cs[@]}") mab=$(median "${ab[@]}") mas=$(median "${as[@]}")
    rc=$(calc "$mcb / $mcs") ra=$(calc "$mab / $mas")
    md "## 1. Commit and standby apply after ADD COLUMN (nullable, no default)" ""
    md "Per run: \`ALTER TABLE t ADD COLUMN c_r int\`, \`UPDATE t SET c_r = r WHERE id = 7\`, then" \
        "\`vc.commit()\` on the primary (with its synchronous push) and \`vc.sync()\` on the standby," \
        "both timed inside the server; $RUNS runs per table, big and small alternating." ""
    md "| table | rows | commit ms (median) | apply ms (median) | commits (ms) | applies (ms) |" "|---|---:|---:|---:|---|---|"
    md "| small | $N_SMALL | $mcs | $mas | ${cs[*]} | ${as[*]} |"
    md "| big | $N_BIG | $mcb | $mab | ${cb[*]} | ${ab[*]} |" ""
    result add_column.commit "commit after ADD COLUMN, $N_BIG vs $N_SMALL rows" "<= $GOAL" "$mcs ms" "$mcb ms" "$rc" "$(verdict "$rc" "<=" "$GOAL")"
    result add_column.apply "standby apply of it, $N_BIG vs $N_SMALL rows" "<= $GOAL" "$mas ms" "$mab ms" "$ra" "$(verdict "$ra" "<=" "$GOAL")"
    explain "add_column.commit:$(verdict "$rc" "<=" "$GOAL")" "add_column.apply:$(verdict "$ra" "<=" "$GOAL")"
}

bench_alter_type() {
    log "2. ALTER COLUMN TYPE on $N_BIG rows: the ALTER, the commit after it, the standby's apply"
    section 2
    local alter commit r
    alter=$(on p ms postgres "ALTER TABLE big ALTER COLUMN name TYPE varchar(64)")
    settle
    commit=$(on p ms postgres "SELECT vc.commit('name as varchar')")
    settle
    sync_timed
    r=$(calc "$commit / $alter")
    md "## 2. Commit after ALTER COLUMN TYPE of $N_BIG rows" ""
    md "\`ALTER TABLE big ALTER COLUMN name TYPE varchar(64)\` took $alter ms; the \`vc.commit()\` after" \
        "it $commit ms (the tree is rebuilt from a full scan: the column's type is part of the" \
        "encoding); the standby's \`vc.sync()\` of that commit $SYNC_MS ms (it alters the table" \
        "and reloads its rows). For information: no goal." ""
    result alter_type.commit "commit after ALTER COLUMN TYPE vs the ALTER, $N_BIG rows" "report" "$alter ms" "$commit ms" "$r" "info"
}

write_report() {
    {
        echo "# pgvc schema-change benchmarks"
        echo
        echo "Written by \`benches/schema.sh\`; do not edit by hand. Reproduce with"
        echo "\`benches/schema.sh\` (as root, with the release build installed by"
        echo "\`scripts/install.sh\`); \`benches/schema.sh --quick\` for a smoke run."
        echo
        report_command
        report_run
        report_machine "the remote on $(fs_of "$REMOTE"); both clusters on the same machine, "
        echo "- **PostgreSQL**: $PG_VERSION, two clusters; \`shared_buffers = 1GB\`, \`max_wal_size = 8GB\`, \`shared_preload_libraries = 'pgvc'\`; primary \`vc.replicate_to_remote = 'origin'\` (synchronous push); standby \`vc.read_replica_remote = 'origin'\`, \`vc.replication_interval = 3600000\` (its worker keeps off; \`vc.sync()\` applies)"
        echo "- **pgvc**: commit $(rev_at_start) checked out at the start; measured: the installed release build (pgvc.so sha256 $SO_SHA..., installed $SO_DATE)"
        echo "- **Sizes**: small $N_SMALL rows, big $N_BIG rows, \`(id int primary key, name text, price numeric(10,2), ts timestamptz)\`; $RUNS runs per table"
        echo
        report_summary 1 2
        report_investigate
    } >"$OUT"
}

main() {
    bench_begin _schema_diff "vc.schema_diff (pgvc 0.2)"
    setup
    log "primary on port ${PORTS[p]}, standby on port ${PORTS[s]}, in $WORK ($PG_VERSION, pgvc.so $SO_SHA)"
    if wanted 1; then bench_add_column; fi
    if wanted 2; then bench_alter_type; fi
    collect_results
    write_report
    print_summary 18 60 12
}

main
