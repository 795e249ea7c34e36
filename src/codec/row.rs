//! Row values: the non-key columns as a MessagePack array (rmp-serde), each element
//! nil (SQL NULL), a string (the pinned text output) or bin (raw `bytea`).
//!
//! ```text
//! leaf value := 0x00 msgpack-array          inline, when <= INLINE_LIMIT bytes
//!             | 0x01 blob-hash(32)          otherwise; blob chunk = [kind::BLOB] msgpack-array
//! ```
//! Large rows live out of line so that a 50 MB value does not make a 50 MB tree node
//! that every neighbouring edit would rewrite.

use super::{CodecError, Result};
use crate::store::{kind, ChunkStore, Hash};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Rows above this many encoded bytes are stored as separate chunks. A quarter of the
/// 4 KiB target node keeps several rows per leaf and follows PostgreSQL's own TOAST
/// threshold (~2 KB) in spirit.
pub const INLINE_LIMIT: usize = 1024;

const INLINE: u8 = 0x00;
const OUT_OF_LINE: u8 = 0x01;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    Bytes(Vec<u8>),
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Cell::Null => s.serialize_none(),
            Cell::Text(t) => s.serialize_str(t),
            Cell::Bytes(b) => s.serialize_bytes(b),
        }
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nil, a string or bytes")
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Cell, E> {
        Ok(Cell::Text(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Cell, E> {
        Ok(Cell::Text(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Cell, E> {
        Ok(Cell::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Cell, E> {
        Ok(Cell::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<Cell, A::Error> {
        Err(de::Error::custom("a cell cannot be an array"))
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Cell, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

pub fn encode_row(cells: &[Cell]) -> Vec<u8> {
    rmp_serde::to_vec(cells).expect("msgpack encoding of cells cannot fail")
}

pub fn decode_row(bytes: &[u8]) -> Result<Vec<Cell>> {
    rmp_serde::from_slice(bytes).map_err(|e| CodecError::BadRow(e.to_string()))
}

/// Turns an encoded row into the value stored in the tree, writing a blob chunk when
/// the row is large.
pub fn store_value(store: &mut dyn ChunkStore, row: Vec<u8>) -> Result<Vec<u8>> {
    if row.len() <= INLINE_LIMIT {
        let mut v = Vec::with_capacity(row.len() + 1);
        v.push(INLINE);
        v.extend_from_slice(&row);
        return Ok(v);
    }
    let mut blob = Vec::with_capacity(row.len() + 1);
    blob.push(kind::BLOB);
    blob.extend_from_slice(&row);
    let h = store.put(blob)?;
    let mut v = vec![OUT_OF_LINE];
    v.extend_from_slice(h.as_bytes());
    Ok(v)
}

/// The encoded row behind a tree value (reading the blob chunk if out of line).
pub fn load_value(store: &dyn ChunkStore, value: &[u8]) -> Result<Vec<u8>> {
    match value.split_first() {
        Some((&INLINE, row)) => Ok(row.to_vec()),
        Some((&OUT_OF_LINE, h)) => {
            let h = Hash::from_slice(h)
                .ok_or_else(|| CodecError::BadRow("bad blob reference".into()))?;
            let blob = store.get(&h)?;
            match blob.split_first() {
                Some((&kind::BLOB, row)) => Ok(row.to_vec()),
                _ => Err(CodecError::BadRow(format!("chunk {h} is not a row blob"))),
            }
        }
        _ => Err(CodecError::BadRow("unknown value tag".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn cells_round_trip() {
        let cells = vec![
            Cell::Null,
            Cell::Text(String::new()),
            Cell::Text("héllo\0".into()),
            Cell::Bytes(vec![0, 1, 255]),
            Cell::Bytes(vec![]),
        ];
        assert_eq!(decode_row(&encode_row(&cells)).unwrap(), cells);
    }

    #[test]
    fn large_rows_go_out_of_line() {
        let mut s = MemStore::default();
        let small = encode_row(&[Cell::Text("x".into())]);
        let v = store_value(&mut s, small.clone()).unwrap();
        assert_eq!(v[0], INLINE);
        assert_eq!(load_value(&s, &v).unwrap(), small);
        let big = encode_row(&[Cell::Text("y".repeat(50_000))]);
        let v = store_value(&mut s, big.clone()).unwrap();
        assert_eq!(v.len(), 33);
        assert_eq!(load_value(&s, &v).unwrap(), big);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_row(&[0xc1]).is_err());
        assert!(decode_row(&[0x91, 0x91, 0xc0]).is_err());
        let s = MemStore::default();
        assert!(load_value(&s, &[7]).is_err());
        assert!(load_value(&s, &[OUT_OF_LINE, 1, 2]).is_err());
    }
}
