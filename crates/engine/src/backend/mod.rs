//! Where a store's objects live: pack files and fixed indexes, by key.
//!
//! The engine writes only immutable objects under unique names (a pack is named by a random id,
//! an index by its caller's name and never rewritten in place), so a backend needs no
//! conditional writes, no locks and no renames: the metadata store coordinates. That is what
//! lets one interface cover a local directory and every S3-compatible store (Ceph RGW, Garage,
//! OSS, COS), whose conditional-write support differs.
//!
//! Keys are `/`-separated, relative to the store root, made of `[A-Za-z0-9._-]` segments.
//! Calls are blocking: the engine runs on rayon and `spawn_blocking` threads.

pub mod local;
pub mod s3;

use std::ops::Range;
use std::time::SystemTime;

use crate::error::Result;

/// What one read of neighbouring chunks spans at most, unless a backend says otherwise
/// ([`Backend::read_span`]).
pub const DEFAULT_READ_SPAN: u64 = 2 << 20;

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

pub trait Backend: Send + Sync + 'static {
    /// Store `data` at `key`. When this returns `Ok`, the object is whole and durable (it
    /// survives a crash or power loss of this machine); before, a reader sees either nothing or
    /// — on a local directory — nothing at that key. The engine never puts one key twice with
    /// different bytes.
    fn put(&self, key: &str, data: Vec<u8>) -> Result<()>;

    /// The whole object. A missing key is [`crate::EngineError::MissingObject`].
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// Several byte ranges of one object, in the order asked (callers coalesce neighbouring
    /// chunks first, so each range is one read or one ranged GET).
    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>>;

    /// One byte range of one object into `buf` (replacing its contents), so a reader can
    /// reuse one buffer for all its reads instead of allocating (and zeroing) one per read.
    fn read_range_into(&self, key: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.get_ranges(key, std::slice::from_ref(&range))?.remove(0);
        Ok(())
    }

    /// [`Backend::read_range_into`] from the store itself, never from a local read cache:
    /// verify must check the bytes the store holds, not a cached copy of them.
    fn read_range_uncached_into(&self, key: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        self.read_range_into(key, range, buf)
    }

    /// One byte range of one object, handed to `sink` in order, in pieces of any size. A
    /// remote backend passes the body on as it arrives, so a reader holds a piece, not the
    /// whole range, and a read may span more ([`Backend::read_span`]). The default reads the
    /// range whole into `buf` (the caller's, reused) and hands it on in one piece.
    fn read_range_streamed(
        &self,
        key: &str,
        range: Range<u64>,
        buf: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.read_range_into(key, range, buf)?;
        sink(buf)
    }

    /// How many bytes one read of neighbouring chunks may span (gaps included). A backend
    /// that holds whole ranges in memory keeps it small; one that streams them
    /// ([`Backend::read_range_streamed`]) and pays per request makes it larger.
    fn read_span(&self) -> u64 {
        DEFAULT_READ_SPAN
    }

    /// Whether `key` exists (a remote backend may answer with a HEAD instead of a GET).
    fn exists(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            Ok(_) => Ok(true),
            Err(crate::EngineError::MissingObject { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object whose key starts with `prefix`, in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Remove an object; a missing one is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// For logs and `disksnap status`: e.g. `local:/var/lib/disksnap/store` or
    /// `s3://bucket/prefix at http://127.0.0.1:7480`.
    fn describe(&self) -> String;

    /// [`Backend::put`], giving `data` back when the backend did not need to keep it, so the
    /// caller can fill the same buffer again: a capture's packs are 16 MiB each, and a fresh
    /// one per pack kept freed ones resident until the allocator purged them (a local full
    /// snapshot peaked at 85-102 MiB RSS with fresh buffers, against ~74 reused). The default
    /// gives nothing back; S3 gives the buffer back when its client let go of it.
    fn put_reusable(&self, key: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.put(key, data).map(|()| None)
    }

    /// How many uploads the engine should keep in flight at once (a local disk wants few, an
    /// object store over the network several).
    fn upload_concurrency(&self) -> usize {
        2
    }

    /// How many reads a restore should keep in flight. Reads block (a cold page cache, a GET
    /// over the network), so a restore runs them on this many threads, more than the cores,
    /// to keep the disk's queue or the connection pool busy while others decode.
    fn read_concurrency(&self) -> usize {
        8
    }
}
