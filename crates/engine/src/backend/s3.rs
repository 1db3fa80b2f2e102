//! Objects in any S3-compatible store (AWS S3, Ceph RGW, Garage, OSS, COS, MinIO) through the
//! `object_store` crate.
//!
//! * **Blocking over async.** The engine calls from rayon and `spawn_blocking` threads, and may
//!   hold the backend inside a tokio runtime of its own. So the backend owns a small runtime
//!   and every call is `spawn` on it + a wait on a std channel: never `Runtime::block_on`, which
//!   panics on a runtime worker, and never a dependency on the caller's runtime.
//! * **No conditional writes.** Every `put` is a plain PUT (or multipart upload) that may
//!   overwrite: the engine writes immutable objects under unique names and the metadata store
//!   coordinates, because Ceph RGW, Garage and the Chinese clouds' stores differ on
//!   If-None-Match / If-Match.
//! * **Retries** are object_store's: exponential backoff on 5xx, timeouts and connection
//!   errors, bounded by [`S3Config::max_retries`] and [`S3Config::retry_timeout`].
//! * **Multipart** for objects of [`S3Config::multipart_threshold`] bytes or more, parts of
//!   [`S3Config::part_size`] uploaded concurrently; a failed upload is aborted so the store
//!   keeps no orphan parts.
//! * **Ranged reads** go through `object_store::coalesce_ranges` (neighbours less than 1 MiB
//!   apart become one GET, up to 10 GETs in flight); ranges already in the read cache are not
//!   fetched.
//! * **Read cache** (optional): ranges read by `get_ranges` are kept in files under
//!   `cache_dir`, least recently used evicted past `cache_max_bytes`. Objects are immutable, so
//!   a cached range is never stale. Whole-object `get`s bypass it, so `verify` (which reads
//!   whole packs) always judges the store's bytes, never a local copy.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::{Backend, ObjectInfo};
use crate::error::{EngineError, Result};

/// Multipart upload from this size on (S3's parts must be ≥ 5 MiB but the last). Above any pack
/// the engine writes (16 MiB + one frame): a multipart pack costs 4 PUT-class requests instead of
/// 1 and was no faster on RGW, and PUTs per 4 GiB are a budgeted figure.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 << 20;
/// Size of one multipart part: a pack of up to 32 MiB is two parts.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// Uploads the engine keeps in flight. Each holds its whole pack in memory, so this times the
/// pack size is what uploads cost in RSS (4 × 16 MiB = 64 MiB, under the 100 MiB budget of the
/// benchmark with 16 MiB packs); a 16 MiB PUT takes ~130 ms at 1 Gbit/s, so 4 keep such a link busy.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;

/// Ranged GETs a restore keeps in flight (each holds up to one 2 MiB read). On an RGW whose
/// OSD reads from disk (bluestore), cold 4 GiB restores with batches overlapped and bodies read
/// into each reader's own buffer: 4 took 6.4-6.9 s (58 MiB RSS), 6 5.9-6.0 s (67 MiB), 8
/// 5.3-5.5 s (78 MiB), 10 5.2-5.5 s (89-92 MiB). Before the buffers were kept, 8 had peaked at
/// 93-105 MiB.
const READ_CONCURRENCY: usize = 8;

/// What one ranged GET of a restore spans at most when the read cache is off: its body streams
/// through the reader ([`Backend::read_range_streamed`]), which holds a piece of it, not all.
/// Beside its bytes, a GET cost the co-located RGW and OSD ~1.2 ms of CPU: 1 GiB read in ranges
/// of 2 MiB took them 2.0-2.4 CPU s, in ranges of 4 MiB 1.7-1.8, of 8 MiB 1.6-1.7, of 16 MiB no
/// less (8 GETs in flight); on AWS S3 each GET is also billed.
const STREAM_READ_SPAN: u64 = 8 << 20;
/// Pieces of a streamed body queued between the S3 client and the reader thread.
const STREAM_PIECES: usize = 2;

/// Where and how to reach the bucket. `Debug` hides the secret.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (`""` or `a/b`, no leading or trailing `/`): several stores
    /// can share a bucket.
    pub prefix: String,
    /// Signing region; `us-east-1` suits Ceph RGW, Garage (`garage`), MinIO.
    pub region: String,
    /// `http(s)://host:port` of an S3-compatible store; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// `http://endpoint/bucket/key` (RGW without wildcard DNS, MinIO, Garage) rather than
    /// virtual-hosted `http://bucket.endpoint/key`.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow a plain-HTTP endpoint (a store on loopback or a private network).
    pub allow_http: bool,
    /// Sign each upload's body (its SHA-256 in the signature), so the store refuses a body
    /// altered on the way. It costs a SHA-256 pass over every byte on both ends (the store's
    /// share was ~7 % of a co-located Ceph RGW's CPU in a full snapshot); over https TLS already
    /// guards the body, and `UNSIGNED-PAYLOAD` is what the AWS SDKs send there.
    pub sign_payload: bool,
    /// Directory for the read cache; `None` turns the cache off.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the read cache may hold on disk.
    pub cache_max_bytes: u64,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub upload_concurrency: usize,
    /// Retries of one request (object_store's exponential backoff between them).
    pub max_retries: usize,
    /// No retry starts after this long from the first attempt.
    pub retry_timeout: Duration,
    /// Deadline of one HTTP request, body included (a 32 MiB part on a slow link needs minutes).
    pub request_timeout: Duration,
}

impl S3Config {
    /// A config with the defaults for everything but where the bucket is and who we are.
    pub fn new(bucket: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            endpoint: None,
            path_style: false,
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            allow_http: false,
            sign_payload: true,
            cache_dir: None,
            cache_max_bytes: 0,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(300),
        }
    }

    /// What logs and errors call the store: `http://127.0.0.1:7480` or `AWS S3 (eu-west-1)`.
    pub fn endpoint_name(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("AWS S3 ({})", self.region),
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field("allow_http", &self.allow_http)
            .field("sign_payload", &self.sign_payload)
            .field("cache_dir", &self.cache_dir)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .finish_non_exhaustive()
    }
}

/// Requests and bytes since the backend was opened (what the benchmark counts: PUT requests
/// per full snapshot). Retries inside object_store are not seen, so these are logical requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct S3Stats {
    /// Single-request PutObject uploads.
    pub puts: u64,
    /// Multipart uploads completed or aborted (each is a Create and a Complete/Abort request).
    pub multipart_uploads: u64,
    /// UploadPart requests.
    pub multipart_parts: u64,
    /// GetObject requests, whole or ranged.
    pub gets: u64,
    /// HeadObject requests (`exists`).
    pub heads: u64,
    pub lists: u64,
    pub deletes: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Ranges `get_ranges` served from the read cache, and ranges it had to fetch.
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl S3Stats {
    /// Every request S3 bills as a PUT: PutObject, CreateMultipartUpload, UploadPart,
    /// CompleteMultipartUpload.
    pub fn put_requests(&self) -> u64 {
        self.puts + self.multipart_parts + 2 * self.multipart_uploads
    }
}

#[derive(Default)]
struct Counters {
    puts: AtomicU64,
    multipart_uploads: AtomicU64,
    multipart_parts: AtomicU64,
    gets: AtomicU64,
    heads: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub struct S3Backend {
    /// `Option` only so `Drop` can take it and shut it down without blocking (dropping a
    /// runtime blocks, which panics when the backend is dropped inside an async task).
    rt: Option<tokio::runtime::Runtime>,
    store: Arc<dyn ObjectStore>,
    /// The config's prefix with a trailing `/`, or empty.
    root: String,
    bucket: String,
    endpoint: String,
    /// For messages: a request that ran out of it names the setting.
    request_timeout: Duration,
    multipart_threshold: u64,
    part_size: u64,
    upload_concurrency: usize,
    counters: Arc<Counters>,
    cache: Option<ReadCache>,
}

impl S3Backend {
    /// A backend on the bucket `config` names. Nothing is sent yet: [`S3Backend::check`] is the
    /// reachability and credentials test.
    pub fn open(config: &S3Config) -> Result<Self> {
        validate_prefix(&config.prefix)?;
        // reqwest is built without a compiled-in TLS provider (the `aws-lc` one needs a C and
        // cmake build): the process-wide default is ring, as for the server's own TLS. An
        // `Err` means one is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_timeout(config.request_timeout)
            .with_connect_timeout(Duration::from_secs(10));
        let retry = RetryConfig {
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
            ..RetryConfig::default()
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_client_options(client)
            .with_retry(retry)
            .with_unsigned_payload(!config.sign_payload);
        if let Some(ep) = &config.endpoint {
            b = b.with_endpoint(ep);
        }
        let store = b.build().map_err(|e| EngineError::Backend {
            op: "open",
            key: String::new(),
            why: format!("S3 bucket {:?} at {}: bad settings: {}", config.bucket, config.endpoint_name(), chain(&e)),
        })?;
        Self::from_store(Arc::new(store), config)
    }

    /// A backend on any object_store implementation (tests use `InMemory`). `config` gives the
    /// prefix, the cache and the upload shape; its bucket and endpoint only name the store in
    /// messages.
    pub fn from_store(store: Arc<dyn ObjectStore>, config: &S3Config) -> Result<Self> {
        validate_prefix(&config.prefix)?;
        if config.part_size < (5 << 20) && config.multipart_threshold < u64::MAX {
            // S3 rejects parts under 5 MiB (but the last) at CompleteMultipartUpload time.
            return Err(EngineError::Invalid(format!(
                "S3 part size {} is under S3's minimum of 5 MiB",
                config.part_size
            )));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("disksnap-s3")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Backend {
                op: "open",
                key: String::new(),
                why: format!("cannot start the S3 client's runtime: {e}"),
            })?;
        let cache = match &config.cache_dir {
            Some(dir) if config.cache_max_bytes > 0 => Some(ReadCache::open(dir, config.cache_max_bytes)?),
            _ => None,
        };
        let root = if config.prefix.is_empty() { String::new() } else { format!("{}/", config.prefix) };
        Ok(S3Backend {
            rt: Some(rt),
            store,
            root,
            bucket: config.bucket.clone(),
            endpoint: config.endpoint_name(),
            request_timeout: config.request_timeout,
            multipart_threshold: config.multipart_threshold,
            part_size: config.part_size,
            upload_concurrency: config.upload_concurrency.max(1),
            counters: Arc::default(),
            cache,
        })
    }

    /// Requests and bytes so far.
    pub fn stats(&self) -> S3Stats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        S3Stats {
            puts: l(&c.puts),
            multipart_uploads: l(&c.multipart_uploads),
            multipart_parts: l(&c.multipart_parts),
            gets: l(&c.gets),
            heads: l(&c.heads),
            lists: l(&c.lists),
            deletes: l(&c.deletes),
            bytes_up: l(&c.bytes_up),
            bytes_down: l(&c.bytes_down),
            cache_hits: l(&c.cache_hits),
            cache_misses: l(&c.cache_misses),
        }
    }

    /// Bytes the read cache holds now (0 when it is off).
    pub fn cache_bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.bytes())
    }

    /// One LIST of the prefix: proves the endpoint answers, the credentials are accepted and the
    /// bucket exists, with a message a person can act on when not. For startup and `status`.
    pub fn check(&self) -> Result<()> {
        let store = self.store.clone();
        let prefix = self.dir_path(&self.root);
        let what = format!("s3://{}/{}", self.bucket, self.root);
        let res = self.run("check", &what, async move {
            let mut s = store.list(prefix.as_ref());
            match s.next().await {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            }
        })?;
        add(&self.counters.lists, 1);
        res.map_err(|e| self.error("check", &what, e))
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives as long as the backend")
    }

    /// Run `fut` on our runtime and wait for it on this thread, whatever thread this is.
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| EngineError::Backend {
            op,
            key: key.into(),
            why: format!("the S3 client for bucket {} at {} stopped mid-request", self.bucket, self.endpoint),
        })
    }

    fn path(&self, key: &str) -> Result<Path> {
        if !valid_key(key) {
            return Err(EngineError::Invalid(format!("object key {key:?} is not a valid store key")));
        }
        Path::parse(format!("{}{key}", self.root))
            .map_err(|e| EngineError::Invalid(format!("object key {key:?} is not a valid store key: {e}")))
    }

    /// The object_store prefix for a `/`-ended directory string (`None` for the bucket root).
    fn dir_path(&self, dir: &str) -> Option<Path> {
        let d = dir.trim_end_matches('/');
        if d.is_empty() {
            None
        } else {
            Some(Path::from_iter(d.split('/')))
        }
    }

    /// Map an object_store error to the engine's, naming the endpoint and bucket and saying
    /// what to fix where the cause is recognisable.
    fn error(&self, op: &'static str, key: &str, e: object_store::Error) -> EngineError {
        let text = chain(&e);
        let (ep, b) = (&self.endpoint, &self.bucket);
        let why = if text.contains("NoSuchBucket") {
            format!("bucket {b:?} does not exist at {ep}: create it, or fix the bucket name in [store] ({text})")
        } else if matches!(
            e,
            object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. }
        ) || ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"].iter().any(|c| text.contains(c))
        {
            format!(
                "{ep} refused the credentials for bucket {b:?}: check access_key_id and secret_access_key in [store], \
                 and that this user may use the bucket ({text})"
            )
        } else if let object_store::Error::NotFound { .. } = e {
            return EngineError::MissingObject { key: key.into() };
        } else if is_no_answer(&text) {
            // Connected, then nothing came back in time: a store that hangs (an OSD out of
            // space, an overloaded gateway) or a link too slow for the deadline.
            format!(
                "the S3 endpoint {ep} (bucket {b:?}) did not answer within {:?} (request_timeout in [store]): \
                 check that the store is healthy and not out of space, or raise request_timeout for a slow link ({text})",
                self.request_timeout
            )
        } else if is_unreachable(&text) {
            format!("cannot reach the S3 endpoint {ep} (bucket {b:?}): check the endpoint URL in [store] and that the store is up ({text})")
        } else {
            format!("S3 bucket {b:?} at {ep}: {text}")
        };
        EngineError::Backend { op, key: key.into(), why }
    }

    /// Upload `data`; give its buffer back when the client let go of every copy of it.
    fn put_inner(&self, key: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        let len = data.len() as u64;
        let data = Bytes::from(data);
        let store = self.store.clone();
        let counters = self.counters.clone();
        if len < self.multipart_threshold {
            let payload = PutPayload::from(data.clone());
            let res = self.run("put", key, async move { store.put(&path, payload).await })?;
            add(&counters.puts, 1);
            res.map_err(|e| self.error("put", key, e))?;
            add(&counters.bytes_up, len);
            // The request is over, so `data` is normally the last handle on the buffer: take
            // it back whole (same allocation, same capacity) for the next pack. A store that
            // keeps the bytes (object_store's in-memory one) keeps them, and we allocate anew.
            return Ok(data.try_into_mut().ok().map(Vec::from));
        }
        let part = self.part_size as usize;
        let res = self.run("put", key, async move {
            let mut upload = store.put_multipart(&path).await?;
            add(&counters.multipart_uploads, 1);
            // All parts of one object at once: a pack is a few parts, and the engine bounds
            // how many packs are in flight (upload_concurrency).
            let parts: Vec<_> = (0..data.len())
                .step_by(part)
                .map(|at| {
                    let body = data.slice(at..(at + part).min(data.len()));
                    add(&counters.multipart_parts, 1);
                    upload.put_part(PutPayload::from(body))
                })
                .collect();
            let done = match futures_util::future::try_join_all(parts).await {
                Ok(_) => upload.complete().await.map(|_| ()),
                Err(e) => Err(e),
            };
            if done.is_err() {
                // Leave no half upload behind: its parts are billed storage and invisible to list.
                let _ = upload.abort().await;
            }
            done
        })?;
        res.map_err(|e| self.error("put", key, e))?;
        add(&self.counters.bytes_up, len);
        Ok(None)
    }

    fn fetch_ranges(&self, key: &str, path: Path, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        let store = self.store.clone();
        let counters = self.counters.clone();
        let res = self.run("get", key, async move {
            object_store::coalesce_ranges(
                &ranges,
                |r| {
                    let (store, path, counters) = (store.clone(), path.clone(), counters.clone());
                    async move {
                        add(&counters.gets, 1);
                        let len = r.end - r.start;
                        let b = store.get_range(&path, r).await?;
                        add(&counters.bytes_down, b.len() as u64);
                        if (b.len() as u64) < len {
                            return Err(short_read(&path, len, b.len()));
                        }
                        Ok(b)
                    }
                },
                object_store::OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await
        })?;
        res.map_err(|e| self.error("get", key, e))
    }

    /// A range from the local read cache, counted as a hit; None without a cache or a copy.
    fn cached(&self, key: &str, range: &Range<u64>) -> Option<Vec<u8>> {
        let bytes = self.cache.as_ref()?.get(key, range)?;
        add(&self.counters.cache_hits, 1);
        Some(bytes)
    }

    /// One ranged GET, its body copied into `buf` piece by piece as it arrives. A restore's
    /// reader keeps one buffer for all its reads: collecting each body into a fresh 2 MiB
    /// buffer first (then taken whole) faulted in new pages for every read and handed them
    /// back on free, ~6 % of a cold 4 GiB restore's CPU in the S3 client's thread.
    fn fetch_range_into(&self, key: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.reserve((range.end - range.start) as usize);
        self.stream_range(key, range, &mut |piece| {
            buf.extend_from_slice(piece);
            Ok(())
        })
    }

    /// One ranged GET whose body is handed to `sink` as it arrives. The client's task sends
    /// the pieces through a bounded channel, so a reader slower than the network holds the
    /// body back (TCP's window) rather than in memory; a reader that stops early (`sink`
    /// failed) drops the channel, and the task drops the connection.
    fn stream_range(&self, key: &str, range: Range<u64>, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let path = self.path(key)?;
        let want = range.end - range.start;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<object_store::Result<Bytes>>(STREAM_PIECES);
        let store = self.store.clone();
        let at = path.clone();
        add(&self.counters.gets, 1);
        self.rt().spawn(async move {
            let opts =
                object_store::GetOptions { range: Some(object_store::GetRange::Bounded(range)), ..Default::default() };
            let mut body = match store.get_opts(&at, opts).await {
                Ok(got) => got.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            while let Some(piece) = body.next().await {
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
            }
        });
        let mut got = 0u64;
        // Wait on this thread, whatever thread it is (tokio's `blocking_recv` panics on an async
        // worker; like every call here, this one only blocks it).
        while let Some(piece) = futures_executor::block_on(rx.recv()) {
            let piece = piece.map_err(|e| self.error("get", key, e))?;
            got += piece.len() as u64;
            if got > want {
                return Err(self.error("get", key, short_read(&path, want, got as usize)));
            }
            sink(&piece)?;
        }
        if got != want {
            // The body ended early (or the client's task died: the runtime itself lives as long as `self`).
            return Err(self.error("get", key, short_read(&path, want, got as usize)));
        }
        add(&self.counters.bytes_down, want);
        Ok(())
    }
}

fn short_read(path: &Path, want: u64, got: usize) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: if (got as u64) < want {
            format!("{path}: asked for {want} bytes, the object has only {got} there")
        } else {
            format!("{path}: asked for {want} bytes, the server sent {got}")
        }
        .into(),
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Backend for S3Backend {
    fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        self.put_inner(key, data).map(drop)
    }

    fn put_reusable(&self, key: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.put_inner(key, data)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let res = self.run("get", key, async move { store.get(&path).await?.bytes().await })?;
        add(&self.counters.gets, 1);
        let b = res.map_err(|e| self.error("get", key, e))?;
        add(&self.counters.bytes_down, b.len() as u64);
        Ok(Vec::from(b))
    }

    fn read_range_into(&self, key: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        let Some(cache) = &self.cache else { return self.read_range_uncached_into(key, range, buf) };
        if let Some(b) = self.cached(key, &range) {
            *buf = b;
            return Ok(());
        }
        add(&self.counters.cache_misses, 1);
        self.read_range_uncached_into(key, range.clone(), buf)?;
        cache.put(key, &range, buf);
        Ok(())
    }

    fn read_range_uncached_into(&self, key: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        if range.start > range.end {
            return Err(EngineError::Invalid(format!("byte range {range:?} of {key} is reversed")));
        }
        buf.clear();
        if range.start < range.end {
            self.fetch_range_into(key, range, buf)?;
        }
        Ok(())
    }

    fn read_range_streamed(
        &self,
        key: &str,
        range: Range<u64>,
        buf: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if self.cache.is_some() || range.start >= range.end {
            // the cache keeps whole ranges; an empty or reversed one is refused or empty there
            self.read_range_into(key, range, buf)?;
            return sink(buf);
        }
        self.stream_range(key, range, sink)
    }

    fn read_span(&self) -> u64 {
        // with the cache, reads are held whole (the cache keeps them)
        if self.cache.is_some() {
            super::DEFAULT_READ_SPAN
        } else {
            STREAM_READ_SPAN
        }
    }

    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        let path = self.path(key)?;
        if let Some(r) = ranges.iter().find(|r| r.start > r.end) {
            return Err(EngineError::Invalid(format!("byte range {r:?} of {key} is reversed")));
        }
        let mut out: Vec<Option<Vec<u8>>> = vec![None; ranges.len()];
        let mut missing = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            if r.start == r.end {
                out[i] = Some(Vec::new());
            } else if let Some(b) = self.cached(key, r) {
                out[i] = Some(b);
            } else {
                missing.push(i);
            }
        }
        if !missing.is_empty() {
            add(&self.counters.cache_misses, missing.len() as u64);
            let want: Vec<Range<u64>> = missing.iter().map(|&i| ranges[i].clone()).collect();
            let got = self.fetch_ranges(key, path, want)?;
            for (&i, b) in missing.iter().zip(got) {
                if let Some(c) = &self.cache {
                    c.put(key, &ranges[i], &b);
                }
                out[i] = Some(Vec::from(b));
            }
        }
        Ok(out.into_iter().map(|b| b.expect("every range filled")).collect())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let res = self.run("head", key, async move { store.head(&path).await })?;
        add(&self.counters.heads, 1);
        // A HEAD's 404 has no body, so a missing bucket reads as a missing key here; every
        // other call names the missing bucket.
        match res {
            Ok(_) => Ok(true),
            Err(e) => match self.error("head", key, e) {
                EngineError::MissingObject { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b)) || prefix.contains("//") {
            return Err(EngineError::Invalid(format!("list prefix {prefix:?} is not a valid store key prefix")));
        }
        let full = format!("{}{prefix}", self.root);
        // object_store lists by whole path segments; the trait's prefix is a string prefix
        // (`packs/ab` matches `packs/abc…`), so list the enclosing directory and filter.
        let dir = &full[..full.rfind('/').map_or(0, |i| i + 1)];
        let list_path = self.dir_path(dir);
        let store = self.store.clone();
        let res = self.run("list", prefix, async move {
            let mut s = store.list(list_path.as_ref());
            let mut metas = Vec::new();
            while let Some(m) = s.next().await {
                metas.push(m?);
            }
            Ok::<_, object_store::Error>(metas)
        })?;
        add(&self.counters.lists, 1);
        let metas = res.map_err(|e| self.error("list", prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let loc = m.location.as_ref();
                if !loc.starts_with(&full) {
                    return None;
                }
                Some(ObjectInfo {
                    key: loc[self.root.len()..].to_string(),
                    size: m.size,
                    modified: SystemTime::from(m.last_modified),
                })
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let res = self.run("delete", key, async move { store.delete(&path).await })?;
        add(&self.counters.deletes, 1);
        match res {
            Ok(()) => Ok(()),
            Err(e) => match self.error("delete", key, e) {
                EngineError::MissingObject { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}/{} at {}", self.bucket, self.root.trim_end_matches('/'), self.endpoint)
    }

    fn upload_concurrency(&self) -> usize {
        self.upload_concurrency
    }

    fn read_concurrency(&self) -> usize {
        // A ranged GET mostly waits (RGW, the network): keep several in flight so a restore
        // is not bound by one round trip at a time per core.
        READ_CONCURRENCY
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || valid_key(prefix) {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "S3 prefix {prefix:?} must be `/`-separated segments of letters, digits, `.`, `_` and `-`, \
             with no leading or trailing `/`"
        )))
    }
}

/// An error and its sources on one line (object_store nests the HTTP cause two or three deep).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// A request that timed out after it had connected (a connect timeout is "unreachable").
fn is_no_answer(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("timed out") && !t.contains("connect")
}

fn is_unreachable(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "connection refused",
        "dns error",
        "failed to lookup",
        "tcp connect",
        "connect error",
        "timed out",
        "no route to host",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// Ranges read from the store, kept in files, least recently used dropped past a byte bound.
///
/// Each process (and each backend in it) has its own directory under `cache_dir`, removed on
/// drop, so the server and the CLI sharing one config never evict each other's files; a
/// directory left by a dead process is removed at the next open.
struct ReadCache {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<CacheIndex>,
}

#[derive(Default)]
struct CacheIndex {
    /// (object key, range start) → entry. A lookup takes the entry with the greatest start at
    /// or before the asked range's and serves it when it also covers the range's end.
    entries: BTreeMap<(String, u64), CacheEntry>,
    /// Use tick → entry key: the first is the least recently used.
    lru: BTreeMap<u64, (String, u64)>,
    tick: u64,
    bytes: u64,
    next_file: u64,
}

struct CacheEntry {
    end: u64,
    file: u64,
    tick: u64,
}

const CACHE_DIR_PREFIX: &str = "s3-cache-";

impl ReadCache {
    fn open(parent: &FsPath, max_bytes: u64) -> Result<Self> {
        crate::private::create_dir_all(parent).map_err(|source| EngineError::Io {
            op: "create",
            path: parent.into(),
            source,
        })?;
        remove_dead_caches(parent);
        let dir = parent.join(format!("{CACHE_DIR_PREFIX}{}-{:08x}", std::process::id(), rand::random::<u32>()));
        crate::private::create_dir_all(&dir).map_err(|source| EngineError::Io {
            op: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(ReadCache { dir, max_bytes, inner: Mutex::new(CacheIndex::default()) })
    }

    fn file(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:016x}"))
    }

    fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    fn get(&self, key: &str, r: &Range<u64>) -> Option<Vec<u8>> {
        let (file, start) = {
            let mut ix = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let (k, e) = ix.entries.range(..=(key.to_string(), r.start)).next_back()?;
            if k.0 != key || e.end < r.end {
                return None;
            }
            let (k, file, old) = (k.clone(), e.file, e.tick);
            ix.tick += 1;
            let t = ix.tick;
            ix.lru.remove(&old);
            ix.lru.insert(t, k.clone());
            ix.entries.get_mut(&k).expect("just found").tick = t;
            (file, k.1)
        };
        // Read outside the lock. A file evicted in between is a miss, not an error.
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(self.file(file)).ok()?;
        let mut buf = vec![0; (r.end - r.start) as usize];
        f.read_exact_at(&mut buf, r.start - start).ok()?;
        Some(buf)
    }

    fn put(&self, key: &str, r: &Range<u64>, data: &[u8]) {
        let len = data.len() as u64;
        if len == 0 || len > self.max_bytes {
            return;
        }
        let file = {
            let mut ix = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if ix.entries.get(&(key.to_string(), r.start)).is_some_and(|e| e.end >= r.end) {
                return;
            }
            ix.next_file += 1;
            ix.next_file
        };
        // Write outside the lock (0600: these are a customer's disk bytes); a failed write
        // (disk full) just leaves the range uncached.
        let written =
            crate::private::create(&self.file(file)).and_then(|mut f| std::io::Write::write_all(&mut f, data));
        if written.is_err() {
            let _ = std::fs::remove_file(self.file(file));
            return;
        }
        let mut doomed = Vec::new();
        {
            let mut ix = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            ix.tick += 1;
            let tick = ix.tick;
            let k = (key.to_string(), r.start);
            if let Some(old) = ix.entries.insert(k.clone(), CacheEntry { end: r.end, file, tick }) {
                ix.lru.remove(&old.tick);
                ix.bytes -= old.end - k.1;
                doomed.push(old.file);
            }
            ix.lru.insert(tick, k);
            ix.bytes += len;
            while ix.bytes > self.max_bytes {
                let Some((_, victim)) = ix.lru.pop_first() else { break };
                let e = ix.entries.remove(&victim).expect("lru and entries agree");
                ix.bytes -= e.end - victim.1;
                doomed.push(e.file);
            }
        }
        for f in doomed {
            let _ = std::fs::remove_file(self.file(f));
        }
    }
}

impl Drop for ReadCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Remove `s3-cache-<pid>-*` directories whose process is gone (killed before its drop ran).
fn remove_dead_caches(parent: &FsPath) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let mut alive: HashMap<u32, bool> = HashMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) =
            name.strip_prefix(CACHE_DIR_PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let live = *alive.entry(pid).or_insert_with(|| {
            // kill(pid, 0): ESRCH means no such process; EPERM means one we may not signal.
            let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
            r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        });
        if !live {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one range in a slice is a get_ranges call, not a typo
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn config() -> S3Config {
        let mut c = S3Config::new("unit", "k", "s");
        c.endpoint = Some("memory://".into());
        c.multipart_threshold = 6 << 20;
        c.part_size = 5 << 20;
        c
    }

    fn mem(c: &S3Config) -> (Arc<InMemory>, S3Backend) {
        let store = Arc::new(InMemory::new());
        let b = S3Backend::from_store(store.clone(), c).unwrap();
        (store, b)
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn counters_count_requests_and_bytes() {
        let (_, b) = mem(&config());
        b.put("packs/small.pack", data(1000, 1)).unwrap();
        assert_eq!(b.stats(), S3Stats { puts: 1, bytes_up: 1000, ..S3Stats::default() });

        // 11 MiB with 5 MiB parts: three parts, one upload, five PUT-class requests
        b.put("packs/big.pack", data(11 << 20, 2)).unwrap();
        let s = b.stats();
        assert_eq!((s.multipart_uploads, s.multipart_parts, s.bytes_up), (1, 3, 1000 + (11 << 20)));
        assert_eq!(s.put_requests(), 1 + 3 + 2);

        assert_eq!(b.get("packs/big.pack").unwrap(), data(11 << 20, 2));
        assert_eq!(b.stats().gets, 1);
        assert_eq!(b.stats().bytes_down, 11 << 20);

        // neighbours less than 1 MiB apart: one ranged GET; one 3 MiB further: a second
        let before = b.stats();
        let got = b.get_ranges("packs/big.pack", &[0..100, 200..300, 1000..5000, (4 << 20)..(4 << 20) + 10]).unwrap();
        assert_eq!(got[2], data(11 << 20, 2)[1000..5000]);
        let after = b.stats();
        assert_eq!(after.gets - before.gets, 2);
        assert_eq!(after.bytes_down - before.bytes_down, 5000 + 10);
        assert_eq!(after.cache_misses - before.cache_misses, 4, "no cache: every range is a miss");

        b.list("packs/").unwrap();
        b.delete("packs/small.pack").unwrap();
        assert!(!b.exists("packs/small.pack").unwrap());
        assert!(b.exists("packs/big.pack").unwrap());
        assert_eq!((b.stats().lists, b.stats().deletes, b.stats().heads), (1, 1, 2));
        assert_eq!(b.stats().gets, after.gets, "exists is a HEAD, not a GET");
    }

    #[test]
    fn prefix_isolates_stores_sharing_a_bucket() {
        let store = Arc::new(InMemory::new());
        let mut c1 = config();
        c1.prefix = "site/one".into();
        let mut c2 = config();
        c2.prefix = "site/two".into();
        let b1 = S3Backend::from_store(store.clone(), &c1).unwrap();
        let b2 = S3Backend::from_store(store.clone(), &c2).unwrap();
        b1.put("packs/a.pack", b"one".to_vec()).unwrap();
        b2.put("packs/a.pack", b"two".to_vec()).unwrap();
        assert_eq!(b1.get("packs/a.pack").unwrap(), b"one");
        assert_eq!(b2.list("").unwrap().len(), 1);
        assert_eq!(b2.list("").unwrap()[0].key, "packs/a.pack");
        let raw = b1.run("t", "", async move { store.get(&Path::from("site/one/packs/a.pack")).await?.bytes().await });
        assert_eq!(&raw.unwrap().unwrap()[..], b"one");
        assert_eq!(b1.describe(), "s3://unit/site/one at memory://");
        assert!(matches!(
            S3Backend::from_store(Arc::new(InMemory::new()), &S3Config { prefix: "/lead".into(), ..config() }),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            S3Backend::from_store(Arc::new(InMemory::new()), &S3Config { part_size: 1 << 20, ..config() }),
            Err(EngineError::Invalid(_))
        ));
    }

    fn cached(max: u64) -> (tempfile::TempDir, Arc<InMemory>, S3Backend) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.cache_dir = Some(dir.path().join("cache"));
        c.cache_max_bytes = max;
        let (store, b) = mem(&c);
        (dir, store, b)
    }

    #[test]
    fn cache_serves_repeated_and_contained_ranges() {
        let (_dir, _, b) = cached(1 << 20);
        b.put("packs/p.pack", data(100_000, 3)).unwrap();
        let first = b.get_ranges("packs/p.pack", &[1000..9000, 50_000..60_000]).unwrap();
        assert_eq!(b.stats().cache_misses, 2);
        let gets = b.stats().gets;
        // the same ranges, and ranges inside them: no request
        let again = b.get_ranges("packs/p.pack", &[50_000..60_000, 1000..9000, 2000..3000]).unwrap();
        assert_eq!(b.stats().gets, gets);
        assert_eq!(b.stats().cache_hits, 3);
        assert_eq!(again[0], first[1]);
        assert_eq!(again[1], first[0]);
        assert_eq!(again[2], data(100_000, 3)[2000..3000]);
        assert_eq!(b.cache_bytes(), 8000 + 10_000);
        // a range reaching past a cached one is fetched
        b.get_ranges("packs/p.pack", &[8000..9500]).unwrap();
        assert_eq!(b.stats().gets, gets + 1);
    }

    #[test]
    fn cache_evicts_least_recently_used_past_its_bound() {
        let (dir, _, b) = cached(3000);
        b.put("packs/p.pack", data(10_000, 4)).unwrap();
        let r = |i: u64| i * 1000..i * 1000 + 1000;
        for i in 0..3 {
            b.get_ranges("packs/p.pack", &[r(i)]).unwrap();
        }
        assert_eq!(b.cache_bytes(), 3000);
        // touch range 0, then add range 3: range 1 (least recent) goes, 0 stays
        b.get_ranges("packs/p.pack", &[r(0)]).unwrap();
        b.get_ranges("packs/p.pack", &[r(3)]).unwrap();
        assert_eq!(b.cache_bytes(), 3000);
        let hits = b.stats().cache_hits;
        b.get_ranges("packs/p.pack", &[r(0)]).unwrap();
        assert_eq!(b.stats().cache_hits, hits + 1, "range 0 was used recently: still cached");
        b.get_ranges("packs/p.pack", &[r(1)]).unwrap();
        assert_eq!(b.stats().cache_hits, hits + 1, "range 1 was evicted");
        // the files on disk follow the index, and are private
        let cache_dir = std::fs::read_dir(dir.path().join("cache")).unwrap().next().unwrap().unwrap().path();
        let files: Vec<_> = std::fs::read_dir(&cache_dir).unwrap().map(|e| e.unwrap()).collect();
        let on_disk: u64 = files.iter().map(|e| e.metadata().unwrap().len()).sum();
        assert_eq!(on_disk, b.cache_bytes());
        use std::os::unix::fs::PermissionsExt;
        assert!(files.iter().all(|e| e.metadata().unwrap().permissions().mode() & 0o777 == 0o600));
        // a range larger than the whole cache is served, not cached
        b.get_ranges("packs/p.pack", &[0..5000]).unwrap();
        assert!(b.cache_bytes() <= 3000);
        drop(b);
        assert!(!cache_dir.exists(), "a backend removes its cache directory when dropped");
    }

    #[test]
    fn cache_of_a_dead_process_is_removed_and_whole_gets_bypass_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("cache");
        // pid_max is at most 2^22 on Linux: this pid cannot be running
        let dead = parent.join(format!("{CACHE_DIR_PREFIX}{}-deadbeef", (1u32 << 22) + 7));
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join("0000000000000001"), b"stale").unwrap();
        let foreign = parent.join("keep-me");
        std::fs::create_dir_all(&foreign).unwrap();
        let mut c = config();
        c.cache_dir = Some(parent.clone());
        c.cache_max_bytes = 1 << 20;
        let (store, b) = mem(&c);
        assert!(!dead.exists());
        assert!(foreign.exists());

        b.put("packs/p.pack", b"original bytes".to_vec()).unwrap();
        assert_eq!(b.get_ranges("packs/p.pack", &[0..8]).unwrap()[0], b"original");
        // the stored object changes under us (bit rot in the store): a whole get, as verify
        // does, sees the store's bytes, while ranged reads keep the cached copy
        let s = store.clone();
        b.run(
            "t",
            "",
            async move { s.put(&Path::from("packs/p.pack"), PutPayload::from(&b"corrupt! bytes"[..])).await },
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.get("packs/p.pack").unwrap(), b"corrupt! bytes");
        assert_eq!(b.get_ranges("packs/p.pack", &[0..8]).unwrap()[0], b"original");
    }

    /// `read_range_streamed` from the store: the range's bytes in order, one GET, the read span
    /// of a streaming backend; a sink that fails stops the read with its error; a range past
    /// the end is an error, not fewer bytes. With the read cache on, ranges are held whole.
    #[test]
    fn streamed_ranges_arrive_in_order_and_stop_when_the_reader_does() {
        let (_, b) = mem(&config());
        let body = data(5 << 20, 9);
        b.put("packs/s.pack", body.clone()).unwrap();
        assert_eq!(b.read_span(), STREAM_READ_SPAN);
        let before = b.stats();
        let mut got = Vec::new();
        let mut pieces = 0;
        b.read_range_streamed("packs/s.pack", 1000..(4 << 20) + 7, &mut Vec::new(), &mut |p| {
            got.extend_from_slice(p);
            pieces += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(got, body[1000..(4 << 20) + 7]);
        assert!(pieces >= 1);
        let s = b.stats();
        assert_eq!((s.gets - before.gets, s.bytes_down - before.bytes_down), (1, (4 << 20) + 7 - 1000));

        let mut calls = 0;
        let e = b
            .read_range_streamed("packs/s.pack", 0..(5 << 20), &mut Vec::new(), &mut |_| {
                calls += 1;
                Err(EngineError::Invalid("the reader stops here".into()))
            })
            .unwrap_err();
        assert_eq!((calls, e.to_string().contains("the reader stops here")), (1, true), "{e}");

        let e = b.read_range_streamed("packs/s.pack", (5 << 20) - 10..(5 << 20) + 10, &mut Vec::new(), &mut |_| Ok(()));
        assert!(e.is_err(), "a range past the end of the object must fail");
        let e = b.read_range_streamed("packs/none.pack", 0..10, &mut Vec::new(), &mut |_| Ok(())).unwrap_err();
        assert!(matches!(e, EngineError::MissingObject { .. }), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.cache_dir = Some(dir.path().to_path_buf());
        c.cache_max_bytes = 1 << 20;
        let (_, cached) = mem(&c);
        assert_eq!(cached.read_span(), crate::backend::DEFAULT_READ_SPAN);
        cached.put("packs/s.pack", body.clone()).unwrap();
        let mut got = Vec::new();
        cached
            .read_range_streamed("packs/s.pack", 10..20, &mut Vec::new(), &mut |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        assert_eq!((got.as_slice(), cached.stats().cache_misses), (&body[10..20], 1));
    }

    #[test]
    fn callable_from_spawn_blocking_from_async_tasks_and_droppable_there() {
        let (_, b) = mem(&config());
        let b = Arc::new(b);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let b2 = b.clone();
        rt.block_on(async move {
            // as the engine is called: from spawn_blocking threads of the caller's runtime
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let b = b2.clone();
                    tokio::task::spawn_blocking(move || {
                        let key = format!("packs/t{i}.pack");
                        b.put(&key, data(70_000, i)).unwrap();
                        b.get_ranges(&key, &[0..10, 60_000..70_000]).unwrap()
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(h.await.unwrap()[0].len(), 10);
            }
            // and even straight from an async task (it blocks that worker, but cannot deadlock
            // or panic: the request runs on the backend's own runtime)
            assert_eq!(b2.list("packs/").unwrap().len(), 8);
            let mut got = Vec::new();
            b2.read_range_streamed("packs/t3.pack", 100..60_100, &mut Vec::new(), &mut |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
            assert_eq!(got, data(70_000, 3)[100..60_100]);
        });
        // a current-thread runtime: the backend may not rely on the caller's runtime progressing
        let ct = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        ct.block_on(async {
            assert_eq!(b.get("packs/t1.pack").unwrap(), data(70_000, 1));
        });
        // dropping the last handle inside an async task must not panic (a runtime's blocking drop would)
        let (_, last) = mem(&config());
        ct.block_on(async move {
            drop(last);
        });
    }

    #[test]
    fn store_that_accepts_but_never_answers_fails_at_the_request_timeout() {
        // A listener that takes the connection and the request and never replies: what a
        // gateway whose OSD ran out of space looked like. The job must fail at request_timeout
        // with the setting named, not hang.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for c in listener.incoming().take(2) {
                conns.push(c.unwrap());
            }
            std::thread::sleep(Duration::from_secs(20));
        });
        let mut c = S3Config::new("hung-bucket", "k", "s");
        c.endpoint = Some(format!("http://127.0.0.1:{port}"));
        c.allow_http = true;
        c.path_style = true;
        c.max_retries = 0;
        c.request_timeout = Duration::from_secs(1);
        let b = S3Backend::open(&c).unwrap();
        let t = std::time::Instant::now();
        let e = b.put("packs/x.pack", vec![7; 100_000]).unwrap_err();
        let waited = t.elapsed();
        assert!(matches!(e, EngineError::Backend { op: "put", .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("did not answer within 1s (request_timeout in [store])"), "{e}");
        assert!(waited < Duration::from_secs(10), "failed after {waited:?}");
        let e = b.delete("packs/x.pack").unwrap_err().to_string();
        assert!(e.contains("request_timeout"), "{e}");
        drop(held);
    }

    #[test]
    fn unreachable_endpoint_is_a_clear_error() {
        // nothing listens on port 1; no retries so the test is quick
        let mut c = S3Config::new("some-bucket", "k", "s");
        c.endpoint = Some("http://127.0.0.1:1".into());
        c.allow_http = true;
        c.path_style = true;
        c.max_retries = 0;
        let b = S3Backend::open(&c).unwrap();
        let e = b.check().unwrap_err().to_string();
        assert!(e.contains("cannot reach the S3 endpoint http://127.0.0.1:1"), "{e}");
        assert!(e.contains("some-bucket"), "{e}");
        let e = b.get("packs/x.pack").unwrap_err();
        assert!(matches!(e, EngineError::Backend { op: "get", .. }), "{e}");
        // plain http is refused unless allowed
        c.allow_http = false;
        let e = S3Backend::open(&c).unwrap().check().unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:1"), "{e}");
        assert!(!format!("{c:?}").contains("\"s\""), "Debug hides the secret");
    }
}
