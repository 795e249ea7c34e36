//! Keys of tables without a primary key (docs/SCHEMA.md): a row is named by its
//! content, and identical rows by their number among the copies.
//!
//! ```text
//! key := blake3(encoded row)[0..16] be32(copy)      copy = 0 .. count-1
//! ```
//! The tree is a function of the multiset of rows: n identical rows are the n entries
//! `(h, 0) .. (h, n-1)`, each holding the row. A diff of two such trees lists the
//! copies added or removed; a row whose content changed is one copy removed and one
//! added (there is no identity to follow).

use super::{CodecError, Result};

/// Bytes of the row hash that lead a keyless key.
pub const ROW_HASH_LEN: usize = 16;
/// Length of a keyless key.
pub const KEYLESS_KEY_LEN: usize = ROW_HASH_LEN + 4;

/// The key of copy `copy` of the row whose encoding is `row`.
pub fn keyless_key(row: &[u8], copy: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(KEYLESS_KEY_LEN);
    k.extend_from_slice(&blake3::hash(row).as_bytes()[..ROW_HASH_LEN]);
    k.extend_from_slice(&copy.to_be_bytes());
    k
}

/// The row-hash part of a keyless key (what identical rows share).
pub fn keyless_row_hash(key: &[u8]) -> Result<&[u8]> {
    if key.len() != KEYLESS_KEY_LEN {
        return Err(CodecError::BadKey(format!(
            "a key of a table without a primary key has {KEYLESS_KEY_LEN} bytes, not {}",
            key.len()
        )));
    }
    Ok(&key[..ROW_HASH_LEN])
}

/// Numbers the copies of rows in a list sorted by key whose keys all say copy 0:
/// the i-th of a run of identical keys becomes copy i.
pub fn number_copies(sorted: &mut [(Vec<u8>, Vec<u8>)]) {
    let mut run = 0u32;
    for i in 0..sorted.len() {
        run = match i {
            0 => 0,
            _ if sorted[i - 1].0[..ROW_HASH_LEN] == sorted[i].0[..ROW_HASH_LEN] => run + 1,
            _ => 0,
        };
        sorted[i].0[ROW_HASH_LEN..].copy_from_slice(&run.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_numbered_per_row() {
        let a = b"row a".to_vec();
        let b = b"row b".to_vec();
        let mut rows = vec![
            (keyless_key(&a, 0), a.clone()),
            (keyless_key(&b, 0), b.clone()),
            (keyless_key(&a, 0), a.clone()),
            (keyless_key(&a, 0), a.clone()),
        ];
        rows.sort();
        number_copies(&mut rows);
        let mut want = vec![
            (keyless_key(&a, 0), a.clone()),
            (keyless_key(&a, 1), a.clone()),
            (keyless_key(&a, 2), a.clone()),
            (keyless_key(&b, 0), b.clone()),
        ];
        want.sort();
        assert_eq!(rows, want);
        // Keys are distinct and sorted after numbering.
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn copy_order_follows_the_number() {
        let r = b"x".to_vec();
        assert!(keyless_key(&r, 1) < keyless_key(&r, 2));
        assert!(keyless_key(&r, 255) < keyless_key(&r, 256));
        assert_eq!(
            keyless_row_hash(&keyless_key(&r, 7)).unwrap(),
            &keyless_key(&r, 0)[..16]
        );
        assert!(keyless_row_hash(b"short").is_err());
    }
}
