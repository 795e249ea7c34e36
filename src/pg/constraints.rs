//! Indexes and constraints of tracked tables (docs/SCHEMA.md): a checkout drops what
//! the target lacks before the rows and creates what it adds after them, checking
//! what an expression from a commit would run before anything evaluates it.
//! Foreign keys come last, once every table of the target exists with its keys.

use super::catalog::table_schema;
use super::error::{VcError, VcResult};
use super::spi::exec;
use super::sql::{self, QualName};
use crate::commit::{ConstraintDef, ConstraintKind, TableSchema};
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode as Code;

/// The check constraint that holds an index's expressions while they are checked.
const PROBE: &str = "pgvc_index_expression_probe";

fn is_fk(c: &ConstraintDef) -> bool {
    c.kind == ConstraintKind::ForeignKey
}

/// The table's definition without its indexes and constraints (made after its rows).
pub fn columns_only(mut s: TableSchema) -> TableSchema {
    s.indexes.clear();
    s.constraints.clear();
    s
}

/// Whether the indexes or the constraints other than foreign keys differ.
pub fn extras_differ(a: &TableSchema, b: &TableSchema) -> bool {
    a.indexes != b.indexes
        || !a
            .constraints
            .iter()
            .filter(|c| !is_fk(c))
            .eq(b.constraints.iter().filter(|c| !is_fk(c)))
}

/// The table's definition without its foreign keys (they are made in a later phase).
pub fn without_foreign_keys(mut s: TableSchema) -> TableSchema {
    s.constraints.retain(|c| !is_fk(c));
    s
}

/// Drops the indexes and the check and unique constraints of table `relid` (named
/// `table`) that `target` does not have exactly as they are: before its rows are
/// written (fewer indexes to maintain, and no unique index the target lacks).
pub fn drop_stale(relid: Oid, table: &QualName, target: &TableSchema) -> VcResult<()> {
    let live = table_schema(relid)?;
    for ix in &live.indexes {
        if !target.indexes.contains(ix) {
            exec(sql::drop_index(&table.schema, &ix.name), vec![])?;
        }
    }
    for c in live.constraints.iter().filter(|c| !is_fk(c)) {
        if !target.constraints.contains(c) {
            exec(sql::drop_constraint(table, &c.name), vec![])?;
        }
    }
    Ok(())
}

/// Creates the indexes and the check and unique constraints of `target` that table
/// `relid` lacks, after its rows are written. An expression from a commit is parsed
/// only when no domain check here could run another role's code at parse time
/// (`namespace::refuse_parse_time_code`); what it calls is checked before it is
/// evaluated: a check is added `NOT VALID` and validated after the check, an index's
/// expressions are held by a `NOT VALID` probe constraint while they are checked.
pub fn create_missing(
    relid: Oid,
    table: &QualName,
    target: &TableSchema,
    refuse_foreign_code: &dyn Fn() -> VcResult<()>,
) -> VcResult<()> {
    let live = table_schema(relid)?;
    let checks: Vec<&ConstraintDef> = target
        .constraints
        .iter()
        .filter(|c| !is_fk(c) && !live.constraints.contains(c))
        .collect();
    let indexes: Vec<_> = target
        .indexes
        .iter()
        .filter(|ix| !live.indexes.contains(ix))
        .collect();
    let parses = checks.iter().any(|c| c.expression.is_some())
        || indexes
            .iter()
            .any(|ix| ix.predicate.is_some() || ix.keys.iter().any(|k| k.expression.is_some()));
    if parses {
        super::namespace::refuse_parse_time_code(&table.to_string())?;
    }
    // Statements that evaluate anything (a unique key's index build, a check's
    // validation) run as the table's owner, in a restricted context, as VACUUM runs
    // index functions: never with pgvc's rights.
    let owner = super::catalog::table_owner(relid)?;
    for c in &checks {
        super::spi::as_owner(owner, || exec(sql::add_constraint(table, c, true)?, vec![]))?;
    }
    if !checks.is_empty() {
        refuse_foreign_code()?;
        for c in checks.iter().filter(|c| c.kind == ConstraintKind::Check) {
            refuse_volatile_check(relid, table, &c.name)?;
        }
        for c in checks
            .iter()
            .filter(|c| c.valid && c.kind == ConstraintKind::Check)
        {
            super::spi::as_owner(owner, || {
                exec(sql::validate_constraint(table, &c.name), vec![])
            })?;
        }
    }
    for ix in indexes {
        if let Some(probe) = sql::probe_index_expressions(table, PROBE, ix)? {
            exec(probe, vec![])?;
            refuse_foreign_code()?;
            exec(sql::drop_constraint(table, PROBE), vec![])?;
        }
        // (PostgreSQL builds an index as the table's owner, restricted, and requires
        // its expressions and predicate to be immutable.)
        exec(sql::create_index(table, ix)?, vec![])?;
    }
    Ok(())
}

/// A check from a commit may not call a volatile function (one that may change
/// something, or read what changes, such as a file): it runs on every row written.
/// Stable functions (`now()`) are allowed, as in checks written by hand.
fn refuse_volatile_check(relid: Oid, table: &QualName, name: &str) -> VcResult<()> {
    let bin = super::spi::one_text(
        "SELECT conbin::text FROM pg_constraint WHERE conrelid = $1 AND conname = $2 AND contype = 'c'",
        vec![
            super::spi::Arg::Oid(relid),
            super::spi::Arg::Text(Some(name.to_string())),
        ],
    )?;
    if !bin.as_deref().is_some_and(sql::node_has_no_volatile) {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("check {name} of {table} from the commit calls a volatile function"),
        )
        .hint("pgvc only makes checks that compute; add it here yourself if you trust it"));
    }
    Ok(())
}

/// Adding or dropping a foreign key is ALTER TABLE: the caller must own the table.
fn require_owner(relid: Oid, table: &QualName) -> VcResult<()> {
    if super::spi::caller_owns(relid)? {
        return Ok(());
    }
    Err(VcError::new(
        Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied: moving the foreign keys of {table} needs ALTER TABLE, which only its owner may"),
    )
    .hint("run it as the table's owner or a superuser"))
}

/// A table a checkout moves: its OID, its name after the move, and its target
/// definition (None: the table is dropped).
pub struct Moved<'a> {
    pub relid: Oid,
    pub name: QualName,
    pub target: Option<&'a TableSchema>,
}

/// Before any table moves: drops the foreign keys of the moved tables that the
/// target lacks, and those that reference a table whose definition or name changes
/// (its key may be dropped and made again); they are made again by
/// `create_foreign_keys`.
pub fn drop_foreign_keys(moved: &[Moved], changing: &[String]) -> VcResult<()> {
    for m in moved {
        let live = table_schema(m.relid)?;
        let table =
            super::sql::QualName::parse("table name", &super::catalog::relation_name(m.relid)?)?;
        for c in live.constraints.iter().filter(|c| is_fk(c)) {
            let kept = m.target.is_some_and(|t| t.constraints.contains(c))
                && !c.references.as_ref().is_some_and(|r| changing.contains(r));
            if !kept {
                require_owner(m.relid, &table)?;
                exec(sql::drop_constraint(&table, &c.name), vec![])?;
            }
        }
    }
    Ok(())
}

/// After every table moved: makes the target's foreign keys that are missing (as
/// the caller: it needs REFERENCES on the referenced table, as ALTER TABLE would),
/// then checks that each moved table has exactly the target's constraints.
pub fn create_foreign_keys(moved: &[Moved]) -> VcResult<()> {
    for m in moved {
        let Some(target) = m.target else { continue };
        let live = table_schema(m.relid)?;
        for c in target.constraints.iter().filter(|c| is_fk(c)) {
            if live.constraints.contains(c) {
                continue;
            }
            let r = c.references.as_deref().unwrap_or_default();
            let ref_relid = super::catalog::relid_of(r)?;
            if !super::spi::caller_may(ref_relid, "REFERENCES")? {
                return Err(crate::pg::error::denied_table(
                    "adding a foreign key to it",
                    r,
                    "REFERENCES",
                ));
            }
            require_owner(m.relid, &m.name)?;
            // Validation reads both tables: as the table's owner, restricted.
            let owner = super::catalog::table_owner(m.relid)?;
            super::spi::as_owner(owner, || {
                exec(sql::add_constraint(&m.name, c, !c.valid)?, vec![])
            })?;
        }
        let made = table_schema(m.relid)?;
        if made.constraints != target.constraints {
            return Err(VcError::new(
                Code::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("could not give {} the constraints in the commit", m.name),
            )
            .hint("a foreign key in the commit may reference a table that is not tracked here"));
        }
    }
    Ok(())
}
