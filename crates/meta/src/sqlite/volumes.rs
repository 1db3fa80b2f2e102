//! Instances and volumes: lookups and the volume list.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::sql::{from_json_rows, gib_range, page_sql, push_all_tags, push_contains, push_holds, push_in};
use super::tables::json_object_of;
use crate::filter::{Page, VolumeFilter};
use crate::rows::{InstanceRow, VolumeRow};
use crate::sort::{push_after, push_order, push_shown_in, Table};
use crate::Result;

pub(super) async fn instances(pool: &SqlitePool, account: &str) -> Result<Vec<InstanceRow>> {
    Ok(sqlx::query_as("SELECT * FROM instances WHERE account = ? ORDER BY create_time DESC, id DESC")
        .bind(account)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instances_by_id(pool: &SqlitePool, account: &str, ids: &[String]) -> Result<Vec<InstanceRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(format!(
        "SELECT json_group_array({}) FROM instances WHERE account = ",
        json_object_of::<InstanceRow>()
    ));
    q.push_bind(account.to_string());
    push_in(&mut q, "id", ids);
    let text: String = q.build_query_scalar().fetch_one(pool).await?;
    from_json_rows(&text)
}

pub(super) async fn list(pool: &SqlitePool, f: &VolumeFilter) -> Result<Page<VolumeRow>> {
    let build = |head: &str| {
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push(" WHERE account = ").push_bind(f.account.clone());
        push_in(&mut q, "id", &f.ids);
        push_in(&mut q, "instance_id", &f.instance_ids);
        push_in(&mut q, "source_snapshot", &f.source_snapshots);
        if f.statuses.is_empty() {
            q.push(" AND status <> 'deleted'");
        } else {
            push_in(&mut q, "status", &f.statuses);
        }
        if let Some(z) = &f.zone {
            q.push(" AND zone = ").push_bind(z.clone());
        }
        if let Some(k) = &f.kind {
            q.push(" AND kind = ").push_bind(k.clone());
        }
        if let Some(n) = &f.name {
            q.push(" AND name = ").push_bind(n.clone());
        }
        if let Some(w) = &f.search {
            push_contains(&mut q, &["id", "name"], w);
        }
        if let Some(t) = &f.name_contains {
            push_holds(&mut q, "name", t);
        }
        if let Some(t) = &f.description_contains {
            push_holds(&mut q, "description", t);
        }
        match f.size_gib.map(gib_range) {
            Some(Some((low, high))) => {
                q.push(" AND size > ").push_bind(low).push(" AND size <= ").push_bind(high);
            }
            Some(None) => {
                q.push(" AND FALSE"); // more GiB than any size a row can hold
            }
            None => {}
        }
        push_all_tags(&mut q, &f.tag_ids);
        push_shown_in(&mut q, Table::Volumes, &f.shown, &f.shown_in);
        q
    };
    let total: i64 = if f.skip_count {
        0
    } else {
        build("SELECT COUNT(*) FROM volumes").build_query_scalar().fetch_one(pool).await?
    };
    let mut q = build("SELECT * FROM volumes");
    push_after(&mut q, Table::Volumes, &f.order, &f.sort, &f.shown, &f.after);
    push_order(&mut q, Table::Volumes, "", &f.order, &f.sort, &f.shown);
    page_sql(&mut q, f.offset, f.limit);
    let items = q.build_query_as().fetch_all(pool).await?;
    Ok(Page { items, total: total as u64 })
}

pub(super) async fn volumes_by_id(pool: &SqlitePool, account: &str, ids: &[String]) -> Result<Vec<VolumeRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(format!(
        "SELECT json_group_array({}) FROM volumes WHERE account = ",
        json_object_of::<VolumeRow>()
    ));
    q.push_bind(account.to_string());
    push_in(&mut q, "id", ids);
    let text: String = q.build_query_scalar().fetch_one(pool).await?;
    from_json_rows(&text)
}

pub(super) async fn volumes_of_instance(pool: &SqlitePool, account: &str, instance_id: &str) -> Result<Vec<VolumeRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM volumes WHERE account = ? AND instance_id = ? AND status <> 'deleted' ORDER BY kind DESC, id",
    )
    .bind(account)
    .bind(instance_id)
    .fetch_all(pool)
    .await?)
}
