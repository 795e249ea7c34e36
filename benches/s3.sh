#!/usr/bin/env bash
# pgvc S3 benchmarks:
#
#   benches/s3.sh [--quick] [--only 1,2] [--out FILE] [--keep]
#
#   --quick   small sizes: a smoke test of the suite (~2 min); writes its report to
#             /tmp/pgvc-bench-s3-quick.md unless --out is given
#   --only    run only these benchmarks (numbers as below)
#   --out     where to write the Markdown report (default docs/BENCHMARKS_S3.md)
#   --keep    keep the throwaway clusters' directory (data, logs, moto's request log)
#
# A local S3-compatible server (moto, from PyPI, installed by scripts/setup.sh) on
# loopback, the same one the tests use; the table
# t (id int primary key, name text, price numeric(10,2), ts timestamptz) of N rows:
#   1 push and clone    vc.push() of N rows to an empty s3:// prefix vs to an empty
#                       file:// directory, and vc.clone() from each into an empty
#                       database, in the same run, alternating; ratio s3 / file
#                       (information: moto is a single-process Python server, so this
#                       measures pgvc's S3 path against moto, not against AWS)
#   2 requests, bytes   requests (moto's request log) and bytes on the wire (a counting
#                       TCP proxy, benches/tcpcount.py) of one push of a 1-row commit
#                       and of a K-row commit; goal: requests do not grow with the
#                       chunks (K-row push <= 1-row push + its multipart parts + 2);
#                       and the requests of a standby's idle polls (goal: one request
#                       per poll, answered 304)
# The replication lag on s3:// is measured by `REMOTE_KIND=s3 benches/replication.sh`
# (docs/BENCHMARKS_REPLICATION_S3.md).
#
# Method as in benches/remotes.sh: throwaway clusters on a private copy of the installed
# PostgreSQL 15 + pgvc, Unix sockets only; pgvc's times inside the server
# (clock_timestamp() around the statement); ratios against a baseline of the same run.
set -euo pipefail

NAME=s3.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/lib.sh"
parse_args 2,31 "1,2" "$@"
check_only 2
RESULT_WIDTH=66

if ((QUICK)); then
    N=100000 K=10000 RUNS=2 IDLE_S=5
    OUT=${OUT:-/tmp/pgvc-bench-s3-quick.md}
else
    N=1000000 K=100000 RUNS=3 IDLE_S=10
    OUT=${OUT:-$ROOT/docs/BENCHMARKS_S3.md}
fi
INTERVAL_MS=100
BUCKET=pgvc-bench

cause() { :; }

make_work pgvc-bench-s3
NODE_NAMES[s]=standby
REMOTES=$WORK/remotes

start() {
    moto_start $BUCKET
    counting_proxy
    cluster_start data 51000 "${S3_CONF[@]}"
    bench_schema template1 </dev/null
    new_dir "$REMOTES"
}

# spread N K: condition selecting K of the ids 1..N, evenly.
spread() { echo "id % $(($1 / $2)) = 0"; }

# ---------------------------------------------------------------------------------------
# 1. Push and clone of N rows: s3:// vs file://.
# ---------------------------------------------------------------------------------------
bench_push_clone() {
    log "1. push and clone of $N rows, s3:// vs file:// ($RUNS runs)"
    section 1
    new_db src
    new_tracked src "$N"
    local root r kind url dir first
    root=$(sql src "SELECT vc.root_hash()")
    declare -A push=() clone=() bytes=()
    local moto_push="" moto_clone=""   # CPU time of the moto process (ms) per s3 run
    for ((r = 1; r <= RUNS; r++)); do
        # Odd runs start with s3, even runs with file.
        local order="s3 file"
        ((r % 2)) || order="file s3"
        for kind in $order; do
            if [[ $kind == file ]]; then
                dir=$REMOTES/f$r
                new_dir "$dir"
                url="file://$dir"
            else
                url=$(s3_url $BUCKET "push$r")
            fi
            sql src "SELECT vc.remote_add('${kind}$r', '$url')" >/dev/null
            settle
            local c0
            c0=$(cpu_ticks "$MOTO_PID")
            push[$kind]+=" $(ms src "SELECT vc.push('${kind}$r')")"
            [[ $kind == s3 ]] && moto_push+=" $((($(cpu_ticks "$MOTO_PID") - c0) * 10))"
            [[ $kind == file ]] && bytes[$r]=$(dir_bytes "$dir")
            new_db "clone_${kind}$r"
            settle
            c0=$(cpu_ticks "$MOTO_PID")
            clone[$kind]+=" $(ms "clone_${kind}$r" "SELECT vc.clone('$url')")"
            [[ $kind == s3 ]] && moto_clone+=" $((($(cpu_ticks "$MOTO_PID") - c0) * 10))"
            [[ $(sql "clone_${kind}$r" "SELECT vc.root_hash()") == "$root" ]] \
                || { echo "$NAME: the clone from $url differs from the source" >&2; exit 1; }
            sql postgres "DROP DATABASE clone_${kind}$r"
        done
        log "   run $r: push s3/file${push[s3]##* } /${push[file]##* } ms, clone s3/file${clone[s3]##* } /${clone[file]##* } ms"
    done
    local ps pf cs cf pr cr b=${bytes[1]}
    # shellcheck disable=SC2086
    ps=$(median ${push[s3]}) pf=$(median ${push[file]}) cs=$(median ${clone[s3]}) cf=$(median ${clone[file]})
    pr=$(paired_ratio "${push[file]}" "${push[s3]}")
    cr=$(paired_ratio "${clone[file]}" "${clone[s3]}")
    md "## 1. Push and clone: s3:// vs file://" "" \
        "\`SELECT vc.push('<remote>')\` of the committed $N-row table to an empty remote, and" \
        "\`SELECT vc.clone('<url>')\` of it into an empty database, timed inside the server, fresh" \
        "session each, \`sync\` + CHECKPOINT before each. The \`s3://\` remote is a prefix of a" \
        "bucket of moto on loopback (path-style, HTTP); the \`file://\` remote a directory on the" \
        "same disk. $RUNS runs, a fresh remote each, alternating which kind goes first; medians," \
        "and the median of the per-run ratios. Every clone's root hash is checked against the" \
        "source's. Information (no goal): moto is a single-process Python server that keeps" \
        "objects in memory, so the ratio says what pgvc's S3 path costs against moto, not what" \
        "AWS S3 would take." "" \
        "| | file:// (ms) | s3:// (ms) | ratio s3 / file | s3:// throughput |" "|---|---:|---:|---:|---:|" \
        "| push of $N rows ($(human "$b") written) | $pf | $ps | $pr | $(mibs "$b" "$ps") MiB/s |" \
        "| clone of $N rows | $cf | $cs | $cr | $(mibs "$b" "$cs") MiB/s |" "" \
        "Runs (ms): push file${push[file]}, s3${push[s3]}; clone file${clone[file]}, s3${clone[s3]}." "" \
        "Where the extra time of \`s3://\` goes: the moto process (single-threaded Python) used" \
        "$(median $moto_push) ms of CPU during the median s3 push (runs:$moto_push) and" \
        "$(median $moto_clone) ms during the median s3 clone (runs:$moto_clone), against" \
        "$(calc "$(median ${push[s3]}) - $(median ${push[file]})" 0) and $(calc "$(median ${clone[s3]}) - $(median ${clone[file]})" 0) ms of extra time:" \
        "the S3 server's own work, which a real S3 does elsewhere and in parallel." ""
    result 1.push "push of $N rows: s3:// vs file:// (median of per-run ratios)" "info" "$pf ms" "$ps ms" "$pr" "info"
    result 1.clone "clone of $N rows: s3:// vs file://" "info" "$cf ms" "$cs ms" "$cr" "info"
}

# ---------------------------------------------------------------------------------------
# 2. Requests and bytes per push; a standby's idle polls.
# ---------------------------------------------------------------------------------------
# mark: the request count and proxy bytes now (MARK_REQ, MARK_UP, MARK_DOWN, MARK_LINE).
mark() {
    local b
    b=($(proxy_bytes))
    MARK_UP=${b[0]} MARK_DOWN=${b[1]}
    MARK_LINE=$(wc -l <"$WORK/moto.log")
}
# since_mark: "requests up_bytes down_bytes parts kinds" since mark (kinds: e.g.
# "GET:3 PUT:2"; parts: multipart part uploads).
since_mark() {
    local b lines
    b=($(proxy_bytes))
    lines=$(tail -n +$((MARK_LINE + 1)) "$WORK/moto.log" | grep 'HTTP/1.1' || true)
    local n parts kinds
    n=$(printf '%s\n' "$lines" | grep -c 'HTTP/1.1' || true)
    parts=$(printf '%s\n' "$lines" | grep -c 'partNumber=' || true)
    kinds=$(printf '%s\n' "$lines" | grep -o '"[^A-Z]*\(GET\|PUT\|POST\|HEAD\|DELETE\) ' \
        | grep -o '[A-Z]*' | sort | uniq -c | awk '{printf "%s%s:%s", sep, $2, $1; sep = " "}')
    echo "$n $((b[0] - MARK_UP)) $((b[1] - MARK_DOWN)) $parts ${kinds:-none}"
}

bench_requests() {
    log "2. requests and bytes per push (1 row, $K rows), idle polls"
    section 2
    new_db counted
    new_tracked counted "$N"
    local url
    url=$(s3_url $BUCKET counted "$PROXY_ENDPOINT")
    sql counted "SELECT vc.remote_add('origin', '$url'); SELECT vc.push()" >/dev/null
    local case k cond rows=() ids=() one_req="" one_parts=""
    for case in "1:id = $((N / 2))" "$K:$(spread "$N" "$K")"; do
        k=${case%%:*} cond=${case#*:}
        touch_rows counted "$cond"
        local chunk0 chunk1
        chunk0=$(sql counted "SELECT coalesce(sum(length(data)), 0) FROM vc.chunks")
        sql counted "SELECT vc.commit('$k rows')" >/dev/null
        chunk1=$(sql counted "SELECT coalesce(sum(length(data)), 0) FROM vc.chunks")
        mark
        sql counted "SELECT vc.push()" >/dev/null
        local m=($(since_mark))
        log "   push of a $k-row commit: ${m[0]} requests (${m[*]:4}), ${m[1]} B up, ${m[2]} B down, ${m[3]} parts"
        rows+=("| $k | $((chunk1 - chunk0)) ($(human $((chunk1 - chunk0)))) | ${m[0]} | ${m[*]:4} | ${m[3]} | ${m[1]} ($(human "${m[1]}")) | ${m[2]} ($(human "${m[2]}")) |")
        if [[ $k == 1 ]]; then
            one_req=${m[0]} one_parts=${m[3]}
        else
            local bound=$((one_req - one_parts + m[3] + 2)) v
            v=$( ((m[0] <= bound)) && echo PASS || echo MISS)
            result 2.requests "requests of a $K-row push vs a 1-row push (+ parts + 2)" "<= $bound" "$one_req" "${m[0]}" "-" "$v"
            ids+=("2.requests:$v")
        fi
        result "2.bytes.$k" "bytes up / down of a $k-row push" "info" "-" "$(human "${m[1]}") / $(human "${m[2]}")" "-" "info"
    done
    # A standby following the remote through the proxy, idle: its polls.
    cluster_start s 52000 "${S3_CONF[@]}" "vc.database = 'postgres'" \
        "vc.read_replica_remote = 'origin'" "vc.replication_interval = $INTERVAL_MS"
    on s sql postgres "CREATE EXTENSION pgvc; SELECT vc.clone('$url')" >/dev/null
    local head i
    head=$(sql counted "SELECT vc.hashof('main')")
    for ((i = 0; i < 100; i++)); do
        [[ $(on s sql postgres "SELECT coalesce(vc.hashof('main'), '')") == "$head" ]] && break
        sleep 0.1
    done
    sleep 1
    mark
    local n304_0 n304_1
    n304_0=$(moto_requests 304)
    sleep "$IDLE_S"
    local idle=($(since_mark))
    n304_1=$(moto_requests 304)
    local polls=$((IDLE_S * 1000 / INTERVAL_MS)) answered=$((n304_1 - n304_0)) v
    v=$( ((idle[0] <= polls + 2 && answered >= idle[0] - 1)) && echo PASS || echo MISS)
    log "   idle standby, $IDLE_S s at interval $INTERVAL_MS ms: ${idle[0]} requests (${idle[*]:4}), $answered answered 304, ${idle[1]} B up, ${idle[2]} B down"
    result 2.idle "standby idle ${IDLE_S} s: requests (goal: one per poll, 304)" "<= $((polls + 2))" "$polls polls" "${idle[0]} ($answered x 304)" "-" "$v"
    ids+=("2.idle:$v")
    md "## 2. Requests and bytes per push; idle polls" "" \
        "The $N-row table pushed to an \`s3://\` prefix through a counting TCP proxy" \
        "(\`benches/tcpcount.py\`: bytes on the wire both ways, HTTP headers included); then an" \
        "UPDATE of k rows (one row; $K rows spread evenly), \`vc.commit()\`, and one timed" \
        "\`vc.push()\` in a fresh session. Requests: the lines moto's log gained during the push" \
        "(one per request), by method; parts: multipart part uploads (a pack above 16 MiB goes up" \
        "in 8 MiB parts). New chunk bytes: what the commit added to \`vc.chunks\` (encoded)." \
        "**Goal**: a push's requests do not grow with its chunks: the $K-row push makes at most" \
        "the 1-row push's requests, plus its multipart parts, plus 2 (a multipart upload's start" \
        "and completion)." "" \
        "| changed rows | new chunk bytes | requests | by method | parts | bytes up | bytes down |" \
        "|---:|---:|---:|---|---:|---:|---:|" "${rows[@]}" "" \
        "**Idle polls**: a standby (\`vc.replication_interval = $INTERVAL_MS\`) following the same" \
        "prefix through the proxy, caught up, left idle for $IDLE_S s: ${idle[0]} requests" \
        "(${idle[*]:4}), $answered of them answered \`304 Not Modified\` (the manifest is asked for" \
        "with \`If-None-Match\` and its last ETag), ${idle[1]} B up and ${idle[2]} B down in all," \
        "$(calc "${idle[1]} / (${idle[0]} > 0 ? ${idle[0]} : 1)" 0) B up and" \
        "$(calc "${idle[2]} / (${idle[0]} > 0 ? ${idle[0]} : 1)" 0) B down per request." \
        "**Goal**: one request per poll ($polls polls in $IDLE_S s), answered 304." ""
    explain "${ids[@]}"
}

write_report() {
    local rev
    rev=$(rev_at_start)
    {
        echo "# pgvc S3 benchmarks"
        echo
        echo "Written by \`benches/s3.sh\`; do not edit by hand. Reproduce with \`benches/s3.sh\`"
        echo "(as root, with the release build installed by \`scripts/install.sh\` and moto by"
        echo "\`scripts/setup.sh\`); \`benches/s3.sh --quick\` for a smoke run. Replication lag through"
        echo "a bucket: \`docs/BENCHMARKS_REPLICATION_S3.md\`."
        echo
        report_command
        report_run
        report_machine "file:// remotes on $(fs_of "$REMOTES"); moto $(/opt/pgvc-moto/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?') on loopback, in memory; "
        echo "- **PostgreSQL**: $PG_VERSION; \`shared_buffers = 1GB\`, \`max_wal_size = 8GB\`, \`checkpoint_timeout = 30min\`, \`wal_level = logical\`, \`shared_preload_libraries = 'pgvc'\`, S3 credentials in \`vc.s3_access_key_id\`/\`vc.s3_secret_access_key\`, other settings default"
        echo "- **pgvc**: commit $rev at the start of the run; release build (pgvc.so built $SO_DATE, sha256 $SO_SHA...)"
        echo "- **Sizes**: N = $N rows, K = $K; table \`t (id int primary key, name text, price numeric(10,2), ts timestamptz)\`, values \`(g, md5(g::text), (g * 7919 % 1000000) / 100.0, '2024-01-01' + g * 17 s)\`."
        echo
        report_summary 1 2
        report_investigate " (or \`--no-children\` for self time)"
    } >"$OUT"
}

main() {
    bench_begin
    start
    log "cluster on $WORK, port ${PORTS[data]}, moto on $MOTO_PORT ($PG_VERSION, pgvc.so $SO_SHA)"
    if wanted 1; then bench_push_clone; fi
    if wanted 2; then bench_requests; fi
    collect_results
    write_report
    print_summary 16 70 12
}

main
