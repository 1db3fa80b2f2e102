//! A batch's commit: every expectation checked, then every write, in one IMMEDIATE transaction.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::sql::push_in;
use super::tables::{upsert_sql, versioned_put_sql, Table};
use super::SqliteMeta;
use crate::{Batch, Expect, MetaError, Result};

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

/// Write rows of one kind: a guarded write each on a versioned kind (see [`InBatch`] for rows
/// written twice), a plain upsert otherwise.
async fn put<T: Table>(tx: &mut Transaction<'_, Sqlite>, rows: &[T]) -> Result<()> {
    let mut in_batch = InBatch::default();
    for r in rows {
        if !T::VERSIONED {
            let sql = upsert_sql(T::TABLE, T::COLS);
            r.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
            continue;
        }
        let guard = in_batch.guard(r.id(), r.version());
        let sql = versioned_put_sql(T::TABLE, T::COLS, guard);
        let q = r.bind(sqlx::query(&sql));
        let q = if guard == 0 { q } else { q.bind(guard) };
        let done = q.execute(&mut **tx).await;
        versioned(T::WHAT, r.id(), done)?;
        in_batch.wrote(r.id(), r.version(), guard);
    }
    Ok(())
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

impl SqliteMeta {
    pub(super) async fn commit_batch(&self, b: Batch) -> Result<()> {
        // IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
        // transaction that reads its expectations and then writes fails at once with
        // SQLITE_BUSY_SNAPSHOT when another writer committed in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for e in &b.expect {
            check(&mut tx, e).await?;
        }
        put(&mut tx, &b.put_instances).await?;
        delete_by_id(&mut tx, "instances", &b.delete_instances).await?;
        put(&mut tx, &b.put_volumes).await?;
        delete_by_id(&mut tx, "volumes", &b.delete_volumes).await?;
        put(&mut tx, &b.put_snapshots).await?;
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
        delete_by_id(&mut tx, "snapshots", &b.delete_snapshots).await?;
        put(&mut tx, &b.put_images).await?;
        delete_by_id(&mut tx, "images", &b.delete_images).await?;
        put(&mut tx, &b.put_jobs).await?;
        put(&mut tx, &b.put_tags).await?;
        for id in &b.delete_tags {
            sqlx::query("DELETE FROM resource_tags WHERE tag_id = ?").bind(id).execute(&mut *tx).await?;
        }
        delete_by_id(&mut tx, "tags", &b.delete_tags).await?;
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
        put(&mut tx, &b.put_snapshot_groups).await?;
        delete_by_id(&mut tx, "snapshot_groups", &b.delete_snapshot_groups).await?;
        tx.commit().await?;
        Ok(())
    }
}
