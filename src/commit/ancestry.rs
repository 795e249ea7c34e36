//! Walking the commit DAG: `log` (every ancestor once, children before parents) and
//! `nth_ancestor` (the `~N` / `^N` steps of a ref).

use super::{Commit, CommitError, Result, Step};
use crate::store::{ChunkStore, Hash};
use std::collections::{BinaryHeap, HashMap};

/// Every commit reachable from `head`, newest first, each once, in a topological
/// order: a commit is listed only after every listed commit that has it as a parent.
/// Ties (independent lines of a merge) go newest timestamp first, then by hash so the
/// order is the same on every cluster.
pub fn log(store: &dyn ChunkStore, head: &Hash) -> Result<Vec<(Hash, Commit)>> {
    let mut commits: HashMap<Hash, Commit> = HashMap::new();
    let mut children: HashMap<Hash, usize> = HashMap::new();
    let mut todo = vec![*head];
    while let Some(h) = todo.pop() {
        if commits.contains_key(&h) {
            continue;
        }
        let c = Commit::read(store, &h)?;
        for p in &c.parents {
            *children.entry(*p).or_insert(0) += 1;
            todo.push(*p);
        }
        commits.insert(h, c);
    }
    let mut ready = BinaryHeap::new();
    ready.push((commits[head].timestamp_us, *head));
    let mut out = Vec::with_capacity(commits.len());
    while let Some((_, h)) = ready.pop() {
        let c = commits.remove(&h).expect("each commit becomes ready once");
        for p in &c.parents {
            let n = children.get_mut(p).expect("counted above");
            *n -= 1;
            if *n == 0 {
                ready.push((commits[p].timestamp_us, *p));
            }
        }
        out.push((h, c));
    }
    Ok(out)
}

/// Applies `~N` / `^N` steps to `start`. `spec` is only used in error messages.
pub fn nth_ancestor(
    store: &dyn ChunkStore,
    start: Hash,
    steps: &[Step],
    spec: &str,
) -> Result<Hash> {
    let mut at = start;
    for step in steps {
        let (times, index) = match *step {
            Step::Ancestor(n) => (n, 1),
            Step::Parent(0) => continue,
            Step::Parent(n) => (1, n as usize),
        };
        for _ in 0..times {
            let c = Commit::read(store, &at)?;
            at = *c
                .parents
                .get(index - 1)
                .ok_or_else(|| CommitError::NoAncestor(spec.to_string(), at))?;
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn mk(s: &mut MemStore, parents: Vec<Hash>, ts: i64, msg: &str) -> Hash {
        Commit {
            root: crate::store::hash_of(b"r"),
            parents,
            author: "t".into(),
            message: msg.into(),
            timestamp_us: ts,
        }
        .write(s)
        .unwrap()
    }

    #[test]
    fn log_is_topological_and_lists_each_once() {
        let mut s = MemStore::default();
        let a = mk(&mut s, vec![], 1, "a");
        let b = mk(&mut s, vec![a], 2, "b");
        // A side branch with a *later* timestamp than the merge's first parent line,
        // and one with a clock that went backwards: topology wins over clocks.
        let c = mk(&mut s, vec![a], 10, "c");
        let m = mk(&mut s, vec![b, c], 5, "m");
        let d = mk(&mut s, vec![m], 3, "d");
        let order: Vec<Hash> = log(&s, &d).unwrap().into_iter().map(|x| x.0).collect();
        assert_eq!(order.len(), 5);
        let pos = |h: Hash| order.iter().position(|x| *x == h).unwrap();
        assert_eq!(pos(d), 0);
        assert_eq!(pos(m), 1);
        assert!(pos(c) < pos(a) && pos(b) < pos(a));
        assert_eq!(pos(a), 4);
    }

    #[test]
    fn ancestor_steps() {
        let mut s = MemStore::default();
        let a = mk(&mut s, vec![], 1, "a");
        let b = mk(&mut s, vec![a], 2, "b");
        let c = mk(&mut s, vec![a], 3, "c");
        let m = mk(&mut s, vec![b, c], 4, "m");
        assert_eq!(nth_ancestor(&s, m, &[Step::Ancestor(1)], "x").unwrap(), b);
        assert_eq!(nth_ancestor(&s, m, &[Step::Parent(2)], "x").unwrap(), c);
        assert_eq!(nth_ancestor(&s, m, &[Step::Ancestor(2)], "x").unwrap(), a);
        assert_eq!(nth_ancestor(&s, m, &[Step::Parent(0)], "x").unwrap(), m);
        assert!(matches!(
            nth_ancestor(&s, m, &[Step::Ancestor(3)], "x"),
            Err(CommitError::NoAncestor(..))
        ));
        assert!(nth_ancestor(&s, m, &[Step::Parent(3)], "x").is_err());
    }
}
