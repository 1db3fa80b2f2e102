//! Read-ahead for scattered reads. A tracked incremental reads only the slots that changed: a
//! few thousand 128 KiB reads spread over the volume's clone (4096 scattered 4 KiB writes touch
//! ~2 200 slots of a 4 GiB volume). The clone is a new inode, so its pages are never cached,
//! even when the volume's are; and the capture's threads keep one read each in flight, so the
//! device sees two requests at a time. Telling the kernel the next slots first
//! (`POSIX_FADV_WILLNEED`) queues their reads together and lets the device work on many at
//! once; the reader then finds them cached. A bounded distance ahead keeps the pages it pulls
//! in few (the capture drops them once read, residency.rs).

use std::fs::File;
use std::ops::Range;
use std::os::unix::io::AsRawFd;

/// How many bytes of the ranges to read are requested ahead of the reader.
pub const AHEAD: u64 = 32 << 20;

/// Ranges are asked for in pieces of at most this size. The kernel reads at most its
/// read-ahead window per `WILLNEED` (`force_page_cache_ra` clamps to it; 8 MiB on this VM's
/// virtio disk, 128 KiB by default): a whole extent asked for at once had only its first
/// window read, and counted as asked for, so nothing more was asked until the reader passed it.
pub const PIECE: u64 = 4 << 20;

pub struct ReadAhead<'a> {
    file: &'a File,
    /// Sorted, disjoint, neighbours merged.
    ranges: Vec<Range<u64>>,
    /// Ranges before this were requested.
    next: usize,
    /// Ranges before this end at or before the reader.
    passed: usize,
    /// Bytes requested but not yet passed.
    pending: u64,
    ahead: u64,
}

impl<'a> ReadAhead<'a> {
    /// `ranges` in ascending order (neighbours are merged here, and long ranges cut, into
    /// pieces of at most [`PIECE`]).
    pub fn new(file: &'a File, ranges: impl IntoIterator<Item = Range<u64>>, ahead: u64) -> Self {
        let mut pieces: Vec<Range<u64>> = Vec::new();
        for r in ranges {
            let mut at = r.start;
            while at < r.end {
                match pieces.last_mut() {
                    Some(last) if last.end == at && last.end - last.start < PIECE => {
                        last.end = r.end.min(last.start + PIECE);
                        at = last.end;
                    }
                    _ => {
                        let end = r.end.min(at + PIECE);
                        pieces.push(at..end);
                        at = end;
                    }
                }
            }
        }
        ReadAhead { file, ranges: pieces, next: 0, passed: 0, pending: 0, ahead }
    }

    /// Keep only the pieces (at most [`PIECE`] long) for which `keep` holds; call before the
    /// first [`ReadAhead::advance`].
    pub fn retain(&mut self, keep: impl Fn(&Range<u64>) -> bool) {
        debug_assert_eq!(self.next, 0, "retain after reading began");
        self.ranges.retain(keep);
    }

    /// The reader is about to read from `pos` on: keep `ahead` bytes of the ranges at or past
    /// it requested.
    pub fn advance(&mut self, pos: u64) {
        while self.passed < self.next && self.ranges[self.passed].end <= pos {
            self.pending -= self.ranges[self.passed].end - self.ranges[self.passed].start;
            self.passed += 1;
        }
        while self.next < self.ranges.len() && self.pending < self.ahead {
            let r = self.ranges[self.next].clone();
            self.next += 1;
            if r.end <= pos {
                // behind the reader already: nothing to ask for
                self.passed = self.passed.max(self.next);
                continue;
            }
            // SAFETY: posix_fadvise on a valid fd we borrow; no memory is passed. A failure
            // only loses the hint.
            unsafe {
                libc::posix_fadvise(
                    self.file.as_raw_fd(),
                    r.start as i64,
                    (r.end - r.start) as i64,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
            self.pending += r.end - r.start;
        }
    }

    #[cfg(test)]
    fn requested(&self) -> &[Range<u64>] {
        &self.ranges[..self.next]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_neighbours_and_stays_a_bounded_distance_ahead() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        let slots = [0u64, 1, 2, 5, 9, 10, 20].map(|i| i * 100..(i + 1) * 100);
        let mut ra = ReadAhead::new(&f, slots, 250);
        assert_eq!(ra.ranges, vec![0..300, 500..600, 900..1100, 2000..2100]);
        ra.advance(0);
        // 0..300 alone is past the distance: nothing more yet
        assert_eq!(ra.requested(), std::slice::from_ref(&(0..300)));
        ra.advance(300);
        assert_eq!(ra.requested(), &[0..300, 500..600, 900..1100]);
        ra.advance(1100);
        assert_eq!(ra.requested().len(), 4);
        ra.advance(5000);
        assert_eq!(ra.pending, 0);
    }

    #[test]
    fn long_ranges_are_asked_for_piece_by_piece() {
        let f = tempfile::tempfile().unwrap();
        let mb = 1u64 << 20;
        let mut ra = ReadAhead::new(&f, [0..3 * mb, 3 * mb..11 * mb, 20 * mb..21 * mb], 8 * mb);
        assert_eq!(ra.ranges, vec![0..4 * mb, 4 * mb..8 * mb, 8 * mb..11 * mb, 20 * mb..21 * mb]);
        ra.advance(0);
        assert_eq!(ra.requested(), &[0..4 * mb, 4 * mb..8 * mb]);
        ra.advance(4 * mb);
        // past the first piece: 8 MiB ahead again needs the last two (3 MiB and 1 MiB)
        assert_eq!(ra.requested().len(), 4);
        assert_eq!(ra.pending, 8 * mb);
    }

    #[test]
    fn ranges_the_reader_passed_are_not_requested() {
        let f = tempfile::tempfile().unwrap();
        let mut ra = ReadAhead::new(&f, [0..10, 20..30, 40..50], 5);
        ra.advance(35);
        assert_eq!(ra.requested(), &[0..10, 20..30, 40..50]);
        assert_eq!(ra.pending, 10, "only 40..50 counts as ahead");
    }
}
