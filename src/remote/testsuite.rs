//! Backend-agnostic conformance checks for `ObjectStore` implementations.
//!
//! Compiled unconditionally (not `cfg(test)`) so the S3 store can run the same
//! checks against a real bucket later. Each check gets a fresh, empty store from
//! `make` and panics with a message naming the violated contract.

use super::object::{ObjectStore, Version};
use super::RemoteError;

/// Run every check against stores produced by `make`.
pub fn run_all(make: &mut dyn FnMut() -> Box<dyn ObjectStore>) {
    put_get(&*make());
    ranges(&*make());
    stream(&*make());
    stream_then_put(&*make());
    abandoned_stream(&*make());
    cas_create(&*make());
    cas_replace(&*make());
    list_and_delete(&*make());
}

fn put_get(s: &dyn ObjectStore) {
    assert!(s.get("a/b").expect("get of an absent key").is_none());
    s.put("a/b", b"hello").expect("put");
    let (data, v1) = s.get("a/b").expect("get").expect("present after put");
    assert_eq!(data, b"hello", "get returns exactly the bytes put");
    s.put("a/b", b"hello").expect("put is idempotent");
    s.put("empty", b"").expect("put of an empty object");
    assert_eq!(s.get("empty").expect("get").expect("present").0, b"");
    let (_, v2) = s.get("a/b").expect("get").expect("present");
    assert_eq!(v1, v2, "rewriting the same bytes keeps the object readable");
    assert!(
        s.put("../escape", b"x").is_err(),
        "keys may not leave the store"
    );
    assert!(
        s.put(".hidden", b"x").is_err(),
        "keys may not start with a dot"
    );
}

fn ranges(s: &dyn ObjectStore) {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    s.put("r", &data).expect("put");
    assert_eq!(s.get_range("r", 0, 10).expect("range"), &data[..10]);
    assert_eq!(
        s.get_range("r", 5000, 300).expect("range"),
        &data[5000..5300]
    );
    assert_eq!(
        s.get_range("r", 9990, 100).expect("range past the end"),
        &data[9990..],
        "a range past the end is cut short"
    );
    assert!(s
        .get_range("r", 20_000, 5)
        .expect("range beyond the end")
        .is_empty());
    match s.get_range("missing", 0, 1) {
        Err(RemoteError::NotFound { key, url }) => {
            assert_eq!(key, "missing", "NotFound names the key");
            assert_eq!(url, s.url(), "NotFound names the remote");
        }
        other => panic!("a range of a missing object must be NotFound, got {other:?}"),
    }
}

fn stream(s: &dyn ObjectStore) {
    let mut w = s.put_stream().expect("put_stream");
    for i in 0..100u32 {
        w.write_all(&i.to_be_bytes()).expect("write_all");
    }
    assert_eq!(w.written(), 400);
    assert!(
        s.list("").expect("list").is_empty(),
        "nothing is visible before finish"
    );
    w.finish("big/obj").expect("finish");
    let (data, _) = s
        .get("big/obj")
        .expect("get")
        .expect("visible after finish");
    let want: Vec<u8> = (0..100u32).flat_map(|i| i.to_be_bytes()).collect();
    assert_eq!(data, want, "streamed object round trips");
    assert_eq!(s.list("").expect("list"), vec!["big/obj".to_string()]);
}

fn stream_then_put(s: &dyn ObjectStore) {
    let mut w = s.put_stream().expect("put_stream");
    w.write_all(b"the pack").expect("write_all");
    w.finish_then_put("p/x.pack", "p/x.idx", b"its index")
        .expect("finish_then_put");
    assert_eq!(
        s.get("p/x.pack").expect("get").expect("first").0,
        b"the pack"
    );
    assert_eq!(
        s.get("p/x.idx").expect("get").expect("next").0,
        b"its index"
    );
    let mut keys = s.list("").expect("list");
    keys.sort();
    assert_eq!(
        keys,
        vec!["p/x.idx".to_string(), "p/x.pack".to_string()],
        "no debris"
    );
    // Into different directories too, one of them new.
    let mut w = s.put_stream().expect("put_stream");
    w.write_all(b"a").expect("write_all");
    w.finish_then_put("q/a", "r/s/b", b"b")
        .expect("finish_then_put");
    assert_eq!(s.get("q/a").expect("get").expect("first").0, b"a");
    assert_eq!(s.get("r/s/b").expect("get").expect("next").0, b"b");
}

fn abandoned_stream(s: &dyn ObjectStore) {
    let mut w = s.put_stream().expect("put_stream");
    w.write_all(b"half an object").expect("write_all");
    drop(w);
    assert!(
        s.list("").expect("list").is_empty(),
        "an abandoned stream leaves no object"
    );
}

fn cas_create(s: &dyn ObjectStore) {
    assert!(
        s.put_if("m", b"one", None).expect("create"),
        "create-if-absent on an absent key succeeds"
    );
    assert!(
        !s.put_if("m", b"two", None).expect("create"),
        "create-if-absent on a present key fails"
    );
    assert_eq!(
        s.get("m").expect("get").expect("present").0,
        b"one",
        "a failed CAS writes nothing"
    );
}

fn cas_replace(s: &dyn ObjectStore) {
    assert!(s.put_if("m", b"one", None).expect("create"));
    let (_, v1) = s.get("m").expect("get").expect("present");
    assert!(
        s.put_if("m", b"two", Some(&v1)).expect("replace"),
        "replace at the current version succeeds"
    );
    let (data, v2) = s.get("m").expect("get").expect("present");
    assert_eq!(data, b"two");
    assert_ne!(v1, v2, "different content, different version");
    assert!(
        !s.put_if("m", b"three", Some(&v1)).expect("replace"),
        "replace at a stale version fails"
    );
    let bogus = Version("no-such-version".into());
    assert!(!s.put_if("m", b"three", Some(&bogus)).expect("replace"));
    assert!(
        !s.put_if("absent", b"x", Some(&v2)).expect("replace"),
        "replace of an absent object fails"
    );
    assert!(s.get("absent").expect("get").is_none());
    assert_eq!(s.get("m").expect("get").expect("present").0, b"two");
}

fn list_and_delete(s: &dyn ObjectStore) {
    for k in [
        "packs/b.pack",
        "packs/a.pack",
        "packs/a.idx",
        "manifest",
        "packsx",
    ] {
        s.put(k, k.as_bytes()).expect("put");
    }
    let all = s.list("").expect("list");
    assert_eq!(
        all,
        vec![
            "manifest",
            "packs/a.idx",
            "packs/a.pack",
            "packs/b.pack",
            "packsx"
        ],
        "list is sorted and complete"
    );
    assert_eq!(
        s.list("packs/").expect("list"),
        vec!["packs/a.idx", "packs/a.pack", "packs/b.pack"]
    );
    assert_eq!(
        s.list("packs/a").expect("list"),
        vec!["packs/a.idx", "packs/a.pack"]
    );
    assert!(s.list("nothing/").expect("list").is_empty());
    s.delete("packs/a.pack").expect("delete");
    s.delete("packs/a.pack")
        .expect("deleting an absent object is fine");
    assert!(s.get("packs/a.pack").expect("get").is_none());
    assert_eq!(
        s.list("packs/").expect("list"),
        vec!["packs/a.idx", "packs/b.pack"]
    );
}
