//! Web console sessions (migrations/0010_console_sessions.sql).

use sqlx::SqlitePool;

use crate::rows::{ConsoleSessionRow, Millis};
use crate::Result;

pub(super) async fn put(pool: &SqlitePool, r: &ConsoleSessionRow) -> Result<()> {
    sqlx::query("INSERT INTO console_sessions (token_hash, account, created_at, last_seen) VALUES (?, ?, ?, ?)")
        .bind(&r.token_hash)
        .bind(&r.account)
        .bind(r.created_at)
        .bind(r.last_seen)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn get(pool: &SqlitePool, token_hash: &str) -> Result<Option<ConsoleSessionRow>> {
    Ok(sqlx::query_as("SELECT * FROM console_sessions WHERE token_hash = ?")
        .bind(token_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn touch(pool: &SqlitePool, token_hash: &str, at: Millis) -> Result<()> {
    // Never moves last_seen back (two requests of one session may commit out of order).
    sqlx::query("UPDATE console_sessions SET last_seen = ?1 WHERE token_hash = ?2 AND last_seen < ?1")
        .bind(at)
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn delete(pool: &SqlitePool, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = ?").bind(token_hash).execute(pool).await?;
    Ok(())
}

pub(super) async fn expire(pool: &SqlitePool, seen_before: Millis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM console_sessions WHERE last_seen < ?").bind(seen_before).execute(pool).await?;
    Ok(r.rows_affected())
}
