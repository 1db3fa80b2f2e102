//! Lookups and lists on PostgreSQL: the snapshot list (filter, order, page, totals), volumes,
//! instances, images, jobs, tags.

use sqlx::{PgPool, Postgres, QueryBuilder};

use super::sql::{
    json_rows, page_sql, push_all_tags, push_contains, push_eq, push_holds, push_in, push_metadata, push_not_in,
    push_tag_pairs, storable, storable_only,
};
use super::PgMeta;
use crate::filter::{JobFilter, Page, SnapshotFilter, VolumeFilter};
use crate::rows::*;
use crate::sort::{push_after, push_any_tags, push_order, push_shown_in, Table};
use crate::sqlite::jobs::{asks_open, OPEN};
use crate::sqlite::snapshots::{count_key, counted_by_busy, counted_by_groups, Busy};
use crate::sqlite::sql::from_json_rows;
use crate::sqlite::sql::gib_range;
use crate::{Result, SnapshotListing};

/// Chain totals as JSON objects, by root (the same order [`chain_totals`] gives).
const CHAIN_TOTALS_JSON: &str = "COALESCE(json_agg(json_build_object('root_id', root_id, 'total_size', total_size, \
     'total_count', total_count, 'latest_snapshot_time', latest_snapshot_time) ORDER BY root_id), '[]')::text";

/// One chain's totals over its live points.
const CHAIN_TOTALS_OF: &str = "SELECT root_id, SUM(size)::bigint AS total_size, COUNT(*) AS total_count, \
     MAX(snapshot_time) AS latest_snapshot_time FROM snapshots WHERE status IN ('available', 'creating')";

impl PgMeta {
    /// The list behind `snapshots` and `snapshot_listing` (`refs`: with the rows' volumes,
    /// instances, chain totals and tags). Totals as on SQLite: from `snapshot_counts` when the
    /// filter allows, cached by list generation (migrations-pg/0001_schema.sql).
    pub(super) async fn list(&self, f: &SnapshotFilter, refs: bool) -> Result<SnapshotListing> {
        let (gen, mut listing) = self.snapshot_page(f, refs).await?;
        if f.skip_count {
            return Ok(listing);
        }
        let key = count_key(f);
        if let Some(total) = self.counts.get(&key, gen) {
            listing.page.total = total;
            return Ok(listing);
        }
        let mut count = QueryBuilder::<Postgres>::new("SELECT (SELECT gen FROM list_generation), ");
        if counted_by_groups(f) {
            count.push("COALESCE(SUM(n), 0)::bigint FROM snapshot_counts");
            snapshot_where(&mut count, f, false);
        } else {
            match counted_by_busy(f) {
                // The groups' count less the busy points in them (migrations-pg/0015_busy_points.sql).
                Some(Busy::Less(plain, transitions)) => {
                    count.push("(SELECT COALESCE(SUM(n), 0)::bigint FROM snapshot_counts");
                    snapshot_where(&mut count, &plain, false);
                    count.push(") - (SELECT COUNT(*) FROM snapshots");
                    snapshot_where(&mut count, &SnapshotFilter { transitions, ..*plain }, false);
                    count.push(" AND transition <> '')");
                }
                Some(Busy::Only) => {
                    count.push("COUNT(*) FROM snapshots");
                    snapshot_where(&mut count, f, false);
                    count.push(" AND transition <> ''");
                }
                None => {
                    count.push("COUNT(*) FROM snapshots");
                    snapshot_where(&mut count, f, true);
                }
            }
        }
        let (at, total): (i64, i64) = count.build_query_as().fetch_one(&self.pool).await?;
        let total = total.max(0) as u64;
        self.counts.remember(key, at, total);
        listing.page.total = total;
        Ok(listing)
    }

    /// One page of a snapshot list (and, with `refs`, what it refers to) and the list
    /// generation: one statement, so one snapshot of the database, one result row of JSON arrays.
    async fn snapshot_page(&self, f: &SnapshotFilter, refs: bool) -> Result<(i64, SnapshotListing)> {
        let mut q = QueryBuilder::<Postgres>::new("WITH page AS MATERIALIZED (SELECT * FROM snapshots");
        snapshot_where(&mut q, f, true);
        push_after(&mut q, Table::Snapshots, &f.order, &f.sort, &f.shown, &f.after);
        push_order(&mut q, Table::Snapshots, "", &f.order, &f.sort, &f.shown);
        page_sql(&mut q, f.offset, f.limit);
        q.push(") SELECT (SELECT gen FROM list_generation), (SELECT COALESCE(json_agg(p");
        push_order(&mut q, Table::Snapshots, "p.", &f.order, &f.sort, &f.shown);
        q.push("), '[]')::text FROM page p)");
        if refs {
            q.push(format!(", (SELECT {} FROM volumes v WHERE v.account = ", json_rows("v ORDER BY v.id")));
            q.push_bind(f.account.clone()).push(" AND v.id IN (SELECT volume_id FROM page))");
            q.push(format!(", (SELECT {} FROM instances i WHERE i.account = ", json_rows("i ORDER BY i.id")));
            q.push_bind(f.account.clone()).push(" AND i.id IN (SELECT instance_id FROM page))");
            q.push(format!(
                ", (SELECT {CHAIN_TOTALS_JSON} FROM ({CHAIN_TOTALS_OF} \
                 AND root_id IN (SELECT id FROM page WHERE is_full) GROUP BY root_id) c)"
            ));
            q.push(format!(", (SELECT {} {TAGS_OF}", json_rows(TAG_JSON)));
            q.push(" WHERE rt.resource_id IN (SELECT id FROM page))");
        } else {
            q.push(", '[]', '[]', '[]', '[]'");
        }
        type Texts = (i64, String, String, String, String, String);
        let (gen, rows, vols, insts, totals, tags): Texts = q.build_query_as().fetch_one(&self.pool).await?;
        let tags: Vec<(String, TagRow)> = from_json_rows(&tags)?;
        Ok((
            gen,
            SnapshotListing {
                page: Page { items: from_json_rows(&rows)?, total: 0 },
                volumes: from_json_rows(&vols)?,
                instances: from_json_rows(&insts)?,
                chain_totals: from_json_rows(&totals)?,
                tags,
            },
        ))
    }
}

/// `[resource id, tag]` of a binding, ordered as [`tags_of`] orders them.
const TAG_JSON: &str = "json_build_array(rt.resource_id, json_build_object('id', t.id, 'account', t.account, \
     'key', t.key, 'value', t.value, 'create_time', t.create_time)) ORDER BY t.create_time, t.id, rt.resource_id";
const TAGS_OF: &str = "FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id";

/// The snapshot list's conditions. `trigrams`: let the search word use the trigram index (a
/// count over `snapshot_counts` has no search word; the flag only keeps the text the same).
pub(crate) fn snapshot_where(q: &mut QueryBuilder<'_, Postgres>, f: &SnapshotFilter, trigrams: bool) {
    q.push(" WHERE TRUE");
    push_eq(q, "account", &f.account);
    push_in(q, "id", &f.ids);
    push_in(q, "volume_id", &f.volume_ids);
    push_in(q, "instance_id", &f.instance_ids);
    if f.statuses.is_empty() {
        q.push(" AND status <> 'ceased'");
    } else {
        push_in(q, "status", &f.statuses);
    }
    push_in(q, "transition", &f.transitions);
    push_not_in(q, "transition", &f.not_transitions);
    push_shown_in(q, Table::Snapshots, &f.shown, &f.shown_in);
    if let Some(r) = &f.root_id {
        push_eq(q, "root_id", r);
    }
    if let Some(full) = f.is_full {
        q.push(" AND is_full = ").push_bind(full);
    }
    if let Some(z) = &f.zone {
        push_eq(q, "zone", z);
    }
    if let Some(n) = &f.name {
        push_eq(q, "name", n);
    }
    push_in(q, "name", &f.names);
    if let Some(w) = &f.search {
        push_contains(q, &["id", "name", "description"], w, trigrams);
    }
    if let Some(t) = &f.name_contains {
        push_holds(q, "name", t);
    }
    if let Some(t) = &f.description_contains {
        push_holds(q, "description", t);
    }
    push_metadata(q, &f.metadata);
    push_all_tags(q, &f.tag_ids);
    push_tag_pairs(q, &f.account, &f.tag_pairs);
    push_any_tags(q, &f.tag_any);
    if let Some(t) = f.created_from {
        q.push(" AND create_time >= ").push_bind(t);
    }
    if let Some(t) = f.created_to {
        q.push(" AND create_time <= ").push_bind(t);
    }
    if let Some(o) = &f.origin {
        push_eq(q, "origin", o);
    }
    if let Some(k) = &f.volume_kind {
        push_eq(q, "volume_kind", k);
    }
    if let Some(e) = f.encrypted {
        q.push(" AND encrypted = ").push_bind(e);
    }
    match f.in_use {
        Some(true) => {
            q.push(" AND (used_by_images > 0 OR used_by_volumes > 0)");
        }
        Some(false) => {
            q.push(" AND used_by_images = 0 AND used_by_volumes = 0");
        }
        None => {}
    }
    for (col, used) in [("used_by_images", f.used_by_images), ("used_by_volumes", f.used_by_volumes)] {
        match used {
            Some(true) => q.push(format!(" AND {col} > 0")),
            Some(false) => q.push(format!(" AND {col} = 0")),
            None => q,
        };
    }
}

pub(super) async fn chain(pool: &PgPool, root_id: &str) -> Result<Vec<SnapshotRow>> {
    if !storable(root_id) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT * FROM snapshots WHERE root_id = $1 AND status <> 'ceased' ORDER BY snapshot_time, create_time, id",
    )
    .bind(root_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn chain_totals(pool: &PgPool, root_ids: &[String]) -> Result<Vec<ChainTotals>> {
    if root_ids.is_empty() {
        return Ok(Vec::new());
    }
    let text: String = sqlx::query_scalar(&format!(
        "SELECT {CHAIN_TOTALS_JSON} FROM ({CHAIN_TOTALS_OF} AND root_id = ANY($1) GROUP BY root_id) c"
    ))
    .bind(storable_only(root_ids))
    .fetch_one(pool)
    .await?;
    from_json_rows(&text)
}

pub(super) async fn snapshots_holding_data(pool: &PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT id FROM snapshots WHERE status <> 'ceased' AND status <> 'creating'")
        .fetch_all(pool)
        .await?)
}

pub(super) async fn snapshots_logical_bytes(pool: &PgPool) -> Result<(u64, u64)> {
    let (sum, unknown): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(logical_size), 0)::BIGINT, COUNT(*) - COUNT(logical_size) FROM snapshots \
         WHERE status <> 'ceased' AND status <> 'creating'",
    )
    .fetch_one(pool)
    .await?;
    Ok((sum as u64, unknown as u64))
}

pub(super) async fn snapshots_due(pool: &PgPool, deleted_before: Millis, now: Millis) -> Result<Vec<SnapshotRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM snapshots WHERE (status = 'deleted' AND deleted_time < $1) \
         OR (status = 'available' AND expire_time IS NOT NULL AND expire_time <= $2)",
    )
    .bind(deleted_before)
    .bind(now)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn snapshot_metadata(pool: &PgPool, id: &str) -> Result<Vec<(String, String)>> {
    if !storable(id) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT key, value FROM snapshot_metadata WHERE snapshot_id = $1 ORDER BY key")
        .bind(id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn snapshots_metadata(
    pool: &PgPool,
    account: &str,
    ids: &[String],
) -> Result<Vec<(String, String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT m.snapshot_id, m.key, m.value FROM snapshot_metadata m \
         JOIN snapshots s ON s.id = m.snapshot_id WHERE s.account = $1 AND m.snapshot_id = ANY($2) \
         ORDER BY m.snapshot_id, m.key",
    )
    .bind(account)
    .bind(storable_only(ids))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn instances(pool: &PgPool, account: &str) -> Result<Vec<InstanceRow>> {
    Ok(sqlx::query_as("SELECT * FROM instances WHERE account = $1 ORDER BY create_time DESC, id DESC")
        .bind(account)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instances_by_id(pool: &PgPool, account: &str, ids: &[String]) -> Result<Vec<InstanceRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT * FROM instances WHERE account = $1 AND id = ANY($2) ORDER BY id")
        .bind(account)
        .bind(storable_only(ids))
        .fetch_all(pool)
        .await?)
}

pub(super) async fn volumes(pool: &PgPool, f: &VolumeFilter) -> Result<Page<VolumeRow>> {
    let build = |head: &str| {
        let mut q = QueryBuilder::<Postgres>::new(head);
        q.push(" WHERE TRUE");
        push_eq(&mut q, "account", &f.account);
        push_in(&mut q, "id", &f.ids);
        push_in(&mut q, "instance_id", &f.instance_ids);
        push_in(&mut q, "source_snapshot", &f.source_snapshots);
        if f.statuses.is_empty() {
            q.push(" AND status <> 'deleted'");
        } else {
            push_in(&mut q, "status", &f.statuses);
        }
        if let Some(z) = &f.zone {
            push_eq(&mut q, "zone", z);
        }
        if let Some(k) = &f.kind {
            push_eq(&mut q, "kind", k);
        }
        if let Some(n) = &f.name {
            push_eq(&mut q, "name", n);
        }
        if let Some(w) = &f.search {
            push_contains(&mut q, &["id", "name"], w, false);
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

pub(super) async fn volumes_by_id(pool: &PgPool, account: &str, ids: &[String]) -> Result<Vec<VolumeRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT * FROM volumes WHERE account = $1 AND id = ANY($2) ORDER BY id")
        .bind(account)
        .bind(storable_only(ids))
        .fetch_all(pool)
        .await?)
}

pub(super) async fn volumes_of_instance(pool: &PgPool, account: &str, instance_id: &str) -> Result<Vec<VolumeRow>> {
    if !storable(instance_id) {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT * FROM volumes WHERE account = $1 AND instance_id = $2 AND status <> 'deleted' ORDER BY kind DESC, id",
    )
    .bind(account)
    .bind(instance_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn images(pool: &PgPool, account: &str, offset: u64, limit: u64) -> Result<Page<ImageRow>> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE account = $1 AND status <> 'deleted'")
        .bind(account)
        .fetch_one(pool)
        .await?;
    let items = sqlx::query_as(
        "SELECT * FROM images WHERE account = $1 AND status <> 'deleted' \
         ORDER BY create_time DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(account)
    .bind(limit.min(i64::MAX as u64) as i64)
    .bind(offset.min(i64::MAX as u64) as i64)
    .fetch_all(pool)
    .await?;
    Ok(Page { items, total: total as u64 })
}

pub(super) async fn jobs(pool: &PgPool, f: &JobFilter) -> Result<Page<JobRow>> {
    let build = |head: &str| {
        let mut q = QueryBuilder::<Postgres>::new(head);
        q.push(" WHERE TRUE");
        if let Some(a) = &f.account {
            push_eq(&mut q, "account", a);
        }
        push_in(&mut q, "id", &f.ids);
        // word for word as the partial index states it (see the SQLite backend's jobs.rs)
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

pub(super) async fn tags(pool: &PgPool, account: &str) -> Result<Vec<TagRow>> {
    Ok(sqlx::query_as("SELECT * FROM tags WHERE account = $1 ORDER BY create_time, id")
        .bind(account)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn tags_of(pool: &PgPool, resource_ids: &[String]) -> Result<Vec<(String, TagRow)>> {
    if resource_ids.is_empty() {
        return Ok(Vec::new());
    }
    let text: String =
        sqlx::query_scalar(&format!("SELECT {} {TAGS_OF} WHERE rt.resource_id = ANY($1)", json_rows(TAG_JSON)))
            .bind(storable_only(resource_ids))
            .fetch_one(pool)
            .await?;
    from_json_rows(&text)
}

/// See [`crate::MetaStore::purge_jobs`] (the SQLite side: sqlite/jobs.rs).
pub(super) async fn purge_jobs(pool: &PgPool, created_before: Millis) -> Result<u64> {
    let q = format!("SELECT MIN(create_time) FROM jobs WHERE 1 = 1{}", crate::sqlite::jobs::OPEN);
    let oldest_open: Option<Millis> = sqlx::query_scalar(&q).fetch_one(pool).await?;
    let cutoff = crate::purge_cutoff(created_before, oldest_open);
    let mut purged = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
             WHERE create_time < $1 AND status IN ('successful', 'failed') ORDER BY create_time LIMIT $2)",
        )
        .bind(cutoff)
        .bind(crate::PURGE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged += n;
        if n < crate::PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}
