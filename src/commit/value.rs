//! The root value: every tracked table's schema, tree root and owned sequences.
//!
//! Names are schema-qualified and quoted only where SQL needs it (`public.items`),
//! types are `format_type` output with `search_path = pg_catalog` (so user types are
//! always qualified). Nothing here is cluster-specific: no OIDs.

use super::{decode_tagged, encode_tagged, CommitError, Result};
use crate::store::{kind, ChunkStore, Hash};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format version new root values and table schemas are written with. Version 1
/// (pgvc 0.1) had no version field, no table ids, no column tags and padded every row.
pub const FORMAT_VERSION: u32 = 2;

fn version_1() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootValue {
    /// Format version (1 when absent: pgvc 0.1).
    #[serde(default = "version_1")]
    pub version: u32,
    /// Schema-qualified table name -> entry. BTreeMap: deterministic order.
    pub tables: BTreeMap<String, TableEntry>,
    /// The user types the tables use (enums, domains, composites, ranges), by
    /// `format_type` name (schema-qualified). Absent in version 1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, TypeDef>,
}

impl Default for RootValue {
    fn default() -> Self {
        RootValue {
            version: FORMAT_VERSION,
            tables: BTreeMap::new(),
            types: BTreeMap::new(),
        }
    }
}

/// A user type a tracked table uses, as a commit records it: everything decoded is
/// untrusted (names re-quoted, types resolved, expressions parsed as one expression).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeDef {
    /// Labels in sort order.
    Enum {
        labels: Vec<String>,
    },
    /// `base` as `format_type` prints it; checks as (constraint name, `CHECK (...)`
    /// text of `pg_get_constraintdef`), sorted by name.
    Domain {
        base: String,
        not_null: bool,
        default: Option<String>,
        checks: Vec<(String, String)>,
    },
    /// Attributes (name, type) in order.
    Composite {
        attributes: Vec<(String, String)>,
    },
    Range {
        subtype: String,
    },
}

impl TypeDef {
    /// The type names this definition refers to (user types among them must be
    /// made first; an array type `t[]` refers to `t`).
    pub fn refers_to(&self) -> Vec<&str> {
        match self {
            TypeDef::Enum { .. } => vec![],
            TypeDef::Domain { base, .. } => vec![base.as_str()],
            TypeDef::Composite { attributes } => {
                attributes.iter().map(|(_, t)| t.as_str()).collect()
            }
            TypeDef::Range { subtype } => vec![subtype.as_str()],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub schema: TableSchema,
    /// Root of the table's prolly tree (key = encoded primary key, value = other columns).
    pub tree: Hash,
    /// Owned sequences (serial, identity), sorted by name.
    pub sequences: Vec<SequenceState>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Format version (1 when absent: pgvc 0.1).
    #[serde(default = "version_1")]
    pub version: u32,
    /// The table's identity, kept across renames (0 in version 1: match by name).
    #[serde(default)]
    pub id: u64,
    /// All live columns in attribute order.
    pub columns: Vec<Column>,
    /// Primary-key column names, in key order.
    pub primary_key: Vec<String>,
    /// How many leading value columns every row of the tree encodes; past them,
    /// trailing NULLs are left out (`None` in version 1: every value column).
    #[serde(default)]
    pub padded: Option<u32>,
    /// Indexes other than those of the primary key and of unique constraints, sorted
    /// by name (absent before pgvc 0.2's format grew them: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexDef>,
    /// Check and unique constraints, and foreign keys to tracked tables, sorted by
    /// name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<ConstraintDef>,
}

/// An index as a commit records it (`pg::catalog::table_schema` reads it). Everything
/// decoded is untrusted: names are re-quoted, the method and operator classes looked
/// up, expressions parsed as one expression each (`pg::constraints`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub unique: bool,
    #[serde(default)]
    pub nulls_not_distinct: bool,
    /// Access method (`btree`, `gist`, ...).
    pub method: String,
    pub keys: Vec<IndexKey>,
    /// `INCLUDE` columns.
    #[serde(default)]
    pub include: Vec<String>,
    /// `WHERE` predicate of a partial index.
    #[serde(default)]
    pub predicate: Option<String>,
}

/// One key of an index: a column or an expression, with its operator class and
/// collation where they are not the default, and its ordering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKey {
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub expression: Option<String>,
    /// Schema-qualified operator class, when not the type's default.
    #[serde(default)]
    pub opclass: Option<String>,
    /// Schema-qualified collation, when not the column's (always, for an expression).
    #[serde(default)]
    pub collation: Option<String>,
    #[serde(default)]
    pub descending: bool,
    #[serde(default)]
    pub nulls_first: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Check,
    Unique,
    ForeignKey,
}

/// A check or unique constraint, or a foreign key to a tracked table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintDef {
    pub kind: ConstraintKind,
    pub name: String,
    /// Check: its expression (`pg_get_expr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Unique and foreign key: the constrained columns, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Unique: `INCLUDE` columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default)]
    pub nulls_not_distinct: bool,
    /// Foreign key: the referenced table (its name in the same commit) and columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ref_columns: Vec<String>,
    /// Foreign key: `pg_constraint`'s action codes (`a` no action, `r` restrict, `c`
    /// cascade, `n` set null, `d` set default) and match type (`s` simple, `f` full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    #[serde(default)]
    pub deferrable: bool,
    #[serde(default)]
    pub deferred: bool,
    /// Check: `NO INHERIT`.
    #[serde(default)]
    pub no_inherit: bool,
    /// Check and foreign key: validated (false: added `NOT VALID`).
    #[serde(default = "yes")]
    pub valid: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's identity, kept across renames and type changes (0 in version 1:
    /// match by name).
    #[serde(default)]
    pub tag: u64,
    pub name: String,
    /// `format_type(atttypid, atttypmod)` with search_path pinned to pg_catalog.
    pub type_name: String,
    pub not_null: bool,
    /// Default expression (`pg_get_expr`), if any; not set for generated columns.
    pub default: Option<String>,
    /// Expression of a `GENERATED ALWAYS AS (...) STORED` column.
    pub generated: Option<String>,
    /// `a` (ALWAYS) or `d` (BY DEFAULT) for identity columns.
    pub identity: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceState {
    /// Schema-qualified sequence name.
    pub name: String,
    /// The column that owns it (serial default or identity), so a clone can recreate
    /// the ownership.
    pub column: Option<String>,
    pub last_value: i64,
    pub is_called: bool,
}

impl Column {
    /// A nullable column of `type_name` with no default, untagged.
    pub fn new(name: &str, type_name: &str) -> Column {
        Column {
            tag: 0,
            name: name.into(),
            type_name: type_name.into(),
            not_null: false,
            default: None,
            generated: None,
            identity: None,
        }
    }
}

impl TableSchema {
    /// A current-format schema with no id yet and canonical (unpadded) rows.
    pub fn new(columns: Vec<Column>, primary_key: Vec<String>) -> TableSchema {
        TableSchema {
            version: FORMAT_VERSION,
            id: 0,
            columns,
            primary_key,
            padded: Some(0),
            indexes: Vec::new(),
            constraints: Vec::new(),
        }
    }

    /// Columns that are not part of the primary key, in attribute order: the
    /// positions of a row's encoded value.
    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| !self.primary_key.contains(&c.name))
    }

    /// How many leading value columns each encoded row holds at least.
    pub fn padded_width(&self) -> usize {
        match self.padded {
            Some(n) => n as usize,
            None => self.value_columns().count(),
        }
    }

    /// The same definition, ignoring identity and encoding bookkeeping (version, id,
    /// tags, padding): what a user would call "the same columns and key".
    pub fn same_definition(&self, other: &TableSchema) -> bool {
        self.primary_key == other.primary_key
            && self.indexes == other.indexes
            && self.constraints == other.constraints
            && self.columns.len() == other.columns.len()
            && self.columns.iter().zip(&other.columns).all(|(a, b)| {
                a.name == b.name
                    && a.type_name == b.type_name
                    && a.not_null == b.not_null
                    && a.default == b.default
                    && a.generated == b.generated
                    && a.identity == b.identity
            })
    }

    pub fn key_columns(&self) -> Vec<&Column> {
        self.primary_key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.name == k))
            .collect()
    }
}

impl RootValue {
    pub fn encode(&self) -> Vec<u8> {
        encode_tagged(kind::ROOT, self)
    }

    pub fn write(&self, store: &mut dyn ChunkStore) -> Result<Hash> {
        Ok(store.put(self.encode())?)
    }

    pub fn read(store: &dyn ChunkStore, hash: &Hash) -> Result<RootValue> {
        let data = store.get(hash)?;
        if data.first() != Some(&kind::ROOT) {
            return Err(CommitError::NotARoot(*hash));
        }
        Ok(decode_tagged(kind::ROOT, hash, &data)?)
    }

    /// The content hash of the versioned state (`vc.root_hash`): the hash of the
    /// root value as version 1 encodes it, which holds names, definitions, trees and
    /// sequences but no identities (table ids, column tags) or format bookkeeping. So
    /// it is equal wherever the content is equal, whatever the history that gave each
    /// table its identity, and a version-1 root's content hash is its chunk hash.
    pub fn content_hash(&self) -> Hash {
        #[derive(Serialize)]
        struct V1Column<'a> {
            name: &'a str,
            type_name: &'a str,
            not_null: bool,
            default: &'a Option<String>,
            generated: &'a Option<String>,
            identity: &'a Option<String>,
        }
        #[derive(Serialize)]
        struct V1Schema<'a> {
            columns: Vec<V1Column<'a>>,
            primary_key: &'a [String],
            // Part of the content since format 2 grew them; absent (as in version 1)
            // when a table has none.
            #[serde(skip_serializing_if = "<[IndexDef]>::is_empty")]
            indexes: &'a [IndexDef],
            #[serde(skip_serializing_if = "<[ConstraintDef]>::is_empty")]
            constraints: &'a [ConstraintDef],
        }
        #[derive(Serialize)]
        struct V1Entry<'a> {
            schema: V1Schema<'a>,
            tree: Hash,
            sequences: &'a [SequenceState],
        }
        #[derive(Serialize)]
        struct V1Root<'a> {
            tables: BTreeMap<&'a str, V1Entry<'a>>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            types: &'a BTreeMap<String, TypeDef>,
        }
        let v1 = V1Root {
            tables: self
                .tables
                .iter()
                .map(|(n, e)| {
                    let columns = e
                        .schema
                        .columns
                        .iter()
                        .map(|c| V1Column {
                            name: &c.name,
                            type_name: &c.type_name,
                            not_null: c.not_null,
                            default: &c.default,
                            generated: &c.generated,
                            identity: &c.identity,
                        })
                        .collect();
                    let entry = V1Entry {
                        schema: V1Schema {
                            columns,
                            primary_key: &e.schema.primary_key,
                            indexes: &e.schema.indexes,
                            constraints: &e.schema.constraints,
                        },
                        tree: e.tree,
                        sequences: &e.sequences,
                    };
                    (n.as_str(), entry)
                })
                .collect(),
            types: &self.types,
        };
        crate::store::hash_of(&encode_tagged(kind::ROOT, &v1))
    }

    /// True when `other` has the same tables, schemas and rows; sequence values are
    /// recorded in commits but do not make a commit non-empty on their own (a rolled
    /// back INSERT advances a sequence without changing any row).
    pub fn same_data(&self, other: &RootValue) -> bool {
        self.types == other.types
            && self.tables.len() == other.tables.len()
            && self.tables.iter().zip(other.tables.iter()).all(|(a, b)| {
                a.0 == b.0 && a.1.schema.same_definition(&b.1.schema) && a.1.tree == b.1.tree
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn entry(tree: Hash, seq: i64) -> TableEntry {
        TableEntry {
            schema: TableSchema::new(
                vec![
                    Column {
                        not_null: true,
                        identity: Some("a".into()),
                        ..Column::new("id", "integer")
                    },
                    Column::new("v", "text"),
                ],
                vec!["id".into()],
            ),
            tree,
            sequences: vec![SequenceState {
                name: "public.t_id_seq".into(),
                column: Some("id".into()),
                last_value: seq,
                is_called: true,
            }],
        }
    }

    #[test]
    fn root_value_is_deterministic_and_round_trips() {
        let mut s = MemStore::default();
        let t = s.put(vec![1, 2, 3]).unwrap();
        let mut a = RootValue::default();
        a.tables.insert("public.b".into(), entry(t, 1));
        a.tables.insert("public.a".into(), entry(t, 2));
        let mut b = RootValue::default();
        b.tables.insert("public.a".into(), entry(t, 2));
        b.tables.insert("public.b".into(), entry(t, 1));
        let ha = a.write(&mut s).unwrap();
        assert_eq!(ha, b.write(&mut s).unwrap());
        assert_eq!(RootValue::read(&s, &ha).unwrap(), a);
        let cols: Vec<_> = a.tables["public.a"]
            .schema
            .value_columns()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(cols, vec!["v".to_string()]);
    }

    #[test]
    fn sequences_alone_do_not_change_data() {
        let mut s = MemStore::default();
        let t = s.put(vec![1]).unwrap();
        let mut a = RootValue::default();
        a.tables.insert("public.a".into(), entry(t, 1));
        let mut b = a.clone();
        b.tables.get_mut("public.a").unwrap().sequences[0].last_value = 99;
        assert!(a.same_data(&b));
        let t2 = s.put(vec![2]).unwrap();
        b.tables.get_mut("public.a").unwrap().tree = t2;
        assert!(!a.same_data(&b));
    }

    /// A root value as pgvc 0.1 wrote it (no version, ids, tags or padding) still
    /// decodes, as version 1 with every value column padded, and keeps its bytes.
    #[test]
    fn version_1_root_values_stay_readable() {
        #[derive(Serialize)]
        struct OldColumn {
            name: String,
            type_name: String,
            not_null: bool,
            default: Option<String>,
            generated: Option<String>,
            identity: Option<String>,
        }
        #[derive(Serialize)]
        struct OldSchema {
            columns: Vec<OldColumn>,
            primary_key: Vec<String>,
        }
        #[derive(Serialize)]
        struct OldEntry {
            schema: OldSchema,
            tree: Hash,
            sequences: Vec<SequenceState>,
        }
        #[derive(Serialize)]
        struct OldRoot {
            tables: BTreeMap<String, OldEntry>,
        }
        let mut s = MemStore::default();
        let t = s.put(vec![1]).unwrap();
        let col = |n: &str| OldColumn {
            name: n.into(),
            type_name: "integer".into(),
            not_null: n == "id",
            default: None,
            generated: None,
            identity: None,
        };
        let mut tables = BTreeMap::new();
        tables.insert(
            "public.t".to_string(),
            OldEntry {
                schema: OldSchema {
                    columns: vec![col("id"), col("a"), col("b")],
                    primary_key: vec!["id".into()],
                },
                tree: t,
                sequences: vec![],
            },
        );
        let bytes = encode_tagged(kind::ROOT, &OldRoot { tables });
        let h = s.put(bytes.clone()).unwrap();
        let r = RootValue::read(&s, &h).unwrap();
        // Its content hash is its chunk hash, as vc.root_hash said in 0.1.
        assert_eq!(r.content_hash(), h);
        assert_eq!(r.version, 1);
        let schema = &r.tables["public.t"].schema;
        assert_eq!((schema.version, schema.id, schema.padded), (1, 0, None));
        assert_eq!(schema.padded_width(), 2);
        assert!(schema.columns.iter().all(|c| c.tag == 0));
        // The same definition in today's format holds the same data.
        let mut now = r.clone();
        now.version = FORMAT_VERSION;
        let e = now.tables.get_mut("public.t").unwrap();
        e.schema.version = FORMAT_VERSION;
        e.schema.id = 7;
        e.schema.columns[1].tag = 9;
        assert!(r.same_data(&now));
        assert_ne!(now.encode(), bytes);
        // Identities are not content.
        assert_eq!(now.content_hash(), h);
        now.tables.get_mut("public.t").unwrap().schema.columns[2].not_null = true;
        assert_ne!(now.content_hash(), h);
    }
}
