//! The root value: every tracked table's schema, tree root and owned sequences.
//!
//! Names are schema-qualified and quoted only where SQL needs it (`public.items`),
//! types are `format_type` output with `search_path = pg_catalog` (so user types are
//! always qualified). Nothing here is cluster-specific: no OIDs.

use super::{decode_tagged, encode_tagged, CommitError, Result};
use crate::store::{kind, ChunkStore, Hash};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootValue {
    /// Schema-qualified table name -> entry. BTreeMap: deterministic order.
    pub tables: BTreeMap<String, TableEntry>,
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
    /// All live columns in attribute order.
    pub columns: Vec<Column>,
    /// Primary-key column names, in key order.
    pub primary_key: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
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

impl TableSchema {
    /// Columns that are not part of the primary key, in attribute order: the
    /// positions of a row's encoded value.
    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| !self.primary_key.contains(&c.name))
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

    /// True when `other` has the same tables, schemas and rows; sequence values are
    /// recorded in commits but do not make a commit non-empty on their own (a rolled
    /// back INSERT advances a sequence without changing any row).
    pub fn same_data(&self, other: &RootValue) -> bool {
        self.tables.len() == other.tables.len()
            && self
                .tables
                .iter()
                .zip(other.tables.iter())
                .all(|(a, b)| a.0 == b.0 && a.1.schema == b.1.schema && a.1.tree == b.1.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn entry(tree: Hash, seq: i64) -> TableEntry {
        TableEntry {
            schema: TableSchema {
                columns: vec![
                    Column {
                        name: "id".into(),
                        type_name: "integer".into(),
                        not_null: true,
                        default: None,
                        generated: None,
                        identity: Some("a".into()),
                    },
                    Column {
                        name: "v".into(),
                        type_name: "text".into(),
                        not_null: false,
                        default: None,
                        generated: None,
                        identity: None,
                    },
                ],
                primary_key: vec!["id".into()],
            },
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
}
