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
//! chunks/<4 hex>/<64 hex>         one chunk: 20-byte header + payload (see chunk.rs)
//! chunks/<4 hex>/.tmp-*           an insert in progress (removed at open if stale)
//! chunks/quarantine/<64 hex>.bad  chunks `verify` found corrupt
//! indexes/<name>.fidx             a committed fixed index (see index.rs)
//! indexes/<name>.pending          a capture or restore in progress: flock-held by its process, its chunks stay marked
//! ```
//!
//! # Durability rules
//! * A chunk is written to a temp name in its prefix directory. At the end of a capture
//!   [`ChunkStore::commit`] runs one `syncfs` (all chunk data on disk), renames every temp file to
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

pub mod chunk;
pub mod chunk_store;
pub mod error;
pub mod index;
pub mod progress;
pub mod store;
pub mod volume_io;

pub use chunk_store::ChunkStore;
pub use error::{EngineError, Result};
pub use index::{Digest, FixedIndex, ZERO_DIGEST};
pub use progress::{NoProgress, Progress};
pub use store::{CaptureStats, GcStats, RestoreStats, Store, VerifyReport};

/// Default chunk size: 64 KiB.
///
/// Measured with `bench/run.sh --chunk-sizes` on the 4 GiB workload of performance.md: 4096
/// scattered 4 KiB writes dirty ~6 % of 64 KiB slots (vs 39 % at 512 KiB, 98 % at 4 MiB), so an
/// incremental stores ~1/10 of what a 1 MiB chunker stores, while the index stays small
/// (32 bytes per 64 KiB: 2 MiB per 4 GiB volume) and a full snapshot still writes a few tens of
/// thousands of chunk files, which the batched syncs keep cheap. Smaller chunks shrink the
/// incremental a little more but double index size and file count for each halving.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
