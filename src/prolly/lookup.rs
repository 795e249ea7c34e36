//! `Lookup`: point reads for keys that arrive in ascending order.
//!
//! It keeps the path of decoded nodes from the last lookup and only climbs as far as
//! the next key requires, so reading k sorted keys decodes each touched node once
//! instead of `depth` nodes per key. Commit, status and reset use it to fetch the
//! committed value of every changed row. `prefetch` reads ahead the nodes a window of
//! keys needs, one `get_many` per tree level, so a store behind a query language is
//! asked once per level per window, not once per node.

use super::node::{load, Node};
use crate::store::{Chunk, ChunkStore, Hash, Result, StoreError};
use std::collections::HashMap;

pub struct Lookup<'s, S: ChunkStore + ?Sized> {
    store: &'s S,
    root: Hash,
    /// Decoded nodes from the root down, each with the inclusive upper bound of the
    /// keys it covers (None: unbounded, the rightmost path).
    path: Vec<(Node, Option<Vec<u8>>)>,
    last: Option<Vec<u8>>,
    /// Nodes read ahead by the last `prefetch`.
    ahead: HashMap<Hash, Chunk>,
}

impl<'s, S: ChunkStore + ?Sized> Lookup<'s, S> {
    pub fn new(store: &'s S, root: Hash) -> Self {
        Lookup {
            store,
            root,
            path: Vec::new(),
            last: None,
            ahead: HashMap::new(),
        }
    }

    fn node(&self, h: Hash) -> Result<Node> {
        match self.ahead.get(&h) {
            Some(c) => Node::decode(h, c.clone()),
            None => load(self.store, h),
        }
    }

    /// Reads ahead, with one `get_many` per tree level, the nodes that `get` of
    /// `keys` (ascending) will need, and keeps them until the next `prefetch` (the
    /// caller bounds the memory by the size of the window). Only an optimisation:
    /// `get` reads what is not here from the store.
    pub fn prefetch(&mut self, keys: &[Vec<u8>]) -> Result<()> {
        self.ahead.clear();
        if keys.is_empty() {
            return Ok(());
        }
        let root = if self.root == super::empty_root() {
            self.node(self.root)?
        } else {
            let c = self.store.get(&self.root)?;
            self.ahead.insert(self.root, c.clone());
            Node::decode(self.root, c)?
        };
        let mut level: Vec<(Node, Option<Vec<u8>>)> = vec![(root, None)];
        while !level[0].0.is_leaf() {
            // The child each key descends to, in key order, each once.
            let mut want: Vec<(Hash, Vec<u8>)> = Vec::new();
            let mut j = 0;
            for k in keys {
                while j < level.len() && level[j].1.as_deref().is_some_and(|b| k.as_slice() > b) {
                    j += 1;
                }
                let Some((node, _)) = level.get(j) else { break };
                if node.is_leaf() {
                    // An uneven (malformed) tree: `get` reports it.
                    continue;
                }
                let idx = node.search(k);
                if idx == node.len() {
                    continue;
                }
                let h = node.child(idx);
                if want.last().map(|w| w.0) != Some(h) {
                    want.push((h, node.key(idx).to_vec()));
                }
            }
            if want.is_empty() {
                break;
            }
            let hashes: Vec<Hash> = want.iter().map(|w| w.0).collect();
            let got = self.store.get_many(&hashes)?;
            let mut next = Vec::with_capacity(want.len());
            for ((h, bound), c) in want.into_iter().zip(got) {
                let c = c.ok_or(StoreError::Missing(h))?;
                next.push((Node::decode(h, c.clone())?, Some(bound)));
                self.ahead.insert(h, c);
            }
            level = next;
        }
        Ok(())
    }

    /// The value under `key`. Keys must not decrease between calls; a smaller key
    /// restarts from the root (correct, just not faster).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.last.as_deref().is_some_and(|l| key < l) {
            self.path.clear();
        }
        self.last = Some(key.to_vec());
        while let Some((_, Some(bound))) = self.path.last() {
            if key <= bound.as_slice() {
                break;
            }
            self.path.pop();
        }
        if self.path.is_empty() {
            self.path.push((self.node(self.root)?, None));
        }
        loop {
            let (node, _) = self.path.last().expect("path has the root");
            let idx = node.search(key);
            if idx == node.len() {
                return Ok(None);
            }
            if node.is_leaf() {
                return Ok((node.key(idx) == key).then(|| node.value(idx).to_vec()));
            }
            let bound = node.key(idx).to_vec();
            let child = self.node(node.child(idx))?;
            self.path.push((child, Some(bound)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prolly::build;
    use crate::store::MemStore;

    #[test]
    fn sorted_lookups_match_get_and_read_few_nodes() {
        let mut s = MemStore::default();
        let entries: Vec<_> = (0..50_000u32)
            .map(|i| ((i * 2).to_be_bytes().to_vec(), i.to_le_bytes().to_vec()))
            .collect();
        let root = build(&mut s, entries).unwrap();
        s.reset_counters();
        let mut l = Lookup::new(&s, root);
        let mut found = 0;
        for k in (0..100_001u32).step_by(3) {
            let got = l.get(&k.to_be_bytes()).unwrap();
            if k % 2 == 0 {
                assert_eq!(got, Some((k / 2).to_le_bytes().to_vec()), "key {k}");
                found += 1;
            } else {
                assert_eq!(got, None);
            }
        }
        assert!(found > 10_000);
        // Every node read about once, not depth times per key.
        let reads = s.reads();
        let entries = crate::prolly::count(&s, root).unwrap() as usize;
        assert!(
            reads < entries / 20,
            "{reads} node reads for 33,334 sorted lookups"
        );
        // With prefetching, windows of keys: the same answers, and every node read
        // once, through get_many.
        let mut lp = Lookup::new(&s, root);
        let keys: Vec<Vec<u8>> = (0..100_001u32)
            .step_by(97)
            .map(|k| k.to_be_bytes().to_vec())
            .collect();
        for window in keys.chunks(64) {
            lp.prefetch(window).unwrap();
            let reads_before = s.reads();
            for k in window {
                let n = u32::from_be_bytes(k[..].try_into().unwrap());
                let want = (n % 2 == 0).then(|| (n / 2).to_le_bytes().to_vec());
                assert_eq!(lp.get(k).unwrap(), want, "key {n}");
            }
            assert_eq!(
                s.reads(),
                reads_before,
                "get reads nothing prefetch did not"
            );
        }
        // A smaller key still answers correctly.
        assert_eq!(
            l.get(&4u32.to_be_bytes()).unwrap(),
            Some(2u32.to_le_bytes().to_vec())
        );
    }
}
