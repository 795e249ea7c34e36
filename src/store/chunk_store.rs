//! The `ChunkStore` trait: put/get of immutable chunks by content hash.
//!
//! Contract every implementation must keep (checked by `testsuite`):
//! `put(data)` returns `hash_of(&data)` and is idempotent; `get(h)` returns
//! exactly the bytes put under `h` or `StoreError::Missing(h)`, so what `get` returns
//! hashes to `h` (a store reading untrusted media verifies before handing bytes out,
//! and callers need not hash again); `has_many` and `get_many` answer in input order.
//! Chunks are `Arc<[u8]>` so stores may cache and hand out clones cheaply.

use super::{hash_of, Hash, Result, StoreError};
use std::sync::Arc;

/// An immutable chunk's bytes; cloning is a reference-count bump.
pub type Chunk = Arc<[u8]>;

pub trait ChunkStore {
    fn get(&self, h: &Hash) -> Result<Chunk>;
    fn has(&self, h: &Hash) -> Result<bool>;
    fn put(&mut self, data: Vec<u8>) -> Result<Hash>;
    fn has_many(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        hs.iter().map(|h| self.has(h)).collect()
    }
    /// The chunks `hs` names, in input order, `None` for one the store lacks. A store
    /// behind a query language answers a batch with one request (`PgStore`: one SPI
    /// call), which is what bulk walks (push, fetch, diffs) are for.
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        hs.iter()
            .map(|h| match self.get(h) {
                Ok(c) => Ok(Some(c)),
                Err(StoreError::Missing(m)) if m == *h => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }
    /// `get_many` for a caller that checks every chunk against its hash itself before
    /// trusting it (a push hashes what it sends on another thread anyway): a store that
    /// verifies on read may skip that here. Nothing returned may be used before the
    /// caller's check.
    fn get_many_unverified(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        self.get_many(hs)
    }
}

/// `Corrupt` unless `data` hashes to `h`. Stores reading from untrusted media
/// call this before handing bytes out.
pub fn verify(h: &Hash, data: &[u8]) -> Result<()> {
    let actual = hash_of(data);
    if actual == *h {
        Ok(())
    } else {
        Err(StoreError::corrupt(
            *h,
            format!("content hashes to {actual}"),
        ))
    }
}

impl<S: ChunkStore + ?Sized> ChunkStore for &mut S {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        (**self).get(h)
    }
    fn has(&self, h: &Hash) -> Result<bool> {
        (**self).has(h)
    }
    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        (**self).put(data)
    }
    fn has_many(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        (**self).has_many(hs)
    }
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        (**self).get_many(hs)
    }
    fn get_many_unverified(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        (**self).get_many_unverified(hs)
    }
}

impl<S: ChunkStore + ?Sized> ChunkStore for Box<S> {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        (**self).get(h)
    }
    fn has(&self, h: &Hash) -> Result<bool> {
        (**self).has(h)
    }
    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        (**self).put(data)
    }
    fn has_many(&self, hs: &[Hash]) -> Result<Vec<bool>> {
        (**self).has_many(hs)
    }
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        (**self).get_many(hs)
    }
    fn get_many_unverified(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        (**self).get_many_unverified(hs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn verify_detects_mismatch() {
        let h = hash_of(b"abc");
        assert!(verify(&h, b"abc").is_ok());
        match verify(&h, b"abd") {
            Err(StoreError::Corrupt { hash, .. }) => assert_eq!(hash, h),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn forwarding_impls() {
        let mut boxed: Box<dyn ChunkStore> = Box::new(MemStore::new());
        let h = boxed.put(b"x".to_vec()).unwrap();
        assert!(boxed.has(&h).unwrap());
        let mut m = MemStore::new();
        let mut r: &mut MemStore = &mut m;
        let h2 = ChunkStore::put(&mut r, b"y".to_vec()).unwrap();
        assert_eq!(&*r.get(&h2).unwrap(), b"y");
        assert_eq!(m.puts, 1);
    }

    #[test]
    fn get_many_answers_in_order_with_none_for_missing() {
        let mut m = MemStore::new();
        let a = m.put(b"a".to_vec()).unwrap();
        let b = m.put(b"b".to_vec()).unwrap();
        let gone = hash_of(b"never stored");
        let boxed: Box<dyn ChunkStore> = Box::new(m);
        let got = boxed.get_many(&[b, gone, a, b]).unwrap();
        let got: Vec<Option<&[u8]>> = got.iter().map(|c| c.as_deref()).collect();
        assert_eq!(
            got,
            vec![Some(&b"b"[..]), None, Some(&b"a"[..]), Some(&b"b"[..])]
        );
    }

    #[test]
    fn error_messages() {
        let h = hash_of(b"");
        assert_eq!(
            StoreError::Missing(h).to_string(),
            format!("chunk {h} is missing")
        );
        assert_eq!(
            StoreError::corrupt(h, "bad").to_string(),
            format!("chunk {h} is corrupt: bad")
        );
    }
}
