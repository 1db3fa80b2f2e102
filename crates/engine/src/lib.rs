//! disksnap's storage engine: bytes in, bytes out, nothing about clouds.
//!
//! The engine knows three things: a **chunk store** (content-addressed blobs), **fixed
//! indexes** (one digest per fixed-size slot of a disk image) and **volume I/O** (cutting a raw
//! image file into slots, and writing an index back into a file). It knows nothing of
//! snapshots, accounts, jobs or any API dialect: an index is named by an opaque string the
//! caller chooses (the service uses the snapshot id).
//!
//! # On-disk layout (under the store directory)
//! ```text
//! store.toml                      chunk_size = 65536   (fixed at creation, never changes)
//! chunks/.gc.lock                 flock: shared while inserting, exclusive while sweeping
//! chunks/<3 hex>/<64 hex>         one chunk: 20-byte header + payload (see chunk.rs)
//! chunks/<3 hex>/.tmp-<pid>-*     an insert in progress (its process's recovery or GC removes it)
//! chunks/quarantine/<64 hex>.bad  chunks `verify` found corrupt
//! indexes/<name>.fidx             a committed fixed index (see index.rs)
//! indexes/<name>.pending          a capture or restore in progress: flock-held by its process, its chunks stay marked
//! ```
//!
//! # Durability rules
//! * A chunk is written to a temp name in its prefix directory. At the end of a capture
//!   [`chunk_store::Inserter::commit`] runs one `syncfs` (all chunk data on disk), renames every temp file to
//!   its digest name, and runs `syncfs` again (the renames on disk). So a file at a digest name is
//!   always complete — which the dedup check relies on — at the cost of two syncs per job
//!   instead of one fsync per chunk (tens of thousands per full snapshot).
//! * An index is written to a temp file, fsynced, renamed, and its directory fsynced.
//! * The caller commits its metadata only after the index is durable; a crash in between leaves
//!   an orphan index, which GC removes.
//!
//! # Locking rules (several processes may share a store: the server and the CLI)
//! * Inserts hold `chunks/.gc.lock` shared while they check-and-write a batch; a dedup hit
//!   refreshes the chunk's mtime. GC's sweep holds the lock exclusive per batch and deletes only
//!   unmarked chunks older than its start minus a grace period, so a chunk a running capture
//!   has written or reused is never swept.
//! * GC marks every committed index the caller names live, every `.pending` index, and every
//!   index younger than the grace period (committed but perhaps not yet recorded by its caller).

pub mod backend;
pub mod chunk;
pub mod chunk_index;
pub mod chunk_store;
pub mod error;
mod gc;
pub mod index;
pub mod pack;
mod pin;
pub mod private;
pub mod progress;
pub mod store;
mod verify;
pub mod volume_io;

pub use backend::Backend;
pub use chunk_index::{ChunkIndex, MemoryIndex};
pub use chunk_store::ChunkStore;
pub use error::{EngineError, Result};
pub use index::{Digest, FixedIndex, ZERO_DIGEST};
pub use progress::{NoProgress, Progress};
pub use store::{CaptureStats, GcStats, RestoreStats, Store, VerifyReport};
pub use verify::{MigrateStats, RebuildStats};

/// Default chunk size: 128 KiB, chosen by measurement.
///
/// `bench/run.sh --chunk-sizes 16,32,64,128,256` on the 4 GiB workload of performance.md
/// (2 cores, measured before the per-thread zstd context cut ~30 % of CPU at every size;
/// restic's incremental after the same scattered change grew its repo by 1578 MiB, so the
/// target growth is at most 394 MiB):
///
/// | chunk | full s | full CPU s | incr growth MiB | index per snapshot | chunk files |
/// |-------|--------|------------|-----------------|--------------------|-------------|
/// | 16K   | 13.8   | 22.4       | 53              | 8 MiB              | 180 586     |
/// | 32K   | 7.4    | 12.5       | 84              | 4 MiB              | 92 299      |
/// | 64K   | 7.3    | 12.4       | 150             | 2 MiB              | 48 108      |
/// | 128K  | 5.0    | 8.8        | 278             | 1 MiB              | 25 925      |
/// | 256K  | 3.9    | 6.8        | 504             | 512 KiB            | 14 665      |
///
/// 4096 scattered 4 KiB writes dirty a share of slots that grows with the chunk size, while
/// every chunk costs a file (inode allocation dominated the profile of small chunks) and 32
/// index bytes. 128 KiB is the largest size whose incremental stays well inside a quarter of
/// restic's growth (0.18) and it halves the full snapshot's CPU against 64 KiB. A store keeps the
/// size it was created with (`disksnap init --chunk-size-kib N`).
pub const DEFAULT_CHUNK_SIZE: usize = 128 * 1024;
