//! Read side: point lookups and streaming cursors over one tree.
//!
//! A `Cursor` holds only the path from the root to its position (one node per
//! level), never the whole tree. Its position is either a leaf entry or the
//! start of a not-yet-loaded subtree (a "head"), so callers such as `diff`
//! can skip a subtree without reading it. Invariant after every move: each
//! frame's index is in bounds, or the stack is empty (exhausted).

use super::node::{load, load_at, Node};
use crate::store::{ChunkStore, Hash, Result};

struct Frame {
    node: Node,
    idx: usize,
}

/// Where a cursor stands.
pub(crate) enum Pos<'a> {
    Done,
    /// At the start of the unloaded subtree rooted at `hash`, at `level`.
    Head {
        level: u8,
    },
    Entry {
        key: &'a [u8],
        value: &'a [u8],
    },
}

pub(crate) struct Cursor<'s, S: ?Sized> {
    store: &'s S,
    stack: Vec<Frame>,
}

impl<'s, S: ChunkStore + ?Sized> Cursor<'s, S> {
    /// Positioned at the first entry (or head) of the tree at `root`.
    pub fn new(store: &'s S, root: Hash) -> Result<Self> {
        let node = load(store, root)?;
        let mut c = Cursor {
            store,
            stack: vec![Frame { node, idx: 0 }],
        };
        c.normalize();
        Ok(c)
    }

    /// Positioned at the first entry with key >= `start`.
    pub fn seek(store: &'s S, root: Hash, start: &[u8]) -> Result<Self> {
        let mut c = Cursor {
            store,
            stack: Vec::new(),
        };
        let mut node = load(store, root)?;
        loop {
            let idx = node.search(start);
            let next = (!node.is_leaf() && idx < node.len()).then(|| node.child(idx));
            let level = node.level();
            c.stack.push(Frame { node, idx });
            match next {
                Some(child) => node = load_at(store, child, level - 1)?,
                None => break,
            }
        }
        c.normalize();
        Ok(c)
    }

    pub fn pos(&self) -> Pos<'_> {
        match self.stack.last() {
            None => Pos::Done,
            Some(f) if f.node.is_leaf() => Pos::Entry {
                key: f.node.key(f.idx),
                value: f.node.value(f.idx),
            },
            Some(f) => Pos::Head {
                level: f.node.level() - 1,
            },
        }
    }

    /// Load the head subtree's root node; a no-op unless at a head.
    pub fn descend(&mut self) -> Result<()> {
        if let Some(f) = self.stack.last() {
            if !f.node.is_leaf() {
                let node = load_at(self.store, f.node.child(f.idx), f.node.level() - 1)?;
                self.stack.push(Frame { node, idx: 0 });
                self.normalize();
            }
        }
        Ok(())
    }

    /// Move past the current entry, or past the whole head subtree.
    pub fn advance(&mut self) {
        if let Some(f) = self.stack.last_mut() {
            f.idx += 1;
            self.normalize();
        }
    }

    /// Skip the level-`level` subtree the cursor is at the start of (see
    /// `starts`): drop the frames inside it and advance its parent.
    pub fn skip_level(&mut self, level: u8) {
        while self.stack.last().is_some_and(|f| f.node.level() <= level) {
            self.stack.pop();
        }
        self.advance();
    }

    /// Subtrees the cursor is at the very start of, as (level, hash), lowest
    /// level first: the head (if any), then each loaded node whose frames
    /// from it down all sit at index 0.
    pub fn starts(&self, out: &mut Vec<(u8, Hash)>) {
        out.clear();
        let Some(last) = self.stack.last() else {
            return;
        };
        if !last.node.is_leaf() {
            out.push((last.node.level() - 1, last.node.child(last.idx)));
        }
        for f in self.stack.iter().rev() {
            if f.idx != 0 {
                break;
            }
            out.push((f.node.level(), f.node.hash()));
        }
    }

    /// Pop exhausted frames, advancing each parent past the finished child.
    fn normalize(&mut self) {
        while let Some(f) = self.stack.last() {
            if f.idx < f.node.len() {
                return;
            }
            self.stack.pop();
            if let Some(p) = self.stack.last_mut() {
                p.idx += 1;
            }
        }
    }
}

/// Streaming iterator over `(key, value)` in key order.
pub struct Iter<'s, S: ?Sized> {
    state: IterState<'s, S>,
}

enum IterState<'s, S: ?Sized> {
    Start {
        store: &'s S,
        root: Hash,
        from: Option<Vec<u8>>,
    },
    Running(Cursor<'s, S>),
    Done,
}

impl<S: ChunkStore + ?Sized> Iterator for Iter<'_, S> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let step = self.step();
        if !matches!(step, Some(Ok(_))) {
            self.state = IterState::Done; // fuse after the end or an error
        }
        step
    }
}

impl<S: ChunkStore + ?Sized> Iter<'_, S> {
    fn step(&mut self) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        if let IterState::Start { store, root, from } = &self.state {
            let c = match from {
                None => Cursor::new(*store, *root),
                Some(k) => Cursor::seek(*store, *root, k),
            };
            match c {
                Ok(c) => self.state = IterState::Running(c),
                Err(e) => return Some(Err(e)),
            }
        }
        let IterState::Running(c) = &mut self.state else {
            return None;
        };
        loop {
            let entry = match c.pos() {
                Pos::Done => return None,
                Pos::Head { .. } => None,
                Pos::Entry { key, value } => Some((key.to_vec(), value.to_vec())),
            };
            match entry {
                Some(e) => {
                    c.advance();
                    return Some(Ok(e));
                }
                None => {
                    if let Err(e) = c.descend() {
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}

/// All entries of the tree at `root`, in key order, one path in memory.
pub fn iter<S: ChunkStore + ?Sized>(store: &S, root: Hash) -> Iter<'_, S> {
    Iter {
        state: IterState::Start {
            store,
            root,
            from: None,
        },
    }
}

/// Entries with key >= `start`, in key order.
pub fn iter_from<'s, S: ChunkStore + ?Sized>(
    store: &'s S,
    root: Hash,
    start: &[u8],
) -> Iter<'s, S> {
    Iter {
        state: IterState::Start {
            store,
            root,
            from: Some(start.to_vec()),
        },
    }
}

/// Value stored under `key`, reading one node per level.
pub fn get<S: ChunkStore + ?Sized>(store: &S, root: Hash, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut node = load(store, root)?;
    loop {
        let idx = node.search(key);
        if idx == node.len() {
            return Ok(None);
        }
        if node.is_leaf() {
            return Ok((node.key(idx) == key).then(|| node.value(idx).to_vec()));
        }
        node = load_at(store, node.child(idx), node.level() - 1)?;
    }
}

/// Number of entries; reads every node (O(tree)), holding only a work list.
pub fn count<S: ChunkStore + ?Sized>(store: &S, root: Hash) -> Result<u64> {
    let mut total = 0u64;
    let mut todo = vec![(root, None)];
    while let Some((h, level)) = todo.pop() {
        let node = match level {
            None => load(store, h)?,
            Some(l) => load_at(store, h, l)?,
        };
        if node.is_leaf() {
            total += node.len() as u64;
        } else {
            todo.extend((0..node.len()).map(|i| (node.child(i), Some(node.level() - 1))));
        }
    }
    Ok(total)
}

/// Number of levels: 1 for a tree that is a single leaf (including empty).
pub fn depth<S: ChunkStore + ?Sized>(store: &S, root: Hash) -> Result<usize> {
    Ok(load(store, root)?.level() as usize + 1)
}
