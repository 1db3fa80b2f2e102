//! What every `Backend` must do, as one function both backends run (tests/backend_contract.rs
//! on a local directory and on object_store's in-memory store, tests/s3_rgw.rs on Ceph RGW).

#![allow(clippy::single_range_in_vec_init)] // one range in a slice is a get_ranges call

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use disksnap_engine::backend::Backend;
use disksnap_engine::EngineError;

/// Deterministic bytes that do not compress or repeat within an object.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
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

/// `big` is the size of an object the backend must store whole (the S3 tests pick one past
/// their multipart threshold so the multipart path runs too).
pub fn contract(b: &dyn Backend, big: usize) {
    let started = SystemTime::now() - Duration::from_secs(120);

    // put / get
    b.put("packs/ab/abcdef.pack", b"hello world".to_vec()).unwrap();
    b.put("indexes/snap-1.fidx", b"idx".to_vec()).unwrap();
    b.put("packs/ac/0001.pack", pattern(1, 1000)).unwrap();
    assert_eq!(b.get("packs/ab/abcdef.pack").unwrap(), b"hello world");
    assert_eq!(b.get("packs/ac/0001.pack").unwrap(), pattern(1, 1000));
    // putting a key again with the same bytes (a retried upload) is fine
    b.put("indexes/snap-1.fidx", b"idx".to_vec()).unwrap();
    assert_eq!(b.get("indexes/snap-1.fidx").unwrap(), b"idx");
    // an empty object is an object
    b.put("indexes/empty.fidx", Vec::new()).unwrap();
    assert_eq!(b.get("indexes/empty.fidx").unwrap(), b"");

    // ranges: in the order asked, neighbours, overlaps, empty ones
    assert_eq!(
        b.get_ranges("packs/ab/abcdef.pack", &[6..11, 0..5, 5..6, 3..3, 0..11]).unwrap(),
        vec![b"world".to_vec(), b"hello".to_vec(), b" ".to_vec(), Vec::new(), b"hello world".to_vec()]
    );
    let p = pattern(1, 1000);
    let ranges = [900..1000, 0..10, 10..20, 500..700, 20..21];
    let got = b.get_ranges("packs/ac/0001.pack", &ranges).unwrap();
    for (r, g) in ranges.iter().zip(&got) {
        assert_eq!(g[..], p[r.start as usize..r.end as usize], "range {r:?}");
    }
    // a range past the end is an error, not short data
    assert!(b.get_ranges("packs/ac/0001.pack", &[990..1010]).is_err());

    // exists, without reading the object
    assert!(b.exists("packs/ac/0001.pack").unwrap());
    assert!(b.exists("indexes/empty.fidx").unwrap());
    assert!(!b.exists("packs/zz/nothing.pack").unwrap());
    assert!(!b.exists("packs/ac").unwrap(), "a key prefix is not an object");

    // missing objects
    assert!(matches!(b.get("packs/zz/nothing.pack"), Err(EngineError::MissingObject { .. })));
    assert!(matches!(b.get_ranges("packs/zz/nothing.pack", &[0..4]), Err(EngineError::MissingObject { .. })));

    // list: a string prefix, keys relative to the store, sizes, times
    let listed = |prefix: &str| -> BTreeMap<String, u64> {
        b.list(prefix).unwrap().into_iter().map(|o| (o.key, o.size)).collect()
    };
    assert_eq!(
        listed("packs/"),
        BTreeMap::from([("packs/ab/abcdef.pack".to_string(), 11), ("packs/ac/0001.pack".to_string(), 1000)])
    );
    assert_eq!(listed("packs/a").len(), 2);
    assert_eq!(listed("packs/ab").keys().collect::<Vec<_>>(), ["packs/ab/abcdef.pack"]);
    assert_eq!(listed("packs/ab/abc").keys().collect::<Vec<_>>(), ["packs/ab/abcdef.pack"]);
    assert_eq!(listed("indexes/snap").keys().collect::<Vec<_>>(), ["indexes/snap-1.fidx"]);
    assert!(listed("nothing-here/").is_empty());
    assert_eq!(listed("").len(), 4);
    for o in b.list("").unwrap() {
        assert!(o.modified > started && o.modified < SystemTime::now() + Duration::from_secs(120), "{o:?}");
    }

    // delete: gone, and deleting again is fine
    b.delete("packs/ab/abcdef.pack").unwrap();
    b.delete("packs/ab/abcdef.pack").unwrap();
    b.delete("packs/never/was.pack").unwrap();
    assert!(matches!(b.get("packs/ab/abcdef.pack"), Err(EngineError::MissingObject { .. })));
    assert_eq!(listed("packs/").len(), 1);

    // keys that are not keys
    for bad in ["", "../escape", "a/../b", "/abs", "a//b", "a/", "sp ace", "a/./b"] {
        assert!(b.put(bad, vec![1]).is_err(), "put {bad:?}");
        assert!(b.get(bad).is_err(), "get {bad:?}");
    }

    // a big object, whole and by ranges across its middle
    let data = pattern(7, big);
    b.put("packs/bb/big.pack", data.clone()).unwrap();
    assert_eq!(b.get("packs/bb/big.pack").unwrap(), data);
    let mid = big as u64 / 2;
    let ranges = [mid - 100_000..mid + 100_000, 0..1, big as u64 - 10..big as u64];
    let got = b.get_ranges("packs/bb/big.pack", &ranges).unwrap();
    for (r, g) in ranges.iter().zip(&got) {
        assert!(g[..] == data[r.start as usize..r.end as usize], "big range {r:?}");
    }
    assert_eq!(listed("packs/bb/")["packs/bb/big.pack"], big as u64);
    // streamed: the same bytes in order, whatever the pieces; past the end is an error
    assert!(b.read_span() >= 1 << 20);
    let mut buf = Vec::new();
    for r in [mid - 100_000..mid + 100_000, 0..big as u64] {
        let mut got = Vec::with_capacity((r.end - r.start) as usize);
        b.read_range_streamed("packs/bb/big.pack", r.clone(), &mut buf, &mut |piece| {
            got.extend_from_slice(piece);
            Ok(())
        })
        .unwrap();
        assert!(got[..] == data[r.start as usize..r.end as usize], "streamed range {r:?}");
    }
    assert!(b
        .read_range_streamed("packs/bb/big.pack", big as u64 - 10..big as u64 + 10, &mut buf, &mut |_| Ok(()))
        .is_err());

    // several writers at once (the engine uploads upload_concurrency() packs in parallel)
    assert!(b.upload_concurrency() >= 1);
    std::thread::scope(|s| {
        for t in 0..6u64 {
            s.spawn(move || {
                for i in 0..5u64 {
                    let key = format!("packs/cc/{t}-{i}.pack");
                    b.put(&key, pattern(t * 100 + i, 4096 + i as usize)).unwrap();
                    assert_eq!(b.get(&key).unwrap(), pattern(t * 100 + i, 4096 + i as usize));
                }
            });
        }
    });
    assert_eq!(listed("packs/cc/").len(), 30);
    for k in listed("").keys() {
        b.delete(k).unwrap();
    }
    assert!(listed("").is_empty());
    assert!(!b.describe().is_empty());
}
