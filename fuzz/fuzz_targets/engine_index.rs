//! The fixed-index reader: arbitrary files, and files whose trailing BLAKE3 sum the harness
//! makes right so the header checks are reached. Invariants: an index that decodes encodes
//! back to the same bytes, and every slot has a length (the last one possibly short).
#![no_main]

use arbitrary::Arbitrary;
use disksnap_engine::index::FixedIndex;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    fix_sum: bool,
    header: Option<(u32, u64, u64)>,
    bytes: Vec<u8>,
    grow_to: u16,
}

fuzz_target!(|inp: Input| {
    let mut bytes = inp.bytes;
    if let Some((chunk_size, size, count)) = inp.header {
        let mut h = Vec::with_capacity(32 + bytes.len());
        h.extend_from_slice(b"DSNPFIX1");
        h.extend_from_slice(&chunk_size.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&count.to_le_bytes());
        h.extend_from_slice(&bytes);
        bytes = h;
    }
    if inp.fix_sum && bytes.len() >= 32 {
        let body_len = bytes.len();
        let sum = blake3::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        debug_assert_eq!(bytes.len(), body_len + 32);
    }
    let Ok(idx) = FixedIndex::decode("fuzz", &bytes) else { return };
    assert_eq!(idx.encode(), bytes, "decode then encode changed the index");
    let mut total = 0u64;
    for i in 0..idx.digests.len() {
        let n = idx.slot_len(i);
        assert!(n > 0 && n <= idx.chunk_size, "slot {i} has length {n}");
        total += n as u64;
    }
    assert_eq!(total, idx.size, "slots do not add up to the image size");
    let grown = FixedIndex::derived(&idx, idx.size.saturating_add(inp.grow_to as u64));
    assert_eq!(&grown.digests[..idx.digests.len().min(grown.digests.len())], &idx.digests[..]);
});
