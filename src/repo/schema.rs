//! Versioned table definitions (docs/SCHEMA.md): identities that survive renames,
//! whether a tree stays valid across a definition change, and the `ALTER TABLE` steps
//! that move a live table from one definition to another. Pure: the glue gathers the
//! catalog facts and carries out the steps through `src/pg/sql.rs`.

use crate::commit::{Column, ConstraintDef, ConstraintKind, IndexDef, TableSchema, FORMAT_VERSION};

/// A 64-bit identity derived from `parts` (never 0: 0 means "untagged", version 1).
fn derive(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let b = h.finalize();
    let v = u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes"));
    v.max(1)
}

/// The identity a table gets at its first commit.
pub fn new_table_id(name: &str) -> u64 {
    derive(&[b"table", name.as_bytes()])
}

/// Whether column `a` of one schema is column `b` of another: by tag when both have
/// one, by name otherwise (a version-1 schema has no tags).
pub fn same_column(a: &Column, b: &Column) -> bool {
    if a.tag != 0 && b.tag != 0 {
        a.tag == b.tag
    } else {
        a.name == b.name
    }
}

/// The versioned form of a live table's definition `live` (from the catalog: no id,
/// no tags), given its identity (`id`, given when it was tracked; else the parent's,
/// else one derived from its name), the entry of the commit it descends from
/// (`parent`) and the tags
/// recorded for its columns at the last commit or checkout (`known`, one per live
/// column, by attribute number). A column keeps its recorded tag; when there is no
/// record at all (a version-1 parent, or a record lost in a dump), a column takes the
/// parent's tag of the same name; otherwise it gets a new tag.
/// `padded` is left for the caller (it depends on whether the tree carries).
pub fn versioned(
    name: &str,
    id: Option<u64>,
    parent: Option<&TableSchema>,
    mut live: TableSchema,
    known: &[Option<u64>],
) -> TableSchema {
    live.version = FORMAT_VERSION;
    live.id = match (id, parent) {
        (Some(id), _) => id,
        (None, Some(p)) if p.id != 0 => p.id,
        _ => new_table_id(name),
    };
    let mut used: Vec<u64> = known.iter().flatten().copied().collect();
    if let Some(p) = parent {
        used.extend(p.columns.iter().map(|c| c.tag).filter(|t| *t != 0));
    }
    let n = live.columns.len();
    for i in 0..n {
        if let Some(Some(t)) = known.get(i) {
            live.columns[i].tag = *t;
            continue;
        }
        let no_record = known.iter().all(Option::is_none);
        let by_name = parent.filter(|_| no_record).and_then(|p| {
            p.columns
                .iter()
                .find(|c| c.name == live.columns[i].name && c.tag != 0)
                .map(|c| c.tag)
        });
        let claimed = |t: u64, cols: &[Column]| {
            known.iter().flatten().any(|k| *k == t) || cols.iter().any(|c| c.tag == t)
        };
        let tag = match by_name {
            Some(t) if !claimed(t, &live.columns) => t,
            _ => {
                let c = &live.columns[i];
                let mut bump = 0u64;
                loop {
                    let t = derive(&[
                        b"column",
                        &live.id.to_le_bytes(),
                        c.name.as_bytes(),
                        c.type_name.as_bytes(),
                        &bump.to_le_bytes(),
                    ]);
                    if !used.contains(&t) && !claimed(t, &live.columns) {
                        break t;
                    }
                    bump += 1;
                }
            }
        };
        used.push(tag);
        live.columns[i].tag = tag;
    }
    match parent {
        Some(p) => in_order_of(p, live),
        None => live,
    }
}

/// `s` with its columns in logical order: those `order` has, in `order`'s order, then
/// the others as they come. The physical order of a live table's columns cannot be
/// changed (a column dropped and added again by a reset goes last), so rows are
/// encoded in this logical order, which a table keeps across its history.
pub fn in_order_of(order: &TableSchema, mut s: TableSchema) -> TableSchema {
    let rank = |c: &Column| {
        order
            .columns
            .iter()
            .position(|o| same_column(o, c))
            .unwrap_or(usize::MAX)
    };
    // Stable: unranked columns keep their attribute order at the end.
    s.columns.sort_by_key(rank);
    s
}

fn same_typed(a: &Column, b: &Column) -> bool {
    same_column(a, b) && a.type_name == b.type_name
}

/// Whether every row of a tree written under `old` reads the same under `new`, the
/// columns `new` adds being NULL: the key columns are the same columns with the same
/// types in the same order, and `old`'s value columns are a prefix of `new`'s (same
/// columns, same types). Names, defaults and NOT NULL may differ. Whether the added
/// columns are really NULL in every existing row is a fact about the live table that
/// the caller checks.
pub fn value_prefix(old: &TableSchema, new: &TableSchema) -> bool {
    let (ok, nk) = (old.key_columns(), new.key_columns());
    if ok.len() != nk.len()
        || ok.len() != old.primary_key.len()
        || nk.len() != new.primary_key.len()
        || !ok.iter().zip(&nk).all(|(a, b)| same_typed(a, b))
    {
        return false;
    }
    let ov: Vec<&Column> = old.value_columns().collect();
    let nv: Vec<&Column> = new.value_columns().collect();
    ov.len() <= nv.len() && ov.iter().zip(&nv).all(|(a, b)| same_typed(a, b))
}

/// Whether the tree of `a` and the tree of `b` can be compared row by row (a tree
/// diff), each row's bytes meaning the same values under both: one's value columns
/// are a prefix of the other's.
pub fn rows_comparable(a: &TableSchema, b: &TableSchema) -> bool {
    value_prefix(a, b) || value_prefix(b, a)
}

/// The padding a new commit keeps when its tree carries over from `old`'s.
pub fn carried_padding(old: &TableSchema) -> Option<u32> {
    Some(old.padded_width() as u32)
}

/// One `ALTER TABLE` step; names are the live table's at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterStep {
    DropPrimaryKey,
    DropColumn(String),
    RenameColumn {
        from: String,
        to: String,
    },
    DropDefault(String),
    DropNotNull(String),
    DropIdentity(String),
    /// `ALTER COLUMN .. TYPE .. USING column::type`.
    AlterType {
        column: String,
        type_name: String,
    },
    /// A nullable column with no default, or a generated column (computed by the
    /// server from the others).
    AddColumn(Column),
    SetDefault {
        column: String,
        expr: String,
    },
    SetNotNull(String),
    AddIdentity {
        column: String,
        kind: String,
    },
    AddPrimaryKey(Vec<String>),
}

/// How a checkout moves one table from its live definition to a target's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlterPlan {
    /// Run before the rows are written: drops, renames, type changes, new columns.
    pub before_rows: Vec<AlterStep>,
    /// Run after: defaults, NOT NULL, identity, primary key.
    pub after_rows: Vec<AlterStep>,
    /// The table must be emptied before the steps and loaded after them: a column is
    /// made again (a generation expression changed, or a column became generated or
    /// plain), so rows whose bytes did not change would lose its values; or an added
    /// column is generated or of a user type, whose expression, domain check or
    /// default `ADD COLUMN` would evaluate over every existing row.
    pub needs_reload: bool,
}

impl AlterPlan {
    pub fn is_empty(&self) -> bool {
        self.before_rows.is_empty() && self.after_rows.is_empty()
    }

    /// Whether a column changes type (its values then need the target's rows).
    pub fn changes_types(&self) -> bool {
        self.before_rows
            .iter()
            .any(|s| matches!(s, AlterStep::AlterType { .. }))
    }
}

/// The steps that turn a live table defined as `live` (versioned: tags from the
/// record) into `target`'s definition, matching columns by identity. Column order:
/// new columns are added at the end, so a target whose columns are in another order
/// than live ones can give can only be reached by a reload; the glue compares the
/// result with the target and refuses a difference.
pub fn plan_alter(live: &TableSchema, target: &TableSchema) -> AlterPlan {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut needs_reload = false;
    let matched = |c: &Column| target.columns.iter().find(|t| same_column(c, t));
    // The key as target names: does the live key map onto it?
    let live_key_in_target: Vec<Option<String>> = live
        .key_columns()
        .iter()
        .map(|c| matched(c).map(|t| t.name.clone()))
        .collect();
    let key_changes = live_key_in_target.len() != target.primary_key.len()
        || live_key_in_target
            .iter()
            .zip(&target.primary_key)
            .any(|(l, t)| l.as_deref() != Some(t.as_str()))
        || live
            .key_columns()
            .iter()
            .any(|c| matched(c).is_some_and(|t| t.type_name != c.type_name));
    if key_changes && !live.primary_key.is_empty() {
        before.push(AlterStep::DropPrimaryKey);
    }
    for c in &live.columns {
        if matched(c).is_none() {
            before.push(AlterStep::DropColumn(c.name.clone()));
        }
    }
    // Renames, through temporary names when a new name is still taken.
    let renames: Vec<(String, String)> = live
        .columns
        .iter()
        .filter_map(|c| matched(c).map(|t| (c.name.clone(), t.name.clone())))
        .filter(|(a, b)| a != b)
        .collect();
    let kept: Vec<&str> = live
        .columns
        .iter()
        .filter(|c| matched(c).is_some())
        .map(|c| c.name.as_str())
        .collect();
    let collide = renames.iter().any(|(_, to)| kept.contains(&to.as_str()));
    if collide {
        for (i, (from, _)) in renames.iter().enumerate() {
            before.push(AlterStep::RenameColumn {
                from: from.clone(),
                to: format!("pgvc_renaming_{i}"),
            });
        }
        for (i, (_, to)) in renames.iter().enumerate() {
            before.push(AlterStep::RenameColumn {
                from: format!("pgvc_renaming_{i}"),
                to: to.clone(),
            });
        }
    } else {
        for (from, to) in renames {
            before.push(AlterStep::RenameColumn { from, to });
        }
    }
    for t in &target.columns {
        match live.columns.iter().find(|c| same_column(c, t)) {
            Some(c) => {
                let n = t.name.clone();
                let regenerate = c.generated != t.generated;
                if regenerate {
                    // PostgreSQL 15 cannot change a generation expression (or make a
                    // column generated or not): the column is made again, and its
                    // values come back with the rows.
                    needs_reload = true;
                    before.push(AlterStep::DropColumn(n.clone()));
                    before.push(AlterStep::AddColumn(Column {
                        not_null: false,
                        default: None,
                        identity: None,
                        ..t.clone()
                    }));
                    if t.not_null {
                        after.push(AlterStep::SetNotNull(n.clone()));
                    }
                    continue;
                }
                if c.identity.is_some() && c.identity != t.identity {
                    before.push(AlterStep::DropIdentity(n.clone()));
                }
                let type_changes = c.type_name != t.type_name;
                if c.default.is_some() && (c.default != t.default || type_changes) {
                    before.push(AlterStep::DropDefault(n.clone()));
                }
                if c.not_null && !t.not_null {
                    before.push(AlterStep::DropNotNull(n.clone()));
                }
                if type_changes {
                    before.push(AlterStep::AlterType {
                        column: n.clone(),
                        type_name: t.type_name.clone(),
                    });
                }
                if let Some(d) = &t.default {
                    if c.default.as_ref() != Some(d) || type_changes {
                        after.push(AlterStep::SetDefault {
                            column: n.clone(),
                            expr: d.clone(),
                        });
                    }
                }
                if t.not_null && !c.not_null {
                    after.push(AlterStep::SetNotNull(n.clone()));
                }
                if let Some(k) = &t.identity {
                    if c.identity.as_ref() != Some(k) {
                        after.push(AlterStep::AddIdentity {
                            column: n.clone(),
                            kind: k.clone(),
                        });
                    }
                }
            }
            None => {
                // User types are schema-qualified (`format_type` with search_path =
                // pg_catalog); built-in ones are not.
                let user_type = t.type_name.contains('.') || t.type_name.contains('"');
                needs_reload |= t.generated.is_some() || user_type;
                before.push(AlterStep::AddColumn(Column {
                    not_null: false,
                    default: None,
                    identity: None,
                    ..t.clone()
                }));
                if let Some(d) = &t.default {
                    after.push(AlterStep::SetDefault {
                        column: t.name.clone(),
                        expr: d.clone(),
                    });
                }
                if t.not_null {
                    after.push(AlterStep::SetNotNull(t.name.clone()));
                }
                if let Some(k) = &t.identity {
                    after.push(AlterStep::AddIdentity {
                        column: t.name.clone(),
                        kind: k.clone(),
                    });
                }
            }
        }
    }
    // NOT NULL of key columns comes with the key; setting it first is harmless.
    if (key_changes || live.primary_key.is_empty()) && !target.primary_key.is_empty() {
        after.push(AlterStep::AddPrimaryKey(target.primary_key.clone()));
    }
    AlterPlan {
        before_rows: before,
        after_rows: after,
        needs_reload,
    }
}

/// Applies `plan` to a definition, as the server would (the property tests' model of
/// the server; the glue compares the live table itself with the target).
#[cfg(test)]
pub fn apply_plan(live: &TableSchema, plan: &AlterPlan) -> TableSchema {
    let mut s = live.clone();
    let col = |s: &mut TableSchema, n: &str| s.columns.iter().position(|c| c.name == n);
    for step in plan.before_rows.iter().chain(&plan.after_rows) {
        match step {
            AlterStep::DropPrimaryKey => s.primary_key.clear(),
            AlterStep::DropColumn(n) => {
                s.columns.retain(|c| &c.name != n);
                s.primary_key.retain(|k| k != n);
            }
            AlterStep::RenameColumn { from, to } => {
                if let Some(i) = col(&mut s, from) {
                    s.columns[i].name = to.clone();
                }
                for k in s.primary_key.iter_mut().filter(|k| *k == from) {
                    *k = to.clone();
                }
            }
            AlterStep::DropDefault(n) => {
                if let Some(i) = col(&mut s, n) {
                    s.columns[i].default = None;
                }
            }
            AlterStep::DropNotNull(n) => {
                if let Some(i) = col(&mut s, n) {
                    s.columns[i].not_null = false;
                }
            }
            AlterStep::DropIdentity(n) => {
                if let Some(i) = col(&mut s, n) {
                    s.columns[i].identity = None;
                }
            }
            AlterStep::AlterType { column, type_name } => {
                if let Some(i) = col(&mut s, column) {
                    s.columns[i].type_name = type_name.clone();
                }
            }
            AlterStep::AddColumn(c) => s.columns.push(c.clone()),
            AlterStep::SetDefault { column, expr } => {
                if let Some(i) = col(&mut s, column) {
                    s.columns[i].default = Some(expr.clone());
                }
            }
            AlterStep::SetNotNull(n) => {
                if let Some(i) = col(&mut s, n) {
                    s.columns[i].not_null = true;
                }
            }
            AlterStep::AddIdentity { column, kind } => {
                if let Some(i) = col(&mut s, column) {
                    s.columns[i].identity = Some(kind.clone());
                    s.columns[i].not_null = true;
                }
            }
            AlterStep::AddPrimaryKey(k) => {
                s.primary_key = k.clone();
                for c in s.columns.iter_mut().filter(|c| k.contains(&c.name)) {
                    c.not_null = true;
                }
            }
        }
    }
    s
}

/// One difference between two versions of the tracked tables' definitions
/// (`vc.schema_diff`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// The table's name on the newer side (the older one when it was removed).
    pub table: String,
    pub change: &'static str,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How a column reads in a schema change: `name type [NOT NULL] [DEFAULT expr]
/// [GENERATED ...] [IDENTITY]`.
pub fn describe_column(c: &Column) -> String {
    let mut d = format!("{} {}", c.name, c.type_name);
    if c.not_null {
        d.push_str(" NOT NULL");
    }
    if let Some(x) = &c.default {
        d.push_str(&format!(" DEFAULT {x}"));
    }
    if let Some(g) = &c.generated {
        d.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
    }
    match c.identity.as_deref() {
        Some("a") => d.push_str(" GENERATED ALWAYS AS IDENTITY"),
        Some(_) => d.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        None => {}
    }
    d
}

/// The whole definition of a table, as one line.
pub fn describe_table(s: &TableSchema) -> String {
    let cols: Vec<String> = s.columns.iter().map(describe_column).collect();
    let mut d = format!("({})", cols.join(", "));
    if !s.primary_key.is_empty() {
        d.push_str(&format!(" PRIMARY KEY ({})", s.primary_key.join(", ")));
    }
    for c in &s.constraints {
        d.push_str(&format!(", {}", describe_constraint(c)));
    }
    for ix in &s.indexes {
        d.push_str(&format!("; {}", describe_index(ix)));
    }
    d
}

/// An index as one line, as `CREATE INDEX` would say it.
pub fn describe_index(ix: &IndexDef) -> String {
    let keys: Vec<String> = ix
        .keys
        .iter()
        .map(|k| {
            let mut d = match (&k.column, &k.expression) {
                (Some(c), _) => c.clone(),
                (None, Some(e)) => format!("({e})"),
                _ => String::new(),
            };
            if let Some(c) = &k.collation {
                d.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(o) = &k.opclass {
                d.push_str(&format!(" {o}"));
            }
            if k.descending {
                d.push_str(" DESC");
            }
            match (k.descending, k.nulls_first) {
                (false, true) => d.push_str(" NULLS FIRST"),
                (true, false) => d.push_str(" NULLS LAST"),
                _ => {}
            }
            d
        })
        .collect();
    let mut d = format!(
        "{}INDEX {} USING {} ({})",
        if ix.unique { "UNIQUE " } else { "" },
        ix.name,
        ix.method,
        keys.join(", ")
    );
    if !ix.include.is_empty() {
        d.push_str(&format!(" INCLUDE ({})", ix.include.join(", ")));
    }
    if ix.nulls_not_distinct {
        d.push_str(" NULLS NOT DISTINCT");
    }
    if let Some(p) = &ix.predicate {
        d.push_str(&format!(" WHERE {p}"));
    }
    d
}

/// A constraint as one line, as `ADD CONSTRAINT` would say it.
pub fn describe_constraint(c: &ConstraintDef) -> String {
    let action = |a: &Option<String>| match a.as_deref() {
        Some("r") => "RESTRICT",
        Some("c") => "CASCADE",
        Some("n") => "SET NULL",
        Some("d") => "SET DEFAULT",
        _ => "NO ACTION",
    };
    let mut d = match c.kind {
        ConstraintKind::Check => format!(
            "CONSTRAINT {} CHECK ({}){}",
            c.name,
            c.expression.as_deref().unwrap_or(""),
            if c.no_inherit { " NO INHERIT" } else { "" }
        ),
        ConstraintKind::Unique => format!(
            "CONSTRAINT {} UNIQUE{} ({}){}",
            c.name,
            if c.nulls_not_distinct {
                " NULLS NOT DISTINCT"
            } else {
                ""
            },
            c.columns.join(", "),
            if c.include.is_empty() {
                String::new()
            } else {
                format!(" INCLUDE ({})", c.include.join(", "))
            }
        ),
        ConstraintKind::ForeignKey => format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){} ON UPDATE {} ON DELETE {}",
            c.name,
            c.columns.join(", "),
            c.references.as_deref().unwrap_or(""),
            c.ref_columns.join(", "),
            if c.match_type.as_deref() == Some("f") {
                " MATCH FULL"
            } else {
                ""
            },
            action(&c.on_update),
            action(&c.on_delete)
        ),
    };
    if c.deferrable {
        d.push_str(if c.deferred {
            " DEFERRABLE INITIALLY DEFERRED"
        } else {
            " DEFERRABLE"
        });
    }
    if !c.valid {
        d.push_str(" NOT VALID");
    }
    d
}

/// Index and constraint changes from `f` to `t`, matched by name.
fn extras_changes(
    f: &TableSchema,
    t: &TableSchema,
) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let mut out = by_name(
        &f.indexes,
        &t.indexes,
        |i| &i.name,
        describe_index,
        ["index dropped", "index changed", "index added"],
    );
    out.extend(by_name(
        &f.constraints,
        &t.constraints,
        |c| &c.name,
        describe_constraint,
        [
            "constraint dropped",
            "constraint changed",
            "constraint added",
        ],
    ));
    out
}

/// The objects dropped, changed and added from `f` to `t`, matched by `name`, as the
/// three `changes` say them.
fn by_name<T: PartialEq>(
    f: &[T],
    t: &[T],
    name: impl Fn(&T) -> &String,
    describe: impl Fn(&T) -> String,
    changes: [&'static str; 3],
) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    for x in f {
        match t.iter().find(|y| name(y) == name(x)) {
            None => out.push((changes[0], Some(describe(x)), None)),
            Some(y) if y != x => out.push((changes[1], Some(describe(x)), Some(describe(y)))),
            _ => {}
        }
    }
    for y in t {
        if !f.iter().any(|x| name(x) == name(y)) {
            out.push((changes[2], None, Some(describe(y))));
        }
    }
    out
}

/// The definition changes from `from` to `to` (table name -> definition on each
/// side). Tables are matched by identity (so a rename is one change), then by name;
/// columns by tag (by name for version-1 definitions). Ordered by table name, then as
/// the changes apply.
pub fn schema_changes(
    from: &[(String, &TableSchema)],
    to: &[(String, &TableSchema)],
) -> Vec<SchemaChange> {
    let mut out = Vec::new();
    let mut matched_from = vec![false; from.len()];
    for (tname, t) in to {
        let by_id = from.iter().position(|(_, f)| f.id != 0 && f.id == t.id);
        let pos = by_id.or_else(|| {
            from.iter()
                .position(|(n, f)| n == tname && (f.id == 0 || t.id == 0 || f.id == t.id))
        });
        let Some(i) = pos.filter(|i| !matched_from[*i]) else {
            out.push(SchemaChange {
                table: tname.clone(),
                change: "table added",
                before: None,
                after: Some(describe_table(t)),
            });
            continue;
        };
        matched_from[i] = true;
        let (fname, f) = &from[i];
        let mut add = |change, before: Option<String>, after: Option<String>| {
            out.push(SchemaChange {
                table: tname.clone(),
                change,
                before,
                after,
            })
        };
        if fname != tname {
            add("table renamed", Some(fname.clone()), Some(tname.clone()));
        }
        for c in &f.columns {
            if !t.columns.iter().any(|x| same_column(c, x)) {
                add("column dropped", Some(describe_column(c)), None);
            }
        }
        for c in &t.columns {
            let Some(o) = f.columns.iter().find(|x| same_column(x, c)) else {
                add("column added", None, Some(describe_column(c)));
                continue;
            };
            if o.name != c.name {
                add("column renamed", Some(o.name.clone()), Some(c.name.clone()));
            }
            if o.type_name != c.type_name {
                add(
                    "column type changed",
                    Some(format!("{} {}", c.name, o.type_name)),
                    Some(format!("{} {}", c.name, c.type_name)),
                );
            }
            let rest = |x: &Column| Column {
                name: c.name.clone(),
                type_name: c.type_name.clone(),
                tag: 0,
                ..x.clone()
            };
            if rest(o) != rest(c) {
                add(
                    "column changed",
                    Some(describe_column(&rest(o))),
                    Some(describe_column(&rest(c))),
                );
            }
        }
        let key_names = |s: &TableSchema| -> Vec<String> {
            s.key_columns()
                .iter()
                .map(|k| {
                    t.columns
                        .iter()
                        .find(|x| same_column(k, x))
                        .map_or(k.name.clone(), |x| x.name.clone())
                })
                .collect()
        };
        for (change, before, after) in extras_changes(f, t) {
            add(change, before, after);
        }
        if key_names(f) != t.primary_key {
            add(
                "primary key changed",
                Some(format!("({})", f.primary_key.join(", "))),
                Some(format!("({})", t.primary_key.join(", "))),
            );
        }
    }
    for (i, (fname, f)) in from.iter().enumerate() {
        if !matched_from[i] {
            out.push(SchemaChange {
                table: fname.clone(),
                change: "table dropped",
                before: Some(describe_table(f)),
                after: None,
            });
        }
    }
    out.sort_by(|a, b| a.table.cmp(&b.table));
    out
}

/// The user types whose values print differently under `to` than under `from`: the
/// composites whose attributes differ, and every type built on one of them (domains,
/// composites, ranges, arrays). A table with a column of such a type has rows whose
/// encoding changed without any write: a commit compares it in full, a checkout
/// rewrites it whole.
pub fn retyped(
    from: &std::collections::BTreeMap<String, crate::commit::TypeDef>,
    to: &std::collections::BTreeMap<String, crate::commit::TypeDef>,
) -> std::collections::BTreeSet<String> {
    use crate::commit::TypeDef;
    let mut out: std::collections::BTreeSet<String> = to
        .iter()
        .filter(|(n, d)| {
            matches!(d, TypeDef::Composite { .. }) && from.get(*n).is_some_and(|f| f != *d)
        })
        .map(|(n, _)| n.clone())
        .collect();
    loop {
        let more: Vec<String> = to
            .iter()
            .filter(|(n, d)| {
                !out.contains(*n) && d.refers_to().iter().any(|r| out.contains(base_type(r)))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// A type name without its array brackets.
pub fn base_type(type_name: &str) -> &str {
    type_name.trim_end_matches("[]")
}

/// Whether a table has a column of one of the `types`.
pub fn uses_types(s: &TableSchema, types: &std::collections::BTreeSet<String>) -> bool {
    !types.is_empty()
        && s.columns
            .iter()
            .any(|c| types.contains(base_type(&c.type_name)))
}

/// One `ALTER TYPE` step on a composite type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeStep {
    Drop(String),
    Rename {
        from: String,
        to: String,
    },
    /// Name and type (`format_type` text).
    Add(String, String),
}

/// The `ALTER TYPE` steps that make a composite type with attributes `have` (name,
/// type, in order) into one with `want`, as PostgreSQL allows them on a type that
/// tables use (no `ALTER ATTRIBUTE ... TYPE` then): attributes renamed in place when
/// only names differ; otherwise the longest start of `want` found in order in `have`
/// is kept, everything else dropped, and the rest of `want` added at the end. (A
/// checkout then rewrites every row of the tables using the type from the commit, so
/// no value depends on what was dropped.)
pub fn plan_composite(have: &[(String, String)], want: &[(String, String)]) -> Vec<AttributeStep> {
    // Renames only: the same number of attributes with the same types.
    if have.len() == want.len() && have.iter().zip(want).all(|(h, w)| h.1 == w.1) {
        let steps: Vec<AttributeStep> = have
            .iter()
            .zip(want)
            .filter(|(h, w)| h.0 != w.0)
            .map(|(h, w)| AttributeStep::Rename {
                from: h.0.clone(),
                to: w.0.clone(),
            })
            .collect();
        // A rename to a name another attribute still has would collide midway.
        let collides = steps.iter().any(|s| match s {
            AttributeStep::Rename { to, .. } => have.iter().any(|h| &h.0 == to),
            _ => false,
        });
        if !collides {
            return steps;
        }
    }
    let mut kept = 0;
    let mut at = 0;
    for w in want {
        match have[at..].iter().position(|h| h == w) {
            Some(p) => {
                at += p + 1;
                kept += 1;
            }
            None => break,
        }
    }
    let keep = &want[..kept];
    let mut steps: Vec<AttributeStep> = have
        .iter()
        .filter(|h| !keep.contains(h))
        .map(|h| AttributeStep::Drop(h.0.clone()))
        .collect();
    steps.extend(
        want[kept..]
            .iter()
            .map(|w| AttributeStep::Add(w.0.clone(), w.1.clone())),
    );
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn col(tag: u64, name: &str, ty: &str) -> Column {
        Column {
            tag,
            ..Column::new(name, ty)
        }
    }

    fn schema(cols: Vec<Column>, pk: &[&str]) -> TableSchema {
        let mut s = TableSchema::new(cols, pk.iter().map(|k| k.to_string()).collect());
        s.id = 1;
        for c in s.columns.iter_mut() {
            if pk.contains(&c.name.as_str()) {
                c.not_null = true;
            }
        }
        s
    }

    /// Applies composite steps to an attribute list (the model of ALTER TYPE).
    fn apply_attributes(
        have: &[(String, String)],
        steps: &[AttributeStep],
    ) -> Vec<(String, String)> {
        let mut out = have.to_vec();
        for s in steps {
            match s {
                AttributeStep::Drop(n) => out.retain(|a| &a.0 != n),
                AttributeStep::Rename { from, to } => {
                    for a in out.iter_mut().filter(|a| &a.0 == from) {
                        a.0 = to.clone();
                    }
                }
                AttributeStep::Add(n, t) => out.push((n.clone(), t.clone())),
            }
        }
        out
    }

    #[test]
    fn a_changed_composite_retypes_what_is_built_on_it() {
        use crate::commit::TypeDef;
        use std::collections::BTreeMap;
        let comp = |attrs: &[&str]| TypeDef::Composite {
            attributes: attrs
                .iter()
                .map(|a| (a.to_string(), "integer".into()))
                .collect(),
        };
        let dom = |base: &str| TypeDef::Domain {
            base: base.into(),
            not_null: false,
            default: None,
            checks: vec![],
        };
        let from: BTreeMap<String, TypeDef> = [
            ("public.c".to_string(), comp(&["a"])),
            ("public.d".to_string(), dom("public.c[]")),
            ("public.e".to_string(), dom("integer")),
            ("public.f".to_string(), comp(&["a"])),
        ]
        .into();
        let mut to = from.clone();
        to.insert("public.c".into(), comp(&["a", "b"]));
        // A domain label change, a new composite: no value prints differently.
        to.insert("public.e".into(), dom("bigint"));
        to.insert("public.g".into(), comp(&["z"]));
        let got = retyped(&from, &to);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["public.c", "public.d"]
        );
        let t = TableSchema::new(vec![Column::new("x", "public.d[]")], vec![]);
        assert!(uses_types(&t, &retyped(&from, &to)));
        assert!(!uses_types(&t, &retyped(&from, &from)));
    }

    #[test]
    fn composite_changes_are_planned_as_postgres_allows_them() {
        let a = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect()
        };
        let have = a(&[("x", "integer"), ("y", "text")]);
        for want in [
            a(&[("x", "integer"), ("y", "text"), ("z", "date")]),
            a(&[("y", "text")]),
            a(&[("x2", "integer"), ("y", "text")]),
            a(&[("y", "text"), ("w", "integer")]),
            a(&[("y", "text"), ("x", "integer")]),
        ] {
            let steps = plan_composite(&have, &want);
            assert_eq!(apply_attributes(&have, &steps), want, "{steps:?}");
        }
        // An addition is one step, a rename too.
        assert_eq!(
            plan_composite(&have, &a(&[("x", "integer"), ("y", "text"), ("z", "date")])),
            vec![AttributeStep::Add("z".into(), "date".into())]
        );
        assert_eq!(
            plan_composite(&have, &a(&[("x2", "integer"), ("y", "text")])),
            vec![AttributeStep::Rename {
                from: "x".into(),
                to: "x2".into()
            }]
        );
        // A type change is a drop and an add (tables using the type are rewritten).
        let retyped = a(&[("x", "bigint"), ("y", "text")]);
        assert_eq!(
            apply_attributes(&have, &plan_composite(&have, &retyped)),
            retyped
        );
    }

    proptest! {
        /// Whatever the plan, applying it gives the target exactly.
        #[test]
        fn composite_plans_reach_their_target(
            have in proptest::collection::vec(("[a-d]", "(integer|text)"), 0..5),
            want in proptest::collection::vec(("[a-e]", "(integer|text)"), 0..5),
        ) {
            let dedup = |v: Vec<(String, String)>| {
                let mut seen = std::collections::HashSet::new();
                v.into_iter().filter(|a| seen.insert(a.0.clone())).collect::<Vec<_>>()
            };
            let (have, want) = (dedup(have), dedup(want));
            let steps = plan_composite(&have, &want);
            prop_assert_eq!(apply_attributes(&have, &steps), want);
        }
    }

    #[test]
    fn tags_survive_renames_and_new_columns_get_new_ones() {
        let live = TableSchema::new(
            vec![col(0, "id", "integer"), col(0, "v", "text")],
            vec!["id".into()],
        );
        let first = versioned("public.t", None, None, live.clone(), &[None, None]);
        assert_ne!(first.id, 0);
        assert!(first.columns.iter().all(|c| c.tag != 0));
        assert_ne!(first.columns[0].tag, first.columns[1].tag);
        // Renamed v -> w: the record knows the column by attribute number.
        let mut renamed = live.clone();
        renamed.columns[1].name = "w".into();
        let known = [Some(first.columns[0].tag), Some(first.columns[1].tag)];
        let second = versioned("public.t", None, Some(&first), renamed, &known);
        assert_eq!(second.columns[1].tag, first.columns[1].tag);
        assert_eq!(second.id, first.id);
        // Dropped and added again under the same name: a new column.
        let mut readded = live.clone();
        readded.columns[1].type_name = "integer".into();
        let third = versioned("public.t", None, Some(&first), readded, &[known[0], None]);
        assert_ne!(third.columns[1].tag, first.columns[1].tag);
        // Without a record (a version-1 parent or a lost record), names match.
        let fourth = versioned("public.t", None, Some(&first), live, &[None, None]);
        assert_eq!(fourth.columns, first.columns);
        // The id follows the parent through a table rename.
        let moved = versioned("public.u", None, Some(&first), fourth.clone(), &known);
        assert_eq!(moved.id, first.id);
    }

    #[test]
    fn which_changes_keep_the_tree() {
        let a = schema(vec![col(1, "id", "integer"), col(2, "v", "text")], &["id"]);
        let mut b = a.clone();
        b.columns.push(col(3, "w", "integer"));
        assert!(value_prefix(&a, &b));
        assert!(rows_comparable(&b, &a));
        let mut renamed = a.clone();
        renamed.columns[1].name = "x".into();
        renamed.columns[1].not_null = true;
        renamed.columns[1].default = Some("'d'::text".into());
        assert!(value_prefix(&a, &renamed));
        let mut retyped = a.clone();
        retyped.columns[1].type_name = "character varying".into();
        assert!(!rows_comparable(&a, &retyped));
        // A column dropped in the middle shifts the others.
        let mut wide = b.clone();
        wide.columns.remove(1);
        assert!(!rows_comparable(&b, &wide));
        let mut rekeyed = b.clone();
        rekeyed.primary_key = vec!["id".into(), "w".into()];
        assert!(!rows_comparable(&b, &rekeyed));
    }

    #[test]
    fn plans_order_drops_renames_rows_then_constraints() {
        let live = schema(
            vec![
                col(1, "id", "integer"),
                col(2, "a", "text"),
                col(3, "b", "text"),
            ],
            &["id"],
        );
        let mut target = schema(
            vec![
                col(1, "id", "integer"),
                col(3, "a", "text"),
                col(4, "c", "integer"),
            ],
            &["id"],
        );
        target.columns[2].not_null = true;
        target.columns[2].default = Some("0".into());
        let p = plan_alter(&live, &target);
        assert_eq!(
            p.before_rows,
            vec![
                AlterStep::DropColumn("a".into()),
                AlterStep::RenameColumn {
                    from: "b".into(),
                    to: "a".into()
                },
                AlterStep::AddColumn(col(4, "c", "integer")),
            ]
        );
        assert_eq!(
            p.after_rows,
            vec![
                AlterStep::SetDefault {
                    column: "c".into(),
                    expr: "0".into()
                },
                AlterStep::SetNotNull("c".into()),
            ]
        );
        assert!(in_order_of(&target, apply_plan(&live, &p)).same_definition(&target));
        // And back: the dropped column comes back last, in logical order first.
        let back = plan_alter(&apply_plan(&live, &p), &live);
        let physical = apply_plan(&target, &back);
        assert!(!physical.same_definition(&live));
        assert!(in_order_of(&live, physical).same_definition(&live));
    }

    #[test]
    fn remade_generated_and_user_typed_columns_need_a_reload() {
        let live = schema(
            vec![col(1, "id", "integer"), col(2, "a", "integer")],
            &["id"],
        );
        // Plain nullable column of a built-in type: no reload (the cheap path).
        let mut plain = live.clone();
        plain.columns.push(col(3, "b", "integer"));
        assert!(!plan_alter(&live, &plain).needs_reload);
        // A column of a user type: its domain default or check would run on every row.
        let mut typed = live.clone();
        typed.columns.push(col(3, "b", "public.posint"));
        assert!(plan_alter(&live, &typed).needs_reload);
        // A generated column added, or one made plain again.
        let mut generated = live.clone();
        generated.columns.push(Column {
            generated: Some("(a * 2)".into()),
            ..col(3, "b", "integer")
        });
        assert!(plan_alter(&live, &generated).needs_reload);
        assert!(plan_alter(&generated, &plain).needs_reload);
    }

    #[test]
    fn swapped_names_go_through_temporary_ones() {
        let live = schema(
            vec![
                col(1, "id", "integer"),
                col(2, "a", "text"),
                col(3, "b", "text"),
            ],
            &["id"],
        );
        let mut target = live.clone();
        target.columns[1].name = "b".into();
        target.columns[2].name = "a".into();
        let p = plan_alter(&live, &target);
        assert_eq!(p.before_rows.len(), 4);
        assert!(in_order_of(&target, apply_plan(&live, &p)).same_definition(&target));
    }

    #[test]
    fn key_changes_drop_and_add_the_key() {
        let live = schema(vec![col(1, "id", "integer"), col(2, "v", "text")], &["id"]);
        let target = schema(
            vec![col(1, "id", "integer"), col(2, "v", "text")],
            &["id", "v"],
        );
        let p = plan_alter(&live, &target);
        assert_eq!(p.before_rows, vec![AlterStep::DropPrimaryKey]);
        assert_eq!(
            p.after_rows,
            vec![
                AlterStep::SetNotNull("v".into()),
                AlterStep::AddPrimaryKey(vec!["id".into(), "v".into()])
            ]
        );
        assert!(plan_alter(&live, &live).is_empty());
    }

    fn arb_schema() -> impl Strategy<Value = TableSchema> {
        // Columns drawn from a pool of 6 identities, each with one of two names and
        // one of two types; column 1 is always the key.
        proptest::collection::btree_set(2u64..8, 0..5).prop_flat_map(|tags| {
            let n = tags.len();
            (
                Just(tags),
                proptest::collection::vec(any::<(bool, bool, bool, bool)>(), n + 1),
                any::<bool>(),
            )
                .prop_map(|(tags, flags, key_typed)| {
                    let mut cols = vec![Column {
                        not_null: true,
                        ..col(1, "id", if key_typed { "integer" } else { "bigint" })
                    }];
                    for (t, (name2, ty2, nn, def)) in
                        tags.into_iter().zip(flags.into_iter().skip(1))
                    {
                        let name = if name2 {
                            format!("c{t}")
                        } else {
                            format!("n{}", 9 - t)
                        };
                        cols.push(Column {
                            not_null: nn,
                            default: def.then(|| "1".to_string()),
                            ..col(t, &name, if ty2 { "text" } else { "integer" })
                        });
                    }
                    let mut s = TableSchema::new(cols, vec!["id".into()]);
                    s.id = 1;
                    s
                })
        })
    }

    proptest! {
        /// From any definition to any other (same identities in any mix of names,
        /// types, defaults and NOT NULL, columns added and dropped), the plan reaches
        /// the target's columns (in the order a server gives them) and key.
        #[test]
        fn a_plan_reaches_its_target(live in arb_schema(), target in arb_schema()) {
            let p = plan_alter(&live, &target);
            let got = apply_plan(&live, &p);
            let mut want: Vec<&Column> = target.columns.iter().collect();
            let mut have: Vec<&Column> = got.columns.iter().collect();
            want.sort_by_key(|c| c.tag);
            have.sort_by_key(|c| c.tag);
            prop_assert_eq!(have.len(), want.len());
            for (h, w) in have.iter().zip(&want) {
                prop_assert_eq!(&h.name, &w.name);
                prop_assert_eq!(&h.type_name, &w.type_name);
                prop_assert_eq!(h.not_null, w.not_null);
                prop_assert_eq!(&h.default, &w.default);
            }
            prop_assert_eq!(&got.primary_key, &target.primary_key);
            // No column is ever named twice at once.
            let mut names: Vec<&str> = live.columns.iter().map(|c| c.name.as_str()).collect();
            for s in &p.before_rows {
                match s {
                    AlterStep::DropColumn(n) => names.retain(|x| x != n),
                    AlterStep::RenameColumn { from, to } => {
                        prop_assert!(!names.contains(&to.as_str()), "{} taken", to);
                        names.retain(|x| x != from);
                        names.push(to);
                    }
                    AlterStep::AddColumn(c) => {
                        prop_assert!(!names.contains(&c.name.as_str()), "{} taken", c.name);
                        names.push(&c.name);
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn schema_changes_name_each_difference() {
        let a = schema(
            vec![
                col(1, "id", "integer"),
                col(2, "a", "text"),
                col(3, "b", "integer"),
            ],
            &["id"],
        );
        let mut b = a.clone();
        b.columns[1].name = "a2".into();
        b.columns[2].type_name = "bigint".into();
        b.columns[2].not_null = true;
        b.columns.push(col(4, "c", "text"));
        let mut gone = schema(vec![col(9, "k", "text")], &["k"]);
        gone.id = 77;
        let got = schema_changes(
            &[("public.t".into(), &a), ("public.gone".into(), &gone)],
            &[("public.renamed".into(), &b)],
        );
        let flat: Vec<String> = got
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {} -> {}",
                    c.table,
                    c.change,
                    c.before.as_deref().unwrap_or("-"),
                    c.after.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            flat,
            [
                "public.gone table dropped: (k text NOT NULL) PRIMARY KEY (k) -> -",
                "public.renamed table renamed: public.t -> public.renamed",
                "public.renamed column renamed: a -> a2",
                "public.renamed column type changed: b integer -> b bigint",
                "public.renamed column changed: b bigint -> b bigint NOT NULL",
                "public.renamed column added: - -> c text",
            ]
        );
        assert!(schema_changes(&[("x".into(), &a)], &[("x".into(), &a)]).is_empty());
    }
}
