//! Reading the database file in ahead of many random lookups.
//!
//! A dedup lookup descends the chunk table's B-tree to a leaf, and digests are random, so a
//! capture's n lookups touch up to n leaves spread over the whole file. On a cold cache each
//! is a 4 KiB random read: the kernel reads ahead for sequential readers only, and SQLite
//! reads with pread(). A 32 GiB volume's scattered incremental (4096 lookups in a 21 MB file)
//! spent 1.5 s in them after the page cache was dropped; reading the same file in order takes
//! ~50 ms. So when the lookups come to at least one per [`PAGES_PER_LOOKUP`] pages of the file,
//! the kernel is asked to read the whole file (and its WAL) ahead: `POSIX_FADV_WILLNEED` queues
//! the reads and returns, and pages already cached cost nothing. Fewer lookups (a clustered
//! change) keep their few random reads. The kernel reads at most its read-ahead window per
//! call (force_page_cache_ra clamps to it), so the file is asked for in [`STEP`] pieces.
//!
//! The file is never opened here: SQLite's locks on it are POSIX record locks, which the
//! kernel drops for the whole process when *any* descriptor of the file closes, so opening
//! and closing it beside SQLite let checkpoints run under readers (an early version did:
//! SQLITE_IOERR_SHORT_READ within seconds). The hint goes to a descriptor SQLite holds,
//! found in /proc/self/fd. Should it be closed and reused meanwhile, the hint lands on some
//! other file, which a hint cannot harm.

use std::os::unix::io::RawFd;
use std::path::Path;

/// A random 4 KiB read costs about as much as reading this many pages in order (0.3-0.4 ms
/// against ~400 MB/s on this VM's virtio disk).
const PAGES_PER_LOOKUP: u64 = 32;

/// The default read-ahead window (`read_ahead_kb` 128): one call asks for no more.
const STEP: u64 = 128 << 10;

/// Read `db` and its `-wal` ahead if `lookups` random lookups would cost more than that.
pub(crate) fn read_ahead_for(db: &Path, lookups: usize) {
    let Ok(db) = std::fs::canonicalize(db) else { return };
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let fds = [open_fd_of(&db), open_fd_of(Path::new(&wal))];
    let len = |fd: RawFd| {
        // SAFETY: fstat fills the struct it is given; a closed fd only fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } == 0 {
            st.st_size as u64
        } else {
            0
        }
    };
    let Some(db_fd) = fds[0] else { return };
    if (lookups as u64).saturating_mul(PAGES_PER_LOOKUP) < len(db_fd) / 4096 {
        return;
    }
    for fd in fds.into_iter().flatten() {
        for at in (0..len(fd)).step_by(STEP as usize) {
            // SAFETY: posix_fadvise passes no memory; on a descriptor closed meanwhile it fails,
            // on one reused meanwhile it hints another file. Best effort either way.
            unsafe { libc::posix_fadvise(fd, at as i64, STEP as i64, libc::POSIX_FADV_WILLNEED) };
        }
    }
}

/// A descriptor this process holds open on `path` (canonical), without opening one.
fn open_fd_of(path: &Path) -> Option<RawFd> {
    std::fs::read_dir("/proc/self/fd").ok()?.flatten().find_map(|e| {
        let fd: RawFd = e.file_name().to_str()?.parse().ok()?;
        (std::fs::read_link(e.path()).ok()? == path).then_some(fd)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::io::AsRawFd;
    use std::time::{Duration, Instant};

    /// Pages of `f`'s first `len` bytes in the page cache (mincore through a mapping).
    fn cached(f: &File, len: usize) -> usize {
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: a read-only mapping never dereferenced, unmapped right after mincore.
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
            libc::munmap(p, len);
        }
        vec.iter().filter(|&&v| v & 1 == 1).count()
    }

    #[test]
    fn many_lookups_read_the_file_in_and_a_few_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let len = 4 << 20; // 1024 pages
        std::fs::write(&db, vec![7u8; len]).unwrap();
        let f = File::open(&db).unwrap();
        f.sync_all().unwrap();
        // SAFETY: fadvise on a descriptor we hold.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if cached(&f, len) != 0 {
            eprintln!("SKIP: this file system keeps pages cached after DONTNEED");
            return;
        }
        read_ahead_for(&db, 31); // 31 lookups * 32 < 1024 pages: not worth it
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(cached(&f, len), 0);
        read_ahead_for(&db, 32);
        let until = Instant::now() + Duration::from_secs(10);
        while cached(&f, len) < 1024 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(cached(&f, len), 1024, "the whole file was read in, not only the first window");
        read_ahead_for(&dir.path().join("missing.db"), 1_000_000); // nothing to read: no error
    }

    /// Nothing here opens the file: a descriptor of it closing would drop SQLite's locks.
    #[test]
    fn a_file_the_process_does_not_hold_open_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        std::fs::write(&db, vec![7u8; 1 << 20]).unwrap();
        assert_eq!(open_fd_of(&std::fs::canonicalize(&db).unwrap()), None);
        read_ahead_for(&db, 1_000_000);
        let f = File::open(&db).unwrap();
        assert_eq!(open_fd_of(&std::fs::canonicalize(&db).unwrap()), Some(f.as_raw_fd()));
    }
}
