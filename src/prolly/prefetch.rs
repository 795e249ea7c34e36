//! `Prefetching`: a read-only view of a store for a walk over every leaf in key order
//! (a table loaded in full: clone, restore). When the walk reads a node of level 1, the
//! leaves it points at are read with one `get_many`, so a store behind a query
//! language answers one request per level-1 node (about a hundred leaves), not one
//! per leaf. At most one such batch is held at a time: memory stays flat.

use super::{is_node_tag, Node};
use crate::store::{Chunk, ChunkStore, Hash, Result, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;

pub struct Prefetching<'a, S: ?Sized> {
    inner: &'a S,
    ahead: RefCell<HashMap<Hash, Chunk>>,
}

impl<'a, S: ChunkStore + ?Sized> Prefetching<'a, S> {
    pub fn new(inner: &'a S) -> Prefetching<'a, S> {
        Prefetching {
            inner,
            ahead: RefCell::new(HashMap::new()),
        }
    }
}

impl<S: ChunkStore + ?Sized> ChunkStore for Prefetching<'_, S> {
    fn get(&self, h: &Hash) -> Result<Chunk> {
        if let Some(c) = self.ahead.borrow_mut().remove(h) {
            return Ok(c);
        }
        let c = self.inner.get(h)?;
        if c.first().is_some_and(|t| is_node_tag(*t)) && c.get(1) == Some(&1) {
            let node = Node::decode(*h, c.clone())?;
            let children: Vec<Hash> = (0..node.len())
                .filter_map(|i| Hash::from_slice(node.value(i)))
                .collect();
            let got = self.inner.get_many(&children)?;
            let mut ahead = self.ahead.borrow_mut();
            ahead.clear();
            for (h, c) in children.into_iter().zip(got) {
                if let Some(c) = c {
                    ahead.insert(h, c);
                }
            }
        }
        Ok(c)
    }

    fn has(&self, h: &Hash) -> Result<bool> {
        Ok(self.ahead.borrow().contains_key(h) || self.inner.has(h)?)
    }

    fn put(&mut self, _data: Vec<u8>) -> Result<Hash> {
        Err(StoreError::Backend(
            "a prefetching view is read-only".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prolly::{build, iter};
    use crate::store::MemStore;

    #[test]
    fn reads_every_leaf_in_batches_and_iterates_the_same() {
        let mut s = MemStore::new();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000u32)
            .map(|i| (i.to_be_bytes().to_vec(), format!("value {i}").into_bytes()))
            .collect();
        let root = build(&mut s, entries.clone()).unwrap();
        let before = s.reads();
        let view = Prefetching::new(&s);
        let got: Vec<_> = iter(&view, root)
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(got, entries);
        // Every chunk is read once: each leaf through get_many, each internal node
        // through get.
        let reads = s.reads() - before;
        let mut distinct = std::collections::HashSet::new();
        let mut stack = vec![root];
        while let Some(h) = stack.pop() {
            distinct.insert(h);
            let n = Node::decode(h, s.get(&h).unwrap()).unwrap();
            if !n.is_leaf() {
                stack.extend((0..n.len()).map(|i| Hash::from_slice(n.value(i)).unwrap()));
            }
        }
        assert_eq!(reads, distinct.len());
        assert!(
            view.ahead.borrow().is_empty(),
            "nothing left over at the end"
        );
    }
}
