//! Images.

use sqlx::SqlitePool;

use crate::filter::Page;
use crate::rows::ImageRow;
use crate::Result;

pub(super) async fn list(pool: &SqlitePool, account: &str, offset: u64, limit: u64) -> Result<Page<ImageRow>> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE account = ? AND status <> 'deleted'")
        .bind(account)
        .fetch_one(pool)
        .await?;
    let items = sqlx::query_as(
        "SELECT * FROM images WHERE account = ? AND status <> 'deleted' ORDER BY create_time DESC, id DESC LIMIT ? OFFSET ?",
    )
    .bind(account)
    .bind(limit as i64)
    .bind(offset as i64)
    .fetch_all(pool)
    .await?;
    Ok(Page { items, total: total as u64 })
}
