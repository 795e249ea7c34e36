//! Moving the live tables to a commit (`checkout_root`: the code of `vc.reset`, pull,
//! clone, restore and the standby's apply), and materialising committed tables: creating
//! a table from a commit's schema (with its sequences) and loading its rows.

use super::catalog::{restore_sequences, sequence_names, table_schema, tracked_tables, Tracked};
use super::definition::record;
use super::error::{VcError, VcResult};
use super::rows::{logged_key_bytes, read_mode_of, working_changes, write_keyless, write_rows};
use super::spi::{exec, one_text, with_replica_role, Arg};
use super::sql::{self, ColumnDef, Ident, ObjectKind, Plan, QualName, SqlExpr, SqlType};
use super::store::PgStore;
use super::types::NewLabels;
use crate::codec::load_value;
use crate::commit::{Commit, RootValue, TableEntry};
use crate::prolly;
use crate::repo::schema::{in_order_of, plan_alter, rows_comparable, AlterStep};
use crate::repo::worktree::{
    keyless_rewrites, plan_checkout, rewrite_keys, CheckoutRefused, LiveTable, ReadMode, Step,
};
use crate::store::ChunkStore;
use pgrx::PgSqlErrorCode as Code;

/// Rows written per statement while loading a table.
const LOAD_BATCH: usize = 5000;

/// Creates the table `name` as described by a commit (columns, types, defaults,
/// generated and identity columns, primary key) and its sequences. Refuses if a
/// relation of that name exists. Types must exist (user enums, domains, composites
/// are not part of a commit).
///
/// Everything in `entry` is untrusted (it may come from a remote): names are
/// re-quoted, types resolved through the catalog, expressions parsed as one
/// expression each, and a recorded sequence is created here or refused, never taken
/// over. Returns the sequences whose recorded state may be restored: those this call
/// created or that the new table owns.
pub fn create_table(name: &str, entry: &TableEntry) -> VcResult<Vec<String>> {
    let table = QualName::parse_user("table name", name)?;
    if exists(&table.to_string())? {
        return Err(VcError::new(
            Code::ERRCODE_DUPLICATE_TABLE,
            format!("table {table} already exists"),
        )
        .hint("drop or rename it first, or use a database without it"));
    }
    // Check everything before creating anything.
    let mut cols = Vec::new();
    for c in &entry.schema.columns {
        let what = |w: &str| format!("{w} of column {:?} of {table}", c.name);
        cols.push(ColumnDef {
            name: Ident::checked("column name", &c.name)?,
            ty: SqlType::resolve(&c.type_name)?,
            default: match &c.default {
                Some(d) => Some(SqlExpr::checked(&what("default"), d)?),
                None => None,
            },
            generated: match &c.generated {
                Some(g) => Some(SqlExpr::checked(&what("generation expression"), g)?),
                None => None,
            },
            identity: match c.identity.as_deref() {
                None => None,
                Some("a") => Some('a'),
                Some("d") => Some('d'),
                Some(other) => {
                    return Err(VcError::new(
                        Code::ERRCODE_INVALID_TABLE_DEFINITION,
                        format!("{}: unknown identity kind {other:?}", what("identity")),
                    ))
                }
            },
            not_null: c.not_null,
        });
    }
    let column_named = |n: &str| entry.schema.columns.iter().find(|c| c.name == n);
    // The primary key comes after the rows (`add_primary_key`), built in one sort as
    // pg_restore builds it, not entry by entry while they load; its names are checked
    // now, before anything is created.
    for k in &entry.schema.primary_key {
        if column_named(k).is_none() {
            return Err(VcError::new(
                Code::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("the primary key of {table} names a column it does not have"),
            ));
        }
        Ident::checked("column name", k)?;
    }
    // Sequences: identity columns make their own (renamed below); the others must not
    // exist yet when a column owns them, and are created here.
    let mut create = Vec::new();
    let mut identity_renames = Vec::new();
    for s in &entry.sequences {
        let seq = QualName::parse_user("sequence name", &s.name)?;
        // A table's sequences live in its schema (pg_dump and pgvc keep them there):
        // never another role's schema, and never a different object than the rename
        // below produces.
        if seq.schema != table.schema {
            return Err(bad_sequence(&seq, &table));
        }
        let col = match &s.column {
            Some(col) => Some(column_named(col).ok_or_else(|| {
                VcError::new(
                    Code::ERRCODE_INVALID_TABLE_DEFINITION,
                    format!("sequence {seq} is owned by a column {table} does not have"),
                )
            })?),
            None => None,
        };
        if let Some(c) = col.filter(|c| c.identity.is_some()) {
            check_ident_only(&c.name)?;
            identity_renames.push((c.name.clone(), seq, s.name.clone()));
            continue;
        }
        if exists(&seq.to_string())? {
            if col.is_some() {
                return Err(VcError::new(
                    Code::ERRCODE_DUPLICATE_TABLE,
                    format!("sequence {seq} of table {table} already exists here"),
                )
                .hint("drop or rename it first: pgvc does not take over an existing sequence"));
            }
            // Shared by defaults of several tables (pg_dump style): used as it is, its
            // value left alone.
            continue;
        }
        let owner = match col {
            Some(c) => Some(Ident::checked("column name", &c.name)?),
            None => None,
        };
        create.push((seq, owner, s.name.clone()));
    }
    if entry
        .schema
        .columns
        .iter()
        .any(|c| c.default.is_some() || c.generated.is_some())
    {
        super::namespace::refuse_parse_time_code(&table.to_string())?;
    }
    let for_caller = super::namespace::ensure_schema(&table.schema)?;
    let mut allowed = Vec::new();
    // Sequences must exist before the defaults that call nextval() on them.
    for (seq, _, recorded) in &create {
        exec(sql::create_sequence(seq), vec![])?;
        allowed.push(recorded.clone());
    }
    exec(sql::create_table(&table, &cols), vec![])?;
    if let Some(role) = &for_caller {
        // Also moves the sequences the table owns.
        exec(
            sql::owner_to(ObjectKind::Table, &table.to_string(), role),
            vec![],
        )?;
        for (seq, owner, _) in &create {
            if owner.is_none() {
                exec(
                    sql::owner_to(ObjectKind::Sequence, &seq.to_string(), role),
                    vec![],
                )?;
            }
        }
    }
    for (seq, owner, _) in &create {
        if let Some(col) = owner {
            exec(sql::sequence_owned_by(seq, &table, col), vec![])?;
        }
    }
    for (col, seq, recorded) in identity_renames {
        // The identity column made its own sequence; give it the recorded name.
        let made = one_text(
            "SELECT pg_get_serial_sequence($1, $2)",
            vec![
                Arg::Text(Some(table.to_string())),
                Arg::Text(Some(
                    col.to_string().trim_matches('"').replace("\"\"", "\""),
                )),
            ],
        )?;
        let Some(made) = made else { continue };
        if made != recorded {
            let made = QualName::parse("sequence name", &made)?;
            exec(
                sql::rename_sequence(&made, &Ident::checked("sequence name", &seq.name)?),
                vec![],
            )?;
        }
        allowed.push(recorded);
    }
    // What was created must be what the commit records: a commit made by pgvc always
    // round-trips; anything else was not made by pgvc.
    let relid = super::catalog::relid_of(&table.to_string())?;
    refuse_foreign_code(relid, &table)?;
    // Indexes and constraints are made after the rows (constraints::create_missing).
    let mut want = super::constraints::columns_only(entry.schema.clone());
    want.primary_key.clear();
    check_made(relid, &table, &want)?;
    Ok(allowed)
}

/// Refuses unless table `relid` as created here has the columns (and primary key) of
/// `want` (indexes and constraints are made after the rows).
fn check_made(
    relid: pgrx::pg_sys::Oid,
    table: &QualName,
    want: &crate::commit::TableSchema,
) -> VcResult<()> {
    let made = super::constraints::columns_only(super::catalog::table_schema(relid)?);
    if !made.same_definition(want) {
        return Err(VcError::new(
            Code::ERRCODE_INVALID_TABLE_DEFINITION,
            format!("the definition of {table} in the commit does not match what it creates here"),
        )
        .hint("a commit made by pgvc records the definition as PostgreSQL prints it; if it came from a remote or backup, check who can write there"));
    }
    Ok(())
}

/// Refuses a new table that would run code owned by another, unprivileged role.
///
/// Rows are loaded, and later read and written, as the table's owner: the role that
/// created it, here. A commit may name any type or function of this database in its
/// column types, defaults and generation expressions, and through a domain's checks
/// or a composite's columns reach code a less privileged role wrote; run as this
/// table's owner, that code would have the owner's rights. So every type, function,
/// operator and collation the new table depends on, directly or through others, must
/// belong to a superuser or to the table's owner.
fn refuse_foreign_code(relid: pgrx::pg_sys::Oid, table: &QualName) -> VcResult<()> {
    let owner = super::catalog::table_owner(relid)?;
    let found = super::catalog::foreign_code(relid, owner, false)?;
    if let Some((object, role)) = found {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("table {table} from the commit would run code of role {role} ({object}) as its owner"),
        )
        .hint("create the table here yourself, owned by the role that should run that code, and vc.track() it; then pull or reset again"));
    }
    Ok(())
}

fn bad_sequence(seq: &QualName, table: &QualName) -> VcError {
    VcError::new(
        Code::ERRCODE_INVALID_TABLE_DEFINITION,
        format!("sequence {seq} of table {table} is not in the table's schema"),
    )
    .hint("pgvc creates a table's sequences in its own schema; if the commit came from a remote or backup, check who can write there")
}

fn check_ident_only(name: &str) -> VcResult<()> {
    Ident::checked("column name", name).map(|_| ())
}

fn exists(name: &str) -> VcResult<bool> {
    Ok(one_text(
        "SELECT to_regclass($1)::text",
        vec![Arg::Text(Some(name.to_string()))],
    )?
    .is_some())
}

/// Adds the primary key `entry` records to `table` (`relid`), just created by
/// `create_table` and loaded (PostgreSQL names it as CREATE TABLE would have), and
/// checks the result against the commit again, key and NOT NULL included: adding a
/// key makes its columns NOT NULL, which a commit must have recorded.
fn add_primary_key(relid: pgrx::pg_sys::Oid, table: &QualName, entry: &TableEntry) -> VcResult<()> {
    if !entry.schema.primary_key.is_empty() {
        let step = AlterStep::AddPrimaryKey(entry.schema.primary_key.clone());
        exec(sql::alter_table(table, &step)?, vec![])?;
    }
    check_made(
        relid,
        table,
        &super::constraints::columns_only(entry.schema.clone()),
    )
}

/// Loads every row of `tree` into `relid`, a table `create_table` made in this
/// transaction (no triggers, no indexes, no policies yet), through COPY FROM as the
/// table's owner (`pg::copy`): batched heap inserts, as pg_restore loads. The rows
/// are written as escaped COPY text lines, never as SQL.
fn copy_rows(
    store: &dyn ChunkStore,
    plan: &Plan,
    relid: pgrx::pg_sys::Oid,
    tree: crate::store::Hash,
) -> VcResult<u64> {
    use crate::codec::{copy_field, copy_text, decode_key, decode_row, Cell};
    let writable: Vec<usize> = (0..plan.value_cols.len())
        .filter(|&i| !plan.value_generated[i])
        .collect();
    let key_cols = if plan.keyless { 0 } else { plan.key_cols.len() };
    let mut columns: Vec<String> = plan.key_cols[..key_cols].to_vec();
    columns.extend(writable.iter().map(|&i| plan.value_cols[i].clone()));
    if columns.is_empty() {
        // COPY reads an empty column list as every column: use the INSERT path.
        return load_rows(store, plan, tree);
    }
    // Leaves are read a level-1 node's worth at a time (one SPI call each).
    let ahead = prolly::Prefetching::new(store);
    let mut rows = prolly::iter(&ahead, tree).peekable();
    let mut block = Vec::with_capacity(COPY_BLOCK + (64 << 10));
    let mut loaded = 0;
    while rows.peek().is_some() {
        // A block of lines, made here with pgvc's rights and settings; then COPY, as
        // the owner, reads nothing but the block.
        block.clear();
        while block.len() < COPY_BLOCK {
            let Some(e) = rows.next() else { break };
            let (k, v) = e?;
            let row = load_value(store, &v)?;
            let mut first = true;
            if key_cols > 0 {
                for t in decode_key(&plan.key_kinds, &k)? {
                    if !std::mem::take(&mut first) {
                        block.push(b'\t');
                    }
                    copy_text(&mut block, &t);
                }
            }
            let cells = decode_row(&row)?;
            for &i in &writable {
                if !std::mem::take(&mut first) {
                    block.push(b'\t');
                }
                let cell = cells.get(i).unwrap_or(&Cell::Null);
                let raw = matches!(cell, Cell::Bytes(_));
                if !matches!(cell, Cell::Null) && raw != plan.value_raw[i] {
                    return Err(VcError::new(
                        Code::ERRCODE_DATA_CORRUPTED,
                        format!(
                            "a row of {} in the commit holds {} for column {:?} of type {}",
                            plan.table,
                            if raw { "bytes" } else { "text" },
                            plan.value_cols[i],
                            plan.value_types[i]
                        ),
                    )
                    .hint("a commit made by pgvc never does; if it came from a remote or backup, check who can write there"));
                }
                copy_field(&mut block, cell);
            }
            block.push(b'\n');
        }
        loaded += super::spi::as_owner(plan.owner, || {
            super::copy::copy_into(relid, &columns, &block)
        })?;
    }
    Ok(loaded)
}

/// Bytes of COPY text prepared per COPY (one `CopyFrom` each).
const COPY_BLOCK: usize = 8 << 20;

/// Loads every row of `tree` into the (empty) live table, in batches, with user
/// triggers and FK checks off (the caller sets `session_replication_role`).
pub fn load_rows(store: &dyn ChunkStore, plan: &Plan, tree: crate::store::Hash) -> VcResult<u64> {
    let mut batch = Vec::with_capacity(LOAD_BATCH);
    let mut n = 0u64;
    for e in prolly::iter(store, tree) {
        let (k, v) = e?;
        batch.push((k, Some(load_value(store, &v)?)));
        if batch.len() == LOAD_BATCH {
            n += batch.len() as u64;
            write_rows(plan, &batch, true)?;
            batch.clear();
        }
    }
    n += batch.len() as u64;
    write_rows(plan, &batch, true)?;
    Ok(n)
}

/// Rows rewritten per batch by a reset.
const REWRITE_BATCH: usize = 5000;

/// Makes the live tracked tables exactly `target` (definitions, rows, sequences),
/// given that the current branch is at `head`: alters each tracked table to the
/// target's definition (docs/SCHEMA.md), rewrites only the rows that differ from the
/// target (the tree diff head -> target plus uncommitted changes) or, where the
/// definition change makes the trees incomparable, reloads the table; creates and
/// tracks the target's tables that do not exist here, drops tracked tables whose
/// removal the target records, and leaves tracked tables that were never committed as
/// they are. All refusals are found before the first change; any error rolls the
/// whole transaction back. `what` names the target in messages. Does not move any ref.
/// With `labels` = `NewLabels::Add`, a target that adds labels to an existing enum
/// only gets them added (a transaction may use a label only once it is committed):
/// then nothing else changes and `true` says to commit and call again.
pub fn checkout_root(
    store: &PgStore,
    head: Option<crate::store::Hash>,
    target: &RootValue,
    what: &str,
    labels: NewLabels,
) -> VcResult<bool> {
    // During an unfinished merge the live tables stand at the merged root (the key
    // logs count from there); moving them anywhere ends the merge (vc.reset,
    // vc.merge_abort, a restore).
    let merging = crate::pg::merging::state()?;
    let head_root = match &merging {
        Some(m) => RootValue::read(store, &m.merged)?,
        None => match head {
            Some(h) => RootValue::read(store, &Commit::read(store, &h)?.root)?,
            None => RootValue::default(),
        },
    };
    // Names in a commit are untrusted: refuse a malformed one before using any.
    for name in target.tables.keys() {
        sql::QualName::parse_user("table name", name)?;
    }
    let tracked: Vec<LiveTable<Tracked>> = tracked_tables()?
        .into_iter()
        .map(|t| LiveTable {
            name: t.name.clone(),
            committed_name: t.committed_name.clone(),
            handle: t,
        })
        .collect();
    let steps = plan_checkout(&head_root, target, tracked, exists)?.map_err(|e| match e {
        CheckoutRefused::UntrackedExists { table } => VcError::new(
            Code::ERRCODE_DUPLICATE_TABLE,
            format!("{what} contains table {table}, which exists here but is not tracked"),
        )
        .hint("vc.track() it (then commit or reset), or drop or rename it"),
        CheckoutRefused::DuplicateId { table } => VcError::new(
            Code::ERRCODE_DATA_CORRUPTED,
            format!("{what} gives table {table} the identity of another of its tables"),
        )
        .hint("a commit made by pgvc never does; if it came from a remote or backup, check who can write there"),
    })?;
    // Lock each table to change, before changing any.
    for step in &steps {
        match step {
            Step::Leave { table } => {
                pgrx::notice!("pgvc: {} is not in {what}; left as it is", table.name)
            }
            Step::Rewrite { table, .. } | Step::Drop { table } => {
                // Lock only what the caller could lock itself (LOCK needs a write
                // right): a role must not hold every tracked table locked from a
                // transaction it leaves open. A table it may not write is refused
                // below if it must be changed.
                if caller_may_write(table.handle.relid)? {
                    let name = QualName::parse("table name", &table.name)?;
                    exec(sql::lock_exclusive(&name), vec![])?;
                }
            }
            Step::Create { .. } => {}
        }
    }
    // Composites whose attributes change here make their values print differently:
    // the tables using them are reloaded from the target.
    let retyped = if target
        .types
        .values()
        .any(|d| matches!(d, crate::commit::TypeDef::Composite { .. }))
    {
        let relids: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Rewrite { table, .. } => Some(table.handle.relid),
                _ => None,
            })
            .collect();
        crate::repo::schema::retyped(&crate::pg::types::collect(&relids)?, &target.types)
    } else {
        Default::default()
    };
    // The user types first: tables are created and altered with them.
    let (pending, added) = crate::pg::types::ensure(&target.types, &target.tables, labels)?;
    if added {
        return Ok(true);
    }
    if merging.is_some() {
        crate::pg::merging::end()?;
    }
    // Writes below must not fire user triggers (a "last_updated" trigger would alter
    // restored rows), FK checks (rows arrive in key order, not dependency order) or our
    // own key log.
    // Foreign keys between tracked tables: those the target lacks, or whose
    // referenced table changes, go before any table moves; the target's are made once
    // every table has (constraints::create_foreign_keys).
    let fks = foreign_key_phase(&steps)?;
    with_replica_role(|| {
        if let Some((moved, changing)) = &fks {
            super::constraints::drop_foreign_keys(moved, changing)?;
        }
        for step in &steps {
            match step {
                Step::Leave { .. } => {}
                Step::Drop { table } => drop_removed(&table.handle, what)?,
                Step::Rewrite {
                    table,
                    name,
                    target,
                    head,
                } => rewrite(
                    store,
                    &table.handle,
                    name,
                    target,
                    head.as_deref(),
                    crate::repo::schema::uses_types(&target.schema, &retyped),
                )?,
                Step::Create { name, entry } => {
                    let sequences = create_table(name, entry)?;
                    // Load before tracking: the rows need not pass through the tracking
                    // triggers' transition tables. The plan comes from the table just
                    // created (its catalog), not from the commit, except for the primary
                    // key, added after the rows: the commit's says how they are keyed.
                    let relid = crate::pg::catalog::relid_of(name)?;
                    let mut live = crate::pg::catalog::table_schema(relid)?;
                    live.primary_key = entry.schema.primary_key.clone();
                    let mut plan = Plan::new(name, &live)?;
                    plan.owner = crate::pg::catalog::table_owner(relid)?;
                    copy_rows(store, &plan, relid, entry.tree)?;
                    // The key and the indexes after the rows, as pg_restore builds them.
                    let table = QualName::parse_user("table name", name)?;
                    add_primary_key(relid, &table, entry)?;
                    super::constraints::create_missing(relid, &table, &entry.schema, &|| {
                        refuse_foreign_code(relid, &table)
                    })?;
                    crate::pg::tracking::track_as(relid, Some(entry.schema.id))?;
                    restore_sequences(plan.owner, &sequences, &entry.sequences)?;
                    exec(
                        "UPDATE vc.tracked SET full_scan = false WHERE relid = $1",
                        vec![Arg::Oid(relid)],
                    )?;
                    record(relid, &entry.schema, name)?;
                }
            }
        }
        if let Some((mut moved, _)) = fks {
            for step in &steps {
                if let Step::Create { name, entry } = step {
                    moved.push(super::constraints::Moved {
                        relid: crate::pg::catalog::relid_of(name)?,
                        name: QualName::parse_user("table name", name)?,
                        target: Some(&entry.schema),
                    });
                }
            }
            super::constraints::create_foreign_keys(&moved)?;
        }
        Ok(())
    })?;
    crate::pg::types::finish(pending)?;
    Ok(false)
}

/// The tables whose foreign keys a checkout handles, and the (live) names of those
/// whose definition or name changes; None when neither the tracked tables nor the
/// target have a foreign key (one query: most databases never pay for the rest).
#[allow(clippy::type_complexity)]
fn foreign_key_phase<'a>(
    steps: &'a [Step<Tracked>],
) -> VcResult<Option<(Vec<super::constraints::Moved<'a>>, Vec<String>)>> {
    use crate::commit::ConstraintKind;
    let target_has = steps.iter().any(|s| match s {
        Step::Rewrite { target, .. } | Step::Create { entry: target, .. } => target
            .schema
            .constraints
            .iter()
            .any(|c| c.kind == ConstraintKind::ForeignKey),
        _ => false,
    });
    let live_has = super::spi::one_bool(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN vc.tracked t ON t.relid::oid = c.conrelid \
                        WHERE c.contype = 'f')",
        vec![],
    )?;
    if !target_has && !live_has {
        return Ok(None);
    }
    let mut moved = Vec::new();
    let mut changing = Vec::new();
    for step in steps {
        match step {
            Step::Rewrite {
                table,
                name,
                target,
                ..
            } => {
                use super::constraints::without_foreign_keys as no_fk;
                let live = no_fk(in_order_of(
                    &target.schema,
                    table_schema(table.handle.relid)?,
                ));
                if *name != table.name || !live.same_definition(&no_fk(target.schema.clone())) {
                    changing.push(table.name.clone());
                }
                moved.push(super::constraints::Moved {
                    relid: table.handle.relid,
                    name: QualName::parse_user("table name", name)?,
                    target: Some(&target.schema),
                });
            }
            Step::Drop { table } => {
                changing.push(table.name.clone());
                moved.push(super::constraints::Moved {
                    relid: table.handle.relid,
                    name: QualName::parse("table name", &table.name)?,
                    target: None,
                });
            }
            _ => {}
        }
    }
    Ok(Some((moved, changing)))
}

/// Drops a tracked table whose removal the target records (it was dropped there).
fn drop_removed(t: &Tracked, what: &str) -> VcResult<()> {
    if !crate::pg::spi::caller_owns(t.relid)? {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied: {what} removes table {}, which only its owner may drop",
                t.name
            ),
        )
        .hint("run it as the table's owner or a superuser"));
    }
    // Event triggers do not fire in the replica role the checkout runs in.
    crate::pg::tracking::untrack(t.relid)?;
    exec(
        sql::drop_table(&QualName::parse("table name", &t.name)?),
        vec![],
    )?;
    Ok(())
}

/// Moves one tracked table to the target's entry `entry`, named `name` there, given
/// its entry at HEAD (`head`): its definition by ALTER TABLE steps, then its rows.
fn rewrite(
    store: &PgStore,
    t: &Tracked,
    name: &str,
    entry: &TableEntry,
    head: Option<&TableEntry>,
    retyped: bool,
) -> VcResult<()> {
    // The live definition against HEAD: how to find the uncommitted changes. Against
    // the target when HEAD lacks the table (columns are then matched by name).
    let live = crate::pg::definition::live(t, head.or(Some(entry)))?;
    let alter = plan_alter(&live.schema, &entry.schema);
    let renamed = name != t.name;
    // Rows: a diff where HEAD's and the target's trees read the same (then only the
    // changed keys are written), else a reload of the whole table.
    // (A composite the table uses changed its attributes: every value prints anew.)
    let reload = retyped
        || match head {
            Some(h) => {
                !rows_comparable(&h.schema, &entry.schema)
                    || alter.changes_types()
                    || alter.needs_reload
            }
            None => true,
        };
    let mut known = std::collections::BTreeMap::new();
    let keys = if reload {
        None
    } else {
        let mode = read_mode_of(t, live.plan.keyless, live.carries, head, true)?;
        // The keys changed since HEAD: just the logged keys (no need to compare values:
        // rewriting an unchanged row is harmless), or those a full comparison finds.
        let working: Vec<Vec<u8>> = match mode {
            ReadMode::Log { .. } => logged_key_bytes(t, &live.plan)?,
            ReadMode::Full { .. } => working_changes(store, t, &live.plan, mode, false)?
                .into_iter()
                .map(|c| {
                    // A keyless row is named by its content: keep it to find its copies.
                    if let Some(r) = c.after.or(c.before).filter(|_| live.plan.keyless) {
                        known.insert(c.key.clone(), r);
                    }
                    c.key
                })
                .collect(),
        };
        Some(rewrite_keys(
            store,
            working,
            head.map(|h| h.tree),
            entry.tree,
        )?)
    };
    let extras = super::constraints::extras_differ(&live.schema, &entry.schema);
    let changes_definition = !alter.is_empty() || renamed || extras;
    if changes_definition && !crate::pg::spi::caller_owns(t.relid)? {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied: moving {} to the committed definition needs ALTER TABLE, which only its owner may",
                t.name
            ),
        )
        .hint("run it as the table's owner or a superuser"));
    }
    // Rewriting a table needs the caller's own rights to write it.
    if reload || keys.as_ref().is_some_and(|k| !k.is_empty()) {
        for privilege in ["INSERT", "UPDATE", "DELETE"] {
            if !crate::pg::spi::caller_may(t.relid, privilege)? {
                return Err(crate::pg::error::denied_table(
                    "rewriting its rows",
                    &t.name,
                    privilege,
                ));
            }
        }
    }
    let mut table = QualName::parse("table name", &t.name)?;
    if reload {
        // Emptied first: a type change then needs no cast of the old values.
        let owner = crate::pg::catalog::table_owner(t.relid)?;
        super::spi::as_owner(owner, || exec(sql::delete_all(&table), vec![]))?;
    }
    for step in &alter.before_rows {
        alter_step(t, &table, step)?;
    }
    if renamed {
        let to = QualName::parse_user("table name", name)?;
        if to.schema != table.schema {
            super::namespace::ensure_missing_schema(&to.schema)?;
            exec(sql::set_schema(&table, &to.schema)?, vec![])?;
            table.schema = to.schema.clone();
        }
        if to.name != table.name {
            exec(sql::rename_table(&table, &to.name)?, vec![])?;
        }
        table = to;
    }
    if extras {
        super::constraints::drop_stale(t.relid, &table, &entry.schema)?;
    }
    if retyped {
        // A composite it uses changed here: check what its values now reach before
        // they are read back in.
        refuse_foreign_code(t.relid, &table)?;
    }
    // Rows are written by column name, in the target's definition.
    let mut plan = Plan::new(name, &entry.schema)?;
    plan.owner = crate::pg::catalog::table_owner(t.relid)?;
    match keys {
        None => {
            load_rows(store, &plan, entry.tree)?;
        }
        Some(keys) if plan.keyless => {
            let rows = keyless_rewrites(store, &keys, &known, head.map(|h| h.tree), entry.tree)?;
            write_keyless(&plan, &rows)?;
        }
        Some(keys) => {
            // Rewrite in batches, reading the target rows as we go: memory stays flat.
            let mut target = prolly::Lookup::new(store, entry.tree);
            let mut rows = Vec::with_capacity(REWRITE_BATCH);
            for k in keys {
                let v = match target.get(&k)? {
                    Some(v) => Some(crate::codec::load_value(store, &v)?),
                    None => None,
                };
                rows.push((k, v));
                if rows.len() == REWRITE_BATCH {
                    write_batch(&plan, &rows, name)?;
                    rows.clear();
                }
            }
            write_batch(&plan, &rows, name)?;
        }
    }
    for step in &alter.after_rows {
        alter_step(t, &table, step)?;
    }
    if extras {
        super::constraints::create_missing(t.relid, &table, &entry.schema, &|| {
            refuse_foreign_code(t.relid, &table)
        })?;
    }
    if changes_definition {
        // Event triggers do not fire in the replica role: rebuild the key log here
        // if the key changed.
        crate::pg::tracking::retrack(t.relid)?;
        // What the steps made must be the target's definition (columns in the
        // target's logical order: a column added again goes last physically).
        // (Foreign keys are made once every table has moved: create_foreign_keys.)
        use super::constraints::without_foreign_keys as no_fk;
        let made = no_fk(in_order_of(&entry.schema, table_schema(t.relid)?));
        if !made.same_definition(&no_fk(entry.schema.clone())) {
            return Err(VcError::new(
                Code::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("could not move {table} to the definition in the commit"),
            )
            .hint("compare \\d of the table with vc.schema of the commit; if the commit came from a remote or backup, check who can write there"));
        }
        refuse_foreign_code(t.relid, &table)?;
    }
    let n = exec(sql::clear_log(&t.log_id()), vec![])?;
    crate::pg::rows::truncate_emptied_log(t, n)?;
    exec(
        "UPDATE vc.tracked SET full_scan = false WHERE relid = $1",
        vec![Arg::Oid(t.relid)],
    )?;
    record(t.relid, &entry.schema, name)?;
    // Sequences are part of the table's state: restored for a caller who may write it.
    if caller_may_write(t.relid)? {
        restore_sequences(plan.owner, &sequence_names(t.relid)?, &entry.sequences)?;
    }
    Ok(())
}

/// Runs one ALTER TABLE step on tracked table `t` (now named `table`).
fn alter_step(t: &Tracked, table: &QualName, step: &AlterStep) -> VcResult<()> {
    match step {
        AlterStep::DropPrimaryKey => {
            let name = one_text(
                "SELECT conname::text FROM pg_constraint WHERE conrelid = $1 AND contype = 'p'",
                vec![Arg::Oid(t.relid)],
            )?;
            if let Some(n) = name {
                exec(sql::drop_constraint(table, &n), vec![])?;
            }
        }
        AlterStep::SetDefault { .. } | AlterStep::AddColumn(_) => {
            // Parsing an expression can run a domain's check (see
            // refuse_parse_time_code).
            if matches!(step, AlterStep::SetDefault { .. })
                || matches!(step, AlterStep::AddColumn(c) if c.generated.is_some())
            {
                super::namespace::refuse_parse_time_code(&table.to_string())?;
            }
            exec(sql::alter_table(table, step)?, vec![])?;
        }
        _ => {
            exec(sql::alter_table(table, step)?, vec![])?;
        }
    }
    Ok(())
}

/// A row a merge could not write because a unique constraint refused it: the live
/// table keeps its row (ours) and the merge records it (`vc.violations()`).
pub struct Refused {
    /// The table's name in the merged root.
    pub table: String,
    pub key: Vec<u8>,
    /// The server's message (it names the constraint).
    pub message: String,
}

thread_local! {
    /// Collects refused rows while `collecting_refused` runs; `None` otherwise (a
    /// unique violation is then the ERROR it always was).
    static REFUSED: std::cell::RefCell<Option<Vec<Refused>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a checkout) with rows that a unique constraint refuses left as they
/// are and returned, instead of failing the checkout.
pub fn collecting_refused(f: impl FnOnce() -> VcResult<bool>) -> VcResult<Vec<Refused>> {
    /// Turns collecting off however `f` ends: an ERROR unwinds through here, and a
    /// later checkout in this session must fail on a unique violation again.
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            REFUSED.with(|r| *r.borrow_mut() = None);
        }
    }
    REFUSED.with(|r| *r.borrow_mut() = Some(Vec::new()));
    let _off = Off;
    let result = f();
    let refused = REFUSED.with(|r| r.borrow_mut().take()).unwrap_or_default();
    result?;
    Ok(refused)
}

/// Writes a batch of rows of table `name`; while refused rows are collected, a batch
/// a unique constraint refuses is written again row by row, each in a
/// subtransaction, and the rows still refused are collected. (Rows refused only
/// because another row of the batch held their value a moment earlier get another
/// round, until a round writes none.)
fn write_batch(plan: &Plan, rows: &[(Vec<u8>, Option<Vec<u8>>)], name: &str) -> VcResult<()> {
    const UNIQUE: &[Code] = &[Code::ERRCODE_UNIQUE_VIOLATION];
    if REFUSED.with(|r| r.borrow().is_none()) || rows.is_empty() {
        return write_rows(plan, rows, false);
    }
    let all = std::panic::AssertUnwindSafe(|| write_rows(plan, rows, false));
    if let Ok(done) = sql::in_subtransaction_catching(Some(UNIQUE), all) {
        return done;
    }
    let mut pending: Vec<usize> = (0..rows.len()).collect();
    loop {
        let mut left = Vec::new();
        let mut messages = Vec::new();
        for &i in &pending {
            let one = std::slice::from_ref(&rows[i]);
            let write = std::panic::AssertUnwindSafe(|| write_rows(plan, one, false));
            match sql::in_subtransaction_catching(Some(UNIQUE), write) {
                Ok(done) => done?,
                Err(message) => {
                    left.push(i);
                    messages.push(message);
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if left.len() == pending.len() {
            REFUSED.with(|r| {
                if let Some(list) = r.borrow_mut().as_mut() {
                    for (i, message) in left.into_iter().zip(messages) {
                        list.push(Refused {
                            table: name.to_string(),
                            key: rows[i].0.clone(),
                            message,
                        });
                    }
                }
            });
            return Ok(());
        }
        pending = left;
    }
}

pub fn caller_may_write(relid: pgrx::pg_sys::Oid) -> VcResult<bool> {
    Ok(super::spi::caller_may(relid, "UPDATE")? || super::spi::caller_may(relid, "DELETE")?)
}

/// Whether the working set differs from HEAD (or, during a merge, from the merged
/// root): what `vc.status()` shows, but for every tracked table, whoever asks (a
/// table whose rows the caller may not see must not pass for clean and be rewritten).
pub fn has_uncommitted() -> VcResult<bool> {
    let store = PgStore::new();
    let base = super::merging::working_base(&store)?;
    let tracked = tracked_tables()?;
    for t in &tracked {
        let Some(old) = super::definition::parent_entry(&base, t) else {
            return Ok(true); // tracked since: its rows are uncommitted
        };
        let (live, mode) = super::definition::live_and_mode(t, Some(old), false)?;
        let name = t.committed_name.clone().unwrap_or(t.name.clone());
        if !crate::repo::schema::schema_changes(
            &[(name, &old.schema)],
            &[(t.name.clone(), &live.schema)],
        )
        .is_empty()
        {
            return Ok(true);
        }
        let mut changed = false;
        super::rows::for_each_working_change(&store, t, &live.plan, mode, false, &mut |c| {
            changed |= c.before != c.after;
            Ok(())
        })?;
        if changed {
            return Ok(true);
        }
    }
    // Tables committed but no longer tracked: their rows leave at the next commit.
    Ok(base.tables.keys().any(|name| {
        !tracked
            .iter()
            .any(|t| t.committed_name.as_ref().unwrap_or(&t.name) == name)
    }))
}
