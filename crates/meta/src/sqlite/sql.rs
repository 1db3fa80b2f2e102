//! SQL pieces every list and lookup shares: lists bound as values or one JSON array, tag and
//! search-word conditions, order, keyset cursor and page, rows handed over as JSON.

use sqlx::{QueryBuilder, Sqlite};

use crate::{MetaError, Result};

/// `json_object('col', col, …)` over a row's columns, booleans (stored 0/1) as JSON booleans so
/// the row types deserialize from it.
pub(super) fn json_object_sql(cols: &[&str], bools: &[&str]) -> String {
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

/// Rows handed over as one JSON array in one result row. sqlx's SQLite driver passes each
/// result row from its worker thread to the async caller through a channel; on 2 busy cores a
/// page of 100 rows (plus the 100 volume rows that name them) became hundreds of thread
/// wake-ups per request, ~30 µs a row, most of the request's time. SQLite builds the array
/// in C at a fraction of that; serde reads it back.
pub(crate) fn from_json_rows<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| MetaError::Db(sqlx::Error::Decode(Box::new(e))))
}

/// Lists up to this long are bound one value per `?` (the planner sees the values, as it always
/// did); longer ones as one JSON array read back by `json_each`. A caller's list can be any
/// length (34 000 `snapshots.N` made SQLite refuse the statement: it takes at most 32 766
/// variables), and a statement binds a handful of lists, so this keeps it far below that.
pub(super) const INLINE_LIST_MAX: usize = 200;

/// Up to this many tags (or key/value pairs) a filter is one `IN (subquery)` per tag, as it
/// always was; more become one grouped subquery (each is an `AND` term, and SQLite refuses an
/// expression tree deeper than 1 000).
pub(super) const INLINE_TAGS_MAX: usize = 32;

/// Appends `AND col IN (…)` when `values` is not empty.
pub(crate) fn push_in(q: &mut QueryBuilder<'_, Sqlite>, col: &str, values: &[String]) {
    push_list(q, col, "IN", values)
}

/// Appends `AND col <op> (…)` (`op`: IN or NOT IN) when `values` is not empty: one bound value
/// each, or one JSON array (see [`INLINE_LIST_MAX`]).
pub(super) fn push_list(q: &mut QueryBuilder<'_, Sqlite>, col: &str, op: &str, values: &[String]) {
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

pub(crate) fn json_array<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("strings serialize")
}

/// `AND id IN (…)` for resources bound to every one of `tag_ids`.
pub(super) fn push_all_tags(q: &mut QueryBuilder<'_, Sqlite>, tag_ids: &[String]) {
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
pub(super) fn push_tag_pairs(q: &mut QueryBuilder<'_, Sqlite>, account: &str, pairs: &[(String, Option<String>)]) {
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

pub(crate) fn like_pattern(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// SQLite refuses a LIKE pattern over 50 000 bytes (SQLITE_MAX_LIKE_PATTERN_LENGTH); words
/// this long are matched with `instr` instead.
pub(super) const LIKE_WORD_MAX: usize = 10_000;

/// Whether `LIKE` can match the word: its C implementation stops a pattern at the first NUL
/// byte (a word holding one would match the wrong rows), and its length is capped.
pub(super) fn like_can_match(word: &str) -> bool {
    !word.contains('\0') && word.len() <= LIKE_WORD_MAX
}

/// `AND (<col> contains word, case-insensitively for ASCII, for any of `cols`)`: LIKE when it
/// can (the plan every benchmark measured), else `instr` over `lower()`, which count bytes, not
/// C strings, and fold ASCII case exactly as LIKE does.
pub(super) fn push_contains(q: &mut QueryBuilder<'_, Sqlite>, cols: &[&str], word: &str) {
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

/// `AND col` holds `text`, case-sensitively (as Rust's `str::contains`; the empty text is in
/// every value).
pub(super) fn push_holds(q: &mut QueryBuilder<'_, Sqlite>, col: &str, text: &str) {
    q.push(format!(" AND instr({col}, ")).push_bind(text.to_string()).push(") > 0");
}

/// `AND` the snapshot's metadata holds every `(key, value)`.
pub(super) fn push_metadata(q: &mut QueryBuilder<'_, Sqlite>, pairs: &[(String, String)]) {
    for (k, v) in pairs {
        q.push(" AND EXISTS (SELECT 1 FROM snapshot_metadata m WHERE m.snapshot_id = snapshots.id AND m.key = ");
        q.push_bind(k.clone()).push(" AND m.value = ").push_bind(v.clone()).push(")");
    }
}

/// The `(low, high]` byte range of sizes whose GiB count, rounded up, is `gib` (None: no size).
pub(crate) fn gib_range(gib: u64) -> Option<(i64, i64)> {
    const GIB: i64 = 1 << 30;
    let gib = i64::try_from(gib).ok()?;
    if gib == 0 {
        return Some((-1, 0));
    }
    Some(((gib - 1).checked_mul(GIB)?, gib.checked_mul(GIB)?))
}

pub(super) fn page_sql(q: &mut QueryBuilder<'_, Sqlite>, offset: u64, limit: u64) {
    q.push(" LIMIT ").push_bind(limit as i64).push(" OFFSET ").push_bind(offset as i64);
}
