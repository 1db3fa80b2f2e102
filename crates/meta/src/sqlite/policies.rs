//! Automatic snapshot policies, their volumes, claimed slots and the points they made
//! (migrations/0011_policies.sql).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

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

pub(super) async fn put(pool: &SqlitePool, r: &PolicyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO policies (id, account, name, time_points, weekdays, every_days, retention_days, retention_count, enabled, create_time, schedule_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET name = ?3, time_points = ?4, weekdays = ?5, every_days = ?6,
             retention_days = ?7, retention_count = ?8, enabled = ?9, schedule_from = ?11",
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

pub(super) async fn get(pool: &SqlitePool, account: &str, id: &str) -> Result<Option<PolicyRow>> {
    Ok(sqlx::query_as("SELECT * FROM policies WHERE account = ? AND id = ?")
        .bind(account)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn list(pool: &SqlitePool, account: Option<&str>) -> Result<Vec<PolicyRow>> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM policies");
    if let Some(a) = account {
        q.push(" WHERE account = ").push_bind(a.to_string());
    }
    q.push(" ORDER BY create_time, id");
    Ok(q.build_query_as().fetch_all(pool).await?)
}

pub(super) async fn delete(pool: &SqlitePool, account: &str, id: &str) -> Result<bool> {
    let r =
        sqlx::query("DELETE FROM policies WHERE account = ? AND id = ?").bind(account).bind(id).execute(pool).await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn bind(pool: &SqlitePool, policy_id: &str, volume_ids: &[String]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for v in volume_ids {
        sqlx::query(
            "INSERT INTO policy_volumes (volume_id, policy_id) VALUES (?1, ?2)
             ON CONFLICT (volume_id) DO UPDATE SET policy_id = ?2",
        )
        .bind(v)
        .bind(policy_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn unbind(pool: &SqlitePool, policy_id: &str, volume_ids: &[String]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for v in volume_ids {
        sqlx::query("DELETE FROM policy_volumes WHERE volume_id = ? AND policy_id = ?")
            .bind(v)
            .bind(policy_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn volumes(pool: &SqlitePool, policy_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT volume_id FROM policy_volumes WHERE policy_id = ? ORDER BY volume_id")
        .bind(policy_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn of_volume(pool: &SqlitePool, volume_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT policy_id FROM policy_volumes WHERE volume_id = ?")
        .bind(volume_id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn claim(pool: &SqlitePool, policy_id: &str, slot: Millis, runner: &str, at: Millis) -> Result<bool> {
    // The primary key decides: of any number of processes inserting one slot, one wins.
    let r = sqlx::query(
        "INSERT INTO policy_slots (policy_id, slot, runner, claimed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
    pool: &SqlitePool,
    policy_id: &str,
    slot: Millis,
    job_id: &str,
    made: &[PolicySnapshotRow],
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE policy_slots SET job_id = ? WHERE policy_id = ? AND slot = ?")
        .bind(job_id)
        .bind(policy_id)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
    for m in made {
        sqlx::query("INSERT INTO policy_snapshots (snapshot_id, policy_id, volume_id, slot) VALUES (?, ?, ?, ?)")
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

pub(super) async fn slots(pool: &SqlitePool, policy_id: &str) -> Result<Vec<(Millis, Option<String>)>> {
    Ok(sqlx::query_as("SELECT slot, job_id FROM policy_slots WHERE policy_id = ? ORDER BY slot")
        .bind(policy_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn snapshots(pool: &SqlitePool, policy_id: &str) -> Result<Vec<PolicySnapshotRow>> {
    Ok(sqlx::query_as("SELECT * FROM policy_snapshots WHERE policy_id = ? ORDER BY volume_id, slot, snapshot_id")
        .bind(policy_id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn forget_snapshots(pool: &SqlitePool, snapshot_ids: &[String]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for id in snapshot_ids {
        sqlx::query("DELETE FROM policy_snapshots WHERE snapshot_id = ?").bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn slots_unstarted(pool: &SqlitePool) -> Result<Vec<(String, Millis, String, Millis)>> {
    Ok(sqlx::query_as(
        "SELECT policy_id, slot, runner, claimed_at FROM policy_slots WHERE job_id IS NULL ORDER BY slot",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn slot_reclaim(
    pool: &SqlitePool,
    policy_id: &str,
    slot: Millis,
    old_runner: &str,
    new_runner: &str,
    at: Millis,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE policy_slots SET runner = ?, claimed_at = ?
         WHERE policy_id = ? AND slot = ? AND runner = ? AND job_id IS NULL",
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

/// The account's rows, every table, one transaction. Dependent rows (tag bindings, snapshot
/// metadata) first, while the rows naming them still say whose they are; policies cascade to
/// their bindings, slots and point records.
pub(super) async fn account_purge(pool: &SqlitePool, account: &str) -> Result<()> {
    const STEPS: &[&str] = &[
        "DELETE FROM resource_tags WHERE tag_id IN (SELECT id FROM tags WHERE account = ?1)
            OR resource_id IN (SELECT id FROM volumes WHERE account = ?1)
            OR resource_id IN (SELECT id FROM snapshots WHERE account = ?1)",
        "DELETE FROM snapshot_metadata WHERE snapshot_id IN (SELECT id FROM snapshots WHERE account = ?1)",
        // the search index is kept by the batch code, not by triggers (0005)
        "DELETE FROM snapshots_search WHERE rowid IN (SELECT rowid FROM snapshots WHERE account = ?1)",
        "DELETE FROM policies WHERE account = ?1",
        "DELETE FROM snapshot_groups WHERE account = ?1",
        "DELETE FROM snapshots WHERE account = ?1",
        "DELETE FROM volumes WHERE account = ?1",
        "DELETE FROM instances WHERE account = ?1",
        "DELETE FROM images WHERE account = ?1",
        "DELETE FROM jobs WHERE account = ?1",
        "DELETE FROM tags WHERE account = ?1",
        "DELETE FROM request_state WHERE account = ?1",
        "DELETE FROM console_sessions WHERE account = ?1",
    ];
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for step in STEPS {
        sqlx::query(step).bind(account).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
