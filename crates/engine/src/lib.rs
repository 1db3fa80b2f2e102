//! disksnap's storage engine: bytes in, bytes out, nothing about clouds.
//!
//! The engine knows four things: a **pack store** (chunks — content-addressed, compressed,
//! hash-checked blobs — written many to an immutable pack object, in a [`Backend`]: a local
//! directory or an S3 bucket), a **chunk index** (digest → pack, offset, length; the caller
//! keeps it in its metadata database through [`ChunkIndex`]), **fixed indexes** (one digest
//! per fixed-size slot of a disk image) and **volume I/O** (cutting a raw image file into
//! slots, and writing an index back into a file). It knows nothing of snapshots, accounts,
//! jobs or any API dialect: an index is named by an opaque string the caller chooses (the
//! service uses the snapshot id).
//!
//! # Layout (keys in the backend; local state under the store directory)
//! ```text
//! store.toml                      chunk_size = 131072   (fixed at creation, never changes)
//! packs/<2 hex>/<32 hex>.pack     chunk frames + a trailer listing them (see pack.rs)
//! indexes/<name>.fidx             a committed fixed index (see index.rs)
//! dicts/<8 hex>.zdict             a zstd dictionary trained on the store's chunks (dict.rs)
//! local: indexes/<name>.pending   a capture or restore in progress: flock-held pin (see pin.rs)
//! local: .gc.lock                 one GC at a time
//! local: chunks/<3 hex>/<64 hex>  chunk files of a store made before packs: read until
//!                                 `disksnap migrate-store` (see verify.rs)
//! ```
//!
//! # Durability order
//! A capture's packs are put (a local put is temp file, fsync, rename, directory fsync; an S3
//! put is whole or absent) and only then recorded in the chunk index; its fixed index is put
//! after every pack is; the caller commits its metadata after the capture returns. A crash
//! anywhere leaves packs or entries nothing references, which GC removes.
//!
//! # GC safety (see chunk_index.rs and gc.rs)
//! Dedup lookups touch what they find; GC deletes entries with a conditional delete older than
//! a cutoff below the start of every running capture (its pin); packs are deleted only after
//! the grace period since they emptied; repack moves entries before dooming the old pack.

pub mod backend;
mod capture_dict;
pub mod chunk;
pub mod chunk_index;
pub mod chunk_store;
mod compact;
pub mod dict;
mod direct;
pub mod error;
mod frames;
mod gc;
pub mod index;
mod overlap;
pub mod pack;
mod pin;
pub mod points;
pub mod private;
pub mod progress;
mod readahead;
mod recycle;
mod residency;
pub mod store;
mod verify;
pub mod volume_io;
mod volume_read;

pub use backend::Backend;
pub use chunk_index::{ChunkIndex, MemoryIndex};
pub use chunk_store::ChunkStore;
pub use compact::CompactStats;
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
