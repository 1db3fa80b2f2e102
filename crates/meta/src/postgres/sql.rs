//! SQL pieces every PostgreSQL list and lookup shares: lists bound as one array, tag and
//! search-word conditions, order, keyset cursor and page.
//!
//! Unlike SQLite, a list is always one bound array (`= ANY($n)`): PostgreSQL plans it as an
//! index lookup of each value, and a statement never approaches the protocol's 65 535
//! parameters however long the caller's list is.

use sqlx::{Postgres, QueryBuilder};

use crate::sqlite::sql::{json_array, like_pattern};

/// The text the snapshots' trigram index covers (migrations-pg/0001_schema.sql,
/// `snapshots_search`): written exactly as there, so the planner matches the expression.
pub(super) const SEARCH_TEXT: &str = "(id || chr(10) || name || chr(10) || description)";

/// Whether PostgreSQL's text can hold `s` (it refuses NUL). A caller's filter value that it
/// cannot hold equals no stored value, so it is left out of the statement (binding it would
/// fail the whole query) and decides the condition without it.
pub(super) fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// Appends `AND col = value`.
pub(super) fn push_eq(q: &mut QueryBuilder<'_, Postgres>, col: &str, value: &str) {
    if storable(value) {
        q.push(format!(" AND {col} = ")).push_bind(value.to_string());
    } else {
        q.push(" AND FALSE");
    }
}

/// Appends `AND col = ANY(…)` when `values` is not empty.
pub(crate) fn push_in(q: &mut QueryBuilder<'_, Postgres>, col: &str, values: &[String]) {
    if !values.is_empty() {
        let values: Vec<String> = values.iter().filter(|v| storable(v)).cloned().collect();
        q.push(format!(" AND {col} = ANY(")).push_bind(values).push(")");
    }
}

/// Appends `AND NOT (col = ANY(…))` when `values` is not empty.
pub(super) fn push_not_in(q: &mut QueryBuilder<'_, Postgres>, col: &str, values: &[String]) {
    if !values.is_empty() {
        let values: Vec<String> = values.iter().filter(|v| storable(v)).cloned().collect();
        q.push(format!(" AND NOT ({col} = ANY(")).push_bind(values).push("))");
    }
}

/// Only the values PostgreSQL can hold, for lookups by a list of ids.
pub(super) fn storable_only(values: &[String]) -> Vec<String> {
    values.iter().filter(|v| storable(v)).cloned().collect()
}

/// `AND id IN (…)` for resources bound to every one of `tag_ids`.
pub(super) fn push_all_tags(q: &mut QueryBuilder<'_, Postgres>, tag_ids: &[String]) {
    if tag_ids.is_empty() {
        return;
    }
    if !tag_ids.iter().all(|t| storable(t)) {
        q.push(" AND FALSE");
        return;
    }
    let distinct: std::collections::BTreeSet<&String> = tag_ids.iter().collect();
    let distinct: Vec<String> = distinct.into_iter().cloned().collect();
    let n = distinct.len() as i64;
    q.push(" AND id IN (SELECT resource_id FROM resource_tags WHERE tag_id = ANY(").push_bind(distinct);
    q.push(") GROUP BY resource_id HAVING COUNT(DISTINCT tag_id) = ").push_bind(n).push(")");
}

/// `AND id IN (…)` for resources bound, for every pair, to a tag of `account` with that key
/// (and value, when given). Each pair is `[key, value or null]` of one JSON array; a resource
/// qualifies when its tags meet every pair (counted by the pair's position).
pub(super) fn push_tag_pairs(q: &mut QueryBuilder<'_, Postgres>, account: &str, pairs: &[(String, Option<String>)]) {
    if pairs.is_empty() {
        return;
    }
    if !pairs.iter().all(|(k, v)| storable(k) && v.as_deref().is_none_or(storable)) {
        q.push(" AND FALSE");
        return;
    }
    let distinct: std::collections::BTreeSet<&(String, Option<String>)> = pairs.iter().collect();
    let distinct: Vec<&(String, Option<String>)> = distinct.into_iter().collect();
    q.push(
        " AND id IN (SELECT rt.resource_id FROM resource_tags rt JOIN tags t ON t.id = rt.tag_id \
         JOIN jsonb_array_elements(",
    );
    q.push_bind(json_array(&distinct));
    q.push(
        "::jsonb) WITH ORDINALITY p(e, i) ON t.key = p.e ->> 0 AND (p.e ->> 1 IS NULL OR t.value = p.e ->> 1) \
         WHERE t.account = ",
    );
    q.push_bind(account.to_string()).push(" GROUP BY rt.resource_id HAVING COUNT(DISTINCT p.i) = ");
    q.push_bind(distinct.len() as i64).push(")");
}

/// ASCII letters folded to lower case and nothing else: what SQLite's LIKE folds, so a search
/// word matches the same rows on both backends (`lower()` and `ILIKE` fold every letter the
/// server's locale knows).
fn ascii_lower(col: &str) -> String {
    format!("translate({col}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// `AND (<col> contains word, case-insensitively for ASCII, for any of `cols`)`. With
/// `trigrams` (the snapshots' columns) and a word of three characters or more, also a condition
/// on [`SEARCH_TEXT`] that its trigram index answers: `ILIKE` finds every row the exact
/// conditions match (it folds at least the ASCII letters), and they decide.
pub(super) fn push_contains(q: &mut QueryBuilder<'_, Postgres>, cols: &[&str], word: &str, trigrams: bool) {
    if word.contains('\0') {
        // PostgreSQL's text cannot hold NUL, so no stored value contains the word (and the
        // server would refuse it as a parameter).
        q.push(" AND FALSE");
        return;
    }
    let pattern = like_pattern(&word.to_ascii_lowercase());
    if trigrams && word.chars().count() >= 3 {
        q.push(format!(" AND {SEARCH_TEXT} ILIKE ")).push_bind(pattern.clone()).push(" ESCAPE '\\'");
    }
    q.push(" AND (");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push(format!("{} LIKE ", ascii_lower(c))).push_bind(pattern.clone()).push(" ESCAPE '\\'");
    }
    q.push(")");
}

/// `AND col` holds `text`, case-sensitively (as Rust's `str::contains`; the empty text is in
/// every value). Text holding NUL is in no stored value.
pub(super) fn push_holds(q: &mut QueryBuilder<'_, Postgres>, col: &str, text: &str) {
    if storable(text) {
        q.push(format!(" AND strpos({col}, ")).push_bind(text.to_string()).push(") > 0");
    } else {
        q.push(" AND FALSE");
    }
}

/// `AND` the snapshot's metadata holds every `(key, value)`.
pub(super) fn push_metadata(q: &mut QueryBuilder<'_, Postgres>, pairs: &[(String, String)]) {
    for (k, v) in pairs {
        if !storable(k) || !storable(v) {
            q.push(" AND FALSE");
            return;
        }
        q.push(" AND EXISTS (SELECT 1 FROM snapshot_metadata m WHERE m.snapshot_id = snapshots.id AND m.key = ");
        q.push_bind(k.clone()).push(" AND m.value = ").push_bind(v.clone()).push(")");
    }
}

pub(super) fn page_sql(q: &mut QueryBuilder<'_, Postgres>, offset: u64, limit: u64) {
    q.push(" LIMIT ").push_bind(limit.min(i64::MAX as u64) as i64);
    q.push(" OFFSET ").push_bind(offset.min(i64::MAX as u64) as i64);
}

/// `COALESCE(json_agg(…), '[]')::text`: an aggregate of no rows is NULL, the row types want `[]`.
pub(super) fn json_rows(agg: &str) -> String {
    format!("COALESCE(json_agg({agg}), '[]')::text")
}
