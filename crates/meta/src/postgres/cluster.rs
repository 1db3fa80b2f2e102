//! Cluster state on PostgreSQL (migrations-pg/0004_cluster.sql): shared replay nonces, node
//! heartbeats, and the maintenance lock that makes exactly one node do the cluster's upkeep.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::sql::storable;
use crate::rows::{Millis, NodeRow};
use crate::{MetaError, Result};

/// The session advisory lock of the maintenance leader ("dsmt"). One-key, like the commit lock
/// of `batch`, with a different key.
const MAINTENANCE_LOCK: i64 = 0x6473_6d74;

/// How long the leader's connection may take to answer before this node stops leading.
const PING: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) async fn nonce_first_use(pool: &PgPool, digest: &str, now: Millis, expires_at: Millis) -> Result<bool> {
    // A concurrent insert of the same digest waits for the first to commit, then sees its
    // live row and updates nothing: exactly one of the two is the first use.
    let r = sqlx::query(
        "INSERT INTO nonces (digest, expires_at) VALUES ($1, $2) \
         ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at WHERE nonces.expires_at <= $3",
    )
    .bind(digest)
    .bind(expires_at)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn purge_nonces(pool: &PgPool, now: Millis) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM nonces WHERE expires_at <= $1").bind(now).execute(pool).await?.rows_affected())
}

pub(super) async fn heartbeat(pool: &PgPool, n: &NodeRow) -> Result<()> {
    for (field, text) in [("node.name", &n.name), ("node.zone", &n.zone), ("node.address", &n.address)] {
        if !storable(text) {
            return Err(MetaError::Unstorable { field: field.into() });
        }
    }
    sqlx::query(
        "INSERT INTO nodes (name, zone, address, free_bytes, started, heartbeat, running_jobs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, \
         address = excluded.address, free_bytes = excluded.free_bytes, started = excluded.started, \
         heartbeat = excluded.heartbeat, running_jobs = excluded.running_jobs",
    )
    .bind(&n.name)
    .bind(&n.zone)
    .bind(&n.address)
    .bind(n.free_bytes)
    .bind(n.started)
    .bind(n.heartbeat)
    .bind(n.running_jobs)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn nodes(pool: &PgPool) -> Result<Vec<NodeRow>> {
    Ok(sqlx::query_as(
        "SELECT name, zone, address, free_bytes, started, heartbeat, running_jobs FROM nodes ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// Live volumes per home node (`disksnap cluster status`).
pub(super) async fn volumes_per_node(pool: &PgPool) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT home_node, COUNT(*) FROM volumes WHERE home_node IS NOT NULL AND status <> 'deleted' GROUP BY home_node ORDER BY home_node").fetch_all(pool).await?)
}

pub(super) async fn runner_lease(pool: &PgPool, runner: &str, node: &str, until: Millis) -> Result<()> {
    if !storable(runner) || !storable(node) {
        return Err(MetaError::Unstorable { field: "runner.runner".into() });
    }
    sqlx::query(
        "INSERT INTO runners (runner, node, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (runner) DO UPDATE SET node = excluded.node, lease_until = excluded.lease_until",
    )
    .bind(runner)
    .bind(node)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn runner_leases(pool: &PgPool) -> Result<Vec<(String, String, Millis)>> {
    Ok(sqlx::query_as("SELECT runner, node, lease_until FROM runners ORDER BY runner").fetch_all(pool).await?)
}

pub(super) async fn purge_runners(pool: &PgPool, before: Millis) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM runners WHERE lease_until < $1").bind(before).execute(pool).await?.rows_affected())
}

/// The maintenance leadership of one process: a connection of its own (outside the pool, so
/// the pool never hands it to a query or closes it) holding the session advisory lock. When
/// the process dies, or its connection does, PostgreSQL releases the lock and the next node
/// that asks takes it.
#[derive(Default)]
pub(super) struct Leader {
    conn: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Leader {
    pub(super) async fn hold(&self, opts: &PgConnectOptions) -> Result<bool> {
        let mut held = self.conn.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still ours while the session lives: a connection that no longer answers may have
            // lost the lock to another node already, so this node stops leading at once.
            if tokio::time::timeout(PING, conn.ping()).await.is_ok_and(|r| r.is_ok()) {
                return Ok(true);
            }
            *held = None;
        }
        let mut conn = PgConnection::connect_with(opts).await?;
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(MAINTENANCE_LOCK).fetch_one(&mut conn).await?;
        if got {
            *held = Some(conn);
        } else {
            conn.close().await.ok();
        }
        Ok(got)
    }
}
