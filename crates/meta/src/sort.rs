//! A list's order, its keyset cursor and the status a dialect shows, in SQL: one text for both
//! backends, which differ only in what [`ListSql`] says (binding, byte order of a computed
//! word, reading the overrides' JSON).
//!
//! The default orders (`create_time`, `id` one way) are what the list indexes hold, so a page
//! reads its own index entries; a [`Sort`] of other keys (Cinder's `sort`) is computed per row
//! and sorted, exact for every key, with the marker's values read in the same statement.

use sqlx::{Postgres, QueryBuilder, Sqlite};

use crate::filter::{Order, Shown, Sort, SortKey};
use crate::rows::Millis;

/// Which table a list reads (the columns a key names differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Snapshots,
    Volumes,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Snapshots => "snapshots",
            Table::Volumes => "volumes",
        }
    }
}

/// What the two backends write differently.
pub(crate) trait ListSql: sqlx::Database + Sized {
    /// Put after a computed word so that it compares by bytes, as the stored columns do
    /// (PostgreSQL's are `COLLATE "C"`, a bound value has the database's collation).
    const BYTE_ORDER: &'static str;
    fn bind_text(q: &mut QueryBuilder<'_, Self>, v: String);
    fn bind_int(q: &mut QueryBuilder<'_, Self>, v: i64);
    /// `AND col IN (…)` as the backend binds a list (`sqlite::sql::push_in`, `postgres::sql::push_in`).
    fn push_in(q: &mut QueryBuilder<'_, Self>, col: &str, values: &[String]);
    /// `(SELECT word …)` of the alive override of the row `row` qualifies, NULL when none:
    /// `overrides` bound as one JSON array of `[id, word, set at]`.
    fn push_override(q: &mut QueryBuilder<'_, Self>, row: &str, overrides: &[(String, String, Millis)]);
}

impl ListSql for Sqlite {
    const BYTE_ORDER: &'static str = "";
    fn bind_text(q: &mut QueryBuilder<'_, Self>, v: String) {
        q.push_bind(v);
    }
    fn bind_int(q: &mut QueryBuilder<'_, Self>, v: i64) {
        q.push_bind(v);
    }
    fn push_in(q: &mut QueryBuilder<'_, Self>, col: &str, values: &[String]) {
        crate::sqlite::sql::push_in(q, col, values)
    }
    fn push_override(q: &mut QueryBuilder<'_, Self>, row: &str, overrides: &[(String, String, Millis)]) {
        // (json_each has an `id` column of its own: the row's is always qualified.)
        q.push("(SELECT o.value ->> 1 FROM json_each(").push_bind(crate::sqlite::sql::json_array(overrides));
        q.push(format!(") o WHERE o.value ->> 0 = {row}id AND o.value ->> 2 >= {row}status_time)"));
    }
}

impl ListSql for Postgres {
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    fn bind_text(q: &mut QueryBuilder<'_, Self>, v: String) {
        q.push_bind(v);
    }
    fn bind_int(q: &mut QueryBuilder<'_, Self>, v: i64) {
        q.push_bind(v);
    }
    fn push_in(q: &mut QueryBuilder<'_, Self>, col: &str, values: &[String]) {
        crate::postgres::sql::push_in(q, col, values)
    }
    fn push_override(q: &mut QueryBuilder<'_, Self>, row: &str, overrides: &[(String, String, Millis)]) {
        q.push("(SELECT o.e ->> 1 FROM jsonb_array_elements(").push_bind(crate::sqlite::sql::json_array(overrides));
        q.push(format!("::jsonb) o(e) WHERE o.e ->> 0 = {row}id AND (o.e ->> 2)::bigint >= {row}status_time)"));
    }
}

/// Appends the word `shown` gives the row `row` qualifies (`snapshots.`, `mk.`…): its alive
/// override, else the first rule that matches, else ''.
pub(crate) fn push_shown<DB: ListSql>(q: &mut QueryBuilder<'_, DB>, row: &str, shown: &Shown) {
    // An id or word holding NUL names no row and is no word a dialect shows (and PostgreSQL's
    // jsonb cannot hold it): left out on both backends alike.
    let overrides: Vec<(String, String, Millis)> =
        shown.overrides.iter().filter(|(id, w, _)| !id.contains('\0') && !w.contains('\0')).cloned().collect();
    q.push("(");
    if !overrides.is_empty() {
        q.push("COALESCE(");
        DB::push_override(q, row, &overrides);
        q.push(", ");
    }
    q.push("CASE");
    for (status, transition, word) in &shown.words {
        q.push(" WHEN TRUE");
        if let Some(s) = status {
            q.push(format!(" AND {row}status = "));
            DB::bind_text(q, s.clone());
        }
        if let Some(t) = transition {
            q.push(format!(" AND {row}transition = "));
            DB::bind_text(q, t.clone());
        }
        q.push(" THEN ");
        DB::bind_text(q, word.clone());
    }
    q.push(" ELSE '' END");
    if !overrides.is_empty() {
        q.push(")");
    }
    q.push(format!("){}", DB::BYTE_ORDER));
}

/// `AND` the shown status is one of `words` (nothing when `words` is empty). A word holding
/// NUL is no word a rule or an override gives (and PostgreSQL cannot bind it): left out.
pub(crate) fn push_shown_in<DB: ListSql>(q: &mut QueryBuilder<'_, DB>, table: Table, shown: &Shown, words: &[String]) {
    if words.is_empty() {
        return;
    }
    q.push(" AND ");
    push_shown(q, &format!("{}.", table.name()), shown);
    // NULL first: `IN ()` is not SQL, and NULL equals nothing (no word left: no row).
    q.push(" IN (NULL");
    for w in words.iter().filter(|w| !w.contains('\0')) {
        q.push(", ");
        DB::bind_text(q, w.clone());
    }
    q.push(")");
}

/// `AND id IN (…)` for resources bound to at least one tag of each set (none when a set is
/// empty: [`crate::filter::SnapshotFilter::tag_any`]).
pub(crate) fn push_any_tags<DB: ListSql>(q: &mut QueryBuilder<'_, DB>, sets: &[Vec<String>]) {
    for set in sets {
        if set.is_empty() {
            q.push(" AND FALSE");
            continue;
        }
        q.push(" AND id IN (SELECT resource_id FROM resource_tags WHERE TRUE");
        DB::push_in(q, "tag_id", set);
        q.push(")");
    }
}

/// The keys of a list's order in turn, always ending in `id` (a total order). A key the
/// table has no value for sorts every row as equal: left out.
fn keys(table: Table, order: &Order, sort: &[Sort]) -> Vec<Sort> {
    if sort.is_empty() {
        let ascending = *order == Order::OldestFirst;
        return vec![Sort { key: SortKey::CreateTime, ascending }, Sort { key: SortKey::Id, ascending }];
    }
    let mut keys: Vec<Sort> = sort
        .iter()
        .copied()
        .filter(|s| {
            !matches!((s.key, table), (SortKey::VolumeId, Table::Volumes) | (SortKey::System, Table::Snapshots))
        })
        .collect();
    if !keys.iter().any(|s| s.key == SortKey::Id) {
        keys.push(Sort { key: SortKey::Id, ascending: true });
    }
    keys
}

/// Appends the value `key` orders the row `row` qualifies by (a key [`keys`] kept).
fn push_key<DB: ListSql>(q: &mut QueryBuilder<'_, DB>, table: Table, row: &str, key: SortKey, shown: &Shown) {
    const GIB: &str = "1073741824";
    match (key, table) {
        (SortKey::Id, _) => q.push(format!("{row}id")),
        (SortKey::CreateTime, _) => q.push(format!("{row}create_time")),
        (SortKey::StatusTime, _) => q.push(format!("{row}status_time")),
        (SortKey::Name, _) => q.push(format!("{row}name")),
        (SortKey::Description, _) => q.push(format!("{row}description")),
        (SortKey::Zone, _) => q.push(format!("{row}zone")),
        (SortKey::VolumeId, _) => q.push(format!("{row}volume_id")),
        (SortKey::SizeGib, Table::Snapshots) => q.push(format!("(({row}volume_size + {GIB} - 1) / {GIB})")),
        (SortKey::SizeGib, Table::Volumes) => q.push(format!("(({row}size + {GIB} - 1) / {GIB})")),
        (SortKey::System, _) => q.push(format!("({row}kind = 'system')")),
        (SortKey::Shown, _) => {
            push_shown(q, row, shown);
            q
        }
    };
}

/// ` ORDER BY …` of the list, over rows `row` qualifies (`""` for the table itself, `p.` for
/// the page read back).
pub(crate) fn push_order<DB: ListSql>(
    q: &mut QueryBuilder<'_, DB>,
    table: Table,
    row: &str,
    order: &Order,
    sort: &[Sort],
    shown: &Shown,
) {
    // Unqualified columns inside the override lookup would be the lookup's own: qualify.
    let row = if row.is_empty() { format!("{}.", table.name()) } else { row.to_string() };
    q.push(" ORDER BY ");
    for (i, k) in keys(table, order, sort).into_iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        push_key(q, table, &row, k.key, shown);
        q.push(if k.ascending { " ASC" } else { " DESC" });
    }
}

/// `AND` rows strictly after the cursor in the list's order. The default orders compare the
/// row value `(create_time, id)`, which both databases make one range on the list index; a
/// sort compares each key with the cursor row's own value (read in the statement: the row
/// named by the cursor's id), key by key, each in its own direction.
pub(crate) fn push_after<DB: ListSql>(
    q: &mut QueryBuilder<'_, DB>,
    table: Table,
    order: &Order,
    sort: &[Sort],
    shown: &Shown,
    after: &Option<(Millis, String)>,
) {
    let Some((t, id)) = after else { return };
    if sort.is_empty() {
        let op = if *order == Order::NewestFirst { " AND (create_time, id) < (" } else { " AND (create_time, id) > (" };
        q.push(op);
        DB::bind_int(q, *t);
        q.push(", ");
        DB::bind_text(q, id.clone());
        q.push(")");
        return;
    }
    let own = format!("{}.", table.name());
    let cursor_value = |q: &mut QueryBuilder<'_, DB>, key: SortKey| {
        q.push("(SELECT ");
        push_key(q, table, "mk.", key, shown);
        q.push(format!(" FROM {} mk WHERE mk.id = ", table.name()));
        DB::bind_text(q, id.clone());
        q.push(")");
    };
    // k1 > m1 OR (k1 = m1 AND (k2 < m2 OR (k2 = m2 AND …))): after in every key's direction.
    let keys = keys(table, order, sort);
    q.push(" AND (");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            q.push(" AND (");
        }
        push_key(q, table, &own, k.key, shown);
        q.push(if k.ascending { " > " } else { " < " });
        cursor_value(q, k.key);
        if i + 1 < keys.len() {
            q.push(" OR ");
            push_key(q, table, &own, k.key, shown);
            q.push(" = ");
            cursor_value(q, k.key);
        }
    }
    q.push(")".repeat(keys.len()));
}
