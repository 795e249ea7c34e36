//! The replication role and fencing epoch as a pure state machine.
//!
//! A server is `None` (not replicating), `Primary`, `Standby` or `Fenced`. Every
//! server that pushes to a remote carries the epoch it believes in; the remote's
//! manifest holds the current epoch, raised by compare-and-swap when a standby is
//! promoted. The glue (`src/pg/replication`) reads the stored role and epoch and the
//! remote's epoch, asks here what to do, and carries out the answer (store a role,
//! bump the remote's epoch by CAS, fence). Nothing here touches storage.
//!
//! Invariants (property-tested below, against a model of several servers sharing one
//! remote):
//! - at most one server is a primary whose epoch equals the remote's: a push is only
//!   accepted at the remote's epoch, so there is never more than one writer;
//! - epochs only grow, on the remote and in every server;
//! - a promotion succeeds only from a standby that followed the remote's current epoch
//!   (so it never silently fences a primary it has not seen);
//!   of two standbys racing from the same epoch, only the CAS winner becomes primary;
//! - a fenced server never pushes again until it rejoins (as a standby).

/// A server's replication role.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    None,
    Primary,
    Standby,
    Fenced,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Fenced => "fenced",
        }
    }
}

/// What a primary must do, given the remote's epoch, before it may push.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PrimaryStep {
    /// Push at this epoch.
    Push(u64),
    /// First push ever: adopt the remote's epoch (store it), then push at it.
    Adopt(u64),
    /// Another server was promoted: fence this one at the remote's epoch.
    Fence(u64),
    /// The remote went back in epochs (replaced, or restored from an old copy): refuse.
    EpochWentBack { remote: u64, ours: u64 },
}

/// A primary (with `ours`, None before its first push) facing a remote at `remote`.
pub fn primary_step(ours: Option<u64>, remote: u64) -> PrimaryStep {
    match ours {
        None => PrimaryStep::Adopt(remote),
        Some(e) if remote > e => PrimaryStep::Fence(remote),
        Some(e) if remote < e => PrimaryStep::EpochWentBack { remote, ours: e },
        Some(e) => PrimaryStep::Push(e),
    }
}

/// Why a promotion is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromoteRefused {
    AlreadyPrimary,
    Fenced,
    NotReplicating,
    /// The standby never synced: it cannot tell whether someone else was promoted.
    NotSynced,
    /// The remote's epoch moved since the standby last synced: another server was
    /// promoted meanwhile.
    AnotherPromoted {
        followed: u64,
        remote: u64,
    },
}

/// Whether a server in `role` may be promoted at all (before looking at the remote).
pub fn may_promote(role: Role) -> Result<(), PromoteRefused> {
    match role {
        Role::Standby => Ok(()),
        Role::Primary => Err(PromoteRefused::AlreadyPrimary),
        Role::Fenced => Err(PromoteRefused::Fenced),
        Role::None => Err(PromoteRefused::NotReplicating),
    }
}

/// A promotion of a server in `role` that followed epoch `followed`, when the remote is
/// at `remote`: the epoch to raise the remote to (by CAS from `remote`).
pub fn promote(role: Role, followed: Option<u64>, remote: u64) -> Result<u64, PromoteRefused> {
    may_promote(role)?;
    let Some(followed) = followed else {
        return Err(PromoteRefused::NotSynced);
    };
    if followed != remote {
        return Err(PromoteRefused::AnotherPromoted { followed, remote });
    }
    Ok(remote + 1)
}

/// May a server in `role` push (a manual `vc.push` included)?
pub fn may_push(role: Role) -> bool {
    !matches!(role, Role::Fenced | Role::Standby)
}

/// May clients write tracked tables on a server in `role`?
pub fn may_write(role: Role) -> bool {
    !matches!(role, Role::Fenced | Role::Standby)
}

/// Whether `name` is one of the branches `vc.replicate_heads` entry `pattern` names:
/// the name itself, or with `*` standing for any run of characters (`/` included;
/// `release/*`, `*`). Patterns never name a fenced primary's `fenced/` branches.
pub fn head_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    if name.starts_with("fenced/") && !pattern.starts_with("fenced/") {
        return false;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The followed branches among `names` (the local branches, or the remote's): each
/// literal entry of `heads`, whether present or not, and every name a pattern matches;
/// sorted, without duplicates.
pub fn followed<'a>(heads: &[String], names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = heads.iter().filter(|h| !h.contains('*')).cloned().collect();
    for n in names {
        if heads.iter().any(|h| h.contains('*') && head_matches(h, n)) {
            out.push(n.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A remote (epoch, compare-and-swap) and servers around it.
    #[derive(Clone, Debug)]
    struct Model {
        remote: u64,
        servers: Vec<(Role, Option<u64>)>,
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Server i pushes (a primary's round or commit).
        Push(usize),
        /// Server i syncs as a standby (records the remote's epoch).
        Sync(usize),
        /// Server i asks to promote; the CAS is applied at once or, with `delayed`,
        /// after another server's turn (two promotions racing).
        Promote(usize, Option<usize>),
        /// Server i rejoins as a standby.
        Rejoin(usize),
    }

    fn op(n: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..n).prop_map(Op::Push),
            (0..n).prop_map(Op::Sync),
            ((0..n), proptest::option::of(0..n)).prop_map(|(i, j)| Op::Promote(i, j)),
            (0..n).prop_map(Op::Rejoin),
        ]
    }

    impl Model {
        fn push(&mut self, i: usize) {
            let (role, ours) = self.servers[i];
            if !may_push(role) || role != Role::Primary {
                return;
            }
            match primary_step(ours, self.remote) {
                PrimaryStep::Push(e) => {
                    assert_eq!(e, self.remote, "a push is at the remote's epoch")
                }
                PrimaryStep::Adopt(e) => self.servers[i].1 = Some(e),
                PrimaryStep::Fence(e) => self.servers[i] = (Role::Fenced, Some(e)),
                PrimaryStep::EpochWentBack { .. } => panic!("the remote's epoch never goes back"),
            }
        }

        fn sync(&mut self, i: usize) {
            if self.servers[i].0 == Role::Standby {
                self.servers[i].1 = Some(self.remote);
            }
        }

        /// The check, then (maybe after `other`'s turn) the CAS from the epoch checked.
        fn promote(&mut self, i: usize, other: Option<usize>) {
            let (role, followed) = self.servers[i];
            let Ok(next) = promote(role, followed, self.remote) else {
                return;
            };
            let expected = self.remote;
            if let Some(j) = other.filter(|&j| j != i) {
                self.promote(j, None);
            }
            if self.remote == expected {
                // A promotion knows the primary it replaces: the standby followed the
                // epoch it raises (never fencing a primary it has not seen).
                assert_eq!(
                    followed,
                    Some(expected),
                    "promoted without following the remote"
                );
                assert_eq!(next, expected + 1);
                self.remote = next;
                self.servers[i] = (Role::Primary, Some(next));
            }
        }

        fn rejoin(&mut self, i: usize) {
            if self.servers[i].0 != Role::Primary || self.servers[i].1 != Some(self.remote) {
                self.servers[i] = (Role::Standby, Some(self.remote));
            }
        }

        fn check(&self, before: &Model) {
            assert!(
                self.remote >= before.remote,
                "the remote's epoch never drops"
            );
            for (now, was) in self.servers.iter().zip(&before.servers) {
                if let (Some(a), Some(b)) = (now.1, was.1) {
                    assert!(a >= b, "a server's epoch never drops");
                }
            }
            let writers = self
                .servers
                .iter()
                .filter(|(r, e)| *r == Role::Primary && *e == Some(self.remote))
                .count();
            assert!(
                writers <= 1,
                "two primaries at the remote's epoch: {self:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_two_writers_and_epochs_only_grow(ops in proptest::collection::vec(op(4), 1..60)) {
            // One primary that has pushed at epoch 0, three standbys following it.
            let mut m = Model {
                remote: 0,
                servers: vec![
                    (Role::Primary, Some(0)),
                    (Role::Standby, Some(0)),
                    (Role::Standby, Some(0)),
                    (Role::Standby, None),
                ],
            };
            for o in ops {
                let before = m.clone();
                match o {
                    Op::Push(i) => m.push(i),
                    Op::Sync(i) => m.sync(i),
                    Op::Promote(i, j) => m.promote(i, j),
                    Op::Rejoin(i) => m.rejoin(i),
                }
                m.check(&before);
            }
        }
    }

    #[test]
    fn promotion_rules() {
        assert_eq!(promote(Role::Standby, Some(3), 3), Ok(4));
        assert_eq!(
            promote(Role::Standby, Some(3), 4),
            Err(PromoteRefused::AnotherPromoted {
                followed: 3,
                remote: 4
            })
        );
        assert_eq!(
            promote(Role::Standby, None, 0),
            Err(PromoteRefused::NotSynced)
        );
        assert_eq!(
            promote(Role::Primary, Some(1), 1),
            Err(PromoteRefused::AlreadyPrimary)
        );
        assert_eq!(
            promote(Role::Fenced, Some(1), 2),
            Err(PromoteRefused::Fenced)
        );
        assert_eq!(
            promote(Role::None, None, 0),
            Err(PromoteRefused::NotReplicating)
        );
    }

    #[test]
    fn primary_steps() {
        assert_eq!(primary_step(None, 5), PrimaryStep::Adopt(5));
        assert_eq!(primary_step(Some(5), 5), PrimaryStep::Push(5));
        assert_eq!(primary_step(Some(5), 6), PrimaryStep::Fence(6));
        assert_eq!(
            primary_step(Some(5), 4),
            PrimaryStep::EpochWentBack { remote: 4, ours: 5 }
        );
        assert!(!may_push(Role::Fenced) && !may_push(Role::Standby) && may_push(Role::Primary));
        assert!(!may_write(Role::Fenced) && !may_write(Role::Standby) && may_write(Role::None));
    }

    #[test]
    fn replicate_heads_patterns() {
        use super::{followed, head_matches as m};
        assert!(m("main", "main"));
        assert!(!m("main", "main2"));
        assert!(m("release/*", "release/1.0"));
        assert!(m("release/*", "release/a/b"));
        assert!(!m("release/*", "releases/1"));
        assert!(m("*", "anything/at/all"));
        assert!(!m("*", "fenced/3/main"));
        assert!(m("fenced/*", "fenced/3/main"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXcYb"));
        assert!(!m("ab*ba", "aba"));
        let heads = vec!["main".to_string(), "release/*".to_string()];
        assert_eq!(
            followed(&heads, ["release/2", "feature", "release/1", "main"]),
            ["main", "release/1", "release/2"]
        );
        assert_eq!(followed(&heads, []), ["main"]);
    }
}
