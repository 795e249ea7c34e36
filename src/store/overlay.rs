//! `Overlay`: a read-through store whose writes stay in memory.
//!
//! Used to build throw-away trees on top of a real store without writing to it: a
//! backup builds the working set's tree (HEAD's tree plus uncommitted changes) in an
//! overlay over the local store, then pushes it; the local store never sees those
//! chunks. Memory grows with the chunks written, i.e. with the size of the change.

use super::{Chunk, ChunkStore, Hash, MemStore, Result};
use std::cell::RefCell;

pub struct Overlay<'a> {
    base: &'a dyn ChunkStore,
    top: RefCell<MemStore>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn ChunkStore) -> Overlay<'a> {
        Overlay {
            base,
            top: RefCell::new(MemStore::default()),
        }
    }

    /// Chunks written to the overlay.
    pub fn written(&self) -> usize {
        self.top.borrow().len()
    }
}

impl ChunkStore for &Overlay<'_> {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        let top = self.top.borrow();
        if top.has(h)? {
            return top.get(h);
        }
        drop(top);
        self.base.get(h)
    }

    /// What `top` lacks goes to `base` in one batch.
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        let top = self.top.borrow();
        let mut out = Vec::with_capacity(hs.len());
        let mut rest = Vec::new();
        for (i, h) in hs.iter().enumerate() {
            out.push(if top.has(h)? { Some(top.get(h)?) } else { None });
            if out[i].is_none() {
                rest.push(i);
            }
        }
        drop(top);
        let asked: Vec<Hash> = rest.iter().map(|&i| hs[i]).collect();
        for (i, c) in rest.into_iter().zip(self.base.get_many(&asked)?) {
            out[i] = c;
        }
        Ok(out)
    }

    fn has(&self, h: &Hash) -> Result<bool> {
        Ok(self.top.borrow().has(h)? || self.base.has(h)?)
    }

    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        self.top.borrow_mut().put(data)
    }
}

/// A store that reads `base` first, then `top`, and writes to `top` only: a tree built
/// on top of `base` with its new chunks going elsewhere (a backup's working set goes
/// straight to the backup's remote, so its memory stays bounded whatever its size).
pub struct Layered<'a, T: ChunkStore> {
    base: &'a dyn ChunkStore,
    top: RefCell<T>,
    written: std::cell::Cell<(u64, u64)>,
}

impl<'a, T: ChunkStore> Layered<'a, T> {
    pub fn new(base: &'a dyn ChunkStore, top: T) -> Layered<'a, T> {
        Layered {
            base,
            top: RefCell::new(top),
            written: std::cell::Cell::new((0, 0)),
        }
    }

    /// Chunks and bytes handed to `top` (it may skip some it already holds).
    pub fn written(&self) -> (u64, u64) {
        self.written.get()
    }

    pub fn into_top(self) -> T {
        self.top.into_inner()
    }
}

impl<T: ChunkStore> ChunkStore for &Layered<'_, T> {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        match self.base.get(h) {
            Err(super::StoreError::Missing(_)) => self.top.borrow().get(h),
            other => other,
        }
    }

    fn has(&self, h: &Hash) -> Result<bool> {
        Ok(self.base.has(h)? || self.top.borrow().has(h)?)
    }

    /// One batch to `base`; what it lacks is looked up in `top`.
    fn get_many(&self, hs: &[Hash]) -> Result<Vec<Option<Chunk>>> {
        let mut out = self.base.get_many(hs)?;
        for (c, h) in out.iter_mut().zip(hs) {
            if c.is_none() {
                *c = match self.top.borrow().get(h) {
                    Ok(d) => Some(d),
                    Err(super::StoreError::Missing(_)) => None,
                    Err(e) => return Err(e),
                };
            }
        }
        Ok(out)
    }

    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
        let (c, b) = self.written.get();
        self.written.set((c + 1, b + data.len() as u64));
        self.top.borrow_mut().put(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_and_writes_aside() {
        let mut base = MemStore::default();
        let a = base.put(b"base".to_vec()).unwrap();
        let o = Overlay::new(&base);
        let mut w = &o;
        let b = w.put(b"top".to_vec()).unwrap();
        assert_eq!(&*w.get(&a).unwrap(), b"base");
        assert_eq!(&*w.get(&b).unwrap(), b"top");
        assert!(w.has(&a).unwrap() && w.has(&b).unwrap());
        assert!(!base.has(&b).unwrap(), "writes never reach the base");
        assert_eq!(o.written(), 1);
    }

    #[test]
    fn layered_reads_base_then_top_and_writes_top() {
        let mut base = MemStore::default();
        let a = base.put(b"base".to_vec()).unwrap();
        let l = Layered::new(&base, MemStore::default());
        let mut w = &l;
        let b = w.put(b"top".to_vec()).unwrap();
        assert_eq!(&*w.get(&a).unwrap(), b"base");
        assert_eq!(&*w.get(&b).unwrap(), b"top");
        assert!(w.has(&a).unwrap() && w.has(&b).unwrap());
        assert!(!base.has(&b).unwrap());
        assert_eq!(l.written(), (1, 3));
        assert!(l.into_top().has(&b).unwrap());
    }
}
