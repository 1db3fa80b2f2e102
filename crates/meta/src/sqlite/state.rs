//! Request state (migration 0009): small facts kept by kind, account and key, expired by time.
//! Plain statements (no JSON, no SQLite functions) that a PostgreSQL backend can reuse with
//! `$N` placeholders and `LIMIT ALL` for SQLite's `LIMIT -1` (a list of keys is bound as one
//! array there).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::sql::push_in;

use crate::rows::{Millis, StateRow};
use crate::Result;

/// A row counts while it has no expiry or expires after now.
const LIVE: &str = "(expires_at IS NULL OR expires_at > ?)";

pub(super) async fn get(
    pool: &SqlitePool,
    kind: &str,
    account: &str,
    key: &str,
    now: Millis,
) -> Result<Option<StateRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT kind, account, key, value, expires_at FROM request_state \
         WHERE kind = ? AND account = ? AND key = ? AND {LIVE}"
    ))
    .bind(kind)
    .bind(account)
    .bind(key)
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn get_many(
    pool: &SqlitePool,
    kind: &str,
    account: &str,
    keys: &[String],
    now: Millis,
) -> Result<Vec<StateRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut q =
        QueryBuilder::<Sqlite>::new("SELECT kind, account, key, value, expires_at FROM request_state WHERE kind = ");
    q.push_bind(kind.to_string()).push(" AND account = ").push_bind(account.to_string());
    push_in(&mut q, "key", keys);
    q.push(" AND (expires_at IS NULL OR expires_at > ").push_bind(now).push(") ORDER BY key");
    Ok(q.build_query_as().fetch_all(pool).await?)
}

pub(super) async fn list(pool: &SqlitePool, kind: &str, account: &str, now: Millis) -> Result<Vec<StateRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT kind, account, key, value, expires_at FROM request_state \
         WHERE kind = ? AND account = ? AND {LIVE} ORDER BY key"
    ))
    .bind(kind)
    .bind(account)
    .bind(now)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn keys(
    pool: &SqlitePool,
    kind: &str,
    account: &str,
    value: &str,
    now: Millis,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT key FROM request_state WHERE kind = ? AND account = ? AND value = ? AND {LIVE} ORDER BY key"
    ))
    .bind(kind)
    .bind(account)
    .bind(value)
    .bind(now)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn put(pool: &SqlitePool, row: &StateRow, keep: u64, now: Millis) -> Result<()> {
    // IMMEDIATE: the write lock up front, as batches take it (a deferred transaction that reads
    // and then writes can fail with SQLITE_BUSY instead of waiting).
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("DELETE FROM request_state WHERE kind = ? AND account = ? AND expires_at <= ?")
        .bind(&row.kind)
        .bind(&row.account)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO request_state (kind, account, key, value, expires_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (kind, account, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )
    .bind(&row.kind)
    .bind(&row.account)
    .bind(&row.key)
    .bind(&row.value)
    .bind(row.expires_at)
    .execute(&mut *tx)
    .await?;
    // Past `keep` rows, the ones that expire first go (rows without an expiry last).
    sqlx::query(
        "DELETE FROM request_state WHERE kind = ? AND account = ? AND key IN (\
         SELECT key FROM request_state WHERE kind = ? AND account = ? \
         ORDER BY (expires_at IS NULL) DESC, expires_at DESC, key LIMIT -1 OFFSET ?)",
    )
    .bind(&row.kind)
    .bind(&row.account)
    .bind(&row.kind)
    .bind(&row.account)
    .bind(keep.min(i64::MAX as u64) as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete(pool: &SqlitePool, kind: &str, account: &str, key: &str) -> Result<bool> {
    let r = sqlx::query("DELETE FROM request_state WHERE kind = ? AND account = ? AND key = ?")
        .bind(kind)
        .bind(account)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn purge(pool: &SqlitePool, now: Millis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM request_state WHERE expires_at <= ?").bind(now).execute(pool).await?;
    Ok(r.rows_affected())
}
