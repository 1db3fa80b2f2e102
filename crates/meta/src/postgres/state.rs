//! Request state on PostgreSQL (migrations-pg/0002_request_state.sql): the statements of
//! `sqlite::state` with `$n` placeholders and `LIMIT ALL` for SQLite's `LIMIT -1`.

use sqlx::PgPool;

use super::sql::{storable, storable_only};
use crate::rows::{Millis, StateRow};
use crate::{MetaError, Result};

/// A row counts while it has no expiry or expires after now (`$1` is now).
const LIVE: &str = "(expires_at IS NULL OR expires_at > $1)";

/// The advisory lock class of state writes ("dsst"); the second key is the hash of (kind,
/// account). Two-key advisory locks never collide with the one-key commit lock (`batch`).
const STATE_LOCK: i32 = 0x6473_7374;

pub(super) async fn get(pool: &PgPool, kind: &str, account: &str, key: &str, now: Millis) -> Result<Option<StateRow>> {
    if ![kind, account, key].iter().all(|s| storable(s)) {
        return Ok(None); // no stored text holds NUL (see `sql::storable`)
    }
    Ok(sqlx::query_as(&format!(
        "SELECT kind, account, key, value, expires_at FROM request_state \
         WHERE kind = $2 AND account = $3 AND key = $4 AND {LIVE}"
    ))
    .bind(now)
    .bind(kind)
    .bind(account)
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn get_many(
    pool: &PgPool,
    kind: &str,
    account: &str,
    keys: &[String],
    now: Millis,
) -> Result<Vec<StateRow>> {
    if keys.is_empty() || !storable(kind) || !storable(account) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&format!(
        "SELECT kind, account, key, value, expires_at FROM request_state \
         WHERE kind = $2 AND account = $3 AND key = ANY($4) AND {LIVE} ORDER BY key"
    ))
    .bind(now)
    .bind(kind)
    .bind(account)
    .bind(storable_only(keys))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn list(pool: &PgPool, kind: &str, account: &str, now: Millis) -> Result<Vec<StateRow>> {
    if !storable(kind) || !storable(account) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&format!(
        "SELECT kind, account, key, value, expires_at FROM request_state \
         WHERE kind = $2 AND account = $3 AND {LIVE} ORDER BY key"
    ))
    .bind(now)
    .bind(kind)
    .bind(account)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn keys(pool: &PgPool, kind: &str, account: &str, value: &str, now: Millis) -> Result<Vec<String>> {
    if ![kind, account, value].iter().all(|s| storable(s)) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(&format!(
        "SELECT key FROM request_state WHERE kind = $2 AND account = $3 AND value = $4 AND {LIVE} ORDER BY key"
    ))
    .bind(now)
    .bind(kind)
    .bind(account)
    .bind(value)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn put(pool: &PgPool, row: &StateRow, keep: u64, now: Millis) -> Result<()> {
    for (field, text) in [
        ("state.kind", &row.kind),
        ("state.account", &row.account),
        ("state.key", &row.key),
        ("state.value", &row.value),
    ] {
        if !storable(text) {
            return Err(MetaError::Unstorable { field: field.into() });
        }
    }
    let mut tx = pool.begin().await?;
    // Writes of one kind and account take turns, as SQLite's BEGIN IMMEDIATE makes them: under
    // READ COMMITTED two trims could otherwise lock the same rows in different orders and
    // deadlock (one would fail), or each keep `keep` rows that the other then adds to.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(31) || $3))")
        .bind(STATE_LOCK)
        .bind(&row.kind)
        .bind(&row.account)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM request_state WHERE kind = $1 AND account = $2 AND expires_at <= $3")
        .bind(&row.kind)
        .bind(&row.account)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO request_state (kind, account, key, value, expires_at) VALUES ($1, $2, $3, $4, $5) \
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
        "DELETE FROM request_state WHERE kind = $1 AND account = $2 AND key IN (\
         SELECT key FROM request_state WHERE kind = $1 AND account = $2 \
         ORDER BY (expires_at IS NULL) DESC, expires_at DESC, key LIMIT ALL OFFSET $3)",
    )
    .bind(&row.kind)
    .bind(&row.account)
    .bind(keep.min(i64::MAX as u64) as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete(pool: &PgPool, kind: &str, account: &str, key: &str) -> Result<bool> {
    if ![kind, account, key].iter().all(|s| storable(s)) {
        return Ok(false);
    }
    let r = sqlx::query("DELETE FROM request_state WHERE kind = $1 AND account = $2 AND key = $3")
        .bind(kind)
        .bind(account)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn purge(pool: &PgPool, now: Millis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM request_state WHERE expires_at <= $1").bind(now).execute(pool).await?;
    Ok(r.rows_affected())
}
