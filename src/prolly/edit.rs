//! `apply_edits`: produce the tree for (old contents + sorted edits),
//! reusing every untouched subtree that still lines up with the chunker.
//!
//! The old tree is walked top-down, left to right, feeding a `Builder`.
//! Child `i` of a node covers `(key[i-1], key[i]]`; the last child on the
//! rightmost path covers everything above too, so edits past the last key
//! land in the last leaf. A child with no edit in its range is pushed whole
//! (no read) when the builder's levels up to the child's level are all at a
//! cut; then the chunkers would have reproduced it byte for byte. Otherwise an
//! internal child is descended and a leaf is merged entry by entry with the
//! edits. The result is exactly `build` of the new entry set, whatever the
//! batching of edits, and a point edit costs O(depth) reads and writes.

use super::build::Builder;
use super::chunker::Chunking;
use super::node::{decode_at, load, load_at, Node};
use super::ProllyError;
use crate::store::{Chunk, ChunkStore, Hash, StoreError};
use std::collections::{HashMap, VecDeque};

/// An edit: `Some(value)` upserts, `None` deletes (absent keys are ignored).
pub type Edit = (Vec<u8>, Option<Vec<u8>>);

/// Apply edits, strictly ascending by key, to the tree at `root`.
/// Returns `ProllyError::Unsorted` if the edits are not strictly ascending.
pub fn apply_edits<S, I>(store: &mut S, root: Hash, edits: I) -> Result<Hash, ProllyError>
where
    S: ChunkStore + ?Sized,
    I: IntoIterator<Item = Edit>,
{
    let mut edits = Edits::new(edits.into_iter());
    if edits.peek_key(None)?.is_none() {
        return Ok(root);
    }
    let root_node = load(&*store, root)?;
    // The tree keeps the rule it was cut by (a tree never mixes two); the empty
    // tree has none, and grows by the current one.
    let chunking = if root_node.is_empty() {
        Chunking::CURRENT
    } else {
        root_node.chunking()
    };
    let mut b = Builder::with_chunking(store, chunking);
    walk(&mut b, &root_node, None, &mut edits)?;
    b.finish()
}

/// Feed the part of `node`'s subtree at keys `<= hi` (`None`: no bound)
/// merged with the edits in that range into the builder.
fn walk<S: ChunkStore + ?Sized, I: Iterator<Item = Edit>>(
    b: &mut Builder<'_, S>,
    node: &Node,
    hi: Option<&[u8]>,
    edits: &mut Edits<I>,
) -> Result<(), ProllyError> {
    if node.is_leaf() {
        return merge_leaf(b, node, hi, edits);
    }
    let child_level = node.level() - 1;
    // The leaves the edits below will descend into, read with one `get_many`.
    let mut ahead = if child_level == 0 {
        touched_leaves(b.store(), node, hi, edits)?
    } else {
        HashMap::new()
    };
    for i in 0..node.len() {
        let key = node.key(i);
        let child_hi = child_bound(node, i, hi);
        let touched = edits.peek_key(child_hi)?.is_some();
        if !touched && b.at_cut(child_level) {
            b.push_subtree(child_level, key.to_vec(), node.child(i))?;
            continue;
        }
        let child = match ahead.remove(&node.child(i)) {
            Some(c) => decode_at(node.child(i), c, child_level)?,
            None => load_at(b.store(), node.child(i), child_level)?,
        };
        if child.chunking() != b.chunking() {
            // Only a damaged or forged tree mixes rules; editing it would give a
            // tree that depends on its history.
            return Err(StoreError::corrupt(
                child.hash(),
                "node cut by another rule than its parent's",
            )
            .into());
        }
        walk(b, &child, child_hi, edits)?;
    }
    Ok(())
}

/// The upper bound of child `i` of `node`, which covers keys `<= hi`: child `i` covers
/// `(key[i-1], key[i]]`, and the last child on the rightmost path everything above.
fn child_bound<'n>(node: &'n Node, i: usize, hi: Option<&[u8]>) -> Option<&'n [u8]> {
    if i == node.len() - 1 && hi.is_none() {
        None
    } else {
        Some(node.key(i))
    }
}

/// The leaves of the level-1 `node` (covering keys `<= hi`) that the next edits fall
/// in, read with one `get_many`: a spread change of many rows reads its leaves in a
/// few batched reads instead of one read per leaf. Leaves the walk reads besides
/// (an untouched one after a moved boundary) are read one by one as before.
fn touched_leaves<S: ChunkStore + ?Sized, I: Iterator<Item = Edit>>(
    store: &S,
    node: &Node,
    hi: Option<&[u8]>,
    edits: &mut Edits<I>,
) -> Result<HashMap<Hash, Chunk>, ProllyError> {
    let pending = edits.lookahead(hi)?;
    let mut wanted = Vec::new();
    let mut j = 0;
    for i in 0..node.len() {
        if j == pending.len() {
            break;
        }
        let child_hi = child_bound(node, i, hi);
        let mut touched = false;
        while j < pending.len() && child_hi.is_none_or(|h| pending[j].0.as_slice() <= h) {
            touched = true;
            j += 1;
        }
        if touched {
            wanted.push(node.child(i));
        }
    }
    if wanted.len() < 2 {
        return Ok(HashMap::new());
    }
    let got = store.get_many(&wanted)?;
    Ok(wanted
        .into_iter()
        .zip(got)
        .filter_map(|(h, c)| c.map(|c| (h, c)))
        .collect())
}

fn merge_leaf<S: ChunkStore + ?Sized, I: Iterator<Item = Edit>>(
    b: &mut Builder<'_, S>,
    leaf: &Node,
    hi: Option<&[u8]>,
    edits: &mut Edits<I>,
) -> Result<(), ProllyError> {
    let mut i = 0;
    loop {
        let take_edit = match edits.peek_key(hi)? {
            None if i == leaf.len() => return Ok(()),
            None => false,
            Some(_) if i == leaf.len() => true,
            Some(ek) => {
                let ord = leaf.key(i).cmp(ek);
                if ord.is_eq() {
                    i += 1; // the edit replaces (or deletes) this entry
                }
                ord.is_ge()
            }
        };
        if take_edit {
            if let (key, Some(value)) = edits.next_unchecked() {
                b.push(key, value)?;
            }
        } else {
            b.push(leaf.key(i).to_vec(), leaf.value(i).to_vec())?;
            i += 1;
        }
    }
}

/// Most edits `walk` looks ahead at to batch the reads of the leaves they touch.
const LOOKAHEAD: usize = 4096;

/// The edit stream with lookahead and an order check.
struct Edits<I> {
    inner: I,
    ahead: VecDeque<Edit>,
    /// Key of the last edit taken from `inner`.
    last: Option<Vec<u8>>,
    index: usize,
}

impl<I: Iterator<Item = Edit>> Edits<I> {
    fn new(inner: I) -> Self {
        Edits {
            inner,
            ahead: VecDeque::new(),
            last: None,
            index: 0,
        }
    }

    /// Takes one more edit from `inner` into the lookahead; false when none is left.
    fn pull(&mut self) -> Result<bool, ProllyError> {
        let Some(e) = self.inner.next() else {
            return Ok(false);
        };
        if self.last.as_deref().is_some_and(|p| p >= e.0.as_slice()) {
            return Err(ProllyError::Unsorted { index: self.index });
        }
        self.index += 1;
        self.last = Some(e.0.clone());
        self.ahead.push_back(e);
        Ok(true)
    }

    /// Key of the next edit if it is `<= hi` (any key when `hi` is `None`).
    fn peek_key(&mut self, hi: Option<&[u8]>) -> Result<Option<&[u8]>, ProllyError> {
        if self.ahead.is_empty() {
            self.pull()?;
        }
        Ok(match self.ahead.front() {
            Some((k, _)) if hi.is_none_or(|h| k.as_slice() <= h) => Some(k.as_slice()),
            _ => None,
        })
    }

    /// The next edits, up to `LOOKAHEAD` of them, at least those `<= hi` among them
    /// (and perhaps one past it).
    fn lookahead(&mut self, hi: Option<&[u8]>) -> Result<&VecDeque<Edit>, ProllyError> {
        while self.ahead.len() < LOOKAHEAD
            && self
                .ahead
                .back()
                .is_none_or(|(k, _)| hi.is_none_or(|h| k.as_slice() <= h))
        {
            if !self.pull()? {
                break;
            }
        }
        Ok(&self.ahead)
    }

    /// Take the edit last reported by `peek_key`.
    fn next_unchecked(&mut self) -> Edit {
        self.ahead
            .pop_front()
            .expect("next_unchecked after a successful peek")
    }
}
