//! Cluster state on SQLite (0012_cluster.sql): shared replay nonces and node heartbeats. One
//! SQLite file serves one machine, so its "cluster" is the processes on that data dir; the
//! statements are the PostgreSQL backend's with `?` placeholders.

use sqlx::SqlitePool;

use crate::rows::{Millis, NodeRow};
use crate::Result;

pub(super) async fn nonce_first_use(pool: &SqlitePool, digest: &str, now: Millis, expires_at: Millis) -> Result<bool> {
    // An expired row is taken over in place (the purge may not have run yet); a live one
    // makes the upsert a no-op, which is the replay.
    let r = sqlx::query(
        "INSERT INTO nonces (digest, expires_at) VALUES (?1, ?2) \
         ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at WHERE nonces.expires_at <= ?3",
    )
    .bind(digest)
    .bind(expires_at)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn purge_nonces(pool: &SqlitePool, now: Millis) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM nonces WHERE expires_at <= ?").bind(now).execute(pool).await?.rows_affected())
}

pub(super) async fn heartbeat(pool: &SqlitePool, n: &NodeRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO nodes (name, zone, address, free_bytes, started, heartbeat, running_jobs) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, \
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

pub(super) async fn nodes(pool: &SqlitePool) -> Result<Vec<NodeRow>> {
    Ok(sqlx::query_as(
        "SELECT name, zone, address, free_bytes, started, heartbeat, running_jobs FROM nodes ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// Live volumes per home node (`disksnap cluster status`).
pub(super) async fn volumes_per_node(pool: &SqlitePool) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT home_node, COUNT(*) FROM volumes WHERE home_node IS NOT NULL AND status <> 'deleted' GROUP BY home_node ORDER BY home_node").fetch_all(pool).await?)
}

pub(super) async fn runner_lease(pool: &SqlitePool, runner: &str, node: &str, until: Millis) -> Result<()> {
    sqlx::query(
        "INSERT INTO runners (runner, node, lease_until) VALUES (?1, ?2, ?3) \
         ON CONFLICT (runner) DO UPDATE SET node = excluded.node, lease_until = excluded.lease_until",
    )
    .bind(runner)
    .bind(node)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn runner_leases(pool: &SqlitePool) -> Result<Vec<(String, String, Millis)>> {
    Ok(sqlx::query_as("SELECT runner, node, lease_until FROM runners ORDER BY runner").fetch_all(pool).await?)
}

pub(super) async fn purge_runners(pool: &SqlitePool, before: Millis) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM runners WHERE lease_until < ?").bind(before).execute(pool).await?.rows_affected())
}
