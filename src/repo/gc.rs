//! Garbage collection of a chunk store, as pure functions: marking what a set of roots
//! reaches, and deciding what may go. The glue (`src/pg/gc.rs`) lists the store, holds
//! the lock that keeps writers out while it decides, and deletes.
//!
//! The rule that makes deletion safe: a store is closed under references (a chunk it
//! has, it has with everything below: fetch and push skip whole subtrees on that
//! promise), for *every* chunk it keeps, reachable or not. So what is deleted must be
//! unreachable from every root **and** from every chunk that stays. Chunks that were
//! written while the mark ran are therefore roots of the second mark, like the refs
//! as they are then.

use crate::remote::chunk_refs;
use crate::store::{hash_of, Hash, StoreError};
use std::collections::HashSet;

/// Chunks with their bytes, as a store returns them.
pub type Fetched = Vec<(Hash, Vec<u8>)>;

/// Chunks asked of the store per round trip while marking.
pub const MARK_BATCH: usize = 2000;

/// Marks every chunk `roots` reach that `marked` does not already hold (a chunk in
/// `marked` is taken as marked with everything below it). `fetch` returns the bytes
/// of the chunks it is asked for that exist; a reachable chunk that does not exist, or
/// whose bytes do not hash to its name, is an error: the store is damaged, and
/// collecting it would make things worse. Returns the number of chunks newly marked.
pub fn mark<E>(
    roots: impl IntoIterator<Item = Hash>,
    marked: &mut HashSet<Hash>,
    fetch: &mut dyn FnMut(&[Hash]) -> Result<Fetched, E>,
) -> Result<u64, E>
where
    E: From<StoreError>,
{
    let mut frontier: Vec<Hash> = roots.into_iter().filter(|h| !marked.contains(h)).collect();
    let mut newly = 0u64;
    while !frontier.is_empty() {
        frontier.sort_unstable();
        frontier.dedup();
        frontier.retain(|h| !marked.contains(h));
        let mut next = Vec::new();
        for batch in frontier.chunks(MARK_BATCH) {
            let got = fetch(batch)?;
            let mut found: HashSet<Hash> = HashSet::with_capacity(got.len());
            for (h, data) in got {
                if hash_of(&data) != h {
                    return Err(StoreError::corrupt(h, "its bytes hash differently").into());
                }
                next.extend(chunk_refs(&h, &data)?);
                found.insert(h);
            }
            for h in batch {
                if !found.contains(h) {
                    return Err(StoreError::Missing(*h).into());
                }
                marked.insert(*h);
                newly += 1;
            }
        }
        frontier = next;
    }
    Ok(newly)
}

/// What a collection deletes: the `candidates` (chunks that existed, unreachable, at
/// the first mark) that the second mark did not reach.
pub fn doomed(candidates: &HashSet<Hash>, marked: &HashSet<Hash>) -> Vec<Hash> {
    let mut out: Vec<Hash> = candidates.difference(marked).copied().collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{Commit, RootValue, TableEntry, TableSchema};
    use crate::store::{ChunkStore, MemStore};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn fetcher(s: &MemStore) -> impl FnMut(&[Hash]) -> Result<Fetched, StoreError> + '_ {
        move |hs| {
            Ok(hs
                .iter()
                .filter_map(|h| s.get(h).ok().map(|d| (*h, d.to_vec())))
                .collect())
        }
    }

    /// A commit of a one-table root whose tree holds `rows` (key -> value bytes).
    fn commit(s: &mut MemStore, rows: &BTreeMap<Vec<u8>, Vec<u8>>, parents: Vec<Hash>) -> Hash {
        let mut values = Vec::new();
        for v in rows.values() {
            values.push(crate::codec::store_value(s, v.clone()).unwrap());
        }
        let entries: Vec<(Vec<u8>, Vec<u8>)> = rows.keys().cloned().zip(values).collect();
        let tree = crate::prolly::build(s, entries).unwrap();
        let mut root = RootValue::default();
        root.tables.insert(
            "public.t".into(),
            TableEntry {
                schema: TableSchema::new(vec![], vec![]),
                tree,
                sequences: vec![],
            },
        );
        let root = root.write(s).unwrap();
        Commit {
            root,
            parents,
            author: "t".into(),
            message: "m".into(),
            timestamp_us: 0,
        }
        .write(s)
        .unwrap()
    }

    fn closure(s: &MemStore, h: Hash) -> HashSet<Hash> {
        let mut m = HashSet::new();
        mark([h], &mut m, &mut fetcher(s)).unwrap();
        m
    }

    proptest! {
        /// Collecting with some commits kept as refs deletes exactly what none of them
        /// reaches, and every kept ref still reads whole.
        #[test]
        fn collection_keeps_exactly_what_the_roots_reach(
            histories in proptest::collection::vec(
                proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..4),
                    prop_oneof![proptest::collection::vec(any::<u8>(), 0..16), proptest::collection::vec(any::<u8>(), 2000..2001)], 0..60),
                1..6),
            keep in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let mut s = MemStore::new();
            let mut heads = Vec::new();
            for rows in &histories {
                let parents = if heads.is_empty() || keep[heads.len() % 6] { vec![] } else { vec![*heads.last().unwrap()] };
                heads.push(commit(&mut s, rows, parents));
            }
            let roots: Vec<Hash> = heads.iter().enumerate().filter(|(i, _)| keep[*i]).map(|(_, h)| *h).collect();
            let all: HashSet<Hash> = s.hashes().into_iter().collect();
            let mut marked = HashSet::new();
            mark(roots.clone(), &mut marked, &mut fetcher(&s)).unwrap();
            let candidates: HashSet<Hash> = all.difference(&marked).copied().collect();
            let gone = doomed(&candidates, &marked);
            let expected: HashSet<Hash> = roots.iter().flat_map(|r| closure(&s, *r)).collect();
            for h in &gone {
                prop_assert!(!expected.contains(h));
                s.remove(h);
            }
            prop_assert_eq!(s.hashes().len(), expected.len());
            // Every kept ref still reads whole (the mark fails on a missing chunk).
            for r in &roots {
                prop_assert!(mark([*r], &mut HashSet::new(), &mut fetcher(&s)).is_ok());
            }
        }
    }

    /// A chunk written during the first mark that reuses a candidate keeps it alive
    /// when it is a root of the second mark, even if no ref reaches it.
    #[test]
    fn chunks_written_meanwhile_protect_what_they_reference() {
        let mut s = MemStore::new();
        let mut rows = BTreeMap::new();
        rows.insert(vec![1], vec![9; 3000]);
        let old = commit(&mut s, &rows, vec![]);
        let all: HashSet<Hash> = s.hashes().into_iter().collect();
        // First mark: no roots at all; everything is a candidate.
        let mut marked = HashSet::new();
        let candidates: HashSet<Hash> = all.difference(&marked).copied().collect();
        // Meanwhile a writer commits the same rows again (a new commit chunk, which
        // reuses the candidate tree and blob) and moves no ref.
        let new = Commit {
            root: Commit::read(&s, &old).unwrap().root,
            parents: vec![],
            author: "w".into(),
            message: "again".into(),
            timestamp_us: 1,
        }
        .write(&mut s)
        .unwrap();
        let written: Vec<Hash> = s
            .hashes()
            .into_iter()
            .filter(|h| !all.contains(h))
            .collect();
        assert_eq!(written, vec![new]);
        mark(written, &mut marked, &mut fetcher(&s)).unwrap();
        let gone = doomed(&candidates, &marked);
        assert_eq!(gone, vec![old], "only the old commit chunk itself goes");
        s.remove(&old);
        closure(&s, new);
    }

    #[test]
    fn a_missing_or_corrupt_reachable_chunk_stops_the_mark() {
        let mut s = MemStore::new();
        let mut rows = BTreeMap::new();
        rows.insert(vec![1], vec![2]);
        let h = commit(&mut s, &rows, vec![]);
        let root = Commit::read(&s, &h).unwrap().root;
        s.remove(&root);
        let r = mark([h], &mut HashSet::new(), &mut fetcher(&s));
        assert!(matches!(r, Err(StoreError::Missing(m)) if m == root));
        let mut lying = |hs: &[Hash]| -> Result<Fetched, StoreError> {
            Ok(hs.iter().map(|h| (*h, b"not it".to_vec())).collect())
        };
        assert!(mark([h], &mut HashSet::new(), &mut lying).is_err());
    }
}
