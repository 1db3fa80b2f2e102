//! The chunk file format: a 20-byte header, then the payload.
//!
//! ```text
//! offset size
//!  0     8    magic  b"DSNPCHK1"        (never change: old stores must stay readable)
//!  8     1    encoding: 0 = raw, 1 = zstd, 2 = zstd with a store dictionary (dict.rs; the
//!             zstd frame names it)
//!  9     3    reserved, zero
//! 12     4    raw length (u32 LE): the chunk's uncompressed size
//! 16     4    CRC-32 of the payload (u32 LE): a cheap check before decompressing
//! 20     ..   payload
//! ```
//! A chunk's name is the BLAKE3 digest of its *raw* bytes; [`decode`] checks it every time.

use crate::dict::StoreDict;
use crate::index::Digest;

pub const MAGIC: &[u8; 8] = b"DSNPCHK1";
pub const HEADER_LEN: usize = 20;
/// No store uses chunks larger than this; a header claiming more is corrupt.
pub const MAX_CHUNK: usize = 16 << 20;
const ENC_RAW: u8 = 0;
const ENC_ZSTD: u8 = 1;
const ENC_ZSTD_DICT: u8 = 2;

/// zstd level 1: ~0.7 GB/s per core, about 3:1 on text. Higher levels cost more CPU than a
/// snapshot service can spend at disk speed.
const ZSTD_LEVEL: i32 = 1;

/// Level 1's hash table for a 128 KiB input has 2^13 entries; 2^16 found more matches in the
/// bench's text (1.88:1 against 1.76:1) and ran no slower (~400 MB/s a core, fewer collisions).
const HASH_LOG: u32 = 16;
/// With a store dictionary (capture_dict.rs): level 1 with that table. Level 1's own barely
/// finds the dictionary's strings (1.87:1 on the bench's text, against 2.25:1 at ~250 MB/s a
/// core). Larger tables or shorter matches compress more and cost more: 6-byte matches 2.33:1,
/// 2^17 entries 2.43:1 at ~210 MB/s; on 2 cores a 4 GiB full snapshot took ~0.8 s longer.
const DICT_LEVEL: i32 = 1;

/// Compression must save at least 1/8 of the chunk to be kept; otherwise reading it back would
/// spend CPU on decompression to save little space.
fn pays(raw: usize, compressed: usize) -> bool {
    compressed < raw - raw / 8
}

/// Encodes chunks, reusing one zstd context and one output buffer: a fresh context per chunk
/// cost about a tenth of a full snapshot's CPU in profiles.
pub struct Encoder {
    zstd: zstd::bulk::Compressor<'static>,
    /// A context holding a store dictionary, and the dictionary's id.
    with_dict: Option<(u32, zstd::zstd_safe::CCtx<'static>)>,
    probe_out: Vec<u8>,
    /// The last encoded chunk file.
    pub out: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            zstd: {
                let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context");
                c.set_parameter(zstd::zstd_safe::CParameter::HashLog(HASH_LOG)).expect("a valid hash log");
                c
            },
            with_dict: None,
            probe_out: Vec::new(),
            out: Vec::new(),
        }
    }
}

impl Encoder {
    /// Encode `raw` into `self.out`, compressing when it pays.
    ///
    /// Incompressible data is common on disks (media, encrypted and already-compressed files),
    /// so a 4 KiB probe — eight 512-byte samples spread over the chunk, so a chunk that is
    /// mostly zeros or text with one random block still looks compressible — is compressed
    /// first: if even that does not shrink, the whole chunk is stored raw without spending a
    /// zstd pass on it.
    pub fn encode(&mut self, raw: &[u8]) -> &[u8] {
        self.encode_with(raw, None)
    }

    /// [`Encoder::encode`], compressing with `dict` (a store dictionary) when given.
    pub fn encode_with(&mut self, raw: &[u8], dict: Option<&StoreDict>) -> &[u8] {
        begin_frame(&mut self.out, ENC_RAW, raw.len());
        let worth_trying = raw.len() > 512 && probe_compresses(&mut self.zstd, &mut self.probe_out, raw);
        if worth_trying {
            let bound = zstd::zstd_safe::compress_bound(raw.len());
            self.out.resize(HEADER_LEN + bound, 0);
            let (encoding, compressed) = match dict.and_then(|d| Self::dict_context(&mut self.with_dict, d)) {
                Some(cctx) => (ENC_ZSTD_DICT, cctx.compress2(&mut self.out[HEADER_LEN..], raw).ok()),
                None => (ENC_ZSTD, self.zstd.compress_to_buffer(raw, &mut self.out[HEADER_LEN..]).ok()),
            };
            let out = &mut self.out;
            if let Some(n) = compressed.filter(|&n| pays(raw.len(), n)) {
                out.truncate(HEADER_LEN + n);
                out[8] = encoding;
                finish_crc(out);
                return &self.out;
            }
            out.truncate(HEADER_LEN);
        }
        let out = &mut self.out;
        out.extend_from_slice(raw);
        finish_crc(out);
        &self.out
    }
}

impl Encoder {
    /// The context for `dict`, made (and the dictionary digested) when the dictionary changes.
    /// None if zstd refuses it: the chunk is then compressed without.
    fn dict_context<'a>(
        slot: &'a mut Option<(u32, zstd::zstd_safe::CCtx<'static>)>,
        dict: &StoreDict,
    ) -> Option<&'a mut zstd::zstd_safe::CCtx<'static>> {
        use zstd::zstd_safe::CParameter;
        if slot.as_ref().map(|(id, _)| *id) != Some(dict.id) {
            let mut cctx = zstd::zstd_safe::CCtx::create();
            cctx.set_parameter(CParameter::CompressionLevel(DICT_LEVEL)).ok()?;
            cctx.set_parameter(CParameter::HashLog(HASH_LOG)).ok()?;
            // Copied into the context, and kept there for every later frame.
            cctx.load_dictionary(&dict.bytes).ok()?;
            *slot = Some((dict.id, cctx));
        }
        slot.as_mut().map(|(_, cctx)| cctx)
    }
}

thread_local! {
    static ENCODER: std::cell::RefCell<Option<Encoder>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with this thread's encoder. Rayon's `map_init` makes its state once per split task,
/// not per thread: a capture batch made ~20 fresh zstd contexts, each zeroing and faulting in
/// its tables on first use (`ZSTD_createCCtx`, page clearing and a slow first block showed in
/// the full snapshot's profile). One per thread, kept, makes none after the first.
pub fn with_encoder<R>(f: impl FnOnce(&mut Encoder) -> R) -> R {
    ENCODER.with(|cell| f(cell.borrow_mut().get_or_insert_with(Encoder::default)))
}

/// Whether a frame is compressed without a dictionary: what `disksnap compact` re-encodes.
pub fn is_plain_zstd(frame: &[u8]) -> bool {
    frame.len() >= HEADER_LEN && &frame[..8] == MAGIC && frame[8] == ENC_ZSTD
}

/// Re-encode `raw` (the bytes of a frame compressed without a dictionary) with `cctx`, a
/// context holding a store dictionary (dict.rs): the new frame into `out`, or false when it
/// would not be smaller than `old_len` bytes (the old frame is then kept as it is).
pub fn encode_with_dict(
    cctx: &mut zstd::zstd_safe::CCtx<'_>,
    cdict: &zstd::dict::EncoderDictionary<'_>,
    raw: &[u8],
    old_len: usize,
    out: &mut Vec<u8>,
) -> bool {
    begin_frame(out, ENC_ZSTD_DICT, raw.len());
    let bound = zstd::zstd_safe::compress_bound(raw.len());
    out.resize(HEADER_LEN + bound, 0);
    match cctx.compress_using_cdict(&mut out[HEADER_LEN..], raw, cdict.as_cdict()) {
        Ok(n) if HEADER_LEN + n < old_len => {
            out.truncate(HEADER_LEN + n);
            finish_crc(out);
            true
        }
        _ => false,
    }
}

fn probe_compresses(zstd: &mut zstd::bulk::Compressor<'static>, out: &mut Vec<u8>, raw: &[u8]) -> bool {
    const SAMPLES: usize = 8;
    const SAMPLE: usize = 512;
    let mut probe = [0u8; SAMPLES * SAMPLE];
    let len = if raw.len() <= probe.len() {
        probe[..raw.len()].copy_from_slice(raw);
        raw.len()
    } else {
        let stride = (raw.len() - SAMPLE) / (SAMPLES - 1);
        for i in 0..SAMPLES {
            probe[i * SAMPLE..(i + 1) * SAMPLE].copy_from_slice(&raw[i * stride..i * stride + SAMPLE]);
        }
        probe.len()
    };
    out.resize(zstd::zstd_safe::compress_bound(len), 0);
    zstd.compress_to_buffer(&probe[..len], &mut out[..]).map(|n| pays(len, n)).unwrap_or(false)
}

/// Start a frame in `out`: its header, the CRC left for [`finish_crc`].
fn begin_frame(out: &mut Vec<u8>, encoding: u8, raw_len: usize) {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[encoding, 0, 0, 0]);
    out.extend_from_slice(&(raw_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
}

fn finish_crc(out: &mut [u8]) {
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// The raw (uncompressed) length a frame's header claims, without checking the payload: for
/// the store's figures (compression ratio), not for reading. `None` if it has no chunk header.
pub fn raw_len_of(frame: &[u8]) -> Option<u32> {
    (frame.len() >= HEADER_LEN && &frame[..8] == MAGIC).then(|| u32::from_le_bytes(frame[12..16].try_into().unwrap()))
}

/// Decode a chunk file's bytes into `raw`, checking magic, CRC, length and the BLAKE3 name.
pub fn decode(file: &[u8], digest: &Digest, raw: &mut Vec<u8>) -> Result<(), String> {
    decode_ref(file, digest, raw)?;
    if file[8] == ENC_RAW {
        // A raw frame was checked in place; callers of this form want the bytes in `raw`.
        raw.clear();
        raw.extend_from_slice(&file[HEADER_LEN..]);
    }
    Ok(())
}

thread_local! {
    /// One zstd decompression context per thread: creating one per chunk was 5 % of a
    /// restore's CPU in profiles.
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// The decompression context for frames made with a store dictionary (kept apart from
    /// [`DCTX`], whose context would otherwise carry the dictionary into plain frames).
    static DICT_DCTX: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// [`decode`] without copying a raw (uncompressed) frame: the chunk's bytes are returned
/// either from `file` itself or from `raw`, where a compressed frame is decompressed (into
/// the buffer as it is, so a reused buffer is not zeroed again).
pub fn decode_ref<'a>(file: &'a [u8], digest: &Digest, raw: &'a mut Vec<u8>) -> Result<&'a [u8], String> {
    if file.len() < HEADER_LEN || &file[..8] != MAGIC || file[9..12] != [0, 0, 0] {
        return Err("bad header".into());
    }
    let raw_len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    if raw_len > MAX_CHUNK {
        return Err(format!("header claims {raw_len} bytes, more than any chunk"));
    }
    let crc = u32::from_le_bytes(file[16..20].try_into().unwrap());
    let payload = &file[HEADER_LEN..];
    if crc32fast::hash(payload) != crc {
        return Err("payload CRC mismatch".into());
    }
    let bytes: &[u8] = match file[8] {
        ENC_RAW => payload,
        ENC_ZSTD => {
            // At most raw_len bytes (checked against MAX_CHUNK above): a forged frame cannot
            // make it allocate more.
            raw.resize(raw_len, 0);
            let n = DCTX.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd context: {e}"))?);
                }
                slot.as_mut()
                    .expect("just set")
                    .decompress_to_buffer(payload, &mut raw[..])
                    .map_err(|e| format!("zstd: {e}"))
            })?;
            raw.truncate(n);
            raw
        }
        ENC_ZSTD_DICT => {
            let id = zstd::zstd_safe::get_dict_id_from_frame(payload).ok_or("zstd frame names no dictionary")?.get();
            let dict = crate::dict::decoder(id)?;
            raw.resize(raw_len, 0);
            let n = DICT_DCTX.with(|cell| {
                let mut slot = cell.borrow_mut();
                let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
                dctx.decompress_using_ddict(&mut raw[..], payload, dict.as_ddict())
                    .map_err(|code| format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))
            })?;
            raw.truncate(n);
            raw
        }
        other => return Err(format!("unknown encoding {other}")),
    };
    if bytes.len() != raw_len {
        return Err(format!("length {} where the header says {raw_len}", bytes.len()));
    }
    if blake3::hash(bytes).as_bytes() != digest {
        return Err("content does not hash to the chunk's name".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(raw: &[u8]) -> Vec<u8> {
        let file = Encoder::default().encode(raw).to_vec();
        let digest = *blake3::hash(raw).as_bytes();
        let mut back = Vec::new();
        decode(&file, &digest, &mut back).unwrap();
        assert_eq!(back, raw);
        file
    }

    /// A reused buffer holding another chunk of the same length must never leak into the
    /// answer, whether the frame is compressed (decoded over it) or raw (returned in place).
    #[test]
    fn a_reused_buffer_never_shows_a_previous_chunk() {
        let text: Vec<u8> = (0..65536u32).map(|i| b"disksnap "[(i % 9) as usize]).collect();
        let random: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut buf = Vec::new();
        for (a, b) in [(&text, &random), (&random, &text), (&text, &text)] {
            for raw in [a, b] {
                let file = Encoder::default().encode(raw).to_vec();
                let digest = *blake3::hash(raw).as_bytes();
                assert_eq!(decode_ref(&file, &digest, &mut buf).unwrap(), &raw[..]);
                let mut owned = vec![7u8; raw.len()];
                decode(&file, &digest, &mut owned).unwrap();
                assert_eq!(&owned, raw);
            }
        }
    }

    #[test]
    fn text_is_compressed_random_is_not() {
        let text: Vec<u8> =
            b"the quick brown fox jumps over the lazy dog\n".iter().cycle().take(65536).copied().collect();
        let file = roundtrip(&text);
        assert_eq!(file[8], ENC_ZSTD);
        assert!(file.len() < 4096);
        let mut random = vec![0u8; 65536];
        let mut x = 0x1234_5678_9abc_def0u64;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let file = roundtrip(&random);
        assert_eq!(file[8], ENC_RAW);
        assert_eq!(file.len(), HEADER_LEN + 65536);
        // a zero chunk with one random 4 KiB block (a scattered write into a hole)
        let mut sparse = vec![0u8; 65536];
        sparse[8192..12288].copy_from_slice(&random[..4096]);
        let file = roundtrip(&sparse);
        assert_eq!(file[8], ENC_ZSTD);
        assert!(file.len() < 5000, "{}", file.len());
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let raw: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let file = Encoder::default().encode(&raw).to_vec();
        let digest = *blake3::hash(&raw).as_bytes();
        for pos in [0, 9, 13, 17, HEADER_LEN, file.len() - 1] {
            let mut bad = file.clone();
            bad[pos] ^= 0x10;
            assert!(decode(&bad, &digest, &mut Vec::new()).is_err(), "flip at {pos} not caught");
        }
        assert!(decode(&file[..file.len() - 1], &digest, &mut Vec::new()).is_err());
    }
}
