# Helpers shared by the benchmark scripts (sourced; they set their own options).
# Each needs only its arguments, except md (appends to $SECTION, the current report
# section) and free_port (also avoids sockets in $WORK and ports in $PORTS, if set).

# free_port BASE: a TCP port from BASE..BASE+4999 on that no local server listens.
# The clusters listen on Unix sockets in $WORK only, so no port can clash; we still pick
# one that no local server uses.
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

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
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
max() { printf '%s\n' "$@" | sort -g | tail -1; }

# Bytes for people: 1.5 MiB, 3.0 KiB, 12 B.
human() { awk -v b="$1" 'BEGIN {
    if (b >= 1048576) printf "%.1f MiB", b / 1048576; else if (b >= 1024) printf "%.1f KiB", b / 1024;
    else printf "%d B", b }'; }
dir_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}'; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
# Appends lines to the current report section.
md() { printf '%s\n' "$@" >>"$SECTION"; }

# Wall-clock stamps, for times measured by the client.
now() { date +%s.%N; }
since_ms() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", (b - a) * 1000}'; }
