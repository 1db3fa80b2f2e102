//! Each row kind's table and columns, listed once: the column names a statement writes or reads
//! and the values a write binds for them come from the same list, so they cannot drift apart.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Postgres, Sqlite};

use crate::rows::*;

pub(super) type Bound<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;
/// The same for the PostgreSQL backend (`crate::postgres`), which shares these column lists.
pub(crate) type PgBound<'q> = Query<'q, Postgres, PgArguments>;

/// A row kind as stored: its table, its columns in the order `bind` binds them (id first), and
/// how a write of it is guarded.
pub(crate) trait Table {
    const TABLE: &'static str;
    /// What a conflict calls a row of it (`MetaError::Stale::what`).
    const WHAT: &'static str;
    /// Every column, `version` last on a versioned row kind.
    const COLS: &'static [&'static str];
    /// Columns stored 0/1 that the row type reads as booleans.
    const BOOLS: &'static [&'static str] = &[];
    /// Whether whole-row writes are guarded by `version` ([`versioned_put_sql`]) rather than
    /// plain upserts ([`upsert_sql`]).
    const VERSIONED: bool;
    fn id(&self) -> &str;
    /// The version the row was read at (0: a new row); 0 on row kinds without one.
    fn version(&self) -> i64 {
        0
    }
    /// Bind the row's values for `COLS` (without `version`).
    fn bind<'q>(&'q self, q: Bound<'q>) -> Bound<'q>;
    /// The same values, bound for PostgreSQL.
    fn bind_pg<'q>(&'q self, q: PgBound<'q>) -> PgBound<'q>;
}

/// `impl Table` from one list of fields: the column names are the field names.
macro_rules! table {
    ($row:ty, $table:literal, $what:literal, [$($col:ident),+], bools: [$($b:literal),*], versioned) => {
        impl Table for $row {
            const TABLE: &'static str = $table;
            const WHAT: &'static str = $what;
            const COLS: &'static [&'static str] = &[$(stringify!($col)),+, "version"];
            const BOOLS: &'static [&'static str] = &[$($b),*];
            const VERSIONED: bool = true;
            fn id(&self) -> &str {
                &self.id
            }
            fn version(&self) -> i64 {
                self.version
            }
            fn bind<'q>(&'q self, q: Bound<'q>) -> Bound<'q> {
                q$(.bind(&self.$col))+
            }
            fn bind_pg<'q>(&'q self, q: PgBound<'q>) -> PgBound<'q> {
                q$(.bind(&self.$col))+
            }
        }
    };
    ($row:ty, $table:literal, $what:literal, [$($col:ident),+]) => {
        impl Table for $row {
            const TABLE: &'static str = $table;
            const WHAT: &'static str = $what;
            const COLS: &'static [&'static str] = &[$(stringify!($col)),+];
            const VERSIONED: bool = false;
            fn id(&self) -> &str {
                &self.id
            }
            fn bind<'q>(&'q self, q: Bound<'q>) -> Bound<'q> {
                q$(.bind(&self.$col))+
            }
            fn bind_pg<'q>(&'q self, q: PgBound<'q>) -> PgBound<'q> {
                q$(.bind(&self.$col))+
            }
        }
    };
}

table!(InstanceRow, "instances", "instance", [id, account, zone, name, create_time]);
table!(
    VolumeRow,
    "volumes",
    "volume",
    [
        id,
        account,
        zone,
        name,
        description,
        size,
        kind,
        status,
        transition,
        instance_id,
        path,
        head_root,
        create_time,
        status_time,
        source_snapshot,
        home_node
    ],
    bools: [],
    versioned
);
table!(
    SnapshotRow,
    "snapshots",
    "snapshot",
    [
        id,
        account,
        zone,
        name,
        description,
        volume_id,
        volume_size,
        volume_kind,
        instance_id,
        is_full,
        root_id,
        parent_id,
        is_head,
        status,
        transition,
        is_taken,
        progress,
        snapshot_time,
        create_time,
        status_time,
        deleted_time,
        expire_time,
        size,
        origin,
        retention_days,
        encrypted,
        used_by_images,
        used_by_volumes,
        logical_size,
        consistency
    ],
    bools: ["is_full", "is_head", "is_taken", "encrypted"],
    versioned
);
table!(
    ImageRow,
    "images",
    "image",
    [id, account, zone, name, snapshot_id, path, size, status, create_time, status_time],
    bools: [],
    versioned
);
table!(
    SnapshotGroupRow,
    "snapshot_groups",
    "snapshot group",
    [id, account, zone, name, description, instance_id, members, transition, create_time, status_time],
    bools: [],
    versioned
);
table!(
    JobRow,
    "jobs",
    "job",
    [id, account, action, status, resources, params, error, runner, create_time, status_time, node]
);
table!(TagRow, "tags", "tag", [id, account, key, value, create_time]);

/// `INSERT … ON CONFLICT(id) DO UPDATE SET …` for every column.
pub(super) fn upsert_sql(table: &str, cols: &[&str]) -> String {
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
pub(super) fn versioned_put_sql(table: &str, cols: &[&str], version: i64) -> String {
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

/// The account's row of kind `T` with this id.
pub(super) async fn by_id<T>(pool: &sqlx::SqlitePool, account: &str, id: &str) -> crate::Result<Option<T>>
where
    T: Table + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let sql = format!("SELECT * FROM {} WHERE account = ? AND id = ?", T::TABLE);
    Ok(sqlx::query_as(&sql).bind(account).bind(id).fetch_optional(pool).await?)
}

/// `json_object('col', col, …)` over the row kind's columns (see [`super::sql::json_object_sql`]).
pub(super) fn json_object_of<T: Table>() -> String {
    super::sql::json_object_sql(T::COLS, T::BOOLS)
}
