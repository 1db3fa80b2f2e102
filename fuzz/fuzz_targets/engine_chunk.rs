//! The chunk frame decoder: arbitrary frames (header, CRC, encoding, zstd payload, BLAKE3
//! name), frames whose CRC the harness fixes so the zstd stage is reached, and frames the
//! encoder wrote with a byte changed. Invariant: a frame that decodes yields bytes that hash
//! to the name asked for (and, for a changed frame, the original bytes).
#![no_main]

use arbitrary::Arbitrary;
use disksnap_engine::chunk::{decode, Encoder, HEADER_LEN, MAGIC};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    /// A frame as stored, checked against a name from the input.
    Frame { digest: [u8; 32], file: Vec<u8> },
    /// A header (magic and CRC made right) over an arbitrary payload: encoding, length and
    /// the zstd stream are the fuzzer's.
    Payload { encoding: u8, raw_len: u32, payload: Vec<u8>, digest: [u8; 32] },
    /// Encode, then change one byte (or none) and decode with the true name.
    Roundtrip { raw: Vec<u8>, at: u16, xor: u8 },
}

fn check(file: &[u8], digest: &[u8; 32]) {
    let mut out = Vec::new();
    if decode(file, digest, &mut out).is_ok() {
        assert_eq!(blake3::hash(&out).as_bytes(), digest, "decoded bytes do not hash to the name");
    }
}

fuzz_target!(|inp: Input| match inp {
    Input::Frame { digest, file } => check(&file, &digest),
    Input::Payload { encoding, raw_len, payload, digest } => {
        let mut file = Vec::with_capacity(HEADER_LEN + payload.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&[encoding % 3, 0, 0, 0]);
        // Mostly plausible lengths, sometimes anything.
        let len = if raw_len & 1 == 0 { (raw_len >> 1) % (1 << 17) } else { raw_len };
        file.extend_from_slice(&len.to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        file.extend_from_slice(&payload);
        check(&file, &digest);
    }
    Input::Roundtrip { raw, at, xor } => {
        let mut enc = Encoder::default();
        let mut file = enc.encode(&raw).to_vec();
        let digest = *blake3::hash(&raw).as_bytes();
        let mut out = Vec::new();
        decode(&file, &digest, &mut out).expect("a frame the encoder wrote decodes");
        assert_eq!(out, raw);
        let i = at as usize % file.len();
        file[i] ^= xor;
        // A changed frame may still decode (an empty payload flipped to zstd is an empty
        // zstd stream), but only to the very bytes the name stands for.
        if decode(&file, &digest, &mut out).is_ok() {
            assert_eq!(out, raw, "a changed byte at {i} decoded to other bytes");
        }
    }
});
