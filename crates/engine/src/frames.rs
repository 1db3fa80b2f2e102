//! Cutting the bytes of one coalesced read, as they arrive, into the chunk frames it was asked
//! for.
//!
//! A read spans neighbouring chunks of one pack and the gaps between them. From an object store
//! its body comes in pieces (~350 KiB each from the bench's RGW); holding the whole read before decoding cost a reader
//! thread a buffer of the read's size, which is what capped a read at 2 MiB (8 readers, peak RSS
//! is a budgeted figure). Fed piece by piece, a reader holds one frame at most: a frame a piece
//! holds whole is handed on in place, one split across pieces is put together in `partial`.

use crate::chunk_index::Location;
use crate::error::{EngineError, Result};
use crate::index::Digest;

pub(crate) struct Frames<'a> {
    pack: &'a str,
    /// The read's chunks, by ascending offset, none overlapping.
    chunks: &'a [(Digest, Location)],
    /// The chunk being put together.
    next: usize,
    /// The pack offset of the next byte fed.
    pos: u64,
    /// The bytes of `chunks[next]` fed so far, when its frame spans pieces.
    partial: &'a mut Vec<u8>,
}

impl<'a> Frames<'a> {
    /// A read of `pack` starting at byte `start`.
    pub fn new(pack: &'a str, start: u64, chunks: &'a [(Digest, Location)], partial: &'a mut Vec<u8>) -> Self {
        partial.clear();
        Frames { pack, chunks, next: 0, pos: start, partial }
    }

    /// The next bytes of the read: `each(digest, frame)` for every frame they complete, in order.
    pub fn feed(&mut self, mut piece: &[u8], each: &mut dyn FnMut(&Digest, &[u8]) -> Result<()>) -> Result<()> {
        while !piece.is_empty() {
            let Some((d, l)) = self.chunks.get(self.next) else {
                // The read's tail past its last chunk (a backend reads whole ranges).
                self.pos += piece.len() as u64;
                return Ok(());
            };
            let len = l.len as usize;
            if self.partial.is_empty() {
                if self.pos < l.offset {
                    // the gap before this chunk: bytes of chunks the read does not need
                    let skip = (l.offset - self.pos).min(piece.len() as u64) as usize;
                    piece = &piece[skip..];
                    self.pos += skip as u64;
                    continue;
                }
                if self.pos > l.offset {
                    return Err(EngineError::CorruptPack {
                        pack: self.pack.to_string(),
                        why: format!("chunk {} at offset {} overlaps the chunk before it", hex::encode(d), l.offset),
                    });
                }
                if piece.len() >= len {
                    each(d, &piece[..len])?;
                    piece = &piece[len..];
                    self.pos += len as u64;
                    self.next += 1;
                    continue;
                }
            }
            let take = (len - self.partial.len()).min(piece.len());
            self.partial.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            self.pos += take as u64;
            if self.partial.len() == len {
                each(d, self.partial)?;
                self.partial.clear();
                self.next += 1;
            }
        }
        Ok(())
    }

    /// The read is over: every chunk asked for must have come whole.
    pub fn finish(self) -> Result<()> {
        match self.chunks.get(self.next) {
            None => Ok(()),
            Some((d, _)) => Err(EngineError::CorruptPack {
                pack: self.pack.to_string(),
                why: format!("chunk {} lies past the end of the pack", hex::encode(d)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(offset: u64, len: u32) -> Location {
        Location { pack: "p".into(), offset, len }
    }

    /// The frames of `chunks` from `bytes` (the read's bytes from `start`) fed in pieces of
    /// `size` bytes.
    fn cut(start: u64, chunks: &[(Digest, Location)], bytes: &[u8], size: usize) -> Result<Vec<(u8, Vec<u8>)>> {
        let mut partial = Vec::new();
        let mut frames = Frames::new("p", start, chunks, &mut partial);
        let mut got = Vec::new();
        for piece in bytes.chunks(size) {
            frames.feed(piece, &mut |d, f| {
                got.push((d[0], f.to_vec()));
                Ok(())
            })?;
        }
        frames.finish()?;
        Ok(got)
    }

    #[test]
    fn frames_come_whole_whatever_the_pieces() {
        // a read from offset 100: a gap of 10, chunk 1 (30 bytes), chunk 2 right after (5),
        // a gap of 7, chunk 3 (40), then 3 bytes of tail
        let bytes: Vec<u8> = (0..95u8).collect();
        let chunks = [([1; 32], loc(110, 30)), ([2; 32], loc(140, 5)), ([3; 32], loc(152, 40))];
        let want = vec![(1, bytes[10..40].to_vec()), (2, bytes[40..45].to_vec()), (3, bytes[52..92].to_vec())];
        for size in [1, 2, 3, 7, 10, 29, 30, 31, 64, 95, 1000] {
            assert_eq!(cut(100, &chunks, &bytes, size).unwrap(), want, "pieces of {size}");
        }
    }

    #[test]
    fn a_short_read_or_overlapping_chunks_are_corrupt_packs() {
        let bytes = vec![7u8; 50];
        let short = [([1; 32], loc(0, 30)), ([2; 32], loc(40, 20))];
        let e = cut(0, &short, &bytes, 16).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        let overlapping = [([1; 32], loc(0, 30)), ([2; 32], loc(20, 10))];
        let e = cut(0, &overlapping, &bytes, 16).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
    }
}
