//! `Lookup`: point reads for keys that arrive in ascending order.
//!
//! It keeps the path of decoded nodes from the last lookup and only climbs as far as
//! the next key requires, so reading k sorted keys decodes each touched node once
//! instead of `depth` nodes per key. Commit, status and reset use it to fetch the
//! committed value of every changed row.

use super::node::{load, Node};
use crate::store::{ChunkStore, Hash, Result};

pub struct Lookup<'s, S: ChunkStore + ?Sized> {
    store: &'s S,
    root: Hash,
    /// Decoded nodes from the root down, each with the inclusive upper bound of the
    /// keys it covers (None: unbounded, the rightmost path).
    path: Vec<(Node, Option<Vec<u8>>)>,
    last: Option<Vec<u8>>,
}

impl<'s, S: ChunkStore + ?Sized> Lookup<'s, S> {
    pub fn new(store: &'s S, root: Hash) -> Self {
        Lookup {
            store,
            root,
            path: Vec::new(),
            last: None,
        }
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
            self.path.push((load(self.store, self.root)?, None));
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
            let child = load(self.store, node.child(idx))?;
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
        // A smaller key still answers correctly.
        assert_eq!(
            l.get(&4u32.to_be_bytes()).unwrap(),
            Some(2u32.to_le_bytes().to_vec())
        );
    }
}
