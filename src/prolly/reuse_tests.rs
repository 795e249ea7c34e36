//! Tests of `apply_edits` reuse and canonical form on large trees: I/O
//! bounds for point edits, and edits aimed at internal-node boundaries where
//! subtree reuse must be refused or the root collapsed.

use super::tests::{key, levels, reachable, Rng};
use super::*;
use crate::store::MemStore;
use std::collections::BTreeMap;

/// Point edits on a large tree write O(depth) chunks and read O(depth) chunks.
#[test]
fn point_edits_reuse_subtrees() {
    let mut s = MemStore::new();
    let n = 200_000u64;
    let root = build(&mut s, (0..n).map(|i| (key(i * 2), vec![b'v'; 20]))).unwrap();
    let d = depth(&s, root).unwrap();
    let mut rng = Rng(99);
    let (mut max_puts, mut max_reads) = (0, 0);
    for round in 0..30 {
        let i = rng.below(n);
        let edit = match round % 3 {
            0 => (key(i * 2), Some(vec![b'w'; 20])),
            1 => (key(i * 2 + 1), Some(b"inserted".to_vec())),
            _ => (key(i * 2), None),
        };
        s.reset_counters();
        let new = apply_edits(&mut s, root, vec![edit.clone()]).unwrap();
        max_puts = max_puts.max(s.puts);
        max_reads = max_reads.max(s.reads());
        assert!(
            s.puts <= d + 2,
            "round {round}: {} new chunks for one edit (depth {d})",
            s.puts
        );
        assert!(
            s.reads() <= 3 * d,
            "round {round}: {} reads for one edit (depth {d})",
            s.reads()
        );
        s.reset_counters();
        let changes: Vec<_> = diff(&s, root, new)
            .collect::<crate::store::Result<_>>()
            .unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!((&changes[0].key, &changes[0].after), (&edit.0, &edit.1));
        assert!(s.reads() <= 4 * d, "diff read {} chunks", s.reads());
        s.reset_counters();
        assert_eq!(diff(&s, new, new).count(), 0);
        assert_eq!(s.reads(), 0, "identical roots need no reads");
    }
    eprintln!("point edits: depth {d}, max new chunks {max_puts}, max reads {max_reads}");
}

#[test]
fn same_content_same_chunks() {
    let mut rng = Rng(5);
    let entries: Vec<_> = (0..30_000u64)
        .map(|i| (key(i), vec![b'x'; rng.below(80) as usize]))
        .collect();
    let mut direct = MemStore::new();
    let a = build(&mut direct, entries.clone()).unwrap();
    // Build the even entries, then add the odd ones in three batches.
    let mut edited = MemStore::new();
    let mut b = build(&mut edited, entries.iter().step_by(2).cloned()).unwrap();
    for part in 0..3 {
        let batch = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 1 && i % 3 == part)
            .map(|(_, (k, v))| (k.clone(), Some(v.clone())));
        b = apply_edits(&mut edited, b, batch).unwrap();
    }
    assert_eq!(a, b);
    assert_eq!(
        reachable(&direct, a),
        reachable(&edited, b),
        "reachable chunk sets differ"
    );
}

/// Edits at the boundaries of internal nodes leave upper chunkers mid-node,
/// which is exactly when subtree reuse must be refused.
#[test]
fn edits_at_internal_boundaries() {
    let mut rng = Rng(31);
    let model: BTreeMap<_, _> = (0..120_000u64)
        .map(|i| (key(i * 2), vec![b'v'; rng.below(30) as usize]))
        .collect();
    let mut s = MemStore::new();
    let root = build(&mut s, model.clone()).unwrap();
    let lv = levels(&s, root);
    assert!(lv.len() >= 3);
    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    for level in &lv[..lv.len() - 1] {
        for n in level {
            boundaries.extend((0..n.len()).step_by(7).map(|i| n.key(i).to_vec()));
        }
    }
    for (round, b) in boundaries.iter().enumerate() {
        let mut after = b.clone();
        after.push(0);
        let edits: Vec<Edit> = match round % 4 {
            0 => vec![(b.clone(), None)],
            1 => vec![(b.clone(), Some(vec![b'x'; MAX_NODE + 1]))],
            2 => vec![(b.clone(), None), (after, Some(b"new".to_vec()))],
            _ => {
                let mut run: Vec<Edit> = model
                    .range(..b.clone())
                    .rev()
                    .take(300)
                    .map(|(k, _)| (k.clone(), None))
                    .collect();
                run.reverse();
                run
            }
        };
        let mut want = model.clone();
        for (k, v) in &edits {
            match v {
                Some(v) => want.insert(k.clone(), v.clone()),
                None => want.remove(k),
            };
        }
        let got = apply_edits(&mut s, root, edits).unwrap();
        assert_eq!(got, build(&mut s, want).unwrap(), "round {round}");
    }
}

/// Shrinking an internal node below MIN_NODE while keeping its last leaf
/// leaves level 0 at a cut but the level above mid-node.
#[test]
fn shrinking_internal_nodes() {
    let model: BTreeMap<_, _> = (0..120_000u64)
        .map(|i| (key(i * 2), vec![b'v'; 12]))
        .collect();
    let mut s = MemStore::new();
    let root = build(&mut s, model.clone()).unwrap();
    let lv = levels(&s, root);
    assert!(lv.len() >= 3);
    for level in &lv[..lv.len() - 1] {
        for j in 1..level.len() {
            let lo = level[j - 1].key(level[j - 1].len() - 1).to_vec();
            let hi = level[j].key(level[j].len() - 1).to_vec();
            let inside: Vec<_> = model
                .range(lo.clone()..hi.clone())
                .skip(1)
                .map(|(k, _)| k.clone())
                .collect();
            for keep in [0, 60] {
                let doomed = &inside[..inside.len().saturating_sub(keep)];
                let edits = doomed.iter().map(|k| (k.clone(), None));
                let mut want = model.clone();
                doomed.iter().for_each(|k| drop(want.remove(k)));
                let got = apply_edits(&mut s, root, edits).unwrap();
                assert_eq!(got, build(&mut s, want).unwrap(), "node {j} keep {keep}");
            }
        }
    }
}

/// Deleting everything but one subtree must give that subtree's own root
/// (a single-child top is not canonical).
#[test]
fn keeping_one_subtree_collapses_the_root() {
    let model: BTreeMap<_, _> = (0..30_000u64).map(|i| (key(i), vec![b'v'; 12])).collect();
    let mut s = MemStore::new();
    let root = build(&mut s, model.clone()).unwrap();
    let lv = levels(&s, root);
    assert!(lv.len() >= 3);
    let parents = &lv[lv.len() - 2];
    for (j, node) in parents.iter().enumerate() {
        let lo = (j > 0).then(|| parents[j - 1].key(parents[j - 1].len() - 1).to_vec());
        let hi = node.key(node.len() - 1).to_vec();
        let outside = model
            .keys()
            .filter(|k| lo.as_ref().is_some_and(|lo| *k <= lo) || **k > hi);
        let got = apply_edits(&mut s, root, outside.map(|k| (k.clone(), None))).unwrap();
        let kept = model
            .iter()
            .filter(|(k, _)| lo.as_ref().is_none_or(|lo| *k > lo) && **k <= hi);
        assert_eq!(
            got,
            build(&mut s, kept.map(|(k, v)| (k.clone(), v.clone()))).unwrap(),
            "node {j}"
        );
        if j + 1 < parents.len() && node.len() > 1 {
            assert_eq!(
                got,
                node.hash(),
                "an untouched inner node is its content's root"
            );
        }
    }
}
