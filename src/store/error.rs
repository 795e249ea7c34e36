//! The error type shared by every chunk store and by code reading chunks.
//!
//! `Missing` and `Corrupt` always name the chunk involved so callers can
//! report it; `Backend` carries whatever the storage layer said.

use super::Hash;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("chunk {0} is missing")]
    Missing(Hash),
    #[error("chunk {hash} is corrupt: {detail}")]
    Corrupt { hash: Hash, detail: String },
    #[error("chunk store backend error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Shorthand used by decoders.
    pub fn corrupt(hash: Hash, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            hash,
            detail: detail.into(),
        }
    }
}
