//! Property tests: the tree must behave exactly like a `BTreeMap` model and
//! its root must depend only on its contents, never on how it was produced.
//!
//! Keys mix short random bytes with long shared prefixes (fat internal
//! nodes, deeper trees); values range from empty to larger than `MAX_NODE`.

use super::tests::{key, Rng};
use super::*;
use crate::store::MemStore;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(vec![]),
        Just(vec![b'a'; 40]),
        Just(b"tenant/0001/".repeat(20))
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4),
        (prefix, prop::collection::vec(any::<u8>(), 0..6)).prop_map(|(mut p, s)| {
            p.extend(s);
            p
        }),
    ]
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::collection::vec(any::<u8>(), 0..50),
        2 => (any::<u8>(), 2000..6000usize).prop_map(|(b, n)| vec![b; n]),
        1 => (any::<u8>(), MAX_NODE..MAX_NODE * 2).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn map_strategy(max: usize) -> impl Strategy<Value = Map> {
    prop::collection::btree_map(key_strategy(), value_strategy(), 0..max)
}

fn edits_strategy(max: usize) -> impl Strategy<Value = BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
    prop::collection::btree_map(
        key_strategy(),
        prop::option::weighted(0.7, value_strategy()),
        0..max,
    )
}

/// Edits derived from the current contents: contiguous range deletes
/// (which shrink or merge nodes at every level), rewrites of existing keys,
/// and fresh keys. `seed` drives the choices so proptest can replay them.
fn derived_edits(
    m: &Map,
    seed: u64,
    fresh: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut rng = Rng(seed);
    let mut edits = fresh.clone();
    let keys: Vec<_> = m.keys().collect();
    if keys.is_empty() {
        return edits;
    }
    for _ in 0..rng.below(3) {
        let start = rng.below(keys.len() as u64) as usize;
        // Sometimes delete to the end, leaving one subtree alone at the top.
        let len = match rng.below(3) {
            0 => keys.len(),
            _ => rng.below(keys.len() as u64 / 2 + 1) as usize,
        };
        for k in keys.iter().skip(start).take(len) {
            edits.insert((*k).clone(), None);
        }
    }
    for _ in 0..rng.below(20) {
        let k = keys[rng.below(keys.len() as u64) as usize];
        let v = match rng.below(4) {
            0 => None,
            1 => Some(vec![7; MAX_NODE + 1]),
            _ => Some(vec![8; rng.below(40) as usize]),
        };
        edits.insert(k.clone(), v);
    }
    edits
}

fn entries(m: &Map) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn apply_model(m: &mut Map, edits: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
    for (k, v) in edits {
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
}

fn model_diff(a: &Map, b: &Map) -> Vec<DiffEntry> {
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| DiffEntry {
            key: k.clone(),
            before: a.get(k).cloned(),
            after: b.get(k).cloned(),
        })
        .collect()
}

fn tree_diff(s: &MemStore, a: Hash, b: Hash) -> Vec<DiffEntry> {
    diff(s, a, b).collect::<crate::store::Result<_>>().unwrap()
}

fn build_with(s: &mut MemStore, chunking: Chunking, m: &Map) -> Hash {
    let mut b = Builder::with_chunking(s, chunking);
    for (k, v) in m {
        b.push(k.clone(), v.clone()).unwrap();
    }
    b.finish().unwrap()
}

/// Every node of the tree at `root`.
pub(super) fn nodes(s: &MemStore, root: Hash) -> Vec<Node> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(h) = todo.pop() {
        let n = load(s, h).unwrap();
        if !n.is_leaf() {
            todo.extend((0..n.len()).map(|i| n.child(i)));
        }
        out.push(n);
    }
    out
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Direct build == build of a subset + the rest in random batches ==
    /// after deleting random keys and adding them back.
    #[test]
    fn history_independence(
        m in map_strategy(400),
        seed in any::<u64>(),
        batches in 1..5usize,
    ) {
        let mut s = MemStore::new();
        let want = build(&mut s, entries(&m)).unwrap();
        let mut rng = Rng(seed);
        let (base, rest): (Vec<_>, Vec<_>) = entries(&m).into_iter().partition(|_| rng.below(3) == 0);
        let mut root = build(&mut s, base).unwrap();
        for b in 0..batches {
            let batch = rest.iter().enumerate().filter(|(i, _)| i % batches == b)
                .map(|(_, (k, v))| (k.clone(), Some(v.clone())));
            root = apply_edits(&mut s, root, batch).unwrap();
        }
        prop_assert_eq!(root, want);
        let victims: Vec<_> = m.iter().filter(|_| rng.below(4) == 0).collect();
        let deleted = apply_edits(&mut s, root, victims.iter().map(|(k, _)| ((*k).clone(), None))).unwrap();
        let readded = apply_edits(&mut s, deleted, victims.iter().map(|(k, v)| ((*k).clone(), Some((*v).clone())))).unwrap();
        prop_assert_eq!(readded, want);
    }

    /// apply_edits(build(A), E) == build(model of A with E applied).
    #[test]
    fn edits_match_model(m in map_strategy(400), fresh in edits_strategy(60), seed in any::<u64>()) {
        let edits = derived_edits(&m, seed, &fresh);
        let mut s = MemStore::new();
        let root = build(&mut s, entries(&m)).unwrap();
        let new = apply_edits(&mut s, root, edits.clone()).unwrap();
        let mut model = m.clone();
        apply_model(&mut model, &edits);
        prop_assert_eq!(new, build(&mut s, entries(&model)).unwrap());
        prop_assert_eq!(count(&s, new).unwrap(), model.len() as u64);
    }

    /// diff of two trees equals the model diff, for related trees (B = A +
    /// edits, which shares subtrees) and in both directions.
    #[test]
    fn diff_matches_model(
        m in map_strategy(400),
        fresh in edits_strategy(30),
        seed in any::<u64>(),
        other in map_strategy(60),
    ) {
        let edits = derived_edits(&m, seed, &fresh);
        let mut s = MemStore::new();
        let a = build(&mut s, entries(&m)).unwrap();
        let mut model = m.clone();
        apply_model(&mut model, &edits);
        let b = apply_edits(&mut s, a, edits).unwrap();
        prop_assert_eq!(tree_diff(&s, a, b), model_diff(&m, &model));
        prop_assert_eq!(tree_diff(&s, b, a), model_diff(&model, &m));
        let c = build(&mut s, entries(&other)).unwrap();
        prop_assert_eq!(tree_diff(&s, a, c), model_diff(&m, &other));
        prop_assert!(tree_diff(&s, b, b).is_empty());
    }

    /// A tree keeps the rule it was cut by: edits to a `Flat` tree give the `Flat`
    /// build of the result (canonical, node for node), edits to an emptied tree
    /// grow by the current rule, and a diff across rules is still the model's.
    #[test]
    fn a_tree_keeps_its_rule(m in map_strategy(400), fresh in edits_strategy(60), seed in any::<u64>()) {
        let edits = derived_edits(&m, seed, &fresh);
        let mut s = MemStore::new();
        let flat = build_with(&mut s, Chunking::Flat, &m);
        let new = apply_edits(&mut s, flat, edits.clone()).unwrap();
        let mut model = m.clone();
        apply_model(&mut model, &edits);
        // The empty tree has no rule: edits to it grow by the current one.
        let rule = if m.is_empty() { Chunking::CURRENT } else { Chunking::Flat };
        prop_assert_eq!(new, build_with(&mut s, rule, &model));
        prop_assert!(nodes(&s, new).iter().all(|n| n.chunking() == rule || n.is_empty()));
        let current = build(&mut s, entries(&model)).unwrap();
        if rule == Chunking::Flat && !model.is_empty() {
            prop_assert_ne!(new, current, "the two rules give different trees");
            prop_assert!(nodes(&s, current).iter().all(|n| n.chunking() == Chunking::CURRENT));
        }
        prop_assert_eq!(tree_diff(&s, flat, current), model_diff(&m, &model));
        prop_assert_eq!(tree_diff(&s, current, flat), model_diff(&model, &m));
        // Emptied, then refilled: the empty tree has no rule of its own.
        let empty = apply_edits(&mut s, new, model.keys().map(|k| (k.clone(), None))).unwrap();
        prop_assert_eq!(empty, empty_root());
        let refilled = apply_edits(&mut s, empty, model.iter().map(|(k, v)| (k.clone(), Some(v.clone())))).unwrap();
        prop_assert_eq!(refilled, current);
    }

    /// iter returns A in order; get and iter_from agree with the model.
    #[test]
    fn iter_matches_model(m in map_strategy(400), probe in key_strategy()) {
        let mut s = MemStore::new();
        let root = build(&mut s, entries(&m)).unwrap();
        let got: Vec<_> = iter(&s, root).collect::<crate::store::Result<_>>().unwrap();
        prop_assert_eq!(&got, &entries(&m));
        for (k, v) in m.iter().take(50) {
            prop_assert_eq!(get(&s, root, k).unwrap(), Some(v.clone()));
        }
        prop_assert_eq!(get(&s, root, &probe).unwrap(), m.get(&probe).cloned());
        let from: Vec<_> = iter_from(&s, root, &probe).collect::<crate::store::Result<_>>().unwrap();
        let want: Vec<_> = m.range(probe.clone()..).map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(from, want);
    }
}

/// Deeper trees than proptest can afford: random batches of edits against a
/// 60k-entry tree, checked against a fresh build and the model diff.
#[test]
fn random_batches_on_a_deep_tree() {
    let mut rng = Rng(2024);
    let mut model: Map = (0..60_000u64)
        .map(|i| (key(i * 3), vec![b'a'; rng.below(40) as usize]))
        .collect();
    let mut s = MemStore::new();
    let mut root = build(&mut s, entries(&model)).unwrap();
    assert!(depth(&s, root).unwrap() >= 3);
    for round in 0..12 {
        let n = [1, 5, 50, 2000][round % 4];
        let mut edits = BTreeMap::new();
        for _ in 0..n {
            let k = key(rng.below(200_000));
            let v = match rng.below(10) {
                0..=2 => None,
                3 => Some(vec![b'z'; MAX_NODE + 100]),
                _ => Some(vec![b'b'; rng.below(60) as usize]),
            };
            edits.insert(k, v);
        }
        let before = model.clone();
        apply_model(&mut model, &edits);
        let new = apply_edits(&mut s, root, edits).unwrap();
        assert_eq!(
            new,
            build(&mut s, entries(&model)).unwrap(),
            "round {round}"
        );
        assert_eq!(
            tree_diff(&s, root, new),
            model_diff(&before, &model),
            "round {round}"
        );
        root = new;
    }
}
