//! disksnap's metadata store: rows and queries, no rules.
//!
//! The service reads through typed queries and writes through [`Batch`]es: every change the
//! service makes for one step of an operation (a job row, the snapshots it creates, the volume
//! it locks) commits in one transaction, after checking the batch's expectations, so a crash
//! or a concurrent caller sees the old state or the new one. SQLite is the embedded backend
//! ([`SqliteMeta`]); PostgreSQL ([`PgMeta`], chosen by a `database_url`) serves several nodes
//! from one database, with its own statements and migrations (`postgres` lists what differs).

pub mod chunk_index;
#[cfg(test)]
mod cluster_tests;
pub mod filter;
mod postgres;
pub mod rows;
mod sort;
#[cfg(test)]
mod sort_tests;
mod sqlite;
pub mod test_db;
#[cfg(test)]
mod testing;

use async_trait::async_trait;

pub use chunk_index::{ChunkIndexRows, ChunkLocation, ChunkRow, ChunkSums, PackRow};
pub use filter::{JobFilter, Order, Page, Shown, SnapshotFilter, Sort, SortKey, VolumeFilter};
pub use postgres::PgMeta;
pub use rows::{
    ChainTotals, ConsoleSessionRow, ImageRow, InstanceRow, JobRow, Millis, NodeRow, PolicyRow, PolicySnapshotRow,
    SnapshotGroupRow, SnapshotRow, StateRow, TagRow, VolumeRow,
};
pub use sqlite::SqliteMeta;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// An expectation of a batch did not hold (someone else changed the row first).
    #[error("{what} {id} changed concurrently: expected {expected:?}, found {found:?}")]
    Conflict { what: &'static str, id: String, expected: String, found: Option<String> },
    /// A guarded whole-row write found the row written (or deleted, or already created) by
    /// someone else since it was read: read it again, decide again, and retry.
    #[error("{what} {id} was written by another operation since it was read")]
    Stale { what: &'static str, id: String },
    /// A value the database cannot store: PostgreSQL's text holds no NUL character (SQLite's
    /// does). `field` names the row kind and column, as `snapshot.name`.
    #[error("{field} must not contain the NUL character (U+0000)")]
    Unstorable { field: String },
    /// The database failed or is unreachable.
    #[error("metadata database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("metadata migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, MetaError>;

/// A page of a snapshot list with what a list view shows about its rows: their volumes and
/// instances, the totals of the chains of its full points, and their tags (as the separate
/// `volumes_by_id`, `instances_by_id`, `chain_totals` and `tags_of` calls would give them).
#[derive(Clone, Debug)]
pub struct SnapshotListing {
    pub page: Page<SnapshotRow>,
    pub volumes: Vec<VolumeRow>,
    pub instances: Vec<InstanceRow>,
    pub chain_totals: Vec<ChainTotals>,
    /// (snapshot id, tag)
    pub tags: Vec<(String, TagRow)>,
}

/// A check a batch makes before it writes: the row's column still holds `expected`.
#[derive(Clone, Debug)]
pub enum Expect {
    /// `volumes.transition` of `id` equals `expected`.
    VolumeTransition { id: String, expected: String },
    /// `snapshots.transition` of `id` equals `expected`.
    SnapshotTransition { id: String, expected: String },
    /// `snapshots.status` of `id` equals `expected`.
    SnapshotStatus { id: String, expected: String },
    /// `jobs.runner` of `id` equals `expected` (claims a job from a dead runner exactly once).
    JobRunner { id: String, expected: String },
}

/// Writes that commit together, after every expectation holds.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub expect: Vec<Expect>,
    pub put_instances: Vec<InstanceRow>,
    pub delete_instances: Vec<String>,
    pub put_volumes: Vec<VolumeRow>,
    pub delete_volumes: Vec<String>,
    pub put_snapshots: Vec<SnapshotRow>,
    pub delete_snapshots: Vec<String>,
    pub put_images: Vec<ImageRow>,
    pub delete_images: Vec<String>,
    pub put_jobs: Vec<JobRow>,
    pub put_tags: Vec<TagRow>,
    pub delete_tags: Vec<String>,
    /// (tag id, resource id)
    pub bind_tags: Vec<(String, String)>,
    pub unbind_tags: Vec<(String, String)>,
    /// (snapshot id, progress 0..=100, is_taken): a running capture's progress, written
    /// without touching the row's other columns.
    pub snapshot_progress: Vec<(String, i64, bool)>,
    /// (snapshot id, key, Some(value) to set or None to remove)
    pub snapshot_metadata: Vec<(String, String, Option<String>)>,
    /// Snapshot groups (migrations/0013), written guarded by their version like the rows above.
    pub put_snapshot_groups: Vec<SnapshotGroupRow>,
    pub delete_snapshot_groups: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.expect.is_empty()
            && self.put_instances.is_empty()
            && self.delete_instances.is_empty()
            && self.put_volumes.is_empty()
            && self.delete_volumes.is_empty()
            && self.put_snapshots.is_empty()
            && self.delete_snapshots.is_empty()
            && self.put_images.is_empty()
            && self.delete_images.is_empty()
            && self.put_jobs.is_empty()
            && self.put_tags.is_empty()
            && self.delete_tags.is_empty()
            && self.bind_tags.is_empty()
            && self.unbind_tags.is_empty()
            && self.snapshot_progress.is_empty()
            && self.snapshot_metadata.is_empty()
            && self.put_snapshot_groups.is_empty()
            && self.delete_snapshot_groups.is_empty()
    }
}

/// Rows one [`MetaStore::purge_jobs`] transaction deletes at most.
pub const PURGE_BATCH: i64 = 1000;
/// How long before the oldest open job [`MetaStore::purge_jobs`] leaves finished jobs alone
/// (ms): a job's siblings of one request are made within the same commit.
pub const PURGE_KEEP_NEAR_OPEN: Millis = 3_600_000;

/// The creation time [`MetaStore::purge_jobs`] deletes finished jobs before: the caller's, or
/// [`PURGE_KEEP_NEAR_OPEN`] before the oldest open job's if that is earlier. Read the oldest
/// open job once, before the deletes: a job opened later is created later than any cutoff.
pub(crate) fn purge_cutoff(created_before: Millis, oldest_open: Option<Millis>) -> Millis {
    oldest_open.map_or(created_before, |open| created_before.min(open - PURGE_KEEP_NEAR_OPEN))
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Check the batch's expectations and apply it, all in one transaction.
    async fn commit(&self, batch: Batch) -> Result<()>;

    /// Periodic upkeep (planner statistics); the server calls it every few minutes.
    async fn maintain(&self) -> Result<()>;

    async fn instance(&self, account: &str, id: &str) -> Result<Option<InstanceRow>>;
    async fn instances(&self, account: &str) -> Result<Vec<InstanceRow>>;
    /// The account's instances among `ids` (any order; unknown ids are left out).
    async fn instances_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<InstanceRow>>;

    async fn volume(&self, account: &str, id: &str) -> Result<Option<VolumeRow>>;
    async fn volumes(&self, filter: &VolumeFilter) -> Result<Page<VolumeRow>>;
    /// The account's volumes among `ids`, any status, any order: one query, no count (what a
    /// list page needs to name the volumes its rows refer to).
    async fn volumes_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<VolumeRow>>;
    async fn volumes_of_instance(&self, account: &str, instance_id: &str) -> Result<Vec<VolumeRow>>;

    async fn snapshot(&self, account: &str, id: &str) -> Result<Option<SnapshotRow>>;
    async fn snapshots(&self, filter: &SnapshotFilter) -> Result<Page<SnapshotRow>>;
    /// [`MetaStore::snapshots`] plus what a list view shows about each row, in one read: the
    /// list endpoints' whole metadata cost (see [`SnapshotListing`]).
    async fn snapshot_listing(&self, filter: &SnapshotFilter) -> Result<SnapshotListing>;
    /// The page generation (migrations/0020_page_generation.sql): it moves, in the same
    /// transaction, with every write to what a list page shows, whichever process or node
    /// writes. Two equal reads mean nothing a page shows changed between them. None: the
    /// backend keeps none (nothing may be cached by it).
    async fn page_generation(&self) -> Result<Option<i64>> {
        Ok(None)
    }
    /// The token generation (migrations/0022_page_generation_groups_token_generation.sql): it
    /// moves, in the same transaction, with every write to a Keystone token's request state,
    /// whichever process or node writes. None: the backend keeps none.
    async fn token_generation(&self) -> Result<Option<i64>> {
        Ok(None)
    }
    /// Every point of a chain that is not ceased, oldest first.
    async fn chain(&self, root_id: &str) -> Result<Vec<SnapshotRow>>;
    /// Totals over the live points (available or creating) of each chain named.
    async fn chain_totals(&self, root_ids: &[String]) -> Result<Vec<ChainTotals>>;
    /// Ids of every snapshot whose data must be kept (any status but ceased), for GC and verify.
    async fn snapshots_holding_data(&self) -> Result<Vec<String>>;
    /// Over the same points: the sum of their known `logical_size`s, and how many have none.
    async fn snapshots_logical_bytes(&self) -> Result<(u64, u64)>;
    /// Deleted points whose recovery window has closed, and points whose retention expired.
    async fn snapshots_due(&self, deleted_before: Millis, now: Millis) -> Result<Vec<SnapshotRow>>;
    async fn snapshot_metadata(&self, id: &str) -> Result<Vec<(String, String)>>;
    /// The metadata of many snapshots of one account in one query (a list page's):
    /// (snapshot id, key, value), by id then key.
    async fn snapshots_metadata(&self, account: &str, ids: &[String]) -> Result<Vec<(String, String, String)>>;

    async fn image(&self, account: &str, id: &str) -> Result<Option<ImageRow>>;
    async fn images(&self, account: &str, offset: u64, limit: u64) -> Result<Page<ImageRow>>;

    async fn job(&self, account: &str, id: &str) -> Result<Option<JobRow>>;
    async fn jobs(&self, filter: &JobFilter) -> Result<Page<JobRow>>;
    /// Delete finished (successful or failed) jobs created before `created_before`, in batches
    /// of [`PURGE_BATCH`] rows, each its own transaction (a write waits for one batch at most).
    /// A job created less than [`PURGE_KEEP_NEAR_OPEN`] before the oldest open job is kept: an
    /// open job may wait for jobs made with it (a delete across cluster nodes waits for its other
    /// parts, and reads a part that is gone as nothing left to wait for). Returns how many went.
    async fn purge_jobs(&self, created_before: Millis) -> Result<u64>;

    async fn tag(&self, account: &str, id: &str) -> Result<Option<TagRow>>;
    async fn tags(&self, account: &str) -> Result<Vec<TagRow>>;
    /// Tags bound to each of these resources: (resource id, tag).
    async fn tags_of(&self, resource_ids: &[String]) -> Result<Vec<(String, TagRow)>>;

    /// Request state (migration 0009, table `request_state`). Every read ignores rows whose
    /// `expires_at` is at or before `now`.
    async fn state_get(&self, kind: &str, account: &str, key: &str, now: Millis) -> Result<Option<StateRow>>;
    /// The live rows of one kind and account among `keys` (one read for a page of items).
    async fn state_get_many(&self, kind: &str, account: &str, keys: &[String], now: Millis) -> Result<Vec<StateRow>>;
    /// Every live row of one kind and account (bounded by the `keep` of [`MetaStore::state_put`]).
    async fn state_list(&self, kind: &str, account: &str, now: Millis) -> Result<Vec<StateRow>>;
    /// The keys of the live rows of one kind and account holding exactly `value`.
    async fn state_keys(&self, kind: &str, account: &str, value: &str, now: Millis) -> Result<Vec<String>>;
    /// Insert or replace the row of (kind, account, key), in one transaction with: deleting the
    /// expired rows of that kind and account, then, past `keep` rows of it, the ones that expire
    /// first (rows that never expire go last).
    async fn state_put(&self, row: &StateRow, keep: u64, now: Millis) -> Result<()>;
    /// Delete one row; whether it existed (live or not).
    async fn state_delete(&self, kind: &str, account: &str, key: &str) -> Result<bool>;
    /// Delete every expired row of every kind; how many.
    async fn state_purge(&self, now: Millis) -> Result<u64>;

    /// Web console sessions, keyed by the hash of their cookie (0010_console_sessions.sql).
    async fn console_session_put(&self, row: &ConsoleSessionRow) -> Result<()>;
    async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSessionRow>>;
    /// Set `last_seen` to `at` unless it is already later.
    async fn console_session_touch(&self, token_hash: &str, at: Millis) -> Result<()>;
    async fn console_session_delete(&self, token_hash: &str) -> Result<()>;
    /// Delete the sessions last seen before `seen_before`; returns how many.
    async fn console_sessions_expire(&self, seen_before: Millis) -> Result<u64>;

    /// Automatic snapshot policies (0011_policies.sql). `policy_put` inserts or updates (its
    /// account and create_time never change); a name the account already uses is a
    /// [`MetaError::Conflict`] with `what` "policy name".
    async fn policy_put(&self, row: &PolicyRow) -> Result<()>;
    async fn policy(&self, account: &str, id: &str) -> Result<Option<PolicyRow>>;
    /// One account's policies, or every account's (None: the scheduler's view).
    async fn policies(&self, account: Option<&str>) -> Result<Vec<PolicyRow>>;
    /// Deletes its bindings, slots and records of points too (the points themselves stay).
    async fn policy_delete(&self, account: &str, id: &str) -> Result<bool>;
    /// Bind volumes (moved from any policy they followed).
    async fn policy_bind(&self, policy_id: &str, volume_ids: &[String]) -> Result<()>;
    async fn policy_unbind(&self, policy_id: &str, volume_ids: &[String]) -> Result<()>;
    async fn policy_volumes(&self, policy_id: &str) -> Result<Vec<String>>;
    async fn policy_of_volume(&self, volume_id: &str) -> Result<Option<String>>;
    /// Claim a slot: true for exactly one caller of all that ever ask for it.
    async fn policy_slot_claim(&self, policy_id: &str, slot: Millis, runner: &str, at: Millis) -> Result<bool>;
    /// A claimed slot's job and the points it is making, in one transaction.
    async fn policy_slot_started(
        &self,
        policy_id: &str,
        slot: Millis,
        job_id: &str,
        made: &[PolicySnapshotRow],
    ) -> Result<()>;
    /// Claimed slots, oldest first: (slot, job id once started).
    async fn policy_slots(&self, policy_id: &str) -> Result<Vec<(Millis, Option<String>)>>;
    async fn policy_snapshots(&self, policy_id: &str) -> Result<Vec<PolicySnapshotRow>>;
    async fn policy_forget_snapshots(&self, snapshot_ids: &[String]) -> Result<()>;

    /// Cluster state (0012_cluster.sql). Record a replay nonce (the service's digest of the
    /// dialect, key and nonce) until `expires_at`: true when it was not recorded and live at
    /// `now` — for exactly one caller of all processes on the database. Expired ones are
    /// deleted by [`MetaStore::state_purge`].
    async fn nonce_first_use(&self, digest: &str, now: Millis, expires_at: Millis) -> Result<bool>;
    /// Insert or replace a node's row (its heartbeat).
    async fn node_heartbeat(&self, row: &NodeRow) -> Result<()>;
    /// Every node that ever sent a heartbeat, by name.
    async fn nodes(&self) -> Result<Vec<NodeRow>>;
    /// Live volumes per home node (volumes without a home are not counted).
    async fn volumes_per_node(&self) -> Result<Vec<(String, i64)>>;
    /// Whether this process leads the cluster's maintenance, taking the lead when nobody holds
    /// it. PostgreSQL: a session advisory lock on a connection of its own, released by the
    /// database when the process or its connection dies. SQLite: always (one machine).
    async fn maintenance_lead(&self) -> Result<bool>;
    /// A job runner's lease (a process stamping `jobs.runner`): insert or extend it to `until`.
    async fn runner_lease(&self, runner: &str, node: &str, until: Millis) -> Result<()>;
    /// Every runner's lease: (runner, node, lease_until), by runner.
    async fn runner_leases(&self) -> Result<Vec<(String, String, Millis)>>;
    /// Forget the leases that ran out before `before`; how many.
    async fn runner_leases_purge(&self, before: Millis) -> Result<u64>;

    /// Snapshot groups (migrations/0013); written through [`Batch::put_snapshot_groups`].
    async fn snapshot_group(&self, account: &str, id: &str) -> Result<Option<SnapshotGroupRow>>;
    /// One account's groups, oldest first.
    async fn snapshot_groups(&self, account: &str) -> Result<Vec<SnapshotGroupRow>>;

    /// Claimed slots whose job never started (job id NULL): (policy id, slot, runner, claim
    /// time by the wall clock). A slot left so by a runner that died between its claim and its
    /// job is retried from these.
    async fn policy_slots_unstarted(&self) -> Result<Vec<(String, Millis, String, Millis)>>;
    /// Move an unstarted slot's claim from `old_runner` to `new_runner`: true for exactly one
    /// caller (a compare-and-set on the runner, as a job's claim is).
    async fn policy_slot_reclaim(
        &self,
        policy_id: &str,
        slot: Millis,
        old_runner: &str,
        new_runner: &str,
        at: Millis,
    ) -> Result<bool>;

    /// Delete every row of one account (test control's reset): instances, volumes,
    /// snapshots and their metadata, images, jobs, tags and their bindings, request state,
    /// console sessions, policies and snapshot groups, in one transaction. Snapshot bytes are left to GC.
    async fn account_purge(&self, account: &str) -> Result<()>;
}
