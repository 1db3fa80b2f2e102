//! The engine's chunk index rows on PostgreSQL (see crate::chunk_index for the rules). The
//! statements keep them under concurrent writers of several nodes: a dedup lookup touches what
//! it finds (the UPDATE locks the rows) before it reads them in the same transaction, and GC's
//! delete is one statement conditional on `used_at`, which PostgreSQL re-checks on a row a
//! concurrent touch changed, so a touched entry is never deleted.

use async_trait::async_trait;
use sqlx::Row;

use super::PgMeta;
use crate::chunk_index::{ChunkIndexRows, ChunkLocation, ChunkRow, ChunkSums, Digest, PackChunk, PackRow};
use crate::Result;

/// Digests per statement: one array parameter each, so only the statement's size bounds it.
const PART: usize = 5000;

fn digest_of(v: Vec<u8>) -> Digest {
    let mut d = [0u8; 32];
    if v.len() == 32 {
        d.copy_from_slice(&v);
    }
    d
}

fn bytes(digests: &[Digest]) -> Vec<Vec<u8>> {
    digests.iter().map(|d| d.to_vec()).collect()
}

#[async_trait]
impl ChunkIndexRows for PgMeta {
    async fn chunk_find(&self, digests: &[Digest], touch_at: Option<i64>) -> Result<Vec<Option<ChunkLocation>>> {
        let mut found = std::collections::HashMap::with_capacity(digests.len());
        let mut tx = self.pool.begin().await?;
        for part in digests.chunks(PART) {
            let part = bytes(part);
            if let Some(at) = touch_at {
                // Rows are locked in the index's order (PostgreSQL sorts an `= ANY` array's
                // keys), so two touching writers never wait on each other in a cycle.
                sqlx::query("UPDATE chunk_index SET used_at = $1 WHERE digest = ANY($2)")
                    .bind(at)
                    .bind(&part)
                    .execute(&mut *tx)
                    .await?;
            }
            let rows = sqlx::query(
                "SELECT c.digest, p.name, c.\"offset\", c.len FROM chunk_index c JOIN packs p ON p.id = c.pack_id \
                 WHERE c.digest = ANY($1)",
            )
            .bind(&part)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let loc = ChunkLocation {
                    pack: row.get(1),
                    offset: row.get::<i64, _>(2) as u64,
                    len: row.get::<i64, _>(3) as u32,
                };
                found.insert(digest_of(row.get(0)), loc);
            }
        }
        tx.commit().await?;
        Ok(digests.iter().map(|d| found.get(d).cloned()).collect())
    }

    async fn chunk_add_pack(&self, pack: &str, size: u64, chunks: &[PackChunk], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO packs (name, size) VALUES ($1, $2) RETURNING id")
            .bind(pack)
            .bind(size as i64)
            .fetch_one(&mut *tx)
            .await?;
        // In digest order (stable: the first of two copies in one pack still wins), so two
        // packs sharing digests insert them in the same order and never deadlock.
        let mut sorted: Vec<&PackChunk> = chunks.iter().collect();
        sorted.sort_by_key(|a| a.0);
        for part in sorted.chunks(PART) {
            let digests: Vec<Vec<u8>> = part.iter().map(|c| c.0.to_vec()).collect();
            let offsets: Vec<i64> = part.iter().map(|c| c.1 as i64).collect();
            let lens: Vec<i64> = part.iter().map(|c| c.2 as i64).collect();
            let raws: Vec<Option<i64>> = part.iter().map(|c| c.3.map(|r| r as i64)).collect();
            sqlx::query(
                "INSERT INTO chunk_index (digest, pack_id, \"offset\", len, used_at, raw_len) \
                 SELECT d, $1, o, l, $2, r FROM unnest($3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[]) \
                 WITH ORDINALITY AS u(d, o, l, r, i) ORDER BY i ON CONFLICT (digest) DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .bind(digests)
            .bind(offsets)
            .bind(lens)
            .bind(raws)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn chunk_packs(&self) -> Result<Vec<PackRow>> {
        let rows = sqlx::query("SELECT name, size, doomed_at FROM packs").fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| PackRow { name: r.get(0), size: r.get::<i64, _>(1) as u64, doomed_at: r.get(2) })
            .collect())
    }

    async fn chunk_no_packs(&self) -> Result<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM packs)").fetch_one(&self.pool).await?;
        Ok(!any)
    }

    async fn chunk_all(&self) -> Result<Vec<ChunkRow>> {
        let rows = sqlx::query(
            "SELECT c.digest, p.name, c.\"offset\", c.len, c.used_at FROM chunk_index c JOIN packs p ON p.id = c.pack_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ChunkRow {
                digest: digest_of(r.get(0)),
                location: ChunkLocation {
                    pack: r.get(1),
                    offset: r.get::<i64, _>(2) as u64,
                    len: r.get::<i64, _>(3) as u32,
                },
                used_at: r.get(4),
            })
            .collect())
    }

    async fn chunk_sums(&self) -> Result<ChunkSums> {
        let r = sqlx::query("SELECT COUNT(*), COALESCE(SUM(len), 0)::BIGINT, COALESCE(SUM(raw_len), 0)::BIGINT, COUNT(*) - COUNT(raw_len) FROM chunk_index").fetch_one(&self.pool).await?;
        Ok(ChunkSums {
            chunks: r.get::<i64, _>(0) as u64,
            stored_bytes: r.get::<i64, _>(1) as u64,
            raw_bytes: r.get::<i64, _>(2) as u64,
            raw_unknown: r.get::<i64, _>(3) as u64,
        })
    }

    async fn chunk_remove_unused(&self, digests: &[Digest], cutoff: i64) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for part in digests.chunks(PART) {
            // One statement: the condition and the delete are atomic against a touch.
            let rows = sqlx::query("DELETE FROM chunk_index WHERE used_at < $1 AND digest = ANY($2) RETURNING digest")
                .bind(cutoff)
                .bind(bytes(part))
                .fetch_all(&self.pool)
                .await?;
            out.extend(rows.into_iter().map(|r| digest_of(r.get(0))));
        }
        Ok(out)
    }

    async fn chunk_remove(&self, digests: &[Digest]) -> Result<()> {
        for part in digests.chunks(PART) {
            sqlx::query("DELETE FROM chunk_index WHERE digest = ANY($1)").bind(bytes(part)).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn chunk_move(&self, from: &str, to: &str, chunks: &[PackChunk]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (d, offset, len, raw) in chunks {
            sqlx::query(
                "UPDATE chunk_index SET pack_id = (SELECT id FROM packs WHERE name = $1), \"offset\" = $2, len = $3, \
                 raw_len = COALESCE($6, raw_len) WHERE digest = $4 AND pack_id = (SELECT id FROM packs WHERE name = $5)",
            )
            .bind(to)
            .bind(*offset as i64)
            .bind(*len as i64)
            .bind(&d[..])
            .bind(from)
            .bind(raw.map(|r| r as i64))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pack_doom(&self, pack: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE packs SET doomed_at = COALESCE(doomed_at, $1) WHERE name = $2")
            .bind(at)
            .bind(pack)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pack_forget(&self, pack: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Entries still naming it would break the foreign key; GC only forgets empty packs.
        sqlx::query("DELETE FROM chunk_index WHERE pack_id = (SELECT id FROM packs WHERE name = $1)")
            .bind(pack)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM packs WHERE name = $1").bind(pack).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn chunk_clear(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chunk_index").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM packs").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
