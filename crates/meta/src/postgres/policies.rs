//! Automatic snapshot policies on PostgreSQL (migrations-pg/0003_sessions_policies.sql): the
//! statements of `sqlite::policies`, lists bound as one array.

use sqlx::PgPool;

use super::sql::{storable, storable_only};
use crate::rows::{Millis, PolicyRow, PolicySnapshotRow};
use crate::{MetaError, Result};

/// A name taken by another policy of the account is a conflict the service words.
fn name_taken(e: sqlx::Error, r: &PolicyRow) -> MetaError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            MetaError::Conflict { what: "policy name", id: r.name.clone(), expected: "unused".into(), found: None }
        }
        _ => MetaError::Db(e),
    }
}

/// Each id once, only those PostgreSQL can hold (one holding NUL names no volume); an upsert
/// of many rows may not touch one row twice.
fn distinct(ids: &[String]) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = storable_only(ids).into_iter().collect();
    set.into_iter().collect()
}

pub(super) async fn put(pool: &PgPool, r: &PolicyRow) -> Result<()> {
    for (field, text) in [
        ("policy.id", &r.id),
        ("policy.account", &r.account),
        ("policy.name", &r.name),
        ("policy.time_points", &r.time_points),
        ("policy.weekdays", &r.weekdays),
    ] {
        if !storable(text) {
            return Err(MetaError::Unstorable { field: field.into() });
        }
    }
    sqlx::query(
        "INSERT INTO policies (id, account, name, time_points, weekdays, every_days, retention_days, retention_count, enabled, create_time, schedule_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (id) DO UPDATE SET name = $3, time_points = $4, weekdays = $5, every_days = $6,
             retention_days = $7, retention_count = $8, enabled = $9, schedule_from = $11",
    )
    .bind(&r.id)
    .bind(&r.account)
    .bind(&r.name)
    .bind(&r.time_points)
    .bind(&r.weekdays)
    .bind(r.every_days)
    .bind(r.retention_days)
    .bind(r.retention_count)
    .bind(r.enabled)
    .bind(r.create_time)
    .bind(r.schedule_from)
    .execute(pool)
    .await
    .map_err(|e| name_taken(e, r))?;
    Ok(())
}

pub(super) async fn get(pool: &PgPool, account: &str, id: &str) -> Result<Option<PolicyRow>> {
    if !storable(account) || !storable(id) {
        return Ok(None);
    }
    Ok(sqlx::query_as("SELECT * FROM policies WHERE account = $1 AND id = $2")
        .bind(account)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn list(pool: &PgPool, account: Option<&str>) -> Result<Vec<PolicyRow>> {
    match account {
        Some(a) if !storable(a) => Ok(Vec::new()),
        Some(a) => Ok(sqlx::query_as("SELECT * FROM policies WHERE account = $1 ORDER BY create_time, id")
            .bind(a)
            .fetch_all(pool)
            .await?),
        None => Ok(sqlx::query_as("SELECT * FROM policies ORDER BY create_time, id").fetch_all(pool).await?),
    }
}

pub(super) async fn delete(pool: &PgPool, account: &str, id: &str) -> Result<bool> {
    if !storable(account) || !storable(id) {
        return Ok(false);
    }
    let r =
        sqlx::query("DELETE FROM policies WHERE account = $1 AND id = $2").bind(account).bind(id).execute(pool).await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn bind(pool: &PgPool, policy_id: &str, volume_ids: &[String]) -> Result<()> {
    let ids = distinct(volume_ids);
    if ids.is_empty() {
        return Ok(());
    }
    if !storable(policy_id) {
        return Err(MetaError::Unstorable { field: "policy.id".into() });
    }
    sqlx::query(
        "INSERT INTO policy_volumes (volume_id, policy_id) SELECT v, $2 FROM unnest($1::text[]) AS v
         ON CONFLICT (volume_id) DO UPDATE SET policy_id = excluded.policy_id",
    )
    .bind(ids)
    .bind(policy_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn unbind(pool: &PgPool, policy_id: &str, volume_ids: &[String]) -> Result<()> {
    if volume_ids.is_empty() || !storable(policy_id) {
        return Ok(());
    }
    sqlx::query("DELETE FROM policy_volumes WHERE volume_id = ANY($1) AND policy_id = $2")
        .bind(storable_only(volume_ids))
        .bind(policy_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn volumes(pool: &PgPool, policy_id: &str) -> Result<Vec<String>> {
    if !storable(policy_id) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT volume_id FROM policy_volumes WHERE policy_id = $1 ORDER BY volume_id")
        .bind(policy_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn of_volume(pool: &PgPool, volume_id: &str) -> Result<Option<String>> {
    if !storable(volume_id) {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("SELECT policy_id FROM policy_volumes WHERE volume_id = $1")
        .bind(volume_id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn claim(pool: &PgPool, policy_id: &str, slot: Millis, runner: &str, at: Millis) -> Result<bool> {
    for (field, text) in [("policy.id", policy_id), ("policy_slot.runner", runner)] {
        if !storable(text) {
            return Err(MetaError::Unstorable { field: field.into() });
        }
    }
    // The primary key decides: of any number of processes inserting one slot, one inserts a
    // row (the others wait for its transaction, then insert nothing).
    let r = sqlx::query(
        "INSERT INTO policy_slots (policy_id, slot, runner, claimed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(policy_id)
    .bind(slot)
    .bind(runner)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn slot_started(
    pool: &PgPool,
    policy_id: &str,
    slot: Millis,
    job_id: &str,
    made: &[PolicySnapshotRow],
) -> Result<()> {
    let texts = made.iter().flat_map(|m| [&m.snapshot_id, &m.policy_id, &m.volume_id]);
    if ![policy_id, job_id].iter().all(|s| storable(s)) || !texts.into_iter().all(|s| storable(s)) {
        return Err(MetaError::Unstorable { field: "policy_slot.job_id".into() });
    }
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE policy_slots SET job_id = $1 WHERE policy_id = $2 AND slot = $3")
        .bind(job_id)
        .bind(policy_id)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
    for m in made {
        sqlx::query("INSERT INTO policy_snapshots (snapshot_id, policy_id, volume_id, slot) VALUES ($1, $2, $3, $4)")
            .bind(&m.snapshot_id)
            .bind(&m.policy_id)
            .bind(&m.volume_id)
            .bind(m.slot)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn slots(pool: &PgPool, policy_id: &str) -> Result<Vec<(Millis, Option<String>)>> {
    if !storable(policy_id) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT slot, job_id FROM policy_slots WHERE policy_id = $1 ORDER BY slot")
        .bind(policy_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn snapshots(pool: &PgPool, policy_id: &str) -> Result<Vec<PolicySnapshotRow>> {
    if !storable(policy_id) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT * FROM policy_snapshots WHERE policy_id = $1 ORDER BY volume_id, slot, snapshot_id")
        .bind(policy_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn forget_snapshots(pool: &PgPool, snapshot_ids: &[String]) -> Result<()> {
    if snapshot_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM policy_snapshots WHERE snapshot_id = ANY($1)")
        .bind(storable_only(snapshot_ids))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn slots_unstarted(pool: &PgPool) -> Result<Vec<(String, Millis, String, Millis)>> {
    Ok(sqlx::query_as(
        "SELECT policy_id, slot, runner, claimed_at FROM policy_slots WHERE job_id IS NULL ORDER BY slot",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn slot_reclaim(
    pool: &PgPool,
    policy_id: &str,
    slot: Millis,
    old_runner: &str,
    new_runner: &str,
    at: Millis,
) -> Result<bool> {
    if ![policy_id, old_runner, new_runner].iter().all(|s| storable(s)) {
        return Ok(false);
    }
    let r = sqlx::query(
        "UPDATE policy_slots SET runner = $1, claimed_at = $2
         WHERE policy_id = $3 AND slot = $4 AND runner = $5 AND job_id IS NULL",
    )
    .bind(new_runner)
    .bind(at)
    .bind(policy_id)
    .bind(slot)
    .bind(old_runner)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The account's rows, every table, one transaction (see the SQLite twin for the order).
pub(super) async fn account_purge(pool: &PgPool, account: &str) -> Result<()> {
    if !storable(account) {
        return Ok(());
    }
    const STEPS: &[&str] = &[
        "DELETE FROM resource_tags WHERE tag_id IN (SELECT id FROM tags WHERE account = $1)
            OR resource_id IN (SELECT id FROM volumes WHERE account = $1)
            OR resource_id IN (SELECT id FROM snapshots WHERE account = $1)",
        "DELETE FROM snapshot_metadata WHERE snapshot_id IN (SELECT id FROM snapshots WHERE account = $1)",
        "DELETE FROM policies WHERE account = $1",
        "DELETE FROM snapshot_groups WHERE account = $1",
        "DELETE FROM snapshots WHERE account = $1",
        "DELETE FROM volumes WHERE account = $1",
        "DELETE FROM instances WHERE account = $1",
        "DELETE FROM images WHERE account = $1",
        "DELETE FROM jobs WHERE account = $1",
        "DELETE FROM tags WHERE account = $1",
        "DELETE FROM request_state WHERE account = $1",
        "DELETE FROM console_sessions WHERE account = $1",
    ];
    let mut tx = pool.begin().await?;
    for step in STEPS {
        sqlx::query(step).bind(account).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
