//! Engine tests on real files: capture, incremental, restore, roll back, GC, verify.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use disksnap_engine::{NoProgress, Store};

const CS: usize = 64 * 1024;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn make_image(path: &Path, size: u64) {
    let f = OpenOptions::new().create(true).truncate(true).write(true).open(path).unwrap();
    f.set_len(size).unwrap();
    // data at a few places, holes elsewhere, one text-like region that compresses
    f.write_all_at(&pattern(1, 3 * CS), 0).unwrap();
    f.write_all_at(&b"hello disk ".repeat(20000), 40 * CS as u64).unwrap();
    f.write_all_at(&pattern(2, CS / 2), 100 * CS as u64 + 77).unwrap();
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, offset).unwrap();
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn full_incremental_restore_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("vol.img");
    make_image(&img, 128 * CS as u64);
    let v1 = bytes(&img);

    let mut taken = false;
    let full = store.capture("s1", &img, None, &NoProgress, &mut || taken = true).unwrap();
    assert!(taken);
    assert_eq!(full.slots, 128);
    assert!(full.zero_slots >= 100, "holes are zero slots: {full:?}");
    assert!(full.read_bytes < 20 * CS as u64, "holes are not read: {full:?}");
    assert!(full.written_bytes < 10 * CS as u64, "text compresses: {full:?}");

    poke(&img, 5 * CS as u64, &pattern(3, 4096)); // hole -> data
    poke(&img, CS as u64 + 100, &pattern(4, 10)); // inside existing data
    let v2 = bytes(&img);
    let inc = store.capture("s2", &img, Some("s1"), &NoProgress, &mut || {}).unwrap();
    assert_eq!(inc.changed_slots, 2, "{inc:?}");
    assert_eq!(inc.written_chunks, 2);
    assert!(inc.added_bytes > 0 && inc.added_bytes < 2 * CS as u64 + 100);

    // restore each point into a new file: exact bytes, sparse
    for (name, want) in [("s1", &v1), ("s2", &v2)] {
        let out = dir.path().join(format!("{name}.out"));
        store.restore_new(name, &out, &NoProgress).unwrap();
        assert_eq!(&bytes(&out), want, "{name}");
        let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
        assert!(allocated < 30 * CS as u64, "restore is sparse: {allocated}");
        // a second restore onto the same path refuses and leaves the file alone
        assert!(store.restore_new(name, &out, &NoProgress).is_err());
        assert_eq!(&bytes(&out), want);
    }

    // roll back in place writes only what differs, then holes come back
    let rb = store.restore_in_place("s1", &img, &NoProgress).unwrap();
    assert_eq!(bytes(&img), v1);
    assert_eq!(rb.written_slots, 2, "{rb:?}");
    let rb2 = store.restore_in_place("s1", &img, &NoProgress).unwrap();
    assert_eq!(rb2.written_slots, 0);

    // a grown volume rolls back to the snapshot's size
    OpenOptions::new().write(true).open(&img).unwrap().set_len(200 * CS as u64).unwrap();
    store.restore_in_place("s2", &img, &NoProgress).unwrap();
    assert_eq!(bytes(&img), v2);
}

#[test]
fn deleting_any_point_keeps_the_others_and_gc_frees_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("vol.img");
    make_image(&img, 64 * CS as u64);
    let mut versions = vec![];
    for i in 0..4u64 {
        if i > 0 {
            poke(&img, 7 * CS as u64, &pattern(10 + i, CS)); // each point rewrites the same slot
        }
        versions.push(bytes(&img));
        let parent = (i > 0).then(|| format!("p{}", i - 1));
        store.capture(&format!("p{i}"), &img, parent.as_deref(), &NoProgress, &mut || {}).unwrap();
    }
    // drop the middle points; GC must keep everything p0 and p3 reference
    store.remove_index("p1").unwrap();
    store.remove_index("p2").unwrap();
    let live = vec!["p0".to_string(), "p3".to_string()];
    let gc = store.gc(&live, Duration::ZERO, &NoProgress).unwrap();
    assert_eq!(gc.sweep.removed, 2, "the chunks only p1 and p2 held: {gc:?}");
    for (name, want) in [("p0", &versions[0]), ("p3", &versions[3])] {
        let out = dir.path().join(format!("{name}.out"));
        store.restore_new(name, &out, &NoProgress).unwrap();
        assert_eq!(&bytes(&out), want);
    }
    // nothing left to free
    assert_eq!(store.gc(&live, Duration::ZERO, &NoProgress).unwrap().sweep.removed, 0);
    // with a grace period, unreferenced but recent chunks stay
    store.remove_index("p3").unwrap();
    let gc = store.gc(&["p0".to_string()], Duration::from_secs(3600), &NoProgress).unwrap();
    assert_eq!(gc.sweep.removed, 0);
    assert!(gc.sweep.kept_recent > 0);
}

#[test]
fn verify_catches_a_flipped_bit_and_names_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("vol.img");
    make_image(&img, 64 * CS as u64);
    store.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    poke(&img, 50 * CS as u64, &pattern(99, CS));
    store.capture("b", &img, Some("a"), &NoProgress, &mut || {}).unwrap();
    let live = vec!["a".to_string(), "b".to_string()];
    assert!(store.verify(&live, &NoProgress).unwrap().bad_chunks.is_empty());

    // flip one bit in the chunk only "b" has
    let idx = store.read_index("b").unwrap();
    let d = idx.digests[50];
    let loc = store.chunk_index().find(&[d]).unwrap().remove(0).expect("indexed");
    let path = dir.path().join("store").join(disksnap_engine::pack::pack_key(&loc.pack));
    let mut raw = std::fs::read(&path).unwrap();
    raw[loc.offset as usize + 1000] ^= 0x04;
    std::fs::write(&path, raw).unwrap();

    let report = store.verify(&live, &NoProgress).unwrap();
    assert_eq!(report.bad_chunks.len(), 1);
    assert_eq!(report.broken.len(), 1);
    assert_eq!(report.broken[0].0, "b");
    // reading it fails loudly instead of returning wrong bytes
    let err = store.restore_new("b", &dir.path().join("b.out"), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("missing") || err.to_string().contains("corrupt"), "{err}");
    assert!(!dir.path().join("b.out").exists(), "a failed restore leaves no file");
    // the next capture of the same bytes heals the store
    store.capture("c", &img, Some("a"), &NoProgress, &mut || {}).unwrap();
    let out = dir.path().join("b2.out");
    store.restore_new("b", &out, &NoProgress).unwrap();
    assert_eq!(bytes(&out), bytes(&img));
}

#[test]
fn chunk_size_is_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("store");
    assert_eq!(Store::open(&p, Some(16384)).unwrap().chunk_size(), 16384);
    assert_eq!(Store::open(&p, Some(65536)).unwrap().chunk_size(), 16384);
    assert!(Store::open(&dir.path().join("bad"), Some(1000)).is_err());
}

/// Write `path`'s dirty pages back and drop all its pages from the page cache.
fn drop_cache(path: &Path) {
    use std::os::unix::io::AsRawFd;
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: posix_fadvise on a file we hold open; no memory is passed.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// A volume that is not in the page cache (whose pages a capture drops again once read,
/// residency.rs) is captured, captured incrementally and rolled back exactly, an odd-sized
/// tail included, and the roll back still writes only the slots that differ.
#[test]
fn uncached_volumes_are_captured_and_rolled_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("vol.img");
    let size = 128 * CS as u64 + 4096 + 512;
    make_image(&img, size);
    poke(&img, 128 * CS as u64 + 100, &pattern(9, 4300));
    let v1 = bytes(&img);
    drop_cache(&img);
    store.capture("s1", &img, None, &NoProgress, &mut || {}).unwrap();

    poke(&img, 2 * CS as u64 + 4096, &pattern(10, 8192));
    poke(&img, 128 * CS as u64 + 4000, &pattern(11, 200));
    let v2 = bytes(&img);
    drop_cache(&img);
    let inc = store.capture("s2", &img, Some("s1"), &NoProgress, &mut || {}).unwrap();
    assert_eq!(inc.changed_slots, 2, "{inc:?}");

    for (name, want) in [("s1", &v1), ("s2", &v2)] {
        let out = dir.path().join(format!("{name}.out"));
        store.restore_new(name, &out, &NoProgress).unwrap();
        assert_eq!(&bytes(&out), want, "{name}");
    }
    // A hole of s1 written since: the roll back punches it again (once its compare is over).
    poke(&img, 60 * CS as u64 + 8192, &pattern(12, 3 * 4096));
    drop_cache(&img);
    let rb = store.restore_in_place("s1", &img, &NoProgress).unwrap();
    assert_eq!(rb.written_slots, 3, "{rb:?}");
    assert_eq!(bytes(&img), v1);
    let f = File::open(&img).unwrap();
    // SAFETY: lseek on a file we hold open.
    let next_data = unsafe { libc::lseek(std::os::unix::io::AsRawFd::as_raw_fd(&f), 60 * CS as i64, libc::SEEK_DATA) };
    assert!(next_data >= 61 * CS as i64, "slot 60 is a hole again (next data at {next_data})");
}

#[test]
fn odd_sized_image_roundtrips() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("odd.img");
    std::fs::write(&img, pattern(5, 3 * CS + 1234)).unwrap();
    store.capture("o", &img, None, &NoProgress, &mut || {}).unwrap();
    let out = dir.path().join("o.out");
    store.restore_new("o", &out, &NoProgress).unwrap();
    assert_eq!(bytes(&out), bytes(&img));
    let _ = File::open(&out).unwrap();
}

#[test]
fn temp_files_of_dead_processes_go_and_a_live_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("disk.img");
    make_image(&img, 200 * CS as u64);
    store.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    let chunks = dir.path().join("store/packs");
    std::fs::create_dir_all(chunks.join("abc")).unwrap();
    let indexes = dir.path().join("store/indexes");
    // What a process killed mid-capture (pid 4000001, never a live pid) leaves, and what a
    // live one (pid 4000002) has in flight.
    let dead_chunk = chunks.join("abc/.tmp-4000001-00000000000000aa");
    let dead_index = indexes.join(".tmp-4000001-00000000000000bb");
    let dead_pin = indexes.join("x-read-00000000000000cc.pending");
    let live_chunk = chunks.join("abc/.tmp-4000002-00000000000000dd");
    for p in [&dead_chunk, &dead_index, &dead_pin, &live_chunk] {
        std::fs::write(p, b"partial").unwrap();
    }
    let dead: std::collections::HashSet<u32> = [4000001].into_iter().collect();
    assert_eq!(store.remove_dead_temp_files(&dead).unwrap(), 3);
    assert!(!dead_chunk.exists() && !dead_index.exists() && !dead_pin.exists());
    assert!(live_chunk.exists(), "a live process's temp file was removed");
    assert!(store.has_index("a"));
    let out = dir.path().join("out.img");
    store.restore_new("a", &out, &NoProgress).unwrap();
    assert_eq!(bytes(&out), bytes(&img));
}

/// A library user with the usual umask 022 still gets owner-only files and directories: the
/// chunks, indexes and restored images are customers' disk bytes.
#[test]
fn everything_the_engine_creates_is_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only changes the mode of files created later; 022 is what a login shell has.
    unsafe { libc::umask(0o022) };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root, Some(CS)).unwrap();
    let img = dir.path().join("vol.img");
    make_image(&img, 64 * CS as u64);
    store.capture("s1", &img, None, &NoProgress, &mut || {}).unwrap();
    let copy = dir.path().join("copy.img");
    store.restore_new("s1", &copy, &NoProgress).unwrap();
    let sparse = dir.path().join("sparse.img");
    disksnap_engine::volume_io::sparse_copy(&img, &sparse, 64 * CS as u64, &|_, _| {}).unwrap();
    let mut open = Vec::new();
    let mut todo = vec![root.clone(), copy, sparse];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(format!("{:o} {}", meta.permissions().mode() & 0o777, p.display()));
        }
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(open.is_empty(), "readable by others:\n{}", open.join("\n"));
}

/// A restore runs batch after batch, the next one's reads queued while the last one's finish
/// (overlap.rs): several batches restore and roll back exactly, and a damaged chunk in a later
/// batch fails the whole restore, leaving no file.
#[test]
fn restores_of_many_batches_are_exact_and_a_bad_chunk_in_any_fails_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), Some(CS)).unwrap();
    let img = dir.path().join("vol.img");
    let slots = 1300u64; // a batch is 512 slots: three of them
    let f = OpenOptions::new().create(true).truncate(true).write(true).open(&img).unwrap();
    f.set_len(slots * CS as u64 + 999).unwrap();
    for i in (0..slots).step_by(7) {
        f.write_all_at(&pattern(1000 + i, CS), i * CS as u64).unwrap();
    }
    drop(f);
    let v1 = bytes(&img);
    store.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    let out = dir.path().join("a.out");
    let st = store.restore_new("a", &out, &NoProgress).unwrap();
    assert_eq!(st.written_slots, slots.div_ceil(7), "{st:?}");
    assert!(bytes(&out) == v1, "restored other bytes");

    // changes in the first batch and the last, rolled back
    poke(&img, 3 * CS as u64, &pattern(7, 100));
    poke(&img, 1295 * CS as u64 + 4096, &pattern(8, 5000));
    let rb = store.restore_in_place("a", &img, &NoProgress).unwrap();
    assert_eq!(rb.written_slots, 2, "{rb:?}");
    assert!(bytes(&img) == v1, "rolled back to other bytes");

    // a flipped byte in slot 700's chunk (second batch)
    let idx = store.read_index("a").unwrap();
    let loc = store.chunk_index().find(&[idx.digests[700]]).unwrap().remove(0).expect("indexed");
    let pack = dir.path().join("store").join(disksnap_engine::pack::pack_key(&loc.pack));
    let mut raw = std::fs::read(&pack).unwrap();
    raw[loc.offset as usize + 500] ^= 0x40;
    std::fs::write(&pack, raw).unwrap();
    let bad = dir.path().join("bad.out");
    let err = store.restore_new("a", &bad, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(!bad.exists(), "a failed restore leaves no file");
    poke(&img, 700 * CS as u64, &pattern(9, 10));
    let err = store.restore_in_place("a", &img, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}
