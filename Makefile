# Front door for building, testing and trying pgvc. Every target runs
# scripts/setup.sh first, which installs what a fresh Debian 12 machine lacks.

SHELL := /bin/bash
PG_CONFIG := /usr/lib/postgresql/15/bin/pg_config
PGRX_TEST_PGDATA := /tmp/pgrx-test-pgdata
# Installs the release build into the system PostgreSQL 15 (we run as root).
PGRX_INSTALL := scripts/install.sh
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup build install test demo tour

setup:
	scripts/setup.sh

build: setup
	cargo build

install: setup
	$(PGRX_INSTALL)

# Fast checks first; the cluster tier needs the release build installed, because its
# servers load pgvc from the system PostgreSQL's lib dir, and the previous release
# (git tag v0.1.0) built into a private copy of PostgreSQL for the upgrade test.
test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_TEST_PGDATA)
	$(PGRX_INSTALL)
	PGVC_PREVIOUS_BIN=$$(scripts/build-previous.sh) PGVC_HARNESS_PRELOAD=1 \
		cargo test -p pgvc-cluster-tests -- --test-threads=2

# The main job: a primary and a standby, a failover, fencing and rejoin; through a
# directory, or with `make demo REMOTE=s3` through a bucket of a local S3 server.
demo: install
	REMOTE=$(or $(REMOTE),file) scripts/demo.sh

# Version control on one server: track, commit, diff, log, as_of, reset, push, clone.
tour: install
	scripts/demo.sh --tour

# Benchmarks on a throwaway cluster; rewrites docs/BENCHMARKS.md (about 15 minutes).
# benches/run.sh --quick is a 2-minute smoke run that leaves the docs alone.
.PHONY: bench
# Each script writes its own figures: docs/BENCHMARKS.md (commits, tracking, storage,
# memory), docs/BENCHMARKS_REMOTES.md (push, clone), docs/BENCHMARKS_BACKUPS.md,
# docs/BENCHMARKS_REPLICATION.md (lag, apply vs logical replication, push overhead),
# docs/BENCHMARKS_STORAGE.md (soak with remote compaction, local gc),
# docs/BENCHMARKS_SCHEMA.md (commit and standby apply after ADD COLUMN, ALTER TYPE),
# docs/BENCHMARKS_S3.md (push and clone s3:// vs file://, requests and bytes per push,
# idle polls) and docs/BENCHMARKS_REPLICATION_S3.md (replication through a bucket).
bench: install
	benches/run.sh
	benches/remotes.sh
	benches/backups.sh
	benches/replication.sh
	benches/storage.sh
	benches/schema.sh
	benches/branches.sh
	benches/multi_primary.sh
	benches/s3.sh
	REMOTE_KIND=s3 benches/replication.sh
