//! The standby side: bring each followed branch to the remote's head, applying the
//! checked-out one to the live tables, in the caller's transaction (one transaction
//! per worker tick: readers see the old commit or the new one).

use super::primary::{keep_on_branch, open_remote, SharedRemote};
use super::{record_epoch, record_remote_head, record_success, Config};
use crate::commit::{Commit, RootValue};
use crate::pg::catalog::tracked_tables;
use crate::pg::checkout::checkout_root;
use crate::pg::error::VcResult;
use crate::pg::refs::set_tracking_ref;
use crate::pg::refs::{current_branch, ref_hash};
use crate::pg::store::PgStore;
use crate::pg::types::NewLabels;
use crate::store::Hash;

/// What a round of the standby found.
pub enum Applied {
    /// Branches moved (0: already up to date).
    Moved(u64),
    /// Nothing local to apply to yet: waiting for `vc.clone()`.
    WaitingForClone,
}

/// Brings local branch `b` from `ours` to the remote's `theirs` (fetched, every chunk
/// verified), whatever the relation between them (a standby follows force-pushes):
/// the checked-out branch is applied to the live tables first. Refuses only a
/// concurrent move. `apply` is set for the checked-out branch (how to treat new enum
/// labels). Returns the commit now at `b`, or None when the commit adds enum labels
/// and `apply` says to add them: then only they were added, to be committed
/// before the commit is applied (a transaction may not use labels it added).
fn follow(
    cfg: &Config,
    remote: &SharedRemote,
    store: &mut PgStore,
    b: &str,
    ours: Option<Hash>,
    theirs: Hash,
    apply: Option<NewLabels>,
) -> VcResult<Option<Commit>> {
    remote.fetch(store, b, &mut |_| {})?;
    store.flush()?;
    let commit = Commit::read(&*store, &theirs)?;
    if let Some(labels) = apply {
        let target = RootValue::read(&*store, &commit.root)?;
        if checkout_root(store, ours, &target, &format!("the remote's {b}"), labels)? {
            return Ok(None);
        }
    }
    match ours {
        Some(_) => super::primary::branch_moved(crate::pg::refs::set_branch(b, ours, theirs)?)?,
        None => keep_on_branch(b, theirs)?,
    }
    set_tracking_ref(cfg.remote.as_deref().unwrap_or_default(), b, theirs)?;
    Ok(Some(commit))
}

/// One round: fetch and apply every followed branch that moved on the remote.
pub fn apply_all(cfg: &Config) -> VcResult<Applied> {
    let checked_out = current_branch(false)?;
    if ref_hash(&checked_out)?.is_none() && tracked_tables()?.is_empty() {
        return Ok(Applied::WaitingForClone);
    }
    let remote = open_remote(cfg)?;
    let manifest = remote.read_manifest()?;
    record_epoch(manifest.epoch);
    // Most rounds find nothing to do: look before taking the HEAD lock (a row lock
    // per round would cost a transaction id and WAL).
    let mut behind = false;
    let heads = cfg.remote_heads(&manifest.refs)?;
    for b in &heads {
        if let Some(theirs) = manifest.refs.get(b) {
            behind |= ref_hash(b)? != Some(*theirs);
        }
    }
    if behind {
        current_branch(true)?;
    }
    if cfg.epoch != Some(manifest.epoch) {
        super::store_epoch(manifest.epoch)?;
    }
    let mut store = PgStore::new();
    let mut moved = 0;
    let mut lag = None;
    for b in &heads {
        let Some(theirs) = manifest.refs.get(b).copied() else {
            // Reported on this branch's status row; the others go on following.
            super::record_missing(b);
            continue;
        };
        record_remote_head(b, Some(theirs));
        let ours = ref_hash(b)?;
        if ours == Some(theirs) {
            continue;
        }
        let Some(commit) = follow(
            cfg,
            &remote,
            &mut store,
            b,
            ours,
            theirs,
            (b == &checked_out).then_some(NewLabels::Add),
        )?
        else {
            // Enum labels were added: committed by this round, used by the next.
            crate::pg::worker::wake();
            return Ok(Applied::Moved(moved));
        };
        lag = Some(((super::now_us() - commit.timestamp_us) / 1000).max(0));
        moved += 1;
    }
    record_success(lag);
    Ok(Applied::Moved(moved))
}

/// `vc.rejoin(remote)`: make this (fenced or stale) server a standby of `remote`.
/// The local heads the remote lacks are kept on `fenced/<epoch>/<branch>`.
pub fn rejoin(cfg: &Config, remote_name: &str) -> VcResult<String> {
    let mut as_standby = cfg.clone();
    as_standby.remote = Some(remote_name.to_string());
    let remote = open_remote(&as_standby)?;
    let manifest = remote.read_manifest()?;
    let index = remote.index(&manifest)?;
    let checked_out = current_branch(true)?;
    let mut store = PgStore::new();
    let mut result = None;
    for b in &as_standby.remote_heads(&manifest.refs)? {
        let Some(theirs) = manifest.refs.get(b).copied() else {
            continue;
        };
        let ours = ref_hash(b)?;
        if let Some(o) = ours {
            if o != theirs && !index.contains(&o) {
                let keep = format!("fenced/{}/{b}", manifest.epoch);
                keep_on_branch(&keep, o)?;
                pgrx::notice!(
                    "pgvc rejoin: {b} had commits the remote lacks; they are kept on branch {keep}"
                );
            }
        }
        if ours != Some(theirs) {
            follow(
                &as_standby,
                &remote,
                &mut store,
                b,
                ours,
                theirs,
                (b == &checked_out).then_some(NewLabels::Refuse),
            )?;
        }
        record_remote_head(b, Some(theirs));
        if *b == checked_out {
            result = Some(theirs);
        }
    }
    super::store_role(super::Role::Standby, remote_name, manifest.epoch)?;
    record_epoch(manifest.epoch);
    record_success(None);
    Ok(result.map(|h| h.to_hex()).unwrap_or_default())
}
