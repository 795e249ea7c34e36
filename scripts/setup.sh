#!/usr/bin/env bash
# Installs what building and testing pgvc needs on Debian 12 (run as root).
# Idempotent: every step checks first and does nothing when already done, so
# `make build`/`make test` can run it every time at little cost.
set -euo pipefail

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PGRX_VERSION=0.18.1
PGRX_TEST_PGDATA=/tmp/pgrx-test-pgdata
PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev sudo pkg-config libssl-dev)

export PATH="$HOME/.cargo/bin:$PATH"
cd "$(dirname "$0")/.."

step() { echo "setup: $*"; }

# 1. System packages: PostgreSQL 15 server and headers, libclang for pgrx's bindgen,
#    sudo because `cargo pgrx test --runas` runs the test server through it,
#    pkg-config + libssl-dev for building cargo-pgrx (its TLS pulls in openssl-sys).
missing=()
for p in "${PACKAGES[@]}"; do
    # `dpkg -s` alone also succeeds for removed packages whose config files remain.
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    step "system packages present"
fi

# 2. cargo-pgrx, pinned to the pgrx version in Cargo.toml (they must match).
if cargo pgrx --version 2>/dev/null | grep -qx "cargo-pgrx $PGRX_VERSION"; then
    step "cargo-pgrx $PGRX_VERSION present"
else
    step "installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
    cargo install --locked cargo-pgrx --version "$PGRX_VERSION"
fi

# 3. Point pgrx at the system PostgreSQL 15. Only when not yet done: `init` again
#    would make pgrx rebuild everything.
if grep -q '^pg15 *=' "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
    step "pgrx already initialised for pg15"
else
    step "cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi

# 4. The OS user that runs every test server (PostgreSQL refuses to run as root).
#    The postgresql-15 package creates it; this covers a machine where it was removed.
if id postgres >/dev/null 2>&1; then
    step "user postgres present"
else
    step "creating user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# 5. Where `cargo pgrx test --runas postgres` puts its cluster: it must be writable
#    by postgres, who creates a per-run data dir in it. Nothing under target/ needs
#    to be readable by postgres (checked from a checkout in /root, mode 0700): the
#    test extension is installed into the system PostgreSQL dirs, and the server
#    runs in this pgdata dir.
install -d -o postgres -g postgres -m 0755 "$PGRX_TEST_PGDATA"
step "test pgdata dir $PGRX_TEST_PGDATA ready"

# 6. Test servers whose test process is gone (killed run, or pgrx's exit hook not
#    run): stop them and free their dirs. Both kinds of dir are named after the pid
#    of the test process that made them: <pgdata>/15-<pid>, /tmp/pgvc-test-<pid>-<n>.
for d in "$PGRX_TEST_PGDATA"/15-* /tmp/pgvc-test-*-*; do
    [ -d "$d" ] || continue
    pid=${d##*/}; pid=${pid#15-}; pid=${pid#pgvc-test-}; pid=${pid%%-*}
    [ -d "/proc/$pid" ] && continue
    data=$d; [ -d "$d/data" ] && data=$d/data
    step "removing stale test cluster $d"
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$data" -m immediate stop \
        >/dev/null 2>&1 || true
    rm -rf "$d"
done

# 7. The S3-compatible server the S3 tests run against: moto in server mode, from
#    PyPI, in its own virtual environment (Debian's Python refuses system-wide pip
#    installs). Pinned, so that every machine tests against the same server.
MOTO_VENV=/opt/pgvc-moto
MOTO_VERSION=5.2.1
if [ -x "$MOTO_VENV/bin/moto_server" ] && "$MOTO_VENV/bin/pip" show moto 2>/dev/null | grep -x "Version: $MOTO_VERSION" >/dev/null; then
    step "moto $MOTO_VERSION present"
else
    step "installing moto[server] $MOTO_VERSION into $MOTO_VENV"
    PY=$(command -v python3 || true)
    if [ -z "$PY" ] || ! "$PY" -m venv --help >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3 python3-venv >/dev/null
        PY=$(command -v python3)
    fi
    rm -rf "$MOTO_VENV"
    "$PY" -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi
