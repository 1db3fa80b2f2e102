//! Snapshots: lookups, chains, and the snapshot list (filter, order, page, totals).

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::sql::{
    from_json_rows, like_can_match, page_sql, push_all_tags, push_contains, push_holds, push_in, push_list,
    push_metadata, push_tag_pairs,
};
use super::tables::json_object_of;
use super::SqliteMeta;
use crate::filter::{Order, Page, SnapshotFilter};
use crate::rows::{ChainTotals, InstanceRow, Millis, SnapshotRow, VolumeRow};
use crate::sort::{push_after, push_any_tags, push_order, push_shown_in, Table};
use crate::{Result, SnapshotListing};

const COUNT_CACHE_MAX: usize = 4096;

/// Up to this many matches a search page is fetched through the trigram index and sorted;
/// beyond it the list order is walked (fewer rows to visit: a page of 100 among 4 000 matches
/// in 100 000 rows is ~2 500 rows into the walk, about what fetching the matches costs).
const SEARCH_BY_TRIGRAMS_MAX: u64 = 4000;

/// Snapshot list totals by filter (offset, limit and order left out), each with the
/// `list_generation` it was counted at: exact while the generation stands (see
/// migrations/0004_list_counts.sql). Bounded: cleared when it reaches [`COUNT_CACHE_MAX`].
#[derive(Default)]
pub(crate) struct CountCache(Mutex<HashMap<String, (i64, u64)>>);

impl CountCache {
    pub(crate) fn get(&self, key: &str, gen: i64) -> Option<u64> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|(at, _)| *at == gen).map(|(_, total)| *total)
    }

    pub(crate) fn remember(&self, key: String, gen: i64, total: u64) {
        if key.is_empty() {
            return;
        }
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= COUNT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (gen, total));
    }
}

impl SqliteMeta {
    /// The list behind `snapshots` and `snapshot_listing` (`refs`: with the rows' volumes,
    /// instances, chain totals and tags).
    pub(super) async fn list(&self, f: &SnapshotFilter, refs: bool) -> Result<SnapshotListing> {
        if indexed_word(f).is_some() {
            return self.search_list(f, refs).await;
        }
        if f.skip_count {
            // The caller shows no total (Cinder without with_count): the page alone.
            return Ok(self.snapshot_page(f, false, refs).await?.1);
        }
        // The page, with the list generation read in the same statement (so from the same
        // snapshot of the database as the rows).
        let (gen, mut listing) = self.snapshot_page(f, false, refs).await?;
        let key = count_key(f);
        if let Some(total) = self.counts.get(&key, gen) {
            listing.page.total = total;
            return Ok(listing);
        }
        // Count, again with the generation it was counted at. A write between the two
        // statements can make page and total disagree by that write, as two plain queries
        // always could; the cache only ever holds a total with its own generation.
        let mut count = QueryBuilder::<Sqlite>::new("SELECT (SELECT gen FROM list_generation), ");
        if counted_by_groups(f) {
            count.push("COALESCE(SUM(n), 0) FROM snapshot_counts");
            snapshot_where(&mut count, f);
        } else {
            match counted_by_busy(f) {
                // The groups' count less the busy points in them (migrations/0023_busy_points.sql).
                Some(Busy::Less(plain, transitions)) => {
                    count.push("(SELECT COALESCE(SUM(n), 0) FROM snapshot_counts");
                    snapshot_where(&mut count, &plain);
                    count.push(") - (SELECT COUNT(*) FROM snapshots INDEXED BY snapshots_busy");
                    snapshot_where(&mut count, &SnapshotFilter { transitions, ..*plain });
                    count.push(" AND transition <> '')");
                }
                Some(Busy::Only) => {
                    count.push("COUNT(*) FROM snapshots INDEXED BY snapshots_busy");
                    snapshot_where(&mut count, f);
                    count.push(" AND transition <> ''");
                }
                None => {
                    count.push("COUNT(*) FROM snapshots");
                    snapshot_where(&mut count, f);
                }
            }
        }
        let (at, total): (i64, i64) = count.build_query_as().fetch_one(&self.pool).await?;
        let total = total.max(0) as u64;
        self.counts.remember(key, at, total);
        listing.page.total = total;
        Ok(listing)
    }

    /// A list with a search word of three characters or more. The total comes first (cached,
    /// else counted through the trigram index: work in proportion to the rows holding the
    /// word), because it picks the page's plan: when few rows match, fetch them through the
    /// trigram index and sort them; when many do, walk the list order and test each row, which
    /// reaches a page of them after a few hundred rows.
    async fn search_list(&self, f: &SnapshotFilter, refs: bool) -> Result<SnapshotListing> {
        let key = count_key(f);
        let gen: i64 = sqlx::query_scalar("SELECT gen FROM list_generation").fetch_one(&self.pool).await?;
        let total = match self.counts.get(&key, gen) {
            Some(t) => t,
            None => {
                let mut count =
                    QueryBuilder::<Sqlite>::new("SELECT (SELECT gen FROM list_generation), COUNT(*) FROM snapshots");
                snapshot_where_with(&mut count, f, true);
                let (at, total): (i64, i64) = count.build_query_as().fetch_one(&self.pool).await?;
                self.counts.remember(key, at, total as u64);
                total as u64
            }
        };
        let (_, mut listing) = self.snapshot_page(f, total <= SEARCH_BY_TRIGRAMS_MAX, refs).await?;
        listing.page.total = total;
        Ok(listing)
    }

    /// One page of a snapshot list (and, with `refs`, its volumes, instances, chain totals and
    /// tags) and the list generation: one statement, one result row of JSON arrays.
    async fn snapshot_page(&self, f: &SnapshotFilter, by_trigrams: bool, refs: bool) -> Result<(i64, SnapshotListing)> {
        // MATERIALIZED: the page is computed once, however many of the lookups read it.
        let mut q = QueryBuilder::<Sqlite>::new("WITH page AS MATERIALIZED (SELECT * FROM snapshots");
        snapshot_where_with(&mut q, f, by_trigrams);
        push_after(&mut q, Table::Snapshots, &f.order, &f.sort, &f.shown, &f.after);
        push_order(&mut q, Table::Snapshots, "", &f.order, &f.sort, &f.shown);
        page_sql(&mut q, f.offset, f.limit);
        q.push(format!(
            ") SELECT (SELECT gen FROM list_generation), (SELECT json_group_array({}",
            json_object_of::<SnapshotRow>()
        ));
        push_order(&mut q, Table::Snapshots, "page.", &f.order, &f.sort, &f.shown);
        q.push(") FROM page)");
        if refs {
            q.push(format!(
                ", (SELECT json_group_array({}) FROM volumes WHERE account = ",
                json_object_of::<VolumeRow>()
            ));
            q.push_bind(f.account.clone()).push(" AND id IN (SELECT volume_id FROM page))");
            q.push(format!(
                ", (SELECT json_group_array({}) FROM instances WHERE account = ",
                json_object_of::<InstanceRow>()
            ));
            q.push_bind(f.account.clone()).push(" AND id IN (SELECT instance_id FROM page))");
            q.push(
                ", (SELECT json_group_array(json_object('root_id', root_id, 'total_size', total_size, \
                 'total_count', total_count, 'latest_snapshot_time', latest_snapshot_time)) FROM (\
                 SELECT root_id, SUM(size) AS total_size, COUNT(*) AS total_count, \
                 MAX(snapshot_time) AS latest_snapshot_time FROM snapshots \
                 WHERE status IN ('available', 'creating') AND root_id IN (SELECT id FROM page WHERE is_full) \
                 GROUP BY root_id))",
            );
            q.push(
                ", (SELECT json_group_array(json_array(rt.resource_id, json_object('id', t.id, 'account', t.account, \
                 'key', t.key, 'value', t.value, 'create_time', t.create_time)) ORDER BY t.create_time, t.id) \
                 FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id WHERE rt.resource_id IN (SELECT id FROM page))",
            );
        } else {
            q.push(", '[]', '[]', '[]', '[]'");
        }
        type Texts = (i64, String, String, String, String, String);
        let (gen, rows, vols, insts, totals, tags): Texts = q.build_query_as().fetch_one(&self.pool).await?;
        Ok((
            gen,
            SnapshotListing {
                page: Page { items: from_json_rows(&rows)?, total: 0 },
                volumes: from_json_rows(&vols)?,
                instances: from_json_rows(&insts)?,
                chain_totals: from_json_rows(&totals)?,
                tags: from_json_rows(&tags)?,
            },
        ))
    }
}

pub(crate) fn snapshot_where(q: &mut QueryBuilder<'_, Sqlite>, f: &SnapshotFilter) {
    snapshot_where_with(q, f, false)
}

/// The trigram index can narrow a search word of at least three characters (shorter ones have
/// no trigram to look up).
fn indexed_word(f: &SnapshotFilter) -> Option<&str> {
    f.search.as_deref().filter(|w| w.chars().count() >= 3 && like_can_match(w))
}

/// `by_trigrams`: narrow the search word through `snapshots_search` first (the LIKE conditions
/// still decide); worth it when few rows hold the word (see `snapshots`).
fn snapshot_where_with(q: &mut QueryBuilder<'_, Sqlite>, f: &SnapshotFilter, by_trigrams: bool) {
    // With ids given, the primary key is the index to use; `account || ''` keeps the planner
    // from preferring a covering scan of every row of the account (6 ms vs 0.1 ms at 50k rows).
    let account_col = if f.ids.is_empty() { " WHERE account = " } else { " WHERE account || '' = " };
    q.push(account_col).push_bind(f.account.clone());
    push_in(q, "id", &f.ids);
    push_in(q, "volume_id", &f.volume_ids);
    push_in(q, "instance_id", &f.instance_ids);
    if f.statuses.is_empty() {
        q.push(" AND status <> 'ceased'");
    } else {
        push_in(q, "status", &f.statuses);
    }
    push_in(q, "transition", &f.transitions);
    push_list(q, "transition", "NOT IN", &f.not_transitions);
    push_shown_in(q, Table::Snapshots, &f.shown, &f.shown_in);
    if let Some(r) = &f.root_id {
        q.push(" AND root_id = ").push_bind(r.clone());
    }
    if let Some(full) = f.is_full {
        q.push(" AND is_full = ").push_bind(full);
    }
    if let Some(z) = &f.zone {
        q.push(" AND zone = ").push_bind(z.clone());
    }
    if let Some(n) = &f.name {
        q.push(" AND name = ").push_bind(n.clone());
    }
    push_in(q, "name", &f.names);
    if let Some(w) = &f.search {
        if let Some(word) = indexed_word(f).filter(|_| by_trigrams) {
            // One quoted phrase: the word as a substring, whatever characters it holds.
            let phrase = format!("\"{}\"", word.replace('"', "\"\""));
            q.push(" AND rowid IN (SELECT rowid FROM snapshots_search WHERE snapshots_search MATCH ").push_bind(phrase);
            q.push(")");
        }
        push_contains(q, &["id", "name", "description"], w);
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
        q.push(" AND origin = ").push_bind(o.clone());
    }
    if let Some(k) = &f.volume_kind {
        q.push(" AND volume_kind = ").push_bind(k.clone());
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

/// A filter on nothing but the columns `snapshot_counts` groups by can be counted there.
pub(crate) fn counted_by_groups(f: &SnapshotFilter) -> bool {
    f.ids.is_empty()
        && f.volume_ids.is_empty()
        && f.instance_ids.is_empty()
        && f.root_id.is_none()
        && f.name.is_none()
        && f.names.is_empty()
        && f.tag_any.is_empty()
        && f.search.is_none()
        && f.name_contains.is_none()
        && f.description_contains.is_none()
        && f.metadata.is_empty()
        && f.tag_ids.is_empty()
        && f.tag_pairs.is_empty()
        && f.created_from.is_none()
        && f.created_to.is_none()
        && f.in_use.is_none()
        && f.used_by_images.is_none()
        && f.used_by_volumes.is_none()
        && f.transitions.is_empty()
        && f.not_transitions.is_empty()
        && f.shown_in.is_empty()
}

/// How a filter that `snapshot_counts` could count but for its transitions is counted with the
/// busy points (migrations/0023_busy_points.sql).
pub(crate) enum Busy {
    /// The groups' count of the filter without its transitions (the first), less its busy points
    /// in these transitions: the filter left out points in them (`not_transitions`).
    Less(Box<SnapshotFilter>, Vec<String>),
    /// Only busy points: every transition the filter keeps to is one (`transitions`, not '').
    Only,
}

pub(crate) fn counted_by_busy(f: &SnapshotFilter) -> Option<Busy> {
    let plain = SnapshotFilter { transitions: Vec::new(), not_transitions: Vec::new(), ..f.clone() };
    if !counted_by_groups(&plain) {
        return None;
    }
    let busy = |ts: &[String]| !ts.is_empty() && ts.iter().all(|t| !t.is_empty());
    match (f.transitions.is_empty(), f.not_transitions.is_empty()) {
        (true, false) if busy(&f.not_transitions) => Some(Busy::Less(Box::new(plain), f.not_transitions.clone())),
        (false, true) if busy(&f.transitions) => Some(Busy::Only),
        _ => None,
    }
}

/// The count cache's key: everything but the page. Metadata filters are never cached: a
/// metadata change does not move the list generation, so such a count is always taken fresh
/// (the empty key, which the cache never stores or finds). Nor is a shown status while
/// overrides are set: an override is request state, which moves no generation either.
pub(crate) fn count_key(f: &SnapshotFilter) -> String {
    if !f.metadata.is_empty() || (!f.shown_in.is_empty() && !f.shown.overrides.is_empty()) {
        return String::new();
    }
    // The cursor, order and skip_count choose rows of the page, never the total; how a status
    // is shown matters only to a filter on it.
    let shown = if f.shown_in.is_empty() { Default::default() } else { f.shown.clone() };
    let whole = SnapshotFilter {
        order: Order::NewestFirst,
        sort: Vec::new(),
        offset: 0,
        limit: 0,
        after: None,
        skip_count: false,
        shown,
        ..f.clone()
    };
    format!("{whole:?}")
}

pub(super) async fn chain(pool: &SqlitePool, root_id: &str) -> Result<Vec<SnapshotRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM snapshots WHERE root_id = ? AND status <> 'ceased' ORDER BY snapshot_time, create_time, id",
    )
    .bind(root_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn chain_totals(pool: &SqlitePool, root_ids: &[String]) -> Result<Vec<ChainTotals>> {
    if root_ids.is_empty() {
        return Ok(Vec::new());
    }
    // One JSON row, not a row per chain (see `from_json_rows`): a page of full points has 100.
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT json_group_array(json_object('root_id', root_id, 'total_size', total_size, \
         'total_count', total_count, 'latest_snapshot_time', latest_snapshot_time)) FROM (\
         SELECT root_id, SUM(size) AS total_size, COUNT(*) AS total_count, MAX(snapshot_time) AS latest_snapshot_time \
         FROM snapshots WHERE status IN ('available', 'creating')",
    );
    push_in(&mut q, "root_id", root_ids);
    q.push(" GROUP BY root_id)");
    let text: String = q.build_query_scalar().fetch_one(pool).await?;
    from_json_rows(&text)
}

pub(super) async fn snapshots_holding_data(pool: &SqlitePool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT id FROM snapshots WHERE status <> 'ceased' AND status <> 'creating'")
        .fetch_all(pool)
        .await?)
}

pub(super) async fn snapshots_logical_bytes(pool: &SqlitePool) -> Result<(u64, u64)> {
    let (sum, unknown): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(logical_size), 0), COUNT(*) - COUNT(logical_size) FROM snapshots \
         WHERE status <> 'ceased' AND status <> 'creating'",
    )
    .fetch_one(pool)
    .await?;
    Ok((sum as u64, unknown as u64))
}

pub(super) async fn snapshots_due(pool: &SqlitePool, deleted_before: Millis, now: Millis) -> Result<Vec<SnapshotRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM snapshots WHERE (status = 'deleted' AND deleted_time < ?) \
         OR (status = 'available' AND expire_time IS NOT NULL AND expire_time <= ?)",
    )
    .bind(deleted_before)
    .bind(now)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn snapshot_metadata(pool: &SqlitePool, id: &str) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as("SELECT key, value FROM snapshot_metadata WHERE snapshot_id = ? ORDER BY key")
        .bind(id)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn snapshots_metadata(
    pool: &SqlitePool,
    account: &str,
    ids: &[String],
) -> Result<Vec<(String, String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT m.snapshot_id, m.key, m.value FROM snapshot_metadata m \
         JOIN snapshots s ON s.id = m.snapshot_id WHERE s.account = ",
    );
    q.push_bind(account.to_string());
    push_in(&mut q, "m.snapshot_id", ids);
    q.push(" ORDER BY m.snapshot_id, m.key");
    Ok(q.build_query_as().fetch_all(pool).await?)
}
