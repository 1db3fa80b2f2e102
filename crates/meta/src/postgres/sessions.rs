//! Web console sessions on PostgreSQL (migrations-pg/0003_sessions_policies.sql): the
//! statements of `sqlite::sessions`.

use sqlx::PgPool;

use super::sql::storable;
use crate::rows::{ConsoleSessionRow, Millis};
use crate::{MetaError, Result};

pub(super) async fn put(pool: &PgPool, r: &ConsoleSessionRow) -> Result<()> {
    // (The console stores a hex hash and a known account; refused, not a database failure.)
    for (field, text) in [("console_session.token_hash", &r.token_hash), ("console_session.account", &r.account)] {
        if !storable(text) {
            return Err(MetaError::Unstorable { field: field.into() });
        }
    }
    sqlx::query("INSERT INTO console_sessions (token_hash, account, created_at, last_seen) VALUES ($1, $2, $3, $4)")
        .bind(&r.token_hash)
        .bind(&r.account)
        .bind(r.created_at)
        .bind(r.last_seen)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn get(pool: &PgPool, token_hash: &str) -> Result<Option<ConsoleSessionRow>> {
    if !storable(token_hash) {
        return Ok(None);
    }
    Ok(sqlx::query_as("SELECT * FROM console_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn touch(pool: &PgPool, token_hash: &str, at: Millis) -> Result<()> {
    if !storable(token_hash) {
        return Ok(());
    }
    // Never moves last_seen back (two requests of one session may commit out of order).
    sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE token_hash = $2 AND last_seen < $1")
        .bind(at)
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn delete(pool: &PgPool, token_hash: &str) -> Result<()> {
    if !storable(token_hash) {
        return Ok(());
    }
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
    Ok(())
}

pub(super) async fn expire(pool: &PgPool, seen_before: Millis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM console_sessions WHERE last_seen < $1").bind(seen_before).execute(pool).await?;
    Ok(r.rows_affected())
}
