//! Row encoding: a pure function of the SQL values, identical on every cluster.
//!
//! The glue hands us each column as its text output, produced with the output-affecting
//! settings pinned (DateStyle, IntervalStyle, TimeZone, extra_float_digits,
//! bytea_output, lc_monetary, search_path), or as raw bytes for `bytea`. From those we
//! make:
//! - the **key**: the primary key, memcomparable (`key.rs`), so byte order is a total
//!   order, and the SQL order for integer and text (C collation) keys; for a table
//!   without a primary key, the row's hash and its copy number (`keyless.rs`);
//! - the **value**: the other columns as a MessagePack array (`row.rs`), stored inline
//!   in the leaf or, when large, as a separate blob chunk.

mod copytext;
mod json;
mod key;
mod keyless;
mod row;

pub use copytext::{copy_field, copy_text};
pub use json::{cell_to_json, JsonKind};
pub use key::{decode_key, encode_key, KeyKind};
pub use keyless::{keyless_key, keyless_row_hash, number_copies, KEYLESS_KEY_LEN, ROW_HASH_LEN};
pub use row::{decode_row, encode_row, load_value, store_value, Cell, INLINE_LIMIT};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("primary key value \"{0}\" is not a valid integer")]
    BadInteger(String),
    #[error("encoded key is malformed: {0}")]
    BadKey(String),
    #[error("encoded row is malformed: {0}")]
    BadRow(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub type Result<T> = std::result::Result<T, CodecError>;
