//! Rows as the metadata store keeps them. Plain data: the service gives the words meaning.

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds, UTC.
pub type Millis = i64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub account: String,
    pub zone: String,
    pub name: String,
    pub create_time: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct VolumeRow {
    pub id: String,
    pub account: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    /// Bytes.
    pub size: i64,
    pub kind: String,
    pub status: String,
    pub transition: String,
    pub instance_id: Option<String>,
    pub path: String,
    pub head_root: Option<String>,
    pub create_time: Millis,
    pub status_time: Millis,
    /// The snapshot the volume was restored from, if any (Cinder's `snapshot_id`).
    #[serde(default)]
    pub source_snapshot: Option<String>,
    /// The node whose disk holds the volume's file, in a cluster (None: no home; any process
    /// on the data dir moves its bytes).
    #[serde(default)]
    pub home_node: Option<String>,
    /// Optimistic-concurrency guard: 0 on a row the caller builds (the commit inserts it, and
    /// fails if the id exists), else the version the row was read at (the commit updates it only
    /// if nobody wrote it since, and bumps it). Every whole-row write is therefore guarded.
    #[serde(default)]
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: String,
    pub account: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    pub volume_id: String,
    pub volume_size: i64,
    pub volume_kind: String,
    pub instance_id: Option<String>,
    pub is_full: bool,
    pub root_id: String,
    pub parent_id: Option<String>,
    pub is_head: bool,
    pub status: String,
    pub transition: String,
    pub is_taken: bool,
    pub progress: i64,
    pub snapshot_time: Millis,
    pub create_time: Millis,
    pub status_time: Millis,
    pub deleted_time: Option<Millis>,
    pub expire_time: Option<Millis>,
    pub size: i64,
    pub origin: String,
    pub retention_days: Option<i64>,
    pub encrypted: bool,
    pub used_by_images: i64,
    pub used_by_volumes: i64,
    /// Raw bytes of the point's non-zero slots (what a restore writes): the store's dedup
    /// figure sums it. None on points captured before it was recorded.
    #[serde(default)]
    pub logical_size: Option<i64>,
    /// How the point's bytes were frozen: "instant" (a reflink clone), "read-pass" (the live
    /// volume read start to end), "" (taken before this was recorded). migrations/0015.
    #[serde(default)]
    pub consistency: String,
    /// Optimistic-concurrency guard: 0 on a row the caller builds (the commit inserts it, and
    /// fails if the id exists), else the version the row was read at (the commit updates it only
    /// if nobody wrote it since, and bumps it). Every whole-row write is therefore guarded.
    #[serde(default)]
    pub version: i64,
}

/// A snapshot group (migrations/0013): points of several volumes taken at one snapshot time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SnapshotGroupRow {
    pub id: String,
    pub account: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    pub instance_id: Option<String>,
    /// JSON array of `{"snapshot": id, "volume": id}`, in the order the volumes were named.
    pub members: String,
    /// Empty, or what a running job does to the whole group (`deleting`, `rolling-back`).
    pub transition: String,
    pub create_time: Millis,
    pub status_time: Millis,
    /// The optimistic-concurrency guard every versioned row has (see [`ImageRow::version`]).
    #[serde(default)]
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ImageRow {
    pub id: String,
    pub account: String,
    pub zone: String,
    pub name: String,
    pub snapshot_id: String,
    pub path: String,
    pub size: i64,
    pub status: String,
    pub create_time: Millis,
    pub status_time: Millis,
    /// Optimistic-concurrency guard: 0 on a row the caller builds (the commit inserts it, and
    /// fails if the id exists), else the version the row was read at (the commit updates it only
    /// if nobody wrote it since, and bumps it). Every whole-row write is therefore guarded.
    #[serde(default)]
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub account: String,
    pub action: String,
    pub status: String,
    /// JSON array of resource ids.
    pub resources: String,
    /// JSON object: what the job needs to resume.
    pub params: String,
    pub error: Option<String>,
    pub runner: Option<String>,
    pub create_time: Millis,
    pub status_time: Millis,
    /// The node that must run it (the home node of the volumes whose bytes it moves); None:
    /// any process.
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TagRow {
    pub id: String,
    pub account: String,
    pub key: String,
    pub value: String,
    pub create_time: Millis,
}

/// Totals of one chain, for its full (root) point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ChainTotals {
    pub root_id: String,
    pub total_size: i64,
    pub total_count: i64,
    pub latest_snapshot_time: Millis,
}

/// One fact of request state (migration 0009): what a dialect must remember between requests
/// that is not a resource (an issued token, a ClientToken's answer, a status override…).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct StateRow {
    /// What the fact is (`oauth2-token`, `client-token`…): the service's word.
    pub kind: String,
    /// The account it belongs to; `""` for kinds looked up by a secret alone.
    pub account: String,
    pub key: String,
    pub value: String,
    /// When it stops counting; None: until deleted.
    pub expires_at: Option<Millis>,
}

/// A signed-in web console session (migrations/0010_console_sessions.sql).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ConsoleSessionRow {
    /// Hex SHA-256 of the cookie's value (the value itself is never stored).
    pub token_hash: String,
    pub account: String,
    pub created_at: Millis,
    pub last_seen: Millis,
}

/// An automatic snapshot policy (migrations/0011_policies.sql).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PolicyRow {
    pub id: String,
    pub account: String,
    pub name: String,
    /// JSON array of hours.
    pub time_points: String,
    /// JSON array of ISO weekdays.
    pub weekdays: String,
    pub every_days: Option<i64>,
    pub retention_days: Option<i64>,
    pub retention_count: Option<i64>,
    pub enabled: bool,
    pub create_time: Millis,
    /// No slot before this fires (set at creation and when the schedule changes).
    pub schedule_from: Millis,
}

/// An automatic point a policy's slot made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PolicySnapshotRow {
    pub snapshot_id: String,
    pub policy_id: String,
    pub volume_id: String,
    pub slot: Millis,
}

/// One `disksnap serve` of a cluster as its latest heartbeat left it (0012_cluster.sql).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct NodeRow {
    pub name: String,
    pub zone: String,
    /// Where its API listens (as configured), for an operator to reach it.
    pub address: String,
    /// Free bytes of the file system its zone's new volumes go to (what placing a volume compares).
    pub free_bytes: i64,
    pub started: Millis,
    pub heartbeat: Millis,
    /// Jobs it was running at its heartbeat.
    pub running_jobs: i64,
}
