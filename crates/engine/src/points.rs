//! Instant points and changed-block tracking, from the file system's own copy-on-write.
//!
//! A **point clone** is a reflink copy (`FICLONE`) of a volume file: the file system shares
//! every block with the volume and copies a block only when one side writes it, so the clone
//! holds the volume's bytes as of one instant however long the capture that reads it takes,
//! while the volume stays writable. XFS (`reflink=1`, the mkfs default) and btrfs have it;
//! ext4 and tmpfs answer `EOPNOTSUPP`/`EXDEV`/`EINVAL`, and the caller falls back to reading
//! the live volume (a "read-pass" point, as before).
//!
//! **Tracking.** The clone of the previous point is kept. Since neither clone is ever written,
//! a block that both clones map to the same *physical* block at the same offset was not
//! written between the two instants (a write to a shared block is copied elsewhere first), so
//! its bytes are the previous point's. [`changed_slots`] compares the two extent maps
//! (`FIEMAP`) slot by slot and names the slots it cannot vouch for; only those are read and
//! hashed. Anything it does not understand (delayed allocation, inline or encoded data, an
//! unknown location, a size change) counts as changed, so a wrong answer costs a read, never
//! a wrong point.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{EngineError, IoContext, Result};

/// Why a clone could not be made: the file system has no reflink (expected on ext4/tmpfs; the
/// caller falls back), or a real error.
#[derive(Debug)]
pub enum CloneOutcome {
    Cloned,
    Unsupported(std::io::Error),
}

/// Make `target` (which must not exist) a reflink clone of `source`, fsynced, via `FICLONE`
/// (rustix's wrapper of the ioctl). The clone is written as `target` + ".tmp" and renamed, so
/// a crash never leaves a partial clone under the final name. On a file system without reflink
/// this returns [`CloneOutcome::Unsupported`] and leaves nothing behind.
pub fn clone_file(source: &Path, target: &Path) -> Result<CloneOutcome> {
    let src = File::open(source).ctx("open", source)?;
    let tmp = target.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let dst = crate::private::options().write(true).create_new(true).open(&tmp).ctx("create", &tmp)?;
    if let Err(e) = rustix::fs::ioctl_ficlone(&dst, &src) {
        let _ = std::fs::remove_file(&tmp);
        let err = std::io::Error::from(e);
        return match err.raw_os_error() {
            // Not this file system (EOPNOTSUPP, ENOTTY on tmpfs), not the same one (EXDEV),
            // or not for these files (EINVAL: e.g. XFS made with reflink=0).
            Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::EXDEV | libc::EINVAL | libc::ENOSYS) => {
                Ok(CloneOutcome::Unsupported(err))
            }
            _ => Err(EngineError::Io { op: "reflink", path: target.to_path_buf(), source: err }),
        };
    }
    let done = (|| {
        dst.sync_all().ctx("fsync", &tmp)?;
        std::fs::rename(&tmp, target).ctx("rename", target)?;
        if let Some(dir) = target.parent() {
            File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)?;
        }
        Ok(CloneOutcome::Cloned)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// One extent of a file's block map, as `FIEMAP` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    pub flags: u32,
}

const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNKNOWN: u32 = 0x2;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
const FIEMAP_EXTENT_ENCODED: u32 = 0x8;
const FIEMAP_EXTENT_DATA_ENCRYPTED: u32 = 0x80;
const FIEMAP_EXTENT_NOT_ALIGNED: u32 = 0x100;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x400;
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// Extents whose physical address says nothing about their bytes: never vouched for.
const UNTRUSTED: u32 = FIEMAP_EXTENT_UNKNOWN
    | FIEMAP_EXTENT_DELALLOC
    | FIEMAP_EXTENT_ENCODED
    | FIEMAP_EXTENT_DATA_ENCRYPTED
    | FIEMAP_EXTENT_NOT_ALIGNED
    | FIEMAP_EXTENT_DATA_INLINE
    | FIEMAP_EXTENT_DATA_TAIL;

/// `struct fiemap` of linux/fiemap.h, followed by room for `EXTENTS_PER_CALL` extents.
#[repr(C)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent` of linux/fiemap.h (56 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

const EXTENTS_PER_CALL: usize = 512;

#[repr(C)]
struct FiemapBuf {
    head: FiemapHeader,
    extents: [FiemapExtent; EXTENTS_PER_CALL],
}

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)`; rustix and libc do not wrap it.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;

/// The extent map of `file` (flushed first, `FIEMAP_FLAG_SYNC`), sorted by logical offset.
/// Holes are simply absent.
pub fn extent_map(file: &File, path: &Path) -> Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut buf: Box<FiemapBuf> = Box::new(FiemapBuf {
        head: FiemapHeader {
            fm_start: 0,
            fm_length: 0,
            fm_flags: 0,
            fm_mapped_extents: 0,
            fm_extent_count: 0,
            fm_reserved: 0,
        },
        extents: [FiemapExtent::default(); EXTENTS_PER_CALL],
    });
    let mut start = 0u64;
    loop {
        buf.head = FiemapHeader {
            fm_start: start,
            fm_length: u64::MAX - start,
            fm_flags: FIEMAP_FLAG_SYNC,
            fm_mapped_extents: 0,
            fm_extent_count: EXTENTS_PER_CALL as u32,
            fm_reserved: 0,
        };
        // SAFETY: FS_IOC_FIEMAP reads the header and writes at most fm_extent_count extents
        // after it; `buf` has room for exactly that many and lives across the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP as _, &mut *buf as *mut FiemapBuf) };
        if rc < 0 {
            return Err(EngineError::Io {
                op: "fiemap",
                path: path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        let n = (buf.head.fm_mapped_extents as usize).min(EXTENTS_PER_CALL);
        if n == 0 {
            break;
        }
        let mut last = false;
        for e in &buf.extents[..n] {
            out.push(Extent { logical: e.fe_logical, physical: e.fe_physical, len: e.fe_length, flags: e.fe_flags });
            last |= e.fe_flags & FIEMAP_EXTENT_LAST != 0;
        }
        let end = out.last().map(|e| e.logical + e.len).unwrap_or(start);
        if last || end <= start {
            break;
        }
        start = end;
    }
    Ok(out)
}

/// Which slots of `chunk_size` bytes of a `size`-byte file may differ between the clone whose
/// map is `old` and the one whose map is `new` (`true`: read and hash it). A slot is vouched
/// unchanged only when both clones map every byte of it to the same physical blocks in the
/// same state (or both have a hole there): it overlaps none of [`differing_ranges`]. That
/// walk follows the extents, not the slots: per slot it took 29 ms of a 32 GiB volume's
/// incremental (262 144 slots, two small vectors each).
pub fn changed_slots(old: &[Extent], new: &[Extent], size: u64, chunk_size: usize) -> Vec<bool> {
    let cs = chunk_size as u64;
    let mut changed = vec![false; size.div_ceil(cs) as usize];
    for (a, b) in differing_ranges(old, new, size) {
        changed[(a / cs) as usize..b.div_ceil(cs) as usize].fill(true);
    }
    changed
}

/// [`changed_slots`] of two clone files, or `None` when it cannot vouch: the sizes differ, or
/// either map cannot be read.
pub fn changed_between(old: &Path, new: &Path, chunk_size: usize) -> Option<Vec<bool>> {
    let (a, b) = (File::open(old).ok()?, File::open(new).ok()?);
    let (sa, sb) = (a.metadata().ok()?.len(), b.metadata().ok()?.len());
    if sa != sb {
        return None;
    }
    let (ma, mb) = (extent_map(&a, old).ok()?, extent_map(&b, new).ok()?);
    Some(changed_slots(&ma, &mb, sa, chunk_size))
}

/// What one byte of a file maps to: a hole, a physical byte (and whether unwritten), or
/// something tracking does not trust.
#[derive(PartialEq, Eq, Clone, Copy)]
enum At {
    Hole,
    Phys(u64, bool),
    Untrusted,
}

fn at(map: &[Extent], pos: u64) -> At {
    let i = map.partition_point(|e| e.logical + e.len <= pos);
    match map.get(i) {
        Some(e) if e.logical <= pos => {
            if e.flags & UNTRUSTED != 0 || e.physical == 0 {
                At::Untrusted
            } else {
                At::Phys(e.physical + (pos - e.logical), e.flags & FIEMAP_EXTENT_UNWRITTEN != 0)
            }
        }
        _ => At::Hole,
    }
}

/// The byte ranges of `[0, size)` where two files' maps may hold different bytes, at the
/// file system's block granularity (every extent boundary of either map cuts the file into
/// pieces; a piece is the same when both map it to the same physical bytes, or both have a
/// hole there). Adjacent ranges are merged.
pub fn differing_ranges(old: &[Extent], new: &[Extent], size: u64) -> Vec<(u64, u64)> {
    let mut cuts: Vec<u64> = vec![0, size];
    for e in old.iter().chain(new) {
        cuts.extend([e.logical, e.logical + e.len].into_iter().filter(|&c| c < size));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (x, y) = (at(old, a), at(new, a));
        if x == y && x != At::Untrusted {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => out.push((a, b)),
        }
    }
    out
}

/// Make `target` hold `clone`'s bytes, given that `clone` is a reflink clone taken of it
/// earlier (the two still share every block neither wrote since): only the ranges whose
/// blocks differ are read, on both sides, and within them only the 4 KiB blocks that differ
/// are written (zero blocks punched, so holes stay holes). Returns (bytes compared, bytes
/// written), or None when the sizes differ (the caller restores from the store instead).
pub fn restore_from_clone(clone: &Path, target: &Path) -> Result<Option<(u64, u64)>> {
    use std::fs::OpenOptions;
    let src = File::open(clone).ctx("open", clone)?;
    let dst = OpenOptions::new().read(true).write(true).open(target).ctx("open", target)?;
    let size = src.metadata().ctx("stat", clone)?.len();
    if dst.metadata().ctx("stat", target)?.len() != size {
        return Ok(None);
    }
    let ranges = differing_ranges(&extent_map(&src, clone)?, &extent_map(&dst, target)?, size);
    let (mut compared, mut written) = (0u64, 0u64);
    let (mut want, mut cur) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for (a, b) in ranges {
        // whole 4 KiB blocks, so a punched block is a whole block
        let (a, b) = (a / 4096 * 4096, b.div_ceil(4096).saturating_mul(4096).min(size));
        let mut pos = a;
        while pos < b {
            let n = ((b - pos) as usize).min(want.len());
            crate::volume_io::read_full_at(&src, clone, &mut want[..n], pos)?;
            crate::volume_io::read_full_at(&dst, target, &mut cur[..n], pos)?;
            written += crate::volume_io::write_differing_blocks(&dst, target, &want[..n], &cur[..n], pos)?;
            compared += n as u64;
            pos += n as u64;
        }
    }
    dst.sync_all().ctx("fsync", target)?;
    Ok(Some((compared, written)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(logical: u64, physical: u64, len: u64) -> Extent {
        Extent { logical, physical, len, flags: FIEMAP_EXTENT_SHARED }
    }

    #[test]
    fn same_blocks_cut_differently_are_unchanged() {
        let old = vec![ext(0, 1 << 20, 256 << 10)];
        let new = vec![ext(0, 1 << 20, 64 << 10), ext(64 << 10, (1 << 20) + (64 << 10), 192 << 10)];
        assert_eq!(changed_slots(&old, &new, 256 << 10, 128 << 10), vec![false, false]);
    }

    #[test]
    fn a_moved_block_a_new_block_or_an_untrusted_one_is_changed() {
        let old = vec![ext(0, 1 << 20, 384 << 10)];
        // slot 1: one 4 KiB block copied elsewhere (a write after the old clone)
        let new = vec![
            ext(0, 1 << 20, 132 << 10),
            ext(132 << 10, 9 << 20, 4 << 10),
            ext(136 << 10, (1 << 20) + (136 << 10), 248 << 10),
        ];
        assert_eq!(changed_slots(&old, &new, 384 << 10, 128 << 10), vec![false, true, false]);
        // data where the old clone had a hole; a hole where it had data
        let new = vec![ext(0, 1 << 20, 128 << 10), ext(512 << 10, 5 << 20, 4 << 10)];
        assert_eq!(changed_slots(&old, &new, 640 << 10, 128 << 10), vec![false, true, true, false, true]);
        let mut delalloc = old.clone();
        delalloc[0].flags |= FIEMAP_EXTENT_DELALLOC;
        assert_eq!(changed_slots(&delalloc, &delalloc, 384 << 10, 128 << 10), vec![true, true, true]);
        // preallocated (unwritten) then written in place: the state differs
        let mut unwritten = old.clone();
        unwritten[0].flags |= FIEMAP_EXTENT_UNWRITTEN;
        assert_eq!(changed_slots(&unwritten, &old, 128 << 10, 128 << 10), vec![true]);
    }

    #[test]
    fn differing_ranges_follow_blocks_not_slots() {
        let old = vec![ext(0, 1 << 20, 384 << 10)];
        let new = vec![
            ext(0, 1 << 20, 132 << 10),
            ext(132 << 10, 9 << 20, 4 << 10),
            ext(136 << 10, (1 << 20) + (136 << 10), 248 << 10),
            ext(512 << 10, 5 << 20, 4 << 10),
        ];
        // one 4 KiB block copied elsewhere; one written into the old clone's hole
        assert_eq!(differing_ranges(&old, &new, 640 << 10), vec![(132 << 10, 136 << 10), (512 << 10, 516 << 10)]);
        let mut delalloc = new.clone();
        delalloc[0].flags |= FIEMAP_EXTENT_DELALLOC;
        assert_eq!(differing_ranges(&old, &delalloc, 640 << 10)[0], (0, 136 << 10));
    }

    #[test]
    fn clone_on_a_file_system_without_reflink_says_so_and_leaves_nothing() {
        // tempdir is on /tmp (often tmpfs) or the build disk (often ext4); on XFS/btrfs the
        // clone works, which is fine too.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("vol.img");
        std::fs::write(&src, vec![7u8; 1 << 16]).unwrap();
        let dst = dir.path().join("vol.point");
        match clone_file(&src, &dst).unwrap() {
            CloneOutcome::Cloned => assert_eq!(std::fs::read(&dst).unwrap(), vec![7u8; 1 << 16]),
            CloneOutcome::Unsupported(_) => assert!(!dst.exists() && !dst.with_extension("tmp").exists()),
        }
    }
}
