//! Property test: two clients make random small commits and fetch, merge and push
//! in a random order against one remote. Whatever the interleaving, the remote
//! stays closed under references, a successful push moves the head, a refused one
//! changes nothing, and a fresh clone receives exactly the head's closure.

use super::*;
use crate::remote::push::is_ancestor;
use crate::remote::RemoteError;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Commit on the client's head, setting row `row` to `value`.
    Commit {
        row: i64,
        value: u8,
    },
    Push,
    /// Fetch main and merge it into the client's head.
    Pull,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..40i64, any::<u8>()).prop_map(|(row, value)| Op::Commit { row, value }),
        2 => Just(Op::Push),
        2 => Just(Op::Pull),
    ]
}

struct Client {
    store: MemStore,
    head: Option<Hash>,
    rows: Rows,
}

fn apply(remote: &Remote<FileStore>, c: &mut Client, op: &Op, n: usize) {
    match op {
        Op::Commit { row, value } => {
            // Some rows are large, so blobs are pushed and fetched too.
            let v = if value % 5 == 0 {
                "b".repeat(1500 + *value as usize)
            } else {
                value.to_string()
            };
            c.rows.insert(*row, v);
            c.head = Some(commit(
                &mut c.store,
                &c.rows,
                c.head.into_iter().collect(),
                &n.to_string(),
            ));
        }
        Op::Push => {
            let Some(head) = c.head else { return };
            let before = remote.list_refs().unwrap().get("main").copied();
            match remote.push(&c.store, "main", head, false, None, &mut quiet()) {
                Ok(_) => assert_eq!(remote.list_refs().unwrap()["main"], head),
                Err(RemoteError::NonFastForward { .. }) => {
                    let old = before.expect("an empty branch is always a fast-forward");
                    assert!(!is_ancestor(&c.store, old, head).unwrap());
                    assert_eq!(remote.list_refs().unwrap().get("main").copied(), before);
                }
                Err(e) => panic!("push failed: {e}"),
            }
        }
        Op::Pull => {
            let theirs = match remote.fetch(&mut c.store, "main", &mut quiet()) {
                Ok(f) => f.head,
                Err(RemoteError::NoSuchBranch { .. }) => return,
                Err(e) => panic!("fetch failed: {e}"),
            };
            // Panics unless the fetch brought everything. `c.rows` stays ours even
            // on a fast-forward: later commits only need to differ.
            closure(&c.store, theirs);
            c.head = match c.head {
                None => Some(theirs),
                Some(mine) if is_ancestor(&c.store, mine, theirs).unwrap() => Some(theirs),
                Some(mine) if is_ancestor(&c.store, theirs, mine).unwrap() => Some(mine),
                // A merge commit keeping our rows: enough to make the next push a fast-forward.
                Some(mine) => Some(commit(
                    &mut c.store,
                    &c.rows,
                    vec![mine, theirs],
                    &format!("merge {n}"),
                )),
            };
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn two_clients_keep_the_remote_closed(ops in prop::collection::vec((0..2usize, op()), 1..24)) {
        let (_d, remote) = temp_remote();
        let mut clients: Vec<Client> = (0..2)
            .map(|_| Client { store: MemStore::new(), head: None, rows: Rows::new() })
            .collect();
        for (n, (who, op)) in ops.iter().enumerate() {
            apply(&remote, &mut clients[*who], op, n);
        }
        assert_closed(&remote);
        if let Some(&head) = remote.list_refs().unwrap().get("main") {
            let mut clone = MemStore::new();
            let f = remote.fetch(&mut clone, "main", &mut quiet()).unwrap();
            prop_assert_eq!(f.head, head);
            let want = clients.iter().find(|c| c.store.has(&head).unwrap()).map(|c| closure(&c.store, head));
            prop_assert_eq!(Some(closure(&clone, head)), want);
            prop_assert_eq!(clone.len(), f.chunks as usize);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// A push that diffs against the remote's head sends every chunk the remote
    /// lacks (a fetch gets the whole closure) and little else: no more than the
    /// chunks of the new closure missing from the old one, plus one node per level
    /// when the tree's depth changed.
    #[test]
    fn a_diff_push_sends_what_is_missing_and_little_more(
        n in 1..3000i64,
        changes in prop::collection::vec((0..4000i64, prop::option::of(0..3u8)), 1..60),
    ) {
        let (_d, remote) = temp_remote();
        let mut local = MemStore::new();
        let mut rows = rows(n);
        let c1 = commit(&mut local, &rows, vec![], "one");
        remote.push(&local, "main", c1, false, None, &mut quiet()).unwrap();
        for (id, v) in &changes {
            match v {
                Some(v) => rows.insert(*id, format!("value {v} of {id}").repeat(1 + (*v as usize) * 200)),
                None => rows.remove(id),
            };
        }
        let c2 = commit(&mut local, &rows, vec![c1], "two");
        let out = remote.push(&local, "main", c2, false, None, &mut quiet()).unwrap();
        let (old, new) = (closure(&local, c1), closure(&local, c2));
        let missing = new.keys().filter(|h| !old.contains_key(h)).count() as u64;
        prop_assert!(out.chunks >= missing, "sent {} of {} missing", out.chunks, missing);
        prop_assert!(out.chunks <= missing + 4, "sent {} for {} missing", out.chunks, missing);
        let mut clone = MemStore::new();
        remote.fetch(&mut clone, "main", &mut quiet()).unwrap();
        prop_assert_eq!(closure(&clone, c2), new);
    }
}
