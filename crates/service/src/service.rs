//! The `Service` value: configuration, the stores it owns, and lookups shared by every operation.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use disksnap_engine::backend::local::LocalBackend;
use disksnap_engine::{private, Backend, Store};
use disksnap_meta::{ChunkIndexRows, MetaStore, PgMeta, SnapshotRow, SqliteMeta, VolumeRow};

use crate::chunk_index::MetaChunkIndex;
use crate::error::{Result, ServiceError};
use crate::ids;
use crate::model::Kind;
use crate::progress::JobProgress;

/// A location and the other names dialects may use for it.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    pub name: String,
    pub aliases: Vec<String>,
}

/// How long a finished job stays listed by default: a month of history (a poller sees its job
/// end within minutes), without a job table that grows with every job ever run (72 000 jobs an
/// hour at the API bench's 20 writes/s).
pub const DEFAULT_JOB_RETENTION: Duration = Duration::from_secs(30 * 86_400);

#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Holds `meta.db`, `store/` (chunks, indexes), `volumes/`, `images/`, `runners/`.
    pub data_dir: PathBuf,
    /// Chunk size for a new store (an existing store keeps its own).
    pub chunk_size: Option<usize>,
    /// Captures compress with the store's dictionary (`[store] capture_dictionary`).
    pub capture_dictionary: bool,
    /// How long a deleted full point stays recoverable before it is ceased.
    pub deleted_retention: Duration,
    /// GC keeps unreferenced chunks younger than this (they may belong to a running job).
    pub gc_grace: Duration,
    /// Finished jobs are deleted this long after they were created (`job_retention`); zero
    /// keeps them forever.
    pub job_retention: Duration,
    pub zones: Vec<ZoneConfig>,
    /// Account names. Credentials belong to the dialects, not to the service.
    pub accounts: Vec<String>,
    /// For tests only (zero in production): each rollback job waits this long, with its
    /// snapshot and volume marked rolling back, before it moves any byte, so a test can observe
    /// the "rolling back" state through an API. Set by the config key `test_rollback_delay`.
    pub test_rollback_delay: Duration,
    /// The metadata database on PostgreSQL (`postgres://…`); None: SQLite at `DATA/meta.db`.
    pub database_url: Option<String>,
    /// This process's node of a cluster (`[node]`); None: a single server.
    pub node: Option<crate::cluster::NodeConfig>,
    /// Where each zone's new volume files go (zone name → directory), e.g. a directory on XFS
    /// or btrfs, where points are instant clones and changes are tracked. A zone not named
    /// here keeps `DATA/volumes/`.
    pub volume_homes: HashMap<String, PathBuf>,
    /// For tests only: every snapshot capture fails right after its clones are made, before
    /// anything is committed (the crash window between clone and commit).
    pub test_fail_capture_after_clone: bool,
}

impl ServiceConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServiceConfig {
            data_dir: data_dir.into(),
            chunk_size: None,
            capture_dictionary: true,
            deleted_retention: Duration::from_secs(2 * 3600),
            gc_grace: Duration::from_secs(600),
            job_retention: DEFAULT_JOB_RETENTION,
            zones: vec![ZoneConfig { name: "pek3a".into(), aliases: vec![] }],
            accounts: vec!["dev".into()],
            test_rollback_delay: Duration::ZERO,
            database_url: None,
            node: None,
            volume_homes: HashMap::new(),
            test_fail_capture_after_clone: false,
        }
    }
}

/// Who is asking: every operation is scoped to one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
}

impl Caller {
    pub fn new(account: impl Into<String>) -> Self {
        Caller { account: account.into() }
    }
}

/// What a service keeps its rows and its snapshot bytes in. The binary builds them from its
/// configuration and hands them to [`Service::with_backends`], so another metadata store (any
/// [`MetaStore`]) plugs in without touching the service.
pub struct Backends {
    pub meta: Arc<dyn MetaStore>,
    pub store: Arc<Store>,
}

impl Backends {
    /// The embedded default: SQLite at `DATA/meta.db` (schema brought up to date) and a pack
    /// store on the local directory `DATA/store`, the data dir created owner-only if missing.
    pub async fn embedded(cfg: &ServiceConfig) -> Result<Self> {
        let root = cfg.data_dir.join("store");
        private::create_dir_all(&cfg.data_dir)
            .map_err(|e| ServiceError::Internal(format!("create {}: {e}", cfg.data_dir.display())))?;
        let local = LocalBackend::open(&root)?;
        Self::with_object_store(cfg, Arc::new(local)).await
    }

    /// The metadata database — SQLite at `DATA/meta.db`, or PostgreSQL when
    /// `cfg.database_url` names one — which also keeps the chunk index, and packs in `objects`
    /// (a local directory or an S3 bucket the binary built from its configuration). A chunk
    /// index found empty while the backend has packs (a new database over an existing store)
    /// is rebuilt from the packs first.
    pub async fn with_object_store(cfg: &ServiceConfig, objects: Arc<dyn Backend>) -> Result<Self> {
        let dir = cfg.data_dir.clone();
        private::create_dir_all(&dir).map_err(|e| ServiceError::Internal(format!("create {}: {e}", dir.display())))?;
        let (meta, rows): (Arc<dyn MetaStore>, Arc<dyn ChunkIndexRows>) = match &cfg.database_url {
            Some(url) => {
                let pg = Arc::new(PgMeta::connect(url).await?);
                (pg.clone(), pg)
            }
            None => {
                let sqlite = Arc::new(SqliteMeta::open(&dir.join("meta.db")).await?);
                (sqlite.clone(), sqlite)
            }
        };
        let index = Arc::new(MetaChunkIndex::new(rows, tokio::runtime::Handle::current()));
        let (chunk_size, capture_dictionary) = (cfg.chunk_size, cfg.capture_dictionary);
        let store = tokio::task::spawn_blocking(move || -> Result<Store> {
            let mut store = Store::open_with(&dir.join("store"), objects, index, chunk_size)?;
            store.set_capture_dictionary(capture_dictionary);
            if store.chunk_index().is_empty()? && !store.backend().list("packs/")?.is_empty() {
                let s = store.rebuild_index(&disksnap_engine::NoProgress)?;
                tracing::warn!(packs = s.packs, chunks = s.chunks, "chunk index was empty: rebuilt it from the packs");
            }
            Ok(store)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("opening the store: {e}")))??;
        Ok(Backends { meta, store: Arc::new(store) })
    }
}

/// The snapshot service. Cheap to clone; every clone shares one state.
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub meta: Arc<dyn MetaStore>,
    pub store: Arc<Store>,
    pub cfg: ServiceConfig,
    pub volumes_dir: PathBuf,
    pub images_dir: PathBuf,
    /// This process's runner id; its lock file is held for the process's life (see jobs.rs).
    pub runner: String,
    pub runners_dir: PathBuf,
    _runner_lock: File,
    pub progress: Mutex<HashMap<String, Arc<JobProgress>>>,
    pub job_done: tokio::sync::Notify,
    /// Test control's armed failures and holds (control.rs); empty unless the admin API arms them.
    pub control: crate::control::TestControl,
    /// Rendered list pages by page generation (crate::page_cache).
    pub pages: crate::page_cache::PageCache,
    /// Keystone tokens read, by token generation (crate::state::TokenCache).
    pub tokens: crate::state::TokenCache,
}

/// A data dir other users can read or enter (made by hand, or by a version that followed the
/// umask) becomes 0700: what is inside are customers' disk bytes. Files already in it keep
/// their modes, which no one else can reach through it any more.
fn close_to_others(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let internal = |e: std::io::Error| ServiceError::Internal(format!("chmod {}: {e}", dir.display()));
    let mode = fs::metadata(dir).map_err(internal)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(private::DIR_MODE)).map_err(internal)?;
        tracing::warn!(
            data_dir = %dir.display(),
            "the data dir was mode {mode:04o}, open to other users; it is now {:04o}",
            private::DIR_MODE
        );
    }
    Ok(())
}

/// Create and lock this process's runner file. The name is fresh, so the only other holder
/// the lock can ever have is another process's [`Service::reap_dead_runners`] probing it for
/// a moment (it takes the lock to learn whether the owner died, then drops it at once); wait
/// that out instead of failing the whole open, which is what a CLI command started while a
/// server reaps used to get.
fn lock_runner_file(path: &Path) -> Result<File> {
    let lock = private::create(path).map_err(|e| ServiceError::Internal(format!("create {}: {e}", path.display())))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(lock);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) || std::time::Instant::now() > deadline {
            return Err(ServiceError::Internal(format!("cannot lock {}: {err}", path.display())));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Service {
    /// Open the data dir with the embedded backends ([`Backends::embedded`]) and register
    /// this process as a job runner. Interrupted jobs are not touched here: call
    /// [`Service::recover`].
    pub async fn open(cfg: ServiceConfig) -> Result<Self> {
        let backends = Backends::embedded(&cfg).await?;
        Self::with_backends(cfg, backends)
    }

    /// A service over backends its caller built (from its configuration, or for a test);
    /// the data dir still holds the volume and image files and the runner locks.
    pub fn with_backends(cfg: ServiceConfig, backends: Backends) -> Result<Self> {
        if cfg.zones.is_empty() {
            return Err(ServiceError::invalid("zones", "at least one zone must be configured"));
        }
        let dir = &cfg.data_dir;
        let volumes_dir = dir.join("volumes");
        let images_dir = dir.join("images");
        let runners_dir = dir.join("runners");
        for d in [dir, &volumes_dir, &images_dir, &runners_dir].into_iter().chain(cfg.volume_homes.values()) {
            private::create_dir_all(d).map_err(|e| ServiceError::Internal(format!("create {}: {e}", d.display())))?;
        }
        close_to_others(dir)?;
        let runner = format!("{}-{}", std::process::id(), ids::new_id());
        let lock_path = runners_dir.join(format!("{runner}.lock"));
        let lock = lock_runner_file(&lock_path)?;
        let svc = Service {
            inner: Arc::new(Inner {
                meta: backends.meta,
                store: backends.store,
                cfg,
                volumes_dir,
                images_dir,
                runner,
                runners_dir,
                _runner_lock: lock,
                progress: Mutex::new(HashMap::new()),
                job_done: tokio::sync::Notify::new(),
                control: Default::default(),
                pages: Default::default(),
                tokens: Default::default(),
            }),
        };
        svc.start_runner_lease();
        Ok(svc)
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.cfg
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.cfg.data_dir
    }

    pub fn chunk_size(&self) -> usize {
        self.inner.store.chunk_size()
    }

    pub(crate) fn meta(&self) -> &dyn MetaStore {
        self.inner.meta.as_ref()
    }

    /// The canonical name of a zone given by name or alias (case-insensitive).
    pub fn resolve_zone(&self, zone: &str) -> Result<String> {
        let z = zone.trim();
        self.inner
            .cfg
            .zones
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(z) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(z)))
            .map(|c| c.name.clone())
            .ok_or_else(|| ServiceError::UnknownZone(z.to_string()))
    }

    /// A list filter's zone as rows hold it (none, or empty: any zone).
    pub(crate) fn stored_zone(&self, zone: Option<&str>) -> Result<Option<String>> {
        zone.filter(|z| !z.is_empty()).map(|z| self.resolve_zone(z)).transpose()
    }

    /// The zone used when a caller names none.
    pub fn default_zone(&self) -> String {
        self.inner.cfg.zones[0].name.clone()
    }

    pub fn zones(&self) -> &[ZoneConfig] {
        &self.inner.cfg.zones
    }

    pub(crate) fn check_account(&self, caller: &Caller) -> Result<()> {
        if self.inner.cfg.accounts.iter().any(|a| a == &caller.account) {
            Ok(())
        } else {
            Err(ServiceError::UnknownAccount(caller.account.clone()))
        }
    }

    /// Parse an id in any dialect's rendering; a malformed one is "not found", as clouds do.
    pub(crate) fn parse_id(&self, kind: Kind, text: &str) -> Result<String> {
        ids::parse(kind, text).ok_or_else(|| ServiceError::not_found(kind, text))
    }

    pub(crate) async fn volume_row(&self, caller: &Caller, id: &str) -> Result<VolumeRow> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::Volume, id)?;
        match self.meta().volume(&caller.account, &bare).await? {
            Some(v) if v.status != "deleted" => Ok(v),
            _ => Err(ServiceError::not_found(Kind::Volume, id)),
        }
    }

    pub(crate) async fn snapshot_row(&self, caller: &Caller, id: &str) -> Result<SnapshotRow> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::Snapshot, id)?;
        self.meta().snapshot(&caller.account, &bare).await?.ok_or_else(|| ServiceError::not_found(Kind::Snapshot, id))
    }

    /// A new volume's file: in its zone's home if one is configured.
    pub(crate) fn volume_path(&self, id: &str, zone: &str) -> PathBuf {
        self.inner.cfg.volume_homes.get(zone).unwrap_or(&self.inner.volumes_dir).join(format!("{id}.img"))
    }

    pub(crate) fn image_path(&self, id: &str) -> PathBuf {
        self.inner.images_dir.join(format!("{id}.img"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    /// Another process's reaper holds a fresh runner file's lock for a moment (its probe):
    /// opening must wait for it, not fail (CI's soak once failed its final check that way).
    #[test]
    fn a_runner_lock_held_for_a_moment_by_a_probe_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1-x.lock");
        let probe = private::create(&path).unwrap();
        // SAFETY: flock on an fd we own.
        assert_eq!(unsafe { libc::flock(probe.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(probe);
        });
        let lock = lock_runner_file(&path).expect("waits for the probe");
        release.join().unwrap();
        // Now ours: a second probe cannot take it.
        let other = OpenOptions::new().write(true).open(&path).unwrap();
        // SAFETY: flock on an fd we own.
        assert_ne!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        drop(lock);
    }
}
