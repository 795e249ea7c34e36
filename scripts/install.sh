#!/usr/bin/env bash
# Builds the release package and installs it into the system PostgreSQL 15.
#
# `cargo pgrx install` rewrites pgvc.so in place, which crashes every running server
# that has it mapped (SIGSEGV). `install` replaces the file instead (new inode), so
# running servers keep the old code until they restart and new backends get the new.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
out=target/pgvc-package
rm -rf "$out"
cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$out" >/dev/null
libdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)/extension
install -m 0755 "$out$libdir/pgvc.so" "$libdir/pgvc.so"
install -m 0644 "$out$sharedir"/pgvc* "$sharedir/"
echo "install: pgvc $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2) into $libdir and $sharedir"
