//! A batch's commit on PostgreSQL: every expectation checked, then every write, in one
//! transaction that holds the commit lock.
//!
//! The commit lock (a transaction-scoped advisory lock) makes batch commits take turns, as
//! SQLite's `BEGIN IMMEDIATE` does: an expectation read under READ COMMITTED would otherwise be
//! stale by the time the batch writes, and two batches touching the same rows (and the one
//! `list_generation` row every snapshot write bumps) in different orders could deadlock. Reads
//! never wait for it.

use sqlx::{PgPool, Postgres, Transaction};

use super::PgMeta;
use crate::sqlite::tables::Table;
use crate::{Batch, Expect, MetaError, Result};

/// The advisory lock key of batch commits ("dsnapcmt" in ASCII): any node's commits on one
/// database take turns.
const COMMIT_LOCK: i64 = 0x6473_6e61_7063_6d74;

/// See `sqlite::batch::InBatch`: a later write of a row in one batch made from the same read as
/// an earlier one is guarded by the version the earlier write left.
#[derive(Default)]
struct InBatch(std::collections::HashMap<String, (i64, i64)>);

impl InBatch {
    fn guard(&self, id: &str, read: i64) -> i64 {
        match self.0.get(id) {
            Some(&(first_read, now)) if first_read == read => now,
            _ => read,
        }
    }

    fn wrote(&mut self, id: &str, read: i64, guard: i64) {
        let first_read = self.0.get(id).map_or(read, |&(r, _)| r);
        self.0.insert(id.to_string(), (first_read, if guard == 0 { 1 } else { guard + 1 }));
    }
}

fn marks(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `INSERT … ON CONFLICT (id) DO UPDATE SET …` for every column.
fn upsert_sql(table: &str, cols: &[&str]) -> String {
    let sets: Vec<String> = cols[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        cols.join(", "),
        marks(1, cols.len()),
        sets.join(", ")
    )
}

/// The guarded write of a versioned row (`cols` ends with `version`): an insert at version 1
/// that writes nothing when the id exists, or an update of the version read that bumps it.
/// Either writes exactly one row or the row is stale.
fn versioned_put_sql(table: &str, cols: &[&str], version: i64) -> String {
    let cols = &cols[..cols.len() - 1];
    if version == 0 {
        format!(
            "INSERT INTO {table} ({}, version) VALUES ({}, 1) ON CONFLICT (id) DO NOTHING",
            cols.join(", "),
            marks(1, cols.len())
        )
    } else {
        let sets: Vec<String> = cols.iter().enumerate().skip(1).map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
        format!(
            "UPDATE {table} SET {}, version = version + 1 WHERE id = $1 AND version = ${}",
            sets.join(", "),
            cols.len() + 1
        )
    }
}

async fn put<T: Table>(tx: &mut Transaction<'_, Postgres>, rows: &[T]) -> Result<()> {
    let mut in_batch = InBatch::default();
    for r in rows {
        if !T::VERSIONED {
            let sql = upsert_sql(T::TABLE, T::COLS);
            r.bind_pg(sqlx::query(&sql)).execute(&mut **tx).await?;
            continue;
        }
        let guard = in_batch.guard(r.id(), r.version());
        let sql = versioned_put_sql(T::TABLE, T::COLS, guard);
        let q = r.bind_pg(sqlx::query(&sql));
        let q = if guard == 0 { q } else { q.bind(guard) };
        if q.execute(&mut **tx).await?.rows_affected() != 1 {
            return Err(MetaError::Stale { what: T::WHAT, id: r.id().to_string() });
        }
        in_batch.wrote(r.id(), r.version(), guard);
    }
    Ok(())
}

async fn check(tx: &mut Transaction<'_, Postgres>, e: &Expect) -> Result<()> {
    let (what, sql, id, expected) = match e {
        Expect::VolumeTransition { id, expected } => {
            ("volume", "SELECT transition FROM volumes WHERE id = $1", id, expected)
        }
        Expect::SnapshotTransition { id, expected } => {
            ("snapshot", "SELECT transition FROM snapshots WHERE id = $1", id, expected)
        }
        Expect::SnapshotStatus { id, expected } => {
            ("snapshot", "SELECT status FROM snapshots WHERE id = $1", id, expected)
        }
        Expect::JobRunner { id, expected } => {
            ("job", "SELECT COALESCE(runner, '') FROM jobs WHERE id = $1", id, expected)
        }
    };
    let found: Option<String> = sqlx::query_scalar(sql).bind(id).fetch_optional(&mut **tx).await?;
    if found.as_deref() != Some(expected.as_str()) {
        return Err(MetaError::Conflict { what, id: id.clone(), expected: expected.clone(), found });
    }
    Ok(())
}

async fn delete_by_id(tx: &mut Transaction<'_, Postgres>, table: &str, ids: &[String]) -> Result<()> {
    if !ids.is_empty() {
        sqlx::query(&format!("DELETE FROM {table} WHERE id = ANY($1)")).bind(ids).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Begin a transaction holding the commit lock (see the module's comment).
pub(super) async fn begin_locked(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(COMMIT_LOCK).execute(&mut *tx).await?;
    Ok(tx)
}

/// The first text value of the batch holding a NUL character, as `kind.column`: PostgreSQL
/// refuses such text, and the caller should hear which value, as a bad parameter, not a
/// database failure.
fn nul_in(b: &Batch) -> Option<String> {
    fn rows<T: Table + serde::Serialize>(rows: &[T]) -> Option<String> {
        for r in rows {
            let Ok(serde_json::Value::Object(cols)) = serde_json::to_value(r) else { continue };
            for (col, v) in cols {
                if v.as_str().is_some_and(|t| t.contains('\0')) {
                    return Some(format!("{}.{col}", T::WHAT));
                }
            }
        }
        None
    }
    let nul = |t: &str| t.contains('\0');
    let tags = b.bind_tags.iter().chain(&b.unbind_tags).any(|(t, r)| nul(t) || nul(r));
    let keys = b.snapshot_metadata.iter().any(|(id, k, _)| nul(id) || nul(k));
    let values = b.snapshot_metadata.iter().any(|(_, _, v)| v.as_deref().is_some_and(nul));
    rows(&b.put_instances)
        .or_else(|| rows(&b.put_volumes))
        .or_else(|| rows(&b.put_snapshots))
        .or_else(|| rows(&b.put_images))
        .or_else(|| rows(&b.put_jobs))
        .or_else(|| rows(&b.put_tags))
        .or_else(|| rows(&b.put_snapshot_groups))
        .or_else(|| tags.then(|| "tag.id".to_string()))
        .or_else(|| keys.then(|| "metadata.key".to_string()))
        .or_else(|| values.then(|| "metadata.value".to_string()))
}

impl PgMeta {
    pub(super) async fn commit_batch(&self, b: Batch) -> Result<()> {
        if let Some(field) = nul_in(&b) {
            return Err(MetaError::Unstorable { field });
        }
        let mut tx = begin_locked(&self.pool).await?;
        for e in &b.expect {
            check(&mut tx, e).await?;
        }
        put(&mut tx, &b.put_instances).await?;
        delete_by_id(&mut tx, "instances", &b.delete_instances).await?;
        put(&mut tx, &b.put_volumes).await?;
        delete_by_id(&mut tx, "volumes", &b.delete_volumes).await?;
        put(&mut tx, &b.put_snapshots).await?;
        // The search index is an expression index: PostgreSQL keeps it with the rows.
        if !b.delete_snapshots.is_empty() {
            let ids = &b.delete_snapshots;
            sqlx::query("DELETE FROM snapshot_metadata WHERE snapshot_id = ANY($1)")
                .bind(ids)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM resource_tags WHERE resource_id = ANY($1)").bind(ids).execute(&mut *tx).await?;
        }
        delete_by_id(&mut tx, "snapshots", &b.delete_snapshots).await?;
        put(&mut tx, &b.put_images).await?;
        delete_by_id(&mut tx, "images", &b.delete_images).await?;
        put(&mut tx, &b.put_jobs).await?;
        put(&mut tx, &b.put_tags).await?;
        if !b.delete_tags.is_empty() {
            sqlx::query("DELETE FROM resource_tags WHERE tag_id = ANY($1)")
                .bind(&b.delete_tags)
                .execute(&mut *tx)
                .await?;
        }
        delete_by_id(&mut tx, "tags", &b.delete_tags).await?;
        for (tag, res) in &b.bind_tags {
            sqlx::query("INSERT INTO resource_tags (tag_id, resource_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(tag)
                .bind(res)
                .execute(&mut *tx)
                .await?;
        }
        for (tag, res) in &b.unbind_tags {
            sqlx::query("DELETE FROM resource_tags WHERE tag_id = $1 AND resource_id = $2")
                .bind(tag)
                .bind(res)
                .execute(&mut *tx)
                .await?;
        }
        for (id, progress, taken) in &b.snapshot_progress {
            sqlx::query(
                "UPDATE snapshots SET progress = $1, is_taken = $2, version = version + 1 \
                 WHERE id = $3 AND status = 'creating'",
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
                        "INSERT INTO snapshot_metadata (snapshot_id, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (snapshot_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(id)
                    .bind(key)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query("DELETE FROM snapshot_metadata WHERE snapshot_id = $1 AND key = $2")
                        .bind(id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?
                }
            };
        }
        put(&mut tx, &b.put_snapshot_groups).await?;
        delete_by_id(&mut tx, "snapshot_groups", &b.delete_snapshot_groups).await?;
        tx.commit().await?;
        Ok(())
    }
}
