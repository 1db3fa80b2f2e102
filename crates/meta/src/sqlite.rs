//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before the call returns. Statements are plain SQL that PostgreSQL also accepts (upserts via
//! `ON CONFLICT … DO UPDATE`), built with `QueryBuilder` so filters stay parameterised.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};

use crate::filter::{JobFilter, Order, Page, SnapshotFilter, VolumeFilter};
use crate::rows::*;
use crate::{Batch, Expect, MetaError, MetaStore, Result, SnapshotListing};

pub struct SqliteMeta {
    pool: SqlitePool,
    /// Snapshot list totals by filter (offset, limit and order left out), each with the
    /// `list_generation` it was counted at: exact while the generation stands (see
    /// migrations/0004_list_counts.sql). Bounded: cleared when it reaches [`COUNT_CACHE_MAX`].
    counts: Mutex<HashMap<String, (i64, u64)>>,
}

const COUNT_CACHE_MAX: usize = 4096;

/// Up to this many matches a search page is fetched through the trigram index and sorted;
/// beyond it the list order is walked (fewer rows to visit: a page of 100 among 4 000 matches
/// in 100 000 rows is ~2 500 rows into the walk, about what fetching the matches costs).
const SEARCH_BY_TRIGRAMS_MAX: u64 = 4000;

const INSTANCE_COLS: &[&str] = &["id", "account", "zone", "name", "create_time"];
const VOLUME_COLS: &[&str] = &[
    "id",
    "account",
    "zone",
    "name",
    "description",
    "size",
    "kind",
    "status",
    "transition",
    "instance_id",
    "path",
    "head_root",
    "create_time",
    "status_time",
    "source_snapshot",
    "version",
];
const SNAPSHOT_COLS: &[&str] = &[
    "id",
    "account",
    "zone",
    "name",
    "description",
    "volume_id",
    "volume_size",
    "volume_kind",
    "instance_id",
    "is_full",
    "root_id",
    "parent_id",
    "is_head",
    "status",
    "transition",
    "is_taken",
    "progress",
    "snapshot_time",
    "create_time",
    "status_time",
    "deleted_time",
    "expire_time",
    "size",
    "origin",
    "retention_days",
    "encrypted",
    "used_by_images",
    "used_by_volumes",
    "version",
];
const IMAGE_COLS: &[&str] = &[
    "id",
    "account",
    "zone",
    "name",
    "snapshot_id",
    "path",
    "size",
    "status",
    "create_time",
    "status_time",
    "version",
];
const JOB_COLS: &[&str] =
    &["id", "account", "action", "status", "resources", "params", "error", "runner", "create_time", "status_time"];
const TAG_COLS: &[&str] = &["id", "account", "key", "value", "create_time"];

/// `INSERT … ON CONFLICT(id) DO UPDATE SET …` for every column.
fn upsert_sql(table: &str, cols: &[&str]) -> String {
    let marks = vec!["?"; cols.len()].join(", ");
    let sets: Vec<String> = cols[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {}",
        cols.join(", "),
        sets.join(", ")
    )
}

/// The guarded write of a versioned row (`cols` ends with `version`; see `VolumeRow::version`):
/// `INSERT` with version 1 when `version` is 0, else `UPDATE … SET …, version = version + 1
/// WHERE id = ?1 AND version = ?N`. Both bind the row's columns in `cols` order (id first),
/// then, for the update, the version read.
fn versioned_put_sql(table: &str, cols: &[&str], version: i64) -> String {
    let cols = &cols[..cols.len() - 1];
    if version == 0 {
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        format!("INSERT INTO {table} ({}, version) VALUES ({}, 1)", cols.join(", "), marks.join(", "))
    } else {
        let sets: Vec<String> = cols.iter().enumerate().skip(1).map(|(i, c)| format!("{c} = ?{}", i + 1)).collect();
        format!(
            "UPDATE {table} SET {}, version = version + 1 WHERE id = ?1 AND version = ?{}",
            sets.join(", "),
            cols.len() + 1
        )
    }
}

/// Rows one batch writes more than once (an id listed twice by a caller, a row two steps of one
/// decision touch): a later write made from the same read as an earlier one is guarded by the
/// version the earlier write left, so the last write wins within the batch, as one decision's
/// writes should; a write from any other read is still refused as stale.
#[derive(Default)]
struct InBatch(HashMap<String, (i64, i64)>);

impl InBatch {
    /// The version to guard a write of `id` made from a read at `read`.
    fn guard(&self, id: &str, read: i64) -> i64 {
        match self.0.get(id) {
            Some(&(first_read, now)) if first_read == read => now,
            _ => read,
        }
    }

    /// Record that `id`, read at `read`, was written guarded by `guard`.
    fn wrote(&mut self, id: &str, read: i64, guard: i64) {
        let first_read = self.0.get(id).map_or(read, |&(r, _)| r);
        self.0.insert(id.to_string(), (first_read, if guard == 0 { 1 } else { guard + 1 }));
    }
}

/// `json_object('col', col, …)` over a row's columns, booleans (stored 0/1) as JSON booleans so
/// the row types deserialize from it.
fn json_object_sql(cols: &[&str], bools: &[&str]) -> String {
    let fields: Vec<String> =
        cols.iter()
            .map(|c| {
                if bools.contains(c) {
                    format!("'{c}', json(iif({c}, 'true', 'false'))")
                } else {
                    format!("'{c}', {c}")
                }
            })
            .collect();
    format!("json_object({})", fields.join(", "))
}

const SNAPSHOT_BOOLS: &[&str] = &["is_full", "is_head", "is_taken", "encrypted"];

/// Rows handed over as one JSON array in one result row. sqlx's SQLite driver passes each
/// result row from its worker thread to the async caller through a channel; on 2 busy cores a
/// page of 100 rows (plus the 100 volume rows that name them) became hundreds of thread
/// wake-ups per request, ~30 µs a row, most of the request's time. SQLite builds the array
/// in C at a fraction of that; serde reads it back.
fn from_json_rows<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| MetaError::Db(sqlx::Error::Decode(Box::new(e))))
}

impl SqliteMeta {
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Open (creating if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        // SQLite creates a new database 0644 (less the umask) and gives its -wal and -shm the
        // database file's mode: made 0600 first, none of them is readable by other users.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
            match created {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(MetaError::Db(sqlx::Error::Io(e))),
            }
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Reads through a shared mapping instead of a pread() into each connection's
            // private 2 MiB cache: a list page touches a few hundred pages of a ~60 MB file,
            // and 8 connections would otherwise each keep (and miss in) their own copy.
            .pragma("mmap_size", "1073741824");
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let meta = SqliteMeta { pool, counts: Mutex::new(HashMap::new()) };
        meta.optimize().await?;
        Ok(meta)
    }

    /// Refresh the planner's statistics where tables changed a lot (SQLite's advice: on open and
    /// now and then). Cheap: `analysis_limit` bounds the rows each ANALYZE reads.
    pub async fn optimize(&self) -> Result<()> {
        sqlx::query("PRAGMA analysis_limit = 1000").execute(&self.pool).await?;
        sqlx::query("PRAGMA optimize = 0x10002").execute(&self.pool).await?;
        Ok(())
    }

    fn cached_count(&self, key: &str, gen: i64) -> Option<u64> {
        let cache = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|(at, _)| *at == gen).map(|(_, total)| *total)
    }

    fn remember_count(&self, key: String, gen: i64, total: u64) {
        if key.is_empty() {
            return;
        }
        let mut cache = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= COUNT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (gen, total));
    }

    /// A list with a search word of three characters or more. The total comes first (cached,
    /// else counted through the trigram index: work in proportion to the rows holding the
    /// word), because it picks the page's plan: when few rows match, fetch them through the
    /// trigram index and sort them; when many do, walk the list order and test each row, which
    /// reaches a page of them after a few hundred rows.
    /// The list behind `snapshots` and `snapshot_listing` (`refs`: with the rows' volumes,
    /// instances, chain totals and tags).
    async fn list(&self, f: &SnapshotFilter, refs: bool) -> Result<SnapshotListing> {
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
        if let Some(total) = self.cached_count(&key, gen) {
            listing.page.total = total;
            return Ok(listing);
        }
        // Count, again with the generation it was counted at. A write between the two
        // statements can make page and total disagree by that write, as two plain queries
        // always could; the cache only ever holds a total with its own generation.
        let head = if counted_by_groups(f) {
            "SELECT (SELECT gen FROM list_generation), COALESCE(SUM(n), 0) FROM snapshot_counts"
        } else {
            "SELECT (SELECT gen FROM list_generation), COUNT(*) FROM snapshots"
        };
        let mut count = QueryBuilder::<Sqlite>::new(head);
        snapshot_where(&mut count, f);
        let (at, total): (i64, i64) = count.build_query_as().fetch_one(&self.pool).await?;
        let total = total.max(0) as u64;
        self.remember_count(key, at, total);
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
        let total = match self.cached_count(&key, gen) {
            Some(t) => t,
            None => {
                let mut count =
                    QueryBuilder::<Sqlite>::new("SELECT (SELECT gen FROM list_generation), COUNT(*) FROM snapshots");
                snapshot_where_with(&mut count, f, true);
                let (at, total): (i64, i64) = count.build_query_as().fetch_one(&self.pool).await?;
                self.remember_count(key, at, total as u64);
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
        let order = order_sql(&f.order);
        // MATERIALIZED: the page is computed once, however many of the lookups read it.
        let mut q = QueryBuilder::<Sqlite>::new("WITH page AS MATERIALIZED (SELECT * FROM snapshots");
        snapshot_where_with(&mut q, f, by_trigrams);
        keyset_sql(&mut q, &f.order, &f.after);
        q.push(order);
        page_sql(&mut q, f.offset, f.limit);
        q.push(format!(
            ") SELECT (SELECT gen FROM list_generation), (SELECT json_group_array({}{order}) FROM page)",
            json_object_sql(SNAPSHOT_COLS, SNAPSHOT_BOOLS)
        ));
        if refs {
            q.push(format!(
                ", (SELECT json_group_array({}) FROM volumes WHERE account = ",
                json_object_sql(VOLUME_COLS, &[])
            ));
            q.push_bind(f.account.clone()).push(" AND id IN (SELECT volume_id FROM page))");
            q.push(format!(
                ", (SELECT json_group_array({}) FROM instances WHERE account = ",
                json_object_sql(INSTANCE_COLS, &[])
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

    async fn check(tx: &mut Transaction<'_, Sqlite>, e: &Expect) -> Result<()> {
        let (what, sql, id, expected) = match e {
            Expect::VolumeTransition { id, expected } => {
                ("volume", "SELECT transition FROM volumes WHERE id = ?", id, expected)
            }
            Expect::SnapshotTransition { id, expected } => {
                ("snapshot", "SELECT transition FROM snapshots WHERE id = ?", id, expected)
            }
            Expect::SnapshotStatus { id, expected } => {
                ("snapshot", "SELECT status FROM snapshots WHERE id = ?", id, expected)
            }
            Expect::JobRunner { id, expected } => {
                ("job", "SELECT COALESCE(runner, '') FROM jobs WHERE id = ?", id, expected)
            }
        };
        let found: Option<String> = sqlx::query_scalar(sql).bind(id).fetch_optional(&mut **tx).await?;
        if found.as_deref() != Some(expected.as_str()) {
            return Err(MetaError::Conflict { what, id: id.clone(), expected: expected.clone(), found });
        }
        Ok(())
    }

    /// The outcome of a guarded write ([`versioned_put_sql`]): exactly one row written, or a
    /// conflict naming the row (an insert of an existing id, or an update of a row someone
    /// wrote or deleted since it was read).
    fn versioned(
        what: &'static str,
        id: &str,
        done: std::result::Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
    ) -> Result<()> {
        let stale = || MetaError::Stale { what, id: id.to_string() };
        match done {
            Ok(r) if r.rows_affected() == 1 => Ok(()),
            Ok(_) => Err(stale()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(stale()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_by_id(tx: &mut Transaction<'_, Sqlite>, table: &str, ids: &[String]) -> Result<()> {
        for id in ids {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = ?")).bind(id).execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// Lists up to this long are bound one value per `?` (the planner sees the values, as it always
/// did); longer ones as one JSON array read back by `json_each`. A caller's list can be any
/// length (34 000 `snapshots.N` made SQLite refuse the statement: it takes at most 32 766
/// variables), and a statement binds a handful of lists, so this keeps it far below that.
const INLINE_LIST_MAX: usize = 200;

/// Up to this many tags (or key/value pairs) a filter is one `IN (subquery)` per tag, as it
/// always was; more become one grouped subquery (each is an `AND` term, and SQLite refuses an
/// expression tree deeper than 1 000).
const INLINE_TAGS_MAX: usize = 32;

/// Appends `AND col IN (…)` when `values` is not empty.
fn push_in(q: &mut QueryBuilder<'_, Sqlite>, col: &str, values: &[String]) {
    push_list(q, col, "IN", values)
}

/// Appends `AND col <op> (…)` (`op`: IN or NOT IN) when `values` is not empty: one bound value
/// each, or one JSON array (see [`INLINE_LIST_MAX`]).
fn push_list(q: &mut QueryBuilder<'_, Sqlite>, col: &str, op: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    q.push(format!(" AND {col} {op} ("));
    if values.len() > INLINE_LIST_MAX {
        q.push("SELECT value FROM json_each(").push_bind(json_array(values)).push("))");
        return;
    }
    let mut sep = q.separated(", ");
    for v in values {
        sep.push_bind(v.clone());
    }
    sep.push_unseparated(")");
}

fn json_array<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("strings serialize")
}

/// `AND id IN (…)` for resources bound to every one of `tag_ids`.
fn push_all_tags(q: &mut QueryBuilder<'_, Sqlite>, tag_ids: &[String]) {
    if tag_ids.len() <= INLINE_TAGS_MAX {
        for t in tag_ids {
            q.push(" AND id IN (SELECT resource_id FROM resource_tags WHERE tag_id = ").push_bind(t.clone()).push(")");
        }
        return;
    }
    let distinct: std::collections::BTreeSet<&String> = tag_ids.iter().collect();
    let distinct: Vec<&String> = distinct.into_iter().collect();
    q.push(" AND id IN (SELECT resource_id FROM resource_tags WHERE tag_id IN (SELECT value FROM json_each(");
    q.push_bind(json_array(&distinct)).push(")) GROUP BY resource_id HAVING COUNT(DISTINCT tag_id) = ");
    q.push_bind(distinct.len() as i64).push(")");
}

/// `AND id IN (…)` for resources bound, for every pair, to a tag of `account` with that key
/// (and value, when given).
fn push_tag_pairs(q: &mut QueryBuilder<'_, Sqlite>, account: &str, pairs: &[(String, Option<String>)]) {
    if pairs.len() <= INLINE_TAGS_MAX {
        for (k, v) in pairs {
            q.push(
                " AND id IN (SELECT rt.resource_id FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id WHERE t.account = ",
            );
            q.push_bind(account.to_string()).push(" AND t.key = ").push_bind(k.clone());
            if let Some(v) = v {
                q.push(" AND t.value = ").push_bind(v.clone());
            }
            q.push(")");
        }
        return;
    }
    // Each pair is `[key, value or null]`; a resource qualifies when its tags meet every pair
    // (counted by the pair's position in the array).
    let distinct: std::collections::BTreeSet<&(String, Option<String>)> = pairs.iter().collect();
    let distinct: Vec<&(String, Option<String>)> = distinct.into_iter().collect();
    q.push(
        " AND id IN (SELECT rt.resource_id FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id \
         JOIN json_each(",
    );
    q.push_bind(json_array(&distinct));
    q.push(
        ") p ON t.key = p.value ->> 0 AND (p.value ->> 1 IS NULL OR t.value = p.value ->> 1) \
         WHERE t.account = ",
    );
    q.push_bind(account.to_string()).push(" GROUP BY rt.resource_id HAVING COUNT(DISTINCT p.key) = ");
    q.push_bind(distinct.len() as i64).push(")");
}

fn like_pattern(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// SQLite refuses a LIKE pattern over 50 000 bytes (SQLITE_MAX_LIKE_PATTERN_LENGTH); words
/// this long are matched with `instr` instead.
const LIKE_WORD_MAX: usize = 10_000;

/// Whether `LIKE` can match the word: its C implementation stops a pattern at the first NUL
/// byte (a word holding one would match the wrong rows), and its length is capped.
fn like_can_match(word: &str) -> bool {
    !word.contains('\0') && word.len() <= LIKE_WORD_MAX
}

/// `AND (<col> contains word, case-insensitively for ASCII, for any of `cols`)`: LIKE when it
/// can (the plan every benchmark measured), else `instr` over `lower()`, which count bytes, not
/// C strings, and fold ASCII case exactly as LIKE does.
fn push_contains(q: &mut QueryBuilder<'_, Sqlite>, cols: &[&str], word: &str) {
    let like = like_can_match(word);
    let bound = if like { like_pattern(word) } else { word.to_ascii_lowercase() };
    q.push(" AND (");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            q.push(" OR ");
        }
        if like {
            q.push(format!("{c} LIKE ")).push_bind(bound.clone()).push(" ESCAPE '\\'");
        } else {
            q.push(format!("instr(lower({c}), ")).push_bind(bound.clone()).push(") > 0");
        }
    }
    q.push(")");
}

fn snapshot_where(q: &mut QueryBuilder<'_, Sqlite>, f: &SnapshotFilter) {
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
    if let Some(w) = &f.search {
        if let Some(word) = indexed_word(f).filter(|_| by_trigrams) {
            // One quoted phrase: the word as a substring, whatever characters it holds.
            let phrase = format!("\"{}\"", word.replace('"', "\"\""));
            q.push(" AND rowid IN (SELECT rowid FROM snapshots_search WHERE snapshots_search MATCH ").push_bind(phrase);
            q.push(")");
        }
        push_contains(q, &["id", "name", "description"], w);
    }
    push_all_tags(q, &f.tag_ids);
    push_tag_pairs(q, &f.account, &f.tag_pairs);
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
fn counted_by_groups(f: &SnapshotFilter) -> bool {
    f.ids.is_empty()
        && f.volume_ids.is_empty()
        && f.instance_ids.is_empty()
        && f.root_id.is_none()
        && f.name.is_none()
        && f.search.is_none()
        && f.tag_ids.is_empty()
        && f.tag_pairs.is_empty()
        && f.created_from.is_none()
        && f.created_to.is_none()
        && f.in_use.is_none()
        && f.used_by_images.is_none()
        && f.used_by_volumes.is_none()
        && f.transitions.is_empty()
        && f.not_transitions.is_empty()
}

/// The count cache's key: everything but the page. Transition filters are never cached: the
/// list generation does not move when a transition changes (progress-like churn), so such a
/// count is always taken fresh (the empty key, which the cache never stores or finds).
fn count_key(f: &SnapshotFilter) -> String {
    if !f.transitions.is_empty() || !f.not_transitions.is_empty() {
        return String::new();
    }
    // The cursor and skip_count choose rows of the page, never the total.
    let whole =
        SnapshotFilter { order: Order::NewestFirst, offset: 0, limit: 0, after: None, skip_count: false, ..f.clone() };
    format!("{whole:?}")
}

fn order_sql(o: &Order) -> &'static str {
    match o {
        Order::NewestFirst => " ORDER BY create_time DESC, id DESC",
        Order::OldestFirst => " ORDER BY create_time ASC, id ASC",
    }
}

/// Rows strictly after the cursor `(create_time, id)` in `order`. A row value, so SQLite makes
/// it one range on the list index's `(create_time, id)` tail instead of a scan from the start.
fn keyset_sql(q: &mut QueryBuilder<'_, Sqlite>, order: &Order, after: &Option<(Millis, String)>) {
    if let Some((t, id)) = after {
        let op = if *order == Order::NewestFirst { " AND (create_time, id) < (" } else { " AND (create_time, id) > (" };
        q.push(op).push_bind(*t).push(", ").push_bind(id.clone()).push(")");
    }
}

fn page_sql(q: &mut QueryBuilder<'_, Sqlite>, offset: u64, limit: u64) {
    q.push(" LIMIT ").push_bind(limit as i64).push(" OFFSET ").push_bind(offset as i64);
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn maintain(&self) -> Result<()> {
        self.optimize().await
    }

    async fn commit(&self, b: Batch) -> Result<()> {
        // IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
        // transaction that reads its expectations and then writes fails at once with
        // SQLITE_BUSY_SNAPSHOT when another writer committed in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for e in &b.expect {
            Self::check(&mut tx, e).await?;
        }
        for r in &b.put_instances {
            sqlx::query(&upsert_sql("instances", INSTANCE_COLS))
                .bind(&r.id)
                .bind(&r.account)
                .bind(&r.zone)
                .bind(&r.name)
                .bind(r.create_time)
                .execute(&mut *tx)
                .await?;
        }
        Self::delete_by_id(&mut tx, "instances", &b.delete_instances).await?;
        let mut in_batch = InBatch::default();
        for r in &b.put_volumes {
            let guard = in_batch.guard(&r.id, r.version);
            let sql = versioned_put_sql("volumes", VOLUME_COLS, guard);
            let q = sqlx::query(&sql)
                .bind(&r.id)
                .bind(&r.account)
                .bind(&r.zone)
                .bind(&r.name)
                .bind(&r.description)
                .bind(r.size)
                .bind(&r.kind)
                .bind(&r.status)
                .bind(&r.transition)
                .bind(&r.instance_id)
                .bind(&r.path)
                .bind(&r.head_root)
                .bind(r.create_time)
                .bind(r.status_time)
                .bind(&r.source_snapshot);
            let q = if guard == 0 { q } else { q.bind(guard) };
            let done = q.execute(&mut *tx).await;
            Self::versioned("volume", &r.id, done)?;
            in_batch.wrote(&r.id, r.version, guard);
        }
        Self::delete_by_id(&mut tx, "volumes", &b.delete_volumes).await?;
        let mut in_batch = InBatch::default();
        for r in &b.put_snapshots {
            let guard = in_batch.guard(&r.id, r.version);
            let sql = versioned_put_sql("snapshots", SNAPSHOT_COLS, guard);
            let q = sqlx::query(&sql)
                .bind(&r.id)
                .bind(&r.account)
                .bind(&r.zone)
                .bind(&r.name)
                .bind(&r.description)
                .bind(&r.volume_id)
                .bind(r.volume_size)
                .bind(&r.volume_kind)
                .bind(&r.instance_id)
                .bind(r.is_full)
                .bind(&r.root_id)
                .bind(&r.parent_id)
                .bind(r.is_head)
                .bind(&r.status)
                .bind(&r.transition)
                .bind(r.is_taken)
                .bind(r.progress)
                .bind(r.snapshot_time)
                .bind(r.create_time)
                .bind(r.status_time)
                .bind(r.deleted_time)
                .bind(r.expire_time)
                .bind(r.size)
                .bind(&r.origin)
                .bind(r.retention_days)
                .bind(r.encrypted)
                .bind(r.used_by_images)
                .bind(r.used_by_volumes);
            let q = if guard == 0 { q } else { q.bind(guard) };
            let done = q.execute(&mut *tx).await;
            Self::versioned("snapshot", &r.id, done)?;
            in_batch.wrote(&r.id, r.version, guard);
        }
        // The search index's copy of id, name and description (migrations/0005), a few
        // statements per batch, not per row: drop the entries of every row written or deleted
        // (an upsert keeps its rowid), then copy the written rows' current text back.
        let written: Vec<String> =
            b.put_snapshots.iter().map(|r| r.id.clone()).filter(|id| !b.delete_snapshots.contains(id)).collect();
        for ids in written.chunks(500).chain(b.delete_snapshots.chunks(500)) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "DELETE FROM snapshots_search WHERE rowid IN (SELECT rowid FROM snapshots WHERE 1 = 1",
            );
            push_in(&mut q, "id", ids);
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        for ids in written.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO snapshots_search (rowid, id, name, description) \
                 SELECT rowid, id, name, description FROM snapshots WHERE 1 = 1",
            );
            push_in(&mut q, "id", ids);
            q.build().execute(&mut *tx).await?;
        }
        for id in &b.delete_snapshots {
            sqlx::query("DELETE FROM snapshot_metadata WHERE snapshot_id = ?").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM resource_tags WHERE resource_id = ?").bind(id).execute(&mut *tx).await?;
        }
        Self::delete_by_id(&mut tx, "snapshots", &b.delete_snapshots).await?;
        let mut in_batch = InBatch::default();
        for r in &b.put_images {
            let guard = in_batch.guard(&r.id, r.version);
            let sql = versioned_put_sql("images", IMAGE_COLS, guard);
            let q = sqlx::query(&sql)
                .bind(&r.id)
                .bind(&r.account)
                .bind(&r.zone)
                .bind(&r.name)
                .bind(&r.snapshot_id)
                .bind(&r.path)
                .bind(r.size)
                .bind(&r.status)
                .bind(r.create_time)
                .bind(r.status_time);
            let q = if guard == 0 { q } else { q.bind(guard) };
            let done = q.execute(&mut *tx).await;
            Self::versioned("image", &r.id, done)?;
            in_batch.wrote(&r.id, r.version, guard);
        }
        Self::delete_by_id(&mut tx, "images", &b.delete_images).await?;
        for r in &b.put_jobs {
            sqlx::query(&upsert_sql("jobs", JOB_COLS))
                .bind(&r.id)
                .bind(&r.account)
                .bind(&r.action)
                .bind(&r.status)
                .bind(&r.resources)
                .bind(&r.params)
                .bind(&r.error)
                .bind(&r.runner)
                .bind(r.create_time)
                .bind(r.status_time)
                .execute(&mut *tx)
                .await?;
        }
        for r in &b.put_tags {
            sqlx::query(&upsert_sql("tags", TAG_COLS))
                .bind(&r.id)
                .bind(&r.account)
                .bind(&r.key)
                .bind(&r.value)
                .bind(r.create_time)
                .execute(&mut *tx)
                .await?;
        }
        for id in &b.delete_tags {
            sqlx::query("DELETE FROM resource_tags WHERE tag_id = ?").bind(id).execute(&mut *tx).await?;
        }
        Self::delete_by_id(&mut tx, "tags", &b.delete_tags).await?;
        for (tag, res) in &b.bind_tags {
            sqlx::query("INSERT INTO resource_tags (tag_id, resource_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(tag)
                .bind(res)
                .execute(&mut *tx)
                .await?;
        }
        for (tag, res) in &b.unbind_tags {
            sqlx::query("DELETE FROM resource_tags WHERE tag_id = ? AND resource_id = ?")
                .bind(tag)
                .bind(res)
                .execute(&mut *tx)
                .await?;
        }
        for (id, progress, taken) in &b.snapshot_progress {
            sqlx::query(
                "UPDATE snapshots SET progress = ?, is_taken = ?, version = version + 1 \
                 WHERE id = ? AND status = 'creating'",
            )
            .bind(progress)
            .bind(taken)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for (id, key, value) in &b.snapshot_metadata {
            match value {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO snapshot_metadata (snapshot_id, key, value) VALUES (?, ?, ?) \
                     ON CONFLICT(snapshot_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(id)
                    .bind(key)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query("DELETE FROM snapshot_metadata WHERE snapshot_id = ? AND key = ?")
                        .bind(id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?
                }
            };
        }
        tx.commit().await?;
        Ok(())
    }

    async fn instance(&self, account: &str, id: &str) -> Result<Option<InstanceRow>> {
        Ok(sqlx::query_as("SELECT * FROM instances WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn instances(&self, account: &str) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as("SELECT * FROM instances WHERE account = ? ORDER BY create_time DESC, id DESC")
            .bind(account)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instances_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<InstanceRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT json_group_array({}) FROM instances WHERE account = ",
            json_object_sql(INSTANCE_COLS, &[])
        ));
        q.push_bind(account.to_string());
        push_in(&mut q, "id", ids);
        let text: String = q.build_query_scalar().fetch_one(&self.pool).await?;
        from_json_rows(&text)
    }

    async fn volumes_by_id(&self, account: &str, ids: &[String]) -> Result<Vec<VolumeRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT json_group_array({}) FROM volumes WHERE account = ",
            json_object_sql(VOLUME_COLS, &[])
        ));
        q.push_bind(account.to_string());
        push_in(&mut q, "id", ids);
        let text: String = q.build_query_scalar().fetch_one(&self.pool).await?;
        from_json_rows(&text)
    }

    async fn volume(&self, account: &str, id: &str) -> Result<Option<VolumeRow>> {
        Ok(sqlx::query_as("SELECT * FROM volumes WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn volumes(&self, f: &VolumeFilter) -> Result<Page<VolumeRow>> {
        let build = |head: &str| {
            let mut q = QueryBuilder::<Sqlite>::new(head);
            q.push(" WHERE account = ").push_bind(f.account.clone());
            push_in(&mut q, "id", &f.ids);
            push_in(&mut q, "instance_id", &f.instance_ids);
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
            push_all_tags(&mut q, &f.tag_ids);
            q
        };
        let total: i64 = if f.skip_count {
            0
        } else {
            build("SELECT COUNT(*) FROM volumes").build_query_scalar().fetch_one(&self.pool).await?
        };
        let mut q = build("SELECT * FROM volumes");
        keyset_sql(&mut q, &f.order, &f.after);
        q.push(order_sql(&f.order));
        page_sql(&mut q, f.offset, f.limit);
        let items = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(Page { items, total: total as u64 })
    }

    async fn volumes_of_instance(&self, account: &str, instance_id: &str) -> Result<Vec<VolumeRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM volumes WHERE account = ? AND instance_id = ? AND status <> 'deleted' ORDER BY kind DESC, id",
        )
        .bind(account)
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn snapshot(&self, account: &str, id: &str) -> Result<Option<SnapshotRow>> {
        Ok(sqlx::query_as("SELECT * FROM snapshots WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn snapshots(&self, f: &SnapshotFilter) -> Result<Page<SnapshotRow>> {
        Ok(self.list(f, false).await?.page)
    }

    async fn snapshot_listing(&self, f: &SnapshotFilter) -> Result<SnapshotListing> {
        self.list(f, true).await
    }

    async fn chain(&self, root_id: &str) -> Result<Vec<SnapshotRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM snapshots WHERE root_id = ? AND status <> 'ceased' ORDER BY snapshot_time, create_time, id",
        )
        .bind(root_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn chain_totals(&self, root_ids: &[String]) -> Result<Vec<ChainTotals>> {
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
        let text: String = q.build_query_scalar().fetch_one(&self.pool).await?;
        from_json_rows(&text)
    }

    async fn snapshots_holding_data(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM snapshots WHERE status <> 'ceased' AND status <> 'creating'")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn snapshots_due(&self, deleted_before: Millis, now: Millis) -> Result<Vec<SnapshotRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM snapshots WHERE (status = 'deleted' AND deleted_time < ?) \
             OR (status = 'available' AND expire_time IS NOT NULL AND expire_time <= ?)",
        )
        .bind(deleted_before)
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn snapshot_metadata(&self, id: &str) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as("SELECT key, value FROM snapshot_metadata WHERE snapshot_id = ? ORDER BY key")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn snapshots_metadata(&self, account: &str, ids: &[String]) -> Result<Vec<(String, String, String)>> {
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
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn image(&self, account: &str, id: &str) -> Result<Option<ImageRow>> {
        Ok(sqlx::query_as("SELECT * FROM images WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn images(&self, account: &str, offset: u64, limit: u64) -> Result<Page<ImageRow>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE account = ? AND status <> 'deleted'")
            .bind(account)
            .fetch_one(&self.pool)
            .await?;
        let items = sqlx::query_as(
            "SELECT * FROM images WHERE account = ? AND status <> 'deleted' ORDER BY create_time DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(account)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(Page { items, total: total as u64 })
    }

    async fn job(&self, account: &str, id: &str) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn jobs(&self, f: &JobFilter) -> Result<Page<JobRow>> {
        let build = |head: &str| {
            let mut q = QueryBuilder::<Sqlite>::new(head);
            q.push(" WHERE 1 = 1");
            if let Some(a) = &f.account {
                q.push(" AND account = ").push_bind(a.clone());
            }
            push_in(&mut q, "id", &f.ids);
            push_in(&mut q, "status", &f.statuses);
            if let Some(a) = &f.action {
                q.push(" AND action = ").push_bind(a.clone());
            }
            q
        };
        let total: i64 = build("SELECT COUNT(*) FROM jobs").build_query_scalar().fetch_one(&self.pool).await?;
        let mut q = build("SELECT * FROM jobs");
        q.push(order_sql(&Order::NewestFirst));
        page_sql(&mut q, f.offset, f.limit);
        let items = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(Page { items, total: total as u64 })
    }

    async fn tag(&self, account: &str, id: &str) -> Result<Option<TagRow>> {
        Ok(sqlx::query_as("SELECT * FROM tags WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn tags(&self, account: &str) -> Result<Vec<TagRow>> {
        Ok(sqlx::query_as("SELECT * FROM tags WHERE account = ? ORDER BY create_time, id")
            .bind(account)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn tags_of(&self, resource_ids: &[String]) -> Result<Vec<(String, TagRow)>> {
        if resource_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT rt.resource_id, t.id, t.account, t.key, t.value, t.create_time \
             FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id WHERE 1 = 1",
        );
        push_in(&mut q, "rt.resource_id", resource_ids);
        q.push(" ORDER BY t.create_time, t.id");
        let rows: Vec<(String, String, String, String, String, i64)> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(rid, id, account, key, value, create_time)| (rid, TagRow { id, account, key, value, create_time }))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, account: &str, volume: &str, t: i64, status: &str) -> SnapshotRow {
        SnapshotRow {
            id: id.into(),
            account: account.into(),
            zone: "z".into(),
            name: format!("n-{id}"),
            description: "nightly 100% done_ok".into(),
            volume_id: volume.into(),
            volume_size: 1,
            volume_kind: "data".into(),
            instance_id: None,
            is_full: t == 1,
            root_id: "s1".into(),
            parent_id: None,
            is_head: false,
            status: status.into(),
            transition: String::new(),
            is_taken: true,
            progress: 100,
            snapshot_time: t,
            create_time: t,
            status_time: t,
            deleted_time: None,
            expire_time: None,
            size: 10 * t,
            origin: "user".into(),
            retention_days: None,
            encrypted: false,
            used_by_images: 0,
            used_by_volumes: 0,
            version: 0,
        }
    }

    #[tokio::test]
    async fn a_write_from_a_stale_read_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() })
            .await
            .unwrap();
        let read_by_a = m.snapshot("a", "s1").await.unwrap().unwrap();
        let read_by_b = read_by_a.clone();
        assert_eq!(read_by_a.version, 1);
        let mut a = read_by_a;
        a.status = "deleted".into();
        m.commit(Batch { put_snapshots: vec![a], ..Default::default() }).await.unwrap();
        assert_eq!(m.snapshot("a", "s1").await.unwrap().unwrap().version, 2);
        // b read before a wrote: its whole-row write would put `available` back
        let mut b = read_by_b;
        b.name = "renamed".into();
        let other = snap("s2", "a", "v", 2, "available");
        let r = m.commit(Batch { put_snapshots: vec![other, b], ..Default::default() }).await;
        assert!(matches!(r, Err(MetaError::Stale { what: "snapshot", ref id }) if id == "s1"), "{r:?}");
        let now = m.snapshot("a", "s1").await.unwrap().unwrap();
        assert_eq!((now.status.as_str(), now.name.as_str(), now.version), ("deleted", "n-s1", 2));
        assert!(m.snapshot("a", "s2").await.unwrap().is_none(), "the batch wrote nothing");
        // creating a row that exists, or writing one that is gone, is stale too
        let r = m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() });
        assert!(matches!(r.await, Err(MetaError::Stale { .. })));
        m.commit(Batch { delete_snapshots: vec!["s1".into()], ..Default::default() }).await.unwrap();
        let mut gone = now;
        gone.name = "back from the dead".into();
        let r = m.commit(Batch { put_snapshots: vec![gone], ..Default::default() }).await;
        assert!(matches!(r, Err(MetaError::Stale { .. })), "{r:?}");
        assert!(m.snapshot("a", "s1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn one_batch_writing_a_row_twice_from_one_read_keeps_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        // created and changed in one batch
        let mut later = snap("s1", "a", "v", 1, "available");
        later.name = "second".into();
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available"), later], ..Default::default() })
            .await
            .unwrap();
        let read = m.snapshot("a", "s1").await.unwrap().unwrap();
        assert_eq!((read.name.as_str(), read.version), ("second", 2));
        // the same read written twice (an id a caller listed twice)
        let (mut x, mut y) = (read.clone(), read.clone());
        x.name = "x".into();
        y.name = "y".into();
        m.commit(Batch { put_snapshots: vec![x, y], ..Default::default() }).await.unwrap();
        let now = m.snapshot("a", "s1").await.unwrap().unwrap();
        assert_eq!((now.name.as_str(), now.version), ("y", 4));
        // a write from an older read is still stale, in a batch or not
        let mut stale = read;
        stale.name = "stale".into();
        let r = m.commit(Batch { put_snapshots: vec![now.clone(), stale], ..Default::default() }).await;
        assert!(matches!(r, Err(MetaError::Stale { .. })), "{r:?}");
        assert_eq!(m.snapshot("a", "s1").await.unwrap().unwrap().name, "y");
    }

    #[tokio::test]
    async fn a_failed_expectation_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() })
            .await
            .unwrap();
        let err = m
            .commit(Batch {
                expect: vec![Expect::SnapshotStatus { id: "s1".into(), expected: "deleted".into() }],
                put_snapshots: vec![snap("s2", "a", "v", 2, "available")],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, MetaError::Conflict { .. }), "{err}");
        assert!(m.snapshot("a", "s2").await.unwrap().is_none());
    }

    /// Commits that read their expectations and then write, racing each other, all land:
    /// a deferred transaction would fail some with SQLITE_BUSY_SNAPSHOT ("database is locked").
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_with_expectations_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let m = std::sync::Arc::new(SqliteMeta::open(&dir.path().join("m.db")).await.unwrap());
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() })
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..10 {
                    let _ = m.snapshot("a", "s1").await.unwrap();
                    m.commit(Batch {
                        expect: vec![Expect::SnapshotStatus { id: "s1".into(), expected: "available".into() }],
                        put_snapshots: vec![snap(&format!("c{i}-{j}"), "a", "v", 2, "available")],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = m.snapshots(&SnapshotFilter { account: "a".into(), limit: 1000, ..Default::default() }).await;
        assert_eq!(all.unwrap().total, 161);
    }

    /// No caller's input makes SQLite refuse a statement: lists longer than SQLite's 32 766
    /// variables, search words holding NUL or too long for a LIKE pattern, FTS5 syntax
    /// characters. Each still matches exactly what it names.
    #[tokio::test]
    async fn long_lists_and_any_search_word_work() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        let mut b = Batch::default();
        for (id, t) in [("s1", 1), ("s2", 2), ("s3", 3)] {
            b.put_snapshots.push(snap(id, "a", "v1", t, "available"));
        }
        b.put_snapshots[1].name = "with\0nul-inside".into();
        b.put_snapshots[2].name = "Quote\"*(NEAR)-:^".into();
        b.put_tags = (0..40)
            .map(|i| TagRow {
                id: format!("t{i}"),
                account: "a".into(),
                key: format!("k{i}"),
                value: "v".into(),
                create_time: 1,
            })
            .collect();
        b.bind_tags = (0..40).map(|i| (format!("t{i}"), "s1".to_string())).collect();
        b.bind_tags.push(("t0".into(), "s2".into()));
        m.commit(b).await.unwrap();
        let many = |keep: &[&str]| -> Vec<String> {
            (0..40_000).map(|i| format!("x{i}")).chain(keep.iter().map(|k| k.to_string())).collect()
        };
        let ids = |p: Page<SnapshotRow>| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let f = |f: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 10, ..f };
        let got = m.snapshots(&f(SnapshotFilter { ids: many(&["s1", "s3"]), ..Default::default() })).await.unwrap();
        assert_eq!((got.total, ids(got)), (2, vec!["s3".to_string(), "s1".to_string()]));
        let lists = [
            SnapshotFilter { volume_ids: many(&["v1"]), ..Default::default() },
            SnapshotFilter { instance_ids: many(&[]), ..Default::default() },
            SnapshotFilter { statuses: many(&["available"]), ..Default::default() },
            SnapshotFilter { transitions: many(&[""]), ..Default::default() },
            SnapshotFilter { not_transitions: many(&[]), ..Default::default() },
            SnapshotFilter { tag_ids: many(&[]), ..Default::default() },
            SnapshotFilter { tag_pairs: (0..40_000).map(|i| (format!("k{i}"), None)).collect(), ..Default::default() },
        ];
        let want = [3, 0, 3, 3, 3, 0, 0];
        for (l, n) in lists.into_iter().zip(want) {
            let got = m.snapshots(&f(l.clone())).await;
            assert_eq!(got.map(|p| p.total).map_err(|e| e.to_string()), Ok(n), "{:?}", count_key(&l).len());
        }
        // All 40 tags are bound to s1 only; every pair of its 40 matches it.
        let tags: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let got = m.snapshots(&f(SnapshotFilter { tag_ids: tags.clone(), ..Default::default() })).await.unwrap();
        assert_eq!(ids(got), ["s1"]);
        let pairs: Vec<_> = (0..40).map(|i| (format!("k{i}"), Some("v".to_string()))).collect();
        let got = m.snapshots(&f(SnapshotFilter { tag_pairs: pairs.clone(), ..Default::default() })).await.unwrap();
        assert_eq!(ids(got), ["s1"]);
        let mut off = pairs.clone();
        off[39].1 = Some("other".into());
        assert_eq!(m.snapshots(&f(SnapshotFilter { tag_pairs: off, ..Default::default() })).await.unwrap().total, 0);
        let words: Vec<(String, Vec<&str>)> = vec![
            ("\0".into(), vec!["s2"]),
            ("h\0nul".into(), vec!["s2"]),
            ("WITH\0N".into(), vec!["s2"]),
            ("x\0".into(), vec![]),
            ("\"*(near)".into(), vec!["s3"]),
            ("-:^".into(), vec!["s3"]),
            ("%".into(), vec!["s1", "s2", "s3"].into_iter().rev().collect()),
            ("a".repeat(60_000), vec![]),
            ("'; DROP".into(), vec![]),
        ];
        for (w, want) in words {
            let got = m.snapshots(&f(SnapshotFilter { search: Some(w.clone()), ..Default::default() })).await;
            let got = got.map(ids).map_err(|e| e.to_string());
            assert_eq!(got, Ok(want.iter().map(|s| s.to_string()).collect()), "search {:?}", &w[..w.len().min(20)]);
        }
        let vf = |v: VolumeFilter| VolumeFilter { account: "a".into(), limit: 10, ..v };
        for v in [
            VolumeFilter { ids: many(&[]), ..Default::default() },
            VolumeFilter { instance_ids: many(&[]), ..Default::default() },
            VolumeFilter { statuses: many(&[]), ..Default::default() },
            VolumeFilter { tag_ids: many(&[]), ..Default::default() },
            VolumeFilter { search: Some("a\0b".into()), ..Default::default() },
            VolumeFilter { search: Some("a".repeat(60_000)), ..Default::default() },
        ] {
            assert_eq!(m.volumes(&vf(v)).await.map(|p| p.total).map_err(|e| e.to_string()), Ok(0));
        }
        let jf = JobFilter { ids: many(&[]), statuses: many(&[]), limit: 10, ..Default::default() };
        assert_eq!(m.jobs(&jf).await.map(|p| p.total).map_err(|e| e.to_string()), Ok(0));
        assert_eq!(m.instances_by_id("a", &many(&[])).await.map(|v| v.len()).map_err(|e| e.to_string()), Ok(0));
        assert_eq!(m.volumes_by_id("a", &many(&[])).await.map(|v| v.len()).map_err(|e| e.to_string()), Ok(0));
        let md = m.snapshots_metadata("a", &many(&["s1"])).await.map_err(|e| e.to_string());
        assert_eq!(md, Ok(vec![]));
        let t = m.tags_of(&many(&["s2"])).await.map(|v| v.len()).map_err(|e| e.to_string());
        assert_eq!(t, Ok(1));
        let c = m.chain_totals(&many(&["s1"])).await.map(|v| v.len()).map_err(|e| e.to_string());
        assert_eq!(c, Ok(1));
    }

    /// Keyset pages: strictly after `(create_time, id)` in either order, ties broken by id, the
    /// total unaffected by the cursor (or skipped); transitions filter; metadata in one query.
    #[tokio::test]
    async fn keyset_pages_transitions_and_batched_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        let mut b = Batch::default();
        // s1..s3 at t=1 (one batch shares its create_time), s4 at 2, s5 at 3 (deleting).
        for (id, t) in [("s1", 1), ("s2", 1), ("s3", 1), ("s4", 2), ("s5", 3)] {
            let mut r = snap(id, "a", "v1", t, "available");
            if id == "s5" {
                r.transition = "deleting".into();
            }
            b.put_snapshots.push(r);
        }
        b.put_snapshots.push(snap("x1", "b", "v1", 1, "available"));
        b.snapshot_metadata = vec![
            ("s2".into(), "k".into(), Some("v".into())),
            ("s2".into(), "a".into(), Some("w".into())),
            ("s4".into(), "k".into(), Some("u".into())),
            ("x1".into(), "k".into(), Some("secret".into())),
        ];
        m.commit(b).await.unwrap();
        let ids = |p: Page<SnapshotRow>| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let f = |after: Option<(i64, &str)>, order: Order| SnapshotFilter {
            account: "a".into(),
            after: after.map(|(t, i)| (t, i.to_string())),
            order,
            limit: 2,
            ..Default::default()
        };
        let p = m.snapshots(&f(Some((2, "s4")), Order::NewestFirst)).await.unwrap();
        assert_eq!((p.total, ids(p)), (5, vec!["s3".to_string(), "s2".to_string()]));
        assert_eq!(ids(m.snapshots(&f(Some((1, "s2")), Order::NewestFirst)).await.unwrap()), ["s1"]);
        assert_eq!(ids(m.snapshots(&f(Some((1, "s1")), Order::OldestFirst)).await.unwrap()), ["s2", "s3"]);
        assert_eq!(ids(m.snapshots(&f(Some((1, "s3")), Order::OldestFirst)).await.unwrap()), ["s4", "s5"]);
        let skipped = m.snapshots(&SnapshotFilter { skip_count: true, ..f(None, Order::NewestFirst) }).await.unwrap();
        assert_eq!((skipped.total, ids(skipped)), (0, vec!["s5".to_string(), "s4".to_string()]));
        let deleting = SnapshotFilter { transitions: vec!["deleting".into()], ..f(None, Order::NewestFirst) };
        assert_eq!(ids(m.snapshots(&deleting).await.unwrap()), ["s5"]);
        let other =
            SnapshotFilter { not_transitions: vec!["deleting".into()], limit: 10, ..f(None, Order::NewestFirst) };
        assert_eq!(ids(m.snapshots(&other).await.unwrap()), ["s4", "s3", "s2", "s1"]);
        let all = ["s1", "s2", "s4", "x1"].map(String::from);
        let md = m.snapshots_metadata("a", &all).await.unwrap();
        let want = [("s2", "a", "w"), ("s2", "k", "v"), ("s4", "k", "u")]
            .map(|(i, k, v)| (i.to_string(), k.to_string(), v.to_string()));
        assert_eq!(md, want, "another account's metadata never shows");
    }

    /// Totals come from `snapshot_counts` or the generation-keyed cache; both must follow every
    /// kind of write exactly as a fresh COUNT(*) would.
    #[tokio::test]
    async fn totals_follow_inserts_updates_deletes_and_tag_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        let filters = |tag: &str| {
            let f = |f: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 2, ..f };
            vec![
                f(Default::default()),
                f(SnapshotFilter { statuses: vec!["deleted".into()], ..Default::default() }),
                f(SnapshotFilter { is_full: Some(true), ..Default::default() }),
                f(SnapshotFilter { origin: Some("auto".into()), ..Default::default() }),
                f(SnapshotFilter { volume_ids: vec!["v1".into()], ..Default::default() }),
                f(SnapshotFilter { search: Some("N-S".into()), ..Default::default() }),
                f(SnapshotFilter { tag_ids: vec![tag.into()], ..Default::default() }),
            ]
        };
        async fn check(m: &SqliteMeta, fs: &[SnapshotFilter], round: &str) {
            for f in fs {
                let got = m.snapshots(f).await.unwrap().total;
                let mut q = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM snapshots");
                snapshot_where(&mut q, f);
                let want: i64 = q.build_query_scalar().fetch_one(&m.pool).await.unwrap();
                assert_eq!(got, want as u64, "{round}: {f:?}");
            }
        }
        let fs = filters("t1");
        let mut b = Batch::default();
        for t in 1..=6 {
            b.put_snapshots.push(snap(&format!("s{t}"), "a", if t % 2 == 0 { "v2" } else { "v1" }, t, "available"));
        }
        b.put_snapshots.push(snap("x1", "b", "v1", 7, "available"));
        m.commit(b).await.unwrap();
        check(&m, &fs, "inserted").await;
        check(&m, &fs, "inserted, cached").await;
        // status, origin and volume change through the upsert; a progress update changes nothing
        let mut s2 = snap("s2", "a", "v1", 2, "deleted");
        s2.origin = "auto".into();
        let mut s3 = snap("s3", "a", "v2", 3, "ceased");
        // a rename leaves the search word's matches (the trigram index follows the row)
        let mut s4 = snap("s4", "a", "v2", 4, "available");
        s4.name = "renamed".into();
        for s in [&mut s2, &mut s3, &mut s4] {
            s.version = 1; // as read after the insert
        }
        m.commit(Batch { put_snapshots: vec![s2, s3, s4], ..Default::default() }).await.unwrap();
        check(&m, &fs, "updated").await;
        m.commit(Batch { snapshot_progress: vec![("s4".into(), 50, true)], ..Default::default() }).await.unwrap();
        check(&m, &fs, "progress").await;
        // into a group that exists already (the end of every capture: creating -> available)
        let mut s7 = snap("s7", "a", "v1", 7, "creating");
        s7.is_full = false;
        m.commit(Batch { put_snapshots: vec![s7.clone()], ..Default::default() }).await.unwrap();
        s7.status = "available".into();
        s7.version = 1;
        m.commit(Batch { put_snapshots: vec![s7], ..Default::default() }).await.unwrap();
        check(&m, &fs, "captured").await;
        let tag =
            TagRow { id: "t1".into(), account: "a".into(), key: "k".into(), value: String::new(), create_time: 1 };
        m.commit(Batch {
            put_tags: vec![tag],
            bind_tags: vec![("t1".into(), "s1".into()), ("t1".into(), "s5".into())],
            ..Default::default()
        })
        .await
        .unwrap();
        check(&m, &fs, "tagged").await;
        // the listing's lookups give what the separate calls give
        let vol = VolumeRow {
            id: "v1".into(),
            account: "a".into(),
            zone: "z".into(),
            name: "vol one".into(),
            description: String::new(),
            size: 1,
            kind: "data".into(),
            status: "available".into(),
            transition: String::new(),
            instance_id: None,
            path: "/x".into(),
            head_root: Some("s1".into()),
            source_snapshot: None,
            create_time: 1,
            status_time: 1,
            version: 0,
        };
        m.commit(Batch { put_volumes: vec![vol], ..Default::default() }).await.unwrap();
        let all = SnapshotFilter { limit: 100, ..fs[0].clone() };
        let l = m.snapshot_listing(&all).await.unwrap();
        let page = m.snapshots(&all).await.unwrap();
        assert_eq!(l.page.items, page.items);
        assert_eq!(l.page.total, page.total);
        let ids: Vec<String> = l.page.items.iter().map(|r| r.id.clone()).collect();
        let roots: Vec<String> = l.page.items.iter().filter(|r| r.is_full).map(|r| r.id.clone()).collect();
        assert_eq!(l.tags, m.tags_of(&ids).await.unwrap());
        assert_eq!(l.tags.len(), 2);
        assert_eq!(l.chain_totals, m.chain_totals(&roots).await.unwrap());
        assert_eq!(l.volumes, m.volumes_by_id("a", &["v1".into(), "v2".into()]).await.unwrap());
        assert_eq!(l.volumes.len(), 1);
        m.commit(Batch {
            delete_snapshots: vec!["s1".into(), "s6".into()],
            unbind_tags: vec![("t1".into(), "s5".into())],
            ..Default::default()
        })
        .await
        .unwrap();
        check(&m, &fs, "deleted").await;
    }

    #[tokio::test]
    async fn filters_order_paging_totals_and_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::open(&dir.path().join("m.db")).await.unwrap();
        let mut b = Batch::default();
        for t in 1..=5 {
            b.put_snapshots.push(snap(&format!("s{t}"), "a", if t % 2 == 0 { "v2" } else { "v1" }, t, "available"));
        }
        b.put_snapshots.push(snap("s6", "a", "v1", 6, "ceased"));
        let mut other = snap("x1", "b", "v1", 7, "available");
        other.root_id = "x1".into();
        b.put_snapshots.push(other);
        m.commit(b).await.unwrap();
        let f = |f: SnapshotFilter| SnapshotFilter {
            account: "a".into(),
            limit: if f.limit == 0 { 100 } else { f.limit },
            ..f
        };
        let ids = |p: Page<SnapshotRow>| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(m.snapshots(&f(Default::default())).await.unwrap()), ["s5", "s4", "s3", "s2", "s1"]);
        let page = m.snapshots(&f(SnapshotFilter { offset: 1, limit: 2, ..Default::default() })).await.unwrap();
        assert_eq!((page.total, ids(page)), (5, vec!["s4".to_string(), "s3".to_string()]));
        assert_eq!(
            ids(m.snapshots(&f(SnapshotFilter { volume_ids: vec!["v2".into()], ..Default::default() })).await.unwrap()),
            ["s4", "s2"]
        );
        assert_eq!(
            ids(m
                .snapshots(&f(SnapshotFilter { statuses: vec!["ceased".into()], ..Default::default() }))
                .await
                .unwrap()),
            ["s6"]
        );
        assert_eq!(
            ids(m.snapshots(&f(SnapshotFilter { is_full: Some(true), ..Default::default() })).await.unwrap()),
            ["s1"]
        );
        assert_eq!(
            ids(m
                .snapshots(&f(SnapshotFilter { created_from: Some(2), created_to: Some(3), ..Default::default() }))
                .await
                .unwrap()),
            ["s3", "s2"]
        );
        // LIKE wildcards in a search word are literal characters
        assert_eq!(
            m.snapshots(&f(SnapshotFilter { search: Some("100%".into()), ..Default::default() })).await.unwrap().total,
            5
        );
        assert_eq!(
            m.snapshots(&f(SnapshotFilter { search: Some("0_%".into()), ..Default::default() })).await.unwrap().total,
            0
        );
        assert_eq!(
            m.snapshots(&f(SnapshotFilter { search: Some("n-s3".into()), ..Default::default() })).await.unwrap().total,
            1
        );
        // Aliyun's Usage filter: made an image, a volume, both or neither
        let mut b = Batch::default();
        for (id, imgs, vols) in [("u1", 1, 0), ("u2", 0, 2), ("u3", 1, 1)] {
            let mut r = snap(id, "u", "v9", 1, "available");
            r.root_id = id.into();
            (r.used_by_images, r.used_by_volumes) = (imgs, vols);
            b.put_snapshots.push(r);
        }
        m.commit(b).await.unwrap();
        let used = |i: Option<bool>, v: Option<bool>| SnapshotFilter {
            account: "u".into(),
            used_by_images: i,
            used_by_volumes: v,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(m.snapshots(&used(Some(true), Some(false))).await.unwrap()), ["u1"]);
        assert_eq!(ids(m.snapshots(&used(Some(false), Some(true))).await.unwrap()), ["u2"]);
        assert_eq!(ids(m.snapshots(&used(Some(true), Some(true))).await.unwrap()), ["u3"]);
        assert_eq!(m.snapshots(&used(Some(false), Some(false))).await.unwrap().total, 0);
        // another account's rows are invisible, by id too
        assert!(m.snapshot("a", "x1").await.unwrap().is_none());
        let totals = m.chain_totals(&["s1".into()]).await.unwrap();
        assert_eq!((totals[0].total_count, totals[0].total_size, totals[0].latest_snapshot_time), (5, 150, 5));
    }
}
