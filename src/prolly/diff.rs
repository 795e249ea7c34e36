//! `diff`: the entries that differ between two trees, in key order.
//!
//! Two cursors are merged like sorted lists. Before each step, if both
//! cursors stand at the start of subtrees with the same hash (checking the
//! highest level first), both skip them unread: equal hashes mean equal
//! contents, and both cursors being at a subtree start means everything
//! before it is already compared. Otherwise the cursor at an unloaded head
//! descends (the higher one first) until both show leaf entries to compare.
//! Identical roots cost zero reads; aligned trees cost O(changes x depth).

use super::cursor::{Cursor, Pos};
use crate::store::{ChunkStore, Hash, Result};
use std::cmp::Ordering;

/// One differing key. `before` is absent for additions, `after` for removals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffEntry {
    pub key: Vec<u8>,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

pub struct Diff<'s, S: ?Sized> {
    store: &'s S,
    state: State<'s, S>,
    starts_a: Vec<(u8, Hash)>,
    starts_b: Vec<(u8, Hash)>,
}

enum State<'s, S: ?Sized> {
    Start(Hash, Hash),
    Running(Cursor<'s, S>, Cursor<'s, S>),
    Done,
}

/// Changes that turn the tree at `from` into the tree at `to`.
pub fn diff<S: ChunkStore + ?Sized>(store: &S, from: Hash, to: Hash) -> Diff<'_, S> {
    Diff {
        store,
        state: if from == to {
            State::Done
        } else {
            State::Start(from, to)
        },
        starts_a: Vec::new(),
        starts_b: Vec::new(),
    }
}

impl<S: ChunkStore + ?Sized> Iterator for Diff<'_, S> {
    type Item = Result<DiffEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(e) => {
                self.state = State::Done; // fuse after an error
                Some(Err(e))
            }
        }
    }
}

/// What to do next, decided while the cursors are borrowed.
enum Act {
    Skip(u8),
    Descend { a: bool, b: bool },
    Emit { entry: DiffEntry, a: bool, b: bool },
    Advance,
    Finished,
}

impl<S: ChunkStore + ?Sized> Diff<'_, S> {
    fn step(&mut self) -> Result<Option<DiffEntry>> {
        if let State::Start(from, to) = self.state {
            let a = Cursor::new(self.store, from)?;
            let b = Cursor::new(self.store, to)?;
            self.state = State::Running(a, b);
        }
        let State::Running(a, b) = &mut self.state else {
            return Ok(None);
        };
        loop {
            a.starts(&mut self.starts_a);
            b.starts(&mut self.starts_b);
            let act = match highest_common(&self.starts_a, &self.starts_b) {
                Some(level) => Act::Skip(level),
                None => decide(a.pos(), b.pos()),
            };
            match act {
                Act::Skip(level) => {
                    a.skip_level(level);
                    b.skip_level(level);
                }
                Act::Descend { a: da, b: db } => {
                    if da {
                        a.descend()?;
                    }
                    if db {
                        b.descend()?;
                    }
                }
                Act::Emit {
                    entry,
                    a: aa,
                    b: ab,
                } => {
                    if aa {
                        a.advance();
                    }
                    if ab {
                        b.advance();
                    }
                    return Ok(Some(entry));
                }
                Act::Advance => {
                    a.advance();
                    b.advance();
                }
                Act::Finished => return Ok(None),
            }
        }
    }
}

/// Highest level at which both cursors start subtrees with equal hashes.
fn highest_common(a: &[(u8, Hash)], b: &[(u8, Hash)]) -> Option<u8> {
    a.iter()
        .rev()
        .find(|x| b.iter().any(|y| y == *x))
        .map(|&(level, _)| level)
}

fn decide(a: Pos<'_>, b: Pos<'_>) -> Act {
    let removed = |key: &[u8], value: &[u8]| DiffEntry {
        key: key.to_vec(),
        before: Some(value.to_vec()),
        after: None,
    };
    let added = |key: &[u8], value: &[u8]| DiffEntry {
        key: key.to_vec(),
        before: None,
        after: Some(value.to_vec()),
    };
    match (a, b) {
        (Pos::Done, Pos::Done) => Act::Finished,
        (Pos::Head { level: la }, Pos::Head { level: lb }) => Act::Descend {
            a: la >= lb,
            b: lb >= la,
        },
        (Pos::Head { .. }, _) => Act::Descend { a: true, b: false },
        (_, Pos::Head { .. }) => Act::Descend { a: false, b: true },
        (Pos::Entry { key, value }, Pos::Done) => Act::Emit {
            entry: removed(key, value),
            a: true,
            b: false,
        },
        (Pos::Done, Pos::Entry { key, value }) => Act::Emit {
            entry: added(key, value),
            a: false,
            b: true,
        },
        (Pos::Entry { key: ka, value: va }, Pos::Entry { key: kb, value: vb }) => {
            match ka.cmp(kb) {
                Ordering::Less => Act::Emit {
                    entry: removed(ka, va),
                    a: true,
                    b: false,
                },
                Ordering::Greater => Act::Emit {
                    entry: added(kb, vb),
                    a: false,
                    b: true,
                },
                Ordering::Equal if va == vb => Act::Advance,
                Ordering::Equal => Act::Emit {
                    entry: DiffEntry {
                        key: ka.to_vec(),
                        before: Some(va.to_vec()),
                        after: Some(vb.to_vec()),
                    },
                    a: true,
                    b: true,
                },
            }
        }
    }
}
