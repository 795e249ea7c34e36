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

    fn has(&self, h: &Hash) -> Result<bool> {
        Ok(self.top.borrow().has(h)? || self.base.has(h)?)
    }

    fn put(&mut self, data: Vec<u8>) -> Result<Hash> {
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
}
