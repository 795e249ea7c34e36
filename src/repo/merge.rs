//! Three-way merge (docs/BRANCHES.md), as pure functions over the chunk store.
//!
//! `merge_tree` merges one table's tree: the diffs base -> ours and base -> theirs are
//! read in key order (`prolly::diff`, whose cost follows the changes) and merged like
//! two sorted lists; theirs' changes that do not conflict are applied to ours
//! (`prolly::apply_edits`). Rows changed on both sides merge cell by cell; a cell
//! changed differently on both sides, or a delete against an update, is a conflict,
//! and the row keeps our value. Tables without a primary key are multisets: the count
//! of each distinct row becomes base + both sides' changes, with no conflicts.
//!
//! `merge_roots` merges root values table by table; `merge_base` finds the commit
//! both heads descend from.

use crate::codec::{
    decode_row, encode_row, load_value, store_value, Cell, CodecError, ROW_HASH_LEN,
};
use crate::commit::{
    log as commit_log, Commit, CommitError, RootValue, SequenceState, TableEntry, TableSchema,
};
use crate::prolly::{self, DiffEntry, Edit, ProllyError};
use crate::store::{ChunkStore, Hash, StoreError};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Prolly(#[from] ProllyError),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

pub type Result<T> = std::result::Result<T, MergeError>;

/// A row both sides changed incompatibly: its key and the three versions (encoded
/// rows, loaded from blobs; `None` where the row is absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub table: String,
    pub key: Vec<u8>,
    pub base: Option<Vec<u8>>,
    pub ours: Option<Vec<u8>>,
    pub theirs: Option<Vec<u8>>,
}

/// A table whose definitions (or existence) the two sides changed incompatibly:
/// nothing of theirs is applied to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaConflict {
    pub table: String,
    pub reason: String,
}

/// What `merge_tree` made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeMerge {
    /// Ours with theirs' clean changes applied (conflicting rows keep ours).
    pub tree: Hash,
    /// Conflicts, with `table` empty (the caller names the table).
    pub conflicts: Vec<Conflict>,
    /// Rows of theirs applied (inserted, updated, merged or deleted) to ours.
    pub applied: u64,
}

/// Merges one table's tree. `keyless`: keys are row contents (multiset merge).
pub fn merge_tree(
    store: &mut dyn ChunkStore,
    base: Hash,
    ours: Hash,
    theirs: Hash,
    keyless: bool,
) -> Result<TreeMerge> {
    merge_tree_padded(store, base, ours, theirs, keyless, usize::MAX)
}

/// `merge_tree` for rows encoded with at least `padded` value columns, trailing
/// NULLs past them left out (`TableSchema::padded_width`): rows of different lengths
/// compare cell by cell as if padded with NULLs, and a merged row is trimmed so.
pub fn merge_tree_padded(
    store: &mut dyn ChunkStore,
    base: Hash,
    ours: Hash,
    theirs: Hash,
    keyless: bool,
    padded: usize,
) -> Result<TreeMerge> {
    let done = |tree: Hash| TreeMerge {
        tree,
        conflicts: Vec::new(),
        applied: 0,
    };
    // (Equal trees on a multiset are still two sets of changes, to add up.)
    if base == theirs || (ours == theirs && !keyless) {
        return Ok(done(ours));
    }
    let d_ours: Vec<DiffEntry> =
        prolly::diff(&*store, base, ours).collect::<std::result::Result<_, _>>()?;
    let d_theirs: Vec<DiffEntry> =
        prolly::diff(&*store, base, theirs).collect::<std::result::Result<_, _>>()?;
    let (edits, conflicts) = if keyless {
        (keyless_edits(&d_ours, &d_theirs)?, Vec::new())
    } else {
        keyed_edits(store, &d_ours, &d_theirs, padded)?
    };
    let applied = edits.len() as u64;
    let tree = if edits.is_empty() {
        ours
    } else {
        prolly::apply_edits(store, ours, edits)?
    };
    Ok(TreeMerge {
        tree,
        conflicts,
        applied,
    })
}

/// How a row both sides changed merges.
enum RowMerge {
    /// Ours stands.
    Ours,
    /// This encoded row replaces ours.
    Row(Vec<u8>),
    Conflict,
}

/// Cell-by-cell merge of a row both sides changed, differently (encoded rows; `None`:
/// absent; both differ from `base` and from each other, as the two diffs say).
fn merge_row(
    base: Option<&[u8]>,
    ours: Option<&[u8]>,
    theirs: Option<&[u8]>,
    padded: usize,
) -> Result<RowMerge> {
    let (Some(b), Some(o), Some(t)) = (base, ours, theirs) else {
        // Insert vs a different insert, or a delete against an update.
        return Ok(RowMerge::Conflict);
    };
    let (b, o, t) = (decode_row(b)?, decode_row(o)?, decode_row(t)?);
    // Trailing NULLs past the padded width are left out of a row: compare as if there.
    let width = b.len().max(o.len()).max(t.len());
    if width > b.len().min(o.len()).min(t.len()) && padded == usize::MAX {
        return Ok(RowMerge::Conflict);
    }
    let cell = |r: &[Cell], i: usize| r.get(i).cloned().unwrap_or(Cell::Null);
    let mut merged: Vec<Cell> = Vec::with_capacity(width);
    for i in 0..width {
        let (bc, oc, tc) = (cell(&b, i), cell(&o, i), cell(&t, i));
        merged.push(if oc == tc || tc == bc {
            oc
        } else if oc == bc {
            tc
        } else {
            return Ok(RowMerge::Conflict);
        });
    }
    while merged.len() > padded && merged.last() == Some(&Cell::Null) {
        merged.pop();
    }
    Ok(if merged == o {
        RowMerge::Ours
    } else {
        RowMerge::Row(encode_row(&merged))
    })
}

/// The edits a keyed table's merge applies to ours, and its conflicts.
fn keyed_edits(
    store: &mut dyn ChunkStore,
    d_ours: &[DiffEntry],
    d_theirs: &[DiffEntry],
    padded: usize,
) -> Result<(Vec<Edit>, Vec<Conflict>)> {
    let mut edits: Vec<Edit> = Vec::new();
    let mut conflicts = Vec::new();
    let (mut i, mut j) = (0, 0);
    while j < d_theirs.len() {
        let t = &d_theirs[j];
        match d_ours.get(i).map(|o| o.key.cmp(&t.key)) {
            Some(std::cmp::Ordering::Less) => {
                i += 1; // ours alone changed it: ours stands
            }
            Some(std::cmp::Ordering::Equal) => {
                let o = &d_ours[i];
                i += 1;
                j += 1;
                if o.after == t.after {
                    continue;
                }
                let load = |v: &Option<Vec<u8>>| -> Result<Option<Vec<u8>>> {
                    v.as_deref()
                        .map(|v| load_value(&*store, v))
                        .transpose()
                        .map_err(MergeError::from)
                };
                let (b, ov, tv) = (load(&t.before)?, load(&o.after)?, load(&t.after)?);
                match merge_row(b.as_deref(), ov.as_deref(), tv.as_deref(), padded)? {
                    RowMerge::Ours => {}
                    RowMerge::Row(row) => {
                        let v = store_value(store, row)?;
                        edits.push((t.key.clone(), Some(v)));
                    }
                    RowMerge::Conflict => conflicts.push(Conflict {
                        table: String::new(),
                        key: t.key.clone(),
                        base: b,
                        ours: ov,
                        theirs: tv,
                    }),
                }
            }
            // Theirs alone changed it: theirs' value (or its removal) goes to ours.
            _ => {
                edits.push((t.key.clone(), t.after.clone()));
                j += 1;
            }
        }
    }
    Ok((edits, conflicts))
}

/// The edits of a keyless table's merge: for each distinct row either side changed,
/// its count becomes base + Δours + Δtheirs (at least zero).
fn keyless_edits(d_ours: &[DiffEntry], d_theirs: &[DiffEntry]) -> Result<Vec<Edit>> {
    // Per row hash (keys sort by it, copies adjacent): (base count, Δ, a stored value).
    struct Group {
        base: u32,
        delta: i64,
        value: Vec<u8>,
    }
    fn groups(d: &[DiffEntry]) -> Result<BTreeMap<Vec<u8>, Group>> {
        let mut out: BTreeMap<Vec<u8>, Group> = BTreeMap::new();
        for e in d {
            let h = crate::codec::keyless_row_hash(&e.key)?.to_vec();
            let copy = u32::from_be_bytes(e.key[ROW_HASH_LEN..].try_into().expect("4 bytes"));
            let value = e
                .after
                .clone()
                .or_else(|| e.before.clone())
                .unwrap_or_default();
            let g = out.entry(h).or_insert(Group {
                base: u32::MAX,
                delta: 0,
                value,
            });
            match (&e.before, &e.after) {
                // Added copy `copy`: copies base.. were added.
                (None, Some(_)) => {
                    g.delta += 1;
                    g.base = g.base.min(copy);
                }
                // Removed copy `copy`: copies ..=copy existed.
                (Some(_), None) => {
                    g.delta -= 1;
                    g.base = if g.base == u32::MAX {
                        copy + 1
                    } else {
                        g.base.max(copy + 1)
                    };
                }
                // Same content, same key: no change can show here.
                _ => {}
            }
        }
        Ok(out)
    }
    let (go, gt) = (groups(d_ours)?, groups(d_theirs)?);
    let mut edits: Vec<Edit> = Vec::new();
    for (h, t) in &gt {
        // Both diffs start from the same base tree, so theirs tells the base count.
        let base = t.base as i64;
        let ours_count = base + go.get(h).map_or(0, |o| o.delta);
        let want = (ours_count + t.delta).max(0);
        let row_key = |copy: i64| -> Vec<u8> {
            let mut k = h.clone();
            k.extend_from_slice(&(copy as u32).to_be_bytes());
            k
        };
        if want > ours_count {
            for c in ours_count..want {
                edits.push((row_key(c), Some(t.value.clone())));
            }
        } else {
            for c in want..ours_count {
                edits.push((row_key(c), None));
            }
        }
    }
    // Keys of one row hash are contiguous and ascending; groups are in hash order.
    Ok(edits)
}

/// What `merge_roots` made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootMerge {
    pub root: RootValue,
    pub conflicts: Vec<Conflict>,
    pub schema_conflicts: Vec<SchemaConflict>,
    /// Rows of theirs applied, over all tables.
    pub applied: u64,
}

/// Merges root values table by table (see docs/BRANCHES.md for the rules).
pub fn merge_roots(
    store: &mut dyn ChunkStore,
    base: &RootValue,
    ours: &RootValue,
    theirs: &RootValue,
) -> Result<RootMerge> {
    merge_roots_from(store, base, ours, theirs, false)
}

/// `merge_roots` from one of several best merge bases (`several_bases`, a
/// criss-cross history: `merge_bases`). Rows of a keyed table merge safely from any
/// of them (a change both sides share since another base reads as the same change,
/// or at worst as a conflict); a table without a primary key changed on both sides
/// would count such a change twice, and is a conflict instead.
pub fn merge_roots_from(
    store: &mut dyn ChunkStore,
    base: &RootValue,
    ours: &RootValue,
    theirs: &RootValue,
    several_bases: bool,
) -> Result<RootMerge> {
    let mut out = RootMerge {
        root: ours.clone(),
        conflicts: Vec::new(),
        schema_conflicts: Vec::new(),
        applied: 0,
    };
    let names: std::collections::BTreeSet<&String> = base
        .tables
        .keys()
        .chain(ours.tables.keys())
        .chain(theirs.tables.keys())
        .collect();
    let conflict = |out: &mut RootMerge, table: &str, reason: &str| {
        out.schema_conflicts.push(SchemaConflict {
            table: table.to_string(),
            reason: reason.to_string(),
        })
    };
    for name in names {
        let (b, o, t) = (
            base.tables.get(name),
            ours.tables.get(name),
            theirs.tables.get(name),
        );
        // (Equal sides of a table without a primary key are still two sets of
        // changes to add up: see `merge_tree`.)
        let multiset = o.is_some_and(|o| o.schema.primary_key.is_empty());
        // (A table without a key added identically on both sides is one table.)
        if b == t || (o == t && (!multiset || b.is_none())) {
            continue; // ours stands
        }
        if b == o {
            // Theirs alone changed the table (or added or dropped it).
            match t {
                Some(t) => {
                    out.applied += 1;
                    out.root.tables.insert(name.clone(), t.clone());
                }
                None => {
                    out.applied += 1;
                    out.root.tables.remove(name);
                }
            }
            continue;
        }
        if multiset && b != o {
            let why = match b {
                None => Some("added on both sides with different rows, and it has no primary key to match them by"),
                Some(_) if several_bases => Some("changed on both sides since several merge bases (a criss-cross history), and it has no primary key: its rows cannot be counted"),
                Some(_) => None,
            };
            if let Some(why) = why {
                conflict(&mut out, name, why);
                continue;
            }
        }
        match (b, o, t) {
            // The same definition on both sides (or the same columns and key, for a
            // table both sides added: their identities differ).
            (_, Some(o), Some(t))
                if (o.schema == t.schema && b.is_none_or(|b| b.schema == o.schema))
                    || (b.is_none()
                        && !multiset
                        && o.schema.same_definition(&t.schema)
                        && o.schema.padded_width() == t.schema.padded_width()) =>
            {
                let base_tree = b.map_or_else(prolly::empty_root, |b| b.tree);
                let keyless = o.schema.primary_key.is_empty();
                let padded = o.schema.padded_width();
                let m = merge_tree_padded(store, base_tree, o.tree, t.tree, keyless, padded)?;
                out.applied += m.applied;
                out.conflicts
                    .extend(m.conflicts.into_iter().map(|c| Conflict {
                        table: name.clone(),
                        ..c
                    }));
                let entry = TableEntry {
                    schema: o.schema.clone(),
                    tree: m.tree,
                    sequences: merge_sequences(b.map_or(&[][..], |b| &b.sequences[..]), &o.sequences, &t.sequences),
                };
                out.root.tables.insert(name.clone(), entry);
            }
            // A definition changed on one side or both (non-overlapping changes merge):
            // rows are carried into the merged definition, then merged.
            (Some(b), Some(o), Some(t)) => match merge_definitions(&b.schema, &o.schema, &t.schema) {
                Err(reason) => conflict(&mut out, name, &reason),
                Ok(_) if multiset => conflict(
                    &mut out,
                    name,
                    "its definition changed while both sides changed it, and it has no primary key to match rows by",
                ),
                Ok(target) => {
                    let mut trees = Vec::with_capacity(3);
                    for e in [b, o, t] {
                        match reencode(store, e.tree, &e.schema, &target)? {
                            Some(tree) => trees.push(tree),
                            None => break,
                        }
                    }
                    if trees.len() < 3 {
                        conflict(
                            &mut out,
                            name,
                            "a column changed type on one side while the other side changed rows",
                        );
                        continue;
                    }
                    let m = merge_tree_padded(
                        store,
                        trees[0],
                        trees[1],
                        trees[2],
                        false,
                        target.padded_width(),
                    )?;
                    out.applied += m.applied;
                    out.conflicts
                        .extend(m.conflicts.into_iter().map(|c| Conflict {
                            table: name.clone(),
                            ..c
                        }));
                    let entry = TableEntry {
                        schema: target,
                        tree: m.tree,
                        sequences: merge_sequences(&b.sequences, &o.sequences, &t.sequences),
                    };
                    out.root.tables.insert(name.clone(), entry);
                }
            },
            (Some(_), None, Some(_)) => {
                conflict(&mut out, name, "dropped on our side, changed on theirs")
            }
            (Some(_), Some(_), None) => {
                conflict(&mut out, name, "changed on our side, dropped on theirs")
            }
            (None, Some(_), Some(_)) => conflict(
                &mut out,
                name,
                "added on both sides with different definitions",
            ),
            _ => conflict(
                &mut out,
                name,
                "its definition changed on one side while the other changed it too",
            ),
        }
    }
    // User types: one side's change stands; changed differently on both: a conflict.
    let type_names: std::collections::BTreeSet<&String> = base
        .types
        .keys()
        .chain(ours.types.keys())
        .chain(theirs.types.keys())
        .collect();
    for name in type_names {
        let (b, o, t) = (
            base.types.get(name),
            ours.types.get(name),
            theirs.types.get(name),
        );
        if o == t || b == t {
            continue;
        }
        if b == o {
            match t {
                Some(t) => out.root.types.insert(name.clone(), t.clone()),
                None => out.root.types.remove(name),
            };
            continue;
        }
        conflict(&mut out, name, "type changed differently on both sides");
    }
    Ok(out)
}

/// The definition a table merges to when its definition changed on one side or
/// both since `base`: the changed side's, or a three-way merge of the two by column
/// identity (tags) and by index and constraint name, in which a column, index or
/// constraint changed differently on both sides (or changed on one and dropped on the
/// other) is a conflict, described in the error. The primary key must stay.
pub fn merge_definitions(
    base: &TableSchema,
    ours: &TableSchema,
    theirs: &TableSchema,
) -> std::result::Result<TableSchema, String> {
    use crate::repo::schema::{describe_column, same_column};
    if base == ours || ours == theirs {
        return Ok(theirs.clone());
    }
    if base == theirs {
        return Ok(ours.clone());
    }
    if base.version < 2 || ours.version < 2 || theirs.version < 2 {
        return Err("its definition changed on both sides, and a definition from pgvc 0.1 has no column identities to merge by".into());
    }
    if ours.primary_key != base.primary_key || theirs.primary_key != base.primary_key {
        return Err(
            "its primary key changed on one side while the other changed its definition too".into(),
        );
    }
    let find = |s: &TableSchema, c: &crate::commit::Column| {
        s.columns.iter().find(|x| same_column(x, c)).cloned()
    };
    let mut columns = Vec::new();
    for oc in &ours.columns {
        match (find(base, oc), find(theirs, oc)) {
            (Some(bc), Some(tc)) => {
                if *oc == tc || tc == bc {
                    columns.push(oc.clone());
                } else if *oc == bc {
                    columns.push(tc);
                } else {
                    return Err(format!(
                        "column {} changed differently: ours {}, theirs {}",
                        oc.name,
                        describe_column(oc),
                        describe_column(&tc)
                    ));
                }
            }
            (Some(bc), None) => {
                if *oc != bc {
                    return Err(format!(
                        "column {} changed on our side ({}) and dropped on theirs",
                        oc.name,
                        describe_column(oc)
                    ));
                }
            }
            (None, Some(tc)) if tc == *oc => columns.push(oc.clone()),
            (None, Some(_)) => {
                return Err(format!(
                    "column {} added differently on both sides",
                    oc.name
                ))
            }
            (None, None) => columns.push(oc.clone()),
        }
    }
    for tc in &theirs.columns {
        if find(ours, tc).is_some() {
            continue;
        }
        match find(base, tc) {
            Some(bc) if bc == *tc => {} // dropped on our side
            Some(_) => {
                return Err(format!(
                    "column {} changed on their side ({}) and dropped on ours",
                    tc.name,
                    describe_column(tc)
                ))
            }
            None => {
                if columns.iter().any(|c| c.name == tc.name) {
                    return Err(format!(
                        "a column named {} was added on both sides",
                        tc.name
                    ));
                }
                columns.push(tc.clone());
            }
        }
    }
    let indexes = merge_named(&base.indexes, &ours.indexes, &theirs.indexes, |i| &i.name)
        .map_err(|n| format!("index {n} changed differently on both sides"))?;
    let constraints = merge_named(
        &base.constraints,
        &ours.constraints,
        &theirs.constraints,
        |c| &c.name,
    )
    .map_err(|n| format!("constraint {n} changed differently on both sides"))?;
    Ok(TableSchema {
        version: ours.version.max(theirs.version),
        id: ours.id,
        columns,
        primary_key: ours.primary_key.clone(),
        // Every row is encoded anew for it (`reencode`): canonical rows.
        padded: Some(0),
        indexes,
        constraints,
    })
}

/// Three-way merge of named definitions (indexes, constraints): each side's change
/// stands; a name changed differently on both sides (or changed on one, dropped on
/// the other) is returned as the error. Sorted by name.
fn merge_named<T: Clone + PartialEq>(
    base: &[T],
    ours: &[T],
    theirs: &[T],
    name: impl Fn(&T) -> &String,
) -> std::result::Result<Vec<T>, String> {
    let get = |list: &[T], n: &String| list.iter().find(|x| name(x) == n).cloned();
    let mut names: Vec<String> = base
        .iter()
        .chain(ours)
        .chain(theirs)
        .map(|x| name(x).clone())
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for n in names {
        let (b, o, t) = (get(base, &n), get(ours, &n), get(theirs, &n));
        let merged = if o == t || b == t {
            o
        } else if b == o {
            t
        } else {
            return Err(n);
        };
        out.extend(merged);
    }
    Ok(out)
}

/// How a value column of a target definition is filled from a row of a source one.
enum Fill {
    /// The source's value column at this position.
    From(usize),
    /// A column the source lacks: its default when that is a plain constant
    /// (`constant_default`), else NULL.
    Const(Cell),
}

/// The value PostgreSQL gives a row that does not name column `c`, when its default is
/// a constant whose text is the value's text: an integer, a boolean, or a quoted
/// string of a text type. `None` for anything else (an expression, a cast that would
/// format the value anew, no default): NULL.
fn constant_default(c: &crate::commit::Column) -> Option<Cell> {
    let d = c.default.as_deref()?;
    let ty = c.type_name.as_str();
    let int_type = matches!(ty, "integer" | "bigint" | "smallint");
    if int_type {
        let digits = d
            .strip_prefix('\'')
            .and_then(|x| x.split_once("'::"))
            .map_or(d, |(v, _)| v);
        let body = digits.strip_prefix('-').unwrap_or(digits);
        if !body.is_empty() && body.len() < 19 && body.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Cell::Text(digits.to_string()));
        }
        return None;
    }
    if ty == "boolean" {
        return match d {
            "true" => Some(Cell::Text("t".into())),
            "false" => Some(Cell::Text("f".into())),
            _ => None,
        };
    }
    if ty == "text" || ty.starts_with("character varying") {
        let cast = if ty == "text" {
            "'::text"
        } else {
            "'::character varying"
        };
        let inner = d.strip_prefix('\'')?.strip_suffix(cast)?;
        // A quote inside is doubled; anything else (a lone quote) is not one literal.
        if inner.replace("''", "").contains('\'') || inner.contains('\\') {
            return None;
        }
        return Some(Cell::Text(inner.replace("''", "'")));
    }
    None
}

/// How `to`'s value columns fill from a row of `from`: `None` when rows cannot be
/// carried (the key columns differ, or a column changed type: a value's text need
/// not read the same under another type).
fn column_map(from: &TableSchema, to: &TableSchema) -> Option<Vec<Fill>> {
    use crate::repo::schema::same_column;
    let (fk, tk) = (from.key_columns(), to.key_columns());
    if fk.len() != tk.len()
        || !fk
            .iter()
            .zip(&tk)
            .all(|(a, b)| same_column(a, b) && a.type_name == b.type_name)
    {
        return None;
    }
    let fv: Vec<&crate::commit::Column> = from.value_columns().collect();
    let mut out = Vec::new();
    for c in to.value_columns() {
        match fv.iter().position(|f| same_column(f, c)) {
            Some(i) if fv[i].type_name == c.type_name => out.push(Fill::From(i)),
            Some(_) => return None,
            None => out.push(Fill::Const(constant_default(c).unwrap_or(Cell::Null))),
        }
    }
    Some(out)
}

/// One stored row value of a tree written under `from`, stored again encoded under
/// `to` (as `reencode` does for a whole tree); the same value when the definitions are
/// equal, `None` when rows cannot be carried.
pub fn reencode_value(
    store: &mut dyn ChunkStore,
    value: Vec<u8>,
    from: &TableSchema,
    to: &TableSchema,
) -> Result<Option<Vec<u8>>> {
    if from == to {
        return Ok(Some(value));
    }
    let Some(map) = column_map(from, to) else {
        return Ok(None);
    };
    let cells = decode_row(&load_value(&*store, &value)?)?;
    let row = carry(&map, &cells, to.padded_width());
    Ok(Some(store_value(store, encode_row(&row))?))
}

/// A row's cells under the target definition `map` describes, trimmed to `padded`.
fn carry(map: &[Fill], cells: &[Cell], padded: usize) -> Vec<Cell> {
    let mut row: Vec<Cell> = map
        .iter()
        .map(|f| match f {
            Fill::From(i) => cells.get(*i).cloned().unwrap_or(Cell::Null),
            Fill::Const(c) => c.clone(),
        })
        .collect();
    while row.len() > padded && row.last() == Some(&Cell::Null) {
        row.pop();
    }
    row
}

/// Rows read per batch while re-encoding a tree: memory stays flat.
const REENCODE_BATCH: usize = 4096;

/// `tree`, written under `from`, with every row encoded under `to` (columns matched by
/// identity; see `column_map`); the same tree when the definitions are equal. `None`
/// when rows cannot be carried. Reads the whole tree: a merge across a definition
/// change costs what the table holds, as the ALTER TABLE it stands for does.
pub fn reencode(
    store: &mut dyn ChunkStore,
    tree: Hash,
    from: &TableSchema,
    to: &TableSchema,
) -> Result<Option<Hash>> {
    if from == to {
        return Ok(Some(tree));
    }
    let Some(map) = column_map(from, to) else {
        return Ok(None);
    };
    let padded = to.padded_width();
    let mut out = tree;
    let mut next: Option<Vec<u8>> = Some(Vec::new());
    while let Some(start) = next.take() {
        let batch: Vec<(Vec<u8>, Vec<u8>)> = prolly::iter_from(&*store, tree, &start)
            .take(REENCODE_BATCH + 1)
            .collect::<std::result::Result<_, _>>()?;
        let mut edits: Vec<Edit> = Vec::with_capacity(batch.len());
        for (i, (k, v)) in batch.into_iter().enumerate() {
            if i == REENCODE_BATCH {
                next = Some(k);
                break;
            }
            let cells = decode_row(&load_value(&*store, &v)?)?;
            let row = carry(&map, &cells, padded);
            if row != cells {
                let value = store_value(store, encode_row(&row))?;
                edits.push((k, Some(value)));
            }
        }
        if !edits.is_empty() {
            out = prolly::apply_edits(store, out, edits)?;
        }
    }
    Ok(Some(out))
}

/// Owned sequences after a merge: a sequence only one side moved takes that side's
/// state; one both moved takes the side that moved further from the base in the
/// direction they moved (so neither side's next value repeats one the other handed
/// out, for ascending and descending sequences alike); without a base, or moved in
/// opposite directions (a reset), ours.
fn merge_sequences(
    base: &[SequenceState],
    ours: &[SequenceState],
    theirs: &[SequenceState],
) -> Vec<SequenceState> {
    let mut out: Vec<SequenceState> = ours.to_vec();
    for t in theirs {
        let b = base.iter().find(|b| b.name == t.name);
        match out.iter_mut().find(|o| o.name == t.name) {
            Some(o) => {
                let pos = |s: &SequenceState| (s.last_value as i128, s.is_called);
                let take_theirs = match b {
                    Some(b) if pos(o) == pos(b) => true,
                    Some(b) if pos(t) == pos(b) => false,
                    Some(b) => {
                        let (db, dobs, dt) = (
                            b.last_value as i128,
                            o.last_value as i128,
                            t.last_value as i128,
                        );
                        let (mo, mt) = (dobs - db, dt - db);
                        mo.signum() == mt.signum() && mt.abs() > mo.abs()
                    }
                    // Added on both sides: the larger, as an ascending sequence needs.
                    None => pos(t) > pos(o),
                };
                if take_theirs {
                    o.last_value = t.last_value;
                    o.is_called = t.is_called;
                }
            }
            None => out.push(t.clone()),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every best common ancestor of commits `a` and `b`: common ancestors no other
/// common ancestor descends from, newest first (by `b`'s topological log). Usually
/// one; a criss-cross history (each side merged the other) has several. Empty for
/// unrelated histories.
pub fn merge_bases(store: &dyn ChunkStore, a: Hash, b: Hash) -> Result<Vec<Hash>> {
    if a == b {
        return Ok(vec![a]);
    }
    let mut of_a: HashSet<Hash> = HashSet::new();
    let mut todo = vec![a];
    while let Some(h) = todo.pop() {
        if of_a.insert(h) {
            todo.extend(Commit::read(store, &h)?.parents);
        }
    }
    // The common ancestors, in b's log order. Ancestors of a common one are common,
    // so one that is a parent of another common one is not best.
    let mut common = Vec::new();
    let mut parents_of_common: HashSet<Hash> = HashSet::new();
    for (h, c) in commit_log(store, &b)? {
        if of_a.contains(&h) {
            common.push(h);
            parents_of_common.extend(c.parents);
        }
    }
    Ok(common
        .into_iter()
        .filter(|h| !parents_of_common.contains(h))
        .collect())
}

/// The best common ancestor of commits `a` and `b`: one that no other common
/// ancestor descends from (the first common one in `b`'s topological log, where
/// every commit comes before its parents). `None` for unrelated histories.
pub fn merge_base(store: &dyn ChunkStore, a: Hash, b: Hash) -> Result<Option<Hash>> {
    Ok(merge_bases(store, a, b)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_key, keyless_key, KeyKind};
    use crate::store::MemStore;
    use proptest::prelude::*;

    /// A table model: key -> three cells (small values, so sides collide often).
    type Model = BTreeMap<i64, Vec<Cell>>;

    fn key(k: i64) -> Vec<u8> {
        encode_key(&[KeyKind::Int], &[&k.to_string()]).unwrap()
    }

    fn tree(s: &mut MemStore, m: &Model) -> Hash {
        let mut entries = Vec::new();
        for (k, cells) in m {
            let v = store_value(s, encode_row(cells)).unwrap();
            entries.push((key(*k), v));
        }
        prolly::build(s, entries).unwrap()
    }

    fn read(s: &MemStore, root: Hash) -> BTreeMap<Vec<u8>, Vec<Cell>> {
        prolly::iter(s, root)
            .map(|e| {
                let (k, v) = e.unwrap();
                (k, decode_row(&load_value(s, &v).unwrap()).unwrap())
            })
            .collect()
    }

    /// The rule of docs/BRANCHES.md, row by row: the merged model and the keys that
    /// conflict (which keep ours).
    fn model_merge(b: &Model, o: &Model, t: &Model) -> (Model, HashSet<i64>) {
        let mut out = o.clone();
        let mut conflicts = HashSet::new();
        let keys: std::collections::BTreeSet<i64> =
            b.keys().chain(o.keys()).chain(t.keys()).copied().collect();
        for k in keys {
            let (bv, ov, tv) = (b.get(&k), o.get(&k), t.get(&k));
            if ov == tv || bv == tv {
                continue;
            }
            if bv == ov {
                match tv {
                    Some(tv) => out.insert(k, tv.clone()),
                    None => out.remove(&k),
                };
                continue;
            }
            match (bv, ov, tv) {
                (Some(bv), Some(ov), Some(tv)) => {
                    let mut cells = Vec::new();
                    let mut clash = false;
                    for i in 0..ov.len() {
                        cells.push(if ov[i] == tv[i] || tv[i] == bv[i] {
                            ov[i].clone()
                        } else if ov[i] == bv[i] {
                            tv[i].clone()
                        } else {
                            clash = true;
                            ov[i].clone()
                        });
                    }
                    if clash {
                        conflicts.insert(k);
                    } else {
                        out.insert(k, cells);
                    }
                }
                _ => {
                    conflicts.insert(k);
                }
            }
        }
        (out, conflicts)
    }

    fn cells() -> impl Strategy<Value = Vec<Cell>> {
        prop::collection::vec(
            prop_oneof![
                Just(Cell::Null),
                (0..3u8).prop_map(|v| Cell::Text(format!("v{v}"))),
                // Now and then a value big enough to go out of line, as a blob.
                (0..2u8).prop_map(|v| Cell::Text(format!("{v}").repeat(1500))),
            ],
            3,
        )
    }

    /// Changes to a model: per key, keep, set to new cells, or delete.
    fn changes() -> impl Strategy<Value = Vec<(i64, Option<Vec<Cell>>)>> {
        prop::collection::vec((0..60i64, prop::option::weighted(0.8, cells())), 0..25)
    }

    fn apply(m: &Model, ch: &[(i64, Option<Vec<Cell>>)]) -> Model {
        let mut m = m.clone();
        for (k, v) in ch {
            match v {
                // Change one cell only, half the time, so cell merges happen.
                Some(c) if m.contains_key(k) && k % 2 == 0 => {
                    let row = m.get_mut(k).unwrap();
                    row[(*k as usize / 2) % 3] = c[0].clone();
                }
                Some(c) => {
                    m.insert(*k, c.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        m
    }

    fn as_bytes_keys(m: &Model) -> BTreeMap<Vec<u8>, Vec<Cell>> {
        m.iter().map(|(k, v)| (key(*k), v.clone())).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// The merge of trees equals the row-by-row rule on the models, conflicts
        /// included; it is symmetric up to ours and theirs.
        #[test]
        fn merge_follows_the_rule_and_is_symmetric(
            base in prop::collection::btree_map(0..60i64, cells(), 0..40),
            co in changes(),
            ct in changes(),
        ) {
            let (o, t) = (apply(&base, &co), apply(&base, &ct));
            let mut s = MemStore::new();
            let (hb, ho, ht) = (tree(&mut s, &base), tree(&mut s, &o), tree(&mut s, &t));
            let m = merge_tree(&mut s, hb, ho, ht, false).unwrap();
            let (want, clash) = model_merge(&base, &o, &t);
            prop_assert_eq!(read(&s, m.tree), as_bytes_keys(&want));
            let got: HashSet<Vec<u8>> = m.conflicts.iter().map(|c| c.key.clone()).collect();
            let want_keys: HashSet<Vec<u8>> = clash.iter().map(|k| key(*k)).collect();
            prop_assert_eq!(&got, &want_keys);
            // Each conflict carries the three versions.
            for c in &m.conflicts {
                let k = clash.iter().find(|k| key(**k) == c.key).copied().unwrap();
                let enc = |v: Option<&Vec<Cell>>| v.map(|v| encode_row(v));
                prop_assert_eq!(c.base.clone(), enc(base.get(&k)));
                prop_assert_eq!(c.ours.clone(), enc(o.get(&k)));
                prop_assert_eq!(c.theirs.clone(), enc(t.get(&k)));
            }
            // Symmetric: the same rows outside the conflicts, the same conflicts.
            let r = merge_tree(&mut s, hb, ht, ho, false).unwrap();
            let got_r: HashSet<Vec<u8>> = r.conflicts.iter().map(|c| c.key.clone()).collect();
            prop_assert_eq!(&got_r, &got);
            let mut a = read(&s, m.tree);
            let mut b = read(&s, r.tree);
            a.retain(|k, _| !got.contains(k));
            b.retain(|k, _| !got.contains(k));
            prop_assert_eq!(a, b);
        }

        /// Disjoint changes merge to applying both; merging a descendant of ours or
        /// an ancestor changes nothing but the tree it names.
        #[test]
        fn disjoint_changes_merge_cleanly(
            base in prop::collection::btree_map(0..60i64, cells(), 0..40),
            co in changes(),
            ct in changes(),
        ) {
            let co: Vec<_> = co.into_iter().filter(|(k, _)| k % 3 == 0).collect();
            let ct: Vec<_> = ct.into_iter().filter(|(k, _)| k % 3 == 1).collect();
            let (o, t) = (apply(&base, &co), apply(&base, &ct));
            let both = apply(&o, &ct);
            let mut s = MemStore::new();
            let (hb, ho, ht) = (tree(&mut s, &base), tree(&mut s, &o), tree(&mut s, &t));
            let m = merge_tree(&mut s, hb, ho, ht, false).unwrap();
            prop_assert!(m.conflicts.is_empty());
            // Trees are a function of their contents: the same hash as building both.
            prop_assert_eq!(m.tree, tree(&mut s, &both));
            // Fast-forward: base == ours gives theirs; base == theirs keeps ours.
            prop_assert_eq!(merge_tree(&mut s, hb, hb, ht, false).unwrap().tree, ht);
            prop_assert_eq!(merge_tree(&mut s, hb, ho, hb, false).unwrap().tree, ho);
        }

        /// Tables without a primary key merge as multisets: each distinct row's
        /// count becomes base + both sides' changes (at least zero).
        #[test]
        fn keyless_tables_merge_as_multisets(
            base in prop::collection::vec(0..6u8, 0..20),
            add_o in prop::collection::vec(0..6u8, 0..6),
            del_o in prop::collection::vec(0..6u8, 0..6),
            add_t in prop::collection::vec(0..6u8, 0..6),
            del_t in prop::collection::vec(0..6u8, 0..6),
        ) {
            let count = |v: &[u8]| {
                let mut c = BTreeMap::new();
                for x in v {
                    *c.entry(*x).or_insert(0i64) += 1;
                }
                c
            };
            let side = |add: &[u8], del: &[u8]| {
                let mut c = count(&base);
                for x in add {
                    *c.entry(*x).or_insert(0) += 1;
                }
                for x in del {
                    let n = c.entry(*x).or_insert(0);
                    *n = (*n - 1).max(0);
                }
                c
            };
            let (cb, co, ct) = (count(&base), side(&add_o, &del_o), side(&add_t, &del_t));
            let build = |s: &mut MemStore, c: &BTreeMap<u8, i64>| {
                let mut entries = Vec::new();
                for (x, n) in c {
                    let row = encode_row(&[Cell::Text(format!("row {x}"))]);
                    for copy in 0..*n {
                        let v = store_value(s, row.clone()).unwrap();
                        entries.push((keyless_key(&row, copy as u32), v));
                    }
                }
                entries.sort();
                prolly::build(s, entries).unwrap()
            };
            let mut s = MemStore::new();
            let (hb, ho, ht) = (build(&mut s, &cb), build(&mut s, &co), build(&mut s, &ct));
            let m = merge_tree(&mut s, hb, ho, ht, true).unwrap();
            prop_assert!(m.conflicts.is_empty());
            let mut want = BTreeMap::new();
            for x in 0..6u8 {
                let n = (cb.get(&x).copied().unwrap_or(0)
                    + (co.get(&x).copied().unwrap_or(0) - cb.get(&x).copied().unwrap_or(0))
                    + (ct.get(&x).copied().unwrap_or(0) - cb.get(&x).copied().unwrap_or(0)))
                .max(0);
                if n > 0 {
                    want.insert(x, n);
                }
            }
            prop_assert_eq!(m.tree, build(&mut s, &want));
        }
    }

    fn commit(s: &mut MemStore, parents: Vec<Hash>, msg: &str) -> Hash {
        let root = RootValue::default().write(s).unwrap();
        Commit {
            root,
            parents,
            author: "t".into(),
            message: msg.into(),
            timestamp_us: 1,
        }
        .write(s)
        .unwrap()
    }

    #[test]
    fn the_merge_base_is_the_nearest_common_ancestor() {
        let mut s = MemStore::new();
        let a = commit(&mut s, vec![], "a");
        let b = commit(&mut s, vec![a], "b");
        let c1 = commit(&mut s, vec![b], "c1");
        let c2 = commit(&mut s, vec![c1], "c2");
        let d1 = commit(&mut s, vec![b], "d1");
        // A merge of c1 into the d line, then more on both.
        let d2 = commit(&mut s, vec![d1, c1], "d2");
        let d3 = commit(&mut s, vec![d2], "d3");
        assert_eq!(merge_base(&s, c2, d1).unwrap(), Some(b));
        assert_eq!(merge_base(&s, c2, d3).unwrap(), Some(c1));
        assert_eq!(merge_base(&s, d3, c2).unwrap(), Some(c1));
        assert_eq!(merge_base(&s, c2, b).unwrap(), Some(b));
        assert_eq!(merge_base(&s, c2, c2).unwrap(), Some(c2));
        let x = commit(&mut s, vec![], "unrelated");
        assert_eq!(merge_base(&s, c2, x).unwrap(), None);
    }

    fn col(tag: u64, name: &str, ty: &str) -> crate::commit::Column {
        crate::commit::Column {
            tag,
            ..crate::commit::Column::new(name, ty)
        }
    }

    fn schema(cols: Vec<crate::commit::Column>) -> TableSchema {
        let mut s = TableSchema::new(cols, vec!["id".into()]);
        s.id = 7;
        s
    }

    fn text_row(cells: &[Option<&str>]) -> Vec<Cell> {
        let mut r: Vec<Cell> = cells
            .iter()
            .map(|c| c.map_or(Cell::Null, |t| Cell::Text(t.into())))
            .collect();
        while r.last() == Some(&Cell::Null) {
            r.pop();
        }
        r
    }

    fn entry(s: &mut MemStore, schema: &TableSchema, rows: &[(i64, Vec<Cell>)]) -> TableEntry {
        let m: Model = rows.iter().cloned().collect();
        TableEntry {
            schema: schema.clone(),
            tree: tree(s, &m),
            sequences: Vec::new(),
        }
    }

    fn root_of(e: TableEntry) -> RootValue {
        let mut r = RootValue::default();
        r.tables.insert("public.t".into(), e);
        r
    }

    /// Theirs adds a column with a default (every row rewritten with it) while ours
    /// changes rows: the merged table has the column, ours' updates keep the default
    /// theirs gave the row, ours' inserts get the constant default, and cell changes
    /// still merge.
    #[test]
    fn a_column_added_on_one_side_merges_with_row_changes_on_the_other() {
        let mut s = MemStore::new();
        let base_s = schema(vec![col(1, "id", "integer"), col(2, "a", "text")]);
        let mut c = col(3, "n", "integer");
        c.default = Some("0".into());
        let theirs_s = schema(vec![col(1, "id", "integer"), col(2, "a", "text"), c]);
        let b = entry(
            &mut s,
            &base_s,
            &[(1, text_row(&[Some("x")])), (2, text_row(&[Some("y")]))],
        );
        let o = entry(
            &mut s,
            &base_s,
            &[
                (1, text_row(&[Some("ours")])),
                (2, text_row(&[Some("y")])),
                (3, text_row(&[Some("new")])),
            ],
        );
        let t = entry(
            &mut s,
            &theirs_s,
            &[
                (1, text_row(&[Some("x"), Some("0")])),
                (2, text_row(&[Some("y"), Some("5")])),
            ],
        );
        let m = merge_roots(&mut s, &root_of(b), &root_of(o), &root_of(t)).unwrap();
        assert!(m.schema_conflicts.is_empty(), "{:?}", m.schema_conflicts);
        assert!(m.conflicts.is_empty());
        let e = &m.root.tables["public.t"];
        assert_eq!(e.schema, theirs_s);
        let rows: Vec<Vec<Cell>> = read(&s, e.tree).into_values().collect();
        assert_eq!(
            rows,
            vec![
                text_row(&[Some("ours"), Some("0")]),
                text_row(&[Some("y"), Some("5")]),
                text_row(&[Some("new"), Some("0")]),
            ]
        );
    }

    /// Both sides add different columns: both are in the merged definition, with
    /// each side's values; the same column changed differently is a conflict that
    /// names it.
    #[test]
    fn definitions_changed_on_both_sides_merge_when_they_do_not_overlap() {
        let mut s = MemStore::new();
        let base_s = schema(vec![col(1, "id", "integer"), col(2, "a", "text")]);
        let ours_s = schema(vec![
            col(1, "id", "integer"),
            col(2, "a", "text"),
            col(3, "o", "text"),
        ]);
        let theirs_s = schema(vec![
            col(1, "id", "integer"),
            col(2, "a", "text"),
            col(4, "t", "text"),
        ]);
        let b = entry(&mut s, &base_s, &[(1, text_row(&[Some("x")]))]);
        let o = entry(&mut s, &ours_s, &[(1, text_row(&[Some("x"), Some("o1")]))]);
        let t = entry(
            &mut s,
            &theirs_s,
            &[
                (1, text_row(&[Some("x"), Some("t1")])),
                (2, text_row(&[Some("z"), Some("t2")])),
            ],
        );
        let m = merge_roots(
            &mut s,
            &root_of(b.clone()),
            &root_of(o.clone()),
            &root_of(t),
        )
        .unwrap();
        assert!(m.schema_conflicts.is_empty(), "{:?}", m.schema_conflicts);
        let e = &m.root.tables["public.t"];
        let names: Vec<&str> = e.schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "a", "o", "t"]);
        let rows: Vec<Vec<Cell>> = read(&s, e.tree).into_values().collect();
        assert_eq!(
            rows,
            vec![
                text_row(&[Some("x"), Some("o1"), Some("t1")]),
                text_row(&[Some("z"), None, Some("t2")]),
            ]
        );
        // The same column, changed differently.
        let mut a2 = col(2, "a", "text");
        a2.not_null = true;
        let mut a3 = col(2, "a", "text");
        a3.default = Some("'q'::text".into());
        let o2 = schema(vec![col(1, "id", "integer"), a2]);
        let t2 = schema(vec![col(1, "id", "integer"), a3]);
        let err = merge_definitions(&base_s, &o2, &t2).unwrap_err();
        assert!(err.contains("column a changed differently"), "{err}");
        // Changed on one side, dropped on the other; the key changed.
        let dropped = schema(vec![col(1, "id", "integer")]);
        assert!(merge_definitions(&base_s, &o2, &dropped)
            .unwrap_err()
            .contains("dropped on theirs"));
        let mut rekeyed = ours_s.clone();
        rekeyed.primary_key = vec!["a".into()];
        assert!(merge_definitions(&base_s, &rekeyed, &theirs_s)
            .unwrap_err()
            .contains("primary key"));
        // A type change on one side while the other changed rows: a conflict.
        let retyped = schema(vec![col(1, "id", "integer"), col(2, "a", "varchar")]);
        let t3 = entry(&mut s, &retyped, &[(1, text_row(&[Some("x")]))]);
        let m = merge_roots(&mut s, &root_of(b), &root_of(o), &root_of(t3)).unwrap();
        assert_eq!(m.schema_conflicts.len(), 1);
        assert!(m.schema_conflicts[0].reason.contains("changed type"));
    }

    #[test]
    fn constant_defaults_are_read_only_when_their_text_is_the_value() {
        let d = |ty: &str, def: &str| {
            let mut c = col(1, "c", ty);
            c.default = Some(def.into());
            constant_default(&c)
        };
        let t = |v: &str| Some(Cell::Text(v.into()));
        assert_eq!(d("integer", "0"), t("0"));
        assert_eq!(d("bigint", "'-12'::bigint"), t("-12"));
        assert_eq!(d("boolean", "true"), t("t"));
        assert_eq!(d("text", "'it''s'::text"), t("it's"));
        assert_eq!(
            d("character varying(5)", "'ab'::character varying"),
            t("ab")
        );
        for (ty, def) in [
            ("integer", "nextval('s'::regclass)"),
            ("numeric(10,2)", "1.5"),
            ("text", "upper('x'::text)"),
            ("text", "'a'::text || 'b'::text"),
            ("timestamp with time zone", "now()"),
            ("integer", "99999999999999999999"),
        ] {
            assert_eq!(d(ty, def), None, "{ty} {def}");
        }
    }

    /// Each side merged the other (criss-cross): two best bases, both found.
    #[test]
    fn a_criss_cross_history_has_two_best_bases() {
        let mut s = MemStore::new();
        let a = commit(&mut s, vec![], "a");
        let x = commit(&mut s, vec![a], "x");
        let y = commit(&mut s, vec![a], "y");
        let xm = commit(&mut s, vec![x, y], "x merges y");
        let ym = commit(&mut s, vec![y, x], "y merges x");
        let mut bases = merge_bases(&s, xm, ym).unwrap();
        bases.sort();
        let mut want = vec![x, y];
        want.sort();
        assert_eq!(bases, want);
        assert_eq!(merge_bases(&s, x, y).unwrap(), vec![a]);
    }

    #[test]
    fn sequences_merge_to_the_side_that_moved_further() {
        let seq = |v: i64| SequenceState {
            name: "public.s".into(),
            column: None,
            last_value: v,
            is_called: true,
        };
        let m =
            |b: i64, o: i64, t: i64| merge_sequences(&[seq(b)], &[seq(o)], &[seq(t)])[0].last_value;
        assert_eq!(m(10, 20, 15), 20);
        assert_eq!(m(10, 12, 30), 30);
        assert_eq!(m(10, 10, 30), 30);
        assert_eq!(m(10, 30, 10), 30);
        // Descending: further is lower.
        assert_eq!(m(-10, -20, -15), -20);
        assert_eq!(m(-10, -12, -30), -30);
        // Opposite directions (one side reset it): ours.
        assert_eq!(m(10, 5, 30), 5);
    }

    /// A table without a key: added identically on both sides it is one table; added
    /// with different rows, or changed on both sides since several bases, a conflict.
    #[test]
    fn keyless_tables_never_count_a_change_twice() {
        let mut s = MemStore::new();
        let sch = TableSchema::new(vec![crate::commit::Column::new("v", "text")], vec![]);
        let rows = |s: &mut MemStore, vals: &[&str]| {
            let mut entries: Vec<(Vec<u8>, Vec<u8>)> = vals
                .iter()
                .map(|v| {
                    let row = encode_row(&[Cell::Text((*v).into())]);
                    (keyless_key(&row, 0), store_value(s, row).unwrap())
                })
                .collect();
            entries.sort();
            TableEntry {
                schema: sch.clone(),
                tree: prolly::build(s, entries).unwrap(),
                sequences: Vec::new(),
            }
        };
        let root = |e: Option<TableEntry>| {
            let mut r = RootValue::default();
            if let Some(e) = e {
                r.tables.insert("public.k".into(), e);
            }
            r
        };
        let same = rows(&mut s, &["a", "b"]);
        let m = merge_roots(
            &mut s,
            &root(None),
            &root(Some(same.clone())),
            &root(Some(same.clone())),
        )
        .unwrap();
        assert!(m.schema_conflicts.is_empty());
        assert_eq!(m.root.tables["public.k"], same);
        let other = rows(&mut s, &["a", "c"]);
        let m = merge_roots(
            &mut s,
            &root(None),
            &root(Some(same.clone())),
            &root(Some(other.clone())),
        )
        .unwrap();
        assert_eq!(m.schema_conflicts.len(), 1);
        let base = rows(&mut s, &["a"]);
        let m = merge_roots_from(
            &mut s,
            &root(Some(base.clone())),
            &root(Some(same.clone())),
            &root(Some(other.clone())),
            true,
        )
        .unwrap();
        assert_eq!(m.schema_conflicts.len(), 1);
        assert!(m.schema_conflicts[0].reason.contains("criss-cross"));
        let m = merge_roots(
            &mut s,
            &root(Some(base)),
            &root(Some(same)),
            &root(Some(other)),
        )
        .unwrap();
        assert!(m.schema_conflicts.is_empty());
        assert_eq!(
            prolly::count(&s, m.root.tables["public.k"].tree).unwrap(),
            3
        );
    }
}
