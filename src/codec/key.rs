//! Memcomparable primary keys.
//!
//! ```text
//! key    := column+
//! column := 0x10 be64(i64 ^ 1<<63)            integer types (int2, int4, int8)
//!         | 0x20 escaped(bytes) 0x00 0x01      everything else, as text output
//! escaped: 0x00 -> 0x00 0xFF  (so the terminator 0x00 0x01 sorts before any
//!                              continuation and prefixes sort first)
//! ```
//! Integers compare numerically, text bytewise (C collation); other key types
//! (uuid, timestamptz in UTC, ...) get the order of their pinned text output, which
//! is deterministic everywhere and chronological/lexical for the common cases.

use super::{CodecError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Text,
}

const TAG_INT: u8 = 0x10;
const TAG_TEXT: u8 = 0x20;

pub fn encode_key(kinds: &[KeyKind], values: &[&str]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.iter().map(|v| v.len() + 3).sum());
    for (kind, v) in kinds.iter().zip(values) {
        match kind {
            KeyKind::Int => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| CodecError::BadInteger(v.to_string()))?;
                out.push(TAG_INT);
                out.extend_from_slice(&((n as u64) ^ (1 << 63)).to_be_bytes());
            }
            KeyKind::Text => {
                out.push(TAG_TEXT);
                for &b in v.as_bytes() {
                    out.push(b);
                    if b == 0 {
                        out.push(0xFF);
                    }
                }
                out.extend_from_slice(&[0x00, 0x01]);
            }
        }
    }
    Ok(out)
}

/// Decodes a key back into the text form of each column.
pub fn decode_key(kinds: &[KeyKind], mut bytes: &[u8]) -> Result<Vec<String>> {
    let bad = |why: &str| CodecError::BadKey(why.to_string());
    let mut out = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let (&tag, rest) = bytes.split_first().ok_or_else(|| bad("too short"))?;
        bytes = rest;
        match (kind, tag) {
            (KeyKind::Int, TAG_INT) => {
                let raw: [u8; 8] = bytes
                    .get(..8)
                    .ok_or_else(|| bad("truncated integer"))?
                    .try_into()
                    .expect("8 bytes");
                out.push((((u64::from_be_bytes(raw)) ^ (1 << 63)) as i64).to_string());
                bytes = &bytes[8..];
            }
            (KeyKind::Text, TAG_TEXT) => {
                let mut s = Vec::new();
                loop {
                    match bytes {
                        [0x00, 0x01, rest @ ..] => {
                            bytes = rest;
                            break;
                        }
                        [0x00, 0xFF, rest @ ..] => {
                            s.push(0);
                            bytes = rest;
                        }
                        [b, rest @ ..] if *b != 0 => {
                            s.push(*b);
                            bytes = rest;
                        }
                        _ => return Err(bad("unterminated text")),
                    }
                }
                out.push(String::from_utf8(s).map_err(|_| bad("text is not UTF-8"))?);
            }
            _ => return Err(bad("column tag does not match the key's schema")),
        }
    }
    if !bytes.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn int_order_is_numeric(a: i64, b: i64) {
            let ea = encode_key(&[KeyKind::Int], &[&a.to_string()]).unwrap();
            let eb = encode_key(&[KeyKind::Int], &[&b.to_string()]).unwrap();
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            prop_assert_eq!(decode_key(&[KeyKind::Int], &ea).unwrap(), vec![a.to_string()]);
        }

        #[test]
        fn composite_order_is_lexicographic(a: (String, i64), b: (String, i64)) {
            let k = [KeyKind::Text, KeyKind::Int];
            let ea = encode_key(&k, &[&a.0, &a.1.to_string()]).unwrap();
            let eb = encode_key(&k, &[&b.0, &b.1.to_string()]).unwrap();
            let sa = (a.0.as_bytes(), a.1);
            let sb = (b.0.as_bytes(), b.1);
            prop_assert_eq!(sa.cmp(&sb), ea.cmp(&eb));
            prop_assert_eq!(decode_key(&k, &ea).unwrap(), vec![a.0.clone(), a.1.to_string()]);
        }
    }

    #[test]
    fn nul_bytes_and_prefixes() {
        let k = [KeyKind::Text];
        let a = encode_key(&k, &["a"]).unwrap();
        let a0 = encode_key(&k, &["a\0"]).unwrap();
        let ab = encode_key(&k, &["ab"]).unwrap();
        assert!(a < a0 && a0 < ab);
        assert_eq!(decode_key(&k, &a0).unwrap(), vec!["a\0".to_string()]);
    }

    #[test]
    fn malformed_keys_are_errors() {
        let k = [KeyKind::Int];
        assert!(decode_key(&k, &[]).is_err());
        assert!(decode_key(&k, &[TAG_INT, 1, 2]).is_err());
        assert!(decode_key(&[KeyKind::Text], &[TAG_TEXT, b'a']).is_err());
        assert!(encode_key(&k, &["12x"]).is_err());
    }
}
