//! Backend-agnostic conformance tests for `ChunkStore` implementations.
//!
//! Compiled unconditionally (not `cfg(test)`) so the Postgres-backed store can
//! run it from a `#[pg_test]`. Each check gets a fresh store from `make` and
//! panics with a message naming the violated contract.

use super::{hash_of, ChunkStore, StoreError};

/// Run every check against stores produced by `make`.
pub fn run_all<S: ChunkStore>(make: &mut dyn FnMut() -> S) {
    round_trip(&mut make());
    idempotent_put(&mut make());
    missing_chunk(&mut make());
    has_and_has_many(&mut make());
    get_many_in_order(&mut make());
    empty_chunk(&mut make());
    large_chunk(&mut make());
    many_chunks(&mut make());
}

/// Deterministic filler bytes so failures are reproducible.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn round_trip<S: ChunkStore>(s: &mut S) {
    let data = b"pgvc chunk round trip".to_vec();
    let h = s.put(data.clone()).expect("put failed");
    assert_eq!(
        h,
        hash_of(&data),
        "put must return the BLAKE3 hash of the data"
    );
    let got = s.get(&h).expect("get after put failed");
    assert_eq!(&*got, &data[..], "get must return exactly the bytes put");
}

fn idempotent_put<S: ChunkStore>(s: &mut S) {
    let data = pseudo_random(1000, 1);
    let a = s.put(data.clone()).expect("first put failed");
    let b = s
        .put(data.clone())
        .expect("second put of the same data failed");
    assert_eq!(a, b, "putting the same bytes twice must give the same hash");
    assert_eq!(&*s.get(&a).expect("get failed"), &data[..]);
}

fn missing_chunk<S: ChunkStore>(s: &mut S) {
    s.put(b"present".to_vec()).expect("put failed");
    let absent = hash_of(b"never stored");
    match s.get(&absent) {
        Err(StoreError::Missing(h)) => assert_eq!(h, absent, "Missing must name the hash"),
        Err(e) => panic!("get of an absent chunk must be Missing, got error {e}"),
        Ok(_) => panic!("get of an absent chunk must fail"),
    }
    assert!(
        !s.has(&absent).expect("has failed"),
        "has(absent) must be false"
    );
}

fn has_and_has_many<S: ChunkStore>(s: &mut S) {
    let a = s.put(b"a".to_vec()).expect("put failed");
    let b = s.put(b"b".to_vec()).expect("put failed");
    let x = hash_of(b"x");
    assert!(
        s.has(&a).expect("has failed"),
        "has must see a stored chunk"
    );
    let got = s.has_many(&[a, x, b, x, a]).expect("has_many failed");
    assert_eq!(
        got,
        vec![true, false, true, false, true],
        "has_many keeps input order"
    );
    assert!(s.has_many(&[]).expect("has_many failed").is_empty());
}

fn get_many_in_order<S: ChunkStore>(s: &mut S) {
    let datas: Vec<Vec<u8>> = (0..700u64)
        .map(|i| pseudo_random(50 + i as usize, i))
        .collect();
    let mut hs: Vec<_> = datas
        .iter()
        .map(|d| s.put(d.clone()).expect("put failed"))
        .collect();
    let absent = hash_of(b"never stored");
    hs.insert(3, absent);
    hs.push(hs[0]);
    let got = s.get_many(&hs).expect("get_many failed");
    assert_eq!(got.len(), hs.len(), "get_many answers every hash");
    assert!(
        got[3].is_none(),
        "get_many answers None for an absent chunk"
    );
    let mut expect: Vec<&Vec<u8>> = datas.iter().collect();
    expect.insert(3, &datas[0]); // placeholder for the absent one, skipped below
    expect.push(&datas[0]);
    for (i, (c, d)) in got.iter().zip(expect).enumerate() {
        if i == 3 {
            continue;
        }
        let c = c
            .as_ref()
            .unwrap_or_else(|| panic!("get_many lost chunk {i}"));
        assert_eq!(&c[..], &d[..], "get_many keeps input order (chunk {i})");
    }
    assert!(s.get_many(&[]).expect("get_many failed").is_empty());
}

fn empty_chunk<S: ChunkStore>(s: &mut S) {
    let h = s.put(Vec::new()).expect("put of the empty chunk failed");
    assert_eq!(h, hash_of(b""), "empty chunk hash");
    assert!(s.get(&h).expect("get of the empty chunk failed").is_empty());
}

fn large_chunk<S: ChunkStore>(s: &mut S) {
    let data = pseudo_random(5 << 20, 2);
    let h = s.put(data.clone()).expect("put of a 5 MB chunk failed");
    let got = s.get(&h).expect("get of a 5 MB chunk failed");
    assert!(*got == data[..], "5 MB chunk must round trip byte for byte");
}

fn many_chunks<S: ChunkStore>(s: &mut S) {
    let datas: Vec<Vec<u8>> = (0..2000u64)
        .map(|i| pseudo_random(1 + (i as usize % 300), i + 10))
        .collect();
    let hashes: Vec<_> = datas
        .iter()
        .map(|d| s.put(d.clone()).expect("put failed"))
        .collect();
    let mut distinct = hashes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        datas.len(),
        "distinct data must get distinct hashes"
    );
    for (h, d) in hashes.iter().zip(&datas) {
        assert_eq!(&*s.get(h).expect("get failed"), &d[..], "chunk {h} changed");
    }
    let all = s.has_many(&hashes).expect("has_many failed");
    assert!(
        all.iter().all(|&b| b),
        "has_many must see every stored chunk"
    );
}
