//! `#[pg_test]`s: run inside a real PostgreSQL 15 by `cargo pgrx test`. One file per
//! feature. Helpers here run SQL and capture errors (SQLSTATE and message) inside a
//! subtransaction, so a test can assert both the error and that nothing changed.

#[cfg(any(test, feature = "pg_test"))]
mod backups;
#[cfg(any(test, feature = "pg_test"))]
mod branches;
#[cfg(any(test, feature = "pg_test"))]
mod commit;
#[cfg(any(test, feature = "pg_test"))]
mod constraints;
#[cfg(any(test, feature = "pg_test"))]
mod copy;
#[cfg(any(test, feature = "pg_test"))]
mod errors;
#[cfg(any(test, feature = "pg_test"))]
mod history;
#[cfg(any(test, feature = "pg_test"))]
mod keyless;
#[cfg(any(test, feature = "pg_test"))]
mod keylog;
#[cfg(test)]
mod layers;
#[cfg(any(test, feature = "pg_test"))]
mod merge;
#[cfg(any(test, feature = "pg_test"))]
mod partitions;
#[cfg(any(test, feature = "pg_test"))]
mod remotes;
#[cfg(any(test, feature = "pg_test"))]
mod replication;
#[cfg(any(test, feature = "pg_test"))]
mod schema;
#[cfg(any(test, feature = "pg_test"))]
mod storage;
#[cfg(any(test, feature = "pg_test"))]
mod store;
#[cfg(any(test, feature = "pg_test"))]
mod tags;
#[cfg(any(test, feature = "pg_test"))]
mod trust;
#[cfg(any(test, feature = "pg_test"))]
mod types;

#[cfg(any(test, feature = "pg_test"))]
pub mod util {
    use pgrx::prelude::*;

    pub fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn int(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: NULL"))
    }

    /// Tests that change the replication role (the one row of `vc.replication`) run
    /// one at a time: concurrent ones deadlock on that row and on HEAD's.
    pub fn one_role_changer_at_a_time() {
        run("SELECT pg_advisory_xact_lock(7283519, 100)");
    }

    /// Runs `sql` in a subtransaction; returns "SQLSTATE: message" of its error, or
    /// None when it succeeded (its effects are then rolled back too).
    pub fn error_of(sql: &str) -> Option<String> {
        // Made once per session: a test may have switched to another role since.
        if text("SELECT to_regprocedure('pg_temp.err_of(text)')::text").is_none() {
            make_error_of();
        }
        text(&format!(
            "SELECT pg_temp.err_of({})",
            pgrx::spi::quote_literal(sql)
        ))
    }

    fn make_error_of() {
        run("CREATE OR REPLACE FUNCTION pg_temp.err_of(q text) RETURNS text LANGUAGE plpgsql AS $$ \
             BEGIN EXECUTE q; RAISE EXCEPTION USING ERRCODE = 'ZZ999', MESSAGE = 'no error'; \
             EXCEPTION WHEN SQLSTATE 'ZZ999' THEN RETURN NULL; \
             WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$");
    }

    /// Asserts that `sql` fails with `state` and a message containing `needle`.
    pub fn expect_error(sql: &str, state: &str, needle: &str) {
        let e =
            error_of(sql).unwrap_or_else(|| panic!("expected {state} from {sql}, it succeeded"));
        assert!(
            e.starts_with(state) && e.contains(needle),
            "{sql}: expected {state} containing {needle:?}, got {e:?}"
        );
    }

    /// A fingerprint of pgvc's state: refs, head, chunk count.
    pub fn vc_state() -> String {
        text("SELECT coalesce(string_agg(name || '=' || encode(hash, 'hex'), ',' ORDER BY name), '') \
              || '|' || (SELECT branch FROM vc.head) || '|' || (SELECT count(*) FROM vc.chunks) FROM vc.refs")
        .unwrap_or_default()
    }
}
