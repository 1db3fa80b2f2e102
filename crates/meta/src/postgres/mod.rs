//! The PostgreSQL backend: the same rows, filters, batches and chunk index as the SQLite one
//! (crate::sqlite), for several disksnap nodes sharing one database.
//!
//! Its schema is migrations-pg/ (SQLite's 0001-0008 as one step, 0009 as 0002, 0010-0011 as
//! 0003). Backend-neutral parts are shared with the SQLite backend: the row kinds' column lists
//! (`sqlite::tables::Table`), the count cache and its key (`sqlite::snapshots`), LIKE escaping
//! and JSON row decoding (`sqlite::sql`). What is PostgreSQL's own: `$n` placeholders, lists bound as one array
//! (`= ANY($n)`), rows handed over with `json_agg`, search words through a `pg_trgm` index,
//! booleans as BOOLEAN, every text column `COLLATE "C"` (SQLite's byte order), and batch commits
//! that take turns on an advisory lock ([`batch`]).
//!
//! By concern: [`batch`] (a batch's commit), [`sql`] (shared conditions, order and paging),
//! [`lists`] (lookups and lists), [`chunk_index`] (the engine's chunk index rows), [`state`]
//! (request state), [`sessions`] (console sessions), [`policies`] (automatic snapshot policies).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::filter::{JobFilter, Page, SnapshotFilter, VolumeFilter};
use crate::rows::*;
use crate::sqlite::snapshots::CountCache;
use crate::sqlite::tables::Table;
use crate::{Batch, MetaStore, Result, SnapshotListing};

mod batch;
mod chunk_index;
mod cluster;
mod lists;
mod policies;
mod sessions;
pub(crate) mod sql;
mod state;

#[cfg(test)]
pub(crate) use lists::snapshot_where;

pub struct PgMeta {
    pub(crate) pool: PgPool,
    counts: CountCache,
    /// How to open the maintenance leader's own connection ([`cluster::Leader`]).
    opts: PgConnectOptions,
    leader: cluster::Leader,
}

impl PgMeta {
    /// Connect to the database `url` names (`postgres://user[:password]@host[:port]/dbname`,
    /// libpq's URL form) and bring its schema up to date. Several nodes may do this at once:
    /// sqlx's migrator holds an advisory lock while it migrates.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url.parse()?).await
    }

    /// [`PgMeta::connect`] with options already parsed (or built).
    pub async fn connect_with(opts: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A database that does not answer fails the request that waits for it, not forever.
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations-pg").run(&pool).await?;
        Ok(PgMeta { pool, counts: Default::default(), opts, leader: Default::default() })
    }
}

/// The account's row of kind `T` with this id.
async fn by_id<T>(pool: &PgPool, account: &str, id: &str) -> Result<Option<T>>
where
    T: Table + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    if !sql::storable(account) || !sql::storable(id) {
        return Ok(None); // no stored text holds NUL (see `sql::storable`)
    }
    let sql = format!("SELECT * FROM {} WHERE account = $1 AND id = $2", T::TABLE);
    Ok(sqlx::query_as(&sql).bind(account).bind(id).fetch_optional(pool).await?)
}

#[async_trait]
impl MetaStore for PgMeta {
    /// Expired request state goes (writes purge only their own kind and account); nothing
    /// else to do: PostgreSQL's autovacuum keeps the planner's statistics.
    async fn maintain(&self) -> Result<()> {
        let now = crate::sqlite::chrono_now_ms();
        state::purge(&self.pool, now).await?;
        cluster::purge_nonces(&self.pool, now).await?;
        // a day past its end a runner's lease is no one's: its jobs were taken over long since
        cluster::purge_runners(&self.pool, now - 86_400_000).await?;
        Ok(())
    }

    async fn commit(&self, b: Batch) -> Result<()> {
        self.commit_batch(b).await
    }

    async fn instance(&self, account: &str, id: &str) -> Result<Option<InstanceRow>> {
        by_id::<InstanceRow>(&self.pool, account, id).await
    }

    async fn instances(&self, account: &str) -> Result<Vec<InstanceRow>> {
        lists::instances(&self.pool, account).await
    }

    async fn instances_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<InstanceRow>> {
        lists::instances_by_id(&self.pool, account, ids).await
    }

    async fn volume(&self, account: &str, id: &str) -> Result<Option<VolumeRow>> {
        by_id::<VolumeRow>(&self.pool, account, id).await
    }

    async fn volumes(&self, f: &VolumeFilter) -> Result<Page<VolumeRow>> {
        lists::volumes(&self.pool, f).await
    }

    async fn volumes_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<VolumeRow>> {
        lists::volumes_by_id(&self.pool, account, ids).await
    }

    async fn volumes_of_instance(&self, account: &str, instance_id: &str) -> Result<Vec<VolumeRow>> {
        lists::volumes_of_instance(&self.pool, account, instance_id).await
    }

    async fn snapshot(&self, account: &str, id: &str) -> Result<Option<SnapshotRow>> {
        by_id::<SnapshotRow>(&self.pool, account, id).await
    }

    async fn snapshots(&self, f: &SnapshotFilter) -> Result<Page<SnapshotRow>> {
        Ok(self.list(f, false).await?.page)
    }

    async fn snapshot_listing(&self, f: &SnapshotFilter) -> Result<SnapshotListing> {
        self.list(f, true).await
    }

    async fn page_generation(&self) -> Result<Option<i64>> {
        Ok(Some(sqlx::query_scalar("SELECT gen FROM page_generation").fetch_one(&self.pool).await?))
    }

    async fn token_generation(&self) -> Result<Option<i64>> {
        Ok(Some(sqlx::query_scalar("SELECT gen FROM token_generation").fetch_one(&self.pool).await?))
    }

    async fn chain(&self, root_id: &str) -> Result<Vec<SnapshotRow>> {
        lists::chain(&self.pool, root_id).await
    }

    async fn chain_totals(&self, root_ids: &[String]) -> Result<Vec<ChainTotals>> {
        lists::chain_totals(&self.pool, root_ids).await
    }

    async fn snapshots_holding_data(&self) -> Result<Vec<String>> {
        lists::snapshots_holding_data(&self.pool).await
    }

    async fn snapshots_logical_bytes(&self) -> Result<(u64, u64)> {
        lists::snapshots_logical_bytes(&self.pool).await
    }

    async fn snapshots_due(&self, deleted_before: Millis, now: Millis) -> Result<Vec<SnapshotRow>> {
        lists::snapshots_due(&self.pool, deleted_before, now).await
    }

    async fn snapshot_metadata(&self, id: &str) -> Result<Vec<(String, String)>> {
        lists::snapshot_metadata(&self.pool, id).await
    }

    async fn snapshots_metadata(&self, account: &str, ids: &[String]) -> Result<Vec<(String, String, String)>> {
        lists::snapshots_metadata(&self.pool, account, ids).await
    }

    async fn image(&self, account: &str, id: &str) -> Result<Option<ImageRow>> {
        by_id::<ImageRow>(&self.pool, account, id).await
    }

    async fn images(&self, account: &str, offset: u64, limit: u64) -> Result<Page<ImageRow>> {
        lists::images(&self.pool, account, offset, limit).await
    }

    async fn job(&self, account: &str, id: &str) -> Result<Option<JobRow>> {
        by_id::<JobRow>(&self.pool, account, id).await
    }

    async fn jobs(&self, f: &JobFilter) -> Result<Page<JobRow>> {
        lists::jobs(&self.pool, f).await
    }

    async fn purge_jobs(&self, created_before: Millis) -> Result<u64> {
        lists::purge_jobs(&self.pool, created_before).await
    }

    async fn tag(&self, account: &str, id: &str) -> Result<Option<TagRow>> {
        by_id::<TagRow>(&self.pool, account, id).await
    }

    async fn tags(&self, account: &str) -> Result<Vec<TagRow>> {
        lists::tags(&self.pool, account).await
    }

    async fn tags_of(&self, resource_ids: &[String]) -> Result<Vec<(String, TagRow)>> {
        lists::tags_of(&self.pool, resource_ids).await
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
        state::put(&self.pool, row, keep, now).await
    }

    async fn state_delete(&self, kind: &str, account: &str, key: &str) -> Result<bool> {
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
        self.leader.hold(&self.opts).await
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
        by_id::<SnapshotGroupRow>(&self.pool, account, id).await
    }

    async fn snapshot_groups(&self, account: &str) -> Result<Vec<SnapshotGroupRow>> {
        if !sql::storable(account) {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as("SELECT * FROM snapshot_groups WHERE account = $1 ORDER BY create_time, id")
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
