//! The error type of the remote layer.
//!
//! Every variant that concerns a remote names its URL, and the object or chunk
//! involved, so a user reading a failed push or fetch knows where to look. I/O
//! failures (permission denied, disk full, a file where a directory should be)
//! are values of this type, never panics.

use crate::store::{Hash, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid remote URL \"{url}\": {reason}")]
    BadUrl { url: String, reason: String },
    #[error("remote {url}: {reason}")]
    Unsupported { url: String, reason: String },
    #[error("remote {url}: cannot {op} {key}: {source}")]
    Io {
        url: String,
        key: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An object-store request failed (after retries): the store's own words, which
    /// name the bucket, never credentials.
    #[error("remote {url}: cannot {op} {key}: {detail}")]
    Store {
        url: String,
        op: &'static str,
        key: String,
        detail: String,
    },
    #[error("remote {url}: object {key} is missing")]
    NotFound { url: String, key: String },
    #[error("remote {url}: {key} is corrupt: {detail}")]
    CorruptObject {
        url: String,
        key: String,
        detail: String,
    },
    #[error("remote {url}: chunk {chunk} is corrupt: {detail}")]
    CorruptChunk {
        url: String,
        chunk: Hash,
        detail: String,
    },
    #[error("remote {url}: chunk {chunk} is missing: {detail}")]
    MissingChunk {
        url: String,
        chunk: Hash,
        detail: String,
    },
    #[error("remote {url}: branch \"{branch}\" does not exist")]
    NoSuchBranch { url: String, branch: String },
    #[error("remote {url}: invalid branch name \"{branch}\"")]
    BadBranch { url: String, branch: String },
    #[error(
        "remote {url}: the remote's {branch} has commits you do not have: \
         pull first, or push with force => true"
    )]
    NonFastForward { url: String, branch: String },
    #[error(
        "remote {url} is fenced: this writer expected epoch {expected} but the remote \
         is at epoch {actual} (another primary was promoted)"
    )]
    Fenced {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("remote {url}: gave up after {attempts} conflicting updates of the manifest")]
    Contended { url: String, attempts: u32 },
    /// The local chunk store failed (a local chunk is missing or corrupt, or the
    /// backend errored); nothing on the remote is implicated.
    #[error("local store: {0}")]
    Local(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, RemoteError>;

impl RemoteError {
    pub(crate) fn io(url: &str, key: &str, op: &'static str, source: std::io::Error) -> Self {
        RemoteError::Io {
            url: url.to_string(),
            key: key.to_string(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt_object(url: &str, key: &str, detail: impl Into<String>) -> Self {
        RemoteError::CorruptObject {
            url: url.to_string(),
            key: key.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn corrupt_chunk(url: &str, chunk: Hash, detail: impl Into<String>) -> Self {
        RemoteError::CorruptChunk {
            url: url.to_string(),
            chunk,
            detail: detail.into(),
        }
    }
}
