//! Jobs.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::sql::{page_sql, push_in};
use crate::filter::{JobFilter, Page};
use crate::rows::JobRow;
use crate::rows::Millis;
use crate::{purge_cutoff, Result, PURGE_BATCH};

/// The open jobs' condition, word for word as the partial index `jobs_open` (migrations/0001)
/// states it: a planner uses that index only for a query that states its condition, and
/// `status IN (?, ?)` with bound values does not, so every delete (which asks for the open jobs
/// of its account) and every recovery round read the whole job history instead (15 ms a delete
/// at 17 000 jobs, growing with every job ever run; issue 16's write stream).
pub(crate) const OPEN: &str = " AND status IN ('pending', 'working')";

/// Whether `f` asks for exactly the open jobs.
pub(crate) fn asks_open(f: &JobFilter) -> bool {
    let mut statuses: Vec<&str> = f.statuses.iter().map(String::as_str).collect();
    statuses.sort_unstable();
    statuses.dedup();
    statuses == ["pending", "working"]
}

pub(super) async fn list(pool: &SqlitePool, f: &JobFilter) -> Result<Page<JobRow>> {
    let build = |head: &str| {
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push(" WHERE 1 = 1");
        if let Some(a) = &f.account {
            q.push(" AND account = ").push_bind(a.clone());
        }
        push_in(&mut q, "id", &f.ids);
        if asks_open(f) {
            q.push(OPEN);
        } else {
            push_in(&mut q, "status", &f.statuses);
        }
        push_in(&mut q, "action", &f.actions);
        q
    };
    let total: i64 = build("SELECT COUNT(*) FROM jobs").build_query_scalar().fetch_one(pool).await?;
    let mut q = build("SELECT * FROM jobs");
    q.push(" ORDER BY create_time DESC, id DESC");
    page_sql(&mut q, f.offset, f.limit);
    let items = q.build_query_as().fetch_all(pool).await?;
    Ok(Page { items, total: total as u64 })
}

/// The oldest open job's creation time, if any job is open.
async fn oldest_open(pool: &SqlitePool) -> Result<Option<Millis>> {
    let q = format!("SELECT MIN(create_time) FROM jobs WHERE 1 = 1{OPEN}");
    Ok(sqlx::query_scalar(&q).fetch_one(pool).await?)
}

/// See [`crate::MetaStore::purge_jobs`]. `writer` is the store's writer lock, taken per batch.
pub(super) async fn purge(pool: &SqlitePool, writer: &tokio::sync::Mutex<()>, created_before: Millis) -> Result<u64> {
    let cutoff = purge_cutoff(created_before, oldest_open(pool).await?);
    let mut purged = 0;
    loop {
        let _writer = writer.lock().await;
        let n = sqlx::query(
            "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs \
             WHERE create_time < ?1 AND status IN ('successful', 'failed') ORDER BY create_time LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(PURGE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged += n;
        if n < PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}
