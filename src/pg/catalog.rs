//! Reading the live catalog: tracked tables, their schema, owned sequences, and the
//! column plan (how to read, encode and write a table's rows).
//!
//! All names and types are rendered with `search_path = pg_catalog` (set on every pgvc
//! function), so they are schema-qualified and the same on every cluster.

use super::error::{invalid, VcError, VcResult};
use super::spi::{one_row, one_value, query, query_values, Arg, Value};
use super::sql::{self, QualName, Sql};
use crate::codec::Cell;
use crate::commit::{Column, SequenceState, TableSchema};
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode as Code;

fn text(c: &Cell) -> Option<String> {
    match c {
        Cell::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn text_req(c: &Cell) -> String {
    text(c).unwrap_or_default()
}

/// A tracked table as recorded in `vc.tracked`.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub relid: Oid,
    /// Schema-qualified, quoted where needed: usable in SQL and as the root-value key.
    pub name: String,
    pub full_scan: bool,
    /// The name of its entry in the last commit or checkout (it differs after a
    /// rename); None before its first commit.
    pub committed_name: Option<String>,
    /// Its identity in history (None for a table tracked by pgvc 0.1 and not
    /// committed since).
    pub table_id: Option<u64>,
}

/// Every tracked table that still exists, ordered by name.
pub fn tracked_tables() -> VcResult<Vec<Tracked>> {
    let rows = query_values(
        "SELECT t.relid, format('%I.%I', n.nspname, c.relname), t.full_scan, t.committed_name, t.table_id \
         FROM vc.tracked t JOIN pg_class c ON c.oid = t.relid \
         JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 2",
        vec![],
    )?;
    rows.into_iter()
        .map(|r| {
            Ok(Tracked {
                relid: r[0].oid()?,
                name: r[1].text()?,
                full_scan: r[2].bool()?,
                committed_name: r[3].opt().map(Value::text).transpose()?,
                table_id: r[4]
                    .opt()
                    .map(|v| v.int().map(|i| i as u64))
                    .transpose()?
                    .filter(|i| *i != 0),
            })
        })
        .collect()
}

impl Tracked {
    /// What its key log and trigger function are named by (`sql::LogId`).
    pub fn log_id(&self) -> sql::LogId {
        match self.table_id {
            Some(id) => sql::LogId::Table(id),
            None => sql::LogId::Legacy(u32::from(self.relid)),
        }
    }
}

pub fn tracked_by_relid(relid: Oid) -> VcResult<Option<Tracked>> {
    Ok(tracked_tables()?.into_iter().find(|t| t.relid == relid))
}

/// Schema-qualified name of a relation, or an error naming the OID.
pub fn relation_name(relid: Oid) -> VcResult<String> {
    let rows = query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        vec![Arg::Oid(relid)],
        &[],
    )?;
    rows.first().and_then(|r| text(&r[0])).ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", u32::from(relid)),
        )
    })
}

/// The OID of a table named `schema.table`.
pub fn relid_of(name: &str) -> VcResult<Oid> {
    let found = one_value(
        "SELECT to_regclass($1)::oid",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    match found.as_ref().and_then(Value::opt) {
        Some(v) => v.oid(),
        None => Err(VcError::new(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("table {name} does not exist"),
        )),
    }
}

/// The live schema of a table: columns in attribute order and primary key.
pub fn table_schema(relid: Oid) -> VcResult<TableSchema> {
    let cols = query_values(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                NULLIF(a.attidentity, '') \
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        vec![Arg::Oid(relid)],
    )?;
    let opt_text = |v: &Value| v.opt().map(Value::text).transpose();
    let columns = cols
        .iter()
        .map(|r| {
            Ok(Column {
                tag: 0,
                name: r[0].text()?,
                type_name: r[1].text()?,
                not_null: r[2].bool()?,
                default: opt_text(&r[3])?,
                generated: opt_text(&r[4])?,
                identity: opt_text(&r[5])?,
            })
        })
        .collect::<VcResult<Vec<_>>>()?;
    let pk = query(
        "SELECT a.attname FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
        vec![Arg::Oid(relid)],
        &[],
    )?;
    let mut schema = TableSchema::new(columns, pk.iter().map(|r| text_req(&r[0])).collect());
    let extras = one_row(
        Sql::plan_once(INDEXES_AND_CONSTRAINTS),
        vec![Arg::Oid(relid)],
    )?
    .ok_or_else(|| invalid("the catalog has no indexes row"))?;
    let parse = |v: &Value, what: &str| -> VcResult<String> {
        v.text()
            .map_err(|_| invalid(format!("could not read the {what} of a table")))
    };
    schema.indexes = serde_json::from_str(&parse(&extras[0], "indexes")?)
        .map_err(|e| invalid(format!("could not read the indexes of a table: {e}")))?;
    schema.constraints = serde_json::from_str(&parse(&extras[1], "constraints")?)
        .map_err(|e| invalid(format!("could not read the constraints of a table: {e}")))?;
    Ok(schema)
}

/// A table's indexes (other than those behind its primary key and unique and
/// exclusion constraints) and its check and unique constraints and foreign keys to
/// tracked tables, as JSON in the shape of `commit::IndexDef` and `ConstraintDef`,
/// sorted by name. Names and expressions print with `search_path = pg_catalog`, so
/// they are schema-qualified. Inherited checks (a parent's) are not the table's own.
/// A key's collation is recorded where it is not the column's (and always for an
/// expression: its default is not in the catalog), an operator class where it is not
/// the default: what reading it back after creating it gives again.
const INDEXES_AND_CONSTRAINTS: &str = "\
SELECT \
 (SELECT coalesce(jsonb_agg(jsonb_build_object( \
    'name', ic.relname, 'unique', i.indisunique, 'nulls_not_distinct', i.indnullsnotdistinct, \
    'method', am.amname, \
    'keys', (SELECT jsonb_agg(jsonb_build_object( \
        'column', a.attname, \
        'expression', CASE WHEN i.indkey[k.n] = 0 THEN pg_get_indexdef(i.indexrelid, k.n + 1, false) END, \
        'opclass', (SELECT format('%I.%I', ns.nspname, oc.opcname) FROM pg_opclass oc \
                    JOIN pg_namespace ns ON ns.oid = oc.opcnamespace \
                    WHERE oc.oid = i.indclass[k.n] AND NOT oc.opcdefault), \
        'collation', (SELECT format('%I.%I', ns.nspname, co.collname) FROM pg_collation co \
                      JOIN pg_namespace ns ON ns.oid = co.collnamespace \
                      WHERE co.oid = i.indcollation[k.n] AND co.oid IS DISTINCT FROM a.attcollation), \
        'descending', (i.indoption[k.n] & 1) <> 0, \
        'nulls_first', (i.indoption[k.n] & 2) <> 0) ORDER BY k.n) \
      FROM generate_series(0, i.indnkeyatts - 1) k(n) \
      LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n] AND i.indkey[k.n] <> 0), \
    'include', (SELECT coalesce(jsonb_agg(a.attname ORDER BY k.n), '[]') \
      FROM generate_series(i.indnkeyatts, i.indnatts - 1) k(n) \
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n]), \
    'predicate', pg_get_expr(i.indpred, i.indrelid)) ORDER BY ic.relname), '[]')::text \
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
  WHERE i.indrelid = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))), \
 (SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object( \
    'kind', CASE c.contype WHEN 'c' THEN 'check' WHEN 'u' THEN 'unique' ELSE 'foreign_key' END, \
    'name', c.conname, \
    'expression', CASE WHEN c.contype = 'c' THEN pg_get_expr(c.conbin, c.conrelid) END, \
    'columns', (SELECT jsonb_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord) \
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                WHERE c.contype <> 'c'), \
    'include', (SELECT jsonb_agg(a.attname ORDER BY k.n) FROM pg_index x \
                CROSS JOIN generate_series(x.indnkeyatts, x.indnatts - 1) k(n) \
                JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k.n] \
                WHERE c.contype = 'u' AND x.indexrelid = c.conindid), \
    'nulls_not_distinct', coalesce((SELECT x.indnullsnotdistinct FROM pg_index x \
                WHERE c.contype = 'u' AND x.indexrelid = c.conindid), false), \
    'references', CASE WHEN c.contype = 'f' THEN format('%I.%I', rn.nspname, rc.relname) END, \
    'ref_columns', (SELECT jsonb_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord) \
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum \
                WHERE c.contype = 'f'), \
    'on_update', CASE WHEN c.contype = 'f' THEN c.confupdtype::text END, \
    'on_delete', CASE WHEN c.contype = 'f' THEN c.confdeltype::text END, \
    'match_type', CASE WHEN c.contype = 'f' THEN c.confmatchtype::text END, \
    'deferrable', c.condeferrable, 'deferred', c.condeferred, \
    'no_inherit', c.connoinherit, 'valid', c.convalidated)) ORDER BY c.conname), '[]')::text \
  FROM pg_constraint c LEFT JOIN pg_class rc ON rc.oid = c.confrelid \
  LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
  WHERE c.conrelid = $1 AND c.conislocal AND c.contype IN ('c', 'u', 'f') \
    AND (c.contype <> 'f' OR c.confrelid IN (SELECT t.relid::oid FROM vc.tracked t)))";

/// The sequences of a table and their current state: those it owns (serial and
/// identity columns, `column` set) and those its column defaults call without owning
/// them (`DEFAULT nextval('s')` on a separately created sequence, as pg_dump output
/// and pagila have; `column` None).
pub fn owned_sequences(relid: Oid) -> VcResult<Vec<SequenceState>> {
    let mut out = Vec::new();
    for (name, column) in sequences_of(relid)? {
        let row = one_row(
            sql::sequence_state(&QualName::parse("sequence name", &name)?),
            vec![],
        )?
        .ok_or_else(|| invalid(format!("sequence {name} is empty")))?;
        out.push(SequenceState {
            name,
            column,
            last_value: row[0].int()?,
            is_called: row[1].bool()?,
        });
    }
    Ok(out)
}

/// The names of the sequences of a table (see `owned_sequences`).
pub fn sequence_names(relid: Oid) -> VcResult<Vec<String>> {
    Ok(sequences_of(relid)?.into_iter().map(|(n, _)| n).collect())
}

fn sequences_of(relid: Oid) -> VcResult<Vec<(String, Option<String>)>> {
    let names = query(
        "SELECT DISTINCT ON (1) format('%I.%I', n.nspname, s.relname), a.attname FROM ( \
           SELECT d.objid AS seq, d.refobjsubid AS col FROM pg_depend d \
           WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.refobjid = $1 AND d.deptype IN ('a', 'i') \
           UNION ALL \
           SELECT d.refobjid, NULL FROM pg_attrdef ad JOIN pg_depend d \
             ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
            AND d.refclassid = 'pg_class'::regclass \
           WHERE ad.adrelid = $1) x \
         JOIN pg_class s ON s.oid = x.seq AND s.relkind = 'S' \
              AND s.relowner = (SELECT relowner FROM pg_class WHERE oid = $1) \
         JOIN pg_namespace n ON n.oid = s.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = x.col \
         ORDER BY 1, 2 NULLS LAST",
        vec![Arg::Oid(relid)],
        &[],
    )?;
    Ok(names
        .iter()
        .map(|r| (text_req(&r[0]), text(&r[1])))
        .collect())
}

/// Sets sequences to recorded states: only those in `allowed` (the sequences of the
/// table the states were recorded for, as this database knows them), as the table's
/// `owner`. A commit names sequences by name, and a commit from a remote could name
/// any sequence here.
pub fn restore_sequences(owner: Oid, allowed: &[String], seqs: &[SequenceState]) -> VcResult<()> {
    super::spi::as_owner(owner, || set_sequences(allowed, seqs))
}

fn set_sequences(allowed: &[String], seqs: &[SequenceState]) -> VcResult<()> {
    for s in seqs {
        if !allowed.contains(&s.name) {
            continue;
        }
        query(
            "SELECT pg_catalog.setval($1::regclass, $2, $3)",
            vec![
                Arg::Text(Some(s.name.clone())),
                Arg::Int8(s.last_value),
                Arg::Bool(s.is_called),
            ],
            &[],
        )?;
    }
    Ok(())
}

/// The owner of a relation: pgvc reads and writes a user table as its owner.
pub fn table_owner(relid: Oid) -> VcResult<Oid> {
    match one_value(
        "SELECT relowner FROM pg_class WHERE oid = $1",
        vec![Arg::Oid(relid)],
    )? {
        Some(v) => v.oid(),
        None => Err(VcError::new(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", u32::from(relid)),
        )),
    }
}

/// The recursive step of the walk over what an object depends on (`objs`): what it
/// depends on, its defaults and constraints, and a composite type's relation (which
/// depends on the type, so that edge is followed backwards). One text for both walks.
/// A constraint's plain reference to a relation is not followed: a foreign key's
/// referenced table (and its key's index) runs no code of its owner, and a check's
/// columns are its own table's.
macro_rules! depends_step {
    () => {
        "SELECT CASE WHEN d.classid = o.classid AND d.objid = o.objid THEN d.refclassid ELSE d.classid END, \
                CASE WHEN d.classid = o.classid AND d.objid = o.objid THEN d.refobjid ELSE d.objid END \
         FROM objs o JOIN pg_depend d \
           ON (d.classid = o.classid AND d.objid = o.objid AND d.deptype IN ('n', 'a', 'i') \
               AND NOT (d.classid = 'pg_constraint'::regclass AND d.refclassid = 'pg_class'::regclass \
                        AND d.deptype = 'n')) \
           OR (d.refclassid = o.classid AND d.refobjid = o.objid AND d.deptype IN ('a', 'i') \
               AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass)) \
           OR (d.refclassid = o.classid AND d.refobjid = o.objid AND d.deptype = 'i' \
               AND d.classid = 'pg_class'::regclass AND o.classid = 'pg_type'::regclass) "
    };
}

/// The first object (description, owner) that `relid` depends on, directly or through
/// others (domains and their checks, composites' columns (a composite type's relation
/// depends on the type, so that edge is followed backwards), array elements, defaults
/// and generation expressions), owned by a role other than a superuser or `allowed`: code
/// that using the table could run with someone else's rights. Types, functions,
/// operators, collations and relations count; schemas and sequences carry no code.
/// With `casts_only`, only what casting a value to the table's row type runs: the
/// functions reached from the column types.
pub fn foreign_code(
    relid: Oid,
    allowed: Oid,
    casts_only: bool,
) -> VcResult<Option<(String, String)>> {
    let found = query(
        concat!("WITH RECURSIVE objs(classid, objid) AS ( \
             SELECT * FROM ( \
               SELECT 'pg_class'::regclass::oid, $1::oid WHERE NOT $3 \
               UNION ALL \
               SELECT 'pg_type'::regclass::oid, a.atttypid FROM pg_attribute a \
               WHERE $3 AND a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped) s \
           UNION ", depends_step!(), ") \
         SELECT pg_describe_object(o.classid, o.objid, 0), r.rolname::text \
         FROM objs o \
         CROSS JOIN LATERAL (SELECT CASE o.classid \
             WHEN 'pg_type'::regclass THEN (SELECT typowner FROM pg_type WHERE oid = o.objid) \
             WHEN 'pg_proc'::regclass THEN (SELECT proowner FROM pg_proc WHERE oid = o.objid) \
             WHEN 'pg_operator'::regclass THEN (SELECT oprowner FROM pg_operator WHERE oid = o.objid) \
             WHEN 'pg_collation'::regclass THEN (SELECT collowner FROM pg_collation WHERE oid = o.objid) \
             WHEN 'pg_class'::regclass THEN (SELECT relowner FROM pg_class WHERE oid = o.objid AND relkind <> 'S') \
             END AS owner) w \
         JOIN pg_roles r ON r.oid = w.owner \
         WHERE NOT r.rolsuper AND r.oid <> $2 \
           AND (NOT $3 OR o.classid = 'pg_proc'::regclass) \
         ORDER BY 1 LIMIT 1"),
        vec![Arg::Oid(relid), Arg::Oid(allowed), Arg::Bool(casts_only)],
        &[],
    )?;
    Ok(found.first().map(|r| (text_req(&r[0]), text_req(&r[1]))))
}

/// Whether reading a value of type `typid` (its input function, and through domains,
/// composites, arrays and ranges the checks and functions they reach), casting to it
/// or from it (a cast from text, or to json, which `to_jsonb` uses) could run a
/// function owned by a role other than a superuser.
pub fn type_runs_foreign_code(typid: Oid) -> VcResult<bool> {
    super::spi::one_bool(
        concat!("WITH RECURSIVE objs(classid, objid) AS ( \
             SELECT 'pg_type'::regclass::oid, $1::oid \
           UNION ", depends_step!(), ") \
         SELECT EXISTS (SELECT 1 FROM objs o JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND p.oid = o.objid \
                        JOIN pg_roles r ON r.oid = p.proowner WHERE NOT r.rolsuper) \
             OR EXISTS (SELECT 1 FROM objs o JOIN pg_cast c ON o.classid = 'pg_type'::regclass \
                          AND (c.castsource = o.objid OR c.casttarget = o.objid) \
                        JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_roles r ON r.oid = p.proowner \
                        WHERE NOT r.rolsuper)"),
        vec![Arg::Oid(typid)],
    )
}
