//! The pack store under stress: GC racing captures that deduplicate against the very chunks it
//! is judging, repack, the index rebuilt from the packs, a pre-pack store read and migrated.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use disksnap_engine::backend::local::LocalBackend;
use disksnap_engine::chunk_index::{IndexedChunk, Location, PackEntry, PackRecord};
use disksnap_engine::{ChunkIndex, Digest, MemoryIndex, NoProgress, Store};

const CS: usize = 64 * 1024;

fn noise(seed: u64, len: usize) -> Vec<u8> {
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

fn image(path: &Path, seeds: &[u64]) {
    let f = OpenOptions::new().create(true).truncate(true).write(true).open(path).unwrap();
    f.set_len((seeds.len() * CS) as u64).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        f.write_all_at(&noise(*s, CS), (i * CS) as u64).unwrap();
    }
}

fn open(root: &Path) -> (Store, Arc<MemoryIndex>) {
    let index = Arc::new(MemoryIndex::default());
    let store = Store::open_with(root, Arc::new(LocalBackend::open(root).unwrap()), index.clone(), Some(CS)).unwrap();
    (store, index)
}

/// A capture that dedups against chunks whose only index was just removed (entries last used
/// seconds ago), while GC with no grace at all runs in a loop: every capture must restore byte
/// for byte afterwards. Without the touch-on-dedup (and the conditional delete it defeats), GC
/// drops the entries a running capture has just reused, and its restore fails with a missing
/// chunk (checked: this test fails with `find` in place of `find_and_touch`).
#[test]
fn gc_racing_captures_that_dedup_against_what_it_judges_loses_nothing() {
    const ROUNDS: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // A capture as slow as a big one between its dedup lookup and its end: the window GC has.
    let index = Arc::new(SlowAfterLookup(MemoryIndex::default()));
    let store = Store::open_with(&root, Arc::new(LocalBackend::open(&root).unwrap()), index, Some(CS)).unwrap();
    let store = Arc::new(store);
    // ROUNDS old points, each with chunks of its own, written before the race starts
    let live = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for r in 0..ROUNDS {
        let img = dir.path().join("old.img");
        image(&img, &(0..16).map(|i| r * 1000 + i).collect::<Vec<_>>());
        store.capture(&format!("old{r}"), &img, None, &NoProgress, &mut || {}).unwrap();
        live.lock().unwrap().push(format!("old{r}"));
    }
    std::thread::sleep(Duration::from_millis(2100)); // their entries are now older than any cutoff
    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (store, stop, live) = (store.clone(), stop.clone(), live.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                // The live list is read and GC started under one lock, as the service reads
                // its rows before it starts GC.
                let names = live.lock().unwrap();
                let r = store.gc(&names, Duration::ZERO, &NoProgress);
                drop(names);
                match r {
                    Ok(_) => runs += 1,
                    Err(e) => panic!("gc: {e}"),
                }
            }
            runs
        })
    };
    for r in 0..ROUNDS {
        // the old point goes; a new capture holds its chunks again, plus new ones
        let img = dir.path().join(format!("r{r}.img"));
        let seeds: Vec<u64> = (0..16).map(|i| r * 1000 + i).chain((0..16).map(|i| 500_000 + r * 1000 + i)).collect();
        image(&img, &seeds);
        let old = format!("old{r}");
        live.lock().unwrap().retain(|n| n != &old);
        store.remove_index(&old).unwrap();
        let name = format!("new{r}");
        store.capture(&name, &img, None, &NoProgress, &mut || {}).unwrap();
        live.lock().unwrap().push(name.clone());
        let out = dir.path().join(format!("r{r}.out"));
        store.restore_new(&name, &out, &NoProgress).unwrap_or_else(|e| panic!("round {r}: {e}"));
        assert!(std::fs::read(&out).unwrap() == std::fs::read(&img).unwrap(), "round {r} restored other bytes");
        std::fs::remove_file(&out).unwrap();
        std::fs::remove_file(&img).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let runs = gc.join().unwrap();
    assert!(runs > 5, "GC ran only {runs} times: the race was not exercised");
    let names = live.lock().unwrap().clone();
    let report = store.verify(&names, &NoProgress).unwrap();
    assert!(report.bad_chunks.is_empty() && report.broken.is_empty(), "{report:?}");
}

/// A chunk index whose dedup lookups return late, as if the capture had a lot more to read.
struct SlowAfterLookup(MemoryIndex);

impl ChunkIndex for SlowAfterLookup {
    fn find_and_touch(&self, d: &[Digest]) -> disksnap_engine::Result<Vec<Option<Location>>> {
        let r = self.0.find_and_touch(d);
        std::thread::sleep(Duration::from_millis(60));
        r
    }
    fn find(&self, d: &[Digest]) -> disksnap_engine::Result<Vec<Option<Location>>> {
        self.0.find(d)
    }
    fn add_pack(&self, p: &str, size: u64, e: &[PackEntry]) -> disksnap_engine::Result<()> {
        self.0.add_pack(p, size, e)
    }
    fn packs(&self) -> disksnap_engine::Result<Vec<PackRecord>> {
        self.0.packs()
    }
    fn chunks(&self) -> disksnap_engine::Result<Vec<IndexedChunk>> {
        self.0.chunks()
    }
    fn totals(&self) -> disksnap_engine::Result<disksnap_engine::chunk_index::ChunkTotals> {
        self.0.totals()
    }
    fn remove_unused(&self, d: &[Digest], cutoff: i64) -> disksnap_engine::Result<Vec<Digest>> {
        self.0.remove_unused(d, cutoff)
    }
    fn remove(&self, d: &[Digest]) -> disksnap_engine::Result<()> {
        self.0.remove(d)
    }
    fn move_entries(&self, from: &str, to: &str, e: &[PackEntry]) -> disksnap_engine::Result<()> {
        self.0.move_entries(from, to, e)
    }
    fn doom_pack(&self, p: &str, at: i64) -> disksnap_engine::Result<()> {
        self.0.doom_pack(p, at)
    }
    fn forget_pack(&self, p: &str) -> disksnap_engine::Result<()> {
        self.0.forget_pack(p)
    }
    fn clear(&self) -> disksnap_engine::Result<()> {
        self.0.clear()
    }
}

/// Deleting most points leaves packs mostly dead: GC repacks them (the survivors' bytes move,
/// the old packs go), and every survivor still restores. The index rebuilt from the packs
/// alone then finds every chunk again.
#[test]
fn repack_keeps_survivors_and_the_index_rebuilds_from_the_packs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (store, index) = open(&root);
    let img = dir.path().join("a.img");
    // one capture of 200 distinct chunks (~13 MiB): one pack
    image(&img, &(0..200).collect::<Vec<_>>());
    store.capture("all", &img, None, &NoProgress, &mut || {}).unwrap();
    let keep = dir.path().join("k.img");
    image(&keep, &(0..20).collect::<Vec<_>>()); // its chunks are the first 20 of "all"
    store.capture("keep", &keep, None, &NoProgress, &mut || {}).unwrap();
    assert_eq!(index.packs().unwrap().len(), 1, "keep deduplicated entirely");
    store.remove_index("all").unwrap();
    let gc = store.gc(&["keep".to_string()], Duration::ZERO, &NoProgress).unwrap();
    assert_eq!(gc.sweep.removed, 180, "{gc:?}");
    assert_eq!(gc.repacked_packs, 1, "{gc:?}");
    let packs = index.packs().unwrap();
    assert_eq!(packs.len(), 1, "the old pack is gone (no grace), the new one holds the 20");
    assert!(packs[0].size < 2 << 20, "{packs:?}");
    let out = dir.path().join("k.out");
    store.restore_new("keep", &out, &NoProgress).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&keep).unwrap());

    // a fresh (empty) index over the same packs
    let (again, index2) = open(&root);
    assert!(index2.chunks().unwrap().is_empty());
    let r = again.rebuild_index(&NoProgress).unwrap();
    assert_eq!((r.packs, r.chunks), (1, 20));
    let out2 = dir.path().join("k2.out");
    again.restore_new("keep", &out2, &NoProgress).unwrap();
    assert!(std::fs::read(&out2).unwrap() == std::fs::read(&keep).unwrap());
}

/// A pack put by a job that died before recording it (no index entry) is removed by GC once
/// older than the cutoff; a doomed pack stays through the grace period.
#[test]
fn unindexed_packs_of_dead_jobs_go_and_doomed_packs_wait_for_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (store, index) = open(&root);
    let img = dir.path().join("a.img");
    image(&img, &(0..10).collect::<Vec<_>>());
    store.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    // a dead job's pack: copy the real one under a new name, unindexed
    let real = index.packs().unwrap()[0].name.clone();
    let bytes = std::fs::read(root.join(disksnap_engine::pack::pack_key(&real))).unwrap();
    let orphan = disksnap_engine::pack::new_pack_name();
    store.backend().put(&disksnap_engine::pack::pack_key(&orphan), bytes).unwrap();
    let gc = store.gc(&["a".to_string()], Duration::ZERO, &NoProgress).unwrap();
    assert_eq!(gc.deleted_packs, 1, "{gc:?}");
    assert!(!store.backend().exists(&disksnap_engine::pack::pack_key(&orphan)).unwrap());
    // with a grace, an emptied pack is doomed but stays readable until the grace has passed
    store.remove_index("a").unwrap();
    let gc = store.gc(&[], Duration::from_secs(3600), &NoProgress).unwrap();
    assert_eq!(gc.sweep.removed, 0, "entries used within the grace stay: {gc:?}");
    assert!(store.backend().exists(&disksnap_engine::pack::pack_key(&real)).unwrap());
}

/// A store made before packs (one file per chunk under chunks/) is read as it is, and
/// `migrate_legacy` moves its chunks into packs without changing a byte.
#[test]
fn a_pre_pack_store_is_read_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let img = dir.path().join("a.img");
    image(&img, &(0..30).collect::<Vec<_>>());
    // make the old layout by hand: chunk files + a fixed index, as the previous release wrote
    let legacy = disksnap_engine::ChunkStore::open(&root.join("chunks")).unwrap();
    let data = std::fs::read(&img).unwrap();
    let mut idx = disksnap_engine::FixedIndex::zeroed(CS, data.len() as u64);
    let mut enc = disksnap_engine::chunk::Encoder::default();
    for (i, part) in data.chunks(CS).enumerate() {
        let d = *blake3::hash(part).as_bytes();
        idx.digests[i] = d;
        std::fs::write(legacy.chunk_path(&d), enc.encode(part)).unwrap();
    }
    std::fs::create_dir_all(root.join("indexes")).unwrap();
    idx.write(&root.join("indexes/old.fidx")).unwrap();
    std::fs::write(root.join("store.toml"), format!("chunk_size = {CS}\n")).unwrap();

    let (store, _) = open(&root);
    assert!(store.has_legacy_chunks());
    let out = dir.path().join("o1");
    store.restore_new("old", &out, &NoProgress).unwrap();
    assert!(std::fs::read(&out).unwrap() == data);
    let m = store.migrate_legacy(&NoProgress).unwrap();
    assert_eq!((m.chunks, m.packs), (30, 1), "{m:?}");
    assert!(!root.join("chunks").exists());
    let (store, _) = open(&root);
    store.rebuild_index(&NoProgress).unwrap();
    assert!(!store.has_legacy_chunks());
    let out = dir.path().join("o2");
    store.restore_new("old", &out, &NoProgress).unwrap();
    assert!(std::fs::read(&out).unwrap() == data);
    assert!(store.verify(&["old".to_string()], &NoProgress).unwrap().broken.is_empty());
}

/// Word text like a used disk's (mkdisk.py's, smaller): lines drawn from a seeded pool.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let pick = noise(7, 4096);
    let words: Vec<String> = (0..512)
        .map(|i| (0..2 + pick[i] % 8).map(|j| (b'a' + pick[(i * 8 + j as usize) % 4096] % 26) as char).collect())
        .collect();
    let draw = noise(seed, len);
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        let w = &words[(draw[i % len] as usize * 2 + draw[(i + 1) % len] as usize) % words.len()];
        out.extend_from_slice(w.as_bytes());
        out.push(if draw[(i + 2) % len].is_multiple_of(12) { b'\n' } else { b' ' });
        i += 3;
    }
    out.truncate(len);
    out
}

/// Compaction re-encodes what captures compressed with a dictionary it trains and stores:
/// the store shrinks, every point restores byte for byte, verify passes, a second run has
/// nothing to do, new captures dedup against the re-encoded chunks, and the index rebuilt
/// from the packs alone finds them.
#[test]
fn compaction_shrinks_the_store_and_every_point_still_restores() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (mut store, index) = open(&root);
    // Captures at plain level 1 (a capture's own dictionary is tested below).
    store.set_capture_dictionary(false);
    let img = dir.path().join("a.img");
    {
        let f = OpenOptions::new().create(true).truncate(true).write(true).open(&img).unwrap();
        for i in 0..240u64 {
            let bytes = if i % 3 == 2 { noise(i, CS) } else { text(i, CS) };
            f.write_all_at(&bytes, i * CS as u64).unwrap();
        }
    }
    store.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    let size = |index: &MemoryIndex| index.packs().unwrap().iter().map(|p| p.size).sum::<u64>();
    let before = size(&index);

    let c = store.compact(Duration::ZERO, &NoProgress).unwrap();
    assert!(c.trained && c.dictionary.is_some(), "{c:?}");
    assert_eq!(c.reencoded_chunks, 160, "every text chunk: {c:?}");
    assert_eq!(c.copied_chunks, 80, "the noise moves as it was: {c:?}");
    let after = size(&index);
    assert!(after < before && c.bytes_after < c.bytes_before, "{before} -> {after}: {c:?}");
    assert!(std::fs::read_dir(root.join("dicts")).unwrap().count() == 1, "the dictionary is in the store");

    let out = dir.path().join("a.out");
    store.restore_new("a", &out, &NoProgress).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&img).unwrap());
    let v = store.verify_sample(&["a".to_string()], 100, &NoProgress).unwrap();
    assert!(v.bad_chunks.is_empty() && v.broken.is_empty() && v.checked_chunks == 240, "{v:?}");

    // Nothing left to do; a capture of the same bytes dedups against the re-encoded chunks.
    let again = store.compact(Duration::ZERO, &NoProgress).unwrap();
    assert_eq!((again.compacted_packs, again.reencoded_chunks, again.trained), (0, 0, false), "{again:?}");
    assert_eq!(again.skipped_packs, again.packs, "{again:?}");
    store.capture("b", &img, None, &NoProgress, &mut || {}).unwrap();
    assert_eq!(size(&index), after, "b wrote nothing new");

    // The packs alone describe the re-encoded chunks; the dictionary is read from the store.
    disksnap_engine::dict::forget_loaded();
    let (fresh, index2) = open(&root);
    let r = fresh.rebuild_index(&NoProgress).unwrap();
    assert_eq!(r.chunks, 240, "{r:?}");
    assert_eq!(size(&index2), after);
    let out2 = dir.path().join("b.out");
    fresh.restore_new("b", &out2, &NoProgress).unwrap();
    assert!(std::fs::read(&out2).unwrap() == std::fs::read(&img).unwrap());

    // A damaged dictionary is refused, not used: verify names the chunks it breaks, and a
    // restore fails with the reason instead of writing wrong bytes.
    let dict = std::fs::read_dir(root.join("dicts")).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&dict).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&dict, bytes).unwrap();
    disksnap_engine::dict::forget_loaded();
    let (damaged, _) = open(&root);
    damaged.rebuild_index(&NoProgress).unwrap();
    let v = damaged.verify_sample(&["a".to_string()], 100, &NoProgress).unwrap();
    assert_eq!(v.bad_chunks.len(), 160, "{:?}", v.bad_chunks.first());
    assert!(v.bad_chunks[0].1.contains("dictionary"), "{:?}", v.bad_chunks[0]);
    assert!(!v.broken.is_empty());
}

/// A capture into a store without a dictionary trains one from its first compressible chunks,
/// puts it, and compresses the chunks after with it: the store is smaller than a capture
/// without, every byte restores (also in a process that must load the dictionary from the
/// store), the next capture uses the same dictionary, and compaction re-encodes only the
/// chunks compressed before it was ready.
#[test]
fn a_capture_trains_the_stores_dictionary_and_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    {
        let f = OpenOptions::new().create(true).truncate(true).write(true).open(&img).unwrap();
        for i in 0..512u64 {
            let bytes = if i % 4 == 3 { noise(i, CS) } else { text(i, CS) };
            f.write_all_at(&bytes, i * CS as u64).unwrap();
        }
    }
    let packs = |index: &MemoryIndex| index.packs().unwrap().iter().map(|p| p.size).sum::<u64>();
    let plain_root = dir.path().join("plain");
    let (mut plain, plain_index) = open(&plain_root);
    plain.set_capture_dictionary(false);
    plain.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    assert!(!plain_root.join("dicts").exists(), "no dictionary when turned off");

    let root = dir.path().join("store");
    let (store, index) = open(&root);
    store.capture("a", &img, None, &NoProgress, &mut || {}).unwrap();
    let dicts: Vec<_> = std::fs::read_dir(root.join("dicts")).unwrap().collect();
    assert_eq!(dicts.len(), 1, "one dictionary, in the store");
    let (with, without) = (packs(&index), packs(&plain_index));
    // (This text's 512 words compress well alone; mkdisk's 20 000 gain 2.25:1 against 1.88:1.)
    assert!(with < without, "the dictionary pays: {with} against {without} bytes");

    disksnap_engine::dict::forget_loaded();
    let (fresh, _) = open(&root);
    fresh.rebuild_index(&NoProgress).unwrap();
    let out = dir.path().join("a.out");
    fresh.restore_new("a", &out, &NoProgress).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&img).unwrap());
    let v = fresh.verify_sample(&["a".to_string()], 100, &NoProgress).unwrap();
    assert!(v.bad_chunks.is_empty() && v.broken.is_empty() && v.checked_chunks == 512, "{v:?}");

    // The next capture (new bytes) uses the store's dictionary: no second one.
    poke_text(&img, 600);
    fresh.capture("b", &img, None, &NoProgress, &mut || {}).unwrap();
    assert_eq!(std::fs::read_dir(root.join("dicts")).unwrap().count(), 1);
    let c = fresh.compact(Duration::ZERO, &NoProgress).unwrap();
    assert!(!c.trained, "compaction uses the capture's dictionary: {c:?}");
    // Trained after the batch that brought the 32nd sample (every 4th of 125 text chunks: slot
    // ~166, batch 128..192): the text chunks of slots 0..192 were compressed without it.
    assert_eq!(c.reencoded_chunks, 144, "only the chunks before it was ready: {c:?}");
    let out = dir.path().join("b.out");
    fresh.restore_new("b", &out, &NoProgress).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&img).unwrap());
}

/// Rewrite every slot of `img` with new text (seeded by `seed`).
fn poke_text(img: &Path, seed: u64) {
    let f = OpenOptions::new().write(true).open(img).unwrap();
    let slots = f.metadata().unwrap().len() / CS as u64;
    for i in 0..slots {
        f.write_all_at(&text(seed + i, CS), i * CS as u64).unwrap();
    }
}
