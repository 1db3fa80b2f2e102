//! Fixed index: the manifest of one captured disk image.
//!
//! One 32-byte BLAKE3 digest per fixed-size slot of the image, in order. It is *logically
//! full*: an incremental capture starts from a copy of its parent's digests and overwrites only
//! the slots that changed, so any index restores on its own and deleting one never damages
//! another (as Proxmox Backup Server's `fixed_index.rs` does).
//!
//! ```text
//! offset size
//!  0     8    magic b"DSNPFIX1"          (never change)
//!  8     4    chunk size (u32 LE)
//! 12     4    reserved, zero
//! 16     8    image size in bytes (u64 LE)
//! 24     8    slot count (u64 LE)
//! 32     32*n digests; ZERO_DIGEST (all zero bytes) marks an all-zero slot, never stored
//! ..     32   BLAKE3 of everything before it
//! ```

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{EngineError, IoContext, Result};

pub type Digest = [u8; 32];

/// The digest an all-zero slot carries. No real chunk can have it (BLAKE3 output is never all
/// zeros in practice), and a zero slot of any length uses it, so the last short slot of an odd
/// sized image needs no special case.
pub const ZERO_DIGEST: Digest = [0; 32];

const MAGIC: &[u8; 8] = b"DSNPFIX1";
const HEADER_LEN: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIndex {
    pub chunk_size: usize,
    pub size: u64,
    pub digests: Vec<Digest>,
}

impl FixedIndex {
    /// An index of `size` bytes, all zero.
    pub fn zeroed(chunk_size: usize, size: u64) -> Self {
        let slots = size.div_ceil(chunk_size as u64) as usize;
        FixedIndex { chunk_size, size, digests: vec![ZERO_DIGEST; slots] }
    }

    /// A copy of `parent` resized to `size` (a volume may grow between two snapshots); new
    /// slots are zero, and a shrunk last slot is marked changed by the capture anyway.
    pub fn derived(parent: &FixedIndex, size: u64) -> Self {
        let mut idx = FixedIndex::zeroed(parent.chunk_size, size);
        let n = idx.digests.len().min(parent.digests.len());
        idx.digests[..n].copy_from_slice(&parent.digests[..n]);
        idx
    }

    /// Byte length of slot `i` (the last one may be short).
    pub fn slot_len(&self, i: usize) -> usize {
        Self::slot_len_of(self.size, self.chunk_size, i)
    }

    /// [`FixedIndex::slot_len`] of an index of `size` bytes in chunks of `chunk_size`, for a
    /// caller that cannot borrow the index (a capture's stage that reads while another writes it).
    pub fn slot_len_of(size: u64, chunk_size: usize, i: usize) -> usize {
        let start = i as u64 * chunk_size as u64;
        (size - start).min(chunk_size as u64) as usize
    }

    /// Raw bytes of the non-zero slots: what the point holds, holes left out.
    pub fn logical_bytes(&self) -> u64 {
        self.digests.iter().enumerate().filter(|(_, d)| **d != ZERO_DIGEST).map(|(i, _)| self.slot_len(i) as u64).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 32 * (self.digests.len() + 1));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.chunk_size as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.digests.len() as u64).to_le_bytes());
        for d in &self.digests {
            out.extend_from_slice(d);
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub fn decode(name: &str, bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| EngineError::CorruptIndex { name: name.to_string(), why: why.to_string() };
        if bytes.len() < HEADER_LEN + 32 || &bytes[..8] != MAGIC {
            return Err(bad("bad header"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(bad("checksum mismatch"));
        }
        let chunk_size = u32::from_le_bytes(body[8..12].try_into().unwrap()) as usize;
        let size = u64::from_le_bytes(body[16..24].try_into().unwrap());
        let count = u64::from_le_bytes(body[24..32].try_into().unwrap());
        // Checked: a forged count near 2^59 made `32 * count` wrap (or panic with overflow
        // checks), so a 64-byte body passed for an image of 2^59 slots (fuzz/engine_index).
        let want_len = count.checked_mul(32).and_then(|n| n.checked_add(HEADER_LEN as u64));
        if chunk_size == 0 || want_len != Some(body.len() as u64) || size.div_ceil(chunk_size as u64) != count {
            return Err(bad("length does not match header"));
        }
        let digests = body[HEADER_LEN..].chunks_exact(32).map(|c| c.try_into().unwrap()).collect();
        Ok(FixedIndex { chunk_size, size, digests })
    }

    pub fn read(name: &str, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EngineError::MissingIndex { name: name.to_string() },
            _ => EngineError::Io { op: "read index", path: path.to_path_buf(), source: e },
        })?;
        Self::decode(name, &bytes)
    }

    /// Write durably: temp file, fsync, rename, fsync of the directory.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_durably(path, &self.encode())
    }
}

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("file path has a parent");
    let tmp = dir.join(format!(".tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    let written = (|| {
        let mut f = crate::private::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        drop(f);
        std::fs::rename(&tmp, path).ctx("rename", path)
    })();
    if written.is_err() {
        // A full disk fails the write: leave no temp file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync dir", dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let mut idx = FixedIndex::zeroed(65536, 3 * 65536 + 100);
        assert_eq!(idx.digests.len(), 4);
        assert_eq!(idx.slot_len(3), 100);
        idx.digests[1] = [7; 32];
        let bytes = idx.encode();
        assert_eq!(FixedIndex::decode("x", &bytes).unwrap(), idx);
        for pos in [0, 9, 20, 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[pos] ^= 1;
            assert!(FixedIndex::decode("x", &bad).is_err(), "flip at {pos}");
        }
    }

    /// A header and a correct checksum around one digest, for a forged `count`.
    fn forged(chunk_size: u32, size: u64, count: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&chunk_size.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&[7; 32]);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// fuzz/engine_index found this: `32 * count` wrapped, so one digest passed for 2^59 + 1
    /// slots (and with overflow checks on, decode panicked instead of refusing).
    #[test]
    fn a_slot_count_that_overflows_is_refused() {
        let count = (1u64 << 59) + 1;
        let e = FixedIndex::decode("x", &forged(1, count, count)).unwrap_err();
        assert!(e.to_string().contains("length does not match header"), "{e}");
        // The fuzzer's own input: count u64::MAX.
        assert!(FixedIndex::decode("x", &forged(3_671_775_962, 18_440_105_536_081_550_042, u64::MAX)).is_err());
        assert!(FixedIndex::decode("x", &forged(4, 4, 1)).is_ok());
    }

    #[test]
    fn derived_grows_with_zero_slots() {
        let mut p = FixedIndex::zeroed(4, 8);
        p.digests = vec![[1; 32], [2; 32]];
        let d = FixedIndex::derived(&p, 16);
        assert_eq!(d.digests, vec![[1; 32], [2; 32], ZERO_DIGEST, ZERO_DIGEST]);
    }
}
