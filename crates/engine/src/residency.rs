//! Reading a file without leaving it in the page cache: a job notes which of its pages were
//! not cached when it started, and drops just those once it has read them.
//!
//! A capture reads a whole volume once; a restore reads a pack's chunks once. Pages they pull
//! in are of no use afterwards, and on these VMs a page the guest has not used lately costs a
//! host fault when first filled (see recycle.rs): a cold 4 GiB read took 3.9-5.5 s of system
//! time, 2.8-3.1 s when each 8 MiB was dropped behind the reader (measured 2026-12-04). Pages
//! that were cached before (a volume a VM keeps warm) are left alone: the cache is left as
//! the job found it.

use std::fs::File;
use std::ops::Range;
use std::os::unix::io::AsRawFd;

const PAGE: u64 = 4096;
/// Residency is asked for this much of a range at a time (one byte per page to fill).
const WINDOW: u64 = 64 << 20;
/// A file cached in a pattern finer than this many runs is not tracked (nothing is dropped):
/// the list must stay small next to the 100 MiB budget whatever the volume's size.
const MAX_RUNS: usize = 1 << 16;

/// The byte ranges of a file that were not in the page cache when it was looked at.
pub struct Cold {
    runs: Vec<Range<u64>>,
}

impl Cold {
    /// Look at `range` of `file`. `None` if the kernel will not say (no mapping possible), or
    /// the pattern is too fine to track: then nothing is dropped.
    pub fn of(file: &File, range: Range<u64>) -> Option<Cold> {
        Self::of_ranges(file, std::iter::once(range))
    }

    /// Look at just the `ranges` of `file` a job will read (sorted, not overlapping). A
    /// tracked incremental reads a few thousand slots of a volume: looking at all of a 32 GiB
    /// clone's 8 M pages took 0.3 s, more than reading the slots' bytes warm.
    pub fn of_ranges(file: &File, ranges: impl IntoIterator<Item = Range<u64>>) -> Option<Cold> {
        let ranges: Vec<Range<u64>> = ranges.into_iter().filter(|r| r.start < r.end).collect();
        let mut runs: Vec<Range<u64>> = Vec::new();
        let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else { return Some(Cold { runs }) };
        // One mapping over the span: mapping costs no memory until touched, and mincore never
        // touches. mincore needs page-aligned addresses, so the span starts on a page.
        let base = first.start / PAGE * PAGE;
        let span = (last.end - base) as usize;
        // SAFETY: a read-only shared mapping of a file we hold open, never dereferenced: mincore
        // only reports which of its pages are cached; it is unmapped before this returns.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                base as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        let mut vec = Vec::new();
        let mut looked = || -> Option<()> {
            for r in &ranges {
                let mut at = r.start / PAGE * PAGE;
                while at < r.end {
                    let len = (r.end - at).min(WINDOW);
                    vec.resize(len.div_ceil(PAGE) as usize, 0u8);
                    // SAFETY: [at, at + len) lies inside the mapping made above (base <= at,
                    // at + len <= last.end), and `vec` has one byte per page of it.
                    let rc = unsafe { libc::mincore(map.add((at - base) as usize), len as usize, vec.as_mut_ptr()) };
                    if rc != 0 {
                        return None;
                    }
                    for (i, v) in vec.iter().enumerate() {
                        if v & 1 == 0 {
                            let page = at + i as u64 * PAGE;
                            match runs.last_mut() {
                                Some(r) if r.end == page => r.end = page + PAGE,
                                _ => runs.push(page..page + PAGE),
                            }
                        }
                    }
                    // One run per range is the tracked incremental's own shape (a fresh clone
                    // is all cold): as many as the job has ranges are allowed.
                    if runs.len() > MAX_RUNS.max(ranges.len()) {
                        return None;
                    }
                    at += len;
                }
            }
            Some(())
        };
        let done = looked();
        // SAFETY: the mapping made above, of `span` bytes, unmapped once.
        unsafe { libc::munmap(map, span) };
        done.map(|()| Cold { runs })
    }

    /// Whether no page of `range` was cached when looked at.
    pub fn covers(&self, range: Range<u64>) -> bool {
        let (from, to) = (range.start / PAGE * PAGE, range.end.div_ceil(PAGE) * PAGE);
        let first = self.runs.partition_point(|r| r.end <= from);
        self.runs.get(first).is_some_and(|r| r.start <= from && r.end >= to) || from >= to
    }

    /// How many bytes of `range` lay in pages that were not cached when looked at.
    pub fn cold_bytes(&self, range: Range<u64>) -> u64 {
        let first = self.runs.partition_point(|r| r.end <= range.start);
        self.runs[first..]
            .iter()
            .take_while(|r| r.start < range.end)
            .map(|r| r.end.min(range.end) - r.start.max(range.start))
            .sum()
    }

    /// Drop from the cache the pages of `range` that were not cached when looked at (clean
    /// pages only: a page written since stays until written back). Best effort.
    pub fn release(&self, file: &File, range: Range<u64>) {
        let first = self.runs.partition_point(|r| r.end <= range.start);
        for r in self.runs[first..].iter().take_while(|r| r.start < range.end) {
            let (from, to) = (r.start.max(range.start), r.end.min(range.end));
            // Only whole pages: a partial page at either end may hold bytes someone else
            // cached (fadvise rounds inward anyway).
            // SAFETY: posix_fadvise on a valid fd; no memory is passed.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), from as i64, (to - from) as i64, libc::POSIX_FADV_DONTNEED)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// A `len`-byte file of sevens, none of it cached; None (and a SKIP line) where the file
    /// system keeps pages after DONTNEED.
    fn uncached_file(len: u64) -> Option<(tempfile::TempDir, File)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; len as usize]).unwrap();
        let f = File::open(&path).unwrap();
        f.sync_all().unwrap();
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if cached_pages(&f, len) != 0 {
            eprintln!("SKIP: this file system keeps pages cached after DONTNEED");
            return None;
        }
        Some((dir, f))
    }

    fn cached_pages(f: &File, len: u64) -> usize {
        let c = Cold::of(f, 0..len).unwrap();
        (len / PAGE) as usize - c.runs.iter().map(|r| ((r.end - r.start) / PAGE) as usize).sum::<usize>()
    }

    #[test]
    fn pages_cached_before_stay_and_pages_read_in_go() {
        let len = 4096 * PAGE;
        let Some((_dir, f)) = uncached_file(len) else { return };
        // someone (a VM using the volume) caches the start
        let mut buf = vec![0u8; (16 * PAGE) as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        let before = cached_pages(&f, len);
        assert!((16..4096).contains(&before), "{before} pages cached (read-ahead included)");
        // the job looks, reads everything, then releases what it brought in
        let cold = Cold::of(&f, 0..len).unwrap();
        let mut all = vec![0u8; len as usize];
        f.read_exact_at(&mut all, 0).unwrap();
        assert!(all.iter().all(|&b| b == 7));
        assert!(cached_pages(&f, len) > before);
        cold.release(&f, 0..len);
        assert_eq!(cached_pages(&f, len), before, "the pages cached before the job stay, the rest go");
    }

    #[test]
    fn only_the_ranges_looked_at_are_released() {
        let len = 1024 * PAGE;
        let Some((_dir, f)) = uncached_file(len) else { return };
        // a job that reads two slots looks at just those
        let slots = [64 * PAGE..96 * PAGE, 512 * PAGE..544 * PAGE];
        let cold = Cold::of_ranges(&f, slots.iter().cloned()).unwrap();
        assert_eq!(cold.runs, slots.to_vec(), "each cold slot is one run, nothing between them");
        // the whole file gets cached meanwhile (someone else reads it)
        let mut all = vec![0u8; len as usize];
        f.read_exact_at(&mut all, 0).unwrap();
        cold.release(&f, 0..len);
        assert_eq!(cached_pages(&f, len), 1024 - 64, "only the two slots' pages go");
        assert_eq!(Cold::of_ranges(&f, std::iter::empty()).unwrap().runs, vec![]);
    }

    /// `covers` (whether a read may skip the cache) is true only when no page of the range,
    /// partial pages at its ends included, was cached.
    #[test]
    fn a_range_is_all_cold_only_if_none_of_its_pages_was_cached() {
        let cold = Cold { runs: vec![0..8 * PAGE, 9 * PAGE..12 * PAGE] };
        assert!(cold.covers(0..8 * PAGE));
        assert!(cold.covers(100..8 * PAGE - 1), "partial pages at both ends");
        assert!(cold.covers(9 * PAGE + 5..10 * PAGE));
        assert!(!cold.covers(7 * PAGE..9 * PAGE), "page 8 was cached");
        assert!(!cold.covers(8 * PAGE - 1..8 * PAGE + 1), "its last byte sits on page 8");
        assert!(!cold.covers(11 * PAGE..13 * PAGE), "page 12 is past the last run");
        assert!(cold.covers(5..5), "an empty range");
        assert!(!Cold { runs: vec![] }.covers(0..1));
    }
}
