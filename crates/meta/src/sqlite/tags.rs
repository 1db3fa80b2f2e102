//! Tags and their bindings.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::sql::push_in;
use crate::rows::TagRow;
use crate::Result;

pub(super) async fn all(pool: &SqlitePool, account: &str) -> Result<Vec<TagRow>> {
    Ok(sqlx::query_as("SELECT * FROM tags WHERE account = ? ORDER BY create_time, id")
        .bind(account)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn tags_of(pool: &SqlitePool, resource_ids: &[String]) -> Result<Vec<(String, TagRow)>> {
    if resource_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT rt.resource_id, t.id, t.account, t.key, t.value, t.create_time \
         FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id WHERE 1 = 1",
    );
    push_in(&mut q, "rt.resource_id", resource_ids);
    q.push(" ORDER BY t.create_time, t.id");
    let rows: Vec<(String, String, String, String, String, i64)> = q.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(rid, id, account, key, value, create_time)| (rid, TagRow { id, account, key, value, create_time }))
        .collect())
}
