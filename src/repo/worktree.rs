//! The working-set plan: what commit, status, diff, reset and checkout must read and
//! write, as pure functions over trees and the facts the glue gathers about each
//! tracked table. The glue (`src/pg`) reads the catalog and the key logs, calls these,
//! and carries out the answer (scan a table, fetch rows by key, rewrite rows).
//!
//! - [`read_mode`]: whether a table's working changes come from its key log or from a
//!   full comparison (first commit, schema change, TRUNCATE, damaged tracking, a log too
//!   long to read).
//! - [`compare_full`] and [`compare_keys`]: the changes between a committed tree and
//!   the live rows, by a streaming merge of two sorted sequences or by key lookups.
//! - [`plan_checkout`] and [`rewrite_keys`]: which tables a checkout creates, rewrites
//!   or leaves, what it refuses before changing anything, and which keys it rewrites.
//! - [`commit_outcome`]: whether a new root makes a commit.

use crate::codec::{keyless_row_hash, load_value, CodecError, ROW_HASH_LEN};
use crate::commit::{RootValue, TableEntry};
use crate::prolly;
use crate::store::{ChunkStore, Hash, StoreError};
use std::collections::BTreeSet;

/// Why a table is compared in full rather than through its key log.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FullReason {
    /// The table is not in the commit compared against.
    NotCommitted,
    /// Its columns or primary key differ from the commit's.
    SchemaChanged,
    /// Marked by `vc.track()`, a TRUNCATE, or a restore.
    Marked,
    /// A tracking trigger was missing, disabled or replaced: writes may be unlogged.
    TrackingDamaged,
    /// The log holds more keys than are read at once.
    LogTooLong,
    /// It has no primary key: its key log cannot name rows.
    Keyless,
}

/// How a tracked table's working changes are found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Read the keys in its log and compare those rows with the tree `base`.
    Log { base: Hash },
    /// Compare every live row with the committed tree (None: nothing committed).
    Full {
        reason: FullReason,
        base: Option<Hash>,
    },
}

impl ReadMode {
    pub fn is_full(&self) -> bool {
        matches!(self, ReadMode::Full { .. })
    }
}

/// Decides how to read a table against its entry in the commit compared with
/// (`committed`). `carries` says whether that entry's tree holds the live rows as
/// they are encoded now (`repo::schema`: same or compatibly changed definition);
/// `marked` and `damaged` are the table's flag and the state of its triggers;
/// `log_too_long` is asked only when the log would otherwise be read (it costs a
/// query).
pub fn read_mode<E>(
    committed: Option<&TableEntry>,
    carries: bool,
    marked: bool,
    damaged: bool,
    keyless: bool,
    log_too_long: impl FnOnce() -> Result<bool, E>,
) -> Result<ReadMode, E> {
    let full = |reason| ReadMode::Full {
        reason,
        base: committed.map(|c| c.tree),
    };
    let Some(entry) = committed else {
        return Ok(full(FullReason::NotCommitted));
    };
    Ok(if damaged {
        full(FullReason::TrackingDamaged)
    } else if marked {
        full(FullReason::Marked)
    } else if !carries {
        full(FullReason::SchemaChanged)
    } else if keyless {
        full(FullReason::Keyless)
    } else if log_too_long()? {
        full(FullReason::LogTooLong)
    } else {
        ReadMode::Log { base: entry.tree }
    })
}

/// One row's change between a committed tree and the live table (encoded rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

/// A tree entry: encoded key and tree value.
type Entry = (Vec<u8>, Vec<u8>);

fn tree_row(store: &dyn ChunkStore, v: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    load_value(store, &v)
}

/// Compares the whole live table (`live`: encoded key and row, in key order) with the
/// tree `base` (None: nothing committed), handing each change to `f` as it is found.
/// Both sides stream: memory stays flat whatever the size of the table.
pub fn compare_full<E>(
    store: &dyn ChunkStore,
    base: Option<Hash>,
    live: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
    f: &mut dyn FnMut(Change) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<StoreError> + From<CodecError>,
{
    let committed: Box<dyn Iterator<Item = crate::store::Result<Entry>>> = match base {
        Some(root) => Box::new(prolly::iter(store, root)),
        None => Box::new(std::iter::empty()),
    };
    let mut old = committed.peekable();
    for row in live {
        let (k, v) = row?;
        // Committed keys below the live key were removed.
        while let Some(Ok((ok, _))) = old.peek() {
            if *ok >= k {
                break;
            }
            let (ok, ov) = old.next().expect("peeked")?;
            f(Change {
                key: ok,
                before: Some(tree_row(store, ov)?),
                after: None,
            })?;
        }
        if let Some(Err(_)) = old.peek() {
            old.next().expect("peeked")?;
        }
        let before = match old.peek() {
            Some(Ok((ok, _))) if *ok == k => Some(tree_row(store, old.next().expect("peeked")?.1)?),
            _ => None,
        };
        if before.as_ref() != Some(&v) {
            f(Change {
                key: k,
                before,
                after: Some(v),
            })?;
        }
    }
    for rest in old {
        let (ok, ov) = rest?;
        f(Change {
            key: ok,
            before: Some(tree_row(store, ov)?),
            after: None,
        })?;
    }
    Ok(())
}

/// Compares the live rows at some keys (`live`: encoded key and row, None where no row
/// has the key) with the tree `base`, handing each change to `f`.
pub fn compare_keys<E>(
    store: &dyn ChunkStore,
    base: Hash,
    live: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    f: &mut dyn FnMut(Change) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<StoreError> + From<CodecError>,
{
    let mut committed = prolly::Lookup::new(store, base);
    let mut live = live.into_iter();
    loop {
        // A window of keys at a time: their nodes are read one request per tree level.
        let window: Vec<_> = live.by_ref().take(LOOKUP_WINDOW).collect();
        if window.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = window.iter().map(|(k, _)| k.clone()).collect();
        committed.prefetch(&keys)?;
        for (k, after) in window {
            let before = match committed.get(&k)? {
                Some(v) => Some(tree_row(store, v)?),
                None => None,
            };
            if before != after {
                f(Change {
                    key: k,
                    before,
                    after,
                })?;
            }
        }
    }
}

/// Keys whose committed nodes are read ahead together (`compare_keys`): at most this
/// many leaves (~4 KiB each) are held at once.
const LOOKUP_WINDOW: usize = 256;

/// A tracked table as a checkout sees it.
#[derive(Debug, Clone)]
pub struct LiveTable<T> {
    /// Its name now.
    pub name: String,
    /// The name of its entry in HEAD's root, if it has one (differs after a rename).
    pub committed_name: Option<String>,
    /// Whatever the glue needs to act on the table (its catalog handle).
    pub handle: T,
}

/// What a checkout does to one table.
#[derive(Debug)]
pub enum Step<'r, T> {
    /// Move a tracked table to the target's entry `target`, named `name` there:
    /// definition (the glue plans the ALTERs) and rows.
    Rewrite {
        table: LiveTable<T>,
        name: String,
        target: &'r TableEntry,
        /// The table's entry at HEAD, if HEAD has it.
        head: Option<Box<TableEntry>>,
    },
    /// Create a table the target has and this database lacks, and load it.
    Create { name: String, entry: &'r TableEntry },
    /// A tracked table that HEAD has and the target lacks: its removal is part of
    /// the history, so it is dropped.
    Drop { table: LiveTable<T> },
    /// A tracked table neither HEAD nor the target has (never committed): left as
    /// it is.
    Leave { table: LiveTable<T> },
}

/// Why a checkout is refused before it changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutRefused {
    /// The target has a table that exists here but is not tracked.
    UntrackedExists { table: String },
    /// Two tables of the target have the same identity.
    DuplicateId { table: String },
}

/// The target's entry for a tracked table whose HEAD entry is `head` (named
/// `head_name`): by table id when both have one (so a renamed table is found), else by
/// name.
fn target_of<'r>(
    target: &'r RootValue,
    head_name: &str,
    head: Option<&TableEntry>,
) -> Option<(&'r String, &'r TableEntry)> {
    if let Some(h) = head.filter(|h| h.schema.id != 0) {
        if let Some(found) = target
            .tables
            .iter()
            .find(|(_, e)| e.schema.id == h.schema.id)
        {
            return Some(found);
        }
        if target
            .tables
            .get(head_name)
            .is_some_and(|e| e.schema.id != 0)
        {
            // A table of that name that is another table: this one was removed.
            return None;
        }
    }
    target.tables.get_key_value(head_name)
}

/// Plans a checkout of `target` over the tracked tables `tracked`, given HEAD's root.
/// `exists` says whether a relation of a (checked) name exists here. Every refusal is
/// found before the first step runs (the inner `Err`); drops come first (they free
/// names), `Create` steps last, after the tracked tables are rewritten. The outer
/// `Err` is a failure of `exists`.
#[allow(clippy::type_complexity)]
pub fn plan_checkout<'r, T, E>(
    head: &RootValue,
    target: &'r RootValue,
    tracked: Vec<LiveTable<T>>,
    mut exists: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Result<Vec<Step<'r, T>>, CheckoutRefused>, E> {
    // A table's identity names its key log: two tables of a root may not share one
    // (a commit made by pgvc never has that).
    let mut ids = BTreeSet::new();
    for (name, e) in &target.tables {
        if e.schema.id != 0 && !ids.insert(e.schema.id) {
            return Ok(Err(CheckoutRefused::DuplicateId {
                table: name.clone(),
            }));
        }
    }
    let mut drops = Vec::new();
    let mut steps = Vec::new();
    let mut claimed: BTreeSet<&'r String> = BTreeSet::new();
    let names_here: BTreeSet<String> = tracked.iter().map(|t| t.name.clone()).collect();
    for table in tracked {
        let head_name = table.committed_name.clone().unwrap_or(table.name.clone());
        let head_entry = head.tables.get(&head_name);
        match target_of(target, &head_name, head_entry) {
            Some((name, entry)) if !claimed.contains(name) => {
                claimed.insert(name);
                if name != &table.name && !names_here.contains(name) && exists(name)? {
                    return Ok(Err(CheckoutRefused::UntrackedExists {
                        table: name.clone(),
                    }));
                }
                steps.push(Step::Rewrite {
                    name: name.clone(),
                    head: head_entry.cloned().map(Box::new),
                    target: entry,
                    table,
                });
            }
            _ if head_entry.is_some() => drops.push(Step::Drop { table }),
            _ => steps.push(Step::Leave { table }),
        }
    }
    let mut create = Vec::new();
    for (name, entry) in &target.tables {
        if claimed.contains(name) {
            continue;
        }
        if !names_here.contains(name) && exists(name)? {
            return Ok(Err(CheckoutRefused::UntrackedExists {
                table: name.clone(),
            }));
        }
        create.push(Step::Create {
            name: name.clone(),
            entry,
        });
    }
    drops.extend(steps);
    drops.extend(create);
    Ok(Ok(drops))
}

/// The keys a checkout rewrites in one table: those changed in the working set since
/// HEAD (`working`), and those that differ between HEAD's tree and the target's.
/// Rewriting an unchanged row is harmless; missing a changed one is not.
pub fn rewrite_keys(
    store: &dyn ChunkStore,
    working: impl IntoIterator<Item = Vec<u8>>,
    head: Option<Hash>,
    target: Hash,
) -> Result<BTreeSet<Vec<u8>>, StoreError> {
    let mut keys: BTreeSet<Vec<u8>> = working.into_iter().collect();
    let base = head.unwrap_or_else(prolly::empty_root);
    if base != target {
        for d in prolly::diff(store, base, target) {
            keys.insert(d?.key);
        }
    }
    Ok(keys)
}

/// What a checkout writes to a table without a primary key, given the keys it
/// rewrites (`rewrite_keys`): per distinct row among them, the encoded row and the
/// number of copies the target holds (0: the row goes). `known` gives the rows of
/// keys found in the working set (the live side); a key's row is otherwise read
/// from the target, or from HEAD's tree (`head`) where the target lacks it. The
/// glue deletes every live copy of each row and inserts the target's copies.
pub fn keyless_rewrites(
    store: &dyn ChunkStore,
    keys: &BTreeSet<Vec<u8>>,
    known: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    head: Option<Hash>,
    target: Hash,
) -> Result<Vec<(Vec<u8>, u32)>, RewriteError> {
    let mut out = Vec::new();
    let mut last: Option<&[u8]> = None;
    for k in keys {
        let h = keyless_row_hash(k)?;
        if last == Some(h) {
            continue;
        }
        last = Some(h);
        let mut copies = 0u32;
        let mut row = None;
        for e in prolly::iter_from(store, target, &keyless_key_of(h, 0)) {
            let (tk, tv) = e?;
            if tk.get(..ROW_HASH_LEN) != Some(h) {
                break;
            }
            copies += 1;
            if row.is_none() {
                row = Some(load_value(store, &tv)?);
            }
        }
        let row = match row {
            Some(r) => r,
            None => match known.get(k) {
                Some(r) => r.clone(),
                None => {
                    let v = match head {
                        Some(hd) => prolly::get(store, hd, k)?,
                        None => None,
                    };
                    match v {
                        Some(v) => load_value(store, &v)?,
                        // A key in no tree and not live: nothing to write.
                        None => continue,
                    }
                }
            },
        };
        out.push((row, copies));
    }
    Ok(out)
}

/// The key of copy `copy` of the row whose hash part is `h`.
fn keyless_key_of(h: &[u8], copy: u32) -> Vec<u8> {
    let mut k = h.to_vec();
    k.extend_from_slice(&copy.to_be_bytes());
    k
}

/// A failure to read the trees a checkout compares.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Whether `root` makes a commit on a branch at `parent` (with root `parent_root`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Commit,
    /// No tracked table changed (sequence values alone do not count).
    NothingToCommit,
}

pub fn commit_outcome(
    parent: Option<Hash>,
    parent_root: &RootValue,
    root: &RootValue,
    allow_empty: bool,
) -> CommitOutcome {
    let unchanged = match parent {
        Some(_) => root.same_data(parent_root),
        None => root.tables.is_empty(),
    };
    if unchanged && !allow_empty {
        CommitOutcome::NothingToCommit
    } else {
        CommitOutcome::Commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::store_value;
    use crate::commit::{Column, TableSchema};
    use crate::prolly::Builder;
    use crate::store::MemStore;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug)]
    #[allow(dead_code)] // fields are read through Debug when a test fails
    enum E {
        Store(StoreError),
        Codec(CodecError),
    }
    impl From<StoreError> for E {
        fn from(e: StoreError) -> E {
            E::Store(e)
        }
    }
    impl From<CodecError> for E {
        fn from(e: CodecError) -> E {
            E::Codec(e)
        }
    }

    fn tree(store: &mut MemStore, rows: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash {
        let mut values = Vec::new();
        for v in rows.values() {
            values.push(store_value(store, v.clone()).unwrap());
        }
        let mut b = Builder::new(store);
        for (k, v) in rows.keys().zip(values) {
            b.push(k.clone(), v).unwrap();
        }
        b.finish().unwrap()
    }

    /// The changes between two maps, the slow obvious way.
    fn naive(
        old: &BTreeMap<Vec<u8>, Vec<u8>>,
        new: &BTreeMap<Vec<u8>, Vec<u8>>,
        keys: Option<&BTreeSet<Vec<u8>>>,
    ) -> Vec<Change> {
        let all: BTreeSet<&Vec<u8>> = old.keys().chain(new.keys()).collect();
        all.into_iter()
            .filter(|k| keys.is_none_or(|ks| ks.contains(*k)))
            .filter(|k| old.get(*k) != new.get(*k))
            .map(|k| Change {
                key: k.clone(),
                before: old.get(k).cloned(),
                after: new.get(k).cloned(),
            })
            .collect()
    }

    fn rows() -> impl Strategy<Value = BTreeMap<Vec<u8>, Vec<u8>>> {
        // Small keys collide often; some values go out of line (> inline limit).
        proptest::collection::btree_map(
            proptest::collection::vec(0u8..6, 1..3),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::collection::vec(any::<u8>(), 3000..3001)
            ],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn full_comparison_finds_exactly_the_changed_rows(old in rows(), new in rows(), committed in any::<bool>()) {
            let mut store = MemStore::new();
            let old = if committed { old } else { BTreeMap::new() };
            let base = committed.then(|| tree(&mut store, &old));
            let mut got = Vec::new();
            let live = new.iter().map(|(k, v)| Ok::<_, E>((k.clone(), v.clone())));
            compare_full(&store, base, live, &mut |c| { got.push(c); Ok(()) }).unwrap();
            prop_assert_eq!(got, naive(&old, &new, None));
        }

        #[test]
        fn key_comparison_finds_the_changed_rows_among_the_keys(
            old in rows(), new in rows(), picks in proptest::collection::vec(proptest::collection::vec(0u8..6, 1..3), 0..20)
        ) {
            let mut store = MemStore::new();
            let base = tree(&mut store, &old);
            let keys: BTreeSet<Vec<u8>> = picks.into_iter().collect();
            let live = keys.iter().map(|k| (k.clone(), new.get(k).cloned()));
            let mut got = Vec::new();
            compare_keys::<E>(&store, base, live, &mut |c| { got.push(c); Ok(()) }).unwrap();
            prop_assert_eq!(got, naive(&old, &new, Some(&keys)));
        }

        /// A checkout that rewrites `rewrite_keys` from the target turns any working
        /// set that only changed logged keys into exactly the target.
        #[test]
        fn rewriting_the_planned_keys_reaches_the_target(
            head in rows(), target in rows(), edits in proptest::collection::btree_map(proptest::collection::vec(0u8..6, 1..3), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4)), 0..10)
        ) {
            let mut store = MemStore::new();
            let head_tree = tree(&mut store, &head);
            let target_tree = tree(&mut store, &target);
            let mut working = head.clone();
            for (k, v) in &edits {
                match v {
                    Some(v) => { working.insert(k.clone(), v.clone()); }
                    None => { working.remove(k); }
                }
            }
            let keys = rewrite_keys(&store, edits.keys().cloned(), Some(head_tree), target_tree).unwrap();
            for k in keys {
                match target.get(&k) {
                    Some(v) => { working.insert(k, v.clone()); }
                    None => { working.remove(&k); }
                }
            }
            prop_assert_eq!(working, target);
        }
    }

    fn schema(cols: &[&str]) -> TableSchema {
        TableSchema::new(
            cols.iter()
                .map(|c| Column {
                    not_null: true,
                    ..Column::new(c, "integer")
                })
                .collect(),
            vec![cols[0].to_string()],
        )
    }

    fn entry(cols: &[&str], tree: Hash) -> TableEntry {
        TableEntry {
            schema: schema(cols),
            tree,
            sequences: vec![],
        }
    }

    #[test]
    fn read_mode_uses_the_log_only_when_it_can_be_trusted() {
        let t = prolly::empty_root();
        let e = entry(&["id", "v"], t);
        let live = true;
        let never = || -> Result<bool, ()> { panic!("log length asked needlessly") };
        assert_eq!(
            read_mode(None, live, false, false, false, never),
            Ok(ReadMode::Full {
                reason: FullReason::NotCommitted,
                base: None
            })
        );
        assert_eq!(
            read_mode(Some(&e), live, false, true, false, never).map(|m| m.is_full()),
            Ok(true)
        );
        assert_eq!(
            read_mode(Some(&e), live, true, false, false, never).map(|m| m.is_full()),
            Ok(true)
        );
        assert_eq!(
            read_mode(Some(&e), false, false, false, false, never),
            Ok(ReadMode::Full {
                reason: FullReason::SchemaChanged,
                base: Some(t)
            })
        );
        assert_eq!(
            read_mode(Some(&e), live, false, false, false, || Ok::<_, ()>(true)),
            Ok(ReadMode::Full {
                reason: FullReason::LogTooLong,
                base: Some(t)
            })
        );
        assert_eq!(
            read_mode(Some(&e), live, false, false, false, || Ok::<_, ()>(false)),
            Ok(ReadMode::Log { base: t })
        );
        // Without a primary key the log names no row: always a full comparison.
        assert_eq!(
            read_mode(Some(&e), live, false, false, true, never),
            Ok(ReadMode::Full {
                reason: FullReason::Keyless,
                base: Some(t)
            })
        );
    }

    #[test]
    fn checkout_plan_refuses_before_any_step_and_creates_last() {
        let t = prolly::empty_root();
        let mut target = RootValue::default();
        target.tables.insert("public.a".into(), entry(&["id"], t));
        target.tables.insert("public.b".into(), entry(&["id"], t));
        let head = RootValue::default();
        let live = |n: &str, committed: Option<&str>| LiveTable {
            name: n.into(),
            committed_name: committed.map(String::from),
            handle: (),
        };
        // b exists untracked: refused.
        let r = plan_checkout(&head, &target, vec![live("public.a", None)], |n| {
            Ok::<_, E>(n == "public.b")
        });
        assert!(matches!(
            r,
            Ok(Err(CheckoutRefused::UntrackedExists { .. }))
        ));
        // Two tables with one identity (a hostile commit): refused.
        let mut twins = target.clone();
        for e in twins.tables.values_mut() {
            e.schema.id = 42;
        }
        let r = plan_checkout(&head, &twins, Vec::<LiveTable<()>>::new(), |_| {
            Ok::<_, E>(false)
        });
        assert!(matches!(r, Ok(Err(CheckoutRefused::DuplicateId { .. }))));
        // a rewritten, c left (never committed), d dropped (HEAD has it), b created;
        // drops first and creations last.
        let mut head = RootValue::default();
        head.tables.insert("public.d".into(), entry(&["id"], t));
        let kinds = |steps: Vec<Step<()>>| -> Vec<String> {
            steps
                .iter()
                .map(|s| match s {
                    Step::Rewrite { table, name, .. } => {
                        format!("rewrite {} as {name}", table.name)
                    }
                    Step::Create { name, .. } => format!("create {name}"),
                    Step::Leave { table } => format!("leave {}", table.name),
                    Step::Drop { table } => format!("drop {}", table.name),
                })
                .collect()
        };
        let steps = plan_checkout(
            &head,
            &target,
            vec![
                live("public.c", None),
                live("public.a", None),
                live("public.d", Some("public.d")),
            ],
            |_| Ok::<_, E>(false),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            kinds(steps),
            [
                "drop public.d",
                "leave public.c",
                "rewrite public.a as public.a",
                "create public.b"
            ]
        );
        // Renamed upstream: found by its id, rewritten under the new name; renamed
        // here (uncommitted): found by its committed name.
        let mut e = entry(&["id"], t);
        e.schema.id = 42;
        let mut head = RootValue::default();
        head.tables.insert("public.old".into(), e.clone());
        let mut target = RootValue::default();
        target.tables.insert("public.new".into(), e);
        let steps = plan_checkout(
            &head,
            &target,
            vec![live("public.mine", Some("public.old"))],
            |_| Ok::<_, E>(false),
        )
        .unwrap()
        .unwrap();
        assert_eq!(kinds(steps), ["rewrite public.mine as public.new"]);
    }

    #[test]
    fn commit_outcome_ignores_sequences_and_honours_allow_empty() {
        let t = prolly::empty_root();
        let mut root = RootValue::default();
        assert_eq!(
            commit_outcome(None, &RootValue::default(), &root, false),
            CommitOutcome::NothingToCommit
        );
        root.tables.insert("public.a".into(), entry(&["id"], t));
        assert_eq!(
            commit_outcome(None, &RootValue::default(), &root, false),
            CommitOutcome::Commit
        );
        let parent = Some(t);
        let mut moved_seq = root.clone();
        moved_seq
            .tables
            .get_mut("public.a")
            .unwrap()
            .sequences
            .push(crate::commit::SequenceState {
                name: "public.a_id_seq".into(),
                column: Some("id".into()),
                last_value: 9,
                is_called: true,
            });
        assert_eq!(
            commit_outcome(parent, &root, &moved_seq, false),
            CommitOutcome::NothingToCommit
        );
        assert_eq!(
            commit_outcome(parent, &root, &moved_seq, true),
            CommitOutcome::Commit
        );
    }
}
