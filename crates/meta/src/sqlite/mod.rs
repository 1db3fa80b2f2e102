//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before the call returns. Statements are built with `QueryBuilder` so filters stay
//! parameterised. They are SQLite's dialect, not portable SQL: a PostgreSQL backend needs its
//! own text for `?`/`?N` placeholders (`$N`), `json_group_array`/`json_object`/`json_each`/`iif`/
//! `instr` (`json_agg`, `json_build_object`, `jsonb_array_elements_text`, `CASE`, `strpos`), the
//! FTS5 trigram table `snapshots_search` and its `MATCH` (`pg_trgm`), `BEGIN IMMEDIATE` (a row
//! lock or `SERIALIZABLE`), `rowid`, booleans stored as 0/1, case-insensitive `LIKE` (`ILIKE`),
//! the planner hints (`account || ''`), the `PRAGMA`s, and the migrations' triggers. What does
//! carry over: `ON CONFLICT … DO UPDATE` upserts, row-value keyset comparisons and the
//! statements' shapes.
//!
//! By concern: [`tables`] (each row kind's columns, listed once), [`batch`] (a batch's commit),
//! [`sql`] (shared conditions, order and paging), [`snapshots`] (lookups and the snapshot list
//! with its totals), [`volumes`] (instances and volumes), [`images`], [`jobs`], [`tags`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::filter::{JobFilter, Page, SnapshotFilter, VolumeFilter};
use crate::rows::*;
use crate::{Batch, MetaError, MetaStore, Result, SnapshotListing};

mod batch;
mod cluster;
mod generation;
mod images;
pub(crate) mod jobs;
mod policies;
pub(crate) mod prefetch;
mod sessions;
pub(crate) mod snapshots;
pub(crate) mod sql;
mod state;
pub(crate) mod tables;
mod tags;
#[cfg(test)]
pub(crate) mod tests;
mod volumes;

pub struct SqliteMeta {
    /// Shared with other stores of this crate that keep their tables in the same database.
    pub(crate) pool: SqlitePool,
    counts: snapshots::CountCache,
    generation: generation::GenerationReader,
    /// The token generation, read the same way.
    tokens: generation::GenerationReader,
    /// Taken around this process's write transactions (batches, request state): they queue
    /// here in order instead of meeting at SQLite's write lock, whose busy handler sleeps 1, 2,
    /// 5, 10… 100 ms between tries (a request's commit behind its jobs' commits waited up to
    /// 230 ms at 20 writes/s, issue 16). Other processes on the file still meet at the lock.
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// The database file, for reading it in ahead (prefetch.rs).
    pub(crate) path: std::path::PathBuf,
}

impl SqliteMeta {
    /// Open (creating if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        // SQLite creates a new database 0644 (less the umask) and gives its -wal and -shm the
        // database file's mode: made 0600 first, none of them is readable by other users.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
            match created {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(MetaError::Db(sqlx::Error::Io(e))),
            }
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // No memory mapping of the file (SQLite's default): each connection mapped what it
            // read and the process's RSS counted every page once per connection (599 MiB at
            // 100 000 snapshots, issue 16). Repeated list pages come from the service's page
            // cache now; what is read is read with pread() through the OS page cache.
            .pragma("mmap_size", "0");
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let generation = generation::GenerationReader::open(path, c"SELECT gen FROM page_generation WHERE id = 0")?;
        let tokens = generation::GenerationReader::open(path, c"SELECT gen FROM token_generation WHERE id = 0")?;
        let meta = SqliteMeta {
            pool,
            counts: Default::default(),
            generation,
            tokens,
            writer: Default::default(),
            path: path.to_path_buf(),
        };
        meta.optimize().await?;
        Ok(meta)
    }

    /// Refresh the planner's statistics where tables changed a lot (SQLite's advice: on open and
    /// now and then). Cheap: `analysis_limit` bounds the rows each ANALYZE reads.
    pub async fn optimize(&self) -> Result<()> {
        sqlx::query("PRAGMA analysis_limit = 1000").execute(&self.pool).await?;
        sqlx::query("PRAGMA optimize = 0x10002").execute(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn maintain(&self) -> Result<()> {
        // expired request state goes too (writes purge only their own kind and account)
        let now = chrono_now_ms();
        state::purge(&self.pool, now).await?;
        cluster::purge_nonces(&self.pool, now).await?;
        // a day past its end a runner's lease is no one's: its jobs were taken over long since
        cluster::purge_runners(&self.pool, now - 86_400_000).await?;
        self.optimize().await
    }

    async fn commit(&self, b: Batch) -> Result<()> {
        let _writer = self.writer.lock().await;
        self.commit_batch(b).await
    }

    async fn instance(&self, account: &str, id: &str) -> Result<Option<InstanceRow>> {
        tables::by_id::<InstanceRow>(&self.pool, account, id).await
    }

    async fn instances(&self, account: &str) -> Result<Vec<InstanceRow>> {
        volumes::instances(&self.pool, account).await
    }

    async fn instances_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<InstanceRow>> {
        volumes::instances_by_id(&self.pool, account, ids).await
    }

    async fn volume(&self, account: &str, id: &str) -> Result<Option<VolumeRow>> {
        tables::by_id::<VolumeRow>(&self.pool, account, id).await
    }

    async fn volumes(&self, f: &VolumeFilter) -> Result<Page<VolumeRow>> {
        volumes::list(&self.pool, f).await
    }

    async fn volumes_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<VolumeRow>> {
        volumes::volumes_by_id(&self.pool, account, ids).await
    }

    async fn volumes_of_instance(&self, account: &str, instance_id: &str) -> Result<Vec<VolumeRow>> {
        volumes::volumes_of_instance(&self.pool, account, instance_id).await
    }

    async fn snapshot(&self, account: &str, id: &str) -> Result<Option<SnapshotRow>> {
        tables::by_id::<SnapshotRow>(&self.pool, account, id).await
    }

    async fn snapshots(&self, f: &SnapshotFilter) -> Result<Page<SnapshotRow>> {
        Ok(self.list(f, false).await?.page)
    }

    async fn snapshot_listing(&self, f: &SnapshotFilter) -> Result<SnapshotListing> {
        self.list(f, true).await
    }

    async fn page_generation(&self) -> Result<Option<i64>> {
        Ok(Some(self.generation.read()?))
    }

    async fn token_generation(&self) -> Result<Option<i64>> {
        Ok(Some(self.tokens.read()?))
    }

    async fn chain(&self, root_id: &str) -> Result<Vec<SnapshotRow>> {
        snapshots::chain(&self.pool, root_id).await
    }

    async fn chain_totals(&self, root_ids: &[String]) -> Result<Vec<ChainTotals>> {
        snapshots::chain_totals(&self.pool, root_ids).await
    }

    async fn snapshots_holding_data(&self) -> Result<Vec<String>> {
        snapshots::snapshots_holding_data(&self.pool).await
    }

    async fn snapshots_logical_bytes(&self) -> Result<(u64, u64)> {
        snapshots::snapshots_logical_bytes(&self.pool).await
    }

    async fn snapshots_due(&self, deleted_before: Millis, now: Millis) -> Result<Vec<SnapshotRow>> {
        snapshots::snapshots_due(&self.pool, deleted_before, now).await
    }

    async fn snapshot_metadata(&self, id: &str) -> Result<Vec<(String, String)>> {
        snapshots::snapshot_metadata(&self.pool, id).await
    }

    async fn snapshots_metadata(&self, account: &str, ids: &[String]) -> Result<Vec<(String, String, String)>> {
        snapshots::snapshots_metadata(&self.pool, account, ids).await
    }

    async fn image(&self, account: &str, id: &str) -> Result<Option<ImageRow>> {
        tables::by_id::<ImageRow>(&self.pool, account, id).await
    }

    async fn images(&self, account: &str, offset: u64, limit: u64) -> Result<Page<ImageRow>> {
        images::list(&self.pool, account, offset, limit).await
    }

    async fn job(&self, account: &str, id: &str) -> Result<Option<JobRow>> {
        tables::by_id::<JobRow>(&self.pool, account, id).await
    }

    async fn jobs(&self, f: &JobFilter) -> Result<Page<JobRow>> {
        jobs::list(&self.pool, f).await
    }

    async fn purge_jobs(&self, created_before: Millis) -> Result<u64> {
        jobs::purge(&self.pool, &self.writer, created_before).await
    }

    async fn tag(&self, account: &str, id: &str) -> Result<Option<TagRow>> {
        tables::by_id::<TagRow>(&self.pool, account, id).await
    }

    async fn tags(&self, account: &str) -> Result<Vec<TagRow>> {
        tags::all(&self.pool, account).await
    }

    async fn tags_of(&self, resource_ids: &[String]) -> Result<Vec<(String, TagRow)>> {
        tags::tags_of(&self.pool, resource_ids).await
    }

    async fn state_get(&self, kind: &str, account: &str, key: &str, now: Millis) -> Result<Option<StateRow>> {
        state::get(&self.pool, kind, account, key, now).await
    }

    async fn state_get_many(&self, kind: &str, account: &str, keys: &[String], now: Millis) -> Result<Vec<StateRow>> {
        state::get_many(&self.pool, kind, account, keys, now).await
    }

    async fn state_list(&self, kind: &str, account: &str, now: Millis) -> Result<Vec<StateRow>> {
        state::list(&self.pool, kind, account, now).await
    }

    async fn state_keys(&self, kind: &str, account: &str, value: &str, now: Millis) -> Result<Vec<String>> {
        state::keys(&self.pool, kind, account, value, now).await
    }

    async fn state_put(&self, row: &StateRow, keep: u64, now: Millis) -> Result<()> {
        let _writer = self.writer.lock().await;
        state::put(&self.pool, row, keep, now).await
    }

    async fn state_delete(&self, kind: &str, account: &str, key: &str) -> Result<bool> {
        let _writer = self.writer.lock().await;
        state::delete(&self.pool, kind, account, key).await
    }

    async fn state_purge(&self, now: Millis) -> Result<u64> {
        Ok(state::purge(&self.pool, now).await? + cluster::purge_nonces(&self.pool, now).await?)
    }

    async fn nonce_first_use(&self, digest: &str, now: Millis, expires_at: Millis) -> Result<bool> {
        cluster::nonce_first_use(&self.pool, digest, now, expires_at).await
    }

    async fn node_heartbeat(&self, row: &NodeRow) -> Result<()> {
        cluster::heartbeat(&self.pool, row).await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        cluster::nodes(&self.pool).await
    }

    async fn volumes_per_node(&self) -> Result<Vec<(String, i64)>> {
        cluster::volumes_per_node(&self.pool).await
    }

    async fn runner_lease(&self, runner: &str, node: &str, until: Millis) -> Result<()> {
        cluster::runner_lease(&self.pool, runner, node, until).await
    }

    async fn runner_leases(&self) -> Result<Vec<(String, String, Millis)>> {
        cluster::runner_leases(&self.pool).await
    }

    async fn runner_leases_purge(&self, before: Millis) -> Result<u64> {
        cluster::purge_runners(&self.pool, before).await
    }

    async fn maintenance_lead(&self) -> Result<bool> {
        Ok(true)
    }

    async fn console_session_put(&self, row: &ConsoleSessionRow) -> Result<()> {
        sessions::put(&self.pool, row).await
    }

    async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSessionRow>> {
        sessions::get(&self.pool, token_hash).await
    }

    async fn console_session_touch(&self, token_hash: &str, at: Millis) -> Result<()> {
        sessions::touch(&self.pool, token_hash, at).await
    }

    async fn console_session_delete(&self, token_hash: &str) -> Result<()> {
        sessions::delete(&self.pool, token_hash).await
    }

    async fn console_sessions_expire(&self, seen_before: Millis) -> Result<u64> {
        sessions::expire(&self.pool, seen_before).await
    }

    async fn policy_put(&self, row: &PolicyRow) -> Result<()> {
        policies::put(&self.pool, row).await
    }

    async fn policy(&self, account: &str, id: &str) -> Result<Option<PolicyRow>> {
        policies::get(&self.pool, account, id).await
    }

    async fn policies(&self, account: Option<&str>) -> Result<Vec<PolicyRow>> {
        policies::list(&self.pool, account).await
    }

    async fn policy_delete(&self, account: &str, id: &str) -> Result<bool> {
        policies::delete(&self.pool, account, id).await
    }

    async fn policy_bind(&self, policy_id: &str, volume_ids: &[String]) -> Result<()> {
        policies::bind(&self.pool, policy_id, volume_ids).await
    }

    async fn policy_unbind(&self, policy_id: &str, volume_ids: &[String]) -> Result<()> {
        policies::unbind(&self.pool, policy_id, volume_ids).await
    }

    async fn policy_volumes(&self, policy_id: &str) -> Result<Vec<String>> {
        policies::volumes(&self.pool, policy_id).await
    }

    async fn policy_of_volume(&self, volume_id: &str) -> Result<Option<String>> {
        policies::of_volume(&self.pool, volume_id).await
    }

    async fn policy_slot_claim(&self, policy_id: &str, slot: Millis, runner: &str, at: Millis) -> Result<bool> {
        policies::claim(&self.pool, policy_id, slot, runner, at).await
    }

    async fn policy_slot_started(
        &self,
        policy_id: &str,
        slot: Millis,
        job_id: &str,
        made: &[PolicySnapshotRow],
    ) -> Result<()> {
        policies::slot_started(&self.pool, policy_id, slot, job_id, made).await
    }

    async fn policy_slots(&self, policy_id: &str) -> Result<Vec<(Millis, Option<String>)>> {
        policies::slots(&self.pool, policy_id).await
    }

    async fn policy_snapshots(&self, policy_id: &str) -> Result<Vec<PolicySnapshotRow>> {
        policies::snapshots(&self.pool, policy_id).await
    }

    async fn policy_forget_snapshots(&self, snapshot_ids: &[String]) -> Result<()> {
        policies::forget_snapshots(&self.pool, snapshot_ids).await
    }

    async fn snapshot_group(&self, account: &str, id: &str) -> Result<Option<SnapshotGroupRow>> {
        tables::by_id::<SnapshotGroupRow>(&self.pool, account, id).await
    }

    async fn snapshot_groups(&self, account: &str) -> Result<Vec<SnapshotGroupRow>> {
        Ok(sqlx::query_as("SELECT * FROM snapshot_groups WHERE account = ? ORDER BY create_time, id")
            .bind(account)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn policy_slots_unstarted(&self) -> Result<Vec<(String, Millis, String, Millis)>> {
        policies::slots_unstarted(&self.pool).await
    }

    async fn policy_slot_reclaim(
        &self,
        policy_id: &str,
        slot: Millis,
        old_runner: &str,
        new_runner: &str,
        at: Millis,
    ) -> Result<bool> {
        policies::slot_reclaim(&self.pool, policy_id, slot, old_runner, new_runner, at).await
    }

    async fn account_purge(&self, account: &str) -> Result<()> {
        policies::account_purge(&self.pool, account).await
    }
}

/// Now, in Unix milliseconds (the store's clock for its own upkeep).
pub(crate) fn chrono_now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}
