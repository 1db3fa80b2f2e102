//! A pass over a volume's data (a capture's read, a roll back's compare) that reads what the
//! page cache does not hold past it, with `O_DIRECT`.
//!
//! Filling the page cache is what a cold pass cost on these VMs, not the device: a buffered
//! `dd` of the cold 4 GiB bench volume took 8.3 s, 8.2 of them system time (each page faulted
//! in from the host, then dropped again by residency.rs), where a direct `dd` in 1 MiB reads
//! took 0.8 s. A cold roll back on ext4 read and hashed 2.7 GB in 2.8-3.0 s, 2.1 s of it
//! system time. Pages the cache holds (a volume a VM keeps warm, blocks written since) are
//! read buffered as before: a copy out of the cache beats a trip to the device.
//!
//! Neighbouring slots are read together, up to [`GROUP_BYTES`] at a time: a direct read holds
//! its thread until the device answers, so few large reads beat many small ones (`dd`, 4 GiB
//! direct: 1.94 s in 128 KiB reads, 0.79 s in 1 MiB ones).
//!
//! Only whole passes read directly. A tracked incremental reads scattered slots of a fresh
//! clone, and there read-ahead (readahead.rs) queues many reads at once where a direct read
//! per thread would keep two in flight.
//!
//! Coherence is the kernel's: a direct read first writes back any dirty page of its range, so
//! it sees every write made before it, as a buffered read does.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::direct::ALIGN;
use crate::error::{EngineError, Result};
use crate::residency::Cold;
use crate::volume_io::read_full_at;

/// Slots read in one go, at most (1 MiB: 8 slots of the default 128 KiB).
pub const GROUP_BYTES: usize = 1 << 20;

pub struct VolumeReader<'a> {
    file: &'a File,
    path: &'a Path,
    /// The volume opened with `O_DIRECT`, when the pass may read past the cache.
    direct: Option<File>,
    /// Set once the file system refused a direct read: the rest of the pass reads buffered.
    refused: AtomicBool,
    /// What was not cached when the pass began.
    cold: Option<&'a Cold>,
}

impl<'a> VolumeReader<'a> {
    /// A reader of `file` (opened buffered, at `path`). `whole_pass`: the job reads whole
    /// extents in order, so what `cold` says was not cached may be read directly.
    pub fn new(file: &'a File, path: &'a Path, cold: Option<&'a Cold>, whole_pass: bool) -> Self {
        let direct = (whole_pass && cold.is_some())
            .then(|| crate::private::options().read(true).custom_flags(libc::O_DIRECT).open(path).ok())
            .flatten();
        VolumeReader { file, path, direct, refused: AtomicBool::new(false), cold }
    }

    /// Whether `range` will be read past the cache: most of its pages were not cached.
    /// Read-ahead for such a range only fills pages nobody reads.
    pub fn reads_directly(&self, range: Range<u64>) -> bool {
        let len = range.end.saturating_sub(range.start);
        self.direct.is_some()
            && !self.refused.load(Ordering::Relaxed)
            && self.cold.is_some_and(|c| 2 * c.cold_bytes(range) >= len)
    }

    /// Fill `buf` from the volume at `at` with `O_DIRECT` (bytes past the end of the file read
    /// as zero), once the caller has decided the range goes past the cache. `Ok(false)` if it
    /// cannot (`buf` or `at` off a block boundary, a file system
    /// that refuses): nothing was read, the caller reads buffered.
    fn read_past_cache(&self, buf: &mut [u8], at: u64) -> Result<bool> {
        let whole = buf.len() / ALIGN * ALIGN;
        let aligned = (buf.as_ptr() as usize).is_multiple_of(ALIGN) && at.is_multiple_of(ALIGN as u64);
        let Some(d) = self.direct.as_ref().filter(|_| aligned && whole > 0) else { return Ok(false) };
        match read_direct(d, &mut buf[..whole], at) {
            Ok(true) => read_full_at(self.file, self.path, &mut buf[whole..], at + whole as u64).map(|()| true),
            // The file ended inside the direct part: the rest reads as zeros.
            Ok(false) => {
                buf[whole..].fill(0);
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.refused.store(true, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(EngineError::Io { op: "read", path: self.path.to_path_buf(), source: e }),
        }
    }

    /// Read the `wanted` ones of `slots` (ascending slot numbers; slot `slots[k]` lands at
    /// `buf[k * cs..]`, `len(i)` bytes long) and hand each to `each(k, bytes)` as soon as it is
    /// in. A run of neighbouring wanted slots read directly is one read; read buffered, each
    /// slot is its own, handed on while its bytes are still in the CPU's cache (a 1 MiB copy
    /// out of the page cache before hashing cost a warm roll back 0.2 s of user time).
    /// Slots not wanted are left as they are. Returns the bytes read.
    pub fn read_slots(
        &self,
        slots: &[usize],
        wanted: &[bool],
        cs: usize,
        len: impl Fn(usize) -> usize,
        buf: &mut [u8],
        mut each: impl FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        let mut read = 0;
        let mut k = 0;
        while k < slots.len() {
            if !wanted[k] {
                k += 1;
                continue;
            }
            let mut end = k + 1;
            while end < slots.len() && wanted[end] && slots[end] == slots[end - 1] + 1 {
                end += 1;
            }
            // Every slot but a volume's last is `cs` long, and a short last slot ends its run.
            let bytes = (end - 1 - k) * cs + len(slots[end - 1]);
            let at = slots[k] as u64 * cs as u64;
            if self.reads_directly(at..at + bytes as u64) {
                let run = &mut buf[k * cs..k * cs + bytes];
                if !self.read_past_cache(run, at)? {
                    read_full_at(self.file, self.path, run, at)?;
                }
                for j in k..end {
                    each(j, &buf[j * cs..j * cs + len(slots[j])])?;
                }
            } else {
                for j in k..end {
                    let slot = &mut buf[j * cs..j * cs + len(slots[j])];
                    read_full_at(self.file, self.path, slot, slots[j] as u64 * cs as u64)?;
                    each(j, slot)?;
                }
            }
            read += bytes as u64;
            k = end;
        }
        Ok(read)
    }
}

/// Read `buf` (aligned, a whole number of blocks) at `at` through the direct handle `file`.
/// `Ok(false)` if the file ended first: the rest of `buf` is zero-filled.
fn read_direct(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(n) if n > 0 && (got + n).is_multiple_of(ALIGN) => got += n,
            // A short read off a block boundary, or none, is the end of the file.
            Ok(n) => {
                buf[got + n..].fill(0);
                return Ok(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A buffer whose bytes start on an [`ALIGN`] boundary, as direct reads need.
pub struct AlignedBuf {
    vec: Vec<u8>,
    skip: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let vec = vec![0u8; len + ALIGN];
        let skip = vec.as_ptr().align_offset(ALIGN);
        AlignedBuf { vec, skip, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.vec[self.skip..self.skip + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.skip..self.skip + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `len` bytes of a pattern, none of it cached (the test is skipped, with a
    /// line saying so, where the file system keeps pages after DONTNEED).
    fn cold_file(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
        let path = dir.join("vol.img");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut f = File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        // SAFETY: posix_fadvise on a valid fd; no memory is passed.
        unsafe { libc::posix_fadvise(std::os::unix::io::AsRawFd::as_raw_fd(&f), 0, 0, libc::POSIX_FADV_DONTNEED) };
        (path, data)
    }

    #[test]
    fn slots_read_directly_or_not_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let cs = 64 << 10;
        // Ten slots and a short eleventh, not a whole block at its end.
        let size = 10 * cs + 5000;
        let (path, data) = cold_file(dir.path(), size);
        let file = File::open(&path).unwrap();
        let cold = Cold::of(&file, 0..size as u64).expect("residency known");
        let len = |i: usize| if i == 10 { 5000 } else { cs };
        for whole_pass in [true, false] {
            let reader = VolumeReader::new(&file, &path, Some(&cold), whole_pass);
            if whole_pass && reader.direct.is_none() {
                eprintln!("SKIP direct part: this file system refuses O_DIRECT");
            }
            let slots: Vec<usize> = (0..11).collect();
            // Runs: 0-2, 4, 6-10 (ending in the short slot); 3 and 5 not wanted.
            let wanted: Vec<bool> = slots.iter().map(|&i| i != 3 && i != 5).collect();
            let mut buf = AlignedBuf::new(11 * cs);
            buf.fill(0xAA);
            let mut handed = Vec::new();
            let read = reader
                .read_slots(&slots, &wanted, cs, len, &mut buf, |k, bytes| {
                    assert!(bytes == &data[k * cs..k * cs + len(k)], "slot {k} as handed on");
                    handed.push(k);
                    Ok(())
                })
                .unwrap();
            assert_eq!(read, (8 * cs + 5000) as u64);
            assert_eq!(handed, [0, 1, 2, 4, 6, 7, 8, 9, 10]);
            for (k, &i) in slots.iter().enumerate() {
                let got = &buf[k * cs..k * cs + len(i)];
                if wanted[k] {
                    assert!(got == &data[i * cs..i * cs + len(i)], "slot {i} (whole pass {whole_pass})");
                } else {
                    assert!(got.iter().all(|&b| b == 0xAA), "slot {i} was not to be read");
                }
            }
            // Past the end of the file reads as zeros, direct or not, a partial block after
            // whole ones included: the last slot asked for longer than the file holds.
            let mut tail = AlignedBuf::new(cs);
            tail.fill(0xAA);
            let long = 3 * ALIGN - 100;
            reader
                .read_slots(
                    &[10],
                    &[true],
                    cs,
                    |_| long,
                    &mut tail,
                    |_, bytes| {
                        assert!(bytes[..5000] == data[10 * cs..], "whole pass {whole_pass}");
                        assert!(bytes[5000..].iter().all(|&b| b == 0), "whole pass {whole_pass}");
                        Ok(())
                    },
                )
                .unwrap();
        }
    }

    #[test]
    fn only_mostly_cold_ranges_are_read_directly() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = cold_file(dir.path(), 1 << 20);
        let file = File::open(&path).unwrap();
        // Cache the first 256 KiB, and no more (no read-ahead past it).
        // SAFETY: posix_fadvise on a valid fd; no memory is passed.
        unsafe { libc::posix_fadvise(std::os::unix::io::AsRawFd::as_raw_fd(&file), 0, 0, libc::POSIX_FADV_RANDOM) };
        let mut warm = vec![0u8; 256 << 10];
        file.read_exact_at(&mut warm, 0).unwrap();
        let Some(cold) = Cold::of(&file, 0..1 << 20) else { return };
        if cold.cold_bytes(0..1 << 20) != 768 << 10 {
            eprintln!("SKIP: this file system does not report page residency as written");
            return;
        }
        let reader = VolumeReader::new(&file, &path, Some(&cold), true);
        if reader.direct.is_none() {
            eprintln!("SKIP: this file system refuses O_DIRECT");
            return;
        }
        assert!(!reader.reads_directly(0..256 << 10), "all cached");
        assert!(!reader.reads_directly(0..400 << 10), "mostly cached");
        assert!(reader.reads_directly(0..1 << 20), "mostly cold");
        assert!(reader.reads_directly(512 << 10..1 << 20), "all cold");
        let scattered = VolumeReader::new(&file, &path, Some(&cold), false);
        assert!(!scattered.reads_directly(512 << 10..1 << 20), "not a whole pass");
    }
}
