//! A tracked table's versioned definition (docs/SCHEMA.md): its live columns with the
//! identities recorded at its last commit or checkout, in logical order, whether the
//! committed tree still holds its rows (the facts `repo::schema` decides on), and the
//! record kept in `vc.tracked` for the next time.

use super::catalog::{table_owner, table_schema, Tracked};
use super::error::VcResult;
use super::rows::read_mode_of;
use super::spi::{exec, query_values, Arg};
use super::sql::Plan;
use crate::commit::{TableEntry, TableSchema};
use crate::repo::schema::{carried_padding, same_column, value_prefix, versioned};
use crate::repo::worktree::ReadMode;
use pgrx::pg_sys::Oid;

/// What the live table is, against a committed entry.
pub struct Live {
    /// Versioned (id, tags, logical column order, padding): what a commit records.
    pub schema: TableSchema,
    /// Reads and encodes rows in that order and padding.
    pub plan: Plan,
    /// Whether the committed tree holds the live rows as they are encoded now (the
    /// rows the key log does not name are unchanged there).
    pub carries: bool,
}

/// The live definition of `t` against `committed` (its entry in the commit compared
/// with), and the plan to read it.
pub fn live(t: &Tracked, committed: Option<&TableEntry>) -> VcResult<Live> {
    let catalog = table_schema(t.relid)?;
    // Per live column, in attribute order: its recorded tag, and whether existing
    // rows have a value for it that no write put there (ADD COLUMN with a constant
    // default), then whether the table was rewritten since the record.
    let facts = query_values(
        "SELECT r.tag, a.atthasmissing, \
                (SELECT storage IS NOT DISTINCT FROM (SELECT string_agg(c.relfilenode::text, ',' ORDER BY c.oid) \
                   FROM pg_catalog.pg_partition_tree($1::regclass) p JOIN pg_catalog.pg_class c ON c.oid = p.relid) \
                 FROM vc.tracked WHERE relid = $1) \
         FROM pg_catalog.pg_attribute a LEFT JOIN \
              (SELECT unnest(attnums) AS attnum, unnest(tags) AS tag FROM vc.tracked WHERE relid = $1) r \
              ON r.attnum = a.attnum \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        vec![Arg::Oid(t.relid)],
    )?;
    let known: Vec<Option<u64>> = facts
        .iter()
        .map(|r| {
            // 0: a version-1 entry's untagged column.
            r[0].opt()
                .map(|v| v.int().map(|i| i as u64))
                .transpose()
                .map(|t| t.filter(|t| *t != 0))
        })
        .collect::<VcResult<_>>()?;
    let missing: Vec<(String, bool)> = catalog
        .columns
        .iter()
        .zip(&facts)
        .map(|(c, r)| Ok((c.name.clone(), r[1].bool()?)))
        .collect::<VcResult<_>>()?;
    let same_storage = match facts.first().map(|r| r[2].opt()) {
        Some(Some(v)) => v.bool()?,
        _ => false,
    };
    let parent = committed.map(|e| &e.schema);
    let mut schema = versioned(&t.name, t.table_id, parent, catalog, &known);
    let carries = match parent {
        None => false,
        Some(p) => {
            value_prefix(p, &schema) && {
                let added: Vec<&str> = schema
                    .value_columns()
                    .filter(|c| !p.value_columns().any(|o| same_column(o, c)))
                    .map(|c| c.name.as_str())
                    .collect();
                // Columns added since: NULL in every row no write touched, unless
                // the table was rewritten or they came with a constant default.
                added.is_empty()
                    || (same_storage
                        && !missing
                            .iter()
                            .any(|(n, m)| *m && added.contains(&n.as_str())))
            }
        }
    };
    schema.padded = match (carries, parent) {
        (true, Some(p)) => carried_padding(p),
        _ => Some(0),
    };
    let mut plan = Plan::new(&t.name, &schema)?;
    plan.owner = table_owner(t.relid)?;
    Ok(Live {
        schema,
        plan,
        carries,
    })
}

/// `live` and how to read the working changes (`rows::read_mode_of`).
pub fn live_and_mode(
    t: &Tracked,
    committed: Option<&TableEntry>,
    repair: bool,
) -> VcResult<(Live, ReadMode)> {
    let l = live(t, committed)?;
    let mode = read_mode_of(t, l.plan.keyless, l.carries, committed, repair)?;
    Ok((l, mode))
}

/// Records what a commit or checkout left the table as: the tags of its columns
/// (matched by name to `schema`, which must describe the live table), its storage and
/// the name of its entry.
pub fn record(relid: Oid, schema: &TableSchema, name: &str) -> VcResult<()> {
    let names: Vec<Option<String>> = schema
        .columns
        .iter()
        .map(|c| Some(c.name.clone()))
        .collect();
    let tags: Vec<Option<String>> = schema
        .columns
        .iter()
        .map(|c| Some((c.tag as i64).to_string()))
        .collect();
    exec(
        // The storage: the relfilenodes of the table and its partitions, which a
        // rewrite (ALTER TYPE, a volatile default, TRUNCATE, VACUUM FULL) changes.
        // Written only when it changed: most commits leave it as it was, and a row
        // version per tracked table per commit would be WAL and dead rows for nothing.
        // An identity, once given, stays (a version-1 entry has none: 0): it names the
        // key log.
        concat!("WITH n AS (SELECT \
           (SELECT array_agg(a.attnum ORDER BY a.attnum) FROM unnest($2::text[]) x(name) \
            JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = x.name \
                 AND a.attnum > 0 AND NOT a.attisdropped) AS attnums, \
           (SELECT array_agg(x.tag::int8 ORDER BY a.attnum) FROM unnest($2::text[], $3::text[]) x(name, tag) \
            JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = x.name \
                 AND a.attnum > 0 AND NOT a.attisdropped) AS tags, \
           (SELECT string_agg(c.relfilenode::text, ',' ORDER BY c.oid) \
            FROM pg_catalog.pg_partition_tree($1::regclass) p JOIN pg_catalog.pg_class c ON c.oid = p.relid) AS storage) \
         UPDATE vc.tracked t SET attnums = n.attnums, tags = n.tags, \
                table_id = coalesce(nullif($5::int8, 0), t.table_id), \
                storage = n.storage, committed_name = $4, recorded_at = ", recorded_here!("$1::oid"), " \
         FROM n WHERE t.relid = $1 AND (t.attnums, t.tags, t.table_id, t.storage, t.committed_name, t.recorded_at) \
               IS DISTINCT FROM (n.attnums, n.tags, coalesce(nullif($5::int8, 0), t.table_id), n.storage, $4::text, ",
               recorded_here!("$1::oid"), ")"),
        vec![
            Arg::Oid(relid),
            Arg::TextArray(names),
            Arg::TextArray(tags),
            Arg::Text(Some(name.to_string())),
            Arg::Int8(schema.id as i64),
        ],
    )?;
    Ok(())
}

/// A tracked table's entry in a parent root: under the name it was last committed or
/// checked out as (it differs after a rename), and only if it is the same table (a
/// table dropped and made again under that name is another).
pub fn parent_entry<'a>(
    root: &'a crate::commit::RootValue,
    t: &Tracked,
) -> Option<&'a crate::commit::TableEntry> {
    let e = root
        .tables
        .get(t.committed_name.as_ref().unwrap_or(&t.name))?;
    match t.table_id {
        Some(id) if e.schema.id != 0 && e.schema.id != id => None,
        _ => Some(e),
    }
}
