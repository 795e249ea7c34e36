//! Refs as compare-and-swap operations, and ref resolution, over any ref storage.
//!
//! The glue (`src/pg/refs.rs`) implements [`Refs`] over the table `vc.refs`; tests here
//! use [`MemRefs`]. A branch moves only by [`move_branch`], a compare-and-swap that
//! returns what moved ([`Moved`]): the caller hands the move to replication, so refs
//! know nothing of who else cares.

use crate::commit::{
    looks_like_hash_prefix, nth_ancestor, parse_ref, refspec_hash_prefix, Commit, CommitError,
};
use crate::store::{ChunkStore, Hash};
use std::collections::BTreeMap;

/// Why a ref operation failed (the glue maps each to a SQLSTATE and a hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// `HEAD` was asked for, but its branch has no commit yet.
    Unborn { branch: String },
    /// Nothing of that name: no branch, tag, or commit with that prefix.
    Unknown { spec: String },
    /// Several commits start with the prefix.
    Ambiguous { spec: String, prefix: String },
    /// The compare-and-swap lost: the branch is not where the caller last saw it.
    Moved { branch: String },
}

impl std::fmt::Display for RefError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefError::Unborn { branch } => {
                write!(f, "HEAD has no commits yet (branch \"{branch}\" is unborn)")
            }
            RefError::Unknown { spec } => {
                write!(f, "ref \"{spec}\" does not name a branch, tag or commit")
            }
            RefError::Ambiguous { spec, prefix } => write!(
                f,
                "ref \"{spec}\" is ambiguous: several commits start with {prefix}"
            ),
            RefError::Moved { branch } => {
                write!(
                    f,
                    "branch \"{branch}\" was moved by a concurrent transaction"
                )
            }
        }
    }
}

/// Storage of refs. Implementations make `swap` atomic.
pub trait Refs {
    type Error: From<RefError> + From<CommitError>;
    /// The branch HEAD names.
    fn head_branch(&self) -> Result<String, Self::Error>;
    /// A branch's or tag's commit.
    fn get(&self, name: &str) -> Result<Option<Hash>, Self::Error>;
    /// Sets branch `name` to `new` if it is at `old` (absent when `old` is None);
    /// returns whether it did.
    fn swap(&mut self, name: &str, old: Option<Hash>, new: Hash) -> Result<bool, Self::Error>;
    /// Up to `limit` commit hashes in `lo..=hi` (hashes starting with a prefix).
    fn commits_between(
        &self,
        lo: &[u8; 32],
        hi: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<Hash>, Self::Error>;
}

/// A branch that moved, from `old` (None: created) to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "hand the move to replication"]
pub struct Moved {
    pub branch: String,
    pub old: Option<Hash>,
    pub new: Hash,
}

/// Moves branch `name` from `old` to `new` (creates it when `old` is None). A branch
/// that is not at `old` is never overwritten: the caller gets [`RefError::Moved`].
pub fn move_branch<R: Refs + ?Sized>(
    refs: &mut R,
    name: &str,
    old: Option<Hash>,
    new: Hash,
) -> Result<Moved, R::Error> {
    if !refs.swap(name, old, new)? {
        return Err(RefError::Moved {
            branch: name.to_string(),
        }
        .into());
    }
    Ok(Moved {
        branch: name.to_string(),
        old,
        new,
    })
}

/// The commit at the tip of HEAD's branch, if it has one.
pub fn head_commit<R: Refs + ?Sized>(refs: &R) -> Result<Option<Hash>, R::Error> {
    refs.get(&refs.head_branch()?)
}

/// Resolves a ref (`main`, `HEAD~2`, `HEAD^2`, a hash prefix of 7+ digits) to a commit.
/// A name is a branch or tag before it is a hash prefix.
pub fn resolve<R: Refs + ?Sized>(
    refs: &R,
    store: &dyn ChunkStore,
    spec: &str,
) -> Result<Hash, R::Error> {
    let parsed = parse_ref(spec)?;
    let base = if parsed.base == "HEAD" {
        let branch = refs.head_branch()?;
        match refs.get(&branch)? {
            Some(h) => h,
            None => return Err(RefError::Unborn { branch }.into()),
        }
    } else if let Some(h) = refs.get(&parsed.base)? {
        h
    } else if looks_like_hash_prefix(&parsed.base) {
        let prefix = parsed.base.to_ascii_lowercase();
        let (lo, hi) = refspec_hash_prefix(&prefix);
        match refs.commits_between(&lo, &hi, 2)?.as_slice() {
            [] => {
                return Err(RefError::Unknown {
                    spec: spec.to_string(),
                }
                .into())
            }
            [h] => {
                Commit::read(store, h)?;
                *h
            }
            _ => {
                return Err(RefError::Ambiguous {
                    spec: spec.to_string(),
                    prefix,
                }
                .into())
            }
        }
    } else {
        return Err(RefError::Unknown {
            spec: spec.to_string(),
        }
        .into());
    };
    Ok(nth_ancestor(store, base, &parsed.steps, spec)?)
}

/// Refs in memory, for tests of the layers above.
#[derive(Debug, Clone, Default)]
pub struct MemRefs {
    pub head: String,
    pub branches: BTreeMap<String, Hash>,
    /// Every commit hash known (what `commits_between` searches).
    pub commits: Vec<Hash>,
}

/// Errors of [`MemRefs`].
#[derive(Debug)]
pub enum MemRefsError {
    Ref(RefError),
    Commit(CommitError),
}

impl From<RefError> for MemRefsError {
    fn from(e: RefError) -> Self {
        MemRefsError::Ref(e)
    }
}

impl From<CommitError> for MemRefsError {
    fn from(e: CommitError) -> Self {
        MemRefsError::Commit(e)
    }
}

impl Refs for MemRefs {
    type Error = MemRefsError;
    fn head_branch(&self) -> Result<String, MemRefsError> {
        Ok(self.head.clone())
    }
    fn get(&self, name: &str) -> Result<Option<Hash>, MemRefsError> {
        Ok(self.branches.get(name).copied())
    }
    fn swap(&mut self, name: &str, old: Option<Hash>, new: Hash) -> Result<bool, MemRefsError> {
        if self.branches.get(name).copied() != old {
            return Ok(false);
        }
        self.branches.insert(name.to_string(), new);
        Ok(true)
    }
    fn commits_between(
        &self,
        lo: &[u8; 32],
        hi: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<Hash>, MemRefsError> {
        let mut found: Vec<Hash> = self
            .commits
            .iter()
            .filter(|h| h.as_bytes() >= lo && h.as_bytes() <= hi)
            .copied()
            .collect();
        found.sort();
        found.dedup();
        found.truncate(limit);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{hash_of, MemStore};
    use proptest::prelude::*;

    fn commit(store: &mut MemStore, parents: Vec<Hash>, msg: &str) -> Hash {
        Commit {
            root: hash_of(b"root"),
            parents,
            author: "t".into(),
            message: msg.into(),
            timestamp_us: 0,
        }
        .write(store)
        .unwrap()
    }

    fn setup() -> (MemStore, MemRefs, Vec<Hash>) {
        let mut store = MemStore::default();
        let a = commit(&mut store, vec![], "a");
        let b = commit(&mut store, vec![a], "b");
        let c = commit(&mut store, vec![b], "c");
        let refs = MemRefs {
            head: "main".into(),
            branches: [("main".to_string(), c)].into_iter().collect(),
            commits: vec![a, b, c],
        };
        (store, refs, vec![a, b, c])
    }

    #[test]
    fn resolves_names_ancestors_and_prefixes() {
        let (store, refs, h) = setup();
        assert_eq!(resolve(&refs, &store, "HEAD").unwrap(), h[2]);
        assert_eq!(resolve(&refs, &store, "main~2").unwrap(), h[0]);
        assert_eq!(resolve(&refs, &store, "HEAD^").unwrap(), h[1]);
        let hex = h[1].to_hex();
        assert_eq!(resolve(&refs, &store, &hex[..12]).unwrap(), h[1]);
        assert_eq!(
            resolve(&refs, &store, &hex[..12].to_ascii_uppercase()).unwrap(),
            h[1]
        );
        assert!(matches!(
            resolve(&refs, &store, "nope"),
            Err(MemRefsError::Ref(RefError::Unknown { .. }))
        ));
        assert!(matches!(
            resolve(&refs, &store, "HEAD~3"),
            Err(MemRefsError::Commit(CommitError::NoAncestor(..)))
        ));
    }

    #[test]
    fn unborn_head_and_ambiguous_prefix() {
        let (store, mut refs, _) = setup();
        refs.head = "empty".into();
        assert!(matches!(
            resolve(&refs, &store, "HEAD"),
            Err(MemRefsError::Ref(RefError::Unborn { .. }))
        ));
        // Two hashes sharing a 7-digit prefix: ambiguous, never a silent pick.
        let mut x = [0u8; 32];
        x[0] = 0xab;
        x[1] = 0xcd;
        x[2] = 0xef;
        x[3] = 0x10;
        let mut y = x;
        y[31] = 1;
        refs.commits.push(Hash::from_slice(&x).unwrap());
        refs.commits.push(Hash::from_slice(&y).unwrap());
        assert!(matches!(
            resolve(&refs, &store, "abcdef1"),
            Err(MemRefsError::Ref(RefError::Ambiguous { .. }))
        ));
    }

    #[test]
    fn a_branch_name_wins_over_a_hash_prefix() {
        let (store, mut refs, h) = setup();
        refs.branches.insert("deadbeef".into(), h[0]);
        assert_eq!(resolve(&refs, &store, "deadbeef").unwrap(), h[0]);
    }

    proptest! {
        /// Any interleaving of moves from stale or current views: a move succeeds
        /// exactly when the caller saw the branch where it is, the branch then is where
        /// the winner put it, and every success reports the old and new position.
        #[test]
        fn compare_and_swap_never_loses_a_move(ops in proptest::collection::vec((0usize..3, 0u8..4, any::<bool>()), 1..60)) {
            let mut refs = MemRefs { head: "main".into(), ..Default::default() };
            let names = ["main", "dev", "x"];
            let hashes: Vec<Hash> = (0..4u8).map(|i| hash_of(&[i])).collect();
            for (n, to, stale) in ops {
                let name = names[n];
                let now = refs.branches.get(name).copied();
                // A stale caller believes the branch is somewhere else.
                let seen = if stale { Some(hash_of(b"elsewhere")) } else { now };
                let r = move_branch(&mut refs, name, seen, hashes[to as usize]);
                if seen == now {
                    let moved = r.unwrap();
                    prop_assert_eq!(moved.old, now);
                    prop_assert_eq!(moved.new, hashes[to as usize]);
                    prop_assert_eq!(refs.branches.get(name).copied(), Some(hashes[to as usize]));
                } else {
                    let lost = matches!(r, Err(MemRefsError::Ref(RefError::Moved { .. })));
                    prop_assert!(lost);
                    prop_assert_eq!(refs.branches.get(name).copied(), now);
                }
            }
        }
    }
}

/// Why `name` cannot be a new branch name, or `None` if it can. Names are what ref
/// syntax can say unambiguously, and look like nothing else: ASCII letters, digits,
/// `. _ - /` (no lookalike Unicode, no `~ ^ :`); not `HEAD`, not under `fenced/` or
/// `tags/` (a remote's manifest names tags `tags/<name>` beside the branches); no
/// empty or `.`-leading path segments (`/` separates them); and not seven or more
/// hex digits alone, which read as a commit hash prefix.
pub fn branch_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 200 {
        return Some("a branch name has 1 to 200 bytes");
    }
    if name == "HEAD" || name == "WORKING" {
        return Some("HEAD and WORKING are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
    {
        return Some("a branch name is made of ASCII letters, digits, . _ - and /");
    }
    if name.starts_with("fenced/") {
        return Some("fenced/ is where a fenced primary keeps its commits");
    }
    if name.starts_with("tags/") {
        return Some("tags/ is where a remote keeps tags");
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg.starts_with('.') || seg.ends_with(".lock"))
    {
        return Some(
            "each /-separated part of a branch name must be non-empty and not start with a dot",
        );
    }
    if name.len() >= 7 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some("a name of seven or more hex digits would read as a commit hash");
    }
    None
}

#[cfg(test)]
mod name_tests {
    use super::branch_name_problem as p;

    #[test]
    fn branch_names() {
        for ok in ["main", "feature/x", "release-1.2", "v2", "abc123", "a_b"] {
            assert_eq!(p(ok), None, "{ok}");
        }
        for bad in [
            "",
            "HEAD",
            "a b",
            "a~1",
            "x^",
            "a:b",
            "what?",
            "a*",
            "[x",
            "a\\b",
            "/a",
            "a/",
            "a//b",
            ".hidden",
            "a/.b",
            "x.lock",
            "deadbeef",
            "0123456",
            "fenced/3/main",
            "tags/v1",
            "main\u{200b}",
            "ma\u{202e}in",
            "caf\u{e9}",
        ] {
            assert!(p(bad).is_some(), "{bad:?} accepted");
        }
        assert!(p(&"x".repeat(201)).is_some());
    }
}
