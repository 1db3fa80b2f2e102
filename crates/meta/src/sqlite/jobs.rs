//! Jobs.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::sql::{page_sql, push_in};
use crate::filter::{JobFilter, Page};
use crate::rows::JobRow;
use crate::Result;

pub(super) async fn list(pool: &SqlitePool, f: &JobFilter) -> Result<Page<JobRow>> {
    let build = |head: &str| {
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push(" WHERE 1 = 1");
        if let Some(a) = &f.account {
            q.push(" AND account = ").push_bind(a.clone());
        }
        push_in(&mut q, "id", &f.ids);
        push_in(&mut q, "status", &f.statuses);
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
