//! The content address of a chunk: the 32-byte BLAKE3 digest of its bytes.
//!
//! Invariants: `Display`/`to_hex` is always 64 lowercase hex digits and
//! `from_hex` accepts exactly that shape (either case); serde encodes a hash as
//! 32 raw bytes (a msgpack `bin`), never as an array of integers, so encoded
//! objects stay compact and byte-stable.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;

/// BLAKE3 digest of a chunk's bytes.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash(pub [u8; 32]);

/// Hash `data` the way every chunk store names it.
pub fn hash_of(data: &[u8]) -> Hash {
    Hash(*blake3::hash(data).as_bytes())
}

impl Hash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `None` unless `s` is exactly 32 bytes.
    pub fn from_slice(s: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(s).ok().map(Hash)
    }

    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(DIGITS[(b >> 4) as usize] as char);
            s.push(DIGITS[(b & 15) as usize] as char);
        }
        s
    }

    /// Parses 64 hex digits (upper or lower case); anything else is `None`.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Hash(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Hash, D::Error> {
        d.deserialize_bytes(HashVisitor)
    }
}

struct HashVisitor;

impl<'de> Visitor<'de> for HashVisitor {
    type Value = Hash;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("32 bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Hash, E> {
        Hash::from_slice(v).ok_or_else(|| E::invalid_length(v.len(), &self))
    }

    // Tolerate formats that can only express bytes as a sequence.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Hash, A::Error> {
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<u8>()?.is_some() {
            return Err(de::Error::invalid_length(33, &self));
        }
        Ok(Hash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = hash_of(b"hello");
        let hex = h.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, hex.to_lowercase());
        assert_eq!(format!("{h}"), hex);
        assert_eq!(Hash::from_hex(&hex), Some(h));
        assert_eq!(Hash::from_hex(&hex.to_uppercase()), Some(h));
        assert_eq!(Hash::from_hex(&hex[1..]), None);
        assert_eq!(Hash::from_hex(&format!("{}g", &hex[1..])), None);
        // BLAKE3 test vector for the empty input.
        assert_eq!(
            hash_of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn slices() {
        let h = hash_of(b"x");
        assert_eq!(Hash::from_slice(h.as_bytes()), Some(h));
        assert_eq!(Hash::from_slice(&[0u8; 31]), None);
        assert_eq!(Hash::from_slice(&[0u8; 33]), None);
    }

    #[test]
    fn serde_is_raw_bytes() {
        let h = hash_of(b"serde");
        let enc = rmp_serde::to_vec(&h).unwrap();
        assert_eq!(enc.len(), 34, "bin8 header + 32 bytes");
        assert_eq!(&enc[..2], &[0xc4, 32]);
        assert_eq!(&enc[2..], h.as_bytes());
        let back: Hash = rmp_serde::from_slice(&enc).unwrap();
        assert_eq!(back, h);
        let short = rmp_serde::to_vec(&serde_bytes_like(&[1, 2, 3])).unwrap();
        assert!(rmp_serde::from_slice::<Hash>(&short).is_err());
    }

    // A msgpack bin of arbitrary length, to check the length validation.
    fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }
}
