//! Unit tests for the prolly tree plus helpers shared with `proptests`.
//!
//! Helpers walk trees directly through `Node` so assertions do not depend on
//! the code under test (cursors, diff) when checking structure.

use super::*;
use crate::store::{ChunkStore, MemStore};
use std::collections::BTreeMap;

pub(super) fn key(i: u64) -> Vec<u8> {
    format!("key{i:010}").into_bytes()
}

/// Small deterministic PRNG (splitmix64) so tests need no extra crates.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Nodes of the tree by level, each level left to right (index 0 = root level).
pub(super) fn levels(store: &MemStore, root: Hash) -> Vec<Vec<Node>> {
    let mut out = vec![vec![load(store, root).unwrap()]];
    while !out.last().unwrap()[0].is_leaf() {
        let next = out
            .last()
            .unwrap()
            .iter()
            .flat_map(|n| {
                (0..n.len())
                    .map(|i| load(store, n.child(i)).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.push(next);
    }
    out
}

/// Every chunk reachable from `root`, by hash.
pub(super) fn reachable(store: &MemStore, root: Hash) -> BTreeMap<Hash, Vec<u8>> {
    levels(store, root)
        .into_iter()
        .flatten()
        .map(|n| (n.hash(), n.bytes().to_vec()))
        .collect()
}

fn collect(store: &MemStore, root: Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter(store, root)
        .collect::<crate::store::Result<_>>()
        .unwrap()
}

fn node_size(n: &Node) -> usize {
    (0..n.len()).map(|i| n.entry_size(i)).sum()
}

#[test]
fn empty_tree() {
    let mut s = MemStore::new();
    let root = build(&mut s, Vec::new()).unwrap();
    assert_eq!(root, empty_root());
    assert_eq!(collect(&s, root), vec![]);
    assert_eq!(count(&s, root).unwrap(), 0);
    assert_eq!(depth(&s, root).unwrap(), 1);
    assert_eq!(get(&s, root, b"x").unwrap(), None);
    assert_eq!(iter_from(&s, root, b"").count(), 0);
    assert_eq!(
        apply_edits(&mut s, root, vec![(b"a".to_vec(), None)]).unwrap(),
        root
    );
    let one = apply_edits(&mut s, root, vec![(b"a".to_vec(), Some(b"1".to_vec()))]).unwrap();
    assert_eq!(
        one,
        build(&mut s, vec![(b"a".to_vec(), b"1".to_vec())]).unwrap()
    );
    let back = apply_edits(&mut s, one, vec![(b"a".to_vec(), None)]).unwrap();
    assert_eq!(back, root);
    assert_eq!(diff(&s, root, one).count(), 1);
}

#[test]
fn single_entry() {
    let mut s = MemStore::new();
    let root = build(&mut s, vec![(b"k".to_vec(), b"v".to_vec())]).unwrap();
    assert_eq!(get(&s, root, b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(get(&s, root, b"j").unwrap(), None);
    assert_eq!(get(&s, root, b"l").unwrap(), None);
    assert_eq!(count(&s, root).unwrap(), 1);
    assert_eq!(depth(&s, root).unwrap(), 1);
    assert_eq!(s.len(), 1);
}

#[test]
fn big_tree_reads() {
    let mut s = MemStore::new();
    let n = 100_000u64;
    let root = build(
        &mut s,
        (0..n).map(|i| (key(i * 2), i.to_le_bytes().to_vec())),
    )
    .unwrap();
    assert_eq!(count(&s, root).unwrap(), n);
    let d = depth(&s, root).unwrap();
    assert!((3..=5).contains(&d), "depth {d}");
    for i in (0..n).step_by(97) {
        assert_eq!(
            get(&s, root, &key(i * 2)).unwrap(),
            Some(i.to_le_bytes().to_vec())
        );
        assert_eq!(get(&s, root, &key(i * 2 + 1)).unwrap(), None);
    }
    assert_eq!(get(&s, root, &key(n * 2)).unwrap(), None);
    let all = collect(&s, root);
    assert_eq!(all.len() as u64, n);
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, (k, _))| *k == key(i as u64 * 2)));
    for start in [0, 1, 2, 777, 12_345, n * 2 - 2, n * 2 - 1, n * 2 + 5] {
        let first = iter_from(&s, root, &key(start)).next().transpose().unwrap();
        let want = (start.div_ceil(2) < n).then(|| key(start.div_ceil(2) * 2));
        assert_eq!(first.map(|e| e.0), want, "iter_from {start}");
    }
    assert_eq!(iter_from(&s, root, &key(777)).count() as u64, n - 389);
    let nodes: usize = levels(&s, root).iter().map(Vec::len).sum();
    s.reset_counters();
    assert_eq!(iter(&s, root).count() as u64, n);
    assert_eq!(s.reads(), nodes, "a full scan reads each node exactly once");
    s.reset_counters();
    get(&s, root, &key(5000)).unwrap();
    assert_eq!(s.reads(), d, "a lookup reads one node per level");
}

#[test]
fn node_sizes_respect_bounds() {
    let mut s = MemStore::new();
    let mut rng = Rng(7);
    let entries: Vec<_> = (0..20_000u64)
        .map(|i| {
            let len = match rng.below(100) {
                0 => 20_000,
                1..=3 => 3_000,
                _ => rng.below(60) as usize,
            };
            (key(i), vec![i as u8; len])
        })
        .collect();
    let root = build(&mut s, entries).unwrap();
    let lv = levels(&s, root);
    assert!(lv.len() >= 3);
    assert_eq!(lv[0].len(), 1);
    for level in &lv {
        for n in &level[..level.len() - 1] {
            let size = node_size(n);
            let last = n.entry_size(n.len() - 1);
            assert!(size >= MIN_NODE, "node of {size} bytes below MIN");
            assert!(
                size - last < MAX_NODE,
                "node of {size} bytes grew past MAX before its last entry"
            );
            if !n.is_leaf() {
                assert!(n.len() >= 2, "internal nodes have fanout >= 2");
            }
        }
    }
    let leaves = &lv[lv.len() - 1];
    let avg = leaves.iter().map(node_size).sum::<usize>() / leaves.len();
    assert!((MIN_NODE..=MAX_NODE).contains(&avg), "average leaf {avg}");
}

#[test]
fn huge_keys_still_form_a_root() {
    let mut s = MemStore::new();
    let entries: Vec<_> = (0..40u8)
        .map(|i| (vec![i; MAX_NODE + 10], vec![i]))
        .collect();
    let root = build(&mut s, entries.clone()).unwrap();
    assert_eq!(collect(&s, root), entries);
    assert!(depth(&s, root).unwrap() <= 8);
    let half = build(&mut s, entries[..20].to_vec()).unwrap();
    let rest = entries[20..]
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())));
    assert_eq!(apply_edits(&mut s, half, rest).unwrap(), root);
}

#[test]
fn missing_and_corrupt_chunks_are_errors() {
    let mut s = MemStore::new();
    let root = build(&mut s, (0..5000).map(|i| (key(i), vec![1u8; 30]))).unwrap();
    let lv = levels(&s, root);
    let leaf = lv[lv.len() - 1][3].hash();
    let other = build(&mut s, (0..5000).map(|i| (key(i), vec![2u8; 30]))).unwrap();
    let leaf_bytes = s.get(&leaf).unwrap().to_vec();
    s.remove(&leaf);
    let missing = crate::store::StoreError::Missing(leaf);
    assert_eq!(iter(&s, root).find_map(|r| r.err()), Some(missing.clone()));
    assert_eq!(count(&s, root).unwrap_err(), missing);
    assert_eq!(
        diff(&s, root, other).find_map(|r| r.err()),
        Some(missing.clone())
    );
    let k = lv[lv.len() - 1][3].key(0).to_vec();
    assert_eq!(get(&s, root, &k).unwrap_err(), missing);
    match apply_edits(&mut s, root, vec![(k.clone(), None)]) {
        Err(ProllyError::Store(e)) => assert_eq!(e, missing),
        other => panic!("expected Missing, got {other:?}"),
    }
    let mut bad = leaf_bytes.clone();
    bad.truncate(bad.len() - 3);
    s.overwrite_unchecked(leaf, bad);
    assert!(matches!(
        get(&s, root, &k),
        Err(crate::store::StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        iter(&s, root).last(),
        Some(Err(crate::store::StoreError::Corrupt { .. }))
    ));
    // A leaf where an internal node belongs is corrupt, not a panic.
    s.overwrite_unchecked(leaf, leaf_bytes);
    let top = &lv[0][0];
    let fake = s
        .put(encode_node(
            crate::prolly::Chunking::CURRENT,
            top.level(),
            &[(top.key(0).to_vec(), empty_root().0.to_vec())],
        ))
        .unwrap();
    s.put(encode_node(crate::prolly::Chunking::CURRENT, 0, &[]))
        .unwrap();
    if top.level() > 1 {
        assert!(matches!(
            count(&s, fake),
            Err(crate::store::StoreError::Corrupt { .. })
        ));
    }
}

#[test]
fn unsorted_input_is_rejected() {
    let mut s = MemStore::new();
    let e = |k: &[u8]| (k.to_vec(), b"v".to_vec());
    assert!(matches!(
        build(&mut s, vec![e(b"b"), e(b"a")]),
        Err(ProllyError::Unsorted { index: 1 })
    ));
    assert!(matches!(
        build(&mut s, vec![e(b"a"), e(b"a")]),
        Err(ProllyError::Unsorted { .. })
    ));
    let root = build(&mut s, vec![e(b"a"), e(b"c")]).unwrap();
    let edits = vec![(b"b".to_vec(), None), (b"b".to_vec(), None)];
    assert!(matches!(
        apply_edits(&mut s, root, edits),
        Err(ProllyError::Unsorted { index: 1 })
    ));
}

/// The empty tree reads, diffs and counts without being in any store.
#[test]
fn the_empty_tree_needs_no_store() {
    let mut s = MemStore::default();
    let empty = MemStore::default();
    assert_eq!(count(&empty, empty_root()).unwrap(), 0);
    let t = build(&mut s, vec![(b"k".to_vec(), b"v".to_vec())]).unwrap();
    let d: Vec<_> = diff(&s, t, empty_root())
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(d.len(), 1);
}

/// Leaf sizes under both rules for 10^5 rows like the benchmarks' (8-byte keys,
/// 40-80-byte values): the current rule gathers sizes around the target, so the
/// leaf holding a given row (the size-biased mean, what a point edit rewrites) is
/// close to the mean leaf; under `Flat` it is much larger.
#[test]
fn node_sizes_gather_around_the_target() {
    let mut rng = Rng(7);
    let rows: Vec<(Vec<u8>, Vec<u8>)> = (0..100_000u64)
        .map(|i| (key(i), vec![b'v'; 40 + rng.below(41) as usize]))
        .collect();
    let stats = |chunking: Chunking| {
        let mut s = MemStore::new();
        let mut b = Builder::with_chunking(&mut s, chunking);
        for (k, v) in &rows {
            b.push(k.clone(), v.clone()).unwrap();
        }
        let root = b.finish().unwrap();
        let sizes: Vec<f64> = super::proptests::nodes(&s, root)
            .iter()
            .filter(|n| n.is_leaf())
            .map(|n| n.bytes().len() as f64)
            .collect();
        let mean = sizes.iter().sum::<f64>() / sizes.len() as f64;
        let biased = sizes.iter().map(|x| x * x).sum::<f64>() / sizes.iter().sum::<f64>();
        let max = sizes.iter().cloned().fold(0.0, f64::max);
        eprintln!(
            "{chunking:?}: {} leaves, mean {mean:.0} B, size-biased {biased:.0} B, max {max:.0} B",
            sizes.len()
        );
        (mean, biased, max)
    };
    let (fm, fb, _) = stats(Chunking::Flat);
    let (wm, wb, wmax) = stats(Chunking::Weibull);
    assert!((3_200.0..4_300.0).contains(&wm), "Weibull mean {wm}");
    assert!(wb < 1.15 * wm, "Weibull size-biased {wb} vs mean {wm}");
    assert!(wmax < 9_000.0, "Weibull max {wmax}");
    assert!(fb > 1.5 * fm, "Flat size-biased {fb} vs mean {fm}");
    assert!(wb < 0.65 * fb, "a point edit rewrites less: {wb} vs {fb}");
}

/// Counts single reads of leaves and batched reads.
struct CountingReads<'a> {
    inner: &'a mut MemStore,
    leaf_gets: std::cell::Cell<usize>,
    batches: std::cell::Cell<usize>,
}

impl ChunkStore for CountingReads<'_> {
    fn get(&self, h: &crate::store::Hash) -> crate::store::Result<crate::store::Chunk> {
        let c = self.inner.get(h)?;
        if c.get(1) == Some(&0) {
            self.leaf_gets.set(self.leaf_gets.get() + 1);
        }
        Ok(c)
    }
    fn get_many(
        &self,
        hs: &[crate::store::Hash],
    ) -> crate::store::Result<Vec<Option<crate::store::Chunk>>> {
        self.batches.set(self.batches.get() + 1);
        self.inner.get_many(hs)
    }
    fn has(&self, h: &crate::store::Hash) -> crate::store::Result<bool> {
        self.inner.has(h)
    }
    fn put(&mut self, data: Vec<u8>) -> crate::store::Result<crate::store::Hash> {
        self.inner.put(data)
    }
}

/// Edits spread over a big tree read the leaves they change in one batch per level-1
/// node, not one read per leaf; the result is the model's tree.
#[test]
fn spread_edits_read_their_leaves_in_batches() {
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> =
        (0..60_000u64).map(|i| (key(i), vec![b'a'; 40])).collect();
    let mut s = MemStore::new();
    let root = build(&mut s, model.iter().map(|(k, v)| (k.clone(), v.clone()))).unwrap();
    let leaves_before = super::proptests::nodes(&s, root)
        .iter()
        .filter(|n| n.is_leaf())
        .count();
    // Every 40th key changes: nearly every leaf is touched.
    let edits: Vec<Edit> = (0..60_000u64)
        .step_by(40)
        .map(|i| (key(i), Some(vec![b'b'; 40])))
        .collect();
    for (k, v) in &edits {
        model.insert(k.clone(), v.clone().unwrap());
    }
    let mut counting = CountingReads {
        inner: &mut s,
        leaf_gets: Default::default(),
        batches: Default::default(),
    };
    let new = apply_edits(&mut counting, root, edits).unwrap();
    let (leaf_gets, batches) = (counting.leaf_gets.get(), counting.batches.get());
    assert_eq!(
        new,
        build(&mut s, model.iter().map(|(k, v)| (k.clone(), v.clone()))).unwrap()
    );
    let level1 = super::proptests::nodes(&s, root)
        .iter()
        .filter(|n| n.level() == 1)
        .count();
    assert!(
        leaf_gets * 20 < leaves_before,
        "{leaf_gets} single leaf reads for {leaves_before} leaves"
    );
    assert!(
        batches <= level1,
        "{batches} batched reads for {level1} level-1 nodes"
    );
}
