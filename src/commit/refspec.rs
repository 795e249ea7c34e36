//! Ref syntax, parsed without touching storage: `name`, `HEAD`, a hash prefix, each
//! optionally followed by `~N` (N-th first-parent ancestor) and `^N` (N-th parent).
//! Resolving the base name is the caller's business (it knows branches and hashes).

use super::{CommitError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `~N`: follow the first parent N times.
    Ancestor(u32),
    /// `^N`: the N-th parent (1-based); `^0` is the commit itself.
    Parent(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSpec {
    pub base: String,
    pub steps: Vec<Step>,
}

/// Longest ancestry walk a ref may ask for; beyond this the ref is surely a mistake
/// and refusing it early keeps a typo from walking a huge history.
const MAX_STEP: u32 = 1_000_000;

pub fn parse_ref(input: &str) -> Result<RefSpec> {
    let bad = |why: &str| CommitError::BadRef(input.to_string(), why.to_string());
    let cut = input.find(['~', '^']).unwrap_or(input.len());
    let (base, mut rest) = input.split_at(cut);
    if base.is_empty() {
        return Err(bad("it names no branch, tag or commit before ~ or ^"));
    }
    if base.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("names may not contain spaces or control characters"));
    }
    let mut steps = Vec::new();
    while let Some(op) = rest.chars().next() {
        rest = &rest[1..];
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let n = if digits == 0 {
            1
        } else {
            rest[..digits]
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_STEP)
                .ok_or_else(|| bad("the number after ~ or ^ is too large"))?
        };
        rest = &rest[digits..];
        steps.push(match op {
            '~' => Step::Ancestor(n),
            '^' => Step::Parent(n),
            _ => return Err(bad("expected ~N or ^N after the name")),
        });
    }
    Ok(RefSpec {
        base: base.to_string(),
        steps,
    })
}

/// True when `s` may be an abbreviated commit hash (7 to 64 lowercase or uppercase hex digits).
pub fn looks_like_hash_prefix(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The smallest and largest 32-byte hashes that start with the hex `prefix`
/// (which `looks_like_hash_prefix`): the range to search for an abbreviated hash.
pub fn refspec_hash_prefix(prefix: &str) -> ([u8; 32], [u8; 32]) {
    let mut lo = [0u8; 32];
    let mut hi = [0xffu8; 32];
    for (i, c) in prefix.chars().take(64).enumerate() {
        let nib = c.to_digit(16).unwrap_or(0) as u8;
        let byte = i / 2;
        if i % 2 == 0 {
            lo[byte] = nib << 4;
            hi[byte] = (nib << 4) | 0x0f;
        } else {
            lo[byte] |= nib;
            hi[byte] = (hi[byte] & 0xf0) | nib;
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_ref("HEAD").unwrap().steps, vec![]);
        assert_eq!(parse_ref("HEAD~2").unwrap().steps, vec![Step::Ancestor(2)]);
        assert_eq!(
            parse_ref("main^").unwrap(),
            RefSpec {
                base: "main".into(),
                steps: vec![Step::Parent(1)]
            }
        );
        assert_eq!(
            parse_ref("origin/main~^2~").unwrap().steps,
            vec![Step::Ancestor(1), Step::Parent(2), Step::Ancestor(1)]
        );
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["", "~1", "^", "a b", "HEAD~x", "HEAD~99999999999"] {
            assert!(parse_ref(bad).is_err(), "{bad:?} should be refused");
        }
        // "HEAD~x" parses ~ then fails on 'x'.
        assert!(looks_like_hash_prefix("abcdef0"));
        assert!(!looks_like_hash_prefix("abcdef"));
        assert!(!looks_like_hash_prefix("main123"));
    }

    #[test]
    fn prefix_ranges() {
        let (lo, hi) = refspec_hash_prefix("abc");
        assert_eq!(
            (lo[0], lo[1], hi[0], hi[1], hi[2]),
            (0xab, 0xc0, 0xab, 0xcf, 0xff)
        );
        let (lo, hi) = refspec_hash_prefix("ab12");
        assert_eq!((lo[1], hi[1], lo[2], hi[2]), (0x12, 0x12, 0x00, 0xff));
    }
}
