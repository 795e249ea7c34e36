#!/usr/bin/env bash
# Builds the previous release of pgvc (git tag v0.1.0, or $PGVC_PREVIOUS_TAG) and
# installs it into a private copy of PostgreSQL 15 under target/previous/pg, for the
# upgrade test (pgrx_tests/tests/upgrade.rs). The system PostgreSQL keeps the current
# build. Prints the copy's bin directory on stdout; everything else goes to stderr.
# Rebuilds only when the tag moved.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
TAG=${PGVC_PREVIOUS_TAG:-v0.1.0}
PG=/usr/lib/postgresql/15
OUT=$PWD/target/previous
BIN=$OUT/pg/usr/lib/postgresql/15/bin
# The tag's commit, also when a clone came without tags.
want=$(git rev-parse -q --verify "$TAG^{commit}" || echo c1ecfa9fad0e6203270b2275a8813cff85099b82)
if [ -f "$OUT/built" ] && [ "$(cat "$OUT/built")" = "$want" ]; then
    echo "$BIN"
    exit 0
fi
rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/pg/usr/lib/postgresql" "$OUT/pg/usr/share/postgresql"
git archive "$want" | tar -x -C "$OUT/src"
echo "build-previous: building pgvc $TAG" >&2
(cd "$OUT/src" && CARGO_TARGET_DIR="$OUT/target" cargo pgrx package --pg-config "$PG/bin/pg_config" >&2)
# PostgreSQL's binaries find their lib and share directories relative to their own
# location, so a copy of the installation is a second, independent one.
cp -a "$PG" "$OUT/pg/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$OUT/pg/usr/share/postgresql/"
rm -f "$OUT"/pg/usr/share/postgresql/15/extension/pgvc* "$OUT"/pg/usr/lib/postgresql/15/lib/pgvc.so
pkg=$OUT/target/release/pgvc-pg15
cp "$pkg"/usr/lib/postgresql/15/lib/pgvc.so "$OUT/pg/usr/lib/postgresql/15/lib/"
cp "$pkg"/usr/share/postgresql/15/extension/pgvc* "$OUT/pg/usr/share/postgresql/15/extension/"
chmod -R a+rX "$OUT"
echo "$want" > "$OUT/built"
echo "$BIN"
