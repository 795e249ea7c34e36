//! `ObjectStore`: the few operations a remote needs from its storage, with
//! object-store semantics so that a directory and an S3 bucket fit the same trait.
//!
//! Object stores have no rename and no locks, only whole-object writes that become
//! visible atomically and two conditional writes: create-if-absent (S3
//! `If-None-Match: *`) and replace-if-unchanged (S3 `If-Match: <etag>`). The remote
//! layer is written against exactly that: immutable content-named objects written
//! once with `put`/`put_stream`, and one mutable object (the manifest) replaced
//! only through `put_if`.
//!
//! Keys are `/`-separated paths of segments made of `[A-Za-z0-9._-]`, none empty
//! and none starting with `.` (names starting with `.` are reserved for a backend's
//! own temporary and lock files, which `list` never shows).

use super::Result;

/// An opaque version of a mutable object, returned by `get` and checked by
/// `put_if`: a content hash for files, the ETag on S3. Equal content may give
/// equal versions; that is fine because CAS only needs "unchanged since read".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub String);

pub trait ObjectStore: Send + Sync {
    /// The remote's URL, for error messages.
    fn url(&self) -> &str;

    /// The whole object and its version, `None` if absent.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>>;

    /// The object again, unless it is still at version `known`: a poll of the
    /// manifest. S3 asks with `If-None-Match` and the server answers `304` with no
    /// body; the default reads it whole and compares.
    fn get_if_changed(&self, key: &str, known: &Version) -> Result<Reread> {
        Ok(match self.get(key)? {
            None => Reread::Absent,
            Some((_, v)) if v == *known => Reread::Unchanged,
            Some((data, v)) => Reread::Changed(data, v),
        })
    }

    /// Requests made from now on give up at `deadline` (None: only their own
    /// timeouts bound them). A synchronous push at COMMIT sets it, so that a slow
    /// remote cannot hold a committing backend past `vc.publish_timeout`. A store
    /// whose waits are bounded otherwise (a directory's lock wait) ignores it.
    fn set_deadline(&self, _deadline: Option<std::time::Instant>) {}

    /// Bytes `offset .. offset + len` of an object; shorter if the object ends
    /// first (callers check the length). A missing object is `NotFound`.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// Durably writes an immutable object. Idempotent: writing the same bytes
    /// under the same key again is harmless. Never leaves a partial object
    /// visible under `key`.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;

    /// Starts a streamed write of a large object whose key is only known at the
    /// end (packs are named by their content). Nothing is visible until
    /// `ObjectWriter::finish`; dropping the writer abandons the data.
    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>>;

    /// Compare-and-swap: writes `data` under `key` if the object's current
    /// version is `expected` (`None`: only if the object is absent). Returns
    /// `false`, writing nothing, when the condition does not hold.
    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool>;

    /// Keys starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Removes an object; removing an absent object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Removes several objects, in order (a backend may make the removals durable once
    /// at the end rather than one by one).
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            self.delete(k)?;
        }
        Ok(())
    }

    /// Objects whose keys start with `prefix`, sorted by key, with their size and
    /// when each was last written: what pruning needs to leave young objects alone.
    fn list_aged(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Removes the backend's own debris (temporary files of interrupted writes)
    /// last written before `before_ms` (Unix milliseconds); returns how many.
    fn sweep_temporaries(&self, before_ms: u64) -> Result<u64>;
}

/// A streamed object write in progress.
pub trait ObjectWriter: Send {
    fn write_all(&mut self, data: &[u8]) -> Result<()>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Makes the object durable and visible under `key`, atomically: readers
    /// see either no object or all of it. Files: fsync the temporary file,
    /// rename it, fsync the directory. S3: complete a multipart upload (to a
    /// staging key, then copy) or upload a locally spooled file.
    fn finish(self: Box<Self>, key: &str) -> Result<()>;

    /// `finish(key)`, then `put(next_key, next)` on the same store: when it returns,
    /// both are durable and `next` never became visible before this object did.
    /// Files write and fsync both before renaming either, and fsync a directory
    /// they share once, not twice (a pack and its idx: one push's durability cost).
    fn finish_then_put(self: Box<Self>, key: &str, next_key: &str, next: &[u8]) -> Result<()>;
}

impl<T: ObjectStore + ?Sized> ObjectStore for Box<T> {
    fn url(&self) -> &str {
        (**self).url()
    }
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        (**self).get(key)
    }
    fn get_if_changed(&self, key: &str, known: &Version) -> Result<Reread> {
        (**self).get_if_changed(key, known)
    }
    fn set_deadline(&self, deadline: Option<std::time::Instant>) {
        (**self).set_deadline(deadline)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        (**self).get_range(key, offset, len)
    }
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        (**self).put(key, data)
    }
    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>> {
        (**self).put_stream()
    }
    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool> {
        (**self).put_if(key, data, expected)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key)
    }
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        (**self).delete_many(keys)
    }
    fn list_aged(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        (**self).list_aged(prefix)
    }
    fn sweep_temporaries(&self, before_ms: u64) -> Result<u64> {
        (**self).sweep_temporaries(before_ms)
    }
}

/// What `get_if_changed` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reread {
    /// Still at the known version.
    Unchanged,
    Absent,
    Changed(Vec<u8>, Version),
}

/// An object as `list_aged` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// When it was last written (Unix milliseconds).
    pub modified_ms: u64,
    pub bytes: u64,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `true` if `key` is a valid object key (see the module comment).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        })
}
