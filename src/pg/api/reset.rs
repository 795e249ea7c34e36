//! `vc.reset(ref)`: hard reset. The tracked tables become exactly their state at
//! `ref` and the current branch points there; uncommitted changes are discarded.
//!
//! All checks run before the first row is touched, writers are locked out for the
//! duration (EXCLUSIVE lock: readers go on), and it is one transaction: a failure
//! leaves everything as it was. Only the rows that differ are rewritten: the tree diff
//! HEAD -> target plus the keys changed in the working set, so the cost follows the
//! size of the change, not of the table.

use crate::commit::{Commit, RootValue};
use crate::pg::error::{null_arg, run, VcResult};
use crate::pg::refs::{current_branch, ref_hash, resolve, set_branch};
use crate::pg::spi::with_spi;
use crate::pg::store::PgStore;
use pgrx::prelude::*;

pub fn reset(spec: &str) -> VcResult<()> {
    crate::pg::replication::refuse_on_standby("vc.reset()")?;
    let store = PgStore::new();
    let branch = current_branch(true)?;
    let head = ref_hash(&branch)?;
    let target = resolve(&store, spec)?;
    let target_root = RootValue::read(&store, &Commit::read(&store, &target)?.root)?;
    crate::pg::checkout::checkout_root(
        &store,
        head,
        &target_root,
        spec,
        crate::pg::types::NewLabels::Refuse,
    )?;
    if head != Some(target) {
        crate::pg::replication::primary::branch_moved(set_branch(&branch, head, target)?)?;
    }
    Ok(())
}

#[pg_extern(name = "_reset", volatile)]
fn vc_reset(r#ref: Option<&str>) {
    run(|| {
        let spec = r#ref.ok_or_else(|| null_arg("ref"))?;
        with_spi(|| reset(spec))
    })
}
